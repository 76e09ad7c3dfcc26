//! netlab `validate` tests pi-lab can run: the `plugin:` calls it knows.

use super::{NCheck, NTest, Reader, pi_lab_name};
use crate::netlab::yaml::Node;

impl Reader<'_> {
    /// netlab tests pi-lab can run: `plugin:` calls it knows; anything
    /// else (`show`/`exec` with Python in `valid`, `config`) is an error.
    pub(super) fn tests(&mut self, node: &Node) -> Vec<NTest> {
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
                self.error(plugin.value.span.clone(), format!("plugin {call} is not one pi-lab runs"), "pi-lab runs ping('X') (af='ipv6' too), bgp_neighbor(node.bgp.neighbors,'X'), ospf_neighbor(nodes.X.ospf.router_id) and isis_neighbor('X')");
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

/// `ping('h2')` (and `ping('h2',af='ipv6')`),
/// `bgp_neighbor(node.bgp.neighbors,'r2')`,
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
        "ping" => {
            let to = quoted(args.first()?)?;
            // Only af changes nothing else: expect='fail', src or pkt_len
            // would make it another test than the one pi-lab runs.
            let af = match &args[1..] {
                [] => None,
                [af] => {
                    let value = af.strip_prefix("af")?.trim_start().strip_prefix('=')?.trim();
                    let value = value.trim_matches(|c| c == '\'' || c == '"');
                    Some(crate::lab::AddressFamily::parse(value)?)
                }
                _ => return None,
            };
            Some(NCheck::Ping(to, af))
        }
        "bgp_neighbor" => quoted(args.get(1)?).map(NCheck::Bgp),
        "ospf_neighbor" => {
            let a = args.first()?;
            quoted(a).or_else(|| router_of(a)).map(NCheck::Ospf)
        }
        "isis_neighbor" => quoted(args.first()?).map(NCheck::Isis),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_pi_lab_runs() {
        assert!(matches!(plugin_check("ping('h2')"), Some(NCheck::Ping(h, None)) if h == "h2"));
        assert!(matches!(
            plugin_check("ping('h2', af='ipv6')"),
            Some(NCheck::Ping(h, Some(crate::lab::AddressFamily::Ipv6))) if h == "h2"
        ));
        assert!(matches!(
            plugin_check("ping(\"h2\",af=\"ipv4\")"),
            Some(NCheck::Ping(_, Some(crate::lab::AddressFamily::Ipv4)))
        ));
        assert!(plugin_check("ping('h2',af='ipx')").is_none());
        assert!(plugin_check("ping('h2',expect='fail')").is_none());
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
