//! What the watch shows: per node and interface, rates from counter deltas;
//! the top sampled flows; how many datagrams were skipped and why.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use super::decode::{Bad, Datagram, FlowKey, IfSample, Sample};
use crate::table::Table;

/// Flows not sampled for this long leave the table.
const FLOW_IDLE_SECS: f64 = 30.0;

#[derive(Debug, Default)]
pub struct Watch {
    datagrams: u64,
    bad: BadCounts,
    agents: BTreeMap<(IpAddr, u32), Agent>,
    flows: HashMap<(IpAddr, FlowKey), FlowStat>,
    last_tick: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BadCounts {
    pub truncated: u64,
    pub malformed: u64,
    pub oversized: u64,
}

#[derive(Debug, Default)]
struct Agent {
    hostname: Option<String>,
    last_sequence: Option<u32>,
    /// Datagrams missing from the sequence.
    lost: u64,
    interfaces: BTreeMap<u32, IfState>,
}

#[derive(Debug)]
struct IfState {
    last: IfSample,
    last_uptime_ms: u32,
    rates: Option<Rates>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub in_bps: f64,
    pub out_bps: f64,
    pub in_pps: f64,
    pub out_pps: f64,
}

#[derive(Debug)]
struct FlowStat {
    pending_bytes: f64,
    pending_packets: f64,
    samples: u64,
    bps: f64,
    pps: f64,
    idle_secs: f64,
}

/// One line of the interface table (also a `--json` line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub node: String,
    pub agent: IpAddr,
    pub if_index: u32,
    pub speed: u64,
    pub oper_up: bool,
    /// `None` until two counter samples have arrived.
    pub rates: Option<Rates>,
    pub in_octets: u64,
    pub out_octets: u64,
    pub in_errors: u32,
    pub out_errors: u32,
    pub in_discards: u32,
    pub out_discards: u32,
}

/// One line of the top-flows table (also a `--json` line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub node: String,
    pub agent: IpAddr,
    #[serde(flatten)]
    pub key: FlowKey,
    /// Estimated from samples × sampling rate.
    pub bps: f64,
    pub pps: f64,
    pub samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub datagrams: u64,
    pub agents: usize,
    pub lost: u64,
    pub skipped: BadCounts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub summary: Summary,
    pub interfaces: Vec<InterfaceRow>,
    pub flows: Vec<FlowRow>,
}

impl Watch {
    pub fn bad(&mut self, why: Bad) {
        match why {
            Bad::Truncated => self.bad.truncated += 1,
            Bad::Malformed => self.bad.malformed += 1,
            Bad::Oversized => self.bad.oversized += 1,
        }
    }

    pub fn skipped(&self) -> BadCounts {
        self.bad
    }

    pub fn ingest(&mut self, d: Datagram) {
        self.datagrams += 1;
        let agent = self.agents.entry((d.agent, d.sub_agent)).or_default();
        if let Some(last) = agent.last_sequence {
            let gap = d.sequence.wrapping_sub(last).wrapping_sub(1);
            // A sequence that goes back means the agent restarted.
            if gap < 1 << 16 {
                agent.lost += u64::from(gap);
            }
        }
        agent.last_sequence = Some(d.sequence);
        for s in d.samples {
            match s {
                Sample::Host { hostname } => agent.hostname = Some(hostname),
                Sample::Interface(c) => update_interface(&mut agent.interfaces, c, d.uptime_ms),
                Sample::Flow(f) => {
                    let stat = self.flows.entry((d.agent, f.key)).or_insert(FlowStat {
                        pending_bytes: 0.0,
                        pending_packets: 0.0,
                        samples: 0,
                        bps: 0.0,
                        pps: 0.0,
                        idle_secs: 0.0,
                    });
                    let rate = f64::from(f.sampling_rate.max(1));
                    stat.pending_bytes += f64::from(f.frame_length) * rate;
                    stat.pending_packets += rate;
                    stat.samples += 1;
                }
            }
        }
    }

    /// Turns the flow samples since the last tick into rates (smoothed) and
    /// forgets idle flows.
    pub fn tick(&mut self, now: Instant) {
        let secs = self.last_tick.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
        self.last_tick = Some(now);
        if secs <= 0.0 {
            return;
        }
        for stat in self.flows.values_mut() {
            let (bps, pps) = (stat.pending_bytes * 8.0 / secs, stat.pending_packets / secs);
            stat.idle_secs = if stat.pending_packets > 0.0 { 0.0 } else { stat.idle_secs + secs };
            // Smooth, except for a flow seen for the first time.
            let w = if stat.bps == 0.0 && stat.pps == 0.0 { 1.0 } else { 0.5 };
            stat.bps = (1.0 - w) * stat.bps + w * bps;
            stat.pps = (1.0 - w) * stat.pps + w * pps;
            stat.pending_bytes = 0.0;
            stat.pending_packets = 0.0;
        }
        self.flows.retain(|_, s| s.idle_secs < FLOW_IDLE_SECS);
    }

