//! `pi-lab lab check | plan | render` as a user runs them: exit codes,
//! where output goes, JSON that parses. No root needed.

use std::process::{Command, Output};

use crate::common::{bin, workspace};

fn pi_lab(args: &[&str]) -> Output {
    Command::new(bin("pi-lab"))
        .args(args)
        .current_dir(workspace())
        .env("PI_LAB_TOKEN", "e2e-token")
        .env_remove("PI_LAB_FILE")
        .output()
        .expect("run pi-lab")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A lab whose link names an unknown node (at 9:6), in its own temporary file.
fn broken_lab() -> tempfile::NamedTempFile {
    let lab = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp lab");
    std::fs::write(
        lab.path(),
        "name = \"broken\"\n\n[nodes.r1]\nrole = \"router\"\nasn = 100\n\n[[links]]\na = \"r1:eth1\"\nb = \"r9:eth1\"\n",
    )
    .expect("write lab");
    lab
}

#[test]
fn lab_check_accepts_both_examples() {
    for example in ["examples/two-router.toml", "examples/fabric.toml"] {
        let out = pi_lab(&["lab", "check", example]);
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("is valid"), "{}", text(&out.stdout));
    }
}

#[test]
fn lab_check_rejects_a_broken_file_with_position_and_exit_1() {
    let lab = broken_lab();
    let out = pi_lab(&["lab", "check", lab.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(":9:6: error: unknown node \"r9\" in link"), "{err}");
    assert!(err.contains("known nodes are r1"), "{err}");
}

#[test]
fn lab_check_of_a_missing_file_fails() {
    let out = pi_lab(&["lab", "check", "examples/no-such-lab.toml"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read lab file"), "{}", text(&out.stderr));
}

#[test]
fn lab_plan_json_has_every_node_and_link() {
    let out = pi_lab(&["lab", "plan", "--json", "examples/fabric.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["nodes"].as_object().map(|o| o.len()), Some(8));
    assert_eq!(plan["links"].as_array().map(|a| a.len()), Some(12));
    assert!(plan["nodes"]["leaf1"]["loopback"].is_string());
}

#[test]
fn lab_plan_prints_tables() {
    let out = pi_lab(&["lab", "plan", "examples/fabric.toml"]);
    let shown = text(&out.stdout);
    for header in ["NODE", "LOOPBACK", "ADDRESS", "VNI", "VTEPS", "10010", "evpn"] {
        assert!(shown.contains(header), "{header} missing in\n{shown}");
    }
}

#[test]
fn lab_render_prints_a_node_config_the_agent_can_read() {
    let out = pi_lab(&["lab", "render", "examples/fabric.toml", "leaf1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = lab_spec::NodeConfig::from_toml(&text(&out.stdout)).expect("NodeConfig");
    assert_eq!(config.hostname, "leaf1");
    assert_eq!(config.auth, lab_spec::node_config::Auth::from_token("e2e-token"));
    assert_eq!(config.vxlan.len(), 2);
    // Nothing but the NodeConfig: exactly what a card gets.
    assert_eq!(text(&out.stdout), config.to_toml().expect("toml"));
}

#[test]
fn lab_render_frr_shows_the_frr_conf_the_node_will_get() {
    let out = pi_lab(&["lab", "render", "--frr", "examples/fabric.toml", "leaf1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let frr = text(&out.stdout);
    assert!(frr.contains("router bgp 65001"), "{frr}");
    assert!(frr.contains("advertise-all-vni"), "{frr}");
    assert!(!frr.contains("hostname = \"leaf1\""), "{frr}");
}

#[test]
fn lab_render_of_an_unknown_node_lists_the_nodes() {
    let out = pi_lab(&["lab", "render", "examples/fabric.toml", "leaf9"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no node named \"leaf9\""), "{err}");
    assert!(err.contains("h1, h2, leaf1, leaf2, leaf3, leaf4, spine1, spine2"), "{err}");
}

/// Every command reads a lab file through the same loader: a broken file
/// gets the same findings, with positions, whichever command reads it.
#[test]
fn every_command_reports_a_broken_lab_file_as_lab_check_does() {
    let tmp = tempfile::Builder::new().prefix("pi-lab-e2e-loader-").tempdir().expect("scratch");
    let dir = tmp.path();
    let image = dir.join("card.img");
    std::fs::write(&image, vec![0u8; 4096]).expect("write image");
    let target = dir.join("target.img");
    let broken = [
        ("syntax.toml", "name = \"broken\"\n[nodes.r1\nrole = \"router\"\n"),
        ("noname.toml", "[nodes.r1]\nrole = \"router\"\nasn = 100\n"),
        (
            "unknown.toml",
            "name = \"broken\"\n[nodes.r1]\nrole = \"router\"\nasn = 100\n[[links]]\na = \"r1:eth1\"\nb = \"r9:eth1\"\n",
        ),
    ];
    for (name, content) in broken {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write lab");
        let file = path.to_str().expect("utf-8 path");
        let check = pi_lab(&["lab", "check", file]);
        assert_eq!(check.status.code(), Some(1), "{name}");
        let finding = text(&check.stderr).lines().next().unwrap_or_default().to_string();
        assert!(finding.starts_with(&format!("{file}:")), "{name}: {finding}");
        let (image, target) = (image.to_str().expect("utf-8"), target.to_str().expect("utf-8"));
        let commands: [&[&str]; 7] = [
            &["lab", "plan", file],
            &["lab", "render", file, "r1"],
            &["status", file],
            &["provision", file],
            &["validate", file],
            &["inventory", file],
            &["flash", image, "--to", target, "--lab", file, "--node", "r1"],
        ];
        for args in commands {
            let out = pi_lab(args);
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted {name}");
            assert!(err.contains(&finding), "{args:?} on {name}: want {finding:?}, got:\n{err}");
        }
        assert!(!std::path::Path::new(target).exists(), "flash wrote a card from {name}");
    }
}

#[test]
fn every_command_that_takes_a_lab_reads_pi_lab_file() {
    let lab = broken_lab();
    let file = lab.path().to_str().expect("utf-8 path");
    let commands: [&[&str]; 17] = [
        &["status"],
        &["validate"],
        &["provision"],
        &["dashboard"],
        &["inventory"],
        &["capture", "r1:eth1", "-w", "-"],
        &["lab", "plan"],
        &["lab", "render", "r1"],
        &["lab", "graph"],
        &["lab", "switch"],
        &["lab", "up"],
        &["lab", "save"],
        &["lab", "connect", "r1", "--", "true"],
        &["lab", "connect", "--all", "--", "true"],
        &["lab", "link", "r1:eth1", "down"],
        &["lab", "impair", "r1:eth1", "--delay", "1ms"],
        &["lab", "check"],
    ];
    for args in commands {
        let out = Command::new(bin("pi-lab"))
            .args(args)
            .current_dir(workspace())
            .env("PI_LAB_TOKEN", "e2e-token")
            .env("PI_LAB_FILE", file)
            .output()
            .expect("run pi-lab");
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted the broken lab");
        assert!(err.contains(&format!("{file}:9:6")), "{args:?} did not read PI_LAB_FILE:\n{err}");
    }
}

#[test]
fn lab_check_of_a_file_that_is_not_utf8_is_an_invalid_lab() {
    let lab = tempfile::Builder::new().prefix("pi-lab-e2e-latin1-").suffix(".toml").tempfile();
    let lab = lab.expect("temp lab");
    std::fs::write(lab.path(), b"name = \"caf\xe9\"\n").expect("write lab");
    let out = pi_lab(&["lab", "check", lab.path().to_str().expect("utf-8 path")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(":1:12: error: byte 0xe9 is not UTF-8"), "{err}");
}

#[test]
fn errors_do_not_repeat_their_cause() {
    let out = pi_lab(&["lab", "check", "examples/no-such-lab.toml"]);
    let err = text(&out.stderr);
    assert!(err.contains("cannot read lab file examples/no-such-lab.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn displaced_names_are_one_line_unless_verbose() {
    // 64 leaves: a few dozen cannot have their home addresses.
    let mut lab = String::from("name = \"big\"\n");
    for i in 0..64 {
        lab.push_str(&format!("\n[nodes.leaf{i}]\nrole = \"leaf\"\nasn = {}\n", 65000 + i));
    }
    let path = tempfile::Builder::new().prefix("pi-lab-e2e-big-").suffix(".toml").tempfile();
    let path = path.expect("temp lab");
    std::fs::write(path.path(), lab).expect("write lab");
    let file = path.path().to_str().expect("utf-8 path");
    let quiet = pi_lab(&["lab", "check", file]);
    let verbose = pi_lab(&["lab", "check", "-v", file]);
    let json = pi_lab(&["lab", "check", "--json", file]);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    let warnings =
        |out: &Output| text(&out.stderr).lines().filter(|l| l.contains("warning")).count();
    let each = warnings(&verbose);
    assert!(each > 10, "{}", text(&verbose.stderr));
    assert_eq!(warnings(&quiet), 1, "{}", text(&quiet.stderr));
    let line = text(&quiet.stderr);
    assert!(line.contains("names are not at their home address"), "{line}");
    assert!(line.contains("-v shows each"), "{line}");
    let found: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let all = found.as_array().expect("array");
    assert!(all.iter().all(|d| d["code"] == "displaced"), "{found:#}");
    assert_eq!(all.len() + 1, each, "one line per warning and the count");
}
