//! Checks across the lab file: names that must refer to something, things
//! that must be unique, and links that must make sense for the roles at
//! their ends. Address checks that need the plan live in `plan`.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean, list};
use crate::lab::{Endpoint, Lab, Link, UnderlayProtocol};
use crate::node_config::{InterfaceKind, Role};

/// What the file declares but `Lab` leaves out because of its own errors,
/// already reported: what refers to it is not reported again (an error
/// caused by an earlier error only misleads).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Every node name in the file, including nodes left out of `Lab`.
    pub nodes: Vec<String>,
    /// Access ports (`node`, `interface`) of segments left out of `Lab`.
    pub access_ports: Vec<(String, String)>,
}

pub fn check(lab: &Lab, left_out: &LeftOut, diags: &mut Diagnostics) {
    let declared = &left_out.nodes;
    let mut v = Validator { lab, declared, left_out, found: Vec::new() };
    v.links();
    v.interfaces_used_once();
    v.unique_node_fields();
    v.names_differ_in_more_than_case();
    v.vlans_fit_one_switch();
    v.segments();
    v.bgp_speakers();
    v.unnumbered_links();
    v.ipv6_pools();
    v.tests();
    diags.extend(v.found);
}

struct Validator<'a> {
    lab: &'a Lab,
    declared: &'a [String],
    left_out: &'a LeftOut,
    found: Vec<Diagnostic>,
}

#[path = "validate_tests.rs"]
mod lab_tests;

fn vlan_id(end: &Endpoint) -> Option<u16> {
    match end.kind() {
        InterfaceKind::Vlan { vlan_id, .. } => Some(vlan_id),
        InterfaceKind::Port => None,
    }
}

/// `node:parent.id`: the end moved to VLAN `id` on the same port.
fn with_vlan(end: &Endpoint, id: u16) -> String {
    let parent = end.interface.rsplit_once('.').map_or(end.interface.as_str(), |(p, _)| p);
    format!("{}:{parent}.{id}", end.node)
}

const UNNUMBERED_NEEDS_EBGP: &str = "pi-lab runs unnumbered links with eBGP (BGP unnumbered); set [underlay] protocol = \"ebgp\", or number the links";

/// What a link is, by the roles at its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Router to router: a /31 and an eBGP session.
    Underlay,
    /// Host to a leaf's access port: the host gets a segment address.
    Access,
}

/// The kind of a link whose ends both exist, or why it has none.
pub fn link_kind(lab: &Lab, link: &Link) -> Option<LinkKind> {
    let a = lab.nodes.get(&link.a.node)?;
    let b = lab.nodes.get(&link.b.node)?;
    match (a.is_router(), b.is_router()) {
        (true, true) => Some(LinkKind::Underlay),
        (true, false) | (false, true) => Some(LinkKind::Access),
        (false, false) => None,
    }
}

