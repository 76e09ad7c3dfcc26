//! The checks, derived from the lab: what should be true, compared with
//! what each agent reports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use lab_spec::HealthReport;
use lab_spec::node_config::{Flooding, IgpProtocol};
use serde::Serialize;

use crate::fleet_client::FleetClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bgp,
    Ospf,
    Isis,
    /// OSPFv3 of a dual-stack OSPF underlay.
    Ospf6,
    Vxlan,
    Reachability,
    Sflow,
    /// A test of the lab's own (`[[validate]]`).
    Test,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Bgp => "bgp",
            Kind::Ospf => "ospf",
            Kind::Isis => "isis",
            Kind::Ospf6 => "ospf6",
            Kind::Vxlan => "vxlan",
            Kind::Test => "test",
            Kind::Reachability => "reachability",
            Kind::Sflow => "sflow",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Failed, but the test says a failure is only a warning.
    Warn,
    Skip,
}

/// One check: what it looks at, and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub kind: Kind,
    /// The node it runs on or is about (what `--node` selects).
    pub node: String,
    /// Stable and readable: `leaf1 -> spine1 (10.1.0.0)`.
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// A fault test's measured times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<super::faults::Recovery>,
}

impl Check {
    pub fn new(kind: Kind, node: &str, name: String, ok: bool, detail: String) -> Self {
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        Check { kind, node: node.to_string(), name, verdict, detail, recovery: None }
    }
}

/// What the agents answered, by node; `Err` is why one did not.
pub type Reports = BTreeMap<String, Result<HealthReport, String>>;

/// Every BGP neighbour of every node's config is Established.
pub fn bgp(fleet: &FleetClient, reports: &Reports) -> Vec<Check> {
    let mut checks = Vec::new();
    for (node, config) in &fleet.nodes {
        let Some(bgp) = &config.bgp else { continue };
        for n in &bgp.neighbors {
            let name = match n.unnumbered {
                true => format!("{node} -> {} on {} ({})", n.description, n.interface, n.address),
                false => format!("{node} -> {} ({})", n.description, n.address),
            };
            let (ok, detail) = match reports.get(node) {
                Some(Ok(r)) => match r.bgp.iter().find(|s| s.is_of(n)) {
                    Some(s) if s.established => (true, "Established".to_string()),
                    Some(s) => (false, format!("{} (want Established)", s.state)),
                    None => (false, "the agent does not report this neighbour".into()),
                },
                Some(Err(e)) => (false, e.clone()),
                None => (false, "no answer".into()),
            };
            checks.push(Check::new(Kind::Bgp, node, name, ok, detail));
        }
    }
    checks
}

/// Every OSPF neighbour (Full) and IS-IS adjacency (Up) of an IGP
/// underlay, and OSPFv3 neighbour of a dual-stack one, as each agent
/// reports it.
pub fn igp(fleet: &FleetClient, reports: &Reports) -> Vec<Check> {
    let mut checks = Vec::new();
    for (node, config) in &fleet.nodes {
        let Some(igp) = &config.igp else { continue };
        let mut kinds = match igp.protocol {
            IgpProtocol::Ospf => vec![(Kind::Ospf, "Full")],
            IgpProtocol::Isis => vec![(Kind::Isis, "Up")],
        };
        if config.runs_ospf6() {
            kinds.push((Kind::Ospf6, "Full"));
        }
        for (kind, want) in kinds {
            checks.extend(adjacency_checks(node, igp, kind, want, reports.get(node)));
        }
    }
    checks
}

/// The adjacencies of one protocol in a health report.
fn reported(r: &HealthReport, kind: Kind) -> &[lab_spec::health::IgpAdjacencyState] {
    match kind {
        Kind::Ospf => &r.ospf,
        Kind::Ospf6 => &r.ospf6,
        _ => &r.isis,
    }
}

/// One check per adjacency `igp` expects, of one protocol.
fn adjacency_checks(
    node: &str,
    igp: &lab_spec::node_config::Igp,
    kind: Kind,
    want: &str,
    report: Option<&Result<HealthReport, String>>,
) -> Vec<Check> {
    igp.neighbors
        .iter()
        .map(|n| {
            let name = format!("{node} -> {} on {} ({})", n.description, n.interface, n.router_id);
            let (ok, detail) = match report {
                Some(Ok(r)) => {
                    match reported(r, kind).iter().find(|a| a.interface == n.interface) {
                        Some(a) if a.up => (true, a.state.clone()),
                        Some(a) => (false, format!("{} (want {want})", a.state)),
                        None => (false, "the agent does not report this adjacency".into()),
                    }
                }
                Some(Err(e)) => (false, e.clone()),
                None => (false, "no answer".into()),
            };
            Check::new(kind, node, name, ok, detail)
        })
        .collect()
}

