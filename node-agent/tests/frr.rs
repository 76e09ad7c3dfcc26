//! Two FRR instances in two namespaces, configured by node-agent from the
//! rendered frr.conf, form an eBGP session (root, FRR installed).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use std::path::{Path, PathBuf};

use node_agent::frr::{Frr, FrrSync, daemon_command};

fn vtysh(name: &str, cmd: &str) -> String {
    check(Command::new("vtysh").args(["-N", name, "-c", cmd]))
}

#[test]
fn two_frr_instances_form_an_ebgp_session_from_rendered_config() {
    if !prerequisites(
        "two_frr_instances",
        &["ip", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/frr-reload.py"],
    ) {
        return;
    }
    let r1 = Netns::new("r1");
    let r2 = Netns::new("r2");
    check(Command::new("ip").args([
        "link", "add", "eth1", "netns", &r1.name, "type", "veth", "peer", "name", "eth1", "netns",
        &r2.name,
    ]));
    let c1 = router("r1", "10.0.0.1", 65001, "10.1.0.0/31", "r2", 65002);
    let c2 = router("r2", "10.0.0.2", 65002, "10.1.0.1/31", "r1", 65001);
    let f1 = FrrInstance::start(&r1);
    let f2 = FrrInstance::start(&r2);

    for (ns, cfg) in [(&r1, &c1), (&r2, &c2)] {
        let report = apply_frr(ns, cfg);
        // FRR just started with nothing loaded: the file is added whole
        // (vtysh -f), which is all frr-reload.py would do, for less.
        assert_eq!(report["frr"], "applied", "{report:#}");
        let written = std::fs::read_to_string(format!("/etc/frr/{}/frr.conf", ns.name)).unwrap();
        assert_eq!(written, lab_spec::frr::render(cfg));
    }

    let frr1 = Frr::new(Some(f1.name.clone()), None, "vtysh".into());
    let established = eventually(Duration::from_secs(30), || {
        frr1.neighbors(&c1).map(|n| n.len() == 1 && n[0].established).unwrap_or(false)
    });
    assert!(established, "{}", vtysh(&f1.name, "show bgp summary"));
    let n = frr1.neighbors(&c1).unwrap();
    assert_eq!((n[0].address.to_string().as_str(), n[0].remote_asn), ("10.1.0.1", 65002));

    // Each router learns the other's loopback and installs it in its kernel.
    for (ns, other) in [(&r1, "10.0.0.2"), (&r2, "10.0.0.1")] {
        let found = eventually(Duration::from_secs(15), || {
            ns.ip(&["route", "show", other]).contains("proto bgp")
        });
        assert!(found, "{}: {}", ns.name, ns.ip(&["route"]));
    }
    let ping = run(Command::new("ip").args([
        "netns", "exec", &r1.name, "ping", "-c", "1", "-W", "2", "-I", "10.0.0.1", "10.0.0.2",
    ]));
    assert!(ping.status.success(), "loopback to loopback ping failed");

    // Unchanged config: nothing to do. A changed one reaches FRR without
    // resetting the session.
    let mut frr = Frr::new(Some(f1.name.clone()), None, "vtysh".into());
    let text = lab_spec::frr::render(&c1);
    assert_eq!(frr.sync_text(&text).unwrap(), FrrSync::Reloaded);
    assert_eq!(frr.sync_text(&text).unwrap(), FrrSync::Unchanged);
    let before = frr.neighbors(&c1).unwrap()[0].uptime_seconds;
    let mut c1b = c1.clone();
    c1b.interfaces[0].description = "to r2 (changed)".into();
    assert_eq!(frr.sync(&c1b).unwrap(), FrrSync::Reloaded);
    assert!(vtysh(&f1.name, "show running-config").contains("description to r2 (changed)"));
    let after = frr.neighbors(&c1).unwrap();
    assert!(
        after[0].established && after[0].uptime_seconds >= before,
        "session was reset: {after:?}"
    );

    // Fallback without frr-reload.py: vtysh -f adds the new lines.
    let mut fallback = Frr::new(Some(f1.name.clone()), None, "vtysh".into());
    fallback.reload_script = PathBuf::from("/nonexistent/frr-reload.py");
    let mut c1c = c1.clone();
    c1c.interfaces[0].description = "to r2 (fallback)".into();
    assert_eq!(fallback.sync(&c1c).unwrap(), FrrSync::Applied);
    assert!(vtysh(&f1.name, "show running-config").contains("description to r2 (fallback)"));

    // A restarted bgpd has lost its config: the next sync notices.
    assert_eq!(frr.sync(&c1b).unwrap(), FrrSync::Unchanged);
    let pidfile = f1.run_dir().join("bgpd.pid");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    check(Command::new("kill").arg(pid.trim()));
    assert!(eventually(Duration::from_secs(10), || !Path::new(&format!("/proc/{}", pid.trim()))
        .exists()));
    check(&mut daemon_command(&r1.name, &f1.name, "bgpd"));
    assert!(eventually(Duration::from_secs(10), || f1.run_dir().join("bgpd.vty").exists()));
    // The new bgpd holds nothing: the whole file is added again.
    assert_eq!(frr.sync(&c1b).unwrap(), FrrSync::Applied);
    let back =
        eventually(Duration::from_secs(30), || frr.neighbors(&c1).is_ok_and(|n| n[0].established));
    assert!(back, "{}", vtysh(&f1.name, "show bgp summary"));

    // The service reloads FRR once, then only when the config changes.
    let mut r2 = r2;
    let path = r2.dir.join("node.toml");
    let pid = r2.run_agent_frr(&path, "1");
    // The first reload takes as long as frr-reload.py does (seconds on a
    // busy machine); after it, three more passes (interval 1 s) reload nothing.
    assert!(
        eventually(Duration::from_secs(30), || r2.agent_log().contains("how=")),
        "no reload: {}",
        r2.agent_log()
    );
    std::thread::sleep(Duration::from_secs(3));
    let log = r2.agent_log();
    assert_eq!(log.matches("how=").count(), 1, "{log}");
    assert!(log.contains("Reloaded"), "{log}");
    check(Command::new("kill").args(["-TERM", &pid.to_string()]));
    assert!(r2.wait_agent(Duration::from_secs(5)).is_some_and(|s| s.success()));
    assert!(frr1.neighbors(&c1).unwrap()[0].established);
    drop(f2);
}

fn host_config(name: &str, blue: &str, green: &str) -> lab_spec::NodeConfig {
    let mut cfg = router(name, "10.0.0.99", 65099, blue, "leaf", 65001);
    cfg.role = lab_spec::Role::Host;
    cfg.loopback = None;
    cfg.bgp = None;
    cfg.interfaces.push(cfg.interfaces[0].clone());
    cfg.interfaces[1].name = "eth2".into();
    cfg.interfaces[1].address = Some(green.parse().unwrap());
    cfg.check().unwrap();
    cfg
}

fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    check(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]));
}

