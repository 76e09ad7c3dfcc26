//! What the kernel should look like for a NodeConfig.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use lab_spec::node_config::{Flooding, InterfaceKind, NodeConfig};

use super::{
    Create, Desired, DesiredLink, Management, StaticRoute, VXLAN_MTU, VxlanParams, WantedAddresses,
};

/// Translate a (checked) NodeConfig into the kernel objects it implies.
pub fn desired(cfg: &NodeConfig) -> Desired {
    let mut d = Desired::default();
    let master_of = |port: &str| {
        cfg.vxlan
            .iter()
            .find(|s| s.access_ports.iter().any(|p| p == port))
            .map(|s| s.bridge.clone())
    };

    // Ports first (they exist), then VLANs on them; bridges before the VXLAN
    // devices and access ports that join them.
    for iface in cfg.interfaces.iter().filter(|i| i.kind == InterfaceKind::Port) {
        d.links.push(DesiredLink {
            name: iface.name.clone(),
            create: None,
            mtu: iface.mtu,
            master: master_of(&iface.name),
        });
    }
    for seg in &cfg.vxlan {
        d.links.push(DesiredLink {
            name: seg.bridge.clone(),
            create: Some(Create::Bridge),
            mtu: None,
            master: None,
        });
    }
    for iface in &cfg.interfaces {
        if let InterfaceKind::Vlan { parent, vlan_id } = &iface.kind {
            d.links.push(DesiredLink {
                name: iface.name.clone(),
                create: Some(Create::Vlan { parent: parent.clone(), vlan_id: *vlan_id }),
                mtu: iface.mtu,
                master: master_of(&iface.name),
            });
        }
    }
    for seg in &cfg.vxlan {
        d.links.push(DesiredLink {
            name: seg.device.clone(),
            create: Some(Create::Vxlan(VxlanParams {
                vni: seg.vni,
                local: seg.local_vtep,
                port: seg.port,
                learning: false,
            })),
            mtu: Some(VXLAN_MTU),
            master: Some(seg.bridge.clone()),
        });
        if let Flooding::Static { remote_vteps } = &seg.flooding {
            d.flood.insert(seg.device.clone(), remote_vteps.iter().copied().collect());
        }
    }

    if let Some(lo) = cfg.loopback {
        d.links.push(DesiredLink { name: "lo".into(), create: None, mtu: None, master: None });
        d.addresses.insert(
            "lo".into(),
            WantedAddresses { addresses: BTreeSet::from([host_net(lo)]), exclusive: true },
        );
    }
    for iface in &cfg.interfaces {
        d.addresses.insert(
            iface.name.clone(),
            WantedAddresses { addresses: iface.address.into_iter().collect(), exclusive: true },
        );
    }
    // An irb bridge carries exactly its address. A plain bridge is left
    // alone: an address someone put there by hand is theirs to keep.
    for seg in &cfg.vxlan {
        if let Some(address) = seg.address {
            d.addresses.insert(
                seg.bridge.clone(),
                WantedAddresses { addresses: BTreeSet::from([address]), exclusive: true },
            );
        }
    }
    // The management address is added if missing but nothing else there is
    // touched: removing the wrong thing would cut the agent off.
    d.management = Some(Management {
        interface: cfg.management.interface.clone(),
        address: cfg.management.address,
    });

    d.routes = cfg
        .routes
        .iter()
        .map(|r| StaticRoute { destination: r.destination.trunc(), gateway: r.gateway })
        .collect();
    if let Some(gateway) = cfg.management.gateway {
        d.routes.insert(StaticRoute { destination: Ipv4Net::default(), gateway });
    }
    d
}

