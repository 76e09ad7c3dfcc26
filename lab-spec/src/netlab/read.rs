//! Reading a netlab topology into what pi-lab can build, key by key. What
//! pi-lab cannot build is an error at the key's line and column; what
//! concerns only netlab's runtime (`provider`, `defaults`, node `device`
//! images, ...) is collected to be said once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::yaml::{Entry, Node, Value};
use crate::diagnostics::{Diagnostic, Span, did_you_mean, list};
use crate::lab::FloodingMode;

/// Modules pi-lab builds.
pub const MODULES: &[&str] = &["bgp", "ospf", "isis", "vlan", "vxlan", "evpn"];

const TOP_KEYS: &[&str] = &[
    "name",
    "provider",
    "defaults",
    "version",
    "tools",
    "message",
    "addressing",
    "module",
    "nodes",
    "groups",
    "links",
    "bgp",
    "ospf",
    "isis",
    "vlans",
    "vlan",
    "vxlan",
    "evpn",
    "validate",
];
/// Top-level keys that only steer netlab's runtime.
const RUNTIME_TOP: &[&str] = &["provider", "defaults", "version", "tools", "message"];
const NODE_KEYS: &[&str] = &[
    "name", "id", "module", "device", "role", "mgmt", "loopback", "bgp", "ospf", "isis", "group",
    "box", "image", "provider", "cpu", "memory",
];
/// Node keys that only steer how netlab starts the node.
const RUNTIME_NODE: &[&str] = &["device", "box", "image", "provider", "cpu", "memory"];
const GROUP_KEYS: &[&str] = &[
    "members",
    "module",
    "device",
    "role",
    "bgp",
    "ospf",
    "isis",
    "node_data",
    "box",
    "image",
    "provider",
    "cpu",
    "memory",
];
const LINK_KEYS: &[&str] = &["mtu", "prefix", "vlan", "interfaces", "type", "name", "tc"];
const POOLS: &[&str] = &["loopback", "p2p", "lan", "mgmt", "router_id"];
const POOL_KEYS: &[&str] = &["ipv4", "prefix", "start", "mac"];
const BGP_KEYS: &[&str] = &["as", "as_list", "rr_list", "advertise_loopback", "next_hop_self"];
const NODE_BGP_KEYS: &[&str] = &["as", "rr", "advertise_loopback", "next_hop_self"];
const OSPF_KEYS: &[&str] = &["area", "timers", "af"];
const ISIS_KEYS: &[&str] = &["area", "type", "instance", "af"];
const VLAN_KEYS: &[&str] = &["id", "vni", "prefix", "ipv4", "mode", "evpn"];

/// netlab's own defaults where the topology says nothing.
pub mod netlab_defaults {
    /// First VLAN id netlab assigns (`vlan.start_vlan_id`).
    pub const START_VLAN_ID: u32 = 1000;
    /// netlab's VNI for a VLAN without one: this plus the VLAN id
    /// (`vxlan.start_vni`).
    pub const START_VNI: u32 = 100_000;
    /// Management addresses start after this host number (`mgmt.start`).
    pub const MGMT_START: u32 = 100;
}

/// A node as the topology describes it.
#[derive(Debug, Clone, Default)]
pub struct NNode {
    /// pi-lab's name for it (netlab's with `_` made `-`).
    pub name: String,
    pub span: Span,
    pub id: Option<u32>,
    pub modules: Option<Vec<(String, Span)>>,
    pub host: bool,
    pub asn: Option<(u32, Span)>,
    pub rr: bool,
    pub mgmt: Option<Ipv4Addr>,
    pub loopback: Option<Ipv4Addr>,
    /// Groups the node names itself (`group: [ leaves ]`).
    pub groups: Vec<(String, Span)>,
}

/// One node on a link, and the interface name if the topology fixes it.
#[derive(Debug, Clone)]
pub struct NEnd {
    pub node: String,
    pub span: Span,
    pub ifname: Option<String>,
    /// This end's `tc`, as pi-lab writes it (over the link's).
    pub tc: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NLink {
    pub span: Span,
    pub ends: Vec<NEnd>,
    pub mtu: Option<u32>,
    pub prefix: Option<(Ipv4Net, Span)>,
    /// `vlan.access`: the VLAN whose access port this link is.
    pub access: Option<(String, Span)>,
    /// `tc` (link impairment, both ends), as pi-lab writes it.
    pub tc: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NVlan {
    pub name: String,
    pub span: Span,
    pub id: Option<u32>,
    pub vni: Option<u32>,
    pub prefix: Option<(Ipv4Net, Span)>,
}

/// A netlab validation test pi-lab can run: `plugin: FUNCTION(ARGS)`.
#[derive(Debug, Clone)]
pub struct NTest {
    pub name: String,
    pub description: Option<String>,
    pub nodes: Vec<String>,
    pub wait: Option<u32>,
    pub level_warning: bool,
    pub pass: Option<String>,
    pub fail: Option<String>,
    pub check: NCheck,
}

#[derive(Debug, Clone)]
pub enum NCheck {
    /// `ping('h2')`
    Ping(String),
    /// `bgp_neighbor(node.bgp.neighbors, 'r2')`
    Bgp(String),
    /// `ospf_neighbor(nodes.r2.ospf.router_id)` or `ospf_neighbor('r2')`
    Ospf(String),
    /// `isis_neighbor('r2')`
    Isis(String),
}

/// The IGP settings of one protocol.
#[derive(Debug, Clone, Default)]
pub struct NIgp {
    pub area: Option<(String, Span)>,
    pub hello: Option<u32>,
    pub dead: Option<u32>,
}

/// Everything read from the topology.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub name: Option<(String, Span)>,
    pub loopback_pool: Option<Ipv4Net>,
    pub p2p_pool: Option<Ipv4Net>,
    pub lan_pool: Option<Ipv4Net>,
    pub mgmt: Option<Ipv4Net>,
    pub mgmt_start: Option<u32>,
    pub modules: Option<Vec<(String, Span)>>,
    pub nodes: Vec<NNode>,
    pub links: Vec<NLink>,
    pub vlans: Vec<NVlan>,
    pub bgp_as: Option<(u32, Span)>,
    pub ospf: NIgp,
    pub isis: NIgp,
    pub vxlan_flooding: Option<FloodingMode>,
    pub vxlan_vlans: Option<Vec<(String, Span)>>,
    pub evpn_vlans: Option<Vec<(String, Span)>>,
    pub tests: Vec<NTest>,
}

/// Reads the tree; collects errors and what it ignored.
#[derive(Debug)]
pub struct Reader<'t> {
    pub text: &'t str,
    pub found: Vec<Diagnostic>,
    /// Runtime settings left to netlab, with where they were written.
    pub ignored: Vec<(String, Span)>,
    /// `bgp.as_list` members (with their AS) and `bgp.rr_list` members
    /// (without), applied once the nodes are read.
    pending: Vec<Pending>,
}