    pub fn snapshot(&self, top: usize) -> Snapshot {
        let node = |agent: &IpAddr, sub: u32| {
            let name = self.agents.get(&(*agent, sub)).and_then(|a| a.hostname.clone());
            name.unwrap_or_else(|| agent.to_string())
        };
        let mut interfaces = Vec::new();
        for ((agent, sub), a) in &self.agents {
            for (if_index, s) in &a.interfaces {
                interfaces.push(InterfaceRow {
                    kind: "interface",
                    node: node(agent, *sub),
                    agent: *agent,
                    if_index: *if_index,
                    speed: s.last.speed,
                    oper_up: s.last.oper_up,
                    rates: s.rates,
                    in_octets: s.last.in_octets,
                    out_octets: s.last.out_octets,
                    in_errors: s.last.in_errors,
                    out_errors: s.last.out_errors,
                    in_discards: s.last.in_discards,
                    out_discards: s.last.out_discards,
                });
            }
        }
        let mut flows: Vec<FlowRow> = self
            .flows
            .iter()
            .map(|((agent, key), s)| FlowRow {
                kind: "flow",
                node: node(agent, 0),
                agent: *agent,
                key: key.clone(),
                bps: s.bps,
                pps: s.pps,
                samples: s.samples,
            })
            .collect();
        flows.sort_by(|a, b| b.bps.total_cmp(&a.bps).then_with(|| a.key.cmp(&b.key)));
        flows.truncate(top);
        Snapshot {
            summary: Summary {
                kind: "summary",
                datagrams: self.datagrams,
                agents: self.agents.len(),
                lost: self.agents.values().map(|a| a.lost).sum(),
                skipped: self.bad,
            },
            interfaces,
            flows,
        }
    }
}

fn update_interface(interfaces: &mut BTreeMap<u32, IfState>, c: IfSample, uptime_ms: u32) {
    let Some(s) = interfaces.get_mut(&c.if_index) else {
        interfaces.insert(c.if_index, IfState { last: c, last_uptime_ms: uptime_ms, rates: None });
        return;
    };
    let ms = uptime_ms.wrapping_sub(s.last_uptime_ms);
    // Same poll seen twice, or the agent restarted: no rate from this pair.
    if ms > 0
        && ms < u32::MAX / 2
        && c.in_octets >= s.last.in_octets
        && c.out_octets >= s.last.out_octets
    {
        let secs = f64::from(ms) / 1000.0;
        s.rates = Some(Rates {
            in_bps: (c.in_octets - s.last.in_octets) as f64 * 8.0 / secs,
            out_bps: (c.out_octets - s.last.out_octets) as f64 * 8.0 / secs,
            in_pps: f64::from(c.in_packets.wrapping_sub(s.last.in_packets)) / secs,
            out_pps: f64::from(c.out_packets.wrapping_sub(s.last.out_packets)) / secs,
        });
    } else if ms >= u32::MAX / 2 {
        s.rates = None;
    }
    s.last = c;
    s.last_uptime_ms = uptime_ms;
}

