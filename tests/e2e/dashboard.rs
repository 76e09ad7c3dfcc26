//! `pi-lab dashboard` in a real browser on the example fabric as a virtual
//! fleet: the page (headless Chromium through chromedriver) shows every
//! node, link and segment, all healthy with their BGP sessions up; a click
//! on a node shows its health report; `ping -f` from h1 to h2 makes the
//! rates rise on the links they cross, and only there, in the page and in
//! `/metrics` (which promtool accepts); the agent of leaf2 killed, the
//! page shows leaf2 unreachable within 5 s. Screenshots of each step go to
//! `target/e2e-artifacts/dashboard/`.
//!
//! The lab is a `TestLab` (`t3fdb` + pid digits) on 172.31.212.0/24,
//! sending sFlow to port 16412 every second, packets sampled 1-in-20.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::common::{artifacts, prerequisites};
use crate::fleet::{TOOLS, TestLab};
use crate::pi_lab_tests::{dashboard_address, promtool_accepts};

const SUBNET: u8 = 212;
const SFLOW_PORT: u16 = 16412;

/// The example fabric as this test's own lab (down on drop), sending sFlow
/// to the dashboard every second, and its address plan.
struct Fabric {
    lab: TestLab,
    plan: lab_spec::Plan,
}

impl Fabric {
    fn new() -> Fabric {
        let lab = TestLab::edited("fabric.toml", "db", SUBNET, |doc| {
            let sflow: toml::Table = format!(
                "collectors = [\"172.31.{SUBNET}.1:{SFLOW_PORT}\"]\n\
                 polling_interval = 1\nsampling_rate = 20\n"
            )
            .parse()
            .unwrap();
            doc.insert("sflow".into(), sflow.into());
        });
        let plan = lab_spec::Plan::new(&lab_spec::load(&lab.file).unwrap()).unwrap();
        Fabric { lab, plan }
    }

    /// The address of `node`'s `interface` in the plan.
    fn address(&self, node: &str, interface: &str) -> String {
        let end = self
            .plan
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.node == node && e.interface == interface)
            .unwrap();
        end.address.unwrap().addr().to_string()
    }

    /// The ids of the links between `node` and any spine, as the page
    /// names them (`a-node:if|b-node:if`, ends as in the lab file).
    fn uplinks(&self, node: &str) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|id| id.contains(&format!("{node}:")) && id.contains("spine"))
            .collect()
    }

    fn links(&self) -> Vec<String> {
        self.plan
            .links
            .iter()
            .map(|l| format!("{}:{}|{}:{}", l.a.node, l.a.interface, l.b.node, l.b.interface))
            .collect()
    }

    /// The pid of `node`'s node-agent, found by the config file it runs.
    fn agent_pid(&self, node: &str) -> Option<u32> {
        let config =
            self.lab.state.join(&self.lab.name).join("fleet/nodes").join(format!("{node}.toml"));
        let config = config.display().to_string();
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = cmdline.contains("node-agent run") && cmdline.contains(&config);
            ours.then(|| entry.file_name().to_string_lossy().parse().ok()).flatten()
        })
    }
}

/// `pi-lab dashboard` on the fabric; killed on drop.
struct Dashboard {
    child: Child,
    addr: SocketAddr,
}

