//! `[[validate]]`: what a lab's own tests may say, and the mistakes in them
//! reported with line and column.

use lab_spec::diagnostics::Severity;
use lab_spec::lab::{Fault, TestCheck};
use lab_spec::{Role, parse};

const LAB: &str = r#"name = "t"

[nodes.r1]
role = "router"
asn = 100

[nodes.r2]
role = "router"
asn = 200

[[links]]
a = "r1:eth1"
b = "r2:eth1"
"#;

fn with(tests: &str) -> String {
    format!("{LAB}{tests}")
}

#[track_caller]
fn assert_error(tests: &str, line: usize, column: usize, message: &str, help: &str) {
    let text = with(tests);
    let diags = parse(&text, "t.toml").expect_err("should be refused");
    let found = diags.located();
    let Some(d) = found.iter().find(|d| d.message.contains(message)) else {
        panic!("no error containing {message:?}; got {found:#?}");
    };
    assert_eq!(d.severity, Severity::Error);
    assert_eq!((d.line, d.column), (Some(line), Some(column)), "{d:?}");
    assert!(d.help.as_deref().unwrap_or("").contains(help), "{d:?}");
}

#[test]
fn every_check_reads() {
    let text = with(
        r#"
[[validate]]
name = "session"
description = "r1 peers with r2"
nodes = ["r1"]
bgp = "r2"
wait = 20
pass = "up"
fail = "down"

[[validate]]
name = "adjacency"
roles = ["router"]
ospf = { neighbor = "10.0.0.2", state = "Full" }
level = "warning"

[[validate]]
name = "isis"
nodes = ["r1"]
isis = "r2"

[[validate]]
name = "loopback"
nodes = ["r1"]
route = { prefix = "r2", protocol = "bgp" }

[[validate]]
name = "no-default"
nodes = ["r1"]
route = { prefix = "0.0.0.0/0", present = false }

[[validate]]
name = "reach"
nodes = ["r1"]
ping = { to = "r2", count = 2 }

[[validate]]
name = "links"
nodes = ["r1"]
exec = { command = "ip -br link show eth1", match = "UP" }

[[validate]]
name = "summary"
nodes = ["r1", "r2"]
show = { command = "show bgp summary json", expect = 'ipv4Unicast.peers["10.1.0.1"].state == "Established"' }
"#,
    );
    let lab = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = lab.tests.iter().map(|t| t.check.kind()).collect();
    assert_eq!(kinds, ["bgp", "ospf", "isis", "route", "route", "ping", "exec", "show"]);
    let session = &lab.tests[0];
    assert_eq!(session.nodes, ["r1"]);
    assert_eq!(session.wait, Some(20));
    assert_eq!(session.pass.as_deref(), Some("up"));
    assert_eq!(
        session.check,
        TestCheck::Bgp { neighbor: "r2".into(), state: "Established".into() }
    );
    assert!(lab.tests[1].warning);
    assert_eq!(lab.tests[1].roles, [Role::Router]);
    assert_eq!(lab.tests[2].check, TestCheck::Isis { neighbor: "r2".into(), state: "Up".into() });
    assert_eq!(
        lab.tests[4].check,
        TestCheck::Route { prefix: "0.0.0.0/0".into(), present: false, protocol: None }
    );
    assert_eq!(lab.tests[5].check, TestCheck::Ping { to: "r2".into(), count: 2, af: None });
}

