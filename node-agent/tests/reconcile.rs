//! node-agent against the real kernel, in network namespaces (root only).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use lab_spec::node_config::Flooding;

fn vxlan_info(ns: &Netns, dev: &str) -> serde_json::Value {
    let v = ns.ip_json(&["link", "show", dev]);
    v[0].clone()
}

#[test]
fn first_pass_creates_everything_and_second_changes_nothing() {
    if !prerequisites("first_pass_creates_everything", &["ip", "bridge"]) {
        return;
    }
    let ns = leaf_netns("create");
    let path = ns.write_config("leaf.toml", &leaf());

    let (report, ok) = apply(&ns, &path, &[]);
    assert!(ok, "{report:#}");
    assert!(strings(&report["applied"]).len() >= 15, "{report:#}");

    let vx = vxlan_info(&ns, "vxlan10010");
    let data = &vx["linkinfo"]["info_data"];
    assert_eq!(data["id"], 10010);
    assert_eq!(data["local"], "10.0.0.3");
    assert_eq!(data["port"], 4789);
    assert_eq!(data["learning"], false);
    assert_eq!(vx["mtu"], 1450);
    assert_eq!(vx["master"], "br10010");
    assert_eq!(vx["ifalias"], "pi-lab");
    assert!(vx["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{vx:#}");
    assert_eq!(vxlan_info(&ns, "eth3")["master"], "br10010");
    assert_eq!(vxlan_info(&ns, "eth4")["master"], "br10020");
    assert_eq!(vxlan_info(&ns, "vxlan10020")["linkinfo"]["info_data"]["id"], 10020);

    assert_eq!(ns.bridge_fdb("vxlan10010"), ["10.0.0.6", "10.0.0.7"]);
    // EVPN segment: the flood list is FRR's job.
    assert!(ns.bridge_fdb("vxlan10020").is_empty());

    let lo = ns.ip(&["-4", "addr", "show", "dev", "lo"]);
    assert!(lo.contains("10.0.0.3/32"), "{lo}");
    assert!(ns.ip(&["-4", "addr", "show", "dev", "eth1"]).contains("10.1.0.1/31"));
    let routes = ns.ip(&["route", "show", "proto", "200"]);
    assert!(routes.contains("10.20.0.0/16 via 10.1.0.0"), "{routes}");

    let (again, ok) = apply(&ns, &path, &[]);
    assert!(ok);
    assert_eq!(again["planned"], serde_json::json!([]), "second pass: {again:#}");
}

#[test]
fn drift_is_repaired_and_foreign_things_are_left_alone() {
    if !prerequisites("drift_is_repaired", &["ip", "bridge"]) {
        return;
    }
    let ns = leaf_netns("drift");
    let path = ns.write_config("leaf.toml", &leaf());
    assert!(apply(&ns, &path, &[]).1);

    // Drift: device deleted, one flood entry deleted, a stale one added.
    ns.ip(&["link", "del", "vxlan10010"]);
    check(std::process::Command::new("bridge").args([
        "-n",
        &ns.name,
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vxlan10020",
        "dst",
        "10.9.9.9",
    ]));
    // Foreign: a bridge and an address on an interface the config does not name.
    ns.veth("other0");
    ns.ip(&["link", "add", "br-foreign", "type", "bridge"]);
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "other0"]);
    ns.ip(&["addr", "add", "10.66.0.1/24", "dev", "eth1"]);

    let (report, ok) = apply(&ns, &path, &[]);
    assert!(ok, "{report:#}");
    assert_eq!(vxlan_info(&ns, "vxlan10010")["master"], "br10010");
    assert_eq!(ns.bridge_fdb("vxlan10010"), ["10.0.0.6", "10.0.0.7"]);
    assert!(
        !ns.ip(&["-4", "addr", "show", "dev", "eth1"]).contains("10.66.0.1"),
        "stray address on a named port stays"
    );
    assert!(ns.ip(&["link", "show", "br-foreign"]).contains("br-foreign"));
    assert!(ns.ip(&["-4", "addr", "show", "dev", "other0"]).contains("10.77.0.1/24"));
    assert_eq!(ns.bridge_fdb("vxlan10020"), ["10.9.9.9"], "EVPN flood list belongs to FRR");

    // A stale static flood entry and a removed one.
    check(std::process::Command::new("bridge").args([
        "-n",
        &ns.name,
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vxlan10010",
        "dst",
        "10.0.0.99",
    ]));
    check(std::process::Command::new("bridge").args([
        "-n",
        &ns.name,
        "fdb",
        "del",
        "00:00:00:00:00:00",
        "dev",
        "vxlan10010",
        "dst",
        "10.0.0.6",
    ]));
    let (report, ok) = apply(&ns, &path, &[]);
    assert!(ok);
    let applied = strings(&report["applied"]);
    assert_eq!(
        applied,
        [
            "bridge fdb del 00:00:00:00:00:00 dev vxlan10010 dst 10.0.0.99",
            "bridge fdb append 00:00:00:00:00:00 dev vxlan10010 dst 10.0.0.6",
        ]
    );
    assert_eq!(ns.bridge_fdb("vxlan10010"), ["10.0.0.6", "10.0.0.7"]);
}