impl Dashboard {
    fn start(fabric: &Fabric) -> Dashboard {
        let mut child = fabric
            .lab
            .pi_lab()
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .arg(&fabric.lab.file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // "dashboard for lab NAME (...) at http://ADDR/ — ..."
        Dashboard { child, addr: dashboard_address(&line) }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_string()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a metric series whose labels include `node` and `ifname`.
fn metric(page: &str, name: &str, node: &str, ifname: &str) -> f64 {
    let labels = [format!("node=\"{node}\""), format!("ifname=\"{ifname}\"")];
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {node}:{ifname} in\n{page}"))
}

/// The busier direction of link `id` on the page, bit/s (0 while unknown).
/// `id` may be a JavaScript `${...}` substitution: the selector is a
/// template literal.
fn rate_js(id: &str) -> String {
    format!(
        "const g = document.querySelector(`g.link[data-link=\"{id}\"]`); \
         if (!g) return -1; \
         return Math.max(Number(g.dataset.abBps || 0), Number(g.dataset.baBps || 0));"
    )
}

#[test]
fn dashboard_in_a_browser_follows_the_fabric() {
    let tools = [TOOLS, &["chromium", "chromedriver", "promtool"]].concat();
    if !prerequisites("dashboard", true, &tools) {
        return;
    }
    let shots = artifacts("dashboard");
    let fabric = Fabric::new();
    fabric.lab.up();
    let dashboard = Dashboard::start(&fabric);
    let browser = Browser::start();
    browser.goto(&dashboard.url());

    // Every node, link and segment of the lab.
    browser.wait_for(
        20.0,
        "the page did not draw the lab",
        "return document.body.dataset.drawn === 'true'",
        "return document.body.innerText",
    );
    let names = |selector: &str, key: &str| -> BTreeSet<String> {
        let script = format!(
            "return [...document.querySelectorAll('{selector}')].map(e => e.dataset.{key})"
        );
        let v = browser.eval(&script);
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    let nodes: BTreeSet<String> = fabric.plan.nodes.keys().cloned().collect();
    assert_eq!(names("g.node", "node"), nodes);
    let links: BTreeSet<String> = fabric.links().into_iter().collect();
    assert_eq!(names("g.link", "link"), links);
    assert_eq!(names("g.segment", "segment"), BTreeSet::from(["blue".into(), "green".into()]));

    // All healthy, every underlay session up, rates known everywhere.
    let conditions = "return Object.fromEntries([...document.querySelectorAll('g.node')].map(g => [g.dataset.node, g.dataset.condition]))";
    browser.wait_for(
        60.0,
        "not every node healthy",
        "return [...document.querySelectorAll('g.node')].every(g => g.dataset.condition === 'healthy')",
        conditions,
    );
    browser.wait_for(
        30.0,
        "not every BGP session Established, or rates missing",
        "return [...document.querySelectorAll('g.link')].every(g => \
           (g.dataset.kind !== 'underlay' || g.dataset.session === 'Established') && g.dataset.abBps !== '')",
        "return [...document.querySelectorAll('g.link')].map(g => [g.dataset.link, g.dataset.session, g.dataset.abBps])",
    );
    browser.screenshot(&shots.join("1-healthy.png"));

    // A node's details: its report, neighbours, VNIs and flood lists.
    browser.click("g.node[data-node=\"leaf1\"] circle");
    browser.wait_for(
        10.0,
        "no details for leaf1",
        "const d = document.getElementById('details-body'); \
         return d.dataset.node === 'leaf1' && ['Established', '10010', '10020', 'Last reconcile', 'flood list'] \
           .every(w => d.textContent.includes(w))",
        "return document.getElementById('details-body').textContent",
    );
    browser.screenshot(&shots.join("2-leaf1-details.png"));

    // ping -f from h1 to h2: up on the links they cross, not elsewhere.
    let before = dashboard.get("/metrics");
    let quiet: Vec<String> = fabric.uplinks("leaf4");
    let path = [fabric.uplinks("leaf1"), fabric.uplinks("leaf3")];
    let access = ["h1:eth1|leaf1:eth3", "h2:eth1|leaf3:eth3"];
    let target = fabric.address("h2", "eth1");
    let mut ping = Command::new("ip")
        .args(["netns", "exec", &fabric.lab.ns("h1"), "ping", "-f", "-q", "-w", "15", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rise = format!(
        "const r = (id) => {{ {} }}; \
         const busy = (ids) => ids.some(id => r(id) > 1e6); \
         return {access:?}.every(id => r(id) > 1e6) && busy({:?}) && busy({:?});",
        rate_js("${id}"),
        path[0],
        path[1]
    );
    let took = browser.wait_for(
        12.0,
        "the rates on h1's path did not rise above 1 Mbit/s",
        &rise,
        "return [...document.querySelectorAll('g.link')].map(g => [g.dataset.link, g.dataset.abBps, g.dataset.baBps])",
    );
    eprintln!("rates rose on the page {:.1} s after ping -f started", took.as_secs_f64());
    assert!(!quiet.is_empty(), "every link is on h1's path: nothing to compare with");
    for id in &quiet {
        let bps = browser.eval(&rate_js(id)).as_f64().unwrap();
        assert!(bps >= 0.0, "{id} is not on the page");
        assert!(bps < 2e5, "{id} carries {bps} bit/s; h1 to h2 does not cross it");
    }
    browser.wait_for(
        10.0,
        "the ping does not show among the top flows",
        &format!("return document.getElementById('flows-body').textContent.includes('{target}')"),
        "return document.getElementById('flows').textContent",
    );
    browser.screenshot(&shots.join("3-ping-h1-h2.png"));
    let _ = ping.wait();

    // /metrics: promtool accepts it; the counters of the crossed
    // interfaces grew by megabytes, those of leaf4 by little.
    std::thread::sleep(Duration::from_secs(2));
    let after = dashboard.get("/metrics");
    promtool_accepts(&after);
    let grew = |name: &str, node: &str, ifname: &str| {
        metric(&after, name, node, ifname) - metric(&before, name, node, ifname)
    };
    let sent = grew("pi_lab_sflow_interface_out_octets_total", "h1", "eth1");
    let received = grew("pi_lab_sflow_interface_in_octets_total", "h2", "eth1");
    let leaf1 = grew("pi_lab_sflow_interface_in_octets_total", "leaf1", "eth3");
    assert!(
        sent > 2e6 && received > 2e6 && leaf1 > 2e6,
        "h1 sent {sent}, h2 got {received}, leaf1:eth3 got {leaf1} octets"
    );
    let idle = grew("pi_lab_sflow_interface_in_octets_total", "leaf4", "eth1");
    assert!(idle < 3e5, "leaf4:eth1 got {idle} octets while h1 pinged h2");

    // leaf2's agent killed: unreachable on the page within 5 s.
    let pid = fabric.agent_pid("leaf2").expect("leaf2's node-agent runs");
    let killed = Instant::now();
    let kill = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(kill.success());
    browser.wait_for(
        5.0,
        "leaf2 is not shown unreachable",
        "return document.querySelector('g.node[data-node=\"leaf2\"]').dataset.condition === 'unreachable'",
        conditions,
    );
    eprintln!(
        "leaf2 unreachable on the page {:.1} s after its agent was killed",
        killed.elapsed().as_secs_f64()
    );
    let others = browser.eval(conditions);
    for node in nodes.iter().filter(|n| *n != "leaf2") {
        assert_eq!(others[node.as_str()], "healthy", "{node}: {others}");
    }
    browser.screenshot(&shots.join("4-leaf2-unreachable.png"));
}
