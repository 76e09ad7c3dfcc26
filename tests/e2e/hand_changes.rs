//! Hand changes on a virtual fleet: lines typed into a router's vtysh
//! survive a restart of its agent, show in `status`, stop `provision` (which
//! names them) unless `--force`, and `lab save` collects them in a form the
//! lab file takes back.
//!
//! The lab is `t6hand` (examples/two-router.toml renamed); the management
//! subnet 192.168.207.0/24 is this test's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::{LabFiles, bin, prerequisites, said};
use crate::fleet::eventually;

const LAB: &str = "t6hand";
const R1: &str = "t6hand-r1";

const LAB_FILE: &str = r#"
name = "t6hand"

[management]
subnet = "192.168.207.0/24"

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

/// What is typed into r1's vtysh (the neighbour's address filled in).
const NETWORK: &str = "network 10.99.0.0/24";
const ROUTE: &str = "ip route 10.99.0.0/24 Null0";
const DESCRIPTION: &str = "description typed-by-hand";

/// The lab's files, and the fleet torn down however the test ends.
struct Fleet {
    lab: LabFiles,
    /// r1's agent as the test restarted it (reaped when the fleet goes).
    restarted: Option<Child>,
}

impl Fleet {
    fn new() -> Self {
        Fleet { lab: LabFiles::new(LAB, "t6-hand-", LAB_FILE), restarted: None }
    }

