//! Running the lab's own tests (`[[validate]]`), netlab's way: in file
//! order, each on its nodes at once, retried for `wait` seconds on the
//! nodes that have not passed yet, a failure an error or (with
//! `level = "warning"`) only a warning.
//!
//! Session and adjacency checks read the agents' health reports (they
//! work wherever an agent answers); routes, pings, commands and vtysh run
//! on the node through a [`Runner`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lab_spec::lab::{AddressFamily, TestCheck, TestSpec};
use lab_spec::{HealthReport, NodeConfig};

use super::checks::{Check, Kind, Verdict};
use crate::fleet_client::FleetClient;
use crate::runner::{Runner, UNREACHABLE};

/// What one check found on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    /// It could not run here (no shell to the node, ...).
    Skip(String),
}

/// The nodes `test` runs on (named ones and those of its roles), in name
/// order, kept to `only` when that is not empty.
pub fn nodes_of(fleet: &FleetClient, test: &TestSpec, only: &[String]) -> Vec<String> {
    fleet
        .nodes
        .values()
        .filter(|c| test.nodes.contains(&c.hostname) || test.roles.contains(&c.role))
        .filter(|c| only.is_empty() || only.contains(&c.hostname))
        .map(|c| c.hostname.clone())
        .collect()
}

/// Run one test on its nodes; one check per node.
pub fn run_test(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    test: &TestSpec,
    only: &[String],
) -> Vec<Check> {
    let nodes = nodes_of(fleet, test, only);
    let deadline = Instant::now() + Duration::from_secs(u64::from(test.wait.unwrap_or(0)));
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    loop {
        let pending: Vec<&String> = nodes
            .iter()
            .filter(|n| !matches!(outcomes.get(*n), Some(Outcome::Pass(_) | Outcome::Skip(_))))
            .collect();
        if pending.is_empty() {
            break;
        }
        let found: Vec<(String, Outcome)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .iter()
                .map(|n| {
                    scope.spawn(move || ((*n).clone(), check_on(fleet, runner, &test.check, n)))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        outcomes.extend(found);
        let failing = outcomes.values().any(|o| matches!(o, Outcome::Fail(_)));
        if !failing || Instant::now() >= deadline || crate::interrupt::requested() {
            break;
        }
        std::thread::sleep(
            Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    nodes
        .iter()
        .map(|node| {
            let outcome = outcomes.remove(node).unwrap_or(Outcome::Skip("not run".into()));
            judge(test, node, outcome)
        })
        .collect()
}

/// The check of one node, with the test's pass or fail message.
pub(super) fn judge(test: &TestSpec, node: &str, outcome: Outcome) -> Check {
    let with = |message: &Option<String>, found: String| match message {
        Some(m) => format!("{m} ({found})"),
        None => found,
    };
    let (verdict, detail) = match outcome {
        Outcome::Pass(found) => (Verdict::Pass, with(&test.pass, found)),
        Outcome::Fail(found) if test.warning => (Verdict::Warn, with(&test.fail, found)),
        Outcome::Fail(found) => (Verdict::Fail, with(&test.fail, found)),
        Outcome::Skip(why) => (Verdict::Skip, why),
    };
    let what = test.description.as_deref().map_or(String::new(), |d| format!(": {d}"));
    Check {
        kind: Kind::Test,
        node: node.to_string(),
        name: format!("{} on {node}{what}", test.name),
        verdict,
        detail,
        recovery: None,
    }
}

/// One check on one node.
pub fn check_on(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    check: &TestCheck,
    node: &str,
) -> Outcome {
    let Some(config) = fleet.nodes.get(node) else {
        return Outcome::Skip(format!("{node} is not a node of the lab"));
    };
    match check {
        TestCheck::Bgp { neighbor, state } => match fleet.health(config) {
            Ok(r) => bgp(fleet, &r, neighbor, state),
            Err(e) => Outcome::Fail(e.to_string()),
        },
        TestCheck::Ospf { neighbor, state } | TestCheck::Isis { neighbor, state } => {
            let ospf = matches!(check, TestCheck::Ospf { .. });
            match fleet.health(config) {
                Ok(r) => {
                    adjacency(fleet, if ospf { &r.ospf } else { &r.isis }, neighbor, state, ospf)
                }
                Err(e) => Outcome::Fail(e.to_string()),
            }
        }
        TestCheck::Ping { to, count, af } => ping(fleet, runner, node, to, *count, *af),
        TestCheck::Route { prefix, present, protocol } => {
            route(fleet, runner, node, prefix, *present, protocol.as_deref())
        }
        TestCheck::Exec { command, pattern } => exec(runner, node, command, pattern),
        TestCheck::Show { command, expect } => show(fleet, runner, node, command, expect),
    }
}

/// Every address of a node: loopback and interface addresses, IPv4
/// first.
fn addresses(config: &NodeConfig) -> Vec<IpAddr> {
    let v4 = config.loopback.into_iter().map(IpAddr::V4);
    let ports4 = config.interfaces.iter().filter_map(|i| Some(IpAddr::V4(i.address?.addr())));
    let v6 = config.loopback6.into_iter().map(IpAddr::V6);
    let ports6 = config.interfaces.iter().filter_map(|i| Some(IpAddr::V6(i.address6?.addr())));
    v4.chain(ports4).chain(v6).chain(ports6).collect()
}

/// The address to reach a node at: its loopback, else its first address
/// (of family `af`, if given).
fn address_of(
    fleet: &FleetClient,
    target: &str,
    af: Option<AddressFamily>,
) -> Result<IpAddr, String> {
    if let Ok(addr) = target.parse() {
        return Ok(addr);
    }
    let config =
        fleet.nodes.get(target).ok_or_else(|| format!("{target} is not a node of the lab"))?;
    let mut all = addresses(config).into_iter();
    match af {
        None => all.next().ok_or_else(|| format!("{target} has no address")),
        Some(af) => all
            .find(|a| af.holds(a))
            .ok_or_else(|| format!("{target} has no {} address", af.as_str())),
    }
}

/// Does the BGP or IGP peer entry (`description`, `address`) name `target`
/// (a node, its IPv4 address, or an IPv6 address of it)?
fn names(fleet: &FleetClient, target: &str, description: &str, address: Ipv4Addr) -> bool {
    match target.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a == address,
        Ok(v6) => fleet.nodes.get(description).is_some_and(|c| addresses(c).contains(&v6)),
        Err(_) => {
            description == target
                || fleet
                    .nodes
                    .get(target)
                    .is_some_and(|c| addresses(c).contains(&IpAddr::V4(address)))
        }
    }
}

fn bgp(fleet: &FleetClient, report: &HealthReport, neighbor: &str, want: &str) -> Outcome {
    let Some(n) = report.bgp.iter().find(|n| names(fleet, neighbor, &n.description, n.address))
    else {
        let known: Vec<String> =
            report.bgp.iter().map(|n| format!("{} ({})", n.description, n.session())).collect();
        return Outcome::Fail(format!(
            "no BGP neighbour {neighbor}; neighbours: {}",
            or_none(&known)
        ));
    };
    let (name, session) = (&n.description, n.session());
    if n.state.eq_ignore_ascii_case(want) {
        Outcome::Pass(format!("{name} ({session}) is {}", n.state))
    } else {
        Outcome::Fail(format!("{name} ({session}) is {} (want {want})", n.state))
    }
}

fn adjacency(
    fleet: &FleetClient,
    list: &[lab_spec::health::IgpAdjacencyState],
    neighbor: &str,
    want: &str,
    ospf: bool,
) -> Outcome {
    let what = if ospf { "OSPF neighbour" } else { "IS-IS adjacency" };
    let Some(a) = list.iter().find(|a| names(fleet, neighbor, &a.description, a.router_id)) else {
        let known: Vec<String> =
            list.iter().map(|a| format!("{} ({})", a.description, a.interface)).collect();
        return Outcome::Fail(format!("no {what} {neighbor}; known: {}", or_none(&known)));
    };
    if a.state.eq_ignore_ascii_case(want) {
        Outcome::Pass(format!("{what} {} on {} is {}", a.description, a.interface, a.state))
    } else {
        Outcome::Fail(format!(
            "{what} {} on {} is {} (want {want})",
            a.description, a.interface, a.state
        ))
    }
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

fn ping(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    node: &str,
    to: &str,
    count: u32,
    af: Option<AddressFamily>,
) -> Outcome {
    let Some(runner) = runner else { return Outcome::Skip(UNREACHABLE.into()) };
    let address = match address_of(fleet, to, af) {
        Ok(a) => a.to_string(),
        Err(e) => return Outcome::Fail(e),
    };
    let count = count.to_string();
    let argv = ["ping", "-c", &count, "-W", "1", "-i", "0.2", "-q", &address];
    match runner.run(node, &argv) {
        Ok(out) => {
            let summary =
                out.stdout.lines().find(|l| l.contains("packets")).unwrap_or("").trim().to_string();
            if out.success {
                Outcome::Pass(format!("{to} ({address}): {summary}"))
            } else {
                Outcome::Fail(
                    format!("{to} ({address}): {} {}", summary, out.stderr.trim())
                        .trim()
                        .to_string(),
                )
            }
        }
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

fn route(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    node: &str,
    prefix: &str,
    present: bool,
    protocol: Option<&str>,
) -> Outcome {
    let Some(runner) = runner else { return Outcome::Skip(UNREACHABLE.into()) };
    let prefix = match prefix.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => match address_of(fleet, prefix, None) {
            Ok(addr) => IpNet::from(addr),
            Err(e) => return Outcome::Fail(e),
        },
    };
    let text = prefix.to_string();
    let family = if matches!(prefix, IpNet::V4(_)) { "-4" } else { "-6" };
    let out = match runner.run(node, &["ip", family, "-j", "route", "show", "exact", &text]) {
        Ok(out) if out.success => out,
        Ok(out) => return Outcome::Fail(format!("ip route: {}", out.text().trim())),
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    let routes: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let protocols: Vec<String> = routes
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["protocol"].as_str().unwrap_or("boot").to_string())
        .collect();
    let found = protocols.iter().any(|p| protocol.is_none_or(|want| p == want));
    let seen = if protocols.is_empty() {
        "no route".to_string()
    } else {
        format!("routes from {}", protocols.join(", "))
    };
    let from = protocol.map_or(String::new(), |p| format!(" from {p}"));
    match (found, present) {
        (true, true) => Outcome::Pass(format!("{text}{from}: {seen}")),
        (false, false) => Outcome::Pass(format!("{text}{from} absent: {seen}")),
        (false, true) => Outcome::Fail(format!("no route to {text}{from}: {seen}")),
        (true, false) => Outcome::Fail(format!("{text}{from} should be absent: {seen}")),
    }
}

fn exec(runner: Option<&dyn Runner>, node: &str, command: &str, pattern: &str) -> Outcome {
    let Some(runner) = runner else { return Outcome::Skip(UNREACHABLE.into()) };
    let re = match regex::Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => return Outcome::Skip(format!("match is not a regular expression: {e}")),
    };
    match runner.run_shell(node, command) {
        Ok(out) => {
            let text = out.text();
            match re.find(&text) {
                Some(m) => Outcome::Pass(format!("matched \"{}\"", first_line(m.as_str()))),
                None => Outcome::Fail(format!(
                    "no match for /{pattern}/ in: {}",
                    first_line(text.trim())
                )),
            }
        }
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

fn show(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    node: &str,
    command: &str,
    expect: &str,
) -> Outcome {
    let Some(runner) = runner else { return Outcome::Skip(UNREACHABLE.into()) };
    if !fleet.nodes.get(node).is_some_and(NodeConfig::runs_frr) {
        return Outcome::Skip(format!("{node} runs no FRR"));
    }
    let expr = match lab_spec::expr::parse(expect) {
        Ok(e) => e,
        Err(e) => return Outcome::Skip(format!("expect: {e}")),
    };
    let out = match runner.run_vtysh(node, command) {
        Ok(out) if out.success => out,
        Ok(out) => return Outcome::Fail(format!("vtysh: {}", first_line(out.text().trim()))),
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    let json: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(j) => j,
        Err(e) => {
            return Outcome::Fail(format!("`{command}` did not answer JSON ({e}); add json to it"));
        }
    };
    let found = expr.explain(&json);
    if expr.eval(&json) {
        Outcome::Pass(if found.is_empty() { "holds".into() } else { found })
    } else {
        Outcome::Fail(format!(
            "{expect} does not hold: {}",
            if found.is_empty() { "-".into() } else { found }
        ))
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_client::tests::two_node_client;

    fn test(check: TestCheck) -> TestSpec {
        TestSpec {
            name: "t".into(),
            description: None,
            nodes: vec!["leaf1".into()],
            roles: vec![lab_spec::Role::Spine],
            check,
            wait: None,
            warning: false,
            pass: Some("fine".into()),
            fail: Some("broken".into()),
            fault: None,
            spans: Default::default(),
        }
    }

    #[test]
    fn nodes_come_from_names_and_roles_and_the_node_filter() {
        let fleet = two_node_client();
        let t = test(TestCheck::Ping { to: "10.0.0.1".into(), count: 1, af: None });
        assert_eq!(nodes_of(&fleet, &t, &[]), ["leaf1", "spine1"]);
        assert_eq!(nodes_of(&fleet, &t, &["spine1".into()]), ["spine1"]);
    }

    #[test]
    fn verdicts_carry_the_messages_and_warnings_do_not_fail() {
        let mut t = test(TestCheck::Ping { to: "10.0.0.1".into(), count: 1, af: None });
        let c = judge(&t, "leaf1", Outcome::Fail("no reply".into()));
        assert_eq!((c.verdict, c.detail.as_str()), (Verdict::Fail, "broken (no reply)"));
        t.warning = true;
        assert_eq!(judge(&t, "leaf1", Outcome::Fail("x".into())).verdict, Verdict::Warn);
        assert_eq!(judge(&t, "leaf1", Outcome::Pass("ok".into())).detail, "fine (ok)");
    }

    #[test]
    fn commands_are_skipped_without_a_shell() {
        let fleet = two_node_client();
        for check in [
            TestCheck::Ping { to: "spine1".into(), count: 1, af: None },
            TestCheck::Route { prefix: "10.0.0.0/24".into(), present: true, protocol: None },
            TestCheck::Exec { command: "true".into(), pattern: ".".into() },
            TestCheck::Show { command: "show bgp summary json".into(), expect: "a".into() },
        ] {
            let out = check_on(&fleet, None, &check, "leaf1");
            assert!(matches!(&out, Outcome::Skip(why) if why.contains("--ssh")), "{out:?}");
        }
    }

    #[test]
    fn neighbours_are_found_by_name_or_address() {
        let fleet = two_node_client();
        let spine = fleet.nodes["spine1"].loopback.unwrap();
        assert!(names(&fleet, "spine1", "spine1", "10.9.9.9".parse().unwrap()));
        assert!(names(&fleet, "spine1", "x", spine));
        assert!(names(&fleet, &spine.to_string(), "x", spine));
        assert!(!names(&fleet, "leaf1", "spine1", spine));
    }
}
