//! Reading `[[validate]]`: the lab's own tests. Each names its nodes (or
//! roles) and holds exactly one check:
//!
//! ```toml
//! [[validate]]
//! name = "evpn"                      # what `validate --test` selects
//! description = "leaf1 learns the other VTEPs over EVPN"
//! roles = ["leaf"]                   # and/or nodes = ["leaf1"]
//! show = { command = "show evpn vni json", expect = '"10020".numRemoteVteps >= 1' }
//! wait = 30                          # retry for 30 s where it has not passed yet
//! level = "warning"                  # a failure only warns
//! pass = "EVPN works"
//! fail = "no remote VTEPs: is BGP up?"
//! ```
//!
//! Checks: `bgp`, `ospf`, `isis` (a neighbour node or address, or a table
//! with `neighbor` and `state`), `route` (a prefix or node, or a table with
//! `prefix`, `present`, `protocol`), `ping` (a node or address, or a table
//! with `to` and `count`), `exec` (`command` and a regular expression
//! `match`), `show` (a vtysh `command` and an `expect` expression).
//!
//! A fault test breaks something once its check passes and expects the
//! check back within `recover` seconds:
//!
//! ```toml
//! [[validate]]
//! name = "spine1-leaf1-cut"
//! nodes = ["h1"]
//! ping = "h2"
//! fault = { link = "spine1:eth1" }   # that end of the link goes down
//! recover = 5                        # h1 reaches h2 again within 5 s
//! ```

use toml::de::DeValue;

use super::{Field, Reader, Table, Value, name_ok, role};
use crate::diagnostics::{Span, list};
use crate::lab::{AddressFamily, Fault, TestCheck, TestFault, TestSpans, TestSpec};

const TEST_KEYS: &[&str] = &[
    "name",
    "description",
    "nodes",
    "roles",
    "wait",
    "level",
    "pass",
    "fail",
    "fault",
    "recover",
    "bgp",
    "ospf",
    "isis",
    "route",
    "ping",
    "exec",
    "show",
];
const CHECKS: &[&str] = &["bgp", "ospf", "isis", "route", "ping", "exec", "show"];

/// The longest a fault test waits for its check to come back, in seconds.
pub const MAX_RECOVER: u32 = 600;

