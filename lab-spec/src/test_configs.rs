//! Hand-written NodeConfigs for unit tests (a leaf and a spine of the
//! fabric example), independent of the lab compiler.

use crate::node_config::{
    Auth, Bgp, BgpTimers, Flooding, HealthApi, Interface, InterfaceKind, Led, Management, Neighbor,
    NodeConfig, Role, Segment, Sflow,
};

fn port(name: &str, address: Option<&str>, description: &str) -> Interface {
    Interface {
        name: name.into(),
        kind: InterfaceKind::Port,
        mtu: None,
        address: address.map(|a| a.parse().expect("test address")),
        address6: None,
        description: description.into(),
        tc: None,
    }
}

fn neighbor(address: &str, remote_asn: u32, interface: &str, description: &str) -> Neighbor {
    Neighbor {
        address: address.parse().expect("test address"),
        remote_asn,
        interface: interface.into(),
        description: description.into(),
        route_reflector_client: false,
        unnumbered: false,
    }
}

fn base(hostname: &str, role: Role, loopback: &str, mgmt: &str) -> NodeConfig {
    NodeConfig {
        schema: 1,
        lab: "fabric".into(),
        version: String::new(),
        hostname: hostname.into(),
        role,
        identity: Default::default(),
        management: Management {
            interface: Some("eth0".into()),
            address: format!("{mgmt}/24").parse().expect("test address"),
            gateway: None,
            controller: "192.168.200.1".parse().expect("test address"),
        },
        loopback: Some(loopback.parse().expect("test address")),
        loopback6: None,
        interfaces: vec![],
        bgp: None,
        igp: None,
        vxlan: vec![],
        routes: vec![],
        sflow: Sflow {
            collectors: vec!["192.168.200.1:6343".parse().expect("test address")],
            polling_interval: 20,
            sampling_rate: 0,
            agent_address: loopback.parse().expect("test address"),
            interfaces: vec![],
        },
        health: HealthApi { listen: format!("{mgmt}:9180").parse().expect("test address") },
        auth: Auth::from_token("secret"),
        led: Led::None,
        frr: None,
    }
}

/// leaf1: two uplinks, a static-flooding and an EVPN segment.
pub fn leaf() -> NodeConfig {
    let mut cfg = base("leaf1", Role::Leaf, "10.0.0.3", "192.168.200.13");
    cfg.interfaces = vec![
        port("eth1", Some("10.1.0.1/31"), "to spine1:eth1"),
        port("eth2", Some("10.1.0.3/31"), "to spine2:eth1"),
        port("eth3", None, "to h1:eth1 (blue)"),
        port("eth4", None, "to h1:eth2 (green)"),
    ];
    cfg.bgp = Some(Bgp {
        asn: 65001,
        router_id: "10.0.0.3".parse().expect("test address"),
        neighbors: vec![
            neighbor("10.1.0.0", 65000, "eth1", "spine1"),
            neighbor("10.1.0.2", 65000, "eth2", "spine2"),
        ],
        networks: vec!["10.0.0.3/32".parse().expect("test address")],
        timers: BgpTimers::default(),
        multipath: 4,
        evpn: true,
    });
    let vtep = "10.0.0.3".parse().expect("test address");
    cfg.vxlan = vec![
        Segment {
            vni: 10010,
            name: "blue".into(),
            device: "vxlan10010".into(),
            bridge: "br10010".into(),
            address: None,
            address6: None,
            local_vtep: vtep,
            port: 4789,
            access_ports: vec!["eth3".into()],
            flooding: Flooding::Static {
                remote_vteps: vec!["10.0.0.6".parse().expect("test address")],
            },
        },
        Segment {
            vni: 10020,
            name: "green".into(),
            device: "vxlan10020".into(),
            bridge: "br10020".into(),
            address: None,
            address6: None,
            local_vtep: vtep,
            port: 4789,
            access_ports: vec!["eth4".into()],
            flooding: Flooding::Evpn,
        },
    ];
    cfg
}

/// spine1: four downlinks to leaves, carries EVPN but has no segments.
pub fn spine() -> NodeConfig {
    let mut cfg = base("spine1", Role::Spine, "10.0.0.1", "192.168.200.11");
    cfg.interfaces = vec![
        port("eth1", Some("10.1.0.0/31"), "to leaf1:eth1"),
        port("eth2", Some("10.1.0.4/31"), "to leaf2:eth1"),
    ];
    cfg.bgp = Some(Bgp {
        asn: 65000,
        router_id: "10.0.0.1".parse().expect("test address"),
        neighbors: vec![
            neighbor("10.1.0.1", 65001, "eth1", "leaf1"),
            neighbor("10.1.0.5", 65002, "eth2", "leaf2"),
        ],
        networks: vec!["10.0.0.1/32".parse().expect("test address")],
        timers: BgpTimers::default(),
        multipath: 4,
        evpn: true,
    });
    cfg
}