fn host_net(addr: std::net::Ipv4Addr) -> Ipv4Net {
    Ipv4Net::from(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Observed, plan};

    /// A leaf whose uplink is an 802.1Q VLAN on eth0 (a board behind a
    /// managed switch), with a management gateway.
    const VLAN_LEAF: &str = r#"
schema = 1
lab = "fabric"
hostname = "leaf1"
role = "leaf"
loopback = "10.0.0.3"
[management]
interface = "eth0"
address = "192.168.200.13/24"
gateway = "192.168.200.1"
controller = "192.168.200.1"
[[interfaces]]
name = "eth0.101"
kind = "vlan"
parent = "eth0"
vlan_id = 101
address = "10.1.0.1/31"
[bgp]
asn = 65001
router_id = "10.0.0.3"
networks = ["10.0.0.3/32"]
multipath = 4
evpn = false
timers = { keepalive = 3, hold = 9, connect_retry = 5 }
neighbors = [{ address = "10.1.0.0", remote_asn = 65000, interface = "eth0.101", description = "spine1" }]
[sflow]
collectors = []
polling_interval = 20
sampling_rate = 0
agent_address = "10.0.0.3"
interfaces = []
[health]
listen = "192.168.200.13:9180"
[auth]
token_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
"#;

    #[test]
    fn vlan_uplink_is_created_on_its_parent_and_gateway_becomes_default_route() {
        let cfg = NodeConfig::from_toml(VLAN_LEAF).unwrap();
        cfg.check().unwrap();
        let d = desired(&cfg);
        let mut observed = Observed::default();
        for (i, name) in ["lo", "eth0"].into_iter().enumerate() {
            let link = crate::network::LinkState {
                index: i as u32 + 1,
                name: name.into(),
                up: true,
                ..Default::default()
            };
            observed.links.insert(name.into(), link);
        }
        let text: Vec<String> =
            plan(&d, &observed).changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ip link add eth0.101 link eth0 type vlan id 101",
                "ip link set eth0.101 up",
                "ip addr add 192.168.200.13/24 dev eth0",
                "ip addr add 10.1.0.1/31 dev eth0.101",
                "ip addr add 10.0.0.3/32 dev lo",
                "ip route add 0.0.0.0/0 via 192.168.200.1 proto 200",
            ]
        );
        assert!(
            matches!(&d.links[0].create, Some(Create::Vlan { parent, vlan_id: 101 }) if parent == "eth0")
        );
    }

    /// VLAN_LEAF with segment 10010 (static flooding to 10.0.0.6), irb:
    /// 172.16.10.5/24 on its bridge.
    fn irb_leaf() -> NodeConfig {
        let mut cfg = NodeConfig::from_toml(VLAN_LEAF).unwrap();
        cfg.vxlan.push(lab_spec::node_config::Segment {
            vni: 10010,
            name: "blue".into(),
            device: "vxlan10010".into(),
            bridge: "br10010".into(),
            address: Some("172.16.10.5/24".parse().unwrap()),
            address6: None,
            local_vtep: "10.0.0.3".parse().unwrap(),
            port: 4789,
            access_ports: Vec::new(),
            flooding: Flooding::Static { remote_vteps: vec!["10.0.0.6".parse().unwrap()] },
        });
        cfg.check().unwrap();
        cfg
    }

    /// The kernel after a pass that did all of `d` (`eth0`, `lo` given).
    fn converged(d: &Desired) -> Observed {
        let mut observed = Observed::default();
        for (i, l) in d.links.iter().enumerate() {
            let mut state = crate::network::LinkState {
                index: i as u32 + 1,
                name: l.name.clone(),
                up: true,
                mtu: l.mtu.unwrap_or(1500),
                master: l.master.clone(),
                ..Default::default()
            };
            if let Some(create) = &l.create {
                state.alias = Some(crate::network::OWNER_ALIAS.into());
                state.kind = match create {
                    Create::Bridge => "bridge".into(),
                    Create::Vlan { parent, vlan_id } => {
                        state.vlan = Some((parent.clone(), *vlan_id));
                        "vlan".into()
                    }
                    Create::Vxlan(v) => {
                        state.vxlan = Some(*v);
                        "vxlan".into()
                    }
                };
            }
            observed.links.insert(l.name.clone(), state);
        }
        for (iface, want) in &d.addresses {
            observed.addresses.insert(iface.clone(), want.addresses.clone());
        }
        if let Some(m) = &d.management {
            let iface = m.interface.clone().unwrap_or_default();
            observed.addresses.entry(iface).or_default().insert(m.address);
        }
        observed.flood = d.flood.clone();
        observed.routes = d.routes.clone();
        observed
    }

    #[test]
    fn irb_address_goes_on_the_segment_bridge_and_comes_back() {
        let d = desired(&irb_leaf());
        let bridge = &d.addresses["br10010"];
        assert!(bridge.exclusive);
        let mut observed = Observed::default();
        for (i, name) in ["lo", "eth0"].into_iter().enumerate() {
            let link = crate::network::LinkState {
                index: i as u32 + 1,
                name: name.into(),
                up: true,
                ..Default::default()
            };
            observed.links.insert(name.into(), link);
        }
        let text: Vec<String> =
            plan(&d, &observed).changes.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"ip link add br10010 type bridge".to_string()), "{text:?}");
        assert!(text.contains(&"ip addr add 172.16.10.5/24 dev br10010".to_string()), "{text:?}");

        // Idempotent: a second pass changes nothing.
        let mut observed = converged(&d);
        assert_eq!(plan(&d, &observed), crate::network::Plan::default());

        // Removed by hand: the next pass puts it back, and only it.
        observed.addresses.get_mut("br10010").unwrap().clear();
        let changes = plan(&d, &observed).changes;
        assert_eq!(
            changes,
            [crate::network::Change::AddAddress {
                interface: "br10010".into(),
                address: "172.16.10.5/24".parse().unwrap()
            }]
        );
    }

    #[test]
    fn a_plain_bridge_keeps_an_address_added_by_hand() {
        let mut cfg = irb_leaf();
        cfg.vxlan[0].address = None;
        let d = desired(&cfg);
        let mut observed = converged(&d);
        let by_hand: Ipv4Net = "172.16.10.99/24".parse().unwrap();
        observed.addresses.entry("br10010".into()).or_default().insert(by_hand);
        assert_eq!(plan(&d, &observed).changes, []);
    }
}
