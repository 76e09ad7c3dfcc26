//! `[nodes.NAME]`: each node's role, numbers, addresses, LED and FRR lines.

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::values::{ipv4, ipv6, mac, name_ok, role, serial};
use super::{ASN_RANGE, Reader, Table, Value};
use crate::diagnostics::Span;
use crate::lab::{Node, NodeSpans};
use crate::node_config::{Led, Role};

const NODE_KEYS: &[&str] =
    &["role", "asn", "id", "serial", "mac", "management", "loopback", "loopback6", "led", "frr"];

impl Reader {
    pub(super) fn nodes(&mut self, doc: &Table) -> BTreeMap<String, Node> {
        let mut nodes = BTreeMap::new();
        let Some(value) = doc.get("nodes") else {
            self.error(
                0..0,
                "the lab has no nodes",
                "add nodes as [nodes.NAME] tables with a role",
            );
            return nodes;
        };
        let Some(t) = self.table(value, "nodes", "the lab file") else { return nodes };
        if t.is_empty() {
            self.error(
                value.span(),
                "the lab has no nodes",
                "add nodes as [nodes.NAME] tables with a role",
            );
        }
        for (key, value) in t.iter() {
            let name = key.get_ref().to_string();
            if let Err((message, help)) = name_ok(&name, "node name") {
                self.error(key.span(), message, help);
            }
            if let Some(node) = self.node(&name, key.span(), value) {
                nodes.insert(name, node);
            }
        }
        nodes
    }

    fn node(&mut self, name: &str, name_span: Span, value: &Value) -> Option<Node> {
        let place = format!("[nodes.{name}]");
        let t = self.table(value, name, "[nodes]")?;
        self.keys(t, NODE_KEYS, &place);
        let role = self.converted(t, "role", &place, role);
        let role = self.required(
            role,
            t,
            "role",
            &place,
            &name_span,
            "add role = \"router\", \"spine\", \"leaf\" or \"host\"",
        );
        let asn = self.integer(t, "asn", &place, ASN_RANGE);
        let id = self.integer(t, "id", &place, 1..=65534);
        let serial = self.converted(t, "serial", &place, serial);
        let mac = self.converted(t, "mac", &place, mac);
        let management = self.converted(t, "management", &place, |s| ipv4(s, "management address"));
        let loopback = self.converted(t, "loopback", &place, |s| ipv4(s, "loopback address"));
        let loopback6 =
            self.converted(t, "loopback6", &place, |s| ipv6(s, "IPv6 loopback address"));
        let led = self.led(t, &place);
        let frr = self.string(t, "frr", &place);
        let (role, role_span) = role?;
        let is_host = role == Role::Host;
        if is_host {
            if let Some((_, span)) = &asn {
                self.error(
                    span.clone(),
                    format!("host {name} has an asn"),
                    "hosts do not run BGP; remove asn",
                );
            }
            let loopbacks = [loopback.as_ref().map(|l| &l.1), loopback6.as_ref().map(|l| &l.1)];
            for span in loopbacks.into_iter().flatten() {
                self.error(
                    span.clone(),
                    format!("host {name} has a loopback"),
                    "only routers, spines and leaves have loopbacks; remove it",
                );
            }
            if let Some((_, span)) = &frr {
                self.error(
                    span.clone(),
                    format!("host {name} has frr lines"),
                    "hosts run no FRR; give the lines to a router, spine or leaf",
                );
            }
        }
        Some(Node {
            name: name.to_string(),
            role,
            asn: asn.as_ref().map(|(a, _)| *a as u32),
            id: id.as_ref().map(|(i, _)| *i as u32),
            serial: serial.as_ref().map(|s| s.0.clone()),
            mac: mac.as_ref().map(|m| m.0.clone()),
            management: management.as_ref().map(|m| m.0),
            loopback: loopback.as_ref().map(|l| l.0),
            loopback6: loopback6.as_ref().map(|l| l.0),
            led,
            frr: frr.as_ref().map(|f| f.0.clone()),
            spans: NodeSpans {
                name: name_span,
                role: Some(role_span),
                asn: asn.map(|a| a.1),
                id: id.map(|i| i.1),
                serial: serial.map(|s| s.1),
                mac: mac.map(|m| m.1),
                management: management.map(|m| m.1),
                loopback: loopback.map(|l| l.1),
                loopback6: loopback6.map(|l| l.1),
                frr: frr.map(|f| f.1),
            },
        })
    }

    /// `led = "act"`, `"none"` or `{ gpio = N }`; default the ACT LED.
    fn led(&mut self, t: &Table, place: &str) -> Led {
        let act = Led::Sysfs { name: "ACT".to_string() };
        let Some(value) = t.get("led") else { return act };
        let help = "write led = \"act\" (the on-board LED), led = \"none\", or led = { gpio = 17 }";
        match value.get_ref() {
            DeValue::String(s) if s.eq_ignore_ascii_case("act") => act,
            DeValue::String(s) if s.eq_ignore_ascii_case("none") => Led::None,
            DeValue::Table(lt) => {
                self.keys(lt, &["gpio"], &format!("{place} led"));
                match self.integer(lt, "gpio", place, 0..=27) {
                    Some((pin, _)) => Led::Gpio { pin: pin as u8 },
                    None => {
                        if !lt.contains_key("gpio") {
                            self.error(value.span(), "led table without gpio", help);
                        }
                        act
                    }
                }
            }
            _ => {
                self.error(value.span(), "led must be \"act\", \"none\" or { gpio = N }", help);
                act
            }
        }
    }
}
