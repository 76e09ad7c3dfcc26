//! Reading a netlab topology into what pi-lab can build, key by key. What
//! pi-lab cannot build is an error at the key's line and column; what
//! concerns only netlab's runtime (`provider`, `defaults`, node `device`
//! images, ...) is collected to be said once.
//!
//! Here: what is read ([`Topology`]) and the walk over the top level; each
//! part of the topology is read in a module of its own.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::yaml::{Entry, Node};
use crate::diagnostics::{Diagnostic, Span};
use crate::lab::FloodingMode;

mod links;
mod nodes;
mod routing;
mod tc;
mod validate;
mod values;
mod vlans;

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
const OSPF_KEYS: &[&str] = &["area", "timers", "af"];
const ISIS_KEYS: &[&str] = &["area", "type", "instance", "af"];

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
    /// `unnumbered: true` on this end's interface.
    pub unnumbered: bool,
    /// `mtu` and `vlan.access` on this end's interface: the link's, as
    /// netlab allows either place.
    pub mtu: Option<u32>,
    pub access: Option<(String, Span)>,
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
    /// `unnumbered: true` on the link.
    pub unnumbered: bool,
}

impl NLink {
    /// Unnumbered on the link or on either of its interfaces: netlab
    /// allows both, and on a point-to-point link they mean the same.
    pub fn is_unnumbered(&self) -> bool {
        self.unnumbered || self.ends.iter().any(|e| e.unnumbered)
    }
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
    /// `ping('h2')`, `ping('h2',af='ipv6')`
    Ping(String, Option<crate::lab::AddressFamily>),
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
    /// `addressing.{loopback,p2p,lan}.ipv6`.
    pub loopback6_pool: Option<Ipv6Net>,
    pub p2p6_pool: Option<Ipv6Net>,
    pub lan6_pool: Option<Ipv6Net>,
    /// `addressing.p2p.unnumbered: true`: every point-to-point link.
    pub p2p_unnumbered: bool,
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

    pub fn line(&self, offset: usize) -> usize {
        self.text.get(..offset).map_or(0, |t| t.matches('\n').count() + 1)
    }
}

/// netlab names are identifiers (`leaf_1`); pi-lab names are host names.
pub fn pi_lab_name(name: &str) -> String {
    name.replace('_', "-")
}
