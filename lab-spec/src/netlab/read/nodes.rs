//! Nodes and groups: the `nodes` list or dictionary, node attributes, and
//! group attributes (and `bgp.as_list`/`rr_list`) applied to members.

use std::collections::BTreeMap;

use super::{Group, NNode, Reader, pi_lab_name};
use crate::diagnostics::{Span, did_you_mean, list};
use crate::netlab::yaml::{Node, Value};

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
const NODE_BGP_KEYS: &[&str] = &["as", "rr", "advertise_loopback", "next_hop_self"];

impl Reader<'_> {
    /// Group name to (members, the group's dictionary).
    pub(super) fn groups(&mut self, node: &Node) -> Group {
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

    pub(super) fn nodes(&mut self, node: &Node) -> Vec<NNode> {
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
    pub(super) fn apply_groups(&mut self, groups: &Group, nodes: &mut [NNode]) {
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
}