/// Every VNI of every leaf floods to exactly the other VTEPs of its
/// segment: the static list the lab compiles to, or for EVPN the VTEPs of
/// the segment's other leaves, which FRR must have learnt.
pub fn vxlan(fleet: &FleetClient, reports: &Reports) -> Vec<Check> {
    let mut checks = Vec::new();
    for (node, config) in &fleet.nodes {
        for segment in &config.vxlan {
            let expected: BTreeSet<Ipv4Addr> = match &segment.flooding {
                Flooding::Static { remote_vteps } => remote_vteps.iter().copied().collect(),
                Flooding::Evpn => fleet
                    .segments
                    .iter()
                    .find(|s| s.vni == segment.vni)
                    .map(|s| {
                        s.vteps.values().copied().filter(|v| *v != segment.local_vtep).collect()
                    })
                    .unwrap_or_default(),
            };
            let mode = if matches!(segment.flooding, Flooding::Evpn) { "evpn" } else { "static" };
            let name = format!(
                "{node} VNI {} ({}, {mode}) floods to {}",
                segment.vni,
                segment.name,
                list(&expected)
            );
            let (ok, detail) = match reports.get(node) {
                Some(Ok(r)) => match r.vxlan.iter().find(|v| v.vni == segment.vni) {
                    None => (false, "the agent reports no such VNI".into()),
                    Some(v) if !v.device_up => (false, format!("{} is down", v.device)),
                    Some(v) => {
                        let actual: BTreeSet<Ipv4Addr> = v.remote_vteps.iter().copied().collect();
                        if actual == expected {
                            (true, format!("flood list {}", list(&actual)))
                        } else {
                            let missing: BTreeSet<_> =
                                expected.difference(&actual).copied().collect();
                            let extra: BTreeSet<_> =
                                actual.difference(&expected).copied().collect();
                            (
                                false,
                                format!(
                                    "flood list {}; missing {}, unexpected {}",
                                    list(&actual),
                                    list(&missing),
                                    list(&extra)
                                ),
                            )
                        }
                    }
                },
                Some(Err(e)) => (false, e.clone()),
                None => (false, "no answer".into()),
            };
            checks.push(Check::new(Kind::Vxlan, node, name, ok, detail));
        }
    }
    checks
}

fn list(set: &BTreeSet<Ipv4Addr>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// A ping to run: from a member of a segment (a host, or an irb leaf) to
/// another member's address in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub segment: String,
    pub from_node: String,
    /// The sender's own address in the segment: the ping goes from it, so
    /// a leaf's echo leaves from its bridge, not from another address.
    pub source: IpAddr,
    pub to: String,
    pub address: IpAddr,
}

impl Ping {
    pub fn name(&self) -> String {
        format!("{}: {} -> {} ({})", self.segment, self.from_node, self.to, self.address)
    }
}

/// Every ordered pair of members of a segment on different nodes: its
/// hosts, and its leaves when it is irb (the plan lists both); in IPv4,
/// then in IPv6 when the segment is dual-stack.
pub fn pings(fleet: &FleetClient) -> Vec<Ping> {
    let mut out = Vec::new();
    for segment in &fleet.segments {
        let v4 = segment.hosts.iter().map(|(k, a)| (k, IpAddr::V4(a.addr())));
        let v6 = segment.hosts6.iter().map(|(k, a)| (k, IpAddr::V6(a.addr())));
        for family in [v4.collect::<Vec<_>>(), v6.collect()] {
            out.extend(pairs(&segment.name, &family));
        }
    }
    out
}

/// A ping from each member to each member on another node.
fn pairs(segment: &str, members: &[(&String, IpAddr)]) -> Vec<Ping> {
    let node = |s: &str| s.split(':').next().unwrap_or(s).to_string();
    let mut out = Vec::new();
    for (from, source) in members {
        for (to, address) in members.iter().filter(|(to, _)| node(to) != node(from)) {
            out.push(Ping {
                segment: segment.to_string(),
                from_node: node(from),
                source: *source,
                to: to.to_string(),
                address: *address,
            });
        }
    }
    out
}

