//! What the page shows, as data: the lab's topology laid out in tiers (the
//! layers of `lab graph`), each node's condition from its health report,
//! each link's session state and its rates both ways from sFlow interface
//! counters, and the top sampled flows. Pure: built from the lab, the last
//! health answers and an sFlow snapshot, so every rule is unit-tested.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use lab_spec::health::HealthReport;
use lab_spec::lab::UnderlayProtocol;
use lab_spec::node_config::{IgpProtocol, Role};
use lab_spec::plan::{LinkPlan, PlannedLinkKind};
use serde::Serialize;

use crate::lab_file::CompiledLab;
use crate::sflow_watch::view::{InterfaceRow, Snapshot};
use crate::status::NodeStatus;

/// How a node looks on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Not asked yet.
    Unknown,
    /// Answers, healthy by its own account, runs the lab's config.
    Healthy,
    /// Answers, but something is wrong (a session down, another config).
    Degraded,
    /// Does not answer.
    Unreachable,
    /// Answers, waiting for its config (`pi-lab provision`).
    Unprovisioned,
}

impl Condition {
    /// The condition `status::judge` found, in the page's words.
    pub fn of(status: &NodeStatus) -> Condition {
        match &status.report {
            None if !status.reachable => Condition::Unreachable,
            None => Condition::Degraded,
            Some(r) if r.node.is_none() || r.reconcile.config_version.is_none() => {
                Condition::Unprovisioned
            }
            Some(_) if status.healthy => Condition::Healthy,
            Some(_) => Condition::Degraded,
        }
    }
}