fn leaf_for(name: &str, lo: &str, asn: u32, eth1: &str, peer_vtep: &str) -> lab_spec::NodeConfig {
    let mut cfg = leaf();
    cfg.hostname = name.into();
    cfg.loopback = Some(lo.parse().unwrap());
    cfg.sflow.agent_address = lo.parse().unwrap();
    cfg.interfaces[0].address = Some(eth1.parse().unwrap());
    let bgp = cfg.bgp.as_mut().unwrap();
    bgp.asn = asn;
    bgp.router_id = lo.parse().unwrap();
    bgp.networks = vec![format!("{lo}/32").parse().unwrap()];
    bgp.neighbors[0].address = {
        let n: ipnet::Ipv4Net = eth1.parse().unwrap();
        std::net::Ipv4Addr::from(u32::from(n.addr()) ^ 1)
    };
    bgp.timers = lab_spec::node_config::BgpTimers { keepalive: 1, hold: 3, connect_retry: 1 };
    for seg in &mut cfg.vxlan {
        seg.local_vtep = lo.parse().unwrap();
        if let lab_spec::node_config::Flooding::Static { remote_vteps } = &mut seg.flooding {
            *remote_vteps = vec![peer_vtep.parse().unwrap()];
        }
    }
    cfg.routes.clear();
    cfg
}

