//! The lab file as a model: what the user wrote, checked, with defaults
//! filled in, and with the place in the file of everything that can be
//! wrong later (address collisions are only found when planning).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::diagnostics::{Source, Span};
use crate::impairment::Netem;
use crate::node_config::{IgpProtocol, IgpTimers, InterfaceKind, Led, Role};

/// Defaults, netlab-like, all overridable in the lab file.
pub mod defaults {
    use std::net::Ipv4Addr;

    use ipnet::Ipv4Net;

    pub const MANAGEMENT: Ipv4Net = net(192, 168, 200, 0, 24);
    pub const LOOPBACK: Ipv4Net = net(10, 0, 0, 0, 24);
    pub const P2P: Ipv4Net = net(10, 1, 0, 0, 16);
    pub const SEGMENTS: Ipv4Net = net(172, 16, 0, 0, 16);
    /// Prefix length of a segment allocated from the segments pool.
    pub const SEGMENT_PREFIX: u8 = 24;
    /// Prefix length of an allocated point-to-point link (RFC 3021).
    pub const P2P_PREFIX: u8 = 31;
    /// Prefix length of an IPv6 link or segment allocated from `p2p6` or
    /// `segments6`: a /64 each, as netlab and SLAAC expect.
    pub const SUBNET6_PREFIX: u8 = 64;
    pub const SFLOW_PORT: u16 = 6343;
    pub const SFLOW_POLLING_INTERVAL: u32 = 20;
    pub const MULTIPATH: u16 = 8;
    /// Host interfaces sit in a VXLAN segment: 50 bytes of VXLAN, UDP, IP
    /// and Ethernet overhead must fit in the underlay's 1500.
    pub const HOST_MTU: u32 = 1450;
    /// OSPF's backbone area (netlab's `ospf.area`).
    pub const OSPF_AREA: &str = "0.0.0.0";
    /// IS-IS area address (netlab's `isis.area`).
    pub const ISIS_AREA: &str = "49.0001";
    /// The management port the virtual fleet gives every node (on a board
    /// it is the first Ethernet port).
    pub const FLEET_MANAGEMENT_PORT: &str = "mgmt0";

    const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
        match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
            Ok(n) => n,
            Err(_) => panic!("bad default prefix"),
        }
    }
}

/// A whole lab file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lab {
    pub name: String,
    pub management: ManagementSpec,
    pub pools: Pools,
    pub underlay: UnderlaySpec,
    pub bgp: BgpSpec,
    pub sflow: SflowSpec,
    pub nodes: BTreeMap<String, Node>,
    pub links: Vec<Link>,
    pub segments: Vec<SegmentSpec>,
    /// The lab's own tests (`[[validate]]`), in file order.
    pub tests: Vec<TestSpec>,
    /// The file it came from, for diagnostics found after parsing.
    #[serde(skip)]
    pub source: Source,
    /// Warnings about the file it was converted from (a netlab topology's
    /// runtime settings, left to netlab); empty for a lab file.
    #[serde(skip)]
    pub notes: crate::diagnostics::Diagnostics,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagementSpec {
    pub subnet: Ipv4Net,
    /// Where pi-lab runs. Default: the subnet's first host address.
    pub controller: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    #[serde(skip)]
    pub spans: ManagementSpans,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagementSpans {
    pub subnet: Option<Span>,
    pub controller: Option<Span>,
    pub gateway: Option<Span>,
}

/// Where allocated addresses come from. The management pool is
/// `management.subnet`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pools {
    /// Router loopbacks, one /32 each.
    pub loopback: Ipv4Net,
    /// Router-to-router links, one /31 each.
    pub p2p: Ipv4Net,
    /// VXLAN segments, one /24 each.
    pub segments: Ipv4Net,
    /// IPv6 router loopbacks, one /128 each. Given: the lab is dual-stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback6: Option<Ipv6Net>,
    /// IPv6 on numbered router-to-router links, one /64 each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2p6: Option<Ipv6Net>,
    /// IPv6 in VXLAN segments, one /64 each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments6: Option<Ipv6Net>,
    #[serde(skip)]
    pub spans: PoolSpans,
}

