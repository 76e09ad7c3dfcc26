//! The virtual fleet end to end: `pi-lab lab up` on the example labs with
//! the real node-agent, FRR and kernel, then looking at the namespaces.
//!
//! Every test runs its own lab, named `t3f` + two letters + a pid suffix (8
//! bytes, so root-namespace devices are named after the lab itself), with its
//! own management subnet and state directory. A guard runs `lab down` even
//! when the test fails.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::node_config::Flooding;

use crate::common::{LabDir, bin, fresh_lab_dir, prerequisites, workspace};

/// The agent's reconcile interval (10 s by default) plus a pass's time.
const REPAIR_SECS: u64 = 12;

pub(crate) const TOOLS: &[&str] = &["ip", "vtysh", "bridge", "ping", "/usr/lib/frr/frrinit.sh"];

/// A lab of this test, torn down when dropped.
pub(crate) struct TestLab {
    pub(crate) name: String,
    pub(crate) file: PathBuf,
    pub(crate) state: PathBuf,
    /// Kept when the lab does not go down, for the next run to take down.
    scratch: LabDir,
}

impl TestLab {
    /// A copy of `example` with a unique name and management subnet
    /// `172.31.{subnet}.0/24`.
    pub(crate) fn new(example: &str, tag: &str, subnet: u8) -> Self {
        Self::edited(example, tag, subnet, |_| {})
    }

    /// Like [`TestLab::new`], with `edit` applied to the lab file first.
    pub(crate) fn edited(
        example: &str,
        tag: &str,
        subnet: u8,
        edit: impl FnOnce(&mut toml::Table),
    ) -> Self {
        Self::in_family("t3f", example, tag, subnet, edit)
    }

    /// Like [`TestLab::edited`], named `{family}{tag}` + a pid suffix.
    pub(crate) fn in_family(
        family: &str,
        example: &str,
        tag: &str,
        subnet: u8,
        edit: impl FnOnce(&mut toml::Table),
    ) -> Self {
        let name = format!("{family}{tag}{:03x}", std::process::id() & 0xfff);
        let scratch = fresh_lab_dir(&format!("pi-lab-{family}{tag}"), &format!("pi-lab-{name}"));
        let root = scratch.path.clone();
        let text = std::fs::read_to_string(workspace().join("examples").join(example)).unwrap();
        let mut doc: toml::Table = text.parse().unwrap();
        doc.insert("name".into(), name.clone().into());
        let mut mgmt = toml::Table::new();
        mgmt.insert("subnet".into(), format!("172.31.{subnet}.0/24").into());
        mgmt.insert("controller".into(), format!("172.31.{subnet}.1").into());
        doc.insert("management".into(), mgmt.into());
        if let Some(sflow) = doc.get_mut("sflow").and_then(|s| s.as_table_mut()) {
            sflow.insert("collectors".into(), vec![format!("172.31.{subnet}.1:6343")].into());
        }
        edit(&mut doc);
        let file = root.join(format!("{name}.toml"));
        std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
        TestLab { name, file, state: root.join("state"), scratch }
    }

    pub(crate) fn pi_lab(&self) -> Command {
        let mut cmd = Command::new(bin("pi-lab"));
        cmd.env("PI_LAB_STATE_DIR", &self.state).env("PI_LAB_AGENT", bin("node-agent"));
        cmd
    }

    pub(crate) fn up(&self) -> serde_json::Value {
        let out = self
            .pi_lab()
            .args(["lab", "up", "--json", "--timeout", "150"])
            .arg(&self.file)
            .output()
            .unwrap();
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("lab up --json prints JSON")
    }

