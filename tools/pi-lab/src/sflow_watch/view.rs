//! What the watch shows: per node and interface, rates from counter deltas;
//! the top sampled flows; how many datagrams were skipped and why.
//!
//! Here: the watch's state, fed by datagrams and ticks, and its snapshot;
//! the rows it makes are in `rows`, their text and JSON in `text`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::decode::{Bad, Datagram, FlowKey, IfSample, Sample};
use super::lab_links::LabLinks;

mod rows;
mod text;

pub use rows::{BadCounts, FlowRow, InterfaceRow, Rates, Snapshot, Summary};
pub use text::{json_lines, render};

/// Flows not sampled for this long leave the table (and the metrics).
pub const FLOW_IDLE_SECS: f64 = 30.0;
/// Interfaces and agents not heard from for this long are forgotten.
const SILENT_FOR: Duration = Duration::from_secs(600);
/// A flow's shown rate moves half way to its measured rate in this time.
const SMOOTHING_SECS: f64 = 2.0;

#[derive(Debug, Default)]
pub struct Watch {
    datagrams: u64,
    bad: BadCounts,
    agents: BTreeMap<(IpAddr, u32), Agent>,
    flows: HashMap<(IpAddr, FlowKey), FlowStat>,
    last_tick: Option<Instant>,
    /// The lab, when the watch knows it: node names and link ends.
    lab: Option<LabLinks>,
}

#[derive(Debug)]
struct Agent {
    hostname: Option<String>,
    last_sequence: Option<u32>,
    /// Datagrams missing from the sequence.
    lost: u64,
    interfaces: BTreeMap<u32, IfState>,
    seen: Instant,
}

#[derive(Debug)]
struct IfState {
    last: IfSample,
    last_uptime_ms: u32,
    rates: Option<Rates>,
    seen: Instant,
}

#[derive(Debug)]
struct FlowStat {
    pending_bytes: f64,
    pending_packets: f64,
    samples: u64,
    bps: f64,
    pps: f64,
    idle_secs: f64,
    /// ifIndex the last sample came in on.
    input: u32,
}

impl Watch {
    /// A watch that names nodes and link ends after the lab.
    pub fn for_lab(lab: LabLinks) -> Watch {
        Watch { lab: Some(lab), ..Watch::default() }
    }

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