impl Pools {
    /// Router loopbacks (and with them BGP) carry IPv6 too.
    pub fn dual_stack(&self) -> bool {
        self.loopback6.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSpans {
    pub loopback: Option<Span>,
    pub p2p: Option<Span>,
    pub segments: Option<Span>,
    pub management: Option<Span>,
    pub loopback6: Option<Span>,
    pub p2p6: Option<Span>,
    pub segments6: Option<Span>,
}

/// What carries loopback reachability between routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnderlayProtocol {
    /// eBGP on every router-to-router link (one AS per node or tier).
    Ebgp,
    /// OSPF (area 0, point-to-point links); BGP, where it runs, is iBGP.
    Ospf,
    /// IS-IS (level 2, point-to-point links); BGP, where it runs, is iBGP.
    Isis,
}

impl UnderlayProtocol {
    /// The IGP, if the underlay is one.
    pub fn igp(self) -> Option<IgpProtocol> {
        match self {
            UnderlayProtocol::Ebgp => None,
            UnderlayProtocol::Ospf => Some(IgpProtocol::Ospf),
            UnderlayProtocol::Isis => Some(IgpProtocol::Isis),
        }
    }
}

impl std::fmt::Display for UnderlayProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnderlayProtocol::Ebgp => "ebgp",
            UnderlayProtocol::Ospf => "ospf",
            UnderlayProtocol::Isis => "isis",
        })
    }
}

/// `[underlay]`: the routing protocol between routers and its timers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnderlaySpec {
    pub protocol: UnderlayProtocol,
    /// OSPF area (dotted quad) or IS-IS area address; unused for eBGP.
    pub area: String,
    pub timers: IgpTimers,
    /// Every router-to-router link is unnumbered (BGP unnumbered, RFC
    /// 5549): no /31, eBGP over the interface's IPv6 link-local address.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unnumbered: bool,
    #[serde(skip)]
    pub spans: UnderlaySpans,
}

