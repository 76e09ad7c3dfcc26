//! Which lab node an sFlow agent is, and which lab link an interface is an
//! end of: agents are known by their sFlow agent address (loopback, else
//! management address: `NodePlan::sflow_agent`), interfaces by the name
//! the agent sends with their counters (port name, 0:1005).

use std::collections::HashMap;
use std::net::IpAddr;

use lab_spec::Plan;

/// The lab's nodes by agent address, and its link ends by node and name.
#[derive(Debug, Clone, Default)]
pub struct LabLinks {
    agents: HashMap<IpAddr, String>,
    ends: HashMap<(String, String), LinkEnd>,
}

/// Where an interface leads: the link (its index in the plan) and the
/// other end, `node:interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEnd {
    pub link: usize,
    pub peer: String,
}

impl LabLinks {
    pub fn new(plan: &Plan) -> LabLinks {
        let agents = plan
            .nodes
            .iter()
            .map(|(name, n)| (IpAddr::V4(n.sflow_agent()), name.clone()))
            .collect();
        let mut ends = HashMap::new();
        for (link, l) in plan.links.iter().enumerate() {
            for (here, there) in [(&l.a, &l.b), (&l.b, &l.a)] {
                let peer = format!("{}:{}", there.node, there.interface);
                ends.insert((here.node.clone(), here.interface.clone()), LinkEnd { link, peer });
            }
        }
        LabLinks { agents, ends }
    }

    /// The lab node whose agent sends from `agent`.
    pub fn node(&self, agent: IpAddr) -> Option<&str> {
        self.agents.get(&agent).map(String::as_str)
    }

    /// The link `node`'s interface `name` is an end of.
    pub fn end(&self, node: &str, name: &str) -> Option<&LinkEnd> {
        self.ends.get(&(node.to_string(), name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fabric_agents_and_link_ends() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fabric.toml");
        let lab = crate::lab_file::LabFile::load(std::path::Path::new(path)).expect("fabric");
        let links = LabLinks::new(&lab.plan);
        let leaf1 = lab.plan.nodes["leaf1"].loopback.expect("leaf1 has a loopback");
        assert_eq!(links.node(IpAddr::V4(leaf1)), Some("leaf1"));
        // Hosts have no loopback: their agent is their management address.
        let h1 = lab.plan.nodes["h1"].management.addr();
        assert_eq!(links.node(IpAddr::V4(h1)), Some("h1"));
        let end = links.end("leaf1", "eth1").expect("leaf1:eth1 is a link end");
        assert_eq!(end.peer, "spine1:eth1");
        assert_eq!(links.end("spine1", "eth1").map(|e| e.link), Some(end.link));
        assert_eq!(links.end("leaf3", "eth3").map(|e| e.peer.as_str()), Some("h2:eth1"));
        assert_eq!(links.end("leaf1", "mgmt0"), None);
    }
}
