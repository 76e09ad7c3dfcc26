//! Read the kernel's links, IPv4 addresses, VXLAN flood entries and the
//! agent's routes over netlink.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    link::{
        InfoData, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType,
        LinkMessage,
    },
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol},
};

use super::{LinkState, Observed, ROUTE_PROTOCOL, StaticRoute, VxlanParams};
use crate::netlink::{Netlink, NetlinkError};

pub fn observe(nl: &mut Netlink) -> Result<Observed, NetlinkError> {
    let raw: Vec<LinkMessage> = nl
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect();
    let names: BTreeMap<u32, String> =
        raw.iter().filter_map(|l| Some((l.header.index, link_name(l)?))).collect();
    let mut obs = Observed::default();
    for l in &raw {
        if let Some(state) = link_state(l, &names) {
            obs.links.insert(state.name.clone(), state);
        }
    }

    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet;
    for m in nl.dump(RouteNetlinkMessage::GetAddress(req))? {
        if let RouteNetlinkMessage::NewAddress(a) = m
            && let (Some(name), Some(net)) = (names.get(&a.header.index), address(&a))
        {
            obs.addresses.entry(name.clone()).or_default().insert(net);
        }
    }

    let mut req = NeighbourMessage::default();
    req.header.family = AddressFamily::Bridge;
    for m in nl.dump(RouteNetlinkMessage::GetNeighbour(req))? {
        if let RouteNetlinkMessage::NewNeighbour(n) = m {
            let on_vxlan = names
                .get(&n.header.ifindex)
                .filter(|name| obs.links.get(*name).is_some_and(|l| l.kind == "vxlan"));
            if let (Some(name), Some(vtep)) = (on_vxlan, flood_destination(&n)) {
                obs.flood.entry(name.clone()).or_default().insert(vtep);
            }
        }
    }

    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet;
    for m in nl.dump(RouteNetlinkMessage::GetRoute(req))? {
        if let RouteNetlinkMessage::NewRoute(r) = m {
            obs.routes.extend(agent_route(&r));
        }
    }
    Ok(obs)
}

fn link_name(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_state(l: &LinkMessage, names: &BTreeMap<u32, String>) -> Option<LinkState> {
    let mut s = LinkState {
        index: l.header.index,
        name: link_name(l)?,
        up: l.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    let mut parent = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::Mtu(m) => s.mtu = *m,
            LinkAttribute::Controller(i) => s.master = names.get(i).cloned(),
            LinkAttribute::IfAlias(a) => s.alias = Some(a.clone()),
            LinkAttribute::Link(i) => parent = names.get(i).cloned(),
            LinkAttribute::LinkInfo(info) => read_link_info(info, &mut s),
            _ => {}
        }
    }
    if let Some((p, _)) = s.vlan.as_mut() {
        *p = parent.unwrap_or_default();
    }
    s.wired =
        l.header.link_layer_type == LinkLayerType::Ether && s.kind.is_empty() && is_wired(&s.name);
    Some(s)
}

/// Backed by a device and not wireless, per sysfs (which `ip netns exec`
/// mounts for the namespace).
fn is_wired(name: &str) -> bool {
    let dir = std::path::Path::new("/sys/class/net").join(name);
    dir.join("device").exists() && !dir.join("wireless").exists() && !dir.join("phy80211").exists()
}

fn read_link_info(info: &[LinkInfo], s: &mut LinkState) {
    for i in info {
        match i {
            LinkInfo::Kind(k) => s.kind = k.to_string(),
            LinkInfo::Data(InfoData::Vxlan(v)) => s.vxlan = Some(vxlan_params(v)),
            LinkInfo::Data(InfoData::Vlan(v)) => {
                let id = v.iter().find_map(|x| match x {
                    InfoVlan::Id(id) => Some(*id),
                    _ => None,
                });
                s.vlan = Some((String::new(), id.unwrap_or(0)));
            }
            _ => {}
        }
    }
}

fn vxlan_params(attrs: &[InfoVxlan]) -> VxlanParams {
    let mut p =
        VxlanParams { vni: 0, local: std::net::Ipv4Addr::UNSPECIFIED, port: 0, learning: true };
    for a in attrs {
        match a {
            InfoVxlan::Id(v) => p.vni = *v,
            InfoVxlan::Local(l) => p.local = *l,
            InfoVxlan::Port(port) => p.port = *port,
            InfoVxlan::Learning(l) => p.learning = *l,
            _ => {}
        }
    }
    p
}

fn address(a: &AddressMessage) -> Option<Ipv4Net> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // point-to-point links).
    let ip = a
        .attributes
        .iter()
        .find_map(|x| match x {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
        })?;
    Ipv4Net::new(ip, a.header.prefix_len).ok()
}

/// The remote VTEP of an all-zeros (flood) FDB entry.
fn flood_destination(n: &NeighbourMessage) -> Option<std::net::Ipv4Addr> {
    let all_zeros = n.attributes.iter().any(
        |a| matches!(a, NeighbourAttribute::LinkLayerAddress(mac) if mac.iter().all(|b| *b == 0)),
    );
    if !all_zeros {
        return None;
    }
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        // In AF_BRIDGE messages the parser cannot tell the address family.
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice()).ok().map(std::net::Ipv4Addr::from)
        }
        _ => None,
    })
}

fn agent_route(r: &RouteMessage) -> Option<StaticRoute> {
    if r.header.protocol != RouteProtocol::from(ROUTE_PROTOCOL)
        || r.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let mut dst = std::net::Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            _ => {}
        }
    }
    let destination = Ipv4Net::new(dst, r.header.destination_prefix_length).ok()?;
    Some(StaticRoute { destination, gateway: gateway? })
}