impl Default for UnderlaySpec {
    fn default() -> Self {
        UnderlaySpec {
            protocol: UnderlayProtocol::Ebgp,
            area: String::new(),
            timers: IgpTimers::default(),
            unnumbered: false,
            spans: UnderlaySpans::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnderlaySpans {
    pub protocol: Option<Span>,
    pub area: Option<Span>,
    pub hello: Option<Span>,
    pub dead: Option<Span>,
    pub unnumbered: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpSpec {
    /// The AS of every node that names none (`[bgp] asn`).
    pub asn: Option<u32>,
    #[serde(skip)]
    pub asn_span: Option<Span>,
    pub keepalive: u16,
    pub hold: u16,
    pub connect_retry: u16,
    pub multipath: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SflowSpec {
    pub collectors: Vec<SocketAddr>,
    pub polling_interval: u32,
    pub sampling_rate: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// Required for every role but `host`.
    pub asn: Option<u32>,
    /// Pins the host number of the loopback and management address.
    pub id: Option<u32>,
    pub serial: Option<String>,
    pub mac: Option<String>,
    /// Fixed management address.
    pub management: Option<Ipv4Addr>,
    /// Fixed loopback address.
    pub loopback: Option<Ipv4Addr>,
    /// Fixed IPv6 loopback address (a dual-stack lab's routers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback6: Option<Ipv6Addr>,
    pub led: Led,
    /// FRR lines appended to the node's generated `frr.conf` (`frr =
    /// """..."""`): what `pi-lab lab save` collected by hand, made part of
    /// the lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frr: Option<String>,
    #[serde(skip)]
    pub spans: NodeSpans,
}

impl Node {
    /// Routers, spines and leaves route (BGP, an IGP) and have a loopback.
    pub fn is_router(&self) -> bool {
        self.role != Role::Host
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpans {
    /// The node's table header, `[nodes.NAME]`.
    pub name: Span,
    pub role: Option<Span>,
    pub asn: Option<Span>,
    pub id: Option<Span>,
    pub serial: Option<Span>,
    pub mac: Option<Span>,
    pub management: Option<Span>,
    pub loopback: Option<Span>,
    pub loopback6: Option<Span>,
    /// The `frr` string, quotes included.
    pub frr: Option<Span>,
}

/// `node:interface` in a link or an access list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub node: String,
    pub interface: String,
    #[serde(skip)]
    pub spans: EndpointSpans,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSpans {
    /// The whole string value.
    pub whole: Span,
    /// Just the node name inside it.
    pub node: Span,
    /// Just the interface name inside it.
    pub interface: Span,
}

impl Endpoint {
    /// `eth0.101` is VLAN 101 on `eth0`; anything else is a whole port.
    pub fn kind(&self) -> InterfaceKind {
        interface_kind(&self.interface)
    }

    /// Key used for sorting and hashing: `node:interface`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.node, self.interface)
    }
}

/// The interface kind an interface name stands for.
pub fn interface_kind(name: &str) -> InterfaceKind {
    match name.rsplit_once('.') {
        Some((parent, vid)) => match vid.parse::<u16>() {
            Ok(vlan_id) => InterfaceKind::Vlan { parent: parent.to_string(), vlan_id },
            Err(_) => InterfaceKind::Port,
        },
        None => InterfaceKind::Port,
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.interface)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
    pub mtu: Option<u32>,
    /// Fixed subnet (a /31 or /30) instead of one from `pools.p2p`.
    pub subnet: Option<Ipv4Net>,
    /// Fixed IPv6 subnet instead of a /64 from `pools.p2p6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// `Some(true)`: no addresses of its own, eBGP runs over the interface
    /// (IPv6 link-local); `Some(false)`: numbered even in an unnumbered
    /// underlay; `None`: as `[underlay] unnumbered` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unnumbered: Option<bool>,
    /// What end `a` sends is impaired so (netem; `tc` and `tc_a`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc_a: Option<Netem>,
    /// What end `b` sends is impaired so (`tc` and `tc_b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc_b: Option<Netem>,
    #[serde(skip)]
    pub spans: LinkSpans,
}

impl Link {
    /// The allocation key: both ends, sorted, so swapping `a` and `b` or
    /// moving the link in the file keeps its subnet.
    pub fn key(&self) -> String {
        let (a, b) = (self.a.key(), self.b.key());
        if a <= b { format!("{a}|{b}") } else { format!("{b}|{a}") }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkSpans {
    /// The `[[links]]` header.
    pub header: Span,
    pub subnet: Option<Span>,
    pub subnet6: Option<Span>,
    pub unnumbered: Option<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloodingMode {
    /// Head-end replication lists written by pi-lab.
    Static,
    /// Remote VTEPs learnt over BGP EVPN.
    Evpn,
}

impl std::fmt::Display for FloodingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FloodingMode::Static => "static",
            FloodingMode::Evpn => "evpn",
        })
    }
}

/// What a segment's leaves are on it (netlab's VLAN `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentMode {
    /// The leaves only bridge: no address of their own in the segment.
    #[default]
    Bridge,
    /// Each leaf also has an address in the segment, on its bridge, so
    /// leaves can reach each other (and hosts) across it.
    Irb,
}

impl SegmentMode {
    /// For `skip_serializing_if`: a bridge segment serializes as before.
    pub fn is_bridge(&self) -> bool {
        *self == SegmentMode::Bridge
    }
}

impl std::fmt::Display for SegmentMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SegmentMode::Bridge => "bridge",
            SegmentMode::Irb => "irb",
        })
    }
}

/// A VXLAN segment (one VNI) across some leaves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentSpec {
    pub name: String,
    pub vni: u32,
    pub flooding: FloodingMode,
    #[serde(skip_serializing_if = "SegmentMode::is_bridge")]
    pub mode: SegmentMode,
    pub leaves: Vec<String>,
    pub access: Vec<Endpoint>,
    /// Fixed subnet instead of a /24 from `pools.segments`.
    pub subnet: Option<Ipv4Net>,
    /// Fixed IPv6 subnet instead of a /64 from `pools.segments6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(skip)]
    pub spans: SegmentSpans,
}

