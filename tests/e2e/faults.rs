//! Fault tests (`[[validate]]` with `fault` and `recover`) on a virtual
//! fleet: validate cuts a link, times the check's recovery, and mends the
//! link again — when the lab recovers, when it cannot, and on Ctrl-C.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use crate::common::prerequisites;
use crate::fleet::{TOOLS, TestLab, eventually, text};

/// `ip -j link show dev PORT` in `node`: (admin up, operstate, alias).
fn link(lab: &TestLab, node: &str, port: &str) -> (bool, String, String) {
    let out = lab.exec(node, &["ip", "-j", "link", "show", "dev", port]);
    assert!(out.status.success(), "{}", text(&out));
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = &links[0];
    let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
    let state = l["operstate"].as_str().unwrap_or("").to_string();
    (up, state, l["ifalias"].as_str().unwrap_or("").to_string())
}

#[track_caller]
fn assert_mended(lab: &TestLab, node: &str, port: &str) {
    let (up, state, alias) = link(lab, node, port);
    assert!(up && state == "UP", "{node}:{port} is not up again: up={up} {state}");
    assert!(!alias.contains("held down"), "{node}:{port} is still held down: {alias:?}");
}

/// The BGP session of `node` to the peer at the other end of `port` is
/// Established again (FRR in the node's pathspace).
fn session_back(lab: &TestLab, node: &str, port: &str) -> Result<(), String> {
    let config = lab.config(node);
    let address = config.interfaces.iter().find(|i| i.name == port).unwrap().address.unwrap();
    let out = std::process::Command::new("vtysh")
        .args(["-N", &lab.ns(node), "-c", "show bgp summary json"])
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let peers = summary["ipv4Unicast"]["peers"].as_object().cloned().unwrap_or_default();
    // The peer is the other address of the link's /31.
    let peer = peers.iter().find(|(a, _)| {
        a.parse::<std::net::Ipv4Addr>().is_ok_and(|a| address.contains(&a) && a != address.addr())
    });
    match peer {
        Some((_, p)) if p["state"] == "Established" => Ok(()),
        Some((a, p)) => Err(format!("{node} -> {a} is {}", p["state"])),
        None => Err(format!("{node} has no peer on {port}: {peers:?}")),
    }
}

/// `validate --json --test NAME`, which must pass: its checks, and what
/// it said (for messages).
fn passed_fault_test(lab: &TestLab, name: &str) -> (Vec<serde_json::Value>, String) {
    let out = lab.pi_lab().args(["validate", "--json", "--test", name]).arg(&lab.file).output();
    let out = out.unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (report["checks"].as_array().unwrap().clone(), said)
}

#[test]
fn a_fabric_recovers_from_a_cut_spine_link_within_its_time() {
    if !prerequisites("faults_recover", true, TOOLS) {
        return;
    }
    // The example fabric carries the fault test: spine1:eth1 (to leaf1)
    // goes down, h1 must reach h2 again through spine2 within 5 s.
    let lab = TestLab::new("fabric.toml", "fr", 234);
    lab.up();
    let (checks, said) = passed_fault_test(&lab, "spine1-leaf1-cut");
    let h1 = checks.iter().find(|c| c["node"] == "h1").expect("a check on h1");
    assert_eq!(h1["verdict"], "pass", "{said}");
    let recovery = &h1["recovery"];
    eprintln!("measured: {recovery}");
    assert_eq!(recovery["fault"], "link spine1:eth1 down");
    assert_eq!(recovery["within"], 5);
    let recovered = recovery["recovered_after"].as_f64().expect("a recovery time");
    assert!((0.0..=5.0).contains(&recovered), "{recovery}");
    if let Some(broke) = recovery["broke_after"].as_f64() {
        assert!(broke <= recovered, "{recovery}");
    }
    // Held for 2 s after recovering: at least that long watched.
    assert!(recovery["watched"].as_f64().unwrap() >= recovered + 2.0, "{recovery}");
    assert!(recovery["runs"].as_u64().unwrap() >= 10, "polled every 200 ms: {recovery}");
    let mend = checks.iter().find(|c| c["name"].as_str().unwrap().contains("mend")).unwrap();
    assert_eq!(mend["verdict"], "pass", "{said}");
    // The link is back: both ends up in the kernel, the session again.
    assert_mended(&lab, "spine1", "eth1");
    assert_mended(&lab, "leaf1", "eth1");
    eventually(30, || session_back(&lab, "spine1", "eth1")).unwrap();
    // The table says it too.
    let out = lab
        .pi_lab()
        .args(["validate", "--test", "spine1-leaf1-cut"])
        .arg(&lab.file)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("link spine1:eth1 down: "), "{said}");
}

