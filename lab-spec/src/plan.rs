//! The address plan: every loopback, management address, link subnet,
//! segment subnet and host address of a lab, allocated from the pools by
//! name (see `alloc`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::alloc::{Space, Want};
use crate::diagnostics::{Diagnostic, Diagnostics, Span};
use crate::lab::{FloodingMode, Lab, Link, Node, SegmentMode, SegmentSpec, defaults, irb_key};
use crate::node_config::Role;
use crate::validate::{LinkKind, link_kind};

mod blocks;
mod v6;

use blocks::{BlockPool, BlockSpace, BlockWant};
use v6::Addresses6;

/// The `subnet` of an unnumbered link, which has none (left out of the
/// plan's JSON): no real link is a /32.
pub const UNNUMBERED: Ipv4Net = match Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 32) {
    Ok(n) => n,
    Err(_) => panic!("bad prefix"),
};

fn is_unnumbered_subnet(net: &Ipv4Net) -> bool {
    *net == UNNUMBERED
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub lab: String,
    pub management: ManagementPlan,
    pub nodes: BTreeMap<String, NodePlan>,
    /// In the order of the lab file.
    pub links: Vec<LinkPlan>,
    /// In the order of the lab file.
    pub segments: Vec<SegmentPlan>,
    /// Names that did not get their home address (they may move when the
    /// lab changes).
    pub warnings: Diagnostics,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagementPlan {
    pub subnet: Ipv4Net,
    pub controller: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    pub role: Role,
    pub asn: Option<u32>,
    pub loopback: Option<Ipv4Addr>,
    /// Management address with the subnet's prefix length.
    pub management: Ipv4Net,
    /// IPv6 loopback (/128) of a router in a dual-stack lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback6: Option<Ipv6Addr>,
}

impl NodePlan {
    /// The address the node's sFlow agent sends from (and collectors know
    /// it by): its loopback, else its management address.
    pub fn sflow_agent(&self) -> Ipv4Addr {
        self.loopback.unwrap_or(self.management.addr())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlannedLinkKind {
    /// Router to router: /31 and eBGP.
    Underlay,
    /// Host to a leaf's access port.
    Access,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkPlan {
    pub kind: PlannedLinkKind,
    pub a: EndPlan,
    pub b: EndPlan,
    /// The link's subnet (underlay) or the segment's (access);
    /// [`UNNUMBERED`] on an unnumbered link.
    #[serde(skip_serializing_if = "is_unnumbered_subnet")]
    pub subnet: Ipv4Net,
    /// No addresses: eBGP over the interface's IPv6 link-local address.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unnumbered: bool,
    /// The link's IPv6 /64 (numbered underlay) or the segment's (access)
    /// in a dual-stack lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// Segment of an access link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndPlan {
    pub node: String,
    pub interface: String,
    /// `None` on a leaf's access port (it only joins the bridge).
    pub address: Option<Ipv4Net>,
    /// The end's IPv6 address in a dual-stack lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
}

impl LinkPlan {
    /// The link's IPv4 subnet; `None` when it is unnumbered.
    pub fn subnet4(&self) -> Option<Ipv4Net> {
        (!self.unnumbered).then_some(self.subnet)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentPlan {
    pub name: String,
    pub vni: u32,
    pub flooding: FloodingMode,
    /// Left out when `bridge`, so plans without irb read as before.
    #[serde(skip_serializing_if = "SegmentMode::is_bridge")]
    pub mode: SegmentMode,
    pub subnet: Ipv4Net,
    /// Member leaf to its VTEP address (its loopback).
    pub vteps: BTreeMap<String, Ipv4Addr>,
    /// `leaf:interface` access ports.
    pub access: Vec<String>,
    /// Every address in the segment: `host:interface` to a host's, and in
    /// an irb segment `leaf:brVNI` to a member leaf's on its bridge.
    pub hosts: BTreeMap<String, Ipv4Net>,
    /// The segment's IPv6 /64 (`pools.segments6`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// The IPv6 twin of `hosts`, keyed alike.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts6: BTreeMap<String, Ipv6Net>,
}

impl SegmentPlan {
    /// A member leaf's address on its bridge (irb segments only).
    pub fn irb_address(&self, leaf: &str) -> Option<Ipv4Net> {
        self.hosts.get(&irb_key(leaf, self.vni)).copied()
    }

    /// A member leaf's IPv6 address on its bridge (dual-stack irb
    /// segments only).
    pub fn irb_address6(&self, leaf: &str) -> Option<Ipv6Net> {
        self.hosts6.get(&irb_key(leaf, self.vni)).copied()
    }
}

impl Plan {
    /// Allocate every address of a checked lab. Errors: pools that overlap
    /// or are too small, fixed addresses outside their pool or on top of
    /// another one.
    pub fn new(lab: &Lab) -> Result<Plan, Diagnostics> {
        let mut planner = Planner { lab, found: Vec::new() };
        planner.pools_disjoint();
        let loopbacks = planner.loopbacks();
        let management = planner.management();
        let p2p = planner.p2p();
        let segment_nets = planner.segment_subnets();
        let hosts = planner.segment_addresses(&segment_nets);
        let v6 = planner.ipv6(&loopbacks, &p2p, &segment_nets, &hosts);
        let mut diags = Diagnostics::new(lab.source.clone());
        diags.extend(planner.found);
        diags.sort();
        if diags.has_errors() {
            return Err(diags);
        }
        let nodes = lab
            .nodes
            .values()
            .filter_map(|n| {
                let mgmt =
                    Ipv4Net::new(*management.get(&n.name)?, lab.management.subnet.prefix_len())
                        .ok()?;
                let plan = NodePlan {
                    role: n.role,
                    asn: n.asn,
                    loopback: loopbacks.get(&n.name).copied(),
                    management: mgmt,
                    loopback6: v6.loopbacks.get(&n.name).copied(),
                };
                Some((n.name.clone(), plan))
            })
            .collect();
        let links = lab
            .links
            .iter()
            .filter_map(|l| link_plan(lab, l, &p2p, &segment_nets, &hosts, &v6))
            .collect();
        let segments = lab
            .segments
            .iter()
            .filter_map(|s| {
                let subnet = *segment_nets.get(&s.name)?;
                Some(SegmentPlan {
                    name: s.name.clone(),
                    vni: s.vni,
                    flooding: s.flooding,
                    mode: s.mode,
                    subnet,
                    vteps: s
                        .leaves
                        .iter()
                        .filter_map(|l| Some((l.clone(), *loopbacks.get(l)?)))
                        .collect(),
                    access: s.access.iter().map(|e| e.key()).collect(),
                    hosts: hosts.get(&s.name).cloned().unwrap_or_default(),
                    subnet6: v6.segments.get(&s.name).copied(),
                    hosts6: v6.hosts.get(&s.name).cloned().unwrap_or_default(),
                })
            })
            .collect();
        Ok(Plan {
            lab: lab.name.clone(),
            management: ManagementPlan {
                subnet: lab.management.subnet,
                controller: lab.management.controller,
                gateway: lab.management.gateway,
            },
            nodes,
            links,
            segments,
            warnings: diags,
        })
    }

    /// Every address this plan hands out, with what it was handed to.
    pub fn addresses(&self) -> Vec<(Ipv4Addr, String)> {
        let mut out = Vec::new();
        for (name, n) in &self.nodes {
            out.push((n.management.addr(), format!("{name} management")));
            if let Some(lo) = n.loopback {
                out.push((lo, format!("{name} loopback")));
            }
        }
        for l in self.links.iter().filter(|l| l.kind == PlannedLinkKind::Underlay) {
            for end in [&l.a, &l.b] {
                if let Some(a) = end.address {
                    out.push((a.addr(), format!("{}:{}", end.node, end.interface)));
                }
            }
        }
        for s in &self.segments {
            for (host, a) in &s.hosts {
                out.push((a.addr(), host.clone()));
            }
        }
        out
    }
}

/// Hosts of a prefix: all but network and broadcast (a /31 or /32 pool
/// has no such addresses to skip).
#[derive(Debug, Clone, Copy)]
struct Hosts {
    net: Ipv4Net,
    first: u32,
    count: u64,
}

impl Hosts {
    fn new(net: Ipv4Net) -> Self {
        let size = 1u64 << (32 - net.prefix_len());
        if net.prefix_len() >= 31 {
            Hosts { net, first: 0, count: size }
        } else {
            Hosts { net, first: 1, count: size - 2 }
        }
    }

    fn addr(&self, slot: u64) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::from(self.net.network()).wrapping_add(self.first).wrapping_add(slot as u32),
        )
    }

    fn slot_of(&self, addr: Ipv4Addr) -> Option<u64> {
        if !self.net.contains(&addr) {
            return None;
        }
        let offset = u32::from(addr) - u32::from(self.net.network());
        let slot = u64::from(offset.checked_sub(self.first)?);
        (slot < self.count).then_some(slot)
    }

    /// Host number `id` (offset from the network address) as a slot.
    fn slot_of_id(&self, id: u32) -> Option<u64> {
        let size = 1u64 << (32 - self.net.prefix_len());
        if u64::from(id) >= size {
            return None;
        }
        self.slot_of(Ipv4Addr::from(u32::from(self.net.network()).wrapping_add(id)))
    }
}

/// Equal sub-blocks of a pool: /31s of pools.p2p, /24s of pools.segments.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    pool: Ipv4Net,
    prefix: u8,
}

impl BlockPool for Blocks {
    type Net = Ipv4Net;

    fn pool(&self) -> Ipv4Net {
        self.pool
    }

    fn contains(&self, net: &Ipv4Net) -> bool {
        self.pool.contains(net)
    }

    fn count(&self) -> u64 {
        1u64 << (self.prefix - self.pool.prefix_len())
    }

    fn block(&self, slot: u64) -> Ipv4Net {
        let start = u64::from(u32::from(self.pool.network())) + (slot << (32 - self.prefix));
        Ipv4Net::new(Ipv4Addr::from(start as u32), self.prefix).unwrap_or(self.pool)
    }

    /// The slots a fixed subnet inside the pool covers.
    fn slots_of(&self, net: Ipv4Net) -> Range<u64> {
        let base = u32::from(self.pool.network());
        let shift = 32 - u32::from(self.prefix);
        let first = u64::from((u32::from(net.network()) - base) >> shift);
        let last = u64::from((u32::from(net.broadcast()) - base) >> shift);
        first..last + 1
    }
}

/// A pool that node addresses come from, and how to talk about it.
struct Target {
    what: &'static str,
    setting: &'static str,
    net: Ipv4Net,
    span: Option<Span>,
}

struct Planner<'a> {
    lab: &'a Lab,
    found: Vec<Diagnostic>,
}

impl Planner<'_> {
    fn error(&mut self, span: Span, message: String, help: String) {
        self.found.push(Diagnostic::error(span, message).help(help));
    }

    /// Loopback, link, segment and management addresses must never be
    /// confused, so their pools must not overlap.
    fn pools_disjoint(&mut self) {
        let p = &self.lab.pools;
        let pools = [
            ("pools.loopback", p.loopback.into(), p.spans.loopback.clone()),
            ("pools.p2p", p.p2p.into(), p.spans.p2p.clone()),
            ("pools.segments", p.segments.into(), p.spans.segments.clone()),
            ("management.subnet", self.lab.management.subnet.into(), p.spans.management.clone()),
        ];
        self.disjoint(&pools);
    }

    /// An error for each pair of `pools` that overlap.
    fn disjoint(&mut self, pools: &[(&str, IpNet, Option<Span>)]) {
        for (i, (a, a_net, a_span)) in pools.iter().enumerate() {
            for (b, b_net, b_span) in &pools[i + 1..] {
                if !(a_net.contains(&b_net.network()) || b_net.contains(&a_net.network())) {
                    continue;
                }
                // Point at the later of the two that the user wrote.
                let (name, net, other, other_net, span) = match (a_span, b_span) {
                    (Some(x), Some(y)) if x.start > y.start => (a, a_net, b, b_net, x.clone()),
                    (_, Some(y)) => (b, b_net, a, a_net, y.clone()),
                    (Some(x), None) => (a, a_net, b, b_net, x.clone()),
                    (None, None) => (b, b_net, a, a_net, 0..0),
                };
                self.error(
                    span,
                    format!("{name} {net} overlaps {other} {other_net}"),
                    "pools must not overlap; pick a prefix outside the other pools".to_string(),
                );
            }
        }
    }

    fn loopbacks(&mut self) -> BTreeMap<String, Ipv4Addr> {
        let pools = &self.lab.pools;
        let routers: Vec<&Node> = self.lab.nodes.values().filter(|n| n.is_router()).collect();
        let target = Target {
            what: "loopback",
            setting: "pools.loopback",
            net: pools.loopback,
            span: pools.spans.loopback.clone(),
        };
        self.node_addresses(
            &routers,
            target,
            |n| Some((n.loopback?, n.spans.loopback.clone()?)),
            &[],
        )
    }

    fn management(&mut self) -> BTreeMap<String, Ipv4Addr> {
        let m = &self.lab.management;
        let nodes: Vec<&Node> = self.lab.nodes.values().collect();
        let mut reserved = vec![(m.controller, format!("the controller ({})", m.controller))];
        reserved.extend(m.gateway.map(|g| (g, format!("the gateway ({g})"))));
        let target = Target {
            what: "management address",
            setting: "[management] subnet",
            net: m.subnet,
            span: m.spans.subnet.clone(),
        };
        self.node_addresses(
            &nodes,
            target,
            |n| Some((n.management?, n.spans.management.clone()?)),
            &reserved,
        )
    }

    /// One address per node from `target`: the fixed one, else host number
    /// `id`, else allocated by name. `reserved` addresses go to no node.
    fn node_addresses(
        &mut self,
        nodes: &[&Node],
        target: Target,
        fixed: impl Fn(&Node) -> Option<(Ipv4Addr, Span)>,
        reserved: &[(Ipv4Addr, String)],
    ) -> BTreeMap<String, Ipv4Addr> {
        let hosts = Hosts::new(target.net);
        let place = format!("{} {}", target.setting, target.net);
        let mut wants = Vec::new();
        for n in nodes {
            let pin = match (fixed(n), n.id) {
                (Some((addr, span)), _) => match hosts.slot_of(addr) {
                    Some(s) => Some((s..s + 1, span)),
                    None => {
                        let problem = if target.net.contains(&addr) {
                            "not a host address of"
                        } else {
                            "outside"
                        };
                        self.error(
                            span,
                            format!("{} {addr} of {} is {problem} {place}", target.what, n.name),
                            format!(
                                "pick a host address in {}, or remove it to have one allocated",
                                target.net
                            ),
                        );
                        continue;
                    }
                },
                (None, Some(id)) => match hosts.slot_of_id(id) {
                    Some(s) => Some((s..s + 1, n.spans.id.clone().unwrap_or(n.spans.name.clone()))),
                    None => {
                        let last = u64::from(hosts.first) + hosts.count.saturating_sub(1);
                        let span = n.spans.id.clone().unwrap_or(n.spans.name.clone());
                        self.error(
                            span,
                            format!("id {id} of {} does not fit in {place}", n.name),
                            format!("ids in {} go from {} to {last}", target.net, hosts.first),
                        );
                        continue;
                    }
                },
                (None, None) => None,
            };
            wants.push(Want {
                key: n.name.clone(),
                owner: n.name.clone(),
                span: n.spans.name.clone(),
                pin,
            });
        }
        let mut space = Space::new(target.what, place, target.span, hosts.count, move |s| {
            hosts.addr(s).to_string()
        });
        space.grow_help = format!("give {} a shorter prefix (more addresses)", target.setting);
        for (addr, owner) in reserved {
            if let Some(slot) = hosts.slot_of(*addr) {
                space.reserve(slot, owner);
            }
        }
        let slots = space.allocate(&wants, &mut self.found);
        let mut out: BTreeMap<String, Ipv4Addr> =
            nodes.iter().filter_map(|n| Some((n.name.clone(), fixed(n)?.0))).collect();
        for (name, slot) in slots {
            out.entry(name).or_insert_with(|| hosts.addr(slot));
        }
        out
    }

    /// Subnets of router-to-router links, by link key.
    fn p2p(&mut self) -> BTreeMap<String, Ipv4Net> {
        let pool = self.lab.pools.p2p;
        let blocks = Blocks { pool, prefix: defaults::P2P_PREFIX.max(pool.prefix_len()) };
        let how = BlockSpace::new(
            ("link subnet", "pools.p2p"),
            ("subnet", "a /31"),
            self.lab.pools.spans.p2p.clone(),
        );
        let wants = self.link_wants(|l| Some((l.subnet?, l.spans.subnet.clone()?)));
        self.blocks(blocks, how, wants)
    }

    /// What numbered router links want, with the subnets `fixed` gives.
    fn link_wants<N>(&self, fixed: impl Fn(&Link) -> Option<(N, Span)>) -> Vec<BlockWant<N>> {
        let lab = self.lab;
        let numbered = lab.links.iter().filter(|l| numbered_underlay(lab, l));
        numbered
            .map(|link| BlockWant {
                key: link.key(),
                owner: format!("link {} - {}", link.a, link.b),
                span: link.spans.header.clone(),
                fixed: fixed(link),
            })
            .collect()
    }

    /// What segments want, with the subnets `fixed` gives.
    fn segment_wants<N>(
        &self,
        fixed: impl Fn(&SegmentSpec) -> Option<(N, Span)>,
    ) -> Vec<BlockWant<N>> {
        let segments = self.lab.segments.iter();
        segments
            .map(|seg| BlockWant {
                key: seg.name.clone(),
                owner: format!("segment {}", seg.name),
                span: seg.spans.name.clone().unwrap_or(seg.spans.header.clone()),
                fixed: fixed(seg),
            })
            .collect()
    }

    /// Subnets of segments, by segment name.
    fn segment_subnets(&mut self) -> BTreeMap<String, Ipv4Net> {
        let pool = self.lab.pools.segments;
        let blocks = Blocks { pool, prefix: defaults::SEGMENT_PREFIX.max(pool.prefix_len()) };
        let how = BlockSpace::new(
            ("segment subnet", "pools.segments"),
            ("subnet", "a subnet"),
            self.lab.pools.spans.segments.clone(),
        );
        let wants = self.segment_wants(|s| Some((s.subnet?, s.spans.subnet.clone()?)));
        self.blocks(blocks, how, wants)
    }

    /// Addresses in each segment, hosts' (`host:interface`) and irb
    /// leaves' (`leaf:brVNI`) from one allocator, so none collide.
    fn segment_addresses(
        &mut self,
        nets: &BTreeMap<String, Ipv4Net>,
    ) -> BTreeMap<String, BTreeMap<String, Ipv4Net>> {
        let mut wants: BTreeMap<String, Vec<Want>> = BTreeMap::new();
        for link in &self.lab.links {
            if let Some((host, segment)) = host_end(self.lab, link) {
                let want = Want {
                    key: host.key(),
                    owner: host.key(),
                    span: host.spans.whole.clone(),
                    pin: None,
                };
                wants.entry(segment).or_default().push(want);
            }
        }
        for seg in self.lab.segments.iter().filter(|s| s.mode == SegmentMode::Irb) {
            wants.entry(seg.name.clone()).or_default().extend(irb_wants(self.lab, seg));
        }
        let mut out = BTreeMap::new();
        for (segment, wants) in wants {
            let Some(net) = nets.get(&segment).copied() else { continue };
            let hosts = Hosts::new(net);
            let span = self
                .lab
                .segments
                .iter()
                .find(|s| s.name == segment)
                .and_then(|s| s.spans.subnet.clone());
            let mut space = Space::new(
                "host address",
                format!("subnet {net} of segment {segment}"),
                span,
                hosts.count,
                move |s| hosts.addr(s).to_string(),
            );
            space.grow_help = format!("give segment {segment} a larger subnet");
            let slots = space.allocate(&wants, &mut self.found);
            let addrs = slots
                .into_iter()
                .filter_map(|(k, s)| Some((k, Ipv4Net::new(hosts.addr(s), net.prefix_len()).ok()?)))
                .collect();
            out.insert(segment, addrs);
        }
        out
    }
}

/// A router-to-router link with addresses of its own.
fn numbered_underlay(lab: &Lab, link: &Link) -> bool {
    link_kind(lab, link) == Some(LinkKind::Underlay) && !lab.is_unnumbered(link)
}

/// One address per member leaf of an irb segment, on its bridge.
fn irb_wants(lab: &Lab, seg: &SegmentSpec) -> Vec<Want> {
    let is_leaf = |name: &str| lab.nodes.get(name).is_some_and(|n| n.role == Role::Leaf);
    seg.leaves
        .iter()
        .zip(&seg.spans.leaves)
        .filter(|(leaf, _)| is_leaf(leaf))
        .map(|(leaf, span)| Want {
            key: irb_key(leaf, seg.vni),
            owner: irb_key(leaf, seg.vni),
            span: span.clone(),
            pin: None,
        })
        .collect()
}

/// For a host-to-leaf link: the host's end and the segment of the leaf's
/// access port.
fn host_end<'a>(lab: &'a Lab, link: &'a Link) -> Option<(&'a crate::lab::Endpoint, String)> {
    if link_kind(lab, link)? != LinkKind::Access {
        return None;
    }
    let (host, leaf) = if lab.nodes.get(&link.a.node)?.is_router() {
        (&link.b, &link.a)
    } else {
        (&link.a, &link.b)
    };
    let segment = lab.segment_of_access(&leaf.node, &leaf.interface)?;
    Some((host, segment.name.clone()))
}