impl SegmentSpec {
    /// The bridge each member leaf's agent makes for this segment.
    pub fn bridge(&self) -> String {
        bridge_name(self.vni)
    }
}

/// The bridge of VNI `vni` on a leaf, e.g. `br10010`.
pub fn bridge_name(vni: u32) -> String {
    format!("br{vni}")
}

/// The key of a leaf's irb address among a segment's addresses
/// (`leaf1:br10010`): the node and the device it sits on, as hosts are
/// keyed.
pub fn irb_key(leaf: &str, vni: u32) -> String {
    format!("{leaf}:{}", bridge_name(vni))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentSpans {
    pub header: Span,
    pub name: Option<Span>,
    pub vni: Option<Span>,
    /// One per entry of `leaves`.
    pub leaves: Vec<Span>,
    pub subnet: Option<Span>,
    pub subnet6: Option<Span>,
}

impl Lab {
    /// The lab file's impairment of what `node:interface` sends.
    pub fn tc_of(&self, node: &str, interface: &str) -> Option<&Netem> {
        self.links.iter().find_map(|l| {
            let is = |e: &Endpoint| e.node == node && e.interface == interface;
            if is(&l.a) {
                l.tc_a.as_ref()
            } else if is(&l.b) {
                l.tc_b.as_ref()
            } else {
                None
            }
        })
    }

    /// Every impaired link end, `(node, interface, netem)`, in file order.
    pub fn impairments(&self) -> Vec<(&Endpoint, &Netem)> {
        let ends = self.links.iter().flat_map(|l| [(&l.a, &l.tc_a), (&l.b, &l.tc_b)]);
        ends.filter_map(|(e, tc)| tc.as_ref().map(|tc| (e, tc))).collect()
    }

    /// The AS a router runs BGP in: its own `asn`, else `[bgp] asn`.
    /// `None`: the node runs no BGP (hosts; IGP-only routers).
    pub fn asn_of(&self, node: &Node) -> Option<u32> {
        if !node.is_router() {
            return None;
        }
        node.asn.or(self.bgp.asn)
    }

    /// Does this node speak EVPN? Leaves of an EVPN segment advertise their
    /// VNIs; spines carry (eBGP) or reflect (iBGP) the routes whenever the
    /// lab has an EVPN segment.
    pub fn carries_evpn(&self, node: &Node) -> bool {
        match node.role {
            Role::Spine => self.has_evpn(),
            Role::Leaf => self
                .segments
                .iter()
                .any(|s| s.flooding == FloodingMode::Evpn && s.leaves.contains(&node.name)),
            Role::Router | Role::Host => false,
        }
    }

    /// The ports of `node`'s lab links, in name order.
    pub fn link_ports(&self, node: &str) -> Vec<String> {
        let mut ports: Vec<String> = self
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.node == node)
            .map(|e| e.interface.clone())
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Is this router-to-router link unnumbered (its own `unnumbered`, or
    /// the underlay's)? Links with a host end never are.
    pub fn is_unnumbered(&self, link: &Link) -> bool {
        let routers =
            [&link.a, &link.b].iter().all(|e| self.nodes.get(&e.node).is_some_and(Node::is_router));
        routers && link.unnumbered.unwrap_or(self.underlay.unnumbered)
    }

    /// Does the lab have a segment that uses EVPN?
    pub fn has_evpn(&self) -> bool {
        self.segments.iter().any(|s| s.flooding == FloodingMode::Evpn)
    }

    /// The segment an access port `node:interface` belongs to.
    pub fn segment_of_access(&self, node: &str, interface: &str) -> Option<&SegmentSpec> {
        self.segments
            .iter()
            .find(|s| s.access.iter().any(|e| e.node == node && e.interface == interface))
    }
}

/// A test of the lab's own (`[[validate]]`), netlab-style: one check run
/// on some nodes, retried for `wait` seconds, failing as an error or only
/// as a warning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSpec {
    pub name: String,
    pub description: Option<String>,
    /// Nodes named, and every node of the roles named.
    pub nodes: Vec<String>,
    pub roles: Vec<Role>,
    pub check: TestCheck,
    /// Retry for this many seconds on the nodes that have not passed yet.
    pub wait: Option<u32>,
    /// A failure is only a warning (netlab's `level: warning`).
    pub warning: bool,
    /// Said when the test passes / fails.
    pub pass: Option<String>,
    pub fail: Option<String>,
    /// Break something first, then watch the check come back.
    pub fault: Option<TestFault>,
    #[serde(skip)]
    pub spans: TestSpans,
}

/// A fault test: after the check passes, `fault` is made, and the check
/// must pass again within `recover` seconds (and keep passing); then the
/// fault is undone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestFault {
    pub fault: Fault,
    /// Seconds from the fault until the check must pass again.
    pub recover: u32,
}