type Group = BTreeMap<String, (Vec<(String, Span)>, Node)>;

/// A node named in `bgp.as_list` (with its AS) or `bgp.rr_list` (without).
type Pending = (String, Span, Option<(u32, Span)>);

impl<'t> Reader<'t> {
    pub fn new(text: &'t str) -> Self {
        Reader { text, found: Vec::new(), ignored: Vec::new(), pending: Vec::new() }
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.found.push(Diagnostic::error(span, message).help(help));
    }

    fn ignore(&mut self, what: String, span: Span) {
        self.ignored.push((what, span));
    }

    /// Check the keys of a dictionary at `place`; `unsupported` explains
    /// keys netlab knows and pi-lab does not build.
    fn keys(&mut self, node: &Node, allowed: &[&str], place: &str) -> bool {
        let Some(entries) = node.entries() else {
            let what = node.type_name();
            self.error(
                node.span.clone(),
                format!("{place} must be a dictionary, found {what}"),
                "write KEY: VALUE lines under it",
            );
            return false;
        };
        for e in entries {
            if allowed.contains(&e.key.as_str()) {
                continue;
            }
            let help = match did_you_mean(&e.key, allowed) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => format!("pi-lab reads these keys in {place}: {}", list(allowed)),
            };
            let key =
                if place == "the topology" { e.key.clone() } else { format!("{place}.{}", e.key) };
            self.error(e.key_span.clone(), format!("{key} is not supported by pi-lab"), help);
        }
        true
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => {
                let found = node.type_name();
                self.error(
                    node.span.clone(),
                    format!("{what} must be a string, found {found}"),
                    format!("write {what}: TEXT"),
                );
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<u32> {
        match &node.value {
            Value::Int(i) if (min..=max).contains(i) => u32::try_from(*i).ok(),
            Value::Int(i) => {
                self.error(
                    node.span.clone(),
                    format!("{what} {i} is out of range"),
                    format!("use {min} to {max}"),
                );
                None
            }
            Value::Str(s) => match s.parse::<i64>() {
                Ok(i) if (min..=max).contains(&i) => u32::try_from(i).ok(),
                _ => {
                    self.error(
                        node.span.clone(),
                        format!("{what} \"{s}\" is not a number from {min} to {max}"),
                        format!("write {what}: N"),
                    );
                    None
                }
            },
            _ => {
                let found = node.type_name();
                self.error(
                    node.span.clone(),
                    format!("{what} must be a number, found {found}"),
                    format!("write {what}: N"),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if ["yes", "true", "on"].contains(&s.to_lowercase().as_str()) => {
                Some(true)
            }
            Value::Str(s) if ["no", "false", "off"].contains(&s.to_lowercase().as_str()) => {
                Some(false)
            }
            _ => {
                let found = node.type_name();
                self.error(
                    node.span.clone(),
                    format!("{what} must be true or false, found {found}"),
                    format!("write {what}: true"),
                );
                None
            }
        }
    }

    /// A list of names; a single name counts as a list of one.
    fn names(&mut self, node: &Node, what: &str) -> Vec<(String, Span)> {
        match &node.value {
            Value::Seq(items) => {
                items.iter().filter_map(|i| Some((self.string(i, what)?, i.span.clone()))).collect()
            }
            Value::Null => Vec::new(),
            _ => self.string(node, what).map(|s| vec![(s, node.span.clone())]).unwrap_or_default(),
        }
    }

    fn prefix(&mut self, node: &Node, what: &str) -> Option<(Ipv4Net, Span)> {
        // `prefix: 10.1.0.0/30` or `prefix: { ipv4: 10.1.0.0/30 }`.
        let (text_node, span) = match node.get("ipv4") {
            Some(e) => {
                for other in node.entries().unwrap_or_default().iter().filter(|e| e.key != "ipv4") {
                    self.error(
                        other.key_span.clone(),
                        format!("{what}.{} is not supported by pi-lab", other.key),
                        "pi-lab plans IPv4 only; keep ipv4",
                    );
                }
                (&e.value, e.value.span.clone())
            }
            None => (node, node.span.clone()),
        };
        let text = self.string(text_node, what)?;
        match text.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some((net, span)),
            Ok(net) => {
                self.error(
                    span,
                    format!("{what} {net} has host bits set"),
                    format!("did you mean {}?", net.trunc()),
                );
                None
            }
            Err(_) => {
                self.error(
                    span,
                    format!("{what} \"{text}\" is not an IPv4 prefix"),
                    "write ADDRESS/LENGTH, e.g. 10.1.0.0/16",
                );
                None
            }
        }
    }

    fn address(&mut self, node: &Node, what: &str) -> Option<Ipv4Addr> {
        let node = match node.get("ipv4") {
            Some(e) => &e.value,
            None => node,
        };
        let text = self.string(node, what)?;
        // netlab writes host addresses with their length (10.0.0.1/32).
        let bare = text.split('/').next().unwrap_or(&text);
        match bare.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    node.span.clone(),
                    format!("{what} \"{text}\" is not an IPv4 address"),
                    "write a dotted quad, e.g. 10.0.0.1",
                );
                None
            }
        }
    }

    /// Modules of the lab or a node: known ones kept, others refused.
    fn modules(&mut self, node: &Node) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for (name, span) in self.names(node, "module") {
            if MODULES.contains(&name.as_str()) {
                out.push((name, span));
            } else {
                let help = match did_you_mean(&name, MODULES) {
                    Some(m) => format!("did you mean \"{m}\"?"),
                    None => format!("pi-lab builds the modules {}; remove {name}", list(MODULES)),
                };
                self.error(span, format!("module {name} is not supported by pi-lab"), help);
            }
        }
        out
    }

    pub fn topology(&mut self, doc: &Node) -> Topology {
        let mut topo = Topology::default();
        if !self.keys(doc, TOP_KEYS, "the topology") {
            return topo;
        }
        let entries = doc.entries().unwrap_or_default();
        let mut groups: Group = BTreeMap::new();
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                k if RUNTIME_TOP.contains(&k) => self.ignore_tree(k, e),
                "name" => topo.name = self.string(v, "name").map(|s| (s, v.span.clone())),
                "addressing" => self.addressing(v, &mut topo),
                "module" => topo.modules = Some(self.modules(v)),
                "bgp" => self.bgp(v, &mut topo),
                "ospf" => topo.ospf = self.igp(v, "ospf", OSPF_KEYS),
                "isis" => topo.isis = self.igp(v, "isis", ISIS_KEYS),
                "vlans" => topo.vlans = self.vlans(v),
                "vlan" => self.vlan_settings(v),
                "vxlan" => self.vxlan(v, &mut topo),
                "evpn" => self.evpn(v, &mut topo),
                "groups" => groups = self.groups(v),
                _ => {}
            }
        }
        // Nodes before links (links name nodes); groups add to nodes.
        if let Some(e) = doc.get("nodes") {
            topo.nodes = self.nodes(&e.value);
        } else {
            self.error(0..0, "the topology has no nodes", "add nodes: [ r1, r2 ]");
        }
        self.apply_groups(&groups, &mut topo.nodes);
        if let Some(e) = doc.get("links") {
            topo.links = self.links(&e.value, &topo.nodes);
        }
        if let Some(e) = doc.get("validate") {
            topo.tests = self.tests(&e.value);
        }
        topo
    }

    /// Every key under a runtime setting, named as netlab writes it.
    fn ignore_tree(&mut self, prefix: &str, e: &Entry) {
        match e.value.entries() {
            Some(children) if !children.is_empty() => {
                for c in children {
                    self.ignore_tree(&format!("{prefix}.{}", c.key), c);
                }
            }
            _ => self.ignore(prefix.to_string(), e.key_span.clone()),
        }
    }

    fn addressing(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, POOLS, "addressing") {
            return;
        }
        for e in node.entries().unwrap_or_default() {
            let place = format!("addressing.{}", e.key);
            if !self.keys(&e.value, POOL_KEYS, &place) {
                continue;
            }
            let ipv4 = e
                .value
                .get("ipv4")
                .and_then(|p| self.prefix(&p.value, &format!("{place}.ipv4")).map(|x| x.0));
            if let Some(p) = e.value.get("prefix") {
                let want = if e.key == "p2p" {
                    31
                } else if e.key == "loopback" || e.key == "router_id" {
                    32
                } else {
                    24
                };
                if let Some(len) = self.int(&p.value, &format!("{place}.prefix"), 1, 32)
                    && len != want
                {
                    self.error(
                        p.value.span.clone(),
                        format!("{place}.prefix {len} differs from pi-lab's /{want}"),
                        format!("pi-lab allocates /{want}s from {}; remove prefix", e.key),
                    );
                }
            }
            if let Some(m) = e.value.get("mac") {
                self.ignore(format!("{place}.mac"), m.key_span.clone());
            }
            match e.key.as_str() {
                "loopback" => topo.loopback_pool = ipv4,
                "p2p" => topo.p2p_pool = ipv4,
                "lan" => topo.lan_pool = ipv4,
                "router_id" => {
                    if ipv4.is_some() {
                        self.error(
                            e.key_span.clone(),
                            "addressing.router_id is not supported by pi-lab",
                            "router ids are the loopbacks; set addressing.loopback",
                        );
                    }
                }
                _ => {
                    topo.mgmt = ipv4;
                    if let Some(s) = e.value.get("start") {
                        topo.mgmt_start = self.int(&s.value, "addressing.mgmt.start", 1, 65534);
                    }
                }
            }
            if e.key != "mgmt"
                && let Some(s) = e.value.get("start")
            {
                self.error(
                    s.key_span.clone(),
                    format!("{place}.start is not supported by pi-lab"),
                    "only the mgmt pool has a start",
                );
            }
        }
    }

    fn bgp(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, BGP_KEYS, "bgp") {
            return;
        }
        for e in node.entries().unwrap_or_default() {
            match e.key.as_str() {
                "as" => topo.bgp_as = self.asn(&e.value, "bgp.as"),
                "as_list" => self.as_list(&e.value),
                "rr_list" => {
                    for (name, span) in self.names(&e.value, "bgp.rr_list") {
                        self.pending.push((name, span, None));
                    }
                }
                _ => self.true_only(e, "bgp"),
            }
        }
    }

    /// `advertise_loopback` and `next_hop_self` are what pi-lab does
    /// anyway; turning them off is not supported.
    fn true_only(&mut self, e: &Entry, place: &str) {
        if self.bool(&e.value, &format!("{place}.{}", e.key)) == Some(false) {
            self.error(
                e.value.span.clone(),
                format!("{place}.{}: false is not supported by pi-lab", e.key),
                "pi-lab always advertises loopbacks; remove the key",
            );
        }
    }

    fn asn(&mut self, node: &Node, what: &str) -> Option<(u32, Span)> {
        let span = node.span.clone();
        self.int(node, what, 1, 4_294_967_294).map(|a| (a, span))
    }

    /// `as_list: { 65000: { members: [ s1, s2 ] } }`, kept until the nodes
    /// are read.
    fn as_list(&mut self, node: &Node) {
        let Some(entries) = node.entries() else {
            self.error(
                node.span.clone(),
                "bgp.as_list must be a dictionary of AS numbers",
                "write as_list: { 65000: { members: [ r1 ] } }",
            );
            return;
        };
        for e in entries {
            let Ok(asn) = e.key.parse::<u32>() else {
                self.error(
                    e.key_span.clone(),
                    format!("\"{}\" in bgp.as_list is not an AS number", e.key),
                    "write as_list: { 65000: { members: [ r1 ] } }",
                );
                continue;
            };
            if !self.keys(&e.value, &["members"], &format!("bgp.as_list.{asn}")) {
                continue;
            }
            let members =
                e.value.get("members").map(|m| self.names(&m.value, "members")).unwrap_or_default();
            for (name, span) in members {
                self.pending.push((name, span, Some((asn, e.key_span.clone()))));
            }
        }
    }

    fn igp(&mut self, node: &Node, protocol: &str, allowed: &[&str]) -> NIgp {
        let mut igp = NIgp::default();
        if !self.keys(node, allowed, protocol) {
            return igp;
        }
        for e in node.entries().unwrap_or_default() {
            let place = format!("{protocol}.{}", e.key);
            match e.key.as_str() {
                "area" => {
                    igp.area = self.string(&e.value, &place).map(|a| (a, e.value.span.clone()))
                }
                "timers" if self.keys(&e.value, &["hello", "dead"], &place) => {
                    if let Some(h) = e.value.get("hello") {
                        igp.hello = self.int(&h.value, "hello", 1, 600);
                    }
                    if let Some(d) = e.value.get("dead") {
                        igp.dead = self.int(&d.value, "dead", 2, 65535);
                    }
                }
                "type" if self.string(&e.value, &place).is_some_and(|t| t != "level-2") => {
                    self.error(
                        e.value.span.clone(),
                        "pi-lab runs IS-IS at level 2 only",
                        "remove isis.type or write type: level-2",
                    );
                }
                "af" => {
                    let families = match &e.value.value {
                        Value::Map(m) => {
                            m.iter().map(|x| (x.key.clone(), x.key_span.clone())).collect()
                        }
                        _ => self.names(&e.value, &place),
                    };
                    for (af, span) in families.into_iter().filter(|(af, _)| af != "ipv4") {
                        self.error(
                            span,
                            format!("{place} {af} is not supported by pi-lab"),
                            "the underlay is IPv4 only",
                        );
                    }
                }
                "instance" => self.ignore(place, e.key_span.clone()),
                _ => {}
            }
        }
        igp
    }

    fn vlans(&mut self, node: &Node) -> Vec<NVlan> {
        let Some(entries) = node.entries() else {
            self.error(
                node.span.clone(),
                "vlans must be a dictionary of VLAN names",
                "write vlans: { red: { vni: 5000 } }",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let place = format!("vlans.{}", e.key);
            let mut vlan = NVlan {
                name: e.key.clone(),
                span: e.key_span.clone(),
                id: None,
                vni: None,
                prefix: None,
            };
            if matches!(e.value.value, Value::Null) {
                out.push(vlan);
                continue;
            }
            if !self.keys(&e.value, VLAN_KEYS, &place) {
                continue;
            }
            for v in e.value.entries().unwrap_or_default() {
                match v.key.as_str() {
                    "id" => vlan.id = self.int(&v.value, &format!("{place}.id"), 1, 4094),
                    "vni" => vlan.vni = self.int(&v.value, &format!("{place}.vni"), 1, 16_777_215),
                    "prefix" | "ipv4" => {
                        vlan.prefix = self.prefix(&v.value, &format!("{place}.{}", v.key))
                    }
                    "mode" => {
                        if self
                            .string(&v.value, &format!("{place}.mode"))
                            .is_some_and(|m| m != "bridge")
                        {
                            self.error(v.value.span.clone(), format!("{place}.mode: pi-lab does not route between segments"), "write mode: bridge; for leaf addresses without routing, set mode = \"irb\" on the segment in the converted lab file");
                        }
                    }
                    _ => {
                        // evpn.* per VLAN (route targets, EVI): not built.
                        self.error(
                            v.key_span.clone(),
                            format!("{place}.{} is not supported by pi-lab", v.key),
                            "pi-lab derives EVPN settings itself; remove it",
                        );
                    }
                }
            }
            out.push(vlan);
        }
        out
    }

    fn vlan_settings(&mut self, node: &Node) {
        if !self.keys(node, &["mode"], "vlan") {
            return;
        }
        if let Some(m) = node.get("mode")
            && self.string(&m.value, "vlan.mode").is_some_and(|m| m != "bridge")
        {
            self.error(
                m.value.span.clone(),
                "vlan.mode: pi-lab does not route between segments",
                "write mode: bridge; for leaf addresses without routing, set mode = \"irb\" on the segments in the converted lab file",
            );
        }
    }

    fn vxlan(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, &["flooding", "vlans"], "vxlan") {
            return;
        }
        if let Some(f) = node.get("flooding") {
            topo.vxlan_flooding = match self.string(&f.value, "vxlan.flooding").as_deref() {
                Some("static") => Some(FloodingMode::Static),
                Some("evpn") => Some(FloodingMode::Evpn),
                Some(other) => {
                    self.error(
                        f.value.span.clone(),
                        format!("vxlan.flooding {other} is not supported"),
                        "write static or evpn",
                    );
                    None
                }
                None => None,
            };
        }
        if let Some(v) = node.get("vlans") {
            topo.vxlan_vlans = Some(self.names(&v.value, "vxlan.vlans"));
        }
    }

    fn evpn(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, &["vlans", "session"], "evpn") {
            return;
        }
        if let Some(v) = node.get("vlans") {
            topo.evpn_vlans = Some(self.names(&v.value, "evpn.vlans"));
        }
        if let Some(s) = node.get("session") {
            for (session, span) in self.names(&s.value, "evpn.session") {
                if session != "ibgp" && session != "ebgp" {
                    self.error(
                        span,
                        format!("evpn.session {session} is not a session type"),
                        "write ibgp or ebgp",
                    );
                }
            }
        }
    }

    /// Group name to (members, the group's dictionary).
    fn groups(&mut self, node: &Node) -> Group {
        let mut out = BTreeMap::new();
        let Some(entries) = node.entries() else {
            self.error(
                node.span.clone(),
                "groups must be a dictionary",
                "write groups: { spines: { members: [ s1 ] } }",
            );
            return out;
        };
        for e in entries {
            let place = format!("groups.{}", e.key);
            if !self.keys(&e.value, GROUP_KEYS, &place) {
                continue;
            }
            let members =
                e.value.get("members").map(|m| self.names(&m.value, "members")).unwrap_or_default();
            out.insert(e.key.clone(), (members, e.value.clone()));
        }
        out
    }

    fn nodes(&mut self, node: &Node) -> Vec<NNode> {
        let mut out: Vec<NNode> = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    match &item.value {
                        Value::Str(name) => out.push(self.new_node(name, item.span.clone())),
                        Value::Map(_) => {
                            let Some(name_entry) = item.get("name") else {
                                self.error(
                                    item.span.clone(),
                                    "a node in the nodes list has no name",
                                    "write - name: r1",
                                );
                                continue;
                            };
                            let Some(name) = self.string(&name_entry.value, "name") else {
                                continue;
                            };
                            let mut n = self.new_node(&name, name_entry.value.span.clone());
                            self.node_attributes(item, &mut n, &format!("nodes.{name}"));
                            out.push(n);
                        }
                        _ => {
                            let found = item.type_name();
                            self.error(
                                item.span.clone(),
                                format!("a node must be a name or a dictionary, found {found}"),
                                "write - r1 or - name: r1",
                            );
                        }
                    }
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    let mut n = self.new_node(&e.key, e.key_span.clone());
                    if !matches!(e.value.value, Value::Null) {
                        self.node_attributes(&e.value, &mut n, &format!("nodes.{}", e.key));
                    }
                    out.push(n);
                }
            }
            _ => self.error(
                node.span.clone(),
                "nodes must be a list or a dictionary",
                "write nodes: [ r1, r2 ]",
            ),
        }
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        for n in &out {
            if let Some(first) = seen.get(&n.name) {
                let line = self.line(first.start);
                self.error(
                    n.span.clone(),
                    format!("node {} is defined twice", n.name),
                    format!("the first one is on line {line}"),
                );
            } else {
                seen.insert(n.name.clone(), n.span.clone());
            }
        }
        out
    }

    pub fn line(&self, offset: usize) -> usize {
        self.text.get(..offset).map_or(0, |t| t.matches('\n').count() + 1)
    }

    fn new_node(&mut self, name: &str, span: Span) -> NNode {
        NNode { name: pi_lab_name(name), span, ..NNode::default() }
    }

    /// A node's (or a group's) attributes onto `n`; what `n` has already
    /// wins (node attributes override group attributes).
    fn node_attributes(&mut self, attrs: &Node, n: &mut NNode, place: &str) {
        let group = place.starts_with("groups.");
        if !group && !self.keys(attrs, NODE_KEYS, place) {
            return;
        }
        for e in attrs.entries().unwrap_or_default() {
            let v = &e.value;
            let key = e.key.as_str();
            match key {
                "id" if n.id.is_none() => n.id = self.int(v, &format!("{place}.id"), 1, 250),
                "module" if n.modules.is_none() => n.modules = Some(self.modules(v)),
                "device" => {
                    if self.string(v, "device").as_deref() == Some("linux") {
                        n.host = true;
                    } else {
                        self.ignore(format!("{place}.device"), e.key_span.clone());
                    }
                }
                "role" => match self.string(v, "role").as_deref() {
                    Some("host") => n.host = true,
                    Some("router") | None => {}
                    Some(other) => self.error(
                        v.span.clone(),
                        format!("role {other} is not supported by pi-lab"),
                        "pi-lab nodes are routers or hosts",
                    ),
                },
                "mgmt" if self.keys(v, &["ipv4", "mac", "ifname"], &format!("{place}.mgmt")) => {
                    if let Some(a) = v.get("ipv4") {
                        n.mgmt = self.address(&a.value, "mgmt.ipv4");
                    }
                    for other in v.entries().unwrap_or_default().iter().filter(|x| x.key != "ipv4")
                    {
                        self.ignore(format!("{place}.mgmt.{}", other.key), other.key_span.clone());
                    }
                }
                "loopback" if self.keys(v, &["ipv4"], &format!("{place}.loopback")) => {
                    n.loopback =
                        v.get("ipv4").and_then(|a| self.address(&a.value, "loopback.ipv4"));
                }
                "bgp" if self.keys(v, NODE_BGP_KEYS, &format!("{place}.bgp")) => {
                    for b in v.entries().unwrap_or_default() {
                        match b.key.as_str() {
                            "as" if n.asn.is_none() => n.asn = self.asn(&b.value, "bgp.as"),
                            "rr" => n.rr |= self.bool(&b.value, "bgp.rr").unwrap_or(false),
                            "as" => {}
                            _ => self.true_only(b, &format!("{place}.bgp")),
                        }
                    }
                }
                "ospf" | "isis" => {
                    // Per-node IGP settings must match the lab's: pi-lab has
                    // one area and one set of timers.
                    self.error(
                        e.key_span.clone(),
                        format!("{place}.{key} is not supported by pi-lab"),
                        format!("set {key} settings once for the lab (top-level {key}:)"),
                    );
                }
                "node_data" => self.node_attributes(v, n, place),
                "group" if !group => n.groups = self.names(v, "group"),
                "group" => {}
                k if RUNTIME_NODE.contains(&k) => {
                    self.ignore(format!("{place}.{k}"), e.key_span.clone())
                }
                _ => {}
            }
        }
    }

    /// Group attributes go to members (also through nested groups and
    /// nodes' own `group:` lists); bgp.as_list and bgp.rr_list too.
    fn apply_groups(&mut self, groups: &Group, nodes: &mut [NNode]) {
        for (name, span, asn) in std::mem::take(&mut self.pending) {
            let name = pi_lab_name(&name);
            let Some(n) = nodes.iter_mut().find(|n| n.name == name) else {
                let known: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                self.unknown_node(&name, span, &known);
                continue;
            };
            match asn {
                None => n.rr = true,
                Some(asn) if n.asn.is_none() => n.asn = Some(asn),
                Some(_) => {}
            }
        }
        for n in nodes.iter_mut() {
            for (g, span) in n.groups.clone() {
                match groups.get(&g) {
                    Some((_, attrs)) => self.node_attributes(attrs, n, &format!("groups.{g}")),
                    None => {
                        let known: Vec<&str> = groups.keys().map(String::as_str).collect();
                        let help = format!("the groups are {}", list(&known));
                        self.error(span, format!("unknown group \"{g}\""), help);
                    }
                }
            }
        }
        for (group, (members, attrs)) in groups {
            let mut all = Vec::new();
            self.members(groups, group, members, &mut all, 0);
            for (member, span) in all {
                let name = pi_lab_name(&member);
                let Some(n) = nodes.iter_mut().find(|n| n.name == name) else {
                    let known: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    self.unknown_node(&name, span, &known);
                    continue;
                };
                self.node_attributes(attrs, n, &format!("groups.{group}"));
            }
        }
    }

    /// Members of a group, groups within it expanded.
    fn members(
        &mut self,
        groups: &Group,
        group: &str,
        members: &[(String, Span)],
        out: &mut Vec<(String, Span)>,
        depth: u8,
    ) {
        for (m, span) in members {
            match groups.get(m) {
                Some((inner, _)) if depth < 8 => self.members(groups, m, inner, out, depth + 1),
                Some(_) => self.error(
                    span.clone(),
                    format!("group {group} nests groups too deeply"),
                    "nest groups at most 8 levels",
                ),
                None => out.push((m.clone(), span.clone())),
            }
        }
    }

    pub fn unknown_node(&mut self, name: &str, span: Span, known: &[&str]) {
        let help = match did_you_mean(name, known) {
            Some(n) => format!("did you mean \"{n}\"?"),
            None => format!("the nodes are {}", list(known)),
        };
        self.error(span, format!("unknown node \"{name}\""), help);
    }

    fn links(&mut self, node: &Node, nodes: &[NNode]) -> Vec<NLink> {
        let Value::Seq(items) = &node.value else {
            self.error(node.span.clone(), "links must be a list", "write links: [ r1-r2 ]");
            return Vec::new();
        };
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut link = NLink {
                span: item.span.clone(),
                ends: Vec::new(),
                mtu: None,
                prefix: None,
                access: None,
                tc: None,
            };
            match &item.value {
                Value::Str(s) => {
                    // `r1-r2`: netlab names have no '-'.
                    let mut offset = item.span.start
                        + usize::from(
                            self.text
                                .get(item.span.clone())
                                .is_some_and(|t| t.starts_with(['"', '\''])),
                        );
                    for part in s.split('-') {
                        let span = offset..offset + part.len();
                        offset += part.len() + 1;
                        link.ends.push(NEnd {
                            node: pi_lab_name(part.trim()),
                            span,
                            ifname: None,
                            tc: None,
                        });
                    }
                }
                Value::Seq(members) => {
                    for m in members {
                        if let Some(name) = self.string(m, "link node") {
                            link.ends.push(NEnd {
                                node: pi_lab_name(&name),
                                span: m.span.clone(),
                                ifname: None,
                                tc: None,
                            });
                        }
                    }
                }
                Value::Map(entries) => {
                    for e in entries {
                        if names.contains(&pi_lab_name(&e.key).as_str())
                            && !LINK_KEYS.contains(&e.key.as_str())
                        {
                            let place = format!("links[{i}].{}", e.key);
                            let (ifname, tc) = self.interface(&e.value, &place);
                            link.ends.push(NEnd {
                                node: pi_lab_name(&e.key),
                                span: e.key_span.clone(),
                                ifname,
                                tc,
                            });
                        } else {
                            self.link_attribute(e, &mut link, i, &names);
                        }
                    }
                }
                _ => {
                    let found = item.type_name();
                    self.error(
                        item.span.clone(),
                        format!("a link must be r1-r2, a list or a dictionary, found {found}"),
                        "write - r1-r2",
                    );
                    continue;
                }
            }
            for end in &link.ends {
                if !names.contains(&end.node.as_str()) {
                    self.unknown_node(&end.node, end.span.clone(), &names);
                }
            }
            match link.ends.len() {
                2 => out.push(link),
                n => self.error(item.span.clone(), format!("this link joins {n} nodes; pi-lab links join two"), "split a multi-access (LAN) link into point-to-point links, or put the hosts in a VLAN (vlan.access)"),
            }
        }
        out
    }

    /// Interface data of one node on a link: `ifname` and `tc`.
    fn interface(&mut self, node: &Node, place: &str) -> (Option<String>, Option<String>) {
        if matches!(node.value, Value::Null) || !self.keys(node, &["ifname", "tc"], place) {
            return (None, None);
        }
        let ifname = node.get("ifname").and_then(|i| self.string(&i.value, "ifname"));
        let tc = node.get("tc").and_then(|t| self.tc(&t.value, &format!("{place}.tc")));
        (ifname, tc)
    }

    fn link_attribute(&mut self, e: &Entry, link: &mut NLink, i: usize, names: &[&str]) {
        let place = format!("links[{i}]");
        match e.key.as_str() {
            "mtu" => link.mtu = self.int(&e.value, "mtu", 1280, 9216),
            "prefix" => link.prefix = self.prefix(&e.value, "prefix"),
            "tc" => link.tc = self.tc(&e.value, &format!("{place}.tc")),
            "vlan" => {
                if self.keys(&e.value, &["access"], &format!("{place}.vlan"))
                    && let Some(a) = e.value.get("access")
                {
                    link.access =
                        self.string(&a.value, "vlan.access").map(|s| (s, a.value.span.clone()));
                }
            }
            "type" => {
                if self.string(&e.value, "type").is_some_and(|t| t != "p2p") {
                    self.error(
                        e.value.span.clone(),
                        "pi-lab links are point-to-point",
                        "remove type or write type: p2p",
                    );
                }
            }
            "name" => self.ignore(format!("{place}.name"), e.key_span.clone()),
            "interfaces" => {
                let Value::Seq(ifaces) = &e.value.value else {
                    self.error(
                        e.value.span.clone(),
                        "interfaces must be a list",
                        "write interfaces: [ { node: r1 }, { node: r2 } ]",
                    );
                    return;
                };
                for (j, iface) in ifaces.iter().enumerate() {
                    let at = format!("{place}.interfaces[{j}]");
                    if !self.keys(iface, &["node", "ifname", "tc"], &at) {
                        continue;
                    }
                    let Some(n) = iface.get("node") else {
                        self.error(
                            iface.span.clone(),
                            "an interface has no node",
                            "write { node: r1 }",
                        );
                        continue;
                    };
                    let Some(name) = self.string(&n.value, "node") else { continue };
                    let ifname = iface.get("ifname").and_then(|x| self.string(&x.value, "ifname"));
                    let tc = iface.get("tc").and_then(|t| self.tc(&t.value, &format!("{at}.tc")));
                    link.ends.push(NEnd {
                        node: pi_lab_name(&name),
                        span: n.value.span.clone(),
                        ifname,
                        tc,
                    });
                }
            }
            other => {
                let help = match did_you_mean(other, names) {
                    Some(n) => format!("did you mean node \"{n}\"?"),
                    None => format!("a link holds its nodes and {}", list(LINK_KEYS)),
                };
                self.error(
                    e.key_span.clone(),
                    format!("{place}.{other} is not supported by pi-lab (and is not a node)"),
                    help,
                );
            }
        }
    }

    /// netlab tests pi-lab can run: `plugin:` calls it knows; anything
    /// else (`show`/`exec` with Python in `valid`, `config`) is an error.
    fn tests(&mut self, node: &Node) -> Vec<NTest> {
        let Some(entries) = node.entries() else {
            self.error(node.span.clone(), "validate must be a dictionary of tests", "write validate: { session: { nodes: [ r1 ], plugin: bgp_neighbor(node.bgp.neighbors,'r2') } }");
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let place = format!("validate.{}", e.key);
            let allowed = [
                "description",
                "nodes",
                "plugin",
                "wait",
                "wait_msg",
                "level",
                "pass",
                "fail",
                "devices",
            ];
            if !self.keys(&e.value, &allowed, &place) {
                continue;
            }
            let text = |r: &mut Self, k: &str| e.value.get(k).and_then(|x| r.string(&x.value, k));
            let nodes =
                e.value.get("nodes").map(|n| self.names(&n.value, "nodes")).unwrap_or_default();
            let wait = e.value.get("wait").and_then(|w| self.int(&w.value, "wait", 0, 3600));
            let level_warning = match e.value.get("level") {
                Some(l) => match self.string(&l.value, "level").as_deref() {
                    Some("warning") => true,
                    _ => {
                        self.error(
                            l.value.span.clone(),
                            "level must be warning",
                            "write level: warning, or remove it",
                        );
                        false
                    }
                },
                None => false,
            };
            if let Some(d) = e.value.get("devices") {
                self.ignore(format!("{place}.devices"), d.key_span.clone());
            }
            if let Some(w) = e.value.get("wait_msg") {
                self.ignore(format!("{place}.wait_msg"), w.key_span.clone());
            }
            let Some(plugin) = e.value.get("plugin") else {
                self.error(e.key_span.clone(), format!("test {} has no plugin pi-lab can run", e.key), "pi-lab runs plugin: ping('X'), bgp_neighbor(node.bgp.neighbors,'X'), ospf_neighbor(nodes.X.ospf.router_id) and isis_neighbor('X'); write other tests as [[validate]] in the converted TOML");
                continue;
            };
            let Some(call) = self.string(&plugin.value, "plugin") else { continue };
            let Some(check) = plugin_check(&call) else {
                self.error(plugin.value.span.clone(), format!("plugin {call} is not one pi-lab runs"), "pi-lab runs ping('X'), bgp_neighbor(node.bgp.neighbors,'X'), ospf_neighbor(nodes.X.ospf.router_id) and isis_neighbor('X')");
                continue;
            };
            out.push(NTest {
                name: pi_lab_name(&e.key),
                description: text(self, "description"),
                nodes: nodes.into_iter().map(|(n, _)| pi_lab_name(&n)).collect(),
                wait,
                level_warning,
                pass: text(self, "pass"),
                fail: text(self, "fail"),
                check,
            });
        }
        out
    }
}

