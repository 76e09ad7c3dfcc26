//! Putting a HealthReport together, and the verdict on it.

use lab_spec::health::{
    BgpNeighborState, Board, HEALTH_SCHEMA, IgpAdjacencyState, ReconcileState, SflowState, System,
    VniState,
};
use lab_spec::{HealthReport, NodeConfig};

/// Everything a report is made of, from wherever the agent keeps it.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    pub config: Option<NodeConfig>,
    pub board: Board,
    pub system: System,
    pub bgp: Vec<BgpNeighborState>,
    pub ospf: Vec<IgpAdjacencyState>,
    pub isis: Vec<IgpAdjacencyState>,
    pub ospf6: Vec<IgpAdjacencyState>,
    pub vxlan: Vec<VniState>,
    pub sflow: SflowState,
    pub reconcile: ReconcileState,
    pub frr_hand_changes: Vec<String>,
    pub impairments: Vec<lab_spec::health::PortImpairment>,
    /// Problems the parts above cannot show (e.g. a broken boot config).
    pub problems: Vec<String>,
}

/// The report, with `healthy` and one line per problem: a neighbour not
/// Established, a VNI not ok, a failed reconcile, under-voltage.
pub fn assemble(parts: Parts) -> HealthReport {
    let mut problems = parts.problems;
    if parts.config.is_none() {
        problems.push("not provisioned: waiting for a config".into());
    }
    for n in parts.bgp.iter().filter(|n| !n.established) {
        problems.push(format!("BGP neighbour {} ({}) is {}", n.address, n.description, n.state));
    }
    for (protocol, adjacencies) in [
        ("OSPF neighbour", &parts.ospf),
        ("IS-IS adjacency", &parts.isis),
        ("OSPFv3 neighbour", &parts.ospf6),
    ] {
        for a in adjacencies.iter().filter(|a| !a.up) {
            problems.push(format!(
                "{protocol} {} on {} ({}) is {}",
                a.router_id, a.interface, a.description, a.state
            ));
        }
    }
    for v in parts.vxlan.iter().filter(|v| !v.ok) {
        let why = if v.device_up { "flood list differs from the config" } else { "device down" };
        problems.push(format!("VNI {} ({}): {why}", v.vni, v.device));
    }
    if parts.config.is_some() && !parts.reconcile.ok {
        let errors = if parts.reconcile.errors.is_empty() {
            "no pass finished yet".to_string()
        } else {
            parts.reconcile.errors.join("; ")
        };
        problems.push(format!("last reconcile failed: {errors}"));
    }
    let sflow = &parts.sflow;
    if sflow.enabled && sflow.sampling_rate > 0 && sflow.sampling_interfaces.is_empty() {
        problems.push(format!(
            "sFlow packet sampling 1-in-{} is not in force on any interface",
            sflow.sampling_rate
        ));
    }
    if parts.board.under_voltage == Some(true) {
        problems.push("under-voltage: the power supply is too weak".into());
    }
    HealthReport {
        schema: HEALTH_SCHEMA,
        node: parts.config.as_ref().map(|c| c.hostname.clone()),
        lab: parts.config.as_ref().map(|c| c.lab.clone()),
        role: parts.config.as_ref().map(|c| c.role),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        board: parts.board,
        system: parts.system,
        bgp: parts.bgp,
        ospf: parts.ospf,
        isis: parts.isis,
        ospf6: parts.ospf6,
        vxlan: parts.vxlan,
        sflow: parts.sflow,
        reconcile: parts.reconcile,
        frr_hand_changes: parts.frr_hand_changes,
        impairments: parts.impairments,
        healthy: problems.is_empty(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// r1, with nothing configured but its management address.
    fn config() -> NodeConfig {
        lab_spec::fixtures::bare("r1", "192.168.200.11/24")
    }

    #[test]
    fn unprovisioned_is_not_healthy() {
        let report = assemble(Parts::default());
        assert!(!report.healthy);
        assert_eq!(report.node, None);
        assert_eq!(report.problems, vec!["not provisioned: waiting for a config"]);
    }

    #[test]
    fn every_problem_is_named() {
        let parts = Parts {
            config: Some(config()),
            bgp: vec![BgpNeighborState {
                address: Ipv4Addr::new(10, 1, 0, 1),
                remote_asn: 200,
                description: "r2".into(),
                state: "Active".into(),
                established: false,
                uptime_seconds: None,
                prefixes_received: None,
                interface: None,
            }],
            reconcile: ReconcileState {
                ok: false,
                errors: vec!["frr: reload failed".into()],
                ..Default::default()
            },
            board: Board { under_voltage: Some(true), ..Default::default() },
            sflow: SflowState { enabled: true, sampling_rate: 100, ..Default::default() },
            ..Default::default()
        };
        let report = assemble(parts);
        assert!(!report.healthy);
        assert_eq!(report.node.as_deref(), Some("r1"));
        assert_eq!(
            report.problems,
            vec![
                "BGP neighbour 10.1.0.1 (r2) is Active",
                "last reconcile failed: frr: reload failed",
                "sFlow packet sampling 1-in-100 is not in force on any interface",
                "under-voltage: the power supply is too weak",
            ]
        );
    }

    #[test]
    fn all_good_is_healthy() {
        let parts = Parts {
            config: Some(config()),
            reconcile: ReconcileState { ok: true, ..Default::default() },
            sflow: SflowState {
                enabled: true,
                sampling_rate: 100,
                sampling_interfaces: vec!["eth1".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let report = assemble(parts);
        assert!(report.healthy, "{:?}", report.problems);
    }
}
