//! Flow metrics in the Prometheus text format (version 0.0.4), derived from
//! the sFlow stream as sFlow-RT's Prometheus exporter does: per agent and
//! interface the counters the agent sends and the utilisation they give,
//! and the top flows from sampled packets as gauges. The flow label set is
//! bounded: at most `--top` flows, and a flow not sampled for 30 s goes.

use std::collections::HashSet;

use lab_spec::prometheus::{Family, Labels};

use super::view::{FlowRow, InterfaceRow, Snapshot};

const PREFIX: &str = "pi_lab_sflow";

type Value<T> = fn(&T) -> Option<f64>;

/// Interface metric families: name (after the prefix), type, help, value.
const INTERFACE: &[(&str, &str, &str, Value<InterfaceRow>)] = &[
    ("interface_in_octets_total", "counter", "Octets received (ifInOctets).", |r| {
        Some(r.in_octets as f64)
    }),
    ("interface_out_octets_total", "counter", "Octets sent (ifOutOctets).", |r| {
        Some(r.out_octets as f64)
    }),
    (
        "interface_in_packets_total",
        "counter",
        "Packets received, unicast + multicast + broadcast (32 bits, wraps).",
        |r| Some(f64::from(r.in_packets)),
    ),
    (
        "interface_out_packets_total",
        "counter",
        "Packets sent, unicast + multicast + broadcast (32 bits, wraps).",
        |r| Some(f64::from(r.out_packets)),
    ),
    ("interface_in_errors_total", "counter", "Received packets with errors (ifInErrors).", |r| {
        Some(f64::from(r.in_errors))
    }),
    ("interface_out_errors_total", "counter", "Packets not sent for errors (ifOutErrors).", |r| {
        Some(f64::from(r.out_errors))
    }),
    ("interface_in_discards_total", "counter", "Received packets dropped (ifInDiscards).", |r| {
        Some(f64::from(r.in_discards))
    }),
    ("interface_out_discards_total", "counter", "Packets dropped on the way out.", |r| {
        Some(f64::from(r.out_discards))
    }),
    (
        "interface_in_utilization_ratio",
        "gauge",
        "Bits received per second over the interface speed, between the last two counter samples.",
        |r| utilization(r, r.rates.map(|x| x.in_bps)),
    ),
    (
        "interface_out_utilization_ratio",
        "gauge",
        "Bits sent per second over the interface speed, between the last two counter samples.",
        |r| utilization(r, r.rates.map(|x| x.out_bps)),
    ),
    ("interface_up", "gauge", "1 when the interface is operationally up.", |r| {
        Some(if r.oper_up { 1.0 } else { 0.0 })
    }),
];

/// Flow metric families: name, help, value.
const FLOW: &[(&str, &str, Value<FlowRow>)] = &[
    (
        "flow_bytes_per_second",
        "Top flows from sampled packets: estimated bytes per second (samples × sampling rate).",
        |f| Some(f.bps / 8.0),
    ),
    (
        "flow_packets_per_second",
        "Top flows from sampled packets: estimated packets per second.",
        |f| Some(f.pps),
    ),
];

fn utilization(r: &InterfaceRow, bps: Option<f64>) -> Option<f64> {
    (r.speed > 0).then_some(bps? / r.speed as f64)
}

/// The whole `/metrics` page for a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let sum = &s.summary;
    family(
        &mut out,
        "datagrams_total",
        "counter",
        "sFlow datagrams decoded.",
        [(Vec::new(), sum.datagrams as f64)],
    );
    family(
        &mut out,
        "datagrams_skipped_total",
        "counter",
        "sFlow datagrams skipped, by reason.",
        [
            ("truncated", sum.skipped.truncated),
            ("malformed", sum.skipped.malformed),
            ("oversized", sum.skipped.oversized),
        ]
        .map(|(reason, n)| (vec![("reason", reason.to_string())], n as f64)),
    );
    family(
        &mut out,
        "datagrams_lost_total",
        "counter",
        "Datagrams missing from agents' sequences.",
        [(Vec::new(), sum.lost as f64)],
    );
    family(&mut out, "agents", "gauge", "Agents heard from.", [(Vec::new(), sum.agents as f64)]);

    let rows = labelled(&s.interfaces, interface_labels);
    for (name, kind, help, value) in INTERFACE {
        let samples = rows.iter().filter_map(|(l, r)| Some((l.clone(), value(r)?)));
        family(&mut out, name, kind, help, samples);
    }
    let flows = labelled(&s.flows, flow_labels);
    for (name, help, value) in FLOW {
        let samples = flows.iter().filter_map(|(l, f)| Some((l.clone(), value(f)?)));
        family(&mut out, name, "gauge", help, samples);
    }
    out
}

