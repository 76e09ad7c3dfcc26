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
