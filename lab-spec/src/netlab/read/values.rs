//! Typed values read from YAML nodes (strings, numbers, booleans, name
//! lists, prefixes, addresses, module lists) and dictionary keys checked,
//! each mistake an error at its position.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::{MODULES, Reader};
use crate::diagnostics::{Span, did_you_mean, list};
use crate::netlab::yaml::{Node, Value};

impl Reader<'_> {
    /// Check the keys of a dictionary at `place`; `unsupported` explains
    /// keys netlab knows and pi-lab does not build.
    pub(super) fn keys(&mut self, node: &Node, allowed: &[&str], place: &str) -> bool {
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

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<u32> {
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

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
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
    pub(super) fn names(&mut self, node: &Node, what: &str) -> Vec<(String, Span)> {
        match &node.value {
            Value::Seq(items) => {
                items.iter().filter_map(|i| Some((self.string(i, what)?, i.span.clone()))).collect()
            }
            Value::Null => Vec::new(),
            _ => self.string(node, what).map(|s| vec![(s, node.span.clone())]).unwrap_or_default(),
        }
    }

    pub(super) fn prefix(&mut self, node: &Node, what: &str) -> Option<(Ipv4Net, Span)> {
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

    /// An IPv6 pool prefix (`addressing.loopback.ipv6: 2001:db8::/48`).
    pub(super) fn prefix6(&mut self, node: &Node, what: &str) -> Option<Ipv6Net> {
        let text = self.string(node, what)?;
        match text.parse::<Ipv6Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.error(
                    node.span.clone(),
                    format!("{what} {net} has host bits set"),
                    format!("did you mean {}?", net.trunc()),
                );
                None
            }
            Err(_) => {
                self.error(
                    node.span.clone(),
                    format!("{what} \"{text}\" is not an IPv6 prefix"),
                    "write ADDRESS/LENGTH, e.g. 2001:db8:1::/48",
                );
                None
            }
        }
    }

    pub(super) fn address(&mut self, node: &Node, what: &str) -> Option<Ipv4Addr> {
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
    pub(super) fn modules(&mut self, node: &Node) -> Vec<(String, Span)> {
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
}