#[test]
fn a_failing_object_does_not_abort_the_others() {
    if !prerequisites("a_failing_object", &["ip", "bridge"]) {
        return;
    }
    let ns = leaf_netns("fail");
    let mut cfg = leaf();
    // eth4 does not exist in this namespace: its changes fail, the rest goes on.
    cfg.interfaces.iter_mut().for_each(|i| {
        if i.name == "eth4" {
            i.name = "eth9".into();
        }
    });
    cfg.vxlan[1].access_ports = vec!["eth9".into()];
    let path = ns.write_config("leaf.toml", &cfg);
    let (report, ok) = apply(&ns, &path, &[]);
    assert!(!ok, "exit status must say something failed");
    let failed = report["failed"].as_array().unwrap();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|f| f["object"].as_str().unwrap().starts_with("eth9")), "{report:#}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("no interface named \"eth9\""),
        "{report:#}"
    );
    assert_eq!(vxlan_info(&ns, "vxlan10020")["master"], "br10020");
    assert_eq!(ns.bridge_fdb("vxlan10010"), ["10.0.0.6", "10.0.0.7"]);
}

#[test]
fn dry_run_changes_nothing() {
    if !prerequisites("dry_run_changes_nothing", &["ip"]) {
        return;
    }
    let ns = leaf_netns("dry");
    let path = ns.write_config("leaf.toml", &leaf());
    let (report, ok) = apply(&ns, &path, &["--dry-run"]);
    assert!(ok);
    assert!(strings(&report["planned"]).iter().any(|c| c.starts_with("ip link add vxlan10010")));
    assert_eq!(report["applied"], serde_json::json!([]));
    let out =
        run(std::process::Command::new("ip").args(["-n", &ns.name, "link", "show", "vxlan10010"]));
    assert!(!out.status.success(), "dry run created a device");
}