/// Each item with its labels, one per label set: a second interface that
/// would carry the same labels (another sub-agent with the same names) is
/// left out, as Prometheus takes one series per label set.
fn labelled<T>(items: &[T], labels: fn(&T) -> Labels<'static>) -> Vec<(Labels<'static>, &T)> {
    let mut seen = HashSet::new();
    items.iter().map(|i| (labels(i), i)).filter(|(l, _)| seen.insert(l.clone())).collect()
}

/// agent, node, ifname: the name the agent sends, else the ifIndex.
fn interface_labels(r: &InterfaceRow) -> Labels<'static> {
    let ifname = r.ifname.clone().unwrap_or_else(|| r.if_index.to_string());
    vec![("agent", r.agent.to_string()), ("node", r.node.clone()), ("ifname", ifname)]
}

fn flow_labels(f: &FlowRow) -> Labels<'static> {
    let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
    vec![
        ("agent", f.agent.to_string()),
        ("node", f.node.clone()),
        ("ifname", f.input.clone()),
        ("src", f.key.src.clone()),
        ("dst", f.key.dst.clone()),
        ("proto", f.key.proto.clone()),
        ("src_port", port(f.key.src_port)),
        ("dst_port", port(f.key.dst_port)),
    ]
}

/// One family, named with the prefix (see [`Family`]).
fn family<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) {
    let name = format!("{PREFIX}_{name}");
    let mut family = Family::new(&name, kind, help);
    for (labels, value) in samples {
        family = family.with(labels, value);
    }
    family.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sflow_watch::decode::FlowKey;
    use crate::sflow_watch::view::{BadCounts, Rates, Summary};
    use std::net::{IpAddr, Ipv4Addr};

    fn row(node: &str, ifname: Option<&str>, if_index: u32) -> InterfaceRow {
        InterfaceRow {
            kind: "interface",
            node: node.into(),
            agent: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            if_index,
            ifname: ifname.map(str::to_string),
            peer: None,
            link: None,
            speed: 1_000_000_000,
            oper_up: true,
            rates: Some(Rates { in_bps: 250e6, out_bps: 0.0, in_pps: 1.0, out_pps: 0.0 }),
            age_secs: 0.0,
            in_octets: 1 << 40,
            out_octets: 5,
            in_packets: 7,
            out_packets: 8,
            in_errors: 0,
            out_errors: 0,
            in_discards: 0,
            out_discards: 0,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            summary: Summary {
                kind: "summary",
                datagrams: 3,
                agents: 1,
                lost: 0,
                skipped: BadCounts { truncated: 1, malformed: 0, oversized: 0 },
            },
            interfaces: vec![
                row("leaf1", Some("eth1"), 3),
                row("le\"af\\1", None, 4),
                row("leaf1", Some("eth1"), 3),
            ],
            flows: vec![FlowRow {
                kind: "flow",
                node: "leaf1".into(),
                agent: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                input: "eth1".into(),
                key: FlowKey {
                    src: "10.1.0.1".into(),
                    dst: "10.1.0.2".into(),
                    proto: "icmp".into(),
                    src_port: None,
                    dst_port: None,
                },
                bps: 8000.0,
                pps: 10.0,
                samples: 4,
            }],
        }
    }

    #[test]
    fn interfaces_and_flows_as_prometheus_text() {
        let text = render(&snapshot());
        let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_string);
        assert_eq!(
            line("pi_lab_sflow_interface_in_octets_total{").as_deref(),
            Some(
                "pi_lab_sflow_interface_in_octets_total{agent=\"10.0.0.1\",node=\"leaf1\",ifname=\"eth1\"} 1099511627776"
            )
        );
        assert!(text.contains(
            "pi_lab_sflow_interface_in_utilization_ratio{agent=\"10.0.0.1\",node=\"leaf1\",ifname=\"eth1\"} 0.25\n"
        ));
        // Escaped label values; the ifIndex stands in for a missing name.
        assert!(text.contains("node=\"le\\\"af\\\\1\",ifname=\"4\""), "{text}");
        // The duplicate label set appears once.
        let series =
            text.lines().filter(|l| l.starts_with("pi_lab_sflow_interface_out_octets_total{"));
        assert_eq!(series.count(), 2);
        assert!(text.contains(
            "pi_lab_sflow_flow_bytes_per_second{agent=\"10.0.0.1\",node=\"leaf1\",ifname=\"eth1\",src=\"10.1.0.1\",dst=\"10.1.0.2\",proto=\"icmp\",src_port=\"\",dst_port=\"\"} 1000\n"
        ));
        assert!(text.contains("pi_lab_sflow_datagrams_skipped_total{reason=\"truncated\"} 1\n"));
        assert!(text.contains("# TYPE pi_lab_sflow_interface_in_octets_total counter\n"));
    }
}
