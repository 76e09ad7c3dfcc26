//! Checks of `[[validate]]` entries against the lab: unique names, nodes
//! and roles that exist, and targets (neighbours, ping destinations,
//! route prefixes) that are nodes or addresses, and faults that name a
//! lab link's end.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Validator;
use crate::diagnostics::{Span, did_you_mean, list};
use crate::lab::{AddressFamily, Fault, TestCheck, TestSpec};

impl Validator<'_> {
    pub(super) fn tests(&mut self) {
        let lab = self.lab;
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for test in &lab.tests {
            let span = test.spans.name.clone().unwrap_or(test.spans.header.clone());
            if let Some(line) = names.get(test.name.as_str()) {
                self.error(
                    span,
                    format!("test {} is defined twice", test.name),
                    format!("the first one is on line {line}; rename one of them"),
                );
            } else {
                names.insert(&test.name, self.line(&span));
            }
            for (node, span) in test.nodes.iter().zip(&test.spans.nodes) {
                if !lab.nodes.contains_key(node) && !self.declared.contains(node) {
                    self.unknown(node, span.clone(), &format!("test {}", test.name));
                }
            }
            for role in &test.roles {
                if !lab.nodes.values().any(|n| n.role == *role) {
                    self.error(
                        test.spans.header.clone(),
                        format!("test {} runs on role {role}, which no node has", test.name),
                        "name roles the lab has, or nodes",
                    );
                }
            }
            self.target(test);
            self.ping_family(test);
            self.fault(test);
        }
    }

    /// A cut link must be one end of a lab link; stopped routing, a
    /// router's.
    fn fault(&mut self, test: &TestSpec) {
        let place = format!("the fault of test {}", test.name);
        let end = match test.fault.as_ref().map(|f| &f.fault) {
            Some(Fault::Link(end)) => end,
            Some(Fault::Routing { node, span }) => return self.routing_fault(node, span, &place),
            None => return,
        };
        if !self.known_node(end, &place) {
            return;
        }
        let ports = self.lab.link_ports(&end.node);
        if ports.contains(&end.interface) {
            return;
        }
        let help = match ports.first() {
            Some(first) => format!(
                "cut one of {}'s lab links: {} (e.g. link = \"{}:{first}\")",
                end.node,
                list(&ports.iter().map(String::as_str).collect::<Vec<_>>()),
                end.node
            ),
            None => format!("{} has no lab links; cut a link of a node that has one", end.node),
        };
        self.error(
            end.spans.interface.clone(),
            format!("{end} is not a lab link of {} in {place}", end.node),
            help,
        );
    }

    fn routing_fault(&mut self, node: &str, span: &Span, place: &str) {
        match self.lab.nodes.get(node) {
            None if self.declared.iter().any(|d| d == node) => {}
            None => self.unknown(node, span.clone(), place),
            Some(n) if !n.is_router() => {
                let routers: Vec<&str> = self
                    .lab
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.is_router())
                    .map(|(k, _)| k.as_str())
                    .collect();
                self.error(
                    span.clone(),
                    format!("{node} is a host and runs no routing, in {place}"),
                    format!("stop a router's routing: {}", list(&routers)),
                );
            }
            Some(_) => {}
        }
    }

    /// The node or address a check names.
    fn target(&mut self, test: &TestSpec) {
        let (target, what) = match &test.check {
            TestCheck::Bgp { neighbor, .. }
            | TestCheck::Ospf { neighbor, .. }
            | TestCheck::Isis { neighbor, .. } => (neighbor, "neighbour"),
            TestCheck::Ping { to, .. } => (to, "ping target"),
            TestCheck::Route { prefix, .. } => {
                if prefix.parse::<IpNet>().is_ok() || prefix.parse::<IpAddr>().is_ok() {
                    return;
                }
                (prefix, "route prefix")
            }
            TestCheck::Exec { .. } | TestCheck::Show { .. } => return,
        };
        if target.parse::<IpAddr>().is_ok()
            || self.lab.nodes.contains_key(target)
            || self.declared.contains(target)
        {
            return;
        }
        let span = test.spans.target.clone().unwrap_or(test.spans.header.clone());
        self.unknown(target, span, &format!("the {what} of test {}", test.name));
    }

    /// A ping over IPv6 needs a lab with IPv6, and an address named with
    /// `af` must be of that family.
    fn ping_family(&mut self, test: &TestSpec) {
        let TestCheck::Ping { to, af: Some(af), .. } = &test.check else { return };
        let span = test.spans.target.clone().unwrap_or(test.spans.header.clone());
        let pools = &self.lab.pools;
        let any6 = pools.loopback6.is_some() || pools.p2p6.is_some() || pools.segments6.is_some();
        if *af == AddressFamily::Ipv6 && !any6 {
            self.error(
                span,
                format!("test {} pings over IPv6, and the lab has no IPv6", test.name),
                "add pools.loopback6 (routers) or pools.segments6 (hosts), or remove af",
            );
            return;
        }
        if let Ok(ip) = to.parse::<IpAddr>()
            && !af.holds(&ip)
        {
            self.error(
                span,
                format!("test {} pings {ip} with af = {:?}", test.name, af.as_str()),
                "name an address of that family, a node, or remove af",
            );
        }
    }

    fn unknown(&mut self, node: &str, span: Span, place: &str) {
        let names: Vec<&str> = self.lab.nodes.keys().map(String::as_str).collect();
        let help = match did_you_mean(node, &names) {
            Some(n) => format!("did you mean \"{n}\"? (a node name or an IPv4 address)"),
            None => format!("write a node name ({}) or an IPv4 address", list(&names)),
        };
        self.error(span, format!("unknown node \"{node}\" in {place}"), help);
    }
}
