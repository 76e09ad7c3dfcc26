//! NodeConfigs for the tests of every crate (feature `test-support`),
//! built as values. A test that needs the TOML writes one out with
//! [`NodeConfig::to_toml`], the serializer pi-lab itself uses, so no test
//! keeps a hand copy of the format that could drift from it.
//!
//! Typical nodes: [`bare`] (a management address and nothing else),
//! [`router`] (loopback and BGP), [`bgp_router`] (r1 with its neighbour r2),
//! [`sflow_leaf`] (sFlow to the controller), [`leaf`] (a VTEP with a
//! static and an EVPN segment) and [`spine`]. The parts ([`port`],
//! [`vlan`], [`bgp_link`], [`segment`]) change them further.
//!
//! Addresses are written as text, as in a lab file. Every function panics
//! on one that does not parse: they take literals from tests.

use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::node_config::{
    Auth, Bgp, BgpTimers, DEFAULT_HEALTH_PORT, Flooding, HealthApi, Identity, Interface,
    InterfaceKind, Led, Management, NODE_CONFIG_SCHEMA, Neighbor, NodeConfig, Role, Segment, Sflow,
    VXLAN_PORT,
};

/// The lab every fixture belongs to, unless a test sets `lab` itself.
pub const LAB: &str = "test";
/// The lab token whose SHA-256 every fixture carries in `auth`.
pub const TOKEN: &str = "secret";
/// The sFlow collector port on the controller.
pub const SFLOW_PORT: u16 = 6343;

/// `text` as an address, network or socket address.
pub fn addr<T: FromStr>(text: &str) -> T
where
    T::Err: Debug,
{
    text.parse().unwrap_or_else(|e| panic!("fixture address {text:?}: {e:?}"))
}

/// A node with a management address (`192.168.200.11/24`) and nothing
/// else: role host, no loopback. The controller is the subnet's first
/// address, the API listens on the management address at the default port,
/// sFlow exports nothing and speaks for the management address.
pub fn bare(hostname: &str, management: &str) -> NodeConfig {
    let address: Ipv4Net = addr(management);
    NodeConfig {
        schema: NODE_CONFIG_SCHEMA,
        lab: LAB.into(),
        version: String::new(),
        hostname: hostname.into(),
        role: Role::Host,
        identity: Identity::default(),
        management: Management {
            interface: None,
            address,
            gateway: None,
            controller: address.hosts().next().unwrap_or(address.addr()),
        },
        loopback: None,
        loopback6: None,
        interfaces: Vec::new(),
        bgp: None,
        igp: None,
        vxlan: Vec::new(),
        routes: Vec::new(),
        sflow: Sflow {
            collectors: Vec::new(),
            polling_interval: 20,
            sampling_rate: 0,
            agent_address: address.addr().into(),
            interfaces: Vec::new(),
        },
        health: HealthApi { listen: SocketAddr::new(address.addr().into(), DEFAULT_HEALTH_PORT) },
        auth: Auth::from_token(TOKEN),
        led: Led::None,
        frr: None,
    }
}

/// [`bare`] as a router with `loopback` that speaks BGP as `asn`: the
/// loopback is router id, advertised network and sFlow agent address;
/// default timers, 4 paths, no EVPN, no neighbours yet.
pub fn router(hostname: &str, management: &str, loopback: &str, asn: u32) -> NodeConfig {
    let lo: Ipv4Addr = addr(loopback);
    let mut cfg = bare(hostname, management);
    cfg.role = Role::Router;
    cfg.loopback = Some(lo);
    cfg.sflow.agent_address = lo.into();
    cfg.bgp = Some(Bgp {
        asn,
        router_id: lo,
        neighbors: Vec::new(),
        networks: vec![Ipv4Net::from(lo)],
        timers: BgpTimers::default(),
        multipath: 4,
        evpn: false,
    });
    cfg
}

/// r1 of a two-router lab (AS 100): its port eth1 (10.1.0.0/31) to r2
/// (AS 200), with the BGP session over it.
pub fn bgp_router() -> NodeConfig {
    let mut cfg = router("r1", "192.168.200.11/24", "10.0.0.1", 100);
    bgp_link(&mut cfg, port("eth1", Some("10.1.0.0/31"), "to r2:eth1"), "r2", 200);
    cfg
}

/// A leaf (AS 65001) without links, as a card gets it: loopback
/// 10.0.0.3, management 192.168.200.13, sFlow counters to the controller.
pub fn sflow_leaf(hostname: &str) -> NodeConfig {
    let mut cfg = router(hostname, "192.168.200.13/24", "10.0.0.3", 65001);
    cfg.role = Role::Leaf;
    cfg.sflow.collectors = vec![to_controller(&cfg)];
    cfg
}

/// The controller's sFlow collector as `cfg` knows it.
pub fn to_controller(cfg: &NodeConfig) -> SocketAddr {
    SocketAddr::new(cfg.management.controller.into(), SFLOW_PORT)
}

/// A whole port; `address` `None` for an access port.
pub fn port(name: &str, address: Option<&str>, description: &str) -> Interface {
    Interface {
        name: name.into(),
        kind: InterfaceKind::Port,
        mtu: None,
        address: address.map(addr),
        address6: None,
        description: description.into(),
        tc: None,
    }
}