    fn pi_lab_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args).envs(env.iter().copied()).output().expect("run pi-lab")
    }

    fn fleet_dir(&self) -> PathBuf {
        self.dir.join("state").join(LAB).join("fleet")
    }

    /// r1's API address, from `pi-lab inventory --format prometheus`.
    fn r1_api(&self) -> SocketAddr {
        let out = self.pi_lab(&["inventory", "--format", "prometheus"]);
        assert!(out.status.success(), "{}", said(&out));
        let groups: serde_json::Value = serde_json::from_slice(&out.stdout).expect("file_sd JSON");
        let r1 = groups.as_array().expect("array").iter().find(|g| g["labels"]["node"] == "r1");
        r1.and_then(|g| g["targets"][0].as_str()).expect("r1 target").parse().expect("address")
    }

    fn status(&self) -> serde_json::Value {
        let out = self.pi_lab(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&out)))
    }

    fn node_status(&self, node: &str) -> serde_json::Value {
        let all = self.status();
        all.as_array().expect("array").iter().find(|n| n["node"] == node).expect("node").clone()
    }

    /// Stop r1's agent and start it again as `lab up` does (its own UTS
    /// namespace and hostname, FRR's pathspace, the same files).
    fn restart_r1_agent(&mut self) {
        let pids = Command::new("ip").args(["netns", "pids", R1]).output().expect("pids");
        let agents: Vec<String> = String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim()
                    == "node-agent"
            })
            .map(str::to_string)
            .collect();
        assert_eq!(agents.len(), 1, "one node-agent in {R1}: {agents:?}");
        let status = Command::new("kill").args(["-TERM", &agents[0]]).status().expect("kill");
        assert!(status.success());
        let gone = || !Path::new(&format!("/proc/{}", agents[0])).exists();
        eventually(15, || gone().then_some(()).ok_or_else(|| "still there".to_string()))
            .expect("r1's agent did not stop");
        let dir = self.fleet_dir();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("logs/r1.log"))
            .expect("r1's agent log");
        let log2 = log.try_clone().expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", R1, "unshare", "--uts", "--", "sh", "-c"])
            .arg("hostname \"$0\" && exec \"$@\"")
            .arg("r1")
            .arg(bin("node-agent"))
            .arg("run")
            .arg("--config")
            .arg(dir.join("nodes/r1.toml"))
            .args(["--frr-pathspace", R1])
            .arg("--state-dir")
            .arg(dir.join("agents/r1"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("start r1's agent");
        self.restarted = Some(child);
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.fleet_dir().join("logs/r1.log")).unwrap_or_default()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // `lab down` (as the lab files go) stops every process in the
        // lab's namespaces; this reaps the agent the test started.
        if let Some(mut agent) = self.restarted.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

crate::common::lab_files_inside!(Fleet);

fn vtysh(args: &[&str]) -> String {
    let out = Command::new("vtysh").args(["-N", R1]).args(args).output().expect("vtysh");
    assert!(out.status.success(), "vtysh {args:?}: {}", said(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn running() -> String {
    vtysh(&["-c", "show running-config"])
}

/// r1's BGP neighbour, from its running config.
fn neighbour() -> String {
    let config = running();
    let line = config.lines().find(|l| l.contains(" remote-as 200")).expect("r1's neighbour");
    line.split_whitespace().nth(1).expect("address").to_string()
}

/// The three hand lines, as `show running-config` prints them.
fn hand_lines(neighbour: &str) -> [String; 3] {
    [
        format!(" neighbor {neighbour} {DESCRIPTION}\n"),
        format!("  {NETWORK}\n"),
        format!("{ROUTE}\n"),
    ]
}

/// r1's health report over HTTP (`reconcile.passes` counts this agent's passes).
fn health(addr: SocketAddr) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
}

#[test]
fn hand_changes_survive_agent_restarts_and_provision_needs_force() {
    if !prerequisites(
        "hand_changes_survive_agent_restarts_and_provision_needs_force",
        true,
        &["ip", "vtysh", "unshare", "/usr/lib/frr/frr-reload.py"],
    ) {
        return;
    }
    let mut fleet = Fleet::new();
    fleet.up();
    let peer = neighbour();
    let hand = hand_lines(&peer);

    // In r1's vtysh: a neighbour description, a network statement, a route.
    vtysh(&[
        "-c",
        "configure terminal",
        "-c",
        "router bgp 100",
        "-c",
        &format!("neighbor {peer} {DESCRIPTION}"),
        "-c",
        "address-family ipv4 unicast",
        "-c",
        NETWORK,
        "-c",
        "exit-address-family",
        "-c",
        "exit",
        "-c",
        ROUTE,
        "-c",
        "end",
    ]);
    let before = running();
    assert!(hand.iter().all(|l| before.contains(l.as_str())), "not typed in:\n{before}");

    agent_restart_keeps_them(&mut fleet, &hand);
    status_shows_them(&fleet);
    let saved = lab_save_holds_them(&fleet, &hand);
    provision_refuses_then_force_drops_them(&fleet, &hand);
    the_lab_file_takes_them_back(&fleet, &hand, &saved);
    frr_lines_frr_refuses_stop_provision(&fleet);
}

/// The restarted agent's first pass reloads nothing: the lines still run.
fn agent_restart_keeps_them(fleet: &mut Fleet, hand: &[String; 3]) {
    let api = fleet.r1_api();
    let log_before = fleet.agent_log().len();
    fleet.restart_r1_agent();
    let passed = eventually(60, || {
        let passes = health(api).map(|h| h["reconcile"]["passes"].as_u64().unwrap_or(0));
        (passes.unwrap_or(0) >= 1).then_some(()).ok_or_else(|| format!("passes: {passes:?}"))
    });
    assert!(passed.is_ok(), "the restarted agent finished no pass:\n{}", fleet.agent_log());
    let after = running();
    for line in hand {
        assert!(after.contains(line.as_str()), "{line:?} gone after the restart:\n{after}");
    }
    let new_log = &fleet.agent_log()[log_before..];
    assert!(!new_log.contains("how=Reloaded"), "the restarted agent reloaded FRR:\n{new_log}");
}

fn status_shows_them(fleet: &Fleet) {
    let shown = eventually(30, || {
        let drift = fleet.node_status("r1")["drift"].clone();
        let changed = drift.as_str().is_some_and(|d| d.starts_with("hand-changed"));
        changed.then_some(()).ok_or_else(|| drift.to_string())
    });
    let r1 = fleet.node_status("r1");
    assert!(shown.is_ok(), "r1 not hand-changed: {r1:#}");
    let changes: Vec<&str> =
        r1["hand_changes"].as_array().expect("array").iter().filter_map(|c| c.as_str()).collect();
    for wanted in [
        format!("+{ROUTE}"),
        format!("+router bgp 100 > address-family ipv4 unicast > {NETWORK}"),
        "description typed-by-hand".to_string(),
    ] {
        assert!(changes.iter().any(|c| c.contains(&wanted)), "{wanted:?} not in {changes:#?}");
    }
    assert_eq!(r1["drift"], format!("hand-changed, {} lines", changes.len()));
    assert!(r1["healthy"] == true, "hand changes are no fault: {r1:#}");
    assert!(fleet.node_status("r2")["drift"].is_null());
    let table = fleet.pi_lab(&["status"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("hand-changed, {} lines", changes.len())), "{text}");
}

/// `lab save`: r1's running config and its hand lines; r2 has none.
fn lab_save_holds_them(fleet: &Fleet, hand: &[String; 3]) -> String {
    let out_dir = fleet.dir.join("saved");
    let out = fleet.pi_lab(&["lab", "save", "-o", &out_dir.to_string_lossy()]);
    assert!(out.status.success(), "lab save:\n{}", said(&out));
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap_or_default();
    let (frr, saved) = (read("r1/frr.conf"), read("r1/hand.conf"));
    for line in hand {
        assert!(frr.contains(line.as_str()), "{line:?} not in the saved frr.conf:\n{frr}");
        assert!(saved.contains(line.trim()), "{line:?} not in hand.conf:\n{saved}");
    }
    assert_eq!(read("r2/hand.conf"), "");
    assert!(read("r2/frr.conf").contains("router bgp 200"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 of 2 nodes saved"), "{text}");
    saved
}

/// A changed lab file: without --force nothing reaches any node and the
/// lines are named; with it, the new config replaces them.
fn provision_refuses_then_force_drops_them(fleet: &Fleet, hand: &[String; 3]) {
    let version =
        |node: &str| fleet.node_status(node)["report"]["reconcile"]["config_version"].clone();
    let r2_before = version("r2");
    std::fs::write(
        &fleet.file,
        LAB_FILE.replace("asn = 200\n", "asn = 200\n\n[bgp]\nkeepalive = 4\nhold = 12\n"),
    )
    .expect("change the lab file");
    let out = fleet.pi_lab(&["provision", "--timeout", "90"]);
    assert_eq!(out.status.code(), Some(1), "provision over hand changes:\n{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("r1: hand-changed"), "{text}");
    for line in [ROUTE, NETWORK, DESCRIPTION] {
        assert!(text.contains(line), "{line:?} not named:\n{text}");
    }
    assert!(text.contains("--force"), "{text}");
    assert_eq!(version("r2"), r2_before, "r2 was provisioned although r1 refused");
    let now = running();
    assert!(hand.iter().all(|l| now.contains(l.as_str())), "{now}");

    let out = fleet.pi_lab(&["provision", "--force", "--timeout", "90"]);
    assert!(out.status.success(), "provision --force:\n{}", said(&out));
    assert_ne!(version("r2"), r2_before);
    let now = running();
    for line in hand {
        assert!(!now.contains(line.as_str()), "{line:?} survived --force:\n{now}");
    }
    assert!(now.contains(" timers bgp 4 12\n"), "the new config is not in force:\n{now}");
    assert!(fleet.node_status("r1")["drift"].is_null(), "{:#}", fleet.node_status("r1"));
}

/// hand.conf as r1's frr lines: provision needs no --force, the lines run
/// again and are no hand changes any more.
fn the_lab_file_takes_them_back(fleet: &Fleet, hand: &[String; 3], saved: &str) {
    let text = std::fs::read_to_string(&fleet.file).expect("lab file");
    let text = text.replace("asn = 100\n", &format!("asn = 100\nfrr = \"\"\"\n{saved}\"\"\"\n"));
    std::fs::write(&fleet.file, text).expect("write lab file");
    let out = fleet.pi_lab(&["lab", "check"]);
    assert!(out.status.success(), "lab check:\n{}", said(&out));
    let out = fleet.pi_lab(&["provision", "--timeout", "90"]);
    assert!(out.status.success(), "provision with the saved lines:\n{}", said(&out));
    let now = running();
    for line in hand {
        assert!(now.contains(line.as_str()), "{line:?} not back:\n{now}");
    }
    let r1 = fleet.node_status("r1");
    assert!(r1["drift"].is_null(), "lines from the lab file are no hand changes: {r1:#}");
}

/// A typo in the lab file's frr lines, with no FRR on this side (PATH
/// without vtysh): r1's own FRR checks it, the error points into the lab
/// file, and nothing is applied.
fn frr_lines_frr_refuses_stop_provision(fleet: &Fleet) {
    let good = std::fs::read_to_string(&fleet.file).expect("lab file");
    let bad =
        good.replace(&format!("{ROUTE}\n"), &format!("{ROUTE}\nip ruote 10.98.0.0/24 Null0\n"));
    assert_ne!(bad, good);
    std::fs::write(&fleet.file, &bad).expect("write lab file");
    let line = bad.lines().position(|l| l.starts_with("ip ruote ")).expect("typo") + 1;
    let before = running();
    let out = fleet.pi_lab_with(&["provision", "--timeout", "30"], &[("PATH", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("t6hand.toml:{line}:1: error: FRR refuses")), "{err}");
    assert!(err.contains("nothing was provisioned"), "{err}");
    assert_eq!(running(), before, "something was applied");
}
