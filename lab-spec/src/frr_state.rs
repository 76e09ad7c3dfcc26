//! Reading FRR's view of an IGP underlay back: `vtysh -c '... json'`
//! output turned into one [`IgpAdjacencyState`] per adjacency the config
//! expects. Used by the agent (health report) and by the virtual fleet
//! (convergence), so both call the same thing "up".
//!
//! Checked with FRR 8.4 (Debian 12) and the fields FRR 10 keeps:
//!
//! ```text
//! show ip ospf neighbor json
//!   {"neighbors": {"10.0.0.2": [{"converged": "Full", "nbrState": "Full/-",
//!                                "ifaceName": "eth1:10.1.0.0", ...}]}}
//! show isis neighbor json
//!   {"areas": [{"area": "UNDERLAY", "circuits": [{"adj": "spine1",
//!               "interface": "eth1", "level": 2, "state": "Up"}, ...]}]}
//! show ipv6 ospf6 neighbor json
//!   {"neighbors": [{"neighborId": "10.0.0.122", "state": "Full",
//!                   "interfaceName": "eth1", ...}, ...]}
//! ```

use serde_json::Value;

use crate::health::IgpAdjacencyState;
use crate::node_config::{Igp, IgpNeighbor, IgpProtocol};

/// The vtysh command whose JSON [`adjacencies`] reads.
pub fn show_command(protocol: IgpProtocol) -> &'static str {
    match protocol {
        IgpProtocol::Ospf => "show ip ospf neighbor json",
        IgpProtocol::Isis => "show isis neighbor json",
    }
}

/// The vtysh command whose JSON [`ospf6_adjacencies`] reads.
pub const OSPF6_SHOW: &str = "show ipv6 ospf6 neighbor json";

/// Every expected adjacency of `igp`, with its state from `json` (the
/// output of [`show_command`]); `Missing` when FRR does not list it.
pub fn adjacencies(igp: &Igp, json: &Value) -> Vec<IgpAdjacencyState> {
    let (state, up): (StateOf, &str) = match igp.protocol {
        IgpProtocol::Ospf => (ospf_state, "Full"),
        IgpProtocol::Isis => (isis_state, "Up"),
    };
    states(igp, json, state, up)
}

/// The OSPFv3 neighbours a dual-stack OSPF underlay expects (one per
/// OSPFv2 neighbour), from `json` (the output of [`OSPF6_SHOW`]).
pub fn ospf6_adjacencies(igp: &Igp, json: &Value) -> Vec<IgpAdjacencyState> {
    states(igp, json, ospf6_state, "Full")
}

/// Finds one expected adjacency's state in FRR's JSON.
type StateOf = fn(&IgpNeighbor, &Value) -> Option<String>;

fn states(igp: &Igp, json: &Value, state: StateOf, up: &str) -> Vec<IgpAdjacencyState> {
    igp.neighbors
        .iter()
        .map(|n| {
            let state = state(n, json).unwrap_or_else(|| "Missing".to_string());
            IgpAdjacencyState {
                interface: n.interface.clone(),
                router_id: n.router_id,
                description: n.description.clone(),
                up: state == up,
                state,
            }
        })
        .collect()
}

/// OSPFv3 lists neighbours with their interface.
fn ospf6_state(n: &IgpNeighbor, json: &Value) -> Option<String> {
    let entries = json.get("neighbors")?.as_array()?;
    let id = n.router_id.to_string();
    let entry = entries.iter().find(|e| {
        e.get("neighborId").and_then(Value::as_str) == Some(id.as_str())
            && e.get("interfaceName").and_then(Value::as_str) == Some(n.interface.as_str())
    })?;
    Some(entry.get("state").and_then(Value::as_str)?.to_string())
}

/// Every adjacency as `Missing`: FRR did not answer.
pub fn unknown(igp: &Igp) -> Vec<IgpAdjacencyState> {
    adjacencies(igp, &Value::Null)
}