    /// Takes in a datagram received at `now`.
    pub fn ingest(&mut self, d: Datagram, now: Instant) {
        self.datagrams += 1;
        let agent = self.agents.entry((d.agent, d.sub_agent)).or_insert_with(|| Agent {
            hostname: None,
            last_sequence: None,
            lost: 0,
            interfaces: BTreeMap::new(),
            seen: now,
        });
        agent.seen = now;
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
                Sample::Interface(c) => {
                    update_interface(&mut agent.interfaces, c, d.uptime_ms, now)
                }
                Sample::Flow(f) => {
                    let stat = self.flows.entry((d.agent, f.key)).or_insert(FlowStat {
                        pending_bytes: 0.0,
                        pending_packets: 0.0,
                        samples: 0,
                        bps: 0.0,
                        pps: 0.0,
                        idle_secs: 0.0,
                        input: f.input,
                    });
                    let rate = f64::from(f.sampling_rate.max(1));
                    stat.pending_bytes += f64::from(f.frame_length) * rate;
                    stat.pending_packets += rate;
                    stat.samples += 1;
                    stat.input = f.input;
                }
            }
        }
    }

    /// Turns the flow samples since the last tick into rates (smoothed),
    /// forgets idle flows, and agents and interfaces long silent.
    pub fn tick(&mut self, now: Instant) {
        let secs = self.last_tick.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
        self.last_tick = Some(now);
        for agent in self.agents.values_mut() {
            agent.interfaces.retain(|_, i| now.saturating_duration_since(i.seen) < SILENT_FOR);
        }
        self.agents.retain(|_, a| now.saturating_duration_since(a.seen) < SILENT_FOR);
        if secs <= 0.0 {
            return;
        }
        for stat in self.flows.values_mut() {
            let (bps, pps) = (stat.pending_bytes * 8.0 / secs, stat.pending_packets / secs);
            stat.idle_secs = if stat.pending_packets > 0.0 { 0.0 } else { stat.idle_secs + secs };
            // Smooth, except for a flow seen for the first time. The weight
            // follows the time since the last tick, not the number of ticks:
            // the dashboard ticks every 250 ms, `sflow watch` every 2 s.
            let w = if stat.bps == 0.0 && stat.pps == 0.0 {
                1.0
            } else {
                1.0 - 0.5f64.powf(secs / SMOOTHING_SECS)
            };
            stat.bps = (1.0 - w) * stat.bps + w * bps;
            stat.pps = (1.0 - w) * stat.pps + w * pps;
            stat.pending_bytes = 0.0;
            stat.pending_packets = 0.0;
        }
        self.flows.retain(|_, s| s.idle_secs < FLOW_IDLE_SECS);
    }

    /// The node an agent is: the lab's name for it, else the hostname it
    /// sends, else its address.
    fn node(&self, agent: IpAddr, sub: u32) -> String {
        let lab = self.lab.as_ref().and_then(|l| l.node(agent)).map(str::to_string);
        let sent = || self.agents.get(&(agent, sub)).and_then(|a| a.hostname.clone());
        lab.or_else(sent).unwrap_or_else(|| agent.to_string())
    }

    /// What the table shows at `now`: every interface (by node, then
    /// ifIndex) and the `top` flows by estimated bit rate.
    pub fn snapshot(&self, top: usize, now: Instant) -> Snapshot {
        let mut interfaces = Vec::new();
        for ((agent, sub), a) in &self.agents {
            let node = self.node(*agent, *sub);
            for (if_index, s) in &a.interfaces {
                let end = match (&self.lab, &s.last.name) {
                    (Some(lab), Some(name)) => lab.end(&node, name),
                    _ => None,
                };
                interfaces.push(InterfaceRow {
                    kind: "interface",
                    node: node.clone(),
                    agent: *agent,
                    if_index: *if_index,
                    ifname: s.last.name.clone(),
                    peer: end.map(|e| e.peer.clone()),
                    link: end.map(|e| e.link),
                    speed: s.last.speed,
                    oper_up: s.last.oper_up,
                    rates: s.rates,
                    age_secs: now.saturating_duration_since(s.seen).as_secs_f64(),
                    in_octets: s.last.in_octets,
                    out_octets: s.last.out_octets,
                    in_packets: s.last.in_packets,
                    out_packets: s.last.out_packets,
                    in_errors: s.last.in_errors,
                    out_errors: s.last.out_errors,
                    in_discards: s.last.in_discards,
                    out_discards: s.last.out_discards,
                });
            }
        }
        interfaces.sort_by(|a, b| (&a.node, a.if_index).cmp(&(&b.node, b.if_index)));
        let mut flows: Vec<FlowRow> = self
            .flows
            .iter()
            .map(|((agent, key), s)| FlowRow {
                kind: "flow",
                node: self.node(*agent, 0),
                agent: *agent,
                input: self.interface_name(*agent, s.input),
                key: key.clone(),
                bps: s.bps,
                pps: s.pps,
                samples: s.samples,
            })
            .collect();
        flows.sort_by(|a, b| {
            b.bps.total_cmp(&a.bps).then_with(|| (&a.key, &a.node).cmp(&(&b.key, &b.node)))
        });
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

    /// The name of `agent`'s interface `if_index`, else the number.
    fn interface_name(&self, agent: IpAddr, if_index: u32) -> String {
        let name = self
            .agents
            .range((agent, 0)..=(agent, u32::MAX))
            .find_map(|(_, a)| a.interfaces.get(&if_index).and_then(|i| i.last.name.clone()));
        name.unwrap_or_else(|| format!("#{if_index}"))
    }
}