    /// `lab up` started in the background (stdout dropped, stderr kept),
    /// returned once the journal shows namespaces and FRR: halfway through.
    fn up_until_frr(&self) -> std::process::Child {
        let mut up = self
            .pi_lab()
            .args(["lab", "up", "--json"])
            .arg(&self.file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let journal = self.state.join(&self.name).join("fleet/journal.jsonl");
        eventually(60, || {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            if text.contains("\"frr\"") || up.try_wait().unwrap().is_some() {
                Ok(())
            } else {
                Err("no FRR yet".into())
            }
        })
        .unwrap();
        assert!(up.try_wait().unwrap().is_none(), "lab up ended before it was halfway");
        up
    }

    fn down(&self) -> Output {
        self.pi_lab().args(["lab", "down", "--name", &self.name]).output().unwrap()
    }

    pub(crate) fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    /// The NodeConfig the fleet handed to `node`'s agent.
    pub(crate) fn config(&self, node: &str) -> NodeConfig {
        let path = self.state.join(&self.name).join("fleet/nodes").join(format!("{node}.toml"));
        NodeConfig::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// What `node`'s agent has logged so far.
    fn agent_log(&self, node: &str) -> String {
        let path = self.state.join(&self.name).join("fleet/logs").join(format!("{node}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Run a command inside `node`'s namespace.
    pub(crate) fn exec(&self, node: &str, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.ns(node)]).args(args).output().unwrap()
    }

    fn json(&self, node: &str, args: &[&str]) -> serde_json::Value {
        let out = self.exec(node, args);
        assert!(out.status.success(), "{args:?} in {node}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Everything of this lab still on the machine.
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        found.extend(lines_with(&netns.stdout, &self.name).map(|l| format!("netns {l}")));
        let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
        found.extend(lines_with(&links.stdout, &self.name).map(|l| format!("link {l}")));
        for dir in ["/etc/frr", "/var/run/frr"] {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                if entry.file_name().to_string_lossy().starts_with(&self.name) {
                    found.push(format!("path {}", entry.path().display()));
                }
            }
        }
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&self.name) && !cmdline.contains("cargo") {
                found.push(format!("process {}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
        if self.state.join(&self.name).exists() {
            found.push(format!("state {}", self.state.join(&self.name).display()));
        }
        found
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let out = self.down();
        if !out.status.success() {
            eprintln!("lab down {} failed:\n{}", self.name, text(&out));
            self.scratch.keep();
        }
    }
}

fn lines_with<'a>(bytes: &'a [u8], needle: &'a str) -> impl Iterator<Item = String> + 'a {
    std::str::from_utf8(bytes)
        .unwrap_or("")
        .lines()
        .filter(move |l| l.contains(needle))
        .map(str::to_string)
}

pub(crate) fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Poll `check` until it holds or `secs` pass; the last failure otherwise.
pub(crate) fn eventually(
    secs: u64,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() >= deadline => return Err(why),
            Err(_) => sleep(Duration::from_millis(250)),
        }
    }
}

/// Every BGP neighbour of `node` is Established, as FRR says (a session
/// on an interface is listed under the interface's name).
pub(crate) fn sessions_established(lab: &TestLab, node: &str) -> Result<(), String> {
    let config = lab.config(node);
    let Some(bgp) = &config.bgp else { return Ok(()) };
    let out = Command::new("vtysh")
        .args(["-N", &lab.ns(node), "-c", "show bgp summary json"])
        .output()
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    for n in &bgp.neighbors {
        let state = &summary["ipv4Unicast"]["peers"][n.frr_name()]["state"];
        if state != "Established" {
            return Err(format!("{node}: neighbour {} is {state}", n.frr_name()));
        }
    }
    Ok(())
}

fn has_route(lab: &TestLab, node: &str, dst: &str) -> bool {
    let routes = lab.json(node, &["ip", "-j", "route", "show"]);
    routes.as_array().into_iter().flatten().any(|r| r["dst"] == dst)
}

/// A lab edit that makes it dual-stack: IPv6 pools for loopbacks, links
/// and segments.
pub(crate) fn with_ipv6_pools(doc: &mut toml::Table) {
    let pools: toml::Table = toml::from_str(
        "loopback6 = \"2001:db8::/64\"\np2p6 = \"2001:db8:1::/48\"\nsegments6 = \"2001:db8:2::/48\"",
    )
    .unwrap();
    doc.insert("pools".into(), pools.into());
}

/// `ip [-6] route show DESTINATION` on `node` says `want`. Sessions and
/// adjacencies come up before their routes are installed: wait with
/// [`eventually`].
pub(crate) fn route_says(
    lab: &TestLab,
    node: &str,
    destination: &str,
    want: &str,
) -> Result<(), String> {
    let family = if destination.contains(':') { "-6" } else { "-4" };
    let route = text(&lab.exec(node, &["ip", family, "route", "show", destination]));
    if route.contains(want) {
        Ok(())
    } else {
        Err(format!("{node}: route to {destination} is {route:?}, want {want:?}"))
    }
}

pub(crate) fn ping(lab: &TestLab, node: &str, port: &str, address: &str) -> Result<(), String> {
    let out = lab.exec(node, &["ping", "-c", "1", "-W", "1", "-I", port, address]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{node} -I {port} ping {address}: {}", text(&out)))
    }
}

#[test]
fn two_router_lab_establishes_bgp_and_routes_loopbacks() {
    if !prerequisites("two_router_lab", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("two-router.toml", "2r", 241);
    let state = lab.up();
    assert_eq!(state["converged"], true);
    for node in ["r1", "r2"] {
        sessions_established(&lab, node).unwrap();
    }
    let (r1, r2) = (lab.config("r1"), lab.config("r2"));
    let (lo1, lo2) = (r1.loopback.unwrap().to_string(), r2.loopback.unwrap().to_string());
    // Established comes a moment before the first UPDATE is installed.
    for (node, dst) in [("r1", &lo2), ("r2", &lo1)] {
        eventually(10, || {
            if has_route(&lab, node, dst) {
                Ok(())
            } else {
                Err(format!("{node}: no route to {dst}"))
            }
        })
        .unwrap();
    }
    assert_eq!(r1.management.interface.as_deref(), Some("mgmt0"));
    // The controller reaches every node over the management bridge.
    let mgmt = r2.management.address.addr().to_string();
    let out = Command::new("ping").args(["-c", "1", "-W", "2", &mgmt]).output().unwrap();
    assert!(out.status.success(), "controller cannot reach r2 at {mgmt}");
    // Where the lab runs comes from its state directory, not from names on
    // the machine: with this lab's state, status expects the fleet's
    // configs; from another state directory (same token, same namespaces
    // present) the lab runs on boards, whose configs differ.
    // (Converged BGP may come before the agents' first finished pass.)
    eventually(60, || {
        let status = lab.pi_lab().args(["status", "--timeout", "30"]).arg(&lab.file).output();
        let status = status.unwrap();
        if status.status.success() { Ok(()) } else { Err(text(&status)) }
    })
    .unwrap();
    let token = std::fs::read_to_string(lab.state.join(&lab.name).join("token")).unwrap();
    let elsewhere = lab
        .pi_lab()
        .env("PI_LAB_STATE_DIR", lab.state.with_file_name("other-state"))
        .env("PI_LAB_TOKEN", token.trim())
        .args(["status", "--json", "--timeout", "30"])
        .arg(&lab.file)
        .output()
        .unwrap();
    assert_eq!(elsewhere.status.code(), Some(1), "{}", text(&elsewhere));
    let nodes: serde_json::Value = serde_json::from_slice(&elsewhere.stdout).unwrap();
    for node in nodes.as_array().unwrap() {
        let problems = node["problems"].to_string();
        assert!(problems.contains("the lab compiles to"), "{node}");
    }
    // A second `up` refuses and names `lab down`.
    let again = lab.pi_lab().args(["lab", "up"]).arg(&lab.file).output().unwrap();
    assert!(!again.status.success());
    assert!(text(&again).contains("lab down"), "{}", text(&again));
}

/// The lab a user cables for boards (every link an 802.1Q VLAN on eth0)
/// runs unchanged as a virtual fleet, under the names the lab gives.
#[test]
fn the_boards_lab_runs_and_validates_as_a_virtual_fleet() {
    if !prerequisites("boards_lab_in_namespaces", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("boards.toml", "bv", 238);
    let (_, _, boards) = lab_spec::compile_file(&lab.file, "token").expect("boards.toml compiles");
    let leaf1 = &boards["leaf1"];
    assert!(
        leaf1.interfaces.iter().any(|i| i.name == "eth0.101"
            && matches!(i.kind, lab_spec::node_config::InterfaceKind::Vlan { vlan_id: 101, .. })),
        "boards.toml no longer puts leaf1's link on VLAN 101: {:?}",
        leaf1.interfaces
    );
    assert_eq!(lab.up()["converged"], true);
    let links = lab.exec("leaf1", &["ip", "-o", "link", "show", "eth0.101"]);
    assert!(links.status.success(), "leaf1 has no port eth0.101: {}", text(&links));
    let fleet = lab.config("leaf1");
    let port = fleet.interfaces.iter().find(|i| i.name == "eth0.101").expect("eth0.101");
    assert_eq!(port.kind, lab_spec::node_config::InterfaceKind::Port);
    let out = lab.pi_lab().args(["validate", "--deadline", "90s"]).arg(&lab.file).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "validate:\n{}", text(&out));
    let said = text(&out);
    assert!(said.contains("h1 -> h2:eth0.202"), "{said}");
}

/// `config`'s port in the subnet of `subnet_of`.
pub(crate) fn host_port_towards(config: &NodeConfig, subnet_of: &ipnet::Ipv4Net) -> String {
    let iface = config
        .interfaces
        .iter()
        .find(|i| i.address.is_some_and(|a| a.trunc() == subnet_of.trunc()))
        .unwrap_or_else(|| panic!("{} has no port in {subnet_of}", config.hostname));
    iface.name.clone()
}

#[test]
fn fabric_carries_both_vnis_and_repairs_drift() {
    if !prerequisites("fabric", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("fabric.toml", "fa", 242);
    let started = Instant::now();
    lab.up();
    eprintln!("fabric converged after {:.1} s", started.elapsed().as_secs_f64());
    for node in ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"] {
        sessions_established(&lab, node).unwrap();
    }
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    let leaf1 = lab.config("leaf1");
    let mut pinged = Vec::new();
    for h2_port in h2.interfaces.iter().filter_map(|i| i.address) {
        let port = host_port_towards(&h1, &h2_port);
        let target = h2_port.addr().to_string();
        eventually(60, || ping(&lab, "h1", &port, &target)).unwrap();
        pinged.push((port, target));
    }
    assert_eq!(pinged.len(), 2, "h2 has an address in each segment");
    let overlay_at = started.elapsed();
    eprintln!("overlay ping through both VNIs after {:.1} s", overlay_at.as_secs_f64());

    // Drift: a VXLAN device deleted by hand comes back within one interval.
    let blue = leaf1.vxlan.iter().find(|s| matches!(s.flooding, Flooding::Static { .. })).unwrap();
    let out = lab.exec("leaf1", &["ip", "link", "del", &blue.device]);
    assert!(out.status.success(), "{}", text(&out));
    let t = Instant::now();
    eventually(REPAIR_SECS, || {
        let out = lab.exec("leaf1", &["ip", "link", "show", "dev", &blue.device]);
        if out.status.success() { Ok(()) } else { Err(format!("{} still missing", blue.device)) }
    })
    .unwrap();
    eprintln!("{} repaired after {:.1} s", blue.device, t.elapsed().as_secs_f64());
    // And both segments carry traffic again.
    for (port, target) in &pinged {
        eventually(30, || ping(&lab, "h1", port, target)).unwrap();
    }
    // An agent killed and started again finds nothing to do.
    restarted_agent_changes_nothing(&lab, "leaf3");
}

/// Static flooding entries are the agent's alone only where no segment uses
/// EVPN: with `advertise-all-vni`, zebra also installs (and at once puts
/// back) the flood entries of static segments. So this lab floods both
/// segments statically.
#[test]
fn a_static_flood_entry_deleted_by_hand_is_put_back_by_the_agent() {
    if !prerequisites("static_flood", true, TOOLS) {
        return;
    }
    let lab = TestLab::edited("fabric.toml", "st", 249, |doc| {
        for segment in doc["segments"].as_array_mut().unwrap() {
            segment.as_table_mut().unwrap().insert("flooding".into(), "static".into());
        }
    });
    lab.up();
    let leaf1 = lab.config("leaf1");
    assert!(!leaf1.bgp.as_ref().unwrap().evpn, "no EVPN in this lab");
    let blue = &leaf1.vxlan[0];
    let Flooding::Static { remote_vteps } = &blue.flooding else { unreachable!() };
    let remote = remote_vteps[0].to_string();

    let fdb_has_remote = || {
        let fdb = lab.json("leaf1", &["bridge", "-j", "fdb", "show", "dev", &blue.device]);
        let found = fdb
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["mac"] == "00:00:00:00:00:00" && e["dst"] == remote.as_str());
        if found { Ok(()) } else { Err(format!("no flood entry to {remote}: {fdb}")) }
    };
    eventually(15, fdb_has_remote).unwrap();
    // The agent logs every change it applies; its re-append proves the
    // repair was its doing.
    let append = format!("bridge fdb append 00:00:00:00:00:00 dev {} dst {remote}", blue.device);
    let appends = || lab.agent_log("leaf1").matches(&append).count();
    let before = appends();
    let out = lab.exec(
        "leaf1",
        &["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", &blue.device, "dst", &remote],
    );
    // The delete succeeded; the agent may put the entry back at once (it
    // listens to netlink), so only the repair is checked, not the gap.
    assert!(out.status.success(), "{}", text(&out));
    let t = Instant::now();
    eventually(REPAIR_SECS, || {
        fdb_has_remote()?;
        if appends() > before { Ok(()) } else { Err(format!("the agent did not log `{append}`")) }
    })
    .unwrap();
    eprintln!("flood entry to {remote} repaired after {:.1} s", t.elapsed().as_secs_f64());
    let h1 = lab.config("h1");
    for h2_port in lab.config("h2").interfaces.iter().filter_map(|i| i.address) {
        let port = host_port_towards(&h1, &h2_port);
        eventually(30, || ping(&lab, "h1", &port, &h2_port.addr().to_string())).unwrap();
    }
}

/// Kill `node`'s agent; a fresh one-shot pass then changes nothing.
fn restarted_agent_changes_nothing(lab: &TestLab, node: &str) {
    let fleet = lab.state.join(&lab.name).join("fleet");
    let journal = std::fs::read_to_string(fleet.join("journal.jsonl")).unwrap();
    let pid = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["kind"] == "process" && e["netns"] == lab.ns(node).as_str())
        .and_then(|e| e["pid"].as_u64())
        .expect("the journal names the agent's pid");
    let out = Command::new("kill").args(["-9", &pid.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let config = fleet.join("nodes").join(format!("{node}.toml"));
    let state = fleet.join("agents").join(node);
    let agent = bin("node-agent");
    let ns = lab.ns(node);
    let apply = |extra: &[&str]| {
        let mut args = vec![agent.to_str().unwrap(), "apply", "--json", "--frr-pathspace", &ns];
        args.extend_from_slice(&["--config", config.to_str().unwrap()]);
        args.extend_from_slice(&["--state-dir", state.to_str().unwrap()]);
        args.extend_from_slice(extra);
        lab.json(node, &args)
    };
    let plan = apply(&["--dry-run"]);
    assert_eq!(plan["planned"], serde_json::json!([]), "{node}: {plan:#}");
    let report = apply(&[]);
    assert_eq!(report["applied"], serde_json::json!([]), "{node}: {report:#}");
    assert_eq!(report["failed"], serde_json::json!([]), "{node}: {report:#}");
}

#[test]
fn down_after_a_killed_up_leaves_nothing_behind() {
    if !prerequisites("down_after_crash", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("fabric.toml", "kd", 243);
    // Kill -9 once namespaces and FRR exist: halfway through.
    let mut up = lab.up_until_frr();
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(!lab.leftovers().is_empty(), "the killed up left something to clean");
    let out = lab.down();
    assert!(out.status.success(), "lab down failed: {}", text(&out));
    assert_eq!(lab.leftovers(), Vec::<String>::new());
    // Idempotent: a second down is fine and says there is nothing to do.
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
}

/// Ctrl-C during `up` stops it cleanly (exit 130, saying so); `down` then
/// leaves nothing: namespaces, root links, FRR, processes, state.
#[test]
fn ctrl_c_during_up_stops_it_and_down_leaves_nothing() {
    if !prerequisites("ctrl_c_up", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("fabric.toml", "ci", 250);
    // Interrupt once namespaces and FRR exist: halfway through the build.
    let up = lab.up_until_frr();
    let sent = Command::new("kill").args(["-INT", &up.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = up.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!("lab up said:\n{said}");
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted"), "{said}");
    // Interrupted while building, `up` takes back what it made itself.
    if said.contains("removed what it had made") {
        assert_eq!(lab.leftovers(), Vec::<String>::new(), "{said}");
    }
    let out = lab.down();
    assert!(out.status.success(), "lab down failed: {}", text(&out));
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}

#[test]
fn down_removes_a_converged_lab_completely() {
    if !prerequisites("down_complete", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("two-router.toml", "dc", 244);
    lab.up();
    assert!(!lab.leftovers().is_empty());
    // The lab file may change or vanish; down works from the journal.
    std::fs::remove_file(&lab.file).unwrap();
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}

#[test]
fn two_labs_run_side_by_side() {
    if !prerequisites("two_labs", true, TOOLS) {
        return;
    }
    let (a, b) =
        (TestLab::new("two-router.toml", "sa", 245), TestLab::new("two-router.toml", "sb", 246));
    let both = std::thread::scope(|s| {
        let up_b = s.spawn(|| b.up());
        (a.up(), up_b.join().unwrap())
    });
    assert_eq!(
        (both.0["converged"].clone(), both.1["converged"].clone()),
        (true.into(), true.into())
    );
    // The same node names, interface names and addresses in both labs, but
    // each node sees only its own lab.
    assert_eq!(a.config("r1").loopback, b.config("r1").loopback);
    let out = a.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(a.leftovers(), Vec::<String>::new());
    for node in ["r1", "r2"] {
        sessions_established(&b, node).unwrap();
    }
}

#[test]
fn a_broken_lab_is_refused_and_leaves_nothing() {
    if !prerequisites("broken_lab", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("two-router.toml", "bl", 247);
    let text_before = std::fs::read_to_string(&lab.file).unwrap();
    std::fs::write(&lab.file, text_before.replace("b = \"r2:eth1\"", "b = \"r9:eth1\"")).unwrap();
    let out = lab.pi_lab().args(["lab", "up"]).arg(&lab.file).output().unwrap();
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("r9") && message.contains(&lab.file.display().to_string()),
        "{message}"
    );
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}

#[test]
fn an_agent_that_dies_is_reported_and_the_fleet_stays_for_a_look() {
    if !prerequisites("agent_dies", true, TOOLS) {
        return;
    }
    let lab = TestLab::new("two-router.toml", "ad", 248);
    let out = lab
        .pi_lab()
        .args(["lab", "up", "--agent", "/bin/false", "--timeout", "30"])
        .arg(&lab.file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("node-agent on r1 stopped") && message.contains("lab down"),
        "{message}"
    );
    assert!(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("r1"), "true"])
            .status()
            .unwrap()
            .success()
    );
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
