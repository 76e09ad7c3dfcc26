//! The managed switch a lab on boards needs (`pi-lab lab switch`).
//!
//! A Pi 3B has one Ethernet port. The switch gives each board one port that
//! carries the management network untagged and every lab link of that board
//! as a tagged 802.1Q VLAN (`eth0.101` on the board is VLAN 101 on its
//! switch port). Ports of USB adapters carrying VLANs are switch ports too.
//! Links between whole ports other than the management port need no switch
//! configuration of their own: a cable, or an access VLAN the user picks.
//!
//! The same plan wires emulated boards ([`crate::emulated`]), so what a
//! user types into a real switch is what the rehearsal ran on.

use std::collections::BTreeMap;

use lab_spec::NodeConfig;
use lab_spec::node_config::InterfaceKind;
use serde::Serialize;

use crate::lab_file::CompiledLab;
use crate::table::Table;

/// The board port the management network is on when the NodeConfig does
/// not name one: a Pi 3B's built-in Ethernet port.
pub const BOARD_PORT: &str = "eth0";

/// What one switch port must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchPort {
    /// 1-based, in board-name order: cable board N to switch port N.
    pub number: usize,
    pub board: String,
    /// The board's port on this cable, e.g. `eth0`.
    pub board_port: String,
    /// The management network, untagged (native VLAN) on this port.
    pub management: bool,
    /// Tagged VLAN ids, ascending.
    pub tagged: Vec<u16>,
}

/// One VLAN and the sub-interfaces at its two ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchVlan {
    pub id: u16,
    /// `node:interface` of each member, in name order.
    pub members: Vec<String>,
}

/// A link between whole ports that are not the management port (USB
/// adapters): cabled directly, no VLAN from the lab file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectLink {
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchPlan {
    pub lab: String,
    pub ports: Vec<SwitchPort>,
    pub vlans: Vec<SwitchVlan>,
    pub direct: Vec<DirectLink>,
}

/// The switch of a compiled lab.
pub fn for_lab(lab: &CompiledLab) -> SwitchPlan {
    let configs: Vec<&NodeConfig> = lab.configs.values().collect();
    let links: Vec<(String, String)> = lab
        .lab
        .links
        .iter()
        .map(|l| {
            (format!("{}:{}", l.a.node, l.a.interface), format!("{}:{}", l.b.node, l.b.interface))
        })
        .collect();
    plan(lab.name(), &configs, &links)
}

/// The board port carrying management for `config`.
pub fn management_port(config: &NodeConfig) -> &str {
    config.management.interface.as_deref().unwrap_or(BOARD_PORT)
}

/// The switch for `configs` (one per node, any order) and the lab's links
/// (`node:interface` pairs, for the direct cables).
pub fn plan(lab: &str, configs: &[&NodeConfig], links: &[(String, String)]) -> SwitchPlan {
    let mut configs: Vec<&NodeConfig> = configs.to_vec();
    configs.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let mut ports = Vec::new();
    let mut vlans: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for config in &configs {
        // Board port -> tagged VLANs; the management port always exists.
        let mut on_port: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        on_port.insert(management_port(config), Vec::new());
        for iface in &config.interfaces {
            if let InterfaceKind::Vlan { parent, vlan_id } = &iface.kind {
                on_port.entry(parent.as_str()).or_default().push(*vlan_id);
                vlans
                    .entry(*vlan_id)
                    .or_default()
                    .push(format!("{}:{}", config.hostname, iface.name));
            }
        }
        for (port, mut tagged) in on_port {
            tagged.sort_unstable();
            tagged.dedup();
            ports.push(SwitchPort {
                number: ports.len() + 1,
                board: config.hostname.clone(),
                board_port: port.to_string(),
                management: port == management_port(config),
                tagged,
            });
        }
    }
    let is_vlan = |end: &str| end.rsplit_once(':').is_some_and(|(_, i)| i.contains('.'));
    let direct = links
        .iter()
        .filter(|(a, b)| !is_vlan(a) && !is_vlan(b))
        .map(|(a, b)| DirectLink { a: a.clone(), b: b.clone() })
        .collect();
    let vlans = vlans
        .into_iter()
        .map(|(id, mut members)| {
            members.sort();
            SwitchVlan { id, members }
        })
        .collect();
    SwitchPlan { lab: lab.to_string(), ports, vlans, direct }
}