impl Validator<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.found.push(Diagnostic::error(span, message).help(help));
    }

    /// Line of a byte offset, for "first used at line N".
    fn line(&self, span: &Span) -> usize {
        self.lab.source.line_col(span.start).0
    }

    fn known_node(&mut self, end: &Endpoint, place: &str) -> bool {
        if self.lab.nodes.contains_key(&end.node) {
            return true;
        }
        if self.declared.contains(&end.node) {
            return false;
        }
        let names: Vec<&str> = self.lab.nodes.keys().map(String::as_str).collect();
        let help = match did_you_mean(&end.node, &names) {
            Some(n) => format!("did you mean \"{n}\"? known nodes are {}", list(&names)),
            None if names.is_empty() => "define it as [nodes.NAME]".to_string(),
            None => format!("known nodes are {}", list(&names)),
        };
        self.error(
            end.spans.node.clone(),
            format!("unknown node \"{}\" in {place}", end.node),
            help,
        );
        false
    }

    fn links(&mut self) {
        for link in &self.lab.links {
            let a_ok = self.known_node(&link.a, "link");
            let b_ok = self.known_node(&link.b, "link");
            if link.a.node == link.b.node {
                self.error(
                    link.b.spans.node.clone(),
                    format!("link from {} to itself", link.a.node),
                    "a link joins two different nodes; check the node name in a and b",
                );
                continue;
            }
            if a_ok && b_ok {
                self.link_roles(link);
            }
        }
    }

    /// Router links must not touch access ports; host links must land on
    /// one.
    fn link_roles(&mut self, link: &Link) {
        let lab = self.lab;
        match link_kind(lab, link) {
            Some(LinkKind::Underlay) => {
                for end in [&link.a, &link.b] {
                    if let Some(seg) = lab.segment_of_access(&end.node, &end.interface) {
                        self.error(
                            end.spans.whole.clone(),
                            format!("access interface {end} of segment {} is also used as a router-to-router link", seg.name),
                            format!("use another interface for this link, or remove {end} from the access list of {}", seg.name),
                        );
                    }
                }
            }
            Some(LinkKind::Access) => {
                let (host, other) = if lab.nodes[&link.a.node].is_router() {
                    (&link.b, &link.a)
                } else {
                    (&link.a, &link.b)
                };
                let role = lab.nodes[&other.node].role;
                if role != Role::Leaf {
                    self.error(
                        other.spans.whole.clone(),
                        format!("host {} is linked to {role} {}", host.node, other.node),
                        "hosts attach to an access port of a leaf",
                    );
                } else if lab.segment_of_access(&other.node, &other.interface).is_none()
                    && !self.in_left_out_segment(other)
                {
                    self.error(
                        other.spans.whole.clone(),
                        format!("host {} is linked to {other}, which is not an access port of any segment", host.node),
                        format!("add \"{other}\" to the access list of a [[segments]] entry"),
                    );
                }
                if link.subnet.is_some() {
                    let span = link.spans.subnet.clone().unwrap_or(link.spans.header.clone());
                    self.error(span, "subnet on a host link", "host addresses come from the segment's subnet; set subnet on the [[segments]] entry");
                }
            }
            None => self.error(
                link.a.spans.whole.clone(),
                format!("link between two hosts ({} and {})", link.a.node, link.b.node),
                "hosts attach to an access port of a leaf",
            ),
        }
    }

    fn in_left_out_segment(&self, end: &Endpoint) -> bool {
        self.left_out.access_ports.iter().any(|(n, i)| *n == end.node && *i == end.interface)
    }

    /// Each `node:interface` appears in at most one link and one segment
    /// access list (a host link to an access port is the one allowed pair).
    fn interfaces_used_once(&mut self) {
        let mut in_links: BTreeMap<(String, String), Span> = BTreeMap::new();
        for end in self.lab.links.iter().flat_map(|l| [&l.a, &l.b]) {
            self.once(&mut in_links, end, "in two links");
        }
        let mut in_access: BTreeMap<(String, String), Span> = BTreeMap::new();
        for end in self.lab.segments.iter().flat_map(|s| s.access.iter()) {
            self.once(&mut in_access, end, "as an access port twice");
        }
    }

    fn once(&mut self, seen: &mut BTreeMap<(String, String), Span>, end: &Endpoint, how: &str) {
        let key = (end.node.clone(), end.interface.clone());
        if let Some(first) = seen.get(&key) {
            let line = self.line(first);
            self.error(
                end.spans.interface.clone(),
                format!("interface {end} is used {how}"),
                format!("it is first used on line {line}; give each link its own interface"),
            );
        } else {
            seen.insert(key, end.spans.whole.clone());
        }
    }

    /// Serials, MACs, fixed addresses and ids identify one node each.
    fn unique_node_fields(&mut self) {
        type Getter = fn(&crate::lab::Node) -> Option<(String, Span)>;
        let fields: [(&str, Getter); 6] = [
            ("serial", |n| Some((n.serial.clone()?, n.spans.serial.clone()?))),
            ("mac", |n| Some((n.mac.clone()?, n.spans.mac.clone()?))),
            ("management address", |n| {
                Some((n.management?.to_string(), n.spans.management.clone()?))
            }),
            ("loopback", |n| Some((n.loopback?.to_string(), n.spans.loopback.clone()?))),
            ("IPv6 loopback", |n| Some((n.loopback6?.to_string(), n.spans.loopback6.clone()?))),
            ("id", |n| Some((n.id?.to_string(), n.spans.id.clone()?))),
        ];
        for (what, get) in fields {
            let mut values: Vec<(String, Span, &str)> = self
                .lab
                .nodes
                .values()
                .filter_map(|n| get(n).map(|(v, s)| (v, s, n.name.as_str())))
                .collect();
            values.sort_by_key(|(_, span, _)| span.start);
            let mut first: BTreeMap<String, &str> = BTreeMap::new();
            for (value, span, node) in values {
                match first.get(&value) {
                    Some(owner) => self.error(
                        span,
                        format!("{what} {value} of {node} is also the {what} of {owner}"),
                        format!("each node needs its own {what}"),
                    ),
                    None => {
                        first.insert(value, node);
                    }
                }
            }
        }
    }

    /// Hostnames ignore case: `r2` and `R2` would be one name on the
    /// management network.
    fn names_differ_in_more_than_case(&mut self) {
        let mut nodes: Vec<&crate::lab::Node> = self.lab.nodes.values().collect();
        nodes.sort_by_key(|n| n.spans.name.start);
        let mut first: BTreeMap<String, &str> = BTreeMap::new();
        for node in nodes {
            match first.get(&node.name.to_ascii_lowercase()) {
                Some(other) => self.error(
                    node.spans.name.clone(),
                    format!("node \"{}\" differs from node \"{other}\" only in case", node.name),
                    "hostnames ignore case, so the two would be one name; rename one of them",
                ),
                None => {
                    first.insert(node.name.to_ascii_lowercase(), &node.name);
                }
            }
        }
    }

    /// On boards every link is a VLAN through one managed switch: both
    /// ends of a link carry the same VLAN id, and no VLAN id carries two
    /// links (the switch would join them into one segment). A VLAN at one
    /// end and a whole port (USB adapter) at the other is fine.
    fn vlans_fit_one_switch(&mut self) {
        let mut taken: BTreeSet<u16> =
            self.lab.links.iter().flat_map(|l| [vlan_id(&l.a), vlan_id(&l.b)]).flatten().collect();
        let mut first_use: BTreeMap<u16, usize> = BTreeMap::new();
        for link in &self.lab.links {
            let id = match (vlan_id(&link.a), vlan_id(&link.b)) {
                (Some(a), Some(b)) if a != b => {
                    self.error(
                        link.b.spans.interface.clone(),
                        format!("the ends of link {} - {} carry different VLAN ids, {a} and {b}", link.a, link.b),
                        format!("a switch carries a link as one VLAN: tag both ends alike, e.g. b = \"{}\"", with_vlan(&link.b, a)),
                    );
                    continue;
                }
                (Some(id), _) | (None, Some(id)) => id,
                (None, None) => continue,
            };
            let end = if vlan_id(&link.a).is_some() { &link.a } else { &link.b };
            let line = self.line(&link.spans.header);
            let Some(first) = first_use.get(&id).copied() else {
                first_use.insert(id, line);
                continue;
            };
            let free = (id..=4094).chain(1..id).find(|n| !taken.contains(n));
            let help = match free {
                Some(free) => {
                    taken.insert(free);
                    let ends: Vec<String> = [&link.a, &link.b]
                        .into_iter()
                        .filter(|e| vlan_id(e).is_some())
                        .map(|e| format!("\"{}\"", with_vlan(e, free)))
                        .collect();
                    format!("one switch would join the two links into one segment; give this link the next free VLAN id: {}", ends.join(" and "))
                }
                None => "one switch would join the two links into one segment, and every VLAN id is taken".to_string(),
            };
            self.error(
                end.spans.interface.clone(),
                format!("VLAN {id} already carries the link on line {first}"),
                help,
            );
        }
    }

    fn segments(&mut self) {
        let lab = self.lab;
        let mut vnis: BTreeMap<u32, &str> = BTreeMap::new();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for seg in &lab.segments {
            let vni_span = seg.spans.vni.clone().unwrap_or(seg.spans.header.clone());
            if let Some(other) = vnis.get(&seg.vni) {
                self.error(
                    vni_span,
                    format!("VNI {} of segment {} is also the VNI of {other}", seg.vni, seg.name),
                    "each segment needs its own VNI",
                );
            } else {
                vnis.insert(seg.vni, &seg.name);
            }
            let name_span = seg.spans.name.clone().unwrap_or(seg.spans.header.clone());
            if let Some(first) = names.get(seg.name.as_str()) {
                self.error(
                    name_span,
                    format!("segment {} is defined twice", seg.name),
                    format!("the first one is on line {first}; rename one of them"),
                );
            } else {
                names.insert(&seg.name, self.line(&name_span));
            }
            if seg.leaves.is_empty() {
                self.error(
                    seg.spans.header.clone(),
                    format!("segment {} has no leaves", seg.name),
                    "list its member leaves: leaves = [\"leaf1\", \"leaf2\"]",
                );
            }
            self.members(seg);
            for end in &seg.access {
                if self.known_node(end, "access list") && !seg.leaves.contains(&end.node) {
                    self.error(
                        end.spans.node.clone(),
                        format!(
                            "access port {end} is on {}, which is not a leaf of segment {}",
                            end.node, seg.name
                        ),
                        format!("add \"{}\" to leaves, or use a port of a member leaf", end.node),
                    );
                }
            }
        }
    }

    /// Who runs BGP in which AS. An eBGP underlay needs an AS on every
    /// router. With an IGP underlay BGP is iBGP in one AS, and only where
    /// it is needed: on the nodes that speak EVPN (and on routers given an
    /// AS).
    fn bgp_speakers(&mut self) {
        let lab = self.lab;
        let asn_help = "add asn = N (1 to 4294967294; private ASNs are 64512-65534 and 4200000000-4294967294), or set it once for all nodes in [bgp]";
        if lab.underlay.protocol == UnderlayProtocol::Ebgp {
            for node in lab.nodes.values().filter(|n| n.is_router()) {
                if lab.asn_of(node).is_none() {
                    self.error(
                        node.spans.name.clone(),
                        format!("{} {} has no asn", node.role, node.name),
                        asn_help,
                    );
                }
            }
            return;
        }
        let protocol = match lab.underlay.protocol {
            UnderlayProtocol::Isis => "an IS-IS",
            _ => "an OSPF",
        };
        let mut first: Option<(u32, &str)> = None;
        for node in lab.nodes.values().filter(|n| n.is_router()) {
            let Some(asn) = lab.asn_of(node) else {
                if lab.carries_evpn(node) {
                    self.error(
                        node.spans.name.clone(),
                        format!(
                            "{} {} speaks EVPN, which rides on iBGP, but has no asn",
                            node.role, node.name
                        ),
                        "set the fabric's AS once: [bgp] asn = 65000",
                    );
                }
                continue;
            };
            match first {
                None => first = Some((asn, &node.name)),
                Some((other, owner)) if other != asn => {
                    let span = node.spans.asn.clone().unwrap_or(node.spans.name.clone());
                    self.error(
                        span,
                        format!("{} is in AS {asn} but {owner} is in AS {other}; with {protocol} underlay BGP is iBGP in one AS", node.name),

                        "give every node the same AS (set [bgp] asn once and drop the nodes' asn), or use [underlay] protocol = \"ebgp\" for eBGP between ASes",
                    );
                }
                Some(_) => {}
            }
        }
    }

    /// Unnumbered links join two routers running eBGP, and have no subnet.
    fn unnumbered_links(&mut self) {
        let lab = self.lab;
        let igp = lab.underlay.protocol.igp().is_some();
        if let (true, true, Some(span)) =
            (igp, lab.underlay.unnumbered, lab.underlay.spans.unnumbered.clone())
        {
            self.error(
                span,
                format!("unnumbered links with the {} underlay", lab.underlay.protocol),
                UNNUMBERED_NEEDS_EBGP,
            );
        }
        for link in &lab.links {
            let span = link.spans.unnumbered.clone().unwrap_or(link.spans.header.clone());
            if link.unnumbered == Some(true) {
                if link_kind(lab, link) == Some(LinkKind::Access) {
                    self.error(
                        span.clone(),
                        format!("unnumbered link {} - {} has a host end", link.a, link.b),
                        "only links between routers can be unnumbered; a host takes its address from its segment",
                    );
                    continue;
                }
                if igp && !lab.underlay.unnumbered {
                    self.error(
                        span.clone(),
                        format!("unnumbered link with the {} underlay", lab.underlay.protocol),
                        UNNUMBERED_NEEDS_EBGP,
                    );
                }
            }
            if !lab.is_unnumbered(link) {
                continue;
            }
            let fixed = [("subnet", &link.spans.subnet), ("subnet6", &link.spans.subnet6)];
            for (key, at) in fixed {
                if let Some(at) = at {
                    self.error(
                        at.clone(),
                        format!("{key} on unnumbered link {} - {}", link.a, link.b),
                        "an unnumbered link has no addresses of its own; remove it, or number the link with unnumbered = false",
                    );
                }
            }
        }
    }

    /// IPv6 pools make a lab dual-stack: the loopbacks lead, and what is
    /// fixed in IPv6 needs the pool it belongs to.
    fn ipv6_pools(&mut self) {
        let lab = self.lab;
        let pools = &lab.pools;
        let dual = pools.dual_stack();
        for (key, span) in [("p2p6", &pools.spans.p2p6), ("segments6", &pools.spans.segments6)] {
            if let (false, Some(span)) = (dual, span) {
                self.error(
                    span.clone(),
                    format!("pools.{key} without pools.loopback6"),
                    "a dual-stack lab starts with IPv6 loopbacks: add loopback6 = \"2001:db8::/64\" to [pools]",
                );
            }
        }
        let mut fixed: Vec<(&str, &str, Span)> = Vec::new();
        for n in lab.nodes.values() {
            fixed.extend(n.spans.loopback6.clone().map(|s| ("loopback6", "loopback6", s)));
        }
        for l in &lab.links {
            fixed.extend(l.spans.subnet6.clone().map(|s| ("subnet6", "p2p6", s)));
        }
        for seg in &lab.segments {
            fixed.extend(seg.spans.subnet6.clone().map(|s| ("subnet6", "segments6", s)));
        }
        for (key, pool, span) in fixed {
            let given = match pool {
                "loopback6" => pools.loopback6.is_some(),
                "p2p6" => pools.p2p6.is_some(),
                _ => pools.segments6.is_some(),
            };
            if !given {
                self.error(
                    span,
                    format!("{key} without pools.{pool}"),
                    format!("IPv6 addresses come from the lab's IPv6 pools: add {pool} to [pools], or remove {key}"),
                );
            }
        }
        let numbered =
            |l: &&Link| link_kind(lab, l) == Some(LinkKind::Underlay) && !lab.is_unnumbered(l);
        if let (Some(span), None, Some(link)) =
            (&pools.spans.loopback6, pools.p2p6, lab.links.iter().find(numbered))
        {
            self.error(
                span.clone(),
                format!("a dual-stack lab needs pools.p2p6 for its numbered links (link {} - {} and others)", link.a, link.b),
                "add p2p6 = \"2001:db8:1::/48\" to [pools] (a /64 per link), or make the links unnumbered: [underlay] unnumbered = true",
            );
        }
    }

    /// Members must be leaves: a VTEP needs a leaf's loopback.
    fn members(&mut self, seg: &crate::lab::SegmentSpec) {
        let mut seen: Vec<&str> = Vec::new();
        for (leaf, span) in seg.leaves.iter().zip(&seg.spans.leaves) {
            let span = span.clone();
            if seen.contains(&leaf.as_str()) {
                self.error(
                    span,
                    format!("{leaf} is listed twice in segment {}", seg.name),
                    "list each leaf once",
                );
                continue;
            }
            seen.push(leaf);
            match self.lab.nodes.get(leaf) {
                None if self.declared.contains(leaf) => {}
                None => {
                    let names: Vec<&str> = self.lab.nodes.keys().map(String::as_str).collect();
                    let help = match did_you_mean(leaf, &names) {
                        Some(n) => format!("did you mean \"{n}\"?"),
                        None => format!("known nodes are {}", list(&names)),
                    };
                    self.error(
                        span,
                        format!("unknown node \"{leaf}\" in segment {}", seg.name),
                        help,
                    );
                }
                Some(node) if node.role == Role::Host => self.error(
                    span,
                    format!("segment member {leaf} is a host and has no loopback to be a VTEP"),
                    "VXLAN segments are carried by leaves; list the leaf the host is attached to",
                ),
                Some(node) if node.role != Role::Leaf => self.error(
                    span,
                    format!("segment member {leaf} is a {}, not a leaf", node.role),
                    "VXLAN tunnels end on leaves; list leaves only, or make it role = \"leaf\"",
                ),
                Some(_) => {}
            }
        }
    }
}
