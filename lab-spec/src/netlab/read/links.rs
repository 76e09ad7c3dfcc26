//! Links: `r1-r2`, lists and dictionaries of nodes, `interfaces`, and
//! link attributes (`mtu`, `prefix`, `vlan.access`, `tc`).

use super::{NEnd, NLink, NNode, Reader, pi_lab_name};
use crate::diagnostics::{did_you_mean, list};
use crate::netlab::yaml::{Entry, Node, Value};

const LINK_KEYS: &[&str] = &["mtu", "prefix", "vlan", "interfaces", "type", "name", "tc"];

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
}