/// OSPF lists neighbours by router id; the one on our interface counts.
fn ospf_state(n: &IgpNeighbor, json: &Value) -> Option<String> {
    let entries = json.get("neighbors")?.get(n.router_id.to_string())?.as_array()?;
    let on_link = |e: &&Value| {
        e.get("ifaceName")
            .and_then(Value::as_str)
            .is_some_and(|i| i.split(':').next() == Some(n.interface.as_str()))
    };
    let entry = entries.iter().find(on_link).or(entries.first())?;
    // `converged` is FRR's verdict without the DR role ("Full/-" -> "Full").
    let state = entry
        .get("converged")
        .or_else(|| entry.get("nbrState"))
        .or_else(|| entry.get("state"))
        .and_then(Value::as_str)?;
    Some(state.split('/').next().unwrap_or(state).to_string())
}

/// IS-IS lists adjacencies per circuit; a point-to-point link has one.
fn isis_state(n: &IgpNeighbor, json: &Value) -> Option<String> {
    let circuits = json
        .get("areas")?
        .as_array()?
        .iter()
        .filter_map(|a| a.get("circuits").and_then(Value::as_array))
        .flatten();
    let mut states = circuits
        .filter(|c| c.get("interface").and_then(Value::as_str) == Some(n.interface.as_str()))
        .filter_map(|c| c.get("state").and_then(Value::as_str));
    // An "Up" one wins over a stale "Down" one on the same interface.
    let first = states.next()?;
    Some(
        if first == "Up" { first } else { states.find(|s| *s == "Up").unwrap_or(first) }
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_config::IgpTimers;

    fn igp(protocol: IgpProtocol) -> Igp {
        Igp {
            protocol,
            router_id: "10.0.0.1".parse().expect("address"),
            area: "0.0.0.0".into(),
            timers: IgpTimers::default(),
            neighbors: vec![
                IgpNeighbor {
                    interface: "eth1".into(),
                    router_id: "10.0.0.2".parse().expect("address"),
                    description: "spine1".into(),
                },
                IgpNeighbor {
                    interface: "eth2".into(),
                    router_id: "10.0.0.3".parse().expect("address"),
                    description: "spine2".into(),
                },
            ],
        }
    }

    #[test]
    fn ospf_neighbours_by_router_id() {
        let json: Value = serde_json::from_str(
            r#"{"neighbors":{"10.0.0.2":[{"state":"Full/-","nbrState":"Full/-","converged":"Full",
                "ifaceName":"eth1:10.1.0.0"}],
              "10.0.0.3":[{"nbrState":"Init/-","ifaceName":"eth2:10.1.0.2"}]}}"#,
        )
        .expect("json");
        let states = adjacencies(&igp(IgpProtocol::Ospf), &json);
        let got: Vec<(&str, bool)> = states.iter().map(|s| (s.state.as_str(), s.up)).collect();
        assert_eq!(got, vec![("Full", true), ("Init", false)]);
        assert_eq!(states[0].description, "spine1");
        let none = unknown(&igp(IgpProtocol::Ospf));
        assert!(none.iter().all(|s| s.state == "Missing" && !s.up));
    }

    #[test]
    fn ospf6_neighbours_by_router_id_and_interface() {
        let json: Value = serde_json::from_str(
            r#"{"neighbors":[{"neighborId":"10.0.0.2","state":"Full","ifState":"PointToPoint",
                "interfaceName":"eth1"},{"neighborId":"10.0.0.3","state":"ExStart",
                "interfaceName":"eth2"}]}"#,
        )
        .expect("json");
        let states = ospf6_adjacencies(&igp(IgpProtocol::Ospf), &json);
        let got: Vec<(&str, bool)> = states.iter().map(|s| (s.state.as_str(), s.up)).collect();
        assert_eq!(got, vec![("Full", true), ("ExStart", false)]);
        let none = ospf6_adjacencies(&igp(IgpProtocol::Ospf), &Value::Null);
        assert!(none.iter().all(|s| s.state == "Missing"));
    }

    #[test]
    fn isis_adjacencies_by_interface() {
        let json: Value = serde_json::from_str(
            r#"{"areas":[{"area":"UNDERLAY","circuits":[
                {"circuit":0,"adj":"spine1","interface":"eth1","level":2,"state":"Up"},
                {"circuit":0},
                {"circuit":1,"adj":"spine2","interface":"eth2","level":2,"state":"Initializing"}]}]}"#,
        )
        .expect("json");
        let states = adjacencies(&igp(IgpProtocol::Isis), &json);
        let got: Vec<(&str, bool)> = states.iter().map(|s| (s.state.as_str(), s.up)).collect();
        assert_eq!(got, vec![("Up", true), ("Initializing", false)]);
    }
}
