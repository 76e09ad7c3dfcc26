//! Is the fleet converged? What each node looks like right now, read from
//! FRR (`vtysh -N ... json`) and the kernel (`ip -j`), and the state table.

use std::collections::BTreeSet;
use std::time::Duration;

use lab_spec::NodeConfig;
use serde::Serialize;
use serde_json::Value;

use crate::agent_client::AgentClient;
use crate::table::Table;

use super::frr;
use crate::lab_host::{ip, names};

/// One node as observed.
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
    /// Configured VNIs whose VXLAN device exists.
    pub vnis_up: Vec<u32>,
    pub vnis: Vec<u32>,
    /// Configured addresses (ports and loopback) missing from the kernel.
    pub missing_addresses: Vec<String>,
    /// The node's agent calls itself healthy (`GET /v1/health`): its pass
    /// finished with everything in force, sFlow sampling included, which
    /// FRR and the kernel alone cannot show.
    pub agent_healthy: bool,
    /// What the agent last said is wrong, while it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_problem: Option<String>,
}

impl NodeState {
    pub fn converged(&self) -> bool {
        self.routing_converged() && self.agent_healthy
    }

    /// What the host sees in FRR and the kernel is in place; the agent's
    /// own word is asked only then.
    pub fn routing_converged(&self) -> bool {
        self.bgp_up == self.bgp_total
            && self.igp_up == self.igp_total
            && self.vnis_up.len() == self.vnis.len()
            && self.missing_addresses.is_empty()
    }

    /// What is still missing, for progress lines and timeouts.
    pub fn waiting_for(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing_addresses.is_empty() {
            parts.push(format!("addresses {}", self.missing_addresses.join(" ")));
        }
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
        if parts.is_empty() && !self.agent_healthy {
            let problem = self.agent_problem.as_deref().unwrap_or("not asked yet");
            parts.push(format!("agent: {problem}"));
        }
        parts.join(", ")
    }
}

/// Look at every node at once (each look runs vtysh and ip).
pub fn observe_all(lab: &str, nodes: &[NodeConfig]) -> Vec<NodeState> {
    std::thread::scope(|scope| {
        let looks: Vec<_> = nodes.iter().map(|n| scope.spawn(move || observe(lab, n))).collect();
        looks
            .into_iter()
            .zip(nodes)
            .map(|(look, n)| look.join().unwrap_or_else(|_| observe(lab, n)))
            .collect()
    })
}

/// Look at one node.
pub fn observe(lab: &str, config: &NodeConfig) -> NodeState {
    let netns = names::netns(lab, &config.hostname);
    let (bgp_up, bgp_total) = bgp(&netns, config);
    let (igp_up, igp_total) = igp(&netns, config);
    let present = addresses(&netns);
    let vxlans = vxlan_ids(&netns);
    let vnis: Vec<u32> = config.vxlan.iter().map(|s| s.vni).collect();
    NodeState {
        node: config.hostname.clone(),
        role: config.role.to_string(),
        loopback: config.loopback.map(|a| a.to_string()),
        mgmt: config.management.address.to_string(),
        bgp_up,
        bgp_total,
        igp: config.igp.as_ref().map(|i| i.protocol.to_string()),
        igp_up,
        igp_total,
        vnis_up: vnis.iter().copied().filter(|v| vxlans.contains(v)).collect(),
        vnis,
        missing_addresses: wanted_addresses(config)
            .into_iter()
            .filter(|a| !present.contains(a))
            .collect(),
        netns,
        agent_healthy: false,
        agent_problem: None,
    }
}

/// The agents' own word, asked once a node's routing has converged and
/// remembered once healthy: one request per node, not one per poll.
#[derive(Debug)]
pub struct AgentWord {
    http: AgentClient,
    healthy: BTreeSet<String>,
}

impl AgentWord {
    pub fn new() -> Self {
        AgentWord { http: AgentClient::new(Duration::from_secs(5)), healthy: BTreeSet::new() }
    }