impl SwitchPlan {
    /// The port table: PORT, BOARD, BOARD PORT, UNTAGGED, TAGGED.
    pub fn port_table(&self) -> Table {
        Table::new(["PORT", "BOARD", "BOARD PORT", "UNTAGGED", "TAGGED"]).right(&[0]).with_rows(
            self.ports.iter().map(|p| {
                [
                    p.number.to_string(),
                    p.board.clone(),
                    p.board_port.clone(),
                    if p.management { "management".into() } else { "-".into() },
                    join_ids(&p.tagged),
                ]
            }),
        )
    }

    /// The VLAN table: VLAN, BETWEEN.
    pub fn vlan_table(&self) -> Table {
        Table::new(["VLAN", "BETWEEN"])
            .right(&[0])
            .with_rows(self.vlans.iter().map(|v| [v.id.to_string(), v.members.join("  ")]))
    }
}

fn join_ids(ids: &[u16]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_spec::node_config::Interface;

    fn node(name: &str, vlans: &[(&str, u16)], ports: &[&str]) -> NodeConfig {
        let mut c = crate::fleet_client::tests::node(name, "leaf", 65001, 11, None);
        c.management.interface = None;
        c.interfaces = vlans
            .iter()
            .map(|(parent, id)| Interface {
                name: format!("{parent}.{id}"),
                kind: InterfaceKind::Vlan { parent: parent.to_string(), vlan_id: *id },
                mtu: None,
                address: None,
                address6: None,
                description: String::new(),
                tc: None,
            })
            .chain(ports.iter().map(|p| Interface {
                name: p.to_string(),
                kind: InterfaceKind::Port,
                mtu: None,
                address: None,
                address6: None,
                description: String::new(),
                tc: None,
            }))
            .collect();
        c
    }

    #[test]
    fn each_board_gets_a_port_with_management_untagged_and_its_vlans_tagged() {
        let r2 = node("r2", &[("eth0", 101), ("eth0", 102)], &[]);
        let r1 = node("r1", &[("eth0", 101)], &["eth1"]);
        let r3 = node("r3", &[("eth0", 102), ("eth1", 300)], &[]);
        let links = vec![
            ("r1:eth0.101".to_string(), "r2:eth0.101".to_string()),
            ("r2:eth0.102".to_string(), "r3:eth0.102".to_string()),
            ("r1:eth1".to_string(), "r4:eth1".to_string()),
        ];
        let p = plan("lab", &[&r2, &r1, &r3], &links);
        let rows: Vec<(usize, &str, &str, bool, Vec<u16>)> = p
            .ports
            .iter()
            .map(|x| {
                (x.number, x.board.as_str(), x.board_port.as_str(), x.management, x.tagged.clone())
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, "r1", "eth0", true, vec![101]),
                (2, "r2", "eth0", true, vec![101, 102]),
                (3, "r3", "eth0", true, vec![102]),
                (4, "r3", "eth1", false, vec![300]),
            ]
        );
        assert_eq!(
            p.vlans[0],
            SwitchVlan { id: 101, members: vec!["r1:eth0.101".into(), "r2:eth0.101".into()] }
        );
        assert_eq!(p.direct, vec![DirectLink { a: "r1:eth1".into(), b: "r4:eth1".into() }]);
        let r2 = p.ports.iter().find(|x| x.board == "r2" && x.management).unwrap();
        assert_eq!(r2.tagged, vec![101, 102]);
        assert_eq!(p.ports.iter().filter(|x| !x.management).count(), 1);
        let table = p.port_table().to_string();
        assert!(
            table.lines().nth(2).unwrap().ends_with("2  r2     eth0        management  101,102"),
            "{table}"
        );
    }
}
