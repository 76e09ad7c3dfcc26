//! The rtnetlink messages behind each [`Change`](super::Change), built
//! without a socket so they can be unit-tested byte for byte (802.1Q is
//! not available in every test kernel).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeaderFlags, AddressMessage},
    link::{
        InfoData, InfoKind, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    },
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    },
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
};

use super::{OWNER_ALIAS, ROUTE_PROTOCOL, StaticRoute, VxlanParams};

/// A request and its NLM_F_* flags.
pub type Request = (RouteNetlinkMessage, u16);

const CREATE: u16 = NLM_F_CREATE | NLM_F_EXCL;

fn link_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes = attributes;
    msg
}

fn new_link(name: &str, mtu: Option<u32>, info: Vec<LinkInfo>, parent: Option<u32>) -> Request {
    let mut attrs = vec![LinkAttribute::IfName(name.into())];
    attrs.extend(parent.map(LinkAttribute::Link));
    attrs.extend(mtu.map(LinkAttribute::Mtu));
    attrs.push(LinkAttribute::LinkInfo(info));
    (RouteNetlinkMessage::NewLink(link_message(0, attrs)), CREATE)
}

pub fn new_bridge(name: &str, mtu: Option<u32>) -> Request {
    new_link(name, mtu, vec![LinkInfo::Kind(InfoKind::Bridge)], None)
}

/// `ip link add NAME link PARENT type vlan id ID`.
pub fn new_vlan(name: &str, mtu: Option<u32>, parent: u32, vlan_id: u16) -> Request {
    let info = vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(vlan_id)])),
    ];
    new_link(name, mtu, info, Some(parent))
}

/// `ip link add NAME type vxlan id VNI local IP dstport PORT nolearning`.
pub fn new_vxlan(name: &str, mtu: Option<u32>, p: &VxlanParams) -> Request {
    let data = vec![
        InfoVxlan::Id(p.vni),
        InfoVxlan::Local(p.local),
        InfoVxlan::Port(p.port),
        InfoVxlan::Learning(p.learning),
    ];
    let info = vec![LinkInfo::Kind(InfoKind::Vxlan), LinkInfo::Data(InfoData::Vxlan(data))];
    new_link(name, mtu, info, None)
}

/// Mark a device as node-agent's (the kernel takes no alias on create).
pub fn set_owner(index: u32) -> Request {
    let msg = link_message(index, vec![LinkAttribute::IfAlias(OWNER_ALIAS.into())]);
    (RouteNetlinkMessage::SetLink(msg), 0)
}

pub fn set_link(index: u32, up: bool, mtu: Option<u32>, master: Option<u32>) -> Request {
    let mut msg = link_message(index, Vec::new());
    if up {
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
    }
    msg.attributes.extend(mtu.map(LinkAttribute::Mtu));
    msg.attributes.extend(master.map(LinkAttribute::Controller));
    (RouteNetlinkMessage::SetLink(msg), 0)
}

pub fn del_link(index: u32) -> Request {
    (RouteNetlinkMessage::DelLink(link_message(index, Vec::new())), 0)
}

/// `ip link show NAME`.
pub fn get_link(name: &str) -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(link_message(0, vec![LinkAttribute::IfName(name.into())]))
}

fn address_message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    let ip = net.addr();
    msg.attributes = match ip {
        IpAddr::V4(_) => {
            msg.header.family = AddressFamily::Inet;
            vec![AddressAttribute::Local(ip), AddressAttribute::Address(ip)]
        }
        // IPv6 has no peer address: IFA_ADDRESS alone, as `ip` sends it.
        IpAddr::V6(_) => {
            msg.header.family = AddressFamily::Inet6;
            vec![AddressAttribute::Address(ip)]
        }
    };
    msg
}

pub fn add_address(index: u32, net: Ipv4Net) -> Request {
    (RouteNetlinkMessage::NewAddress(address_message(index, net.into())), CREATE)
}

pub fn del_address(index: u32, net: Ipv4Net) -> Request {
    (RouteNetlinkMessage::DelAddress(address_message(index, net.into())), 0)
}

/// `ip addr add NET dev IFACE nodad`: usable at once, no duplicate
/// address detection for a planned address.
pub fn add_address6(index: u32, net: Ipv6Net) -> Request {
    let mut msg = address_message(index, net.into());
    msg.header.flags = AddressHeaderFlags::Nodad;
    (RouteNetlinkMessage::NewAddress(msg), CREATE)
}

pub fn del_address6(index: u32, net: Ipv6Net) -> Request {
    (RouteNetlinkMessage::DelAddress(address_message(index, net.into())), 0)
}

fn flood_message(index: u32, vtep: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes = vec![
        NeighbourAttribute::LinkLayerAddress(vec![0; 6]),
        NeighbourAttribute::Destination(NeighbourAddress::Inet(vtep)),
    ];
    msg
}

/// `bridge fdb append 00:00:00:00:00:00 dev DEV dst VTEP`: APPEND adds one
/// more destination to the all-zeros entry instead of replacing it.
pub fn add_flood(index: u32, vtep: Ipv4Addr) -> Request {
    (RouteNetlinkMessage::NewNeighbour(flood_message(index, vtep)), NLM_F_CREATE | NLM_F_APPEND)
}