/// leaf1 — spine1 — leaf2, hosts h1 and h2 on both leaves: blue (VNI
/// 10010, static flooding) and green (VNI 10020, EVPN) carry pings.
#[test]
fn evpn_and_static_segments_carry_host_traffic_across_a_spine() {
    if !prerequisites(
        "evpn_and_static",
        &["ip", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/frr-reload.py", "ping"],
    ) {
        return;
    }
    let [l1, sp, l2, h1, h2] = ["fl1", "fsp", "fl2", "fh1", "fh2"].map(Netns::new);
    link(&sp, "eth1", &l1, "eth1");
    link(&sp, "eth2", &l2, "eth1");
    for (leaf, host) in [(&l1, &h1), (&l2, &h2)] {
        link(leaf, "eth3", host, "eth1");
        link(leaf, "eth4", host, "eth2");
    }
    let c1 = leaf_for("leaf1", "10.0.0.3", 65001, "10.1.0.1/31", "10.0.0.4");
    let c2 = leaf_for("leaf2", "10.0.0.4", 65002, "10.1.0.3/31", "10.0.0.3");
    let mut cs = router("spine1", "10.0.0.1", 65000, "10.1.0.0/31", "leaf1", 65001);
    cs.role = lab_spec::Role::Spine;
    cs.interfaces.push(cs.interfaces[0].clone());
    cs.interfaces[1].name = "eth2".into();
    cs.interfaces[1].address = Some("10.1.0.2/31".parse().unwrap());
    let bgp = cs.bgp.as_mut().unwrap();
    bgp.evpn = true;
    bgp.neighbors.push(bgp.neighbors[0].clone());
    bgp.neighbors[1].address = "10.1.0.3".parse().unwrap();
    bgp.neighbors[1].interface = "eth2".into();
    bgp.neighbors[1].remote_asn = 65002;
    bgp.neighbors[1].description = "leaf2".into();
    for c in [&c1, &c2, &cs] {
        c.check().unwrap();
    }

    let _frr: Vec<FrrInstance> = [&l1, &sp, &l2].map(FrrInstance::start).into();
    for (ns, cfg) in [(&l1, &c1), (&sp, &cs), (&l2, &c2)] {
        apply_frr(ns, cfg);
    }
    // Hosts are node-agent nodes too: addresses on their ports, no FRR.
    for (host, blue, green) in
        [(&h1, "10.10.0.1/24", "10.20.0.1/24"), (&h2, "10.10.0.2/24", "10.20.0.2/24")]
    {
        let report = apply_frr(host, &host_config(&host.name, blue, green));
        assert_eq!(report["frr"], serde_json::Value::Null, "a host has no FRR");
    }

    let ping = |from: &Netns, to: &str| {
        run(Command::new("ip")
            .args(["netns", "exec", &from.name, "ping", "-c", "1", "-W", "1", to]))
        .status
        .success()
    };
    let blue = eventually(Duration::from_secs(30), || ping(&h1, "10.10.0.2"));
    assert!(blue, "blue (static) ping failed; leaf1 routes: {}", l1.ip(&["route"]));
    let green = eventually(Duration::from_secs(45), || ping(&h1, "10.20.0.2"));
    assert!(
        green,
        "green (EVPN) ping failed\nleaf1 fdb: {:?}\n{}\n{}",
        l1.bridge_fdb("vxlan10020"),
        vtysh(&l1.name, "show evpn vni"),
        vtysh(&sp.name, "show bgp l2vpn evpn")
    );
    // FRR installed the EVPN flood list; the agent kept its hands off.
    assert_eq!(l1.bridge_fdb("vxlan10020"), ["10.0.0.4"]);
    assert_eq!(l1.bridge_fdb("vxlan10010"), ["10.0.0.4"]);
    let out = run(&mut l1.agent(&[
        "apply",
        "--json",
        "--no-frr",
        "--config",
        l1.dir.join("node.toml").to_str().unwrap(),
        "--state-dir",
        l1.dir.join("state").to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["planned"], serde_json::json!([]), "{report:#}");
}

/// Without running daemons: the error says so, and frr.conf is written
/// for FRR to read when it starts.
#[test]
fn frr_not_running_is_reported_and_config_still_written() {
    if !prerequisites("frr_not_running", &["vtysh"]) {
        return;
    }
    let ns = Netns::new("nofrr");
    let cfg = router("r9", "10.0.0.9", 65009, "10.1.0.8/31", "r8", 65008);
    let mut frr = Frr::new(Some(ns.name.clone()), Some(ns.dir.join("frr")), "vtysh".into());
    let err = frr.neighbors(&cfg).unwrap_err().to_string();
    assert!(err.contains("vtysh") && err.contains("failed"), "{err}");
    assert_eq!(frr.sync(&cfg).unwrap(), FrrSync::WrittenOnly);
    let written = std::fs::read_to_string(ns.dir.join("frr/frr.conf")).unwrap();
    assert_eq!(written, lab_spec::frr::render(&cfg));
    assert!(ns.dir.join("frr/vtysh.conf").exists());
}

/// The two-router example as `pi-lab` compiles it: BGP Established, each
/// router has a route to the other's loopback.
#[test]
fn compiled_two_router_example_comes_up() {
    if !prerequisites(
        "compiled_two_router",
        &["ip", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/frr-reload.py"],
    ) {
        return;
    }
    let lab = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/two-router.toml");
    let (_, _, configs) = lab_spec::compile_file(&lab, "t3a").unwrap();
    let (c1, c2) = (&configs["r1"], &configs["r2"]);
    let (n1, n2) = (Netns::new("x1"), Netns::new("x2"));
    link(&n1, "eth1", &n2, "eth1");
    let _frr = [FrrInstance::start(&n1), FrrInstance::start(&n2)];
    for (ns, cfg) in [(&n1, c1), (&n2, c2)] {
        // The virtual fleet's management port is a veth carrying the address.
        ns.ip(&["addr", "add", &cfg.management.address.to_string(), "dev", "mgmt0"]);
        assert_eq!(apply_frr(ns, cfg)["frr"], "applied", "a fresh FRR gets the whole file");
    }
    let frr = Frr::new(Some(n1.name.clone()), None, "vtysh".into());
    let up = eventually(Duration::from_secs(30), || {
        frr.neighbors(c1).is_ok_and(|n| n.iter().all(|s| s.established))
    });
    assert!(up, "{}", vtysh(&n1.name, "show bgp summary"));
    for (ns, other) in [(&n1, c2), (&n2, c1)] {
        let lo = other.loopback.unwrap().to_string();
        let found = eventually(Duration::from_secs(15), || {
            ns.ip(&["route", "show", &lo]).contains("proto bgp")
        });
        assert!(found, "{}: no route to {lo}: {}", ns.name, ns.ip(&["route"]));
    }
}

/// Lines typed into vtysh survive an agent restart (no reload at all), a
/// new generated config (loaded with them on top) and a restart of FRR;
/// only a forced config drops them.
#[test]
fn hand_changes_survive_agent_restarts_and_new_configs() {
    if !prerequisites(
        "hand_changes_survive",
        &["ip", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/frr-reload.py"],
    ) {
        return;
    }
    let ns = Netns::new("hand");
    let f = FrrInstance::start(&ns);
    let cfg = router("r1", "10.0.0.1", 65001, "10.1.0.0/31", "r2", 65002);
    let state = ns.dir.join("state");
    let agent = || {
        let mut frr = Frr::new(Some(f.name.clone()), None, "vtysh".into());
        frr.state_dir = Some(state.clone());
        frr
    };
    let running = || vtysh(&f.name, "show running-config");
    let mut frr = agent();
    assert_eq!(frr.sync(&cfg).unwrap(), FrrSync::Applied, "a fresh FRR gets the whole file");
    assert!(frr.hand_changes().is_empty(), "{}", running());

    check(Command::new("vtysh").args([
        "-N",
        &f.name,
        "-c",
        "configure terminal",
        "-c",
        "router bgp 65001",
        "-c",
        "neighbor 10.1.0.1 description typed by hand",
        "-c",
        "address-family ipv4 unicast",
        "-c",
        "network 10.99.0.0/24",
    ]));
    let hand: Vec<String> = frr.hand_changes().iter().map(ToString::to_string).collect();
    assert_eq!(
        hand,
        [
            "-router bgp 65001 > neighbor 10.1.0.1 description r2",
            "+router bgp 65001 > neighbor 10.1.0.1 description typed by hand",
            "+router bgp 65001 > address-family ipv4 unicast > network 10.99.0.0/24",
        ]
    );
    let conf = std::fs::read_to_string(format!("/etc/frr/{}/frr.conf", f.name)).unwrap();
    assert!(conf.contains("  network 10.99.0.0/24\n"), "FRR boots without them:\n{conf}");

    // A new agent process: FRR runs what was loaded, nothing is reloaded.
    let mut restarted = agent();
    assert_eq!(restarted.sync(&cfg).unwrap(), FrrSync::Unchanged);
    assert_eq!(restarted.hand_changes().len(), 3);
    assert!(running().contains("description typed by hand"), "{}", running());

    // A new config: reloaded, the hand changes on top of it.
    let mut cfg2 = cfg.clone();
    cfg2.interfaces[0].description = "to r2 (new)".into();
    assert_eq!(restarted.sync(&cfg2).unwrap(), FrrSync::Reloaded);
    let now = running();
    for line in [" description to r2 (new)", "description typed by hand", "network 10.99.0.0/24"] {
        assert!(now.contains(line), "{line} missing:\n{now}");
    }
    assert_eq!(restarted.hand_changes().len(), 3, "{now}");

    // Forced: the generated config alone.
    restarted.drop_hand_changes();
    assert_eq!(restarted.sync(&cfg2).unwrap(), FrrSync::Reloaded);
    let now = running();
    assert!(!now.contains("typed by hand") && !now.contains("10.99.0.0"), "{now}");
    assert!(now.contains("neighbor 10.1.0.1 description r2"), "{now}");
    assert!(restarted.hand_changes().is_empty());
    assert!(agent().hand_changes().is_empty(), "the dropped changes are still kept");
}
