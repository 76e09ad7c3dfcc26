//! Reaching a running lab's agents: where the lab runs ([`RunsOn`], read
//! from the lab's state directory), what config each node's agent should
//! run there, where its management API listens, and how to talk to it
//! ([`AgentClient`]: GET and PUT with timeouts and the lab's token).
//! `provision`, `status`, `validate` and `inventory` all go through a
//! [`FleetClient`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lab_spec::frr_check::FrrCheck;
use lab_spec::frr_hand::FrrRunning;
use lab_spec::plan::SegmentPlan;
use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};

pub use crate::agent_client::{AgentClient, ClientError};
pub use crate::lab_host::RunsOn;

use crate::lab_file::{CompiledLab, LabFileError};

/// The config a node's agent runs where the lab runs, from the one
/// compiled for a board.
pub fn node_config(runs_on: RunsOn, board: &NodeConfig) -> NodeConfig {
    match runs_on {
        RunsOn::Boards => board.clone(),
        RunsOn::VirtualFleet => crate::fleet::fleet_config(board),
        RunsOn::EmulatedBoards => crate::emulated::board_config(board),
    }
}

/// A running lab's agents, and how to reach them.
#[derive(Debug, Clone)]
pub struct FleetClient {
    pub lab: String,
    pub path: PathBuf,
    pub runs_on: RunsOn,
    /// Node name to the config its agent should run where the lab runs.
    pub nodes: BTreeMap<String, NodeConfig>,
    /// The lab's VXLAN segments (VTEPs and hosts), for checks across nodes.
    pub segments: Vec<SegmentPlan>,
    token: String,
    http: AgentClient,
}

impl FleetClient {
    /// The agents of `lab`, wherever its state directory says it runs;
    /// `timeout` bounds every request.
    pub fn open(lab: &CompiledLab, timeout: Duration) -> FleetClient {
        FleetClient::with_runs_on(lab, RunsOn::detect(lab.name()), timeout)
    }

    /// The agents of `lab` running on `runs_on`.
    pub fn with_runs_on(lab: &CompiledLab, runs_on: RunsOn, timeout: Duration) -> FleetClient {
        FleetClient {
            lab: lab.name().to_string(),
            path: lab.path.clone(),
            runs_on,
            nodes: lab.configs.iter().map(|(n, c)| (n.clone(), node_config(runs_on, c))).collect(),
            segments: lab.plan.segments.clone(),
            token: lab.token.clone(),
            http: AgentClient::new(timeout),
        }
    }

    /// The lab's bearer token, which every `PUT` carries.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The HTTP client, for an address the lab does not know (a board
    /// heard announcing itself).
    pub fn http(&self) -> &AgentClient {
        &self.http
    }

    /// The nodes named (all when none are), in name order without repeats.
    pub fn select(&self, names: &[String]) -> Result<Vec<&NodeConfig>, LabFileError> {
        crate::lab_file::select(&self.nodes, names, |node| {
            crate::lab_file::unknown_node(&self.path, &self.lab, self.nodes.keys(), node)
        })
    }

    /// Where `node`'s agent listens.
    pub fn api(&self, node: &NodeConfig) -> SocketAddr {
        self.runs_on.api(node)
    }

    /// The network namespace on this host of `node`, on a virtual fleet.
    pub fn netns(&self, node: &str) -> Option<String> {
        self.runs_on.netns(&self.lab, node)
    }

    /// `GET /v1/health` of `node`.
    pub fn health(&self, node: &NodeConfig) -> Result<HealthReport, ClientError> {
        self.http.health(self.api(node))
    }

    /// `GET /v1/health` of every node at once, in the order given.
    pub fn health_all(&self, nodes: &[&NodeConfig]) -> Vec<Result<HealthReport, ClientError>> {
        let apis: Vec<SocketAddr> = nodes.iter().map(|c| self.api(c)).collect();
        self.http.health_all(&apis)
    }