/// The 802.1Q VLAN `parent.vlan_id`.
pub fn vlan(parent: &str, vlan_id: u16, address: Option<&str>, description: &str) -> Interface {
    Interface {
        name: format!("{parent}.{vlan_id}"),
        kind: InterfaceKind::Vlan { parent: parent.into(), vlan_id },
        ..port("", address, description)
    }
}

/// Adds `port` (with a /31) to a router and the BGP session over it to
/// `peer` (`peer_asn`) at the other end of the /31.
pub fn bgp_link(cfg: &mut NodeConfig, port: Interface, peer: &str, peer_asn: u32) {
    let Some(net) = port.address else { panic!("fixture port {} has no address", port.name) };
    if let Some(bgp) = cfg.bgp.as_mut() {
        bgp.neighbors.push(Neighbor {
            address: Ipv4Addr::from(u32::from(net.addr()) ^ 1),
            remote_asn: peer_asn,
            interface: port.name.clone(),
            description: peer.into(),
            route_reflector_client: false,
            unnumbered: false,
        });
    }
    cfg.interfaces.push(port);
}

/// VXLAN segment `vni` (device `vxlanVNI` on bridge `brVNI`, the IANA
/// port) ending on `local_vtep`.
pub fn segment(
    vni: u32,
    name: &str,
    local_vtep: &str,
    access_ports: &[&str],
    flooding: Flooding,
) -> Segment {
    Segment {
        vni,
        name: name.into(),
        device: format!("vxlan{vni}"),
        bridge: format!("br{vni}"),
        address: None,
        address6: None,
        local_vtep: addr(local_vtep),
        port: VXLAN_PORT,
        access_ports: access_ports.iter().map(|p| p.to_string()).collect(),
        flooding,
    }
}

/// Head-end replication to `remote_vteps`.
pub fn static_flooding(remote_vteps: &[&str]) -> Flooding {
    Flooding::Static { remote_vteps: remote_vteps.iter().map(|v| addr(v)).collect() }
}

/// A node of the fabric example: management on eth0, sFlow counters to
/// the controller.
fn fabric_node(hostname: &str, role: Role, loopback: &str, asn: u32, mgmt: &str) -> NodeConfig {
    let mut cfg = router(hostname, &format!("{mgmt}/24"), loopback, asn);
    cfg.lab = "fabric".into();
    cfg.role = role;
    cfg.management.interface = Some("eth0".into());
    cfg.sflow.collectors = vec![to_controller(&cfg)];
    if let Some(bgp) = cfg.bgp.as_mut() {
        bgp.evpn = true;
    }
    cfg
}

/// leaf1 of the fabric example, a VTEP: two uplinks, a static-flooding
/// and an EVPN segment.
pub fn leaf() -> NodeConfig {
    let mut cfg = fabric_node("leaf1", Role::Leaf, "10.0.0.3", 65001, "192.168.200.13");
    bgp_link(&mut cfg, port("eth1", Some("10.1.0.1/31"), "to spine1:eth1"), "spine1", 65000);
    bgp_link(&mut cfg, port("eth2", Some("10.1.0.3/31"), "to spine2:eth1"), "spine2", 65000);
    cfg.interfaces.push(port("eth3", None, "to h1:eth1 (blue)"));
    cfg.interfaces.push(port("eth4", None, "to h1:eth2 (green)"));
    cfg.vxlan = vec![
        segment(10010, "blue", "10.0.0.3", &["eth3"], static_flooding(&["10.0.0.6"])),
        segment(10020, "green", "10.0.0.3", &["eth4"], Flooding::Evpn),
    ];
    cfg
}

/// spine1 of the fabric example: downlinks to two leaves, carries EVPN
/// but has no segments.
pub fn spine() -> NodeConfig {
    let mut cfg = fabric_node("spine1", Role::Spine, "10.0.0.1", 65000, "192.168.200.11");
    bgp_link(&mut cfg, port("eth1", Some("10.1.0.0/31"), "to leaf1:eth1"), "leaf1", 65001);
    bgp_link(&mut cfg, port("eth2", Some("10.1.0.4/31"), "to leaf2:eth1"), "leaf2", 65002);
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_passes_the_agents_check_and_reads_back_the_same() {
        let all = [
            bare("h1", "192.168.200.21/24"),
            router("r9", "192.168.200.19/24", "10.0.0.9", 65009),
            bgp_router(),
            sflow_leaf("leaf7"),
            leaf(),
            spine(),
        ];
        for cfg in all {
            assert_eq!(cfg.check(), Ok(()), "{}", cfg.hostname);
            let text = cfg.to_toml().unwrap();
            assert_eq!(NodeConfig::from_toml(&text).unwrap(), cfg, "{text}");
        }
    }

    #[test]
    fn a_bare_node_talks_to_its_subnets_first_address() {
        let cfg = bare("d1", "10.255.9.2/30");
        assert_eq!(cfg.management.controller, addr::<Ipv4Addr>("10.255.9.1"));
        assert_eq!(cfg.health.listen, addr::<SocketAddr>("10.255.9.2:9180"));
        assert_eq!(cfg.sflow.agent_address, addr::<std::net::IpAddr>("10.255.9.2"));
    }

    #[test]
    fn a_vlan_is_named_after_its_parent() {
        let v = vlan("eth0", 101, Some("10.1.0.1/31"), "to spine1");
        assert_eq!(v.name, "eth0.101");
        assert_eq!(v.kind, InterfaceKind::Vlan { parent: "eth0".into(), vlan_id: 101 });
        assert_eq!(v.address, Some(addr("10.1.0.1/31")));
    }
}
