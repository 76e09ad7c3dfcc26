//! The lab-wide routing settings: address pools (`addressing`), BGP
//! (`bgp.as`, `as_list`, `rr_list`) and the IGP (`ospf`, `isis`).

use super::{NIgp, Reader, Topology};
use crate::diagnostics::Span;
use crate::netlab::yaml::{Entry, Node, Value};

const POOLS: &[&str] = &["loopback", "p2p", "lan", "mgmt", "router_id"];
const POOL_KEYS: &[&str] = &["ipv4", "ipv6", "prefix", "start", "mac", "unnumbered"];
const BGP_KEYS: &[&str] = &["as", "as_list", "rr_list", "advertise_loopback", "next_hop_self"];

impl Reader<'_> {
    pub(super) fn addressing(&mut self, node: &Node, topo: &mut Topology) {
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
            self.pool6(e, topo);
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

    /// `ipv6` of the loopback, p2p and lan pools (a dual-stack lab), and
    /// `p2p.unnumbered`; refused on the others.
    fn pool6(&mut self, e: &Entry, topo: &mut Topology) {
        let place = format!("addressing.{}", e.key);
        if let Some(v6) = e.value.get("ipv6") {
            let net = self.prefix6(&v6.value, &format!("{place}.ipv6"));
            match e.key.as_str() {
                "loopback" => topo.loopback6_pool = net,
                "p2p" => topo.p2p6_pool = net,
                "lan" => topo.lan6_pool = net,
                _ => self.error(
                    v6.key_span.clone(),
                    format!("{place}.ipv6 is not supported by pi-lab"),
                    "pi-lab plans IPv6 for loopback, p2p and lan; management stays IPv4",
                ),
            }
        }
        if let Some(u) = e.value.get("unnumbered") {
            let on = self.bool(&u.value, &format!("{place}.unnumbered")).unwrap_or(false);
            if e.key == "p2p" {
                topo.p2p_unnumbered = on;
            } else if on {
                self.error(
                    u.key_span.clone(),
                    format!("{place}.unnumbered is not supported by pi-lab"),
                    "pi-lab makes point-to-point links unnumbered: set addressing.p2p.unnumbered",
                );
            }
        }
    }

    pub(super) fn bgp(&mut self, node: &Node, topo: &mut Topology) {
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
    pub(super) fn true_only(&mut self, e: &Entry, place: &str) {
        if self.bool(&e.value, &format!("{place}.{}", e.key)) == Some(false) {
            self.error(
                e.value.span.clone(),
                format!("{place}.{}: false is not supported by pi-lab", e.key),
                "pi-lab always advertises loopbacks; remove the key",
            );
        }
    }

    pub(super) fn asn(&mut self, node: &Node, what: &str) -> Option<(u32, Span)> {
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

    pub(super) fn igp(&mut self, node: &Node, protocol: &str, allowed: &[&str]) -> NIgp {
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
}
