//! netlab topologies end to end: the published two-router example exactly
//! as published, and three more in netlab's other syntaxes (nodes as a
//! dictionary, groups, links as lists, dictionaries and `interfaces`,
//! VXLAN over OSPF with `vlan.access` hosts, EVPN over IS-IS with route
//! reflectors, eBGP with `as_list`, dual-stack eBGP unnumbered with
//! IPv6 addressing pools). Each converts (`lab import`), runs
//! (`lab up` on the YAML itself) and validates (its netlab tests too).
//! A topology pi-lab cannot build fails with a position.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use crate::common::{LabDir, bin, fresh_lab_dir, prerequisites, workspace};
use crate::fleet::{TOOLS, text};

/// The examples all use pi-lab's default management subnet (the published
/// one says so itself): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A copy of a netlab example as `DIR/topology.yml`, the directory named
/// so that the lab (named after it, as netlab does) is this test's own.
struct Topology {
    _turn: MutexGuard<'static, ()>,
    name: String,
    dir: PathBuf,
    file: PathBuf,
    state: PathBuf,
    /// Removes `dir` after `drop` has taken the lab down.
    _scratch: LabDir,
}

impl Topology {
    fn new(example: &str, tag: &str) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("t3n{tag}{:03x}", std::process::id() & 0xfff);
        let scratch = fresh_lab_dir(&format!("t3n{tag}"), &name);
        let dir = scratch.path.clone();
        let file = dir.join("topology.yml");
        // Byte for byte: the topology is run as it is.
        std::fs::copy(workspace().join("examples/netlab").join(example), &file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let file = if text.lines().any(|l| l.starts_with("name:")) {
            // A topology that names itself gets this test's name instead.
            let renamed: String =
                text.lines()
                    .map(|l| {
                        if l.starts_with("name:") { format!("name: {name}") } else { l.to_string() }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
            let file = dir.join(format!("{name}.yml"));
            std::fs::write(&file, renamed).unwrap();
            file
        } else {
            file
        };
        Topology { _turn: turn, state: dir.join("state"), name, dir, file, _scratch: scratch }
    }

    fn pi_lab(&self, args: &[&str]) -> Output {
        Command::new(bin("pi-lab"))
            .env("PI_LAB_STATE_DIR", &self.state)
            .env("PI_LAB_AGENT", bin("node-agent"))
            .args(args)
            .output()
            .unwrap()
    }

    fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let out = self.pi_lab(&["lab", "down", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("lab down {} failed:\n{}", self.name, text(&out));
        }
    }
}

/// Convert, check the TOML, run the YAML, validate it: every step exit 0.
fn converts_runs_and_validates(example: &str, tag: &str, nodes: usize) -> Topology {
    let topo = Topology::new(example, tag);
    let check = topo.pi_lab(&["lab", "check", topo.file()]);
    assert!(check.status.success(), "lab check:\n{}", text(&check));
    let toml = topo.dir.join("lab.toml");
    let import = topo.pi_lab(&["lab", "import", topo.file(), "-o", toml.to_str().unwrap()]);
    assert!(import.status.success(), "lab import:\n{}", text(&import));
    let check = topo.pi_lab(&["lab", "check", "--json", toml.to_str().unwrap()]);
    assert!(check.status.success(), "the imported lab:\n{}", text(&check));
    let plan = topo.pi_lab(&["lab", "plan", "--json", topo.file()]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["nodes"].as_object().unwrap().len(), nodes);
    assert_eq!(plan["lab"], topo.name.as_str());
    let up = topo.pi_lab(&["lab", "up", "--json", "--timeout", "150", topo.file()]);
    assert!(up.status.success(), "lab up:\n{}", text(&up));
    let validate = topo.pi_lab(&["validate", "--deadline", "90s", topo.file()]);
    assert_eq!(validate.status.code(), Some(0), "validate:\n{}", text(&validate));
    topo
}

#[test]
fn the_published_two_router_example_runs_as_it_is() {
    if !prerequisites("netlab_published", true, TOOLS) {
        return;
    }
    let topo = converts_runs_and_validates("two-router-ebgp.yml", "pb", 2);
    let published = std::fs::read(workspace().join("examples/netlab/two-router-ebgp.yml")).unwrap();
    assert_eq!(std::fs::read(&topo.file).unwrap(), published, "run unchanged");
    // netlab's runtime settings are named once, as ignored.
    let check = topo.pi_lab(&["lab", "check", topo.file()]);
    let said = text(&check);
    assert_eq!(said.matches("ignored (netlab runtime settings)").count(), 1, "{said}");
    assert!(said.contains("provider, defaults.device, defaults.devices.eos.clab.image"), "{said}");
    let render = topo.pi_lab(&["lab", "render", "--json", topo.file(), "r1"]);
    let r1: serde_json::Value = serde_json::from_slice(&render.stdout).unwrap();
    assert_eq!(r1["config"]["bgp"]["asn"], 100);
    assert_eq!(r1["config"]["bgp"]["neighbors"][0]["remote_asn"], 200);
    assert_eq!(r1["config"]["management"]["address"], "192.168.200.101/24");
}

#[test]
fn a_vxlan_lab_over_ospf_with_access_vlans_runs_and_validates() {
    if !prerequisites("netlab_vxlan_ospf", true, TOOLS) {
        return;
    }
    let topo = converts_runs_and_validates("vxlan-ospf.yml", "vo", 6);
    let list = topo.pi_lab(&["validate", "--list", topo.file()]);
    let said = text(&list);
    for test in ["adj", "red", "blue"] {
        assert!(said.contains(test), "{said}");
    }
}

#[test]
fn an_evpn_fabric_over_isis_with_route_reflectors_runs_and_validates() {
    if !prerequisites("netlab_evpn_isis", true, TOOLS) {
        return;
    }
    let topo = converts_runs_and_validates("evpn-isis.yml", "ei", 6);
    let render = topo.pi_lab(&["lab", "render", "--frr", topo.file(), "spine1"]);
    let frr = String::from_utf8_lossy(&render.stdout).into_owned();
    assert!(frr.contains("router isis UNDERLAY"), "{frr}");
    assert!(frr.contains("neighbor RR-CLIENTS route-reflector-client"), "{frr}");
}

#[test]
fn an_ebgp_fabric_with_as_list_runs_and_validates() {
    if !prerequisites("netlab_ebgp_fabric", true, TOOLS) {
        return;
    }
    converts_runs_and_validates("ebgp-fabric.yml", "eb", 5);
}

#[test]
fn an_ipv6_unnumbered_topology_written_the_netlab_way_runs_and_validates() {
    if !prerequisites("netlab_unnumbered_ipv6", true, TOOLS) {
        return;
    }
    let topo = converts_runs_and_validates("unnumbered-ipv6.yml", "u6", 5);
    // `unnumbered: true` on the link and on one interface mean the same:
    // both of the spine's sessions run on their interfaces.
    let render = topo.pi_lab(&["lab", "render", "--json", topo.file(), "spine"]);
    let spine: serde_json::Value = serde_json::from_slice(&render.stdout).unwrap();
    let sessions = spine["config"]["bgp"]["neighbors"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{spine:#}");
    assert!(sessions.iter().all(|n| n["unnumbered"] == true), "{sessions:#?}");
    // The converted lab keeps netlab's af on its ping, and validate ran it
    // to hb's IPv6 address.
    let toml = std::fs::read_to_string(topo.dir.join("lab.toml")).unwrap();
    assert!(toml.contains("ping = { to = \"hb\", af = \"ipv6\" }"), "{toml}");
    let validate = topo.pi_lab(&["validate", "--json", "--deadline", "60s", topo.file()]);
    let report: serde_json::Value = serde_json::from_slice(&validate.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let green6 = checks.iter().find(|c| c["name"].as_str().unwrap().starts_with("green6 on ha"));
    let green6 = green6.unwrap_or_else(|| panic!("no green6 check: {report:#}"));
    assert_eq!(green6["verdict"], "pass", "{green6:#}");
    assert!(green6["detail"].as_str().unwrap().contains("(2001:db8:20:"), "{green6:#}");
}

#[test]
fn what_pi_lab_cannot_build_is_an_error_at_its_place() {
    let tmp = tempfile::Builder::new().prefix("pi-lab-netlab-err-").tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("mpls.yml");
    std::fs::write(
        &file,
        "module: [ ospf, mpls ]\nnodes: [ r1, r2 ]\nvrfs:\n  red:\nlinks: [ r1-r2 ]\n",
    )
    .unwrap();
    let out = Command::new(bin("pi-lab")).args(["lab", "check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let at = file.display().to_string();
    assert!(
        said.contains(&format!("{at}:1:17: error: module mpls is not supported by pi-lab")),
        "{said}"
    );
    assert!(said.contains(&format!("{at}:3:1: error: vrfs is not supported by pi-lab")), "{said}");
    // Nothing is written when the topology does not convert.
    let out = Command::new(bin("pi-lab")).args(["lab", "import"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("mpls.toml").exists());
}
