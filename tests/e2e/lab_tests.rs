//! A lab's own tests (`[[validate]]`) on a virtual fleet, with netlab's
//! exit codes: 0 when they pass, 1 when a cut link fails the named test,
//! 3 when only a warning-level test fails, 2 when there is nothing usable
//! to check.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use crate::common::prerequisites;
use crate::fleet::{TOOLS, TestLab, eventually, text};

/// A `[[validate]]` entry from `key = value` pairs (TOML literals).
fn test(fields: &[(&str, &str)]) -> toml::Value {
    let text: String = fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    toml::Value::Table(text.parse::<toml::Table>().unwrap())
}

fn validate(lab: &TestLab, args: &[&str]) -> (Option<i32>, String) {
    let out = lab.pi_lab().arg("validate").arg(&lab.file).args(args).output().unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn lab_tests_pass_fail_warn_with_netlab_exit_codes() {
    if !prerequisites("lab_tests", true, TOOLS) {
        return;
    }
    let lab = TestLab::edited("two-router.toml", "lt", 238, |doc| {
        let tests = vec![
            test(&[
                ("name", "\"session\""),
                ("nodes", "[\"r1\"]"),
                ("bgp", "\"r2\""),
                ("wait", "20"),
                ("fail", "\"r1 lost r2\""),
            ]),
            test(&[
                ("name", "\"reach\""),
                ("nodes", "[\"r1\"]"),
                ("ping", "\"r2\""),
                ("wait", "20"),
            ]),
            test(&[
                ("name", "\"learnt\""),
                ("nodes", "[\"r2\"]"),
                ("route", "{ prefix = \"r1\", protocol = \"bgp\" }"),
                ("wait", "20"),
            ]),
            test(&[
                ("name", "\"peers\""),
                ("nodes", "[\"r1\"]"),
                (
                    "show",
                    "{ command = \"show bgp summary json\", expect = \"ipv4Unicast.peerCount == 1\" }",
                ),
            ]),
            test(&[
                ("name", "\"default\""),
                ("nodes", "[\"r1\"]"),
                ("route", "\"0.0.0.0/0\""),
                ("level", "\"warning\""),
            ]),
        ];
        doc.insert("validate".into(), toml::Value::Array(tests));
    });
    lab.up();
    // The passing tests alone: exit 0.
    let (code, said) = validate(
        &lab,
        &["--test", "session", "--test", "reach", "--test", "learnt", "--test", "peers"],
    );
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("session on r1"), "{said}");
    // Everything: the derived checks pass, the default route is missing,
    // which is only a warning: exit 3.
    let (code, said) = validate(&lab, &["--no-sflow", "--deadline", "60s"]);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("WARN") && said.contains("default on r1"), "{said}");
    // Cut the link (delete the cable: the agent would bring a port that
    // is merely down back up): the session test fails by name, with its
    // message: 1.
    let out = lab.exec("r1", &["ip", "link", "del", "eth1"]);
    assert!(out.status.success(), "{}", text(&out));
    // The agent reports what FRR said at its last pass, and FRR needs a
    // moment to see the port go: within an interval or two (10 s each),
    // validate must see the session down.
    let mut last = (None, String::new());
    let _ = eventually(30, || {
        last = validate(&lab, &["--test", "session", "--node", "r1"]);
        if last.0 == Some(1) { Ok(()) } else { Err(last.1.clone()) }
    });
    let (code, said) = last;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("FAIL") && said.contains("session on r1") && said.contains("r1 lost r2"),
        "{said}"
    );
    // No such test: 2, naming the lab's tests.
    let (code, said) = validate(&lab, &["--test", "nonsense"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("session, reach, learnt, peers, default"), "{said}");
    let (code, said) = validate(&lab, &["--list"]);
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn a_lab_with_nothing_to_check_exits_2() {
    if !prerequisites("nothing_to_check", true, TOOLS) {
        return;
    }
    // One router, no links, no BGP, no tests: nothing to derive.
    let lab = TestLab::edited("two-router.toml", "nt", 239, |doc| {
        doc.remove("links");
        let nodes = doc["nodes"].as_table_mut().unwrap();
        nodes.remove("r2");
        nodes["r1"].as_table_mut().unwrap().remove("asn");
        let mut underlay = toml::Table::new();
        underlay.insert("protocol".into(), "ospf".into());
        doc.insert("underlay".into(), underlay.into());
    });
    lab.up();
    let (code, said) = validate(&lab, &["--no-sflow"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("no usable test"), "{said}");
}