fn update_interface(
    interfaces: &mut BTreeMap<u32, IfState>,
    mut c: IfSample,
    uptime_ms: u32,
    now: Instant,
) {
    let Some(s) = interfaces.get_mut(&c.if_index) else {
        let state = IfState { last: c.clone(), last_uptime_ms: uptime_ms, rates: None, seen: now };
        interfaces.insert(c.if_index, state);
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
    // A name, once sent, stays until another one comes.
    if c.name.is_none() {
        c.name = s.last.name.take();
    }
    s.last = c;
    s.last_uptime_ms = uptime_ms;
    s.seen = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sflow_watch::decode::FlowObservation;
    use std::net::Ipv4Addr;

    const AGENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    pub(super) fn dg(seq: u32, uptime_ms: u32, samples: Vec<Sample>) -> Datagram {
        Datagram { agent: AGENT, sub_agent: 0, sequence: seq, uptime_ms, samples }
    }

    pub(super) fn ifs(octets: u64, packets: u32) -> Sample {
        Sample::Interface(IfSample {
            if_index: 3,
            in_octets: octets,
            in_packets: packets,
            ..IfSample::default()
        })
    }

    pub(super) fn named(if_index: u32, name: &str, octets: u64) -> Sample {
        Sample::Interface(IfSample {
            if_index,
            name: Some(name.into()),
            in_octets: octets,
            out_octets: octets / 2,
            oper_up: true,
            ..IfSample::default()
        })
    }

    #[test]
    fn rates_come_from_counter_deltas_over_agent_uptime() {
        let mut w = Watch::default();
        let now = Instant::now();
        w.ingest(
            dg(1, 10_000, vec![Sample::Host { hostname: "leaf1".into() }, ifs(1000, 10)]),
            now,
        );
        assert_eq!(w.snapshot(5, now).interfaces[0].rates, None);
        w.ingest(dg(3, 12_000, vec![ifs(3000, 30)]), now);
        let s = w.snapshot(5, now);
        let r = s.interfaces[0].rates.expect("rates");
        assert_eq!((r.in_bps, r.in_pps), (8000.0, 10.0));
        assert_eq!(s.interfaces[0].node, "leaf1");
        assert_eq!(s.interfaces[0].label(), "leaf1:#3");
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
        w.ingest(dg(1, 0, vec![named(3, "eth3", 0)]), t0);
        w.ingest(dg(2, 0, vec![flow("small", 64), flow("big", 1500), flow("big", 1500)]), t0);
        w.tick(t0 + Duration::from_secs(1));
        let s = w.snapshot(1, t0);
        assert_eq!(s.flows.len(), 1);
        assert_eq!((s.flows[0].key.src.as_str(), s.flows[0].input.as_str()), ("big", "eth3"));
        assert_eq!(s.flows[0].bps, 2.0 * 1500.0 * 100.0 * 8.0);
        assert!(
            json_lines(&s).lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
        // Idle flows go.
        w.tick(t0 + Duration::from_secs_f64(2.0 + FLOW_IDLE_SECS));
        assert!(w.snapshot(5, t0).flows.is_empty());
    }

    #[test]
    fn a_name_stays_and_silent_interfaces_go() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        w.ingest(dg(1, 1_000, vec![named(3, "eth1", 0)]), t0);
        w.ingest(dg(2, 2_000, vec![ifs(10, 1)]), t0 + Duration::from_secs(1));
        let s = w.snapshot(5, t0 + Duration::from_secs(3));
        assert_eq!(s.interfaces[0].ifname.as_deref(), Some("eth1"));
        assert_eq!(s.interfaces[0].age_secs, 2.0);
        w.tick(t0 + SILENT_FOR + Duration::from_secs(2));
        let s = w.snapshot(5, t0);
        assert!(s.interfaces.is_empty() && s.summary.agents == 0, "{s:?}");
    }
}
