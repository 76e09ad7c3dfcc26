//! Is the fleet converged? Each node as its agent reports it
//! (`GET /v1/health`, the report `pi-lab status` reads): the lab watches
//! its nodes through the agents, never by running vtysh or `ip` itself, so
//! watching costs the same however often it looks.

use std::net::SocketAddr;

use lab_spec::NodeConfig;
use serde::Serialize;

use crate::agent_client::AgentClient;
use crate::lab_host::names;
use crate::status::{self, NodeStatus};
use crate::table::Table;

/// One node as its agent reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub node: String,
    pub role: String,
    pub netns: String,
    pub loopback: Option<String>,
    pub mgmt: String,
    pub bgp_up: usize,
    pub bgp_total: usize,
    /// `ospf` or `isis` with an IGP underlay.
    pub igp: Option<String>,
    /// Expected OSPF neighbours (Full) or IS-IS adjacencies (Up) that are up.
    pub igp_up: usize,
    pub igp_total: usize,
    /// Configured VNIs the agent reports in order.
    pub vnis_up: Vec<u32>,
    pub vnis: Vec<u32>,
    /// The agent calls itself healthy and runs the lab's config, as
    /// `pi-lab status` judges it: every session, adjacency and VNI up, its
    /// last pass clean, sFlow sampling in force.
    pub healthy: bool,
    /// What is wrong while it is not (the agent's first problem, or why it
    /// did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl NodeState {
    /// `config`: the node's config as its agent runs it; `status`: what
    /// `pi-lab status` made of its answer.
    pub fn new(lab: &str, config: &NodeConfig, status: &NodeStatus) -> NodeState {
        let vnis: Vec<u32> = config.vxlan.iter().map(|s| s.vni).collect();
        let report = status.report.as_ref();
        let up = |f: &dyn Fn(&lab_spec::HealthReport) -> usize| report.map_or(0, f);
        let igp_up = up(&|r| r.ospf.iter().chain(&r.isis).filter(|a| a.up).count());
        NodeState {
            node: config.hostname.clone(),
            role: config.role.to_string(),
            netns: names::netns(lab, &config.hostname),
            loopback: config.loopback.map(|a| a.to_string()),
            mgmt: config.management.address.to_string(),
            bgp_up: up(&|r| r.bgp.iter().filter(|n| n.established).count()),
            bgp_total: config.bgp.as_ref().map_or(0, |b| b.neighbors.len()),
            igp: config.igp.as_ref().map(|i| i.protocol.to_string()),
            igp_up,
            igp_total: config.igp.as_ref().map_or(0, |i| i.neighbors.len()),
            vnis_up: vnis
                .iter()
                .copied()
                .filter(|v| report.is_some_and(|r| r.vxlan.iter().any(|s| s.vni == *v && s.ok)))
                .collect(),
            vnis,
            healthy: status.healthy,
            problem: (!status.healthy).then(|| status.problems.first().cloned()).flatten(),
        }
    }

    pub fn converged(&self) -> bool {
        self.healthy
    }

    /// What is still missing, for progress lines and timeouts.
    pub fn waiting_for(&self) -> String {
        let mut parts = Vec::new();
        if self.igp_up < self.igp_total {
            let protocol = self.igp.as_deref().unwrap_or("IGP").to_uppercase();
            parts.push(format!("{protocol} {}/{}", self.igp_up, self.igp_total));
        }
        if self.bgp_up < self.bgp_total {
            parts.push(format!("BGP {}/{}", self.bgp_up, self.bgp_total));
        }
        if self.vnis_up.len() < self.vnis.len() {
            parts.push(format!("VNIs {}/{}", self.vnis_up.len(), self.vnis.len()));
        }
        if parts.is_empty() && !self.healthy {
            let problem = self.problem.as_deref().unwrap_or("not healthy");
            parts.push(format!("agent: {problem}"));
        }
        parts.join(", ")
    }
}

/// Ask every node's agent at once, as `pi-lab status` does. `configs`:
/// each node's config as its agent runs it.
pub fn observe_all(lab: &str, http: &AgentClient, configs: &[NodeConfig]) -> Vec<NodeState> {
    let apis: Vec<SocketAddr> = configs.iter().map(|c| c.health.listen).collect();
    http.health_all(&apis)
        .into_iter()
        .zip(configs)
        .zip(apis)
        .map(|((answer, config), api)| {
            NodeState::new(lab, config, &status::judge(config, api, answer))
        })
        .collect()
}

/// The state table people read after `lab up`.
pub fn table(states: &[NodeState]) -> String {
    let rows = states.iter().map(|s| {
        let vnis = if s.vnis.is_empty() {
            "-".to_string()
        } else {
            let list: Vec<String> = s
                .vnis
                .iter()
                .map(|v| if s.vnis_up.contains(v) { v.to_string() } else { format!("{v}(down)") })
                .collect();
            list.join(",")
        };
        let bgp =
            if s.bgp_total == 0 { "-".into() } else { format!("{}/{}", s.bgp_up, s.bgp_total) };
        let igp = match &s.igp {
            Some(p) => format!("{p} {}/{}", s.igp_up, s.igp_total),
            None => "-".into(),
        };
        [
            s.node.clone(),
            s.role.clone(),
            s.loopback.clone().unwrap_or_else(|| "-".into()),
            s.mgmt.clone(),
            igp,
            bgp,
            vnis,
        ]
    });
    Table::new(["NODE", "ROLE", "LOOPBACK", "MGMT", "IGP", "BGP", "VNIS"])
        .with_rows(rows)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(node: &str, bgp: (usize, usize), vnis: (&[u32], &[u32])) -> NodeState {
        NodeState {
            node: node.into(),
            role: "leaf".into(),
            netns: format!("lab-{node}"),
            loopback: Some("10.0.0.3".into()),
            mgmt: "192.168.200.13/24".into(),
            bgp_up: bgp.0,
            bgp_total: bgp.1,
            igp: None,
            igp_up: 0,
            igp_total: 0,
            vnis_up: vnis.0.to_vec(),
            vnis: vnis.1.to_vec(),
            healthy: bgp.0 == bgp.1 && vnis.0.len() == vnis.1.len(),
            problem: None,
        }
    }

    #[test]
    fn converged_needs_every_session_and_every_vni() {
        assert!(state("leaf1", (2, 2), (&[10010], &[10010])).converged());
        assert!(!state("leaf1", (1, 2), (&[10010], &[10010])).converged());
        let half = state("leaf1", (2, 2), (&[], &[10010]));
        assert!(!half.converged());
        assert_eq!(half.waiting_for(), "VNIs 0/1");
    }

    #[test]
    fn a_node_converges_when_its_agent_calls_itself_healthy() {
        let mut s = state("r1", (1, 1), (&[], &[]));
        s.healthy = false;
        assert!(!s.converged());
        assert_eq!(s.waiting_for(), "agent: not healthy");
        s.problem = Some("last reconcile failed: no pass finished yet".into());
        assert_eq!(s.waiting_for(), "agent: last reconcile failed: no pass finished yet");
        // What is down comes first.
        s.bgp_up = 0;
        assert_eq!(s.waiting_for(), "BGP 0/1");
    }

    #[test]
    fn table_lines_up_columns() {
        let text = table(&[state("leaf1", (2, 2), (&[10010], &[10010, 10020]))]);
        assert_eq!(
            text,
            "NODE   ROLE  LOOPBACK  MGMT               IGP  BGP  VNIS\n\
             leaf1  leaf  10.0.0.3  192.168.200.13/24  -    2/2  10010,10020(down)\n"
        );
    }
}