#[test]
fn mistakes_are_reported_where_they_are() {
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r9\"]\nbgp = \"r2\"\n",
        17,
        10,
        "unknown node \"r9\" in test x",
        "node name",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nping = \"r3\"\n",
        18,
        8,
        "unknown node \"r3\" in the ping target of test x",
        "did you mean",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\n",
        15,
        1,
        "the test has no check",
        "bgp, ospf",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nbgp = \"r2\"\nping = \"r2\"\n",
        19,
        8,
        "more than one check",
        "split",
    );
    assert_error("\n[[validate]]\nname = \"x\"\nbgp = \"r2\"\n", 15, 1, "names no nodes", "roles");
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nbgp = \"r2\"\nlevel = \"info\"\n",
        19,
        9,
        "unknown level",
        "warning",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nshow = { command = \"show bgp summary json\", expect = \"a.b == \" }\n",
        18,
        62,
        "expect: expected a path or a value",
        "PATH == VALUE",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nexec = { command = \"true\" }\n",
        18,
        8,
        "missing \"match\"",
        "match",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nroles = [\"spine\"]\nbgp = \"r2\"\n",
        15,
        1,
        "role spine, which no node has",
        "roles",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nbgp = \"r2\"\n\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nbgp = \"r2\"\n",
        21,
        8,
        "test x is defined twice",
        "line 16",
    );
}

#[test]
fn a_ping_names_its_address_family_as_netlab_does() {
    let six = "\n[pools]\nloopback6 = \"2001:db8::/64\"\n\n[underlay]\nunnumbered = true\n";
    let ping =
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nping = { to = \"r2\", af = \"ipv6\" }\n";
    let lab = parse(&with(&format!("{six}{ping}")), "t.toml").unwrap();
    let af = Some(lab_spec::lab::AddressFamily::Ipv6);
    assert_eq!(lab.tests[0].check, TestCheck::Ping { to: "r2".into(), count: 3, af });
    assert_error(ping, 18, 15, "pings over IPv6, and the lab has no IPv6", "pools.loopback6");
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nping = { to = \"r2\", af = \"inet6\" }\n",
        18,
        26,
        "af \"inet6\" is not an address family",
        "af = \"ipv6\"",
    );
    assert_error(
        "\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nping = { to = \"10.0.0.2\", af = \"ipv6\" }\n\n[pools]\nloopback6 = \"2001:db8::/64\"\n\n[underlay]\nunnumbered = true\n",
        18,
        15,
        "pings 10.0.0.2 with af = \"ipv6\"",
        "that family",
    );
}

#[test]
fn a_fault_test_cuts_a_link_and_gives_the_check_time_to_come_back() {
    let text = with(
        "\n[[validate]]\nname = \"cut\"\nnodes = [\"r1\"]\nping = \"r2\"\nwait = 10\nfault = { link = \"r2:eth1\" }\nrecover = 5\n",
    );
    let lab = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let fault = lab.tests[0].fault.as_ref().expect("a fault test");
    assert_eq!(fault.recover, 5);
    let Fault::Link(end) = &fault.fault else { panic!("{fault:?}") };
    assert_eq!((end.node.as_str(), end.interface.as_str()), ("r2", "eth1"));
    assert_eq!(fault.fault.to_string(), "link r2:eth1 down");
    assert_eq!(lab.tests[0].wait, Some(10), "wait is for the check before the fault");
}

#[test]
fn fault_mistakes_are_reported_where_they_are() {
    let test = |extra: &str| {
        format!("\n[[validate]]\nname = \"x\"\nnodes = [\"r1\"]\nping = \"r2\"\n{extra}")
    };
    // Line 19 is the first line after the check.
    assert_error(
        &test("fault = { link = \"r2:eth7\" }\nrecover = 5\n"),
        19,
        22,
        "r2:eth7 is not a lab link of r2 in the fault of test x",
        "r2's lab links: eth1",
    );
    assert_error(
        &test("fault = { link = \"r3:eth1\" }\nrecover = 5\n"),
        19,
        19,
        "unknown node \"r3\" in the fault of test x",
        "did you mean \"r1\"",
    );
    assert_error(
        &test("fault = { link = \"r2\" }\nrecover = 5\n"),
        19,
        18,
        "\"r2\" is not node:interface",
        "leaf1:eth1",
    );
    assert_error(&test("fault = { link = \"r2:eth1\" }\n"), 19, 9, "needs recover", "recover = 5");
    assert_error(&test("recover = 5\n"), 19, 11, "recover without a fault", "fault = {");
    assert_error(
        &test("fault = { link = \"r2:eth1\" }\nrecover = 0\n"),
        20,
        11,
        "recover 0 is out of range",
        "between 1 and 600",
    );
    assert_error(
        &test("fault = { link = \"r2:eth1\" }\nrecover = 601\n"),
        20,
        11,
        "recover 601 is out of range",
        "between 1 and 600",
    );
    assert_error(
        &test("fault = \"r2:eth1\"\nrecover = 5\n"),
        19,
        9,
        "fault must be a table",
        "fault = { link = \"spine1:eth1\" }",
    );
    assert_error(
        &test("fault = { node = \"r2\", stop = \"power\" }\nrecover = 5\n"),
        19,
        31,
        "pi-lab cannot stop \"power\"",
        "stop = \"routing\"",
    );
    assert_error(
        &test("fault = { node = \"r3\", stop = \"routing\" }\nrecover = 5\n"),
        19,
        18,
        "unknown node \"r3\" in the fault of test x",
        "did you mean",
    );
    assert_error(
        &test("fault = { node = \"r2\" }\nrecover = 5\n"),
        19,
        9,
        "neither a link nor what to stop",
        "stop = \"routing\"",
    );
}

#[test]
fn a_fault_test_can_stop_a_routers_routing() {
    let text = with(
        "\n[[validate]]\nname = \"r2-down\"\nnodes = [\"r1\"]\nroute = { prefix = \"r2\", present = false }\nfault = { node = \"r2\", stop = \"routing\" }\nrecover = 20\n",
    );
    let lab = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let fault = lab.tests[0].fault.as_ref().expect("a fault test");
    assert!(matches!(&fault.fault, Fault::Routing { node, .. } if node == "r2"), "{fault:?}");
    assert_eq!(fault.fault.to_string(), "routing on r2 stopped");
    let host =
        text.replace("[nodes.r2]\nrole = \"router\"\nasn = 200", "[nodes.r2]\nrole = \"host\"");
    let err = parse(&host, "t.toml").expect_err("a host has no routing to stop").to_string();
    assert!(err.contains("r2 is a host and runs no routing"), "{err}");
}