/// `ping('h2')`, `bgp_neighbor(node.bgp.neighbors,'r2')`,
/// `ospf_neighbor(nodes.r2.ospf.router_id)`, `isis_neighbor('r2')`.
fn plugin_check(call: &str) -> Option<NCheck> {
    let (function, args) = call.trim().split_once('(')?;
    let args = args.trim_end().strip_suffix(')')?;
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    let quoted = |a: &str| {
        let a = a.trim();
        (a.len() >= 2
            && (a.starts_with('\'') && a.ends_with('\'') || a.starts_with('"') && a.ends_with('"')))
        .then(|| pi_lab_name(&a[1..a.len() - 1]))
    };
    let router_of = |a: &str| {
        // nodes.X.ospf.router_id / nodes.X.loopback.ipv4
        let rest = a.strip_prefix("nodes.")?;
        Some(pi_lab_name(rest.split('.').next()?))
    };
    match function.trim() {
        "ping" => quoted(args.first()?).map(NCheck::Ping),
        "bgp_neighbor" => quoted(args.get(1)?).map(NCheck::Bgp),
        "ospf_neighbor" => {
            let a = args.first()?;
            quoted(a).or_else(|| router_of(a)).map(NCheck::Ospf)
        }
        "isis_neighbor" => quoted(args.first()?).map(NCheck::Isis),
        _ => None,
    }
}

/// netlab names are identifiers (`leaf_1`); pi-lab names are host names.
pub fn pi_lab_name(name: &str) -> String {
    name.replace('_', "-")
}

#[path = "read_tc.rs"]
mod tc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_pi_lab_runs() {
        assert!(matches!(plugin_check("ping('h2')"), Some(NCheck::Ping(h)) if h == "h2"));
        assert!(
            matches!(plugin_check("bgp_neighbor(node.bgp.neighbors,'r_2')"), Some(NCheck::Bgp(h)) if h == "r-2")
        );
        assert!(
            matches!(plugin_check("ospf_neighbor(nodes.s1.ospf.router_id)"), Some(NCheck::Ospf(h)) if h == "s1")
        );
        assert!(
            matches!(plugin_check("isis_neighbor(\"s1\")"), Some(NCheck::Isis(h)) if h == "s1")
        );
        assert!(plugin_check("ospf_prefix('0.0.0.0/0')").is_none());
        assert!(plugin_check("ping").is_none());
    }
}
