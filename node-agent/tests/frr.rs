//! Two FRR instances in two namespaces, configured by node-agent from the
//! rendered frr.conf, form an eBGP session (root, FRR installed).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use node_agent::frr::{DAEMONS, Frr, FrrSync, daemon_command};

/// FRR daemons for one pathspace; stopped and their files removed on drop.
struct FrrInstance {
    name: String,
}

impl FrrInstance {
    fn start(ns: &Netns) -> Self {
        let name = ns.name.clone();
        let inst = FrrInstance { name: name.clone() };
        inst.cleanup();
        let dir = Path::new("/etc/frr").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        check(Command::new("chown").args(["frr:frr", dir.to_str().unwrap()]));
        for daemon in DAEMONS {
            check(&mut daemon_command(&ns.name, &name, daemon));
        }
        inst
    }

    fn run_dir(&self) -> PathBuf {
        Path::new("/var/run/frr").join(&self.name)
    }

    fn cleanup(&self) {
        for daemon in DAEMONS {
            let pidfile = self.run_dir().join(format!("{daemon}.pid"));
            if let Ok(pid) = std::fs::read_to_string(&pidfile) {
                let _ = run(Command::new("kill").arg(pid.trim()));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(Path::new("/etc/frr").join(&self.name));
        let _ = std::fs::remove_dir_all(self.run_dir());
    }
}

impl Drop for FrrInstance {
    fn drop(&mut self) {
        self.cleanup();
    }
}

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
        let path = ns.write_config("node.toml", cfg);
        let state = ns.dir.join("state");
        let out = run(&mut ns.agent(&[
            "apply",
            "--json",
            "--config",
            path.to_str().unwrap(),
            "--frr-pathspace",
            &ns.name,
            "--state-dir",
            state.to_str().unwrap(),
        ]));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(report["frr"], "reloaded", "{report:#}");
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
    drop(f2);
}