/// What a fault test breaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// One end of a lab link set down, as `pi-lab lab link NODE:PORT down`
    /// does: its peer loses carrier.
    Link(Endpoint),
    /// A router's routing stopped (its FRR daemons), kept stopped against
    /// its agent until the test ends: its neighbours see the sessions go.
    Routing {
        node: String,
        #[serde(skip)]
        span: Span,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Link(end) => write!(f, "link {end} down"),
            Fault::Routing { node, .. } => write!(f, "routing on {node} stopped"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestSpans {
    pub header: Span,
    pub name: Option<Span>,
    /// One per entry of `nodes`.
    pub nodes: Vec<Span>,
    /// The node or address the check names (neighbour, ping target, route).
    pub target: Option<Span>,
}

/// IPv4 or IPv6, named as netlab's `af` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

impl AddressFamily {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ipv4" => Some(AddressFamily::Ipv4),
            "ipv6" => Some(AddressFamily::Ipv6),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddressFamily::Ipv4 => "ipv4",
            AddressFamily::Ipv6 => "ipv6",
        }
    }

    /// Does `ip` belong to this family?
    pub fn holds(self, ip: &std::net::IpAddr) -> bool {
        matches!(
            (self, ip),
            (AddressFamily::Ipv4, std::net::IpAddr::V4(_))
                | (AddressFamily::Ipv6, std::net::IpAddr::V6(_))
        )
    }
}

/// What a test checks on each of its nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum TestCheck {
    /// The BGP session to `neighbor` (a node name or an address) is in
    /// `state` (default Established).
    Bgp { neighbor: String, state: String },
    /// The OSPF neighbour `neighbor` (node or router id) is `state` (Full).
    Ospf { neighbor: String, state: String },
    /// The IS-IS adjacency with `neighbor` (node or router id) is `state` (Up).
    Isis { neighbor: String, state: String },
    /// `prefix` (an IPv4 prefix, or a node: its loopback /32) is in the
    /// kernel's routing table (or, `present = false`, is not), optionally
    /// from `protocol` (ospf, isis, bgp, kernel, ...).
    Route { prefix: String, present: bool, protocol: Option<String> },
    /// `count` pings to `to` (a node or an address) get an answer; to a
    /// node, over `af` (its first address of that family; default: its
    /// first address, IPv4 before IPv6).
    Ping {
        to: String,
        count: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        af: Option<AddressFamily>,
    },
    /// `command` (run on the node) prints something matching `pattern`.
    Exec { command: String, pattern: String },
    /// vtysh's `command` answers JSON for which `expect` holds
    /// (see [`crate::expr`]).
    Show { command: String, expect: String },
}

impl TestCheck {
    pub fn kind(&self) -> &'static str {
        match self {
            TestCheck::Bgp { .. } => "bgp",
            TestCheck::Ospf { .. } => "ospf",
            TestCheck::Isis { .. } => "isis",
            TestCheck::Route { .. } => "route",
            TestCheck::Ping { .. } => "ping",
            TestCheck::Exec { .. } => "exec",
            TestCheck::Show { .. } => "show",
        }
    }
}