#[test]
fn a_cut_that_cannot_recover_fails_by_name_and_is_mended_also_on_ctrl_c() {
    if !prerequisites("faults_no_recovery", true, TOOLS) {
        return;
    }
    // Two routers, one link: cut it and r2's loopback is gone for good.
    let lab = TestLab::edited("two-router.toml", "fn", 235, |doc| {
        // r1 keeps its route to r2's loopback; `slow` waits long enough
        // to be stopped with Ctrl-C.
        let tests = [("only-link", "r1:eth1", 2), ("slow", "r2:eth1", 120)].map(|(name, end, s)| {
            let text = format!(
                "name = \"{name}\"\nnodes = [\"r1\"]\nroute = {{ prefix = \"r2\", protocol = \"bgp\" }}\n\
                 wait = 60\nfault = {{ link = \"{end}\" }}\nrecover = {s}\n"
            );
            toml::Value::Table(toml::from_str(&text).unwrap())
        });
        let tests = toml::Value::Array(tests.to_vec());
        doc.insert("validate".into(), tests);
    });
    lab.up();
    let out = lab.pi_lab().args(["validate", "--test", "only-link"]).arg(&lab.file).output();
    let out = out.unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL") && said.contains("only-link on r1"), "{said}");
    assert!(said.contains("not recovered within 2 s"), "{said}");
    assert!(said.contains("only-link: mend link r1:eth1 down"), "{said}");
    assert_mended(&lab, "r1", "eth1");
    assert_mended(&lab, "r2", "eth1");
    eventually(30, || session_back(&lab, "r1", "eth1")).unwrap();

    // Ctrl-C while it watches (120 s to recover): the link comes back.
    let mut child = lab
        .pi_lab()
        .args(["validate", "--test", "slow"])
        .arg(&lab.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(90, || match link(&lab, "r2", "eth1") {
        (false, ..) => Ok(()),
        _ if child.try_wait().unwrap().is_some() => Ok(()),
        _ => Err("r2:eth1 not cut yet".into()),
    })
    .unwrap();
    assert!(child.try_wait().unwrap().is_none(), "validate ended before the cut");
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill").args(["-INT", &pid]).output().unwrap();
    assert!(kill.status.success(), "{}", text(&kill));
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("interrupted link r2:eth1 down after"), "{said}");
    assert!(said.contains("interrupted: the tests after"), "{said}");
    assert_mended(&lab, "r2", "eth1");
    assert_mended(&lab, "r1", "eth1");
    eventually(30, || session_back(&lab, "r1", "eth1")).unwrap();
}

#[test]
fn a_fabric_recovers_when_a_spine_stops_routing_and_it_runs_again() {
    if !prerequisites("faults_routing", true, TOOLS) {
        return;
    }
    // spine1's FRR stops: the leaves lose their sessions to it (the kernel
    // closes bgpd's sockets) and h1 reaches h2 through spine2.
    let lab = TestLab::edited("fabric.toml", "fs", 233, |doc| {
        let text = "name = \"spine1-stops\"\nnodes = [\"h1\"]\nping = \"h2\"\nwait = 30\n\
                    fault = { node = \"spine1\", stop = \"routing\" }\nrecover = 10\n";
        let test = toml::Value::Table(toml::from_str(text).unwrap());
        let tests = doc.get_mut("validate").and_then(|v| v.as_array_mut()).unwrap();
        tests.push(test);
    });
    lab.up();
    let (checks, said) = passed_fault_test(&lab, "spine1-stops");
    let h1 = checks.iter().find(|c| c["node"] == "h1").expect("a check on h1");
    let recovery = &h1["recovery"];
    eprintln!("measured: {recovery}");
    assert_eq!(recovery["fault"], "routing on spine1 stopped");
    let recovered = recovery["recovered_after"].as_f64().expect("a recovery time");
    assert!((0.0..=10.0).contains(&recovered), "{recovery}");
    let mend = checks.iter().find(|c| c["name"].as_str().unwrap().contains("mend")).unwrap();
    assert_eq!(mend["verdict"], "pass", "{said}");
    assert_eq!(mend["detail"], "routing on spine1 runs again", "{said}");
    // FRR runs again in spine1's pathspace and its sessions come back.
    let zebra = std::fs::read_to_string(format!("/var/run/frr/{}/zebra.pid", lab.ns("spine1")));
    let pid = zebra.unwrap_or_default().trim().to_string();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "no zebra on spine1");
    eventually(60, || session_back(&lab, "spine1", "eth1")).unwrap();
    eventually(60, || session_back(&lab, "leaf1", "eth1")).unwrap();
}