    /// `GET /v1/frr/running` of `node`: FRR's running config and the lines
    /// changed by hand in it.
    pub fn frr_running(&self, node: &NodeConfig) -> Result<FrrRunning, ClientError> {
        self.http.frr_running(self.api(node), &self.token)
    }

    /// `POST /v1/frr/check` of `text` to `node`: what its FRR refuses.
    pub fn frr_check(&self, node: &NodeConfig, text: &str) -> Result<FrrCheck, ClientError> {
        self.http.frr_check(self.api(node), &self.token, text)
    }

    /// `GET /metrics` of `node`.
    pub fn metrics(&self, node: &NodeConfig) -> Result<String, ClientError> {
        self.http.metrics(self.api(node))
    }

    /// `PUT /v1/config` of `config` to the agent at `to`, with the token:
    /// the agent's verdict, or an error when the answer is not one.
    /// `force`: it replaces the lines changed by hand in FRR.
    pub fn push(
        &self,
        config: &NodeConfig,
        to: SocketAddr,
        force: bool,
    ) -> Result<ConfigAnswer, ClientError> {
        self.http.push(to, &self.token, config, force)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use lab_spec::fixtures;

    use super::*;

    /// A compiled node of lab `t5`: `role` ("leaf", "spine", "router") as
    /// `asn`, no links, addresses ending in `octet`, and a VTEP of segment
    /// `vni` (blue, on eth3, static flooding to 10.0.0.9) if given.
    pub(crate) fn node(
        name: &str,
        role: &str,
        asn: u32,
        octet: u8,
        vni: Option<u32>,
    ) -> NodeConfig {
        let loopback = format!("10.0.0.{octet}");
        let mut cfg = fixtures::router(name, &format!("192.168.200.{octet}/24"), &loopback, asn);
        cfg.lab = "t5".into();
        cfg.role = serde_json::from_value(serde_json::json!(role)).expect("a role");
        cfg.auth.token_sha256 = "00".repeat(32);
        if let Some(bgp) = cfg.bgp.as_mut() {
            bgp.networks.clear();
        }
        if let Some(vni) = vni {
            let flooding = fixtures::static_flooding(&["10.0.0.9"]);
            cfg.vxlan = vec![fixtures::segment(vni, "blue", &loopback, &["eth3"], flooding)];
        }
        cfg.with_version()
    }

    /// A client for `nodes` as boards, with `token`.
    pub(crate) fn client(nodes: Vec<NodeConfig>, token: &str) -> FleetClient {
        FleetClient {
            lab: "t5".into(),
            path: "t5.toml".into(),
            runs_on: RunsOn::Boards,
            nodes: nodes.into_iter().map(|c| (c.hostname.clone(), c)).collect(),
            segments: Vec::new(),
            token: token.into(),
            http: AgentClient::new(Duration::from_secs(3)),
        }
    }

    pub(crate) fn two_node_client() -> FleetClient {
        client(
            vec![
                node("leaf1", "leaf", 65001, 11, Some(10010)),
                node("spine1", "spine", 65000, 12, None),
            ],
            "t5-token",
        )
    }

    #[test]
    fn select_names_unknown_nodes() {
        let fleet = two_node_client();
        assert_eq!(fleet.select(&[]).unwrap().len(), 2);
        let picked = fleet.select(&["spine1".into(), "spine1".into()]).unwrap();
        assert_eq!(picked.len(), 1);
        let err = fleet.select(&["leaf9".into()]).unwrap_err().to_string();
        assert!(err.contains("leaf9") && err.contains("leaf1, spine1"), "{err}");
    }

    #[test]
    fn a_virtual_fleet_node_runs_the_board_config_with_mgmt0() {
        let board = node("leaf1", "leaf", 65001, 11, None);
        assert_eq!(node_config(RunsOn::Boards, &board), board);
        let fleet = node_config(RunsOn::VirtualFleet, &board);
        assert_eq!(fleet.management.interface.as_deref(), Some("mgmt0"));
        assert_ne!(fleet.version, board.version, "a different config, a different version");
        assert_eq!(RunsOn::VirtualFleet.api(&fleet), board.health.listen);
    }
}