/// The lab as the page draws it; fixed while the dashboard runs.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub lab: String,
    pub runs_on: String,
    pub underlay: UnderlayProtocol,
    /// Node names top to bottom, each tier left to right.
    pub tiers: Vec<Vec<String>>,
    pub nodes: BTreeMap<String, NodeFacts>,
    pub links: Vec<LinkFacts>,
    pub segments: Vec<SegmentFacts>,
    /// Seconds between counter samples: rates older than three of these
    /// are no longer shown.
    pub polling_interval: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeFacts {
    pub role: Role,
    pub asn: Option<u32>,
    pub loopback: Option<Ipv4Addr>,
    pub management: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkFacts {
    /// `a-node:a-if|b-node:b-if`: what the page and its tests find a link by.
    pub id: String,
    pub a: End,
    pub b: End,
    /// `underlay` or `access`.
    pub kind: PlannedLinkKind,
    pub segment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct End {
    pub node: String,
    pub interface: String,
    pub address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentFacts {
    pub name: String,
    pub vni: u32,
    pub flooding: String,
    pub leaves: Vec<String>,
    pub hosts: Vec<String>,
}

impl Topology {
    pub fn new(lab: &CompiledLab, runs_on: String) -> Topology {
        let plan = &lab.plan;
        let nodes = plan
            .nodes
            .iter()
            .map(|(name, n)| {
                let facts = NodeFacts {
                    role: n.role,
                    asn: lab.lab.nodes.get(name).and_then(|node| lab.lab.asn_of(node)),
                    loopback: n.loopback,
                    management: n.management.to_string(),
                };
                (name.clone(), facts)
            })
            .collect();
        let end = |e: &lab_spec::plan::EndPlan| End {
            node: e.node.clone(),
            interface: e.interface.clone(),
            address: e.address.map(|a| a.addr()),
        };
        let links = plan
            .links
            .iter()
            .map(|l| LinkFacts {
                id: link_id(l),
                a: end(&l.a),
                b: end(&l.b),
                kind: l.kind,
                segment: l.segment.clone(),
            })
            .collect();
        let segments = plan
            .segments
            .iter()
            .map(|s| SegmentFacts {
                name: s.name.clone(),
                vni: s.vni,
                flooding: s.flooding.to_string(),
                leaves: s.vteps.keys().cloned().collect(),
                // The plan lists irb leaves' addresses among the hosts'.
                hosts: s
                    .hosts
                    .keys()
                    .filter_map(|h| h.split_once(':').map(|(node, _)| node))
                    .filter(|node| plan.nodes.get(*node).is_some_and(|n| n.role == Role::Host))
                    .map(str::to_string)
                    .collect(),
            })
            .collect();
        Topology {
            lab: lab.name().to_string(),
            runs_on,
            underlay: lab.lab.underlay.protocol,
            tiers: super::layout::tiers(&lab.lab),
            nodes,
            links,
            segments,
            polling_interval: lab.lab.sflow.polling_interval,
        }
    }

    /// Seconds after which a counter sample is too old to show its rates.
    pub fn stale_after(&self) -> f64 {
        3.0 * f64::from(self.polling_interval.max(1)) + 2.0
    }
}

pub fn link_id(l: &LinkPlan) -> String {
    format!("{}:{}|{}:{}", l.a.node, l.a.interface, l.b.node, l.b.interface)
}

/// What changes: sent to the page whenever it differs from the last time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    pub nodes: BTreeMap<String, NodeLive>,
    pub links: Vec<LinkLive>,
    pub flows: Vec<FlowLive>,
    pub sflow: SflowLive,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeLive {
    pub condition: Condition,
    /// The first problems, for the tooltip; the details have them all.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkLive {
    pub id: String,
    pub session: Option<Session>,
    /// Bits per second from a to b and from b to a; `None` until two
    /// counter samples arrived, or when they are too old.
    pub ab_bps: Option<f64>,
    pub ba_bps: Option<f64>,
    /// The busier direction over the interface speed, 0 to 1.
    pub utilization: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// `bgp`, `ospf` or `isis`.
    pub protocol: &'static str,
    /// FRR's word for it (`Established`, `Full`, `Up`, `Active`, ...).
    pub state: String,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowLive {
    /// `node:interface` where it was sampled.
    pub seen_on: String,
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub bps: f64,
    pub pps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SflowLive {
    pub listen: String,
    pub datagrams: u64,
    pub agents: usize,
    pub lost: u64,
    pub skipped: u64,
}

/// The live state from the last health answers (by node) and an sFlow
/// snapshot of a watch that knows the lab.
pub fn live(
    topology: &Topology,
    health: &BTreeMap<String, NodeStatus>,
    sflow: &Snapshot,
    listen: &str,
) -> Live {
    let nodes = topology
        .nodes
        .keys()
        .map(|name| {
            let live = match health.get(name) {
                None => NodeLive { condition: Condition::Unknown, problems: Vec::new() },
                Some(s) => NodeLive {
                    condition: Condition::of(s),
                    problems: s.problems.iter().take(3).cloned().collect(),
                },
            };
            (name.clone(), live)
        })
        .collect();
    let report = |node: &str| health.get(node).and_then(|s| s.report.as_ref());
    let stale = topology.stale_after();
    let links = topology
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rows: Vec<&InterfaceRow> = sflow
                .interfaces
                .iter()
                .filter(|r| r.link == Some(i) && r.age_secs <= stale)
                .collect();
            let (ab_bps, ba_bps, utilization) = rates(l, &rows);
            LinkLive {
                id: l.id.clone(),
                session: session(topology.underlay, l, report(&l.a.node), report(&l.b.node)),
                ab_bps,
                ba_bps,
                utilization,
            }
        })
        .collect();
    let flows = sflow
        .flows
        .iter()
        .map(|f| {
            let port = |a: &str, p: Option<u16>| p.map_or(a.to_string(), |p| format!("{a}:{p}"));
            FlowLive {
                seen_on: format!("{}:{}", f.node, f.input),
                src: port(&f.key.src, f.key.src_port),
                dst: port(&f.key.dst, f.key.dst_port),
                proto: f.key.proto.clone(),
                bps: f.bps,
                pps: f.pps,
            }
        })
        .collect();
    let s = &sflow.summary;
    Live {
        nodes,
        links,
        flows,
        sflow: SflowLive {
            listen: listen.to_string(),
            datagrams: s.datagrams,
            agents: s.agents,
            lost: s.lost,
            skipped: s.skipped.truncated + s.skipped.malformed + s.skipped.oversized,
        },
    }
}

/// Rates a→b and b→a with the utilisation, from either end's counters
/// (a's if both are there: what a sends is what b receives).
fn rates(l: &LinkFacts, rows: &[&InterfaceRow]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let at = |end: &End| {
        rows.iter().find(|r| r.node == end.node && r.ifname.as_deref() == Some(&end.interface))
    };
    let (sent, received, row) = match (at(&l.a), at(&l.b)) {
        (Some(a), _) if a.rates.is_some() => {
            let r = a.rates.unwrap_or_default();
            (r.out_bps, r.in_bps, a)
        }
        (_, Some(b)) if b.rates.is_some() => {
            let r = b.rates.unwrap_or_default();
            (r.in_bps, r.out_bps, b)
        }
        _ => return (None, None, None),
    };
    let utilization = (row.speed > 0).then(|| (sent.max(received) / row.speed as f64).min(1.0));
    (Some(sent), Some(received), utilization)
}

/// The routing session a link carries: the IGP adjacency on it with an
/// IGP underlay, else the eBGP session between its two addresses. Asked
/// of end a first, then end b; `None` for access links.
fn session(
    underlay: UnderlayProtocol,
    l: &LinkFacts,
    a: Option<&HealthReport>,
    b: Option<&HealthReport>,
) -> Option<Session> {
    if l.kind == PlannedLinkKind::Access {
        return None;
    }
    let ends = [(a, &l.a, &l.b), (b, &l.b, &l.a)];
    match underlay.igp() {
        Some(igp) => {
            let protocol = match igp {
                IgpProtocol::Ospf => "ospf",
                IgpProtocol::Isis => "isis",
            };
            let found = ends.iter().find_map(|(report, here, _)| {
                let list = match igp {
                    IgpProtocol::Ospf => &report.as_ref()?.ospf,
                    IgpProtocol::Isis => &report.as_ref()?.isis,
                };
                list.iter().find(|adj| adj.interface == here.interface)
            });
            Some(match found {
                Some(adj) => Session { protocol, state: adj.state.clone(), up: adj.up },
                None => unknown(protocol),
            })
        }
        None => {
            // A session to the peer's address, or on our end's interface
            // (unnumbered).
            let found = ends.iter().find_map(|(report, here, there)| {
                let bgp = &report.as_ref()?.bgp;
                match there.address {
                    Some(peer) => bgp.iter().find(|n| n.address == peer),
                    None => bgp.iter().find(|n| n.interface.as_ref() == Some(&here.interface)),
                }
            });
            Some(match found {
                Some(n) => Session { protocol: "bgp", state: n.state.clone(), up: n.established },
                None => unknown("bgp"),
            })
        }
    }
}

fn unknown(protocol: &'static str) -> Session {
    Session { protocol, state: "unknown".into(), up: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sflow_watch::decode::{Datagram, IfSample, Sample};
    use crate::sflow_watch::lab_links::LabLinks;
    use crate::sflow_watch::view::Watch;
    use lab_spec::health::{BgpNeighborState, ReconcileState};
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    fn fabric() -> CompiledLab {
        example("fabric.toml")
    }

    fn example(name: &str) -> CompiledLab {
        let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        crate::lab_file::LabFile::load(std::path::Path::new(&path))
            .expect("example loads")
            .compile_with("t".into())
    }

    fn report(node: &str, version: Option<&str>) -> HealthReport {
        let json = serde_json::json!({
            "schema": 2, "node": node, "lab": "fabric", "role": "leaf", "agent_version": "t",
            "board": {}, "system": {"hostname": node, "uptime_seconds": 1, "load": [0.0, 0.0, 0.0],
                "memory_total_bytes": 1, "memory_available_bytes": 1, "disk_total_bytes": 1,
                "disk_available_bytes": 1},
            "bgp": [], "vxlan": [], "sflow": {"enabled": true, "collectors": [], "datagrams_sent": 0,
                "counter_samples_sent": 0, "flow_samples_sent": 0, "send_errors": 0, "sampling_rate": 0},
            "reconcile": {"config_version": version, "last_run_unix": 1, "ok": true, "changes": 0,
                "passes": 1, "errors": []},
            "healthy": true, "problems": []
        });
        serde_json::from_value(json).expect("a health report")
    }

    fn judged(lab: &CompiledLab, node: &str, r: Result<HealthReport, ()>) -> NodeStatus {
        let config = lab.configs[node].clone();
        let api = config.health.listen;
        let answer = r.map_err(|_| crate::fleet_client::ClientError::Unreachable {
            addr: api,
            reason: "connection refused".into(),
        });
        crate::status::judge(&config, api, answer)
    }

    #[test]
    fn conditions_follow_the_health_answers() {
        let lab = fabric();
        let version = lab.configs["leaf1"].version.clone();
        let healthy = judged(&lab, "leaf1", Ok(report("leaf1", Some(&version))));
        assert_eq!(Condition::of(&healthy), Condition::Healthy);
        let waiting = judged(&lab, "leaf1", Ok(report("leaf1", None)));
        assert_eq!(Condition::of(&waiting), Condition::Unprovisioned);
        let other = judged(&lab, "leaf1", Ok(report("leaf1", Some("old"))));
        assert_eq!(Condition::of(&other), Condition::Degraded);
        let mut sick = report("leaf1", Some(&version));
        sick.healthy = false;
        sick.problems = vec!["BGP 10.1.0.0 is Active".into()];
        assert_eq!(Condition::of(&judged(&lab, "leaf1", Ok(sick))), Condition::Degraded);
        let gone = judged(&lab, "leaf1", Err(()));
        assert_eq!(Condition::of(&gone), Condition::Unreachable);
    }

    #[test]
    fn topology_is_tiered_with_every_link_and_segment() {
        let lab = fabric();
        let t = Topology::new(&lab, "boards".into());
        assert_eq!(t.tiers.len(), 3);
        assert_eq!(t.links.len(), 12);
        assert!(t.links.iter().any(|l| l.id == "spine1:eth1|leaf1:eth1"), "{:?}", t.links);
        let blue = t.segments.iter().find(|s| s.name == "blue").expect("blue");
        assert_eq!(
            (blue.vni, blue.leaves.clone(), blue.hosts.clone()),
            (
                10010,
                vec!["leaf1".to_string(), "leaf3".to_string()],
                vec!["h1".to_string(), "h2".to_string()]
            )
        );
    }

    #[test]
    fn irb_leaves_are_not_counted_as_hosts() {
        let t = Topology::new(&example("two-leaf-boards.toml"), "boards".into());
        let blue = &t.segments[0];
        assert_eq!(blue.leaves, ["leaf1", "leaf2"]);
        assert!(blue.hosts.is_empty(), "{:?}", blue.hosts);
    }

    #[test]
    fn bgp_sessions_and_rates_land_on_their_links() {
        let lab = fabric();
        let t = Topology::new(&lab, "boards".into());
        let link = t.links.iter().position(|l| l.id == "spine1:eth1|leaf1:eth1").expect("link");
        let spine_side = t.links[link].a.address.expect("spine1:eth1 address");
        let version = lab.configs["leaf1"].version.clone();
        let mut leaf1 = report("leaf1", Some(&version));
        leaf1.bgp = vec![BgpNeighborState {
            address: spine_side,
            remote_asn: 65000,
            description: "spine1".into(),
            state: "Active".into(),
            established: false,
            uptime_seconds: None,
            prefixes_received: None,
            interface: None,
        }];
        leaf1.reconcile = ReconcileState { config_version: Some(version), ..leaf1.reconcile };
        leaf1.healthy = false;
        leaf1.problems = vec![format!("BGP neighbour {spine_side} (spine1) is Active")];
        let health = BTreeMap::from([("leaf1".to_string(), judged(&lab, "leaf1", Ok(leaf1)))]);

        // Two counter samples 2 s apart from leaf1's agent (end b): eth1
        // sent 2 Mbit/s, so b to a.
        let mut watch = Watch::for_lab(LabLinks::new(&lab.plan));
        let agent = IpAddr::V4(lab.plan.nodes["leaf1"].sflow_agent());
        let now = Instant::now();
        for (seq, uptime, out) in [(1, 1_000, 0u64), (2, 3_000, 500_000)] {
            let eth1 = IfSample {
                if_index: 3,
                name: Some("eth1".into()),
                speed: 100_000_000,
                out_octets: out,
                oper_up: true,
                ..IfSample::default()
            };
            let samples = vec![Sample::Interface(eth1)];
            watch.ingest(
                Datagram { agent, sub_agent: 0, sequence: seq, uptime_ms: uptime, samples },
                now,
            );
        }
        let live = live(&t, &health, &watch.snapshot(10, now), "0.0.0.0:6343");
        let l = &live.links[link];
        assert_eq!(l.session, Some(Session { protocol: "bgp", state: "Active".into(), up: false }));
        assert_eq!((l.ab_bps, l.ba_bps), (Some(0.0), Some(2_000_000.0)));
        assert_eq!(l.utilization, Some(0.02));
        assert_eq!(live.nodes["leaf1"].condition, Condition::Degraded);
        assert_eq!(live.nodes["spine1"].condition, Condition::Unknown);
        // Access links carry no session.
        let access = live.links.iter().find(|l| l.id.starts_with("h1:eth1")).expect("h1 link");
        assert_eq!(access.session, None);

        // Too old: no rates.
        let later = now + Duration::from_secs_f64(t.stale_after() + 1.0);
        let live = super::live(&t, &health, &watch.snapshot(10, later), "0.0.0.0:6343");
        assert_eq!(live.links[link].ab_bps, None);
    }

    #[test]
    fn igp_adjacencies_land_on_their_links_by_interface() {
        let lab = example("fabric-ospf.toml");
        let t = Topology::new(&lab, "boards".into());
        let link = t.links.iter().position(|l| l.id == "spine1:eth1|leaf1:eth1").expect("link");
        let version = lab.configs["leaf1"].version.clone();
        let mut leaf1 = report("leaf1", Some(&version));
        let adjacency = |interface: &str, state: &str| lab_spec::health::IgpAdjacencyState {
            interface: interface.into(),
            router_id: std::net::Ipv4Addr::new(10, 0, 0, 1),
            description: "spine".into(),
            state: state.into(),
            up: state == "Full",
        };
        // Only b's report (leaf1) is there: its eth1 is this link's end.
        leaf1.ospf = vec![adjacency("eth2", "Full"), adjacency("eth1", "Init")];
        let health = BTreeMap::from([("leaf1".to_string(), judged(&lab, "leaf1", Ok(leaf1)))]);
        let empty = Watch::for_lab(LabLinks::new(&lab.plan)).snapshot(10, Instant::now());
        let live = live(&t, &health, &empty, "0.0.0.0:6343");
        let want = Session { protocol: "ospf", state: "Init".into(), up: false };
        assert_eq!(live.links[link].session, Some(want));
        // A link neither end reports on is unknown, not down.
        let other = t.links.iter().position(|l| l.id == "spine2:eth4|leaf4:eth2").expect("link");
        assert_eq!(live.links[other].session, Some(unknown("ospf")));
    }
}