impl Reader {
    pub(super) fn tests(&mut self, doc: &Table) -> Vec<TestSpec> {
        let mut tests = Vec::new();
        for (t, header) in self.array_of_tables(doc, "validate") {
            let place = "[[validate]]";
            self.keys(t, TEST_KEYS, place);
            let name = self.converted(t, "name", place, |s| name_ok(s, "test name"));
            let name = self.required(name, t, "name", place, &header, "add name = \"sessions\"");
            let description = self.string(t, "description", place).map(|d| d.0);
            let nodes = t.get("nodes").map(|v| self.strings(v, "nodes", place)).unwrap_or_default();
            let roles: Vec<_> = t
                .get("roles")
                .map(|v| self.strings(v, "roles", place))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(r, span)| match role(&r) {
                    Ok(role) => Some(role),
                    Err((message, help)) => {
                        self.error(span, message, help);
                        None
                    }
                })
                .collect();
            if nodes.is_empty()
                && roles.is_empty()
                && !t.contains_key("nodes")
                && !t.contains_key("roles")
            {
                self.error(
                    header.clone(),
                    "the test names no nodes",
                    "add nodes = [\"leaf1\"] or roles = [\"leaf\"]",
                );
            }
            let wait = self.integer(t, "wait", place, 0..=3600).map(|w| w.0 as u32);
            let warning = match self.string(t, "level", place) {
                None => false,
                Some((l, _)) if l == "warning" => true,
                Some((l, _)) if l == "error" => false,
                Some((l, span)) => {
                    self.error(
                        span,
                        format!("unknown level \"{l}\""),
                        "write level = \"warning\" (a failure only warns) or leave it out",
                    );
                    false
                }
            };
            let pass = self.string(t, "pass", place).map(|p| p.0);
            let fail = self.string(t, "fail", place).map(|f| f.0);
            let mut target = None;
            let check = self.check(t, &header, &mut target);
            let fault = self.fault(t);
            let (Some((name, name_span)), Some(check), Some(fault)) = (name, check, fault) else {
                continue;
            };
            tests.push(TestSpec {
                name,
                description,
                nodes: nodes.iter().map(|n| n.0.clone()).collect(),
                roles,
                check,
                wait,
                warning,
                pass,
                fail,
                fault,
                spans: TestSpans {
                    header,
                    name: Some(name_span),
                    nodes: nodes.into_iter().map(|n| n.1).collect(),
                    target,
                },
            });
        }
        tests
    }

    /// `fault` and `recover`, which come together: `Some(None)` when the
    /// test has neither, `None` when what it has is wrong (reported).
    fn fault(&mut self, t: &Table) -> Option<Option<TestFault>> {
        let place = "[[validate]]";
        let recover = self.integer(t, "recover", place, 1..=i128::from(MAX_RECOVER));
        let recover_wrong = t.contains_key("recover") && recover.is_none();
        let Some(value) = t.get("fault") else {
            if let Some((_, span)) = recover {
                self.error(
                    span,
                    "recover without a fault",
                    "add fault = { link = \"spine1:eth1\" } (what to break), or remove recover",
                );
                return None;
            }
            return (!recover_wrong).then_some(None);
        };
        let example = "fault = { link = \"spine1:eth1\" }";
        let keys = ["link", "node", "stop"];
        let t_fault = self.check_table(value, "fault", &keys, example)?;
        let fault = if t_fault.contains_key("link") {
            let place = "[[validate]] fault";
            Fault::Link(self.endpoint_field(t_fault, "link", place, &value.span())?)
        } else {
            self.routing_fault(t_fault, &value.span())?
        };
        let Some((recover, _)) = recover else {
            if !recover_wrong {
                self.error(
                    value.span(),
                    "a fault test needs recover",
                    "add recover = 5: the seconds the check has to pass again after the fault",
                );
            }
            return None;
        };
        Some(Some(TestFault { fault, recover: recover as u32 }))
    }

    /// `{ node = "spine1", stop = "routing" }`: the only thing pi-lab stops.
    fn routing_fault(&mut self, t: &Table, whole: &Span) -> Option<Fault> {
        let example = "fault = { node = \"spine1\", stop = \"routing\" }";
        let place = "[[validate]] fault";
        let node = self.string(t, "node", place);
        let stop = self.string(t, "stop", place);
        let (node, span) = match (node, stop) {
            (Some(node), Some((what, _))) if what == "routing" => node,
            (_, Some((what, span))) if what != "routing" => {
                self.error(
                    span,
                    format!("pi-lab cannot stop {what:?}"),
                    format!("write {example}"),
                );
                return None;
            }
            _ => {
                let help =
                    format!("cut a link (fault = {{ link = \"spine1:eth1\" }}) or {example}");
                self.error(whole.clone(), "the fault says neither a link nor what to stop", help);
                return None;
            }
        };
        Some(Fault::Routing { node, span })
    }

    /// Exactly one check key, read.
    fn check(&mut self, t: &Table, header: &Span, target: &mut Option<Span>) -> Option<TestCheck> {
        let present: Vec<&str> = CHECKS.iter().copied().filter(|c| t.contains_key(*c)).collect();
        let kind = match present[..] {
            [one] => one,
            [] => {
                self.error(
                    header.clone(),
                    "the test has no check",
                    format!("add one of {}", list(CHECKS)),
                );
                return None;
            }
            [_, second, ..] => {
                let span = t.get(second).map_or(header.clone(), |v| v.span());
                self.error(
                    span,
                    format!("the test has more than one check ({})", present.join(", ")),
                    "one check per test; split it into several [[validate]] entries",
                );
                return None;
            }
        };
        let value = t.get(kind)?;
        let place = format!("[[validate]] {kind}");
        match kind {
            "bgp" | "ospf" | "isis" => {
                let default = match kind {
                    "bgp" => "Established",
                    "ospf" => "Full",
                    _ => "Up",
                };
                let (neighbor, state) = self.short_or_table(value, "neighbor", &place, target)?;
                let state = state
                    .and_then(|st| self.string(st, "state", &place))
                    .map_or(default.to_string(), |s| s.0);
                Some(match kind {
                    "bgp" => TestCheck::Bgp { neighbor, state },
                    "ospf" => TestCheck::Ospf { neighbor, state },
                    _ => TestCheck::Isis { neighbor, state },
                })
            }
            "route" => {
                let (prefix, table) = self.short_or_table(value, "prefix", &place, target)?;
                let present = match table.and_then(|t| t.get("present")) {
                    None => true,
                    Some(v) => match v.get_ref() {
                        DeValue::Boolean(b) => *b,
                        _ => {
                            self.wrong_type(v, "present", &place, "true or false");
                            true
                        }
                    },
                };
                let protocol = table.and_then(|t| self.string(t, "protocol", &place)).map(|p| p.0);
                Some(TestCheck::Route { prefix, present, protocol })
            }
            "ping" => {
                let (to, table) = self.short_or_table(value, "to", &place, target)?;
                let count = table
                    .and_then(|t| self.integer(t, "count", &place, 1..=100))
                    .map_or(3, |c| c.0 as u32);
                let af = match table.and_then(|t| self.string(t, "af", &place)) {
                    None => None,
                    Some((text, span)) => match AddressFamily::parse(&text) {
                        Some(af) => Some(af),
                        None => {
                            self.error(
                                span,
                                format!("af {text:?} is not an address family"),
                                "write af = \"ipv4\" or af = \"ipv6\"",
                            );
                            return None;
                        }
                    },
                };
                Some(TestCheck::Ping { to, count, af })
            }
            "exec" => {
                let t = self.check_table(
                    value,
                    kind,
                    &["command", "match"],
                    "exec = { command = \"ip link show br10010\", match = \"state UP\" }",
                )?;
                let command = self.required_string(t, "command", &place, &value.span())?;
                let pattern = self.required_string(t, "match", &place, &value.span())?;
                Some(TestCheck::Exec { command, pattern })
            }
            _ => {
                let t = self.check_table(value, kind, &["command", "expect"], "show = { command = \"show bgp summary json\", expect = 'ipv4Unicast.peers[\"10.0.0.1\"].state == \"Established\"' }")?;
                let command = self.required_string(t, "command", &place, &value.span())?;
                let expect = self.string(t, "expect", &place);
                let (expect, span) = self.required(
                    expect,
                    t,
                    "expect",
                    &place,
                    &value.span(),
                    "add expect = 'PATH == VALUE'",
                )?;
                if let Err(e) = crate::expr::parse(&expect) {
                    // Point into the string when it is written plainly.
                    let at = self.inner(&span, &expect, e.at.min(expect.len()), 1);
                    self.error(at, format!("expect: {}", e.message), "write PATH == VALUE, e.g. ipv4Unicast.peers[\"10.0.0.1\"].state == \"Established\"; join with and/or");
                    return None;
                }
                Some(TestCheck::Show { command, expect })
            }
        }
    }

    /// `key = "text"` or `key = { FIELD = "text", ... }`: the text, and the
    /// table when there is one.
    fn short_or_table<'t, 'i>(
        &mut self,
        value: &'t Value<'i>,
        field: &str,
        place: &str,
        target: &mut Option<Span>,
    ) -> Option<(String, Option<&'t Table<'i>>)> {
        match value.get_ref() {
            DeValue::String(s) => {
                *target = Some(value.span());
                Some((s.to_string(), None))
            }
            DeValue::Table(t) => {
                let allowed: &[&str] = match field {
                    "neighbor" => &["neighbor", "state"],
                    "prefix" => &["prefix", "present", "protocol"],
                    _ => &["to", "count", "af"],
                };
                self.keys(t, allowed, place);
                let text = self.string(t, field, place);
                let (text, span) = self.required(
                    text,
                    t,
                    field,
                    place,
                    &value.span(),
                    &format!("add {field} = \"...\""),
                )?;
                *target = Some(span);
                Some((text, Some(t)))
            }
            _ => {
                self.wrong_type(value, field, place, "a string or a table");
                None
            }
        }
    }

    fn check_table<'t, 'i>(
        &mut self,
        value: &'t Value<'i>,
        kind: &str,
        allowed: &[&str],
        example: &str,
    ) -> Option<&'t Table<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => {
                self.keys(t, allowed, &format!("[[validate]] {kind}"));
                Some(t)
            }
            _ => {
                let found = value.get_ref().type_str();
                self.error(
                    value.span(),
                    format!("{kind} must be a table, found {found}"),
                    format!("write {example}"),
                );
                None
            }
        }
    }

    fn required_string(&mut self, t: &Table, key: &str, place: &str, at: &Span) -> Option<String> {
        let field: Field<String> = self.string(t, key, place);
        self.required(field, t, key, place, at, &format!("add {key} = \"...\"")).map(|f| f.0)
    }
}
