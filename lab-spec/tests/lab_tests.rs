//! `[[validate]]`: what a lab's own tests may say, and the mistakes in them
//! reported with line and column.

use lab_spec::diagnostics::Severity;
use lab_spec::lab::TestCheck;
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
    assert_eq!(lab.tests[5].check, TestCheck::Ping { to: "r2".into(), count: 2 });
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