fn link_plan(
    lab: &Lab,
    link: &Link,
    p2p: &BTreeMap<String, Ipv4Net>,
    segment_nets: &BTreeMap<String, Ipv4Net>,
    hosts: &BTreeMap<String, BTreeMap<String, Ipv4Net>>,
    v6: &Addresses6,
) -> Option<LinkPlan> {
    let end = |e: &crate::lab::Endpoint, address: Option<Ipv4Net>, address6| EndPlan {
        node: e.node.clone(),
        interface: e.interface.clone(),
        address,
        address6,
    };
    match link_kind(lab, link)? {
        LinkKind::Underlay if lab.is_unnumbered(link) => Some(LinkPlan {
            kind: PlannedLinkKind::Underlay,
            a: end(&link.a, None, None),
            b: end(&link.b, None, None),
            subnet: UNNUMBERED,
            unnumbered: true,
            subnet6: None,
            segment: None,
            mtu: link.mtu,
        }),
        LinkKind::Underlay => {
            let net = *p2p.get(&link.key())?;
            // A /31 uses both addresses (RFC 3021); a /30 skips network and broadcast.
            let first = if net.prefix_len() == 31 { 0 } else { 1 };
            let at = |i: u32| {
                Ipv4Net::new(Ipv4Addr::from(u32::from(net.network()) + first + i), net.prefix_len())
                    .ok()
            };
            // The end that sorts first gets the lower address, so that
            // swapping a and b changes no address (as for the subnet).
            let (a, b) = if link.a.key() <= link.b.key() { (0, 1) } else { (1, 0) };
            let net6 = v6.links.get(&link.key()).copied();
            let at6 = |i| net6.and_then(|n| v6::link_end(n, i));
            Some(LinkPlan {
                kind: PlannedLinkKind::Underlay,
                a: end(&link.a, at(a), at6(a)),
                b: end(&link.b, at(b), at6(b)),
                subnet: net,
                unnumbered: false,
                subnet6: net6,
                segment: None,
                mtu: link.mtu,
            })
        }
        LinkKind::Access => {
            let (host, segment) = host_end(lab, link)?;
            let address = hosts.get(&segment)?.get(&host.key()).copied();
            let address6 = v6.hosts.get(&segment).and_then(|h| h.get(&host.key())).copied();
            let addr_of = |e: &crate::lab::Endpoint| {
                if e.key() == host.key() { (address, address6) } else { (None, None) }
            };
            let (a4, a6) = addr_of(&link.a);
            let (b4, b6) = addr_of(&link.b);
            Some(LinkPlan {
                kind: PlannedLinkKind::Access,
                a: end(&link.a, a4, a6),
                b: end(&link.b, b4, b6),
                subnet: *segment_nets.get(&segment)?,
                unnumbered: false,
                subnet6: v6.segments.get(&segment).copied(),
                segment: Some(segment),
                mtu: link.mtu,
            })
        }
    }
}