#[test]
fn bad_config_is_refused_with_a_clear_message() {
    if !prerequisites("bad_config_is_refused", &["ip"]) {
        return;
    }
    let ns = leaf_netns("bad");
    let mut cfg = leaf();
    cfg.vxlan[0].vni = 1 << 24;
    let path = ns.write_config("bad.toml", &cfg);
    let out = run(&mut ns.agent(&["apply", "--config", path.to_str().unwrap(), "--no-frr"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vxlan[0].vni: VNI 16777216 is out of range; use 1-16777215"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    std::fs::write(&path, "schema = 1\nhostname = [").unwrap();
    let out = run(&mut ns.agent(&["apply", "--config", path.to_str().unwrap(), "--no-frr"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2"), "{err}");
}

/// The service: follows its config file, refuses a bad one and keeps the
/// state, rolls a failing one back, repairs drift between intervals,
/// and stops on SIGTERM.
#[test]
fn run_loop_follows_config_rolls_back_and_repairs() {
    if !prerequisites("run_loop", &["ip", "bridge"]) {
        return;
    }
    let mut ns = leaf_netns("run");
    let path = ns.write_config("node.toml", &leaf());
    let state = ns.dir.join("state");
    let pid = ns.run_agent(&path, "1", &[]);
    assert!(
        eventually(Duration::from_secs(10), || ns.has_link("vxlan10010")),
        "{}",
        ns.agent_log()
    );
    assert!(eventually(Duration::from_secs(5), || state.join("last-good.toml").exists()));

    // Bad file: refused, nothing removed.
    let mut bad = leaf();
    bad.vxlan[0].local_vtep = "10.9.9.9".parse().unwrap();
    std::fs::write(&path, bad.to_toml().unwrap()).unwrap();
    assert!(eventually(Duration::from_secs(5), || ns.agent_log().contains("config file refused")));
    assert!(ns.has_link("vxlan10010"));

    // A config that fails to apply (port missing) is rolled back.
    let mut failing = leaf();
    failing.vxlan[0].vni = 10030;
    failing.vxlan[0].device = "vxlan10030".into();
    failing.interfaces[1].name = "eth9".into();
    failing.vxlan[0].access_ports = vec!["eth9".into()];
    std::fs::write(&path, failing.to_toml().unwrap()).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || ns.agent_log().contains("rolling back")),
        "{}",
        ns.agent_log()
    );
    assert!(eventually(Duration::from_secs(3), || ns.has_link("vxlan10010")
        && !ns.has_link("vxlan10030")));
    let saved = std::fs::read_to_string(state.join("last-good.toml")).unwrap();
    assert!(saved.contains("vxlan10010") && !saved.contains("vxlan10030"));

    // A good new config: the flood list follows.
    let mut next = leaf();
    next.vxlan[0].flooding = Flooding::Static { remote_vteps: vec!["10.0.0.8".parse().unwrap()] };
    std::fs::write(&path, next.to_toml().unwrap()).unwrap();
    assert!(eventually(Duration::from_secs(5), || ns.bridge_fdb("vxlan10010") == ["10.0.0.8"]));

    // Drift is repaired by the loop.
    ns.ip(&["link", "del", "vxlan10010"]);
    assert!(eventually(Duration::from_secs(5), || ns.has_link("vxlan10010")
        && ns.bridge_fdb("vxlan10010") == ["10.0.0.8"]));

    check(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = ns.wait_agent(Duration::from_secs(5)).expect("agent exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", ns.agent_log());
}

/// Link events wake the loop: a deleted device is back long before the
/// (30 s) interval.
#[test]
fn deleted_device_is_back_before_the_interval() {
    if !prerequisites("deleted_device_is_back", &["ip"]) {
        return;
    }
    let mut ns = leaf_netns("event");
    let path = ns.write_config("node.toml", &leaf());
    ns.run_agent(&path, "30", &[]);
    assert!(eventually(Duration::from_secs(10), || ns.has_link("vxlan10020")));
    std::thread::sleep(Duration::from_millis(500));
    ns.ip(&["link", "del", "vxlan10020"]);
    let start = std::time::Instant::now();
    assert!(eventually(Duration::from_secs(5), || ns.has_link("vxlan10020")), "{}", ns.agent_log());
    eprintln!("vxlan10020 repaired after {:?}", start.elapsed());
}

/// Type=notify: READY=1 after the first pass, WATCHDOG=1 at least every
/// WATCHDOG_USEC/2, STOPPING=1 on SIGTERM.
#[test]
fn tells_systemd_it_is_ready_and_alive() {
    if !prerequisites("tells_systemd", &["ip"]) {
        return;
    }
    let mut ns = leaf_netns("notify");
    let path = ns.write_config("node.toml", &leaf());
    let sock_path = ns.dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let watchdog = std::path::Path::new("400000");
    let env = [("NOTIFY_SOCKET", sock_path.as_path()), ("WATCHDOG_USEC", watchdog)];
    let pid = ns.run_agent(&path, "10", &env);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen.iter().filter(|m: &&String| m.as_str() == "WATCHDOG=1").count() < 3 {
        let Ok(n) = sock.recv(&mut buf) else { break };
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    check(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = ns.wait_agent(Duration::from_secs(5)).expect("agent exits on SIGTERM");
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // STATUS= lines describe passes; the protocol messages come in order.
    let line = seen.iter().find(|m| m.starts_with("STATUS=")).cloned().unwrap_or_default();
    assert!(line.ends_with(": converged"), "{seen:?}");
    seen.retain(|m| !m.starts_with("STATUS="));
    assert_eq!(seen.first().map(String::as_str), Some("READY=1"), "{seen:?}\n{}", ns.agent_log());
    assert!(seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("STOPPING=1"));
    assert!(status.success());
    // The network was brought up before READY.
    assert!(ns.ip(&["link", "show", "vxlan10010"]).contains("vxlan10010"));
}

/// The watchdog never waits for FRR: while vtysh hangs (here a fake one
/// that answers the first call and stalls from the second on), WATCHDOG=1
/// keeps coming every WATCHDOG_USEC/2.
#[test]
fn watchdog_pings_while_vtysh_stalls() {
    if !prerequisites("watchdog_pings_while_vtysh_stalls", &["ip", "sleep"]) {
        return;
    }
    let mut ns = leaf_netns("wdog");
    let path = ns.write_config("node.toml", &leaf());
    let calls = ns.dir.join("vtysh-calls");
    let vtysh = ns.dir.join("vtysh");
    let script = format!(
        "#!/bin/sh\necho >> {calls}\n[ \"$(wc -l < {calls})\" -ge 2 ] && exec sleep 20\necho '{{}}'\n",
        calls = calls.display()
    );
    std::fs::write(&vtysh, script).unwrap();
    std::fs::set_permissions(&vtysh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sock_path = ns.dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let state = ns.dir.join("state");
    let frr_dir = ns.dir.join("frr");
    let name = ns.name.clone();
    let args = [
        "run",
        "--config",
        path.to_str().unwrap(),
        "--interval",
        "1",
        "--frr-pathspace",
        &name,
        "--frr-dir",
        frr_dir.to_str().unwrap(),
        "--vtysh",
        vtysh.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    // WatchdogSec=2: a ping at least every second.
    let watchdog = std::path::Path::new("2000000");
    ns.spawn_agent(&args, &[("NOTIFY_SOCKET", sock_path.as_path()), ("WATCHDOG_USEC", watchdog)]);
    let mut buf = [0u8; 256];
    let mut ready = false;
    let called_twice = || std::fs::read_to_string(&calls).is_ok_and(|c| c.lines().count() >= 2);
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while !(ready && called_twice()) && std::time::Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            ready |= &buf[..n] == b"READY=1";
        }
    }
    assert!(ready && called_twice(), "no READY=1 or no second vtysh call\n{}", ns.agent_log());
    // vtysh now hangs for 20 s (the agent gives it 60): count the pings.
    let mut pings = 0;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf)
            && &buf[..n] == b"WATCHDOG=1"
        {
            pings += 1;
        }
    }
    assert!(pings >= 4, "{pings} watchdog pings in 5 s while vtysh stalled\n{}", ns.agent_log());
}

/// A segment that loses an access port lets it go; a segment that goes
/// away takes its devices along.
#[test]
fn removed_access_ports_and_segments_are_undone() {
    if !prerequisites("removed_access_ports", &["ip", "bridge"]) {
        return;
    }
    let ns = leaf_netns("undo");
    let path = ns.write_config("leaf.toml", &leaf());
    assert!(apply(&ns, &path, &[]).1);
    assert_eq!(ns.ip_json(&["link", "show", "eth4"])[0]["master"], "br10020");

    let mut cfg = leaf();
    cfg.vxlan[1].access_ports.clear();
    cfg.vxlan.remove(0);
    let path = ns.write_config("leaf.toml", &cfg);
    let (report, ok) = apply(&ns, &path, &[]);
    assert!(ok, "{report:#}");
    assert_eq!(ns.ip_json(&["link", "show", "eth4"])[0]["master"], serde_json::Value::Null);
    assert!(!ns.has_link("vxlan10010") && !ns.has_link("br10010"));
    assert!(ns.has_link("vxlan10020"));
    assert_eq!(apply(&ns, &path, &[]).0["planned"], serde_json::json!([]));
}