/// Which node an sFlow agent address belongs to.
pub fn sflow_agents(fleet: &FleetClient) -> BTreeMap<IpAddr, String> {
    fleet
        .nodes
        .iter()
        .filter(|(_, c)| !c.sflow.collectors.is_empty())
        .map(|(n, c)| (c.sflow.agent_address, n.clone()))
        .collect()
}

/// sFlow from every exporting node arrived (`heard`: datagrams per agent
/// address). Without a collector socket, `fallback` is the agents' own
/// count of datagrams sent during the window.
pub fn sflow(
    fleet: &FleetClient,
    heard: Option<&BTreeMap<IpAddr, u64>>,
    fallback: &BTreeMap<String, u64>,
    why_no_socket: Option<&str>,
) -> Vec<Check> {
    let mut agents: Vec<(IpAddr, String)> = sflow_agents(fleet).into_iter().collect();
    agents.sort_by(|a, b| a.1.cmp(&b.1));
    agents
        .into_iter()
        .map(|(agent, node)| {
            let name = format!("{node} exports sFlow (agent {agent})");
            match heard {
                Some(heard) => {
                    let n = heard.get(&agent).copied().unwrap_or(0);
                    Check::new(Kind::Sflow, &node, name, n > 0, format!("{n} datagrams arrived"))
                }
                None => {
                    let n = fallback.get(&node).copied().unwrap_or(0);
                    let why = why_no_socket.unwrap_or("no collector socket");
                    Check::new(
                        Kind::Sflow,
                        &node,
                        name,
                        n > 0,
                        format!("{why}; the agent counted {n} datagrams sent"),
                    )
                }
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use lab_spec::health::{BgpNeighborState, VniState};
    use lab_spec::node_config::Neighbor;

    use super::*;
    use lab_spec::lab::{FloodingMode, SegmentMode};
    use lab_spec::plan::SegmentPlan;

    use crate::fleet_client::tests::two_node_client;

    pub(crate) fn report() -> HealthReport {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "node": "leaf1", "lab": "t5", "role": "leaf", "agent_version": "0",
            "board": {}, "system": {"hostname": "leaf1", "uptime_seconds": 1, "load": [0.0, 0.0, 0.0],
              "memory_total_bytes": 1, "memory_available_bytes": 1, "disk_total_bytes": 1, "disk_available_bytes": 1},
            "bgp": [], "vxlan": [], "sflow": {"enabled": false, "collectors": [], "datagrams_sent": 0,
              "counter_samples_sent": 0, "flow_samples_sent": 0, "send_errors": 0, "sampling_rate": 0},
            "reconcile": {"config_version": null, "last_run_age_seconds": null, "ok": true, "changes": 0, "passes": 0, "errors": []},
            "healthy": true
        }))
        .unwrap()
    }

    fn neighbor_state(address: Ipv4Addr, state: &str) -> BgpNeighborState {
        BgpNeighborState {
            address,
            remote_asn: 65000,
            description: "spine1".into(),
            state: state.into(),
            established: state == "Established",
            uptime_seconds: None,
            prefixes_received: None,
            interface: None,
        }
    }

    #[test]
    fn bgp_checks_follow_the_config_not_the_report() {
        let mut fleet = two_node_client();
        let leaf = fleet.nodes.get_mut("leaf1").unwrap();
        for (i, addr) in [[10, 1, 0, 1], [10, 1, 0, 3]].into_iter().enumerate() {
            leaf.bgp.as_mut().unwrap().neighbors.push(Neighbor {
                address: addr.into(),
                remote_asn: 65000,
                interface: format!("eth{}", i + 1),
                description: format!("spine{}", i + 1),
                route_reflector_client: false,
                unnumbered: false,
            });
        }
        let mut r = report();
        r.bgp = vec![
            neighbor_state([10, 1, 0, 1].into(), "Established"),
            neighbor_state([10, 1, 0, 3].into(), "Active"),
        ];
        let mut reports = Reports::new();
        reports.insert("leaf1".into(), Ok(r));
        reports.insert("spine1".into(), Err("unreachable".into()));
        let checks = bgp(&fleet, &reports);
        let verdicts: Vec<_> = checks.iter().map(|c| (c.name.as_str(), c.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("leaf1 -> spine1 (10.1.0.1)", Verdict::Pass),
                ("leaf1 -> spine2 (10.1.0.3)", Verdict::Fail)
            ]
        );
        assert_eq!(checks[1].detail, "Active (want Established)");
    }

    fn vni_state(vni: u32, remote: &[[u8; 4]]) -> VniState {
        VniState {
            vni,
            device: format!("vxlan{vni}"),
            device_up: true,
            bridge: format!("br{vni}"),
            flooding: "static".into(),
            remote_vteps: remote.iter().map(|a| Ipv4Addr::from(*a)).collect(),
            expected_vteps: vec![],
            ok: true,
        }
    }

    #[test]
    fn static_flood_lists_must_match_the_lab() {
        let fleet = two_node_client(); // leaf1: VNI 10010 static to 10.0.0.9
        let mut reports = Reports::new();
        let mut r = report();
        r.vxlan = vec![vni_state(10010, &[[10, 0, 0, 9]])];
        reports.insert("leaf1".into(), Ok(r.clone()));
        assert_eq!(vxlan(&fleet, &reports)[0].verdict, Verdict::Pass);
        // The agent calling itself ok does not matter: the lab decides.
        r.vxlan = vec![vni_state(10010, &[[10, 0, 0, 9], [10, 0, 0, 7]])];
        reports.insert("leaf1".into(), Ok(r));
        let check = &vxlan(&fleet, &reports)[0];
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.detail.contains("unexpected 10.0.0.7"), "{}", check.detail);
    }

    #[test]
    fn evpn_flood_lists_are_the_other_leaves_of_the_segment() {
        let mut fleet = two_node_client();
        let leaf = fleet.nodes.get_mut("leaf1").unwrap();
        leaf.vxlan[0].flooding = Flooding::Evpn;
        fleet.segments.push(SegmentPlan {
            name: "blue".into(),
            subnet6: None,
            hosts6: BTreeMap::new(),
            vni: 10010,
            flooding: FloodingMode::Evpn,
            mode: SegmentMode::Bridge,
            subnet: "172.16.10.0/24".parse().unwrap(),
            access: Vec::new(),
            vteps: [
                ("leaf1".to_string(), Ipv4Addr::new(10, 0, 0, 11)),
                ("leaf3".to_string(), Ipv4Addr::new(10, 0, 0, 13)),
            ]
            .into_iter()
            .collect(),
            hosts: BTreeMap::new(),
        });
        let mut r = report();
        r.vxlan = vec![vni_state(10010, &[])];
        let mut reports = Reports::new();
        reports.insert("leaf1".into(), Ok(r.clone()));
        let check = &vxlan(&fleet, &reports)[0];
        assert_eq!(check.verdict, Verdict::Fail, "nothing learnt yet");
        assert!(check.detail.contains("missing 10.0.0.13"), "{}", check.detail);
        r.vxlan = vec![vni_state(10010, &[[10, 0, 0, 13]])];
        reports.insert("leaf1".into(), Ok(r));
        assert_eq!(vxlan(&fleet, &reports)[0].verdict, Verdict::Pass);
    }

    #[test]
    fn pings_pair_hosts_of_a_segment_across_nodes() {
        let mut fleet = two_node_client();
        fleet.segments.push(SegmentPlan {
            name: "blue".into(),
            subnet6: None,
            hosts6: BTreeMap::new(),
            vni: 10010,
            flooding: FloodingMode::Static,
            mode: SegmentMode::Bridge,
            subnet: "172.16.10.0/24".parse().unwrap(),
            access: Vec::new(),
            vteps: BTreeMap::new(),
            hosts: [
                ("h1:eth1".to_string(), "172.16.10.1/24".parse().unwrap()),
                ("h2:eth1".to_string(), "172.16.10.2/24".parse().unwrap()),
            ]
            .into_iter()
            .collect(),
        });
        let pings = pings(&fleet);
        assert_eq!(pings.len(), 2);
        assert_eq!(pings[0].name(), "blue: h1 -> h2:eth1 (172.16.10.2)");
        assert_eq!(pings[0].source, Ipv4Addr::new(172, 16, 10, 1));
        assert_eq!(pings[1].from_node, "h2");
    }

    #[test]
    fn a_dual_stack_segment_is_pinged_in_both_families() {
        let mut fleet = two_node_client();
        let v4 = |a: &str| a.parse::<ipnet::Ipv4Net>().unwrap();
        let v6 = |a: &str| a.parse::<ipnet::Ipv6Net>().unwrap();
        fleet.segments.push(SegmentPlan {
            name: "blue".into(),
            vni: 10010,
            flooding: FloodingMode::Static,
            mode: SegmentMode::Bridge,
            subnet: v4("172.16.10.0/24"),
            access: Vec::new(),
            vteps: BTreeMap::new(),
            hosts: BTreeMap::from([
                ("h1:eth1".into(), v4("172.16.10.1/24")),
                ("h2:eth1".into(), v4("172.16.10.2/24")),
            ]),
            subnet6: Some(v6("2001:db8:2:a::/64")),
            hosts6: BTreeMap::from([
                ("h1:eth1".into(), v6("2001:db8:2:a::1/64")),
                ("h2:eth1".into(), v6("2001:db8:2:a::2/64")),
            ]),
        });
        let names: Vec<String> = pings(&fleet).iter().map(Ping::name).collect();
        assert_eq!(
            names,
            [
                "blue: h1 -> h2:eth1 (172.16.10.2)",
                "blue: h2 -> h1:eth1 (172.16.10.1)",
                "blue: h1 -> h2:eth1 (2001:db8:2:a::2)",
                "blue: h2 -> h1:eth1 (2001:db8:2:a::1)",
            ]
        );
        let ipv6 = &pings(&fleet)[2];
        assert_eq!(ipv6.source, "2001:db8:2:a::1".parse::<std::net::Ipv6Addr>().unwrap());
    }

    #[test]
    fn pings_pair_irb_leaves_from_their_bridge_addresses() {
        let mut fleet = two_node_client();
        fleet.segments.push(SegmentPlan {
            name: "blue".into(),
            subnet6: None,
            hosts6: BTreeMap::new(),
            vni: 10010,
            flooding: FloodingMode::Static,
            mode: SegmentMode::Irb,
            subnet: "172.16.10.0/24".parse().unwrap(),
            access: Vec::new(),
            vteps: BTreeMap::new(),
            hosts: [
                ("leaf1:br10010".to_string(), "172.16.10.5/24".parse().unwrap()),
                ("leaf2:br10010".to_string(), "172.16.10.9/24".parse().unwrap()),
                ("h1:eth1".to_string(), "172.16.10.1/24".parse().unwrap()),
            ]
            .into_iter()
            .collect(),
        });
        let names: Vec<String> = pings(&fleet).iter().map(Ping::name).collect();
        assert_eq!(names.len(), 6, "every ordered pair: {names:?}");
        assert!(names.contains(&"blue: leaf1 -> leaf2:br10010 (172.16.10.9)".to_string()));
        assert!(names.contains(&"blue: leaf2 -> leaf1:br10010 (172.16.10.5)".to_string()));
        assert!(names.contains(&"blue: h1 -> leaf1:br10010 (172.16.10.5)".to_string()));
        let from_leaf1 = pings(&fleet).into_iter().find(|p| p.from_node == "leaf1").unwrap();
        assert_eq!(from_leaf1.source, Ipv4Addr::new(172, 16, 10, 5));
    }

    #[test]
    fn sflow_checks_use_arrivals_else_agent_counters() {
        let mut fleet = two_node_client();
        fleet.nodes.get_mut("leaf1").unwrap().sflow.collectors =
            vec!["192.168.200.1:6343".parse().unwrap()];
        let agent: IpAddr = "10.0.0.11".parse().unwrap();
        let heard: BTreeMap<IpAddr, u64> = [(agent, 3)].into_iter().collect();
        let checks = sflow(&fleet, Some(&heard), &BTreeMap::new(), None);
        assert_eq!(checks.len(), 1, "spine1 exports nothing");
        assert_eq!(checks[0].verdict, Verdict::Pass);
        let checks = sflow(&fleet, Some(&BTreeMap::new()), &BTreeMap::new(), None);
        assert_eq!(checks[0].verdict, Verdict::Fail);
        let counted: BTreeMap<String, u64> = [("leaf1".to_string(), 2)].into_iter().collect();
        let checks = sflow(&fleet, None, &counted, Some("port 6343 busy"));
        assert_eq!(checks[0].verdict, Verdict::Pass);
        assert!(checks[0].detail.starts_with("port 6343 busy"));
    }
}