pub fn del_flood(index: u32, vtep: Ipv4Addr) -> Request {
    (RouteNetlinkMessage::DelNeighbour(flood_message(index, vtep)), 0)
}

fn route_message(route: &StaticRoute) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = route.destination.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet(route.destination.network())),
        RouteAttribute::Gateway(RouteAddress::Inet(route.gateway)),
    ];
    msg
}

pub fn add_route(route: &StaticRoute) -> Request {
    (RouteNetlinkMessage::NewRoute(route_message(route)), CREATE)
}

pub fn del_route(route: &StaticRoute) -> Request {
    (RouteNetlinkMessage::DelRoute(route_message(route)), 0)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};

    use super::*;

    fn bytes(req: Request) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | req.1;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(req.0));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    /// Find attribute `kind` in a run of netlink attributes.
    fn attr(mut data: &[u8], kind: u16) -> Option<&[u8]> {
        while data.len() >= 4 {
            let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
            let ty = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
            if ty == kind {
                return Some(&data[4..len]);
            }
            data = &data[(len + 3) & !3..];
        }
        None
    }

    const IFLA_IFNAME: u16 = 3;
    const IFLA_LINK: u16 = 5;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    const IFLA_VLAN_ID: u16 = 1;

    #[test]
    fn vlan_message_carries_parent_kind_and_id() {
        let buf = bytes(new_vlan("eth0.101", None, 2, 101));
        // nlmsghdr: RTM_NEWLINK (16), flags REQUEST|CREATE|EXCL.
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 16);
        assert_eq!(u16::from_ne_bytes([buf[6], buf[7]]), 0x1 | 0x400 | 0x200);
        let attrs = &buf[16 + 16..]; // nlmsghdr + ifinfomsg
        assert_eq!(attr(attrs, IFLA_IFNAME), Some(&b"eth0.101\0"[..]));
        assert_eq!(attr(attrs, IFLA_LINK), Some(&2u32.to_ne_bytes()[..]));
        let info = attr(attrs, IFLA_LINKINFO).expect("IFLA_LINKINFO");
        assert_eq!(attr(info, IFLA_INFO_KIND), Some(&b"vlan\0"[..]));
        let data = attr(info, IFLA_INFO_DATA).expect("IFLA_INFO_DATA");
        assert_eq!(attr(data, IFLA_VLAN_ID), Some(&101u16.to_ne_bytes()[..]));
    }

    #[test]
    fn vxlan_port_is_big_endian_and_learning_off() {
        let p = VxlanParams {
            vni: 10010,
            local: "10.0.0.3".parse().unwrap(),
            port: 4789,
            learning: false,
        };
        let buf = bytes(new_vxlan("vxlan10010", Some(1450), &p));
        let info = attr(&buf[32..], IFLA_LINKINFO).unwrap();
        let data = attr(info, IFLA_INFO_DATA).unwrap();
        assert_eq!(attr(data, 1), Some(&10010u32.to_ne_bytes()[..])); // IFLA_VXLAN_ID
        assert_eq!(attr(data, 4), Some(&[10, 0, 0, 3][..])); // IFLA_VXLAN_LOCAL
        assert_eq!(attr(data, 15), Some(&4789u16.to_be_bytes()[..])); // IFLA_VXLAN_PORT
        assert_eq!(attr(data, 7), Some(&[0][..])); // IFLA_VXLAN_LEARNING
    }

    #[test]
    fn flood_entry_is_an_append_of_all_zeros() {
        let buf = bytes(add_flood(7, "10.0.0.6".parse().unwrap()));
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 28); // RTM_NEWNEIGH
        assert_eq!(u16::from_ne_bytes([buf[6], buf[7]]), 0x1 | 0x400 | 0x800);
        assert_eq!(buf[16], libc_af_bridge());
        let attrs = &buf[16 + 12..]; // nlmsghdr + ndmsg
        assert_eq!(attr(attrs, 2), Some(&[0u8; 6][..])); // NDA_LLADDR
        assert_eq!(attr(attrs, 1), Some(&[10, 0, 0, 6][..])); // NDA_DST
    }

    #[test]
    fn ipv6_address_is_inet6_without_dad() {
        let buf = bytes(add_address6(3, "2001:db8::65/128".parse().unwrap()));
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 20); // RTM_NEWADDR
        // ifaddrmsg: family, prefix length, flags, scope, index.
        assert_eq!(&buf[16..20], &[10, 128, 0x02, 0]); // AF_INET6, /128, IFA_F_NODAD
        assert_eq!(&buf[20..24], &3u32.to_ne_bytes());
        let ip: std::net::Ipv6Addr = "2001:db8::65".parse().unwrap();
        assert_eq!(attr(&buf[24..], 1), Some(&ip.octets()[..])); // IFA_ADDRESS
        assert_eq!(attr(&buf[24..], 2), None, "no IFA_LOCAL for IPv6");
    }

    fn libc_af_bridge() -> u8 {
        7
    }
}