    /// Fills in `agent_healthy` and `agent_problem` of `states`, asking
    /// the agents of nodes whose routing converged (all at once).
    pub fn ask(&mut self, nodes: &[NodeConfig], states: &mut [NodeState]) {
        let answers: Vec<(usize, Result<(), String>)> = std::thread::scope(|scope| {
            let asks: Vec<_> = states
                .iter()
                .zip(nodes)
                .enumerate()
                .filter(|(_, (s, _))| s.routing_converged() && !self.healthy.contains(&s.node))
                .map(|(i, (_, n))| (i, scope.spawn(|| self.verdict(n))))
                .collect();
            asks.into_iter()
                .map(|(i, ask)| (i, ask.join().unwrap_or_else(|_| Err("asking it failed".into()))))
                .collect()
        });
        for (i, answer) in answers {
            match answer {
                Ok(()) => {
                    self.healthy.insert(states[i].node.clone());
                }
                Err(problem) => states[i].agent_problem = Some(problem),
            }
        }
        for state in states.iter_mut() {
            state.agent_healthy = self.healthy.contains(&state.node);
        }
    }

    fn verdict(&self, node: &NodeConfig) -> Result<(), String> {
        let config = super::build::fleet_config(node);
        let report = self.http.health(config.health.listen).map_err(|e| e.to_string())?;
        match report.problems.first() {
            _ if report.healthy => Ok(()),
            Some(problem) => Err(problem.clone()),
            None => Err("not healthy".into()),
        }
    }
}

/// Established sessions among the configured neighbours, and their number.
fn bgp(netns: &str, config: &NodeConfig) -> (usize, usize) {
    let Some(bgp) = &config.bgp else { return (0, 0) };
    let total = bgp.neighbors.len();
    let Some(summary) = frr::bgp_summary(netns) else { return (0, total) };
    let states = frr::peer_states(&summary);
    let up = bgp
        .neighbors
        .iter()
        .filter(|n| {
            let addr = n.address.to_string();
            states.iter().any(|(a, s)| *a == addr && s == "Established")
        })
        .count();
    (up, total)
}

/// Expected IGP adjacencies that are up, and their number.
fn igp(netns: &str, config: &NodeConfig) -> (usize, usize) {
    let Some(igp) = &config.igp else { return (0, 0) };
    let states = match frr::vtysh_json(netns, lab_spec::frr_state::show_command(igp.protocol)) {
        Some(json) => lab_spec::frr_state::adjacencies(igp, &json),
        None => lab_spec::frr_state::unknown(igp),
    };
    (states.iter().filter(|s| s.up).count(), states.len())
}

fn wanted_addresses(config: &NodeConfig) -> Vec<String> {
    let ports = config.interfaces.iter().filter_map(|i| i.address.map(|a| a.addr().to_string()));
    ports.chain(config.loopback.map(|a| a.to_string())).collect()
}

fn addresses(netns: &str) -> BTreeSet<String> {
    let Ok(links) = ip::addrs(Some(netns)) else { return BTreeSet::new() };
    links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .collect()
}

fn vxlan_ids(netns: &str) -> BTreeSet<u32> {
    let Ok(links) = ip::links(Some(netns)) else { return BTreeSet::new() };
    vxlan_ids_of(&links)
}

fn vxlan_ids_of(links: &Value) -> BTreeSet<u32> {
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["linkinfo"]["info_kind"] == "vxlan")
        .filter_map(|l| l["linkinfo"]["info_data"]["id"].as_u64())
        .filter_map(|id| u32::try_from(id).ok())
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
            missing_addresses: Vec::new(),
            agent_healthy: true,
            agent_problem: None,
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
    fn converged_needs_the_agent_to_call_itself_healthy() {
        let mut s = state("r1", (1, 1), (&[], &[]));
        s.agent_healthy = false;
        assert!(s.routing_converged() && !s.converged());
        assert_eq!(s.waiting_for(), "agent: not asked yet");
        s.agent_problem = Some("last reconcile failed: no pass finished yet".into());
        assert_eq!(s.waiting_for(), "agent: last reconcile failed: no pass finished yet");
        // Routing comes first: the agent is asked only once it converged.
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

    #[test]
    fn vxlan_ids_are_read_from_ip_json() {
        let links: Value = serde_json::from_str(
            r#"[{"ifname":"lo","linkinfo":null},
                {"ifname":"vxlan10010","linkinfo":{"info_kind":"vxlan","info_data":{"id":10010,"port":4789}}},
                {"ifname":"br10010","linkinfo":{"info_kind":"bridge","info_data":{}}}]"#,
        )
        .unwrap();
        assert_eq!(vxlan_ids_of(&links), BTreeSet::from([10010]));
    }
}
