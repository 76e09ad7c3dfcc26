//! Links: `r1-r2`, lists and dictionaries of nodes, `interfaces`, and
//! link attributes (`mtu`, `prefix`, `vlan.access`, `tc`).

use super::{NEnd, NLink, NNode, Reader, pi_lab_name};
use crate::diagnostics::{Span, did_you_mean, list};
use crate::netlab::yaml::{Entry, Node, Value};

const LINK_KEYS: &[&str] =
    &["mtu", "prefix", "vlan", "interfaces", "type", "name", "tc", "unnumbered", "ipv4", "ipv6"];
/// What one node's end of a link may say (netlab's interface attributes).
const END_KEYS: &[&str] = &["ifname", "tc", "unnumbered", "ipv4", "ipv6", "mtu", "vlan"];

impl Reader<'_> {
    pub(super) fn links(&mut self, node: &Node, nodes: &[NNode]) -> Vec<NLink> {
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
                unnumbered: false,
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
                            unnumbered: false,
                            mtu: None,
                            access: None,
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
                                unnumbered: false,
                                mtu: None,
                                access: None,
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
                            let mut end = self.interface(&e.value, &place);
                            end.node = pi_lab_name(&e.key);
                            end.span = e.key_span.clone();
                            link.ends.push(end);
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
            self.end_attributes(&mut link);
            match link.ends.len() {
                2 => out.push(link),
                n => self.error(item.span.clone(), format!("this link joins {n} nodes; pi-lab links join two"), "split a multi-access (LAN) link into point-to-point links, or put the hosts in a VLAN (vlan.access)"),
            }
        }
        out
    }

    /// `vlan: { access: NAME }`.
    fn access(&mut self, node: &Node, place: &str) -> Option<(String, Span)> {
        if !self.keys(node, &["access"], place) {
            return None;
        }
        let a = node.get("access")?;
        self.string(&a.value, "vlan.access").map(|s| (s, a.value.span.clone()))
    }

    /// `mtu` and `vlan.access` written on an interface are the link's; two
    /// ends that disagree are an error, as a pi-lab link has one of each.
    fn end_attributes(&mut self, link: &mut NLink) {
        for end in &link.ends {
            if let Some(mtu) = end.mtu {
                match link.mtu {
                    Some(other) if other != mtu => self.error(
                        end.span.clone(),
                        format!("{} has MTU {mtu} on this link, the link {other}", end.node),
                        "a pi-lab link has one MTU: set mtu on the link",
                    ),
                    _ => link.mtu = Some(mtu),
                }
            }
            if let Some((vlan, span)) = &end.access {
                match &link.access {
                    Some((other, _)) if other != vlan => self.error(
                        span.clone(),
                        format!("{} puts this link in VLAN {vlan}, the link in {other}", end.node),
                        "a link joins one VLAN: set vlan.access once",
                    ),
                    _ => link.access = Some((vlan.clone(), span.clone())),
                }
            }
        }
    }

    /// Interface data of one node on a link: `ifname`, `tc`, `unnumbered`
    /// (node and span are the caller's to fill in).
    fn interface(&mut self, node: &Node, place: &str) -> NEnd {
        let mut end = NEnd {
            node: String::new(),
            span: 0..0,
            ifname: None,
            tc: None,
            unnumbered: false,
            mtu: None,
            access: None,
        };
        if matches!(node.value, Value::Null) || !self.keys(node, END_KEYS, place) {
            return end;
        }
        end.mtu = node.get("mtu").and_then(|m| self.int(&m.value, "mtu", 1280, 9216));
        end.access = node.get("vlan").and_then(|v| self.access(&v.value, &format!("{place}.vlan")));
        end.ifname = node.get("ifname").and_then(|i| self.string(&i.value, "ifname"));
        end.tc = node.get("tc").and_then(|t| self.tc(&t.value, &format!("{place}.tc")));
        end.unnumbered = self.unnumbered(node, place);
        end
    }

    /// netlab's ways to say a link or interface has no addresses of its
    /// own: `unnumbered: true`, or `ipv4: true` (an unnumbered IPv4
    /// interface; `ipv6: true`, link-local only, goes with it).
    fn unnumbered(&mut self, node: &Node, place: &str) -> bool {
        let mut on = false;
        for key in ["unnumbered", "ipv4", "ipv6"] {
            let Some(e) = node.get(key) else { continue };
            let what = format!("{place}.{key}");
            match (key, &e.value.value) {
                ("unnumbered" | "ipv4", Value::Bool(b)) => on |= *b,
                ("ipv6", Value::Bool(true)) => {}
                ("unnumbered", _) => on |= self.bool(&e.value, &what).unwrap_or(false),
                _ => self.error(
                    e.value.span.clone(),
                    format!("{what} is not supported by pi-lab"),
                    "pi-lab takes ipv4: true (with ipv6: true) for an unnumbered link; addresses come from the addressing pools",
                ),
            }
        }
        on
    }

    fn link_attribute(&mut self, e: &Entry, link: &mut NLink, i: usize, names: &[&str]) {
        let place = format!("links[{i}]");
        match e.key.as_str() {
            "mtu" => link.mtu = self.int(&e.value, "mtu", 1280, 9216),
            "unnumbered" | "ipv4" | "ipv6" => {
                let one = Node { span: e.value.span.clone(), value: Value::Map(vec![e.clone()]) };
                link.unnumbered |= self.unnumbered(&one, &place);
            }
            "prefix" => link.prefix = self.prefix(&e.value, "prefix"),
            "tc" => link.tc = self.tc(&e.value, &format!("{place}.tc")),
            "vlan" => link.access = self.access(&e.value, &format!("{place}.vlan")),
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
                    let Some(n) = iface.get("node") else {
                        self.error(
                            iface.span.clone(),
                            "an interface has no node",
                            "write { node: r1 }",
                        );
                        continue;
                    };
                    let Some(name) = self.string(&n.value, "node") else { continue };
                    let rest: Vec<Entry> = iface
                        .entries()
                        .unwrap_or_default()
                        .iter()
                        .filter(|e| e.key != "node")
                        .cloned()
                        .collect();
                    let attributes = Node { span: iface.span.clone(), value: Value::Map(rest) };
                    let mut end = self.interface(&attributes, &at);
                    end.node = pi_lab_name(&name);
                    end.span = n.value.span.clone();
                    link.ends.push(end);
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
}