fn rate(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// The live table, as text.
pub fn render(s: &Snapshot, listen: &str) -> String {
    let mut out = String::new();
    let sum = &s.summary;
    let _ = writeln!(
        out,
        "sFlow on {listen}: {} datagrams from {} agents, {} lost, skipped: {} truncated, {} malformed, {} oversized\n",
        sum.datagrams,
        sum.agents,
        sum.lost,
        sum.skipped.truncated,
        sum.skipped.malformed,
        sum.skipped.oversized
    );
    let interfaces = s.interfaces.iter().map(|r| {
        let (ib, ob, ip, op) = match &r.rates {
            Some(x) => (rate(x.in_bps), rate(x.out_bps), rate(x.in_pps), rate(x.out_pps)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        [
            r.node.clone(),
            r.agent.to_string(),
            r.if_index.to_string(),
            if r.oper_up { "up" } else { "down" }.to_string(),
            ib,
            ob,
            ip,
            op,
            format!("{}/{}", r.in_errors, r.out_errors),
            format!("{}/{}", r.in_discards, r.out_discards),
        ]
    });
    let interfaces = Table::new([
        "NODE",
        "AGENT",
        "IFINDEX",
        "UP",
        "IN bit/s",
        "OUT bit/s",
        "IN pkt/s",
        "OUT pkt/s",
        "ERRS in/out",
        "DISC in/out",
    ])
    .right(&[2, 4, 5, 6, 7, 8, 9])
    .with_rows(interfaces);
    let _ = write!(out, "{interfaces}");
    let port =
        |ip: &str, p: Option<u16>| p.map(|p| format!("{ip}:{p}")).unwrap_or_else(|| ip.to_string());
    let flows = s.flows.iter().map(|f| {
        [
            f.node.clone(),
            port(&f.key.src, f.key.src_port),
            port(&f.key.dst, f.key.dst_port),
            f.key.proto.clone(),
            rate(f.bps),
            rate(f.pps),
        ]
    });
    let flows = Table::new(["NODE", "SOURCE", "DESTINATION", "PROTO", "bit/s", "pkt/s"])
        .right(&[4, 5])
        .with_rows(flows);
    let _ = write!(out, "\nTOP SAMPLED FLOWS (estimated)\n{flows}");
    out
}

/// The snapshot as JSON lines: a summary, one per interface, one per flow.
pub fn json_lines(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut line = |v: serde_json::Result<String>| {
        if let Ok(l) = v {
            out.push_str(&l);
            out.push('\n');
        }
    };
    line(serde_json::to_string(&s.summary));
    for r in &s.interfaces {
        line(serde_json::to_string(r));
    }
    for f in &s.flows {
        line(serde_json::to_string(f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sflow_watch::decode::FlowObservation;
    use std::net::Ipv4Addr;

    fn dg(seq: u32, uptime_ms: u32, samples: Vec<Sample>) -> Datagram {
        Datagram {
            agent: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            sub_agent: 0,
            sequence: seq,
            uptime_ms,
            samples,
        }
    }

    fn ifs(octets: u64, packets: u32) -> Sample {
        Sample::Interface(IfSample {
            if_index: 3,
            in_octets: octets,
            in_packets: packets,
            ..IfSample::default()
        })
    }

    #[test]
    fn rates_come_from_counter_deltas_over_agent_uptime() {
        let mut w = Watch::default();
        w.ingest(dg(1, 10_000, vec![Sample::Host { hostname: "leaf1".into() }, ifs(1000, 10)]));
        assert_eq!(w.snapshot(5).interfaces[0].rates, None);
        w.ingest(dg(3, 12_000, vec![ifs(3000, 30)]));
        let s = w.snapshot(5);
        let r = s.interfaces[0].rates.expect("rates");
        assert_eq!((r.in_bps, r.in_pps), (8000.0, 10.0));
        assert_eq!(s.interfaces[0].node, "leaf1");
        assert_eq!(s.summary.lost, 1);
    }

    #[test]
    fn flows_are_ranked_by_estimated_bits() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        w.tick(t0);
        let flow = |src: &str, len| {
            Sample::Flow(FlowObservation {
                input: 3,
                sampling_rate: 100,
                frame_length: len,
                key: FlowKey {
                    src: src.into(),
                    dst: "b".into(),
                    proto: "udp".into(),
                    src_port: None,
                    dst_port: None,
                },
            })
        };
        w.ingest(dg(1, 0, vec![flow("small", 64), flow("big", 1500), flow("big", 1500)]));
        w.tick(t0 + std::time::Duration::from_secs(1));
        let s = w.snapshot(1);
        assert_eq!(s.flows.len(), 1);
        assert_eq!(s.flows[0].key.src, "big");
        assert_eq!(s.flows[0].bps, 2.0 * 1500.0 * 100.0 * 8.0);
        assert!(
            json_lines(&s).lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
    }

    #[test]
    fn table_shows_node_agent_rates_and_skips() {
        let mut w = Watch::default();
        w.ingest(dg(1, 1_000, vec![Sample::Host { hostname: "spine1".into() }, ifs(0, 0)]));
        w.ingest(dg(2, 2_000, vec![ifs(125_000_000, 1_000)]));
        w.bad(Bad::Truncated);
        w.bad(Bad::Oversized);
        let text = render(&w.snapshot(5), "0.0.0.0:6343");
        assert!(
            text.contains(
                "2 datagrams from 1 agents, 0 lost, skipped: 1 truncated, 0 malformed, 1 oversized"
            ),
            "{text}"
        );
        let row = text.lines().find(|l| l.starts_with("spine1")).expect("row for spine1");
        // Every column has its header, and each header sits over its column.
        let header = text.lines().find(|l| l.starts_with("NODE")).expect("header");
        assert_eq!(header.find("AGENT"), row.find("10.0.0.1"), "{header}\n{row}");
        assert_eq!(header.find("IN bit/s").map(|i| i + 8), row.find("1.00G").map(|i| i + 5));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[..6], ["spine1", "10.0.0.1", "3", "down", "1.00G", "0"], "{row}");
        assert_eq!(cols[6], "1.0k", "{row}");
    }
}
