//! sFlow from the virtual fleet, decoded by tshark's own sFlow dissector.
//!
//! `pi-lab lab up` runs the real node-agent in every node namespace; the
//! lab's collectors are the controller address on the management bridge in
//! the root namespace. The test captures on that bridge while the routers
//! flood-ping each other, and checks: datagrams from every agent address;
//! eth1's octet counters between the kernel's (sysfs, read inside the
//! namespace) one polling interval before and right after each sample;
//! flow samples 1-in-10 from eth1 while traffic flows; none once the
//! nodes' config files are rewritten with `sampling_rate = 0` (the agent
//! follows its file; `lab up` refuses a running lab); `pi-lab sflow watch`
//! sees both nodes on a second collector port; a node whose NFLOG group is
//! taken exports counters only and takes sampling back once it is free;
//! and SIGTERM takes the agent's nftables table away.
//!
//! Lab name `t4w` + 4 hex digits of the pid, management 172.31.204.0/24;
//! a guard runs `lab down` even when the test fails.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lab_spec::NodeConfig;

use crate::common::{LabDir, bin, fresh_lab_dir, prerequisites, workspace};

const SUBNET: &str = "172.31.204";
const POLL: u32 = 2;
const RATE: u32 = 10;
/// The second collector, for `pi-lab sflow watch` (tshark only captures).
const WATCH_PORT: u16 = 16343;
const NODES: [&str; 2] = ["r1", "r2"];
/// The agent re-reads its config file every reconcile pass (10 s).
const RELOAD_SECS: u64 = 25;

/// `examples/two-router.toml` as a lab of this test, down when dropped.
struct SflowLab {
    name: String,
    file: PathBuf,
    state: PathBuf,
    /// Holds the lab file, state and captures.
    scratch: LabDir,
}

impl SflowLab {
    fn new() -> Self {
        let name = format!("t4w{:04x}", std::process::id() & 0xffff);
        let scratch = fresh_lab_dir("pi-lab-t4w", &format!("pi-lab-{name}"));
        let root = scratch.path.clone();
        let example = workspace().join("examples/two-router.toml");
        let mut doc: toml::Table = std::fs::read_to_string(example).unwrap().parse().unwrap();
        let extra: toml::Table = format!(
            "name = \"{name}\"\n\
             [management]\nsubnet = \"{SUBNET}.0/24\"\ncontroller = \"{SUBNET}.1\"\n\
             [sflow]\ncollectors = [\"{SUBNET}.1:6343\", \"{SUBNET}.1:{WATCH_PORT}\"]\n\
             polling_interval = {POLL}\nsampling_rate = {RATE}\n"
        )
        .parse()
        .unwrap();
        doc.extend(extra);
        let file = root.join(format!("{name}.toml"));
        std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
        SflowLab { name, file, state: root.join("state"), scratch }
    }

    fn pi_lab(&self) -> Command {
        let mut cmd = Command::new(bin("pi-lab"));
        cmd.env("PI_LAB_STATE_DIR", &self.state).env("PI_LAB_AGENT", bin("node-agent"));
        cmd
    }

    fn up(&self) {
        let out = self.pi_lab().args(["lab", "up", "--timeout", "150"]).arg(&self.file).output();
        let out = out.unwrap();
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.name)
    }

    /// The NodeConfig file `node`'s agent follows.
    fn config_path(&self, node: &str) -> PathBuf {
        self.state.join(&self.name).join("fleet/nodes").join(format!("{node}.toml"))
    }

    fn config(&self, node: &str) -> NodeConfig {
        NodeConfig::from_toml(&std::fs::read_to_string(self.config_path(node)).unwrap()).unwrap()
    }

    /// Change `node`'s sampling rate the way a running fleet takes it:
    /// rewrite the config file (atomically) and let the agent pick it up.
    fn set_sampling(&self, node: &str, rate: u32) {
        let mut cfg = self.config(node);
        cfg.sflow.sampling_rate = rate;
        let path = self.config_path(node);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, cfg.with_version().to_toml().unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    fn log(&self, node: &str) -> String {
        let path = self.state.join(&self.name).join("fleet/logs").join(format!("{node}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn exec(&self, node: &str, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.ns(node)]).args(args).output().unwrap()
    }

    fn sampling_table_exists(&self, node: &str) -> bool {
        self.exec(node, &["nft", "list", "table", "netdev", "node_agent_sflow"]).status.success()
    }

    fn ifindex(&self, node: &str, dev: &str) -> u32 {
        let out = self.exec(node, &["cat", &format!("/sys/class/net/{dev}/ifindex")]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// The pid of `node`'s node-agent (found by the config file it follows).
    fn agent_pid(&self, node: &str) -> Option<u32> {
        let config = self.config_path(node).display().to_string();
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = cmdline.contains("node-agent run") && cmdline.contains(&config);
            ours.then(|| entry.file_name().to_string_lossy().parse().ok()).flatten()
        })
    }
}

impl Drop for SflowLab {
    fn drop(&mut self) {
        let out = self.pi_lab().args(["lab", "down", "--name", &self.name]).output().unwrap();
        if !out.status.success() {
            eprintln!("lab down {} failed:\n{}", self.name, text(&out));
        }
        // The captures stay for a look when the test failed, and a lab
        // that did not go down for the next run to take down.
        if std::thread::panicking() {
            eprintln!("lab file and captures: {}", self.scratch.path.display());
        }
        if std::thread::panicking() || !out.status.success() {
            self.scratch.keep();
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// [`crate::fleet::eventually`] for a yes/no check, failing with `what`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let waited = crate::fleet::eventually(secs, || check().then_some(()).ok_or_else(String::new));
    assert!(waited.is_ok(), "after {secs} s: {what}");
}

/// One sFlow datagram as tshark decoded it.
#[derive(Debug)]
struct Datagram {
    time: f64,
    agent: IpAddr,
    /// Generic interface counters: (ifIndex, ifInOctets, ifOutOctets).
    counters: Vec<(u32, u64, u64)>,
    /// Flow samples: (input ifIndex, sampling rate).
    flows: Vec<(u32, u32)>,
}

const FIELDS: &[&str] = &[
    "frame.time_epoch",
    "sflow_245.agent",
    "sflow_245.ifindex",
    "sflow_245.ifinoct",
    "sflow_245.ifoutoct",
    "sflow.flow_sample.input_interface",
    "sflow.flow_sample.sampling_rate",
];

/// Capture sFlow on the management bridge for `secs` and decode it.
fn capture(bridge: &str, secs: u64, pcap: &std::path::Path) -> Vec<Datagram> {
    let out = Command::new("tshark")
        .args(["-i", bridge, "-f", "udp port 6343", "-a", &format!("duration:{secs}"), "-w"])
        .arg(pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark capture on {bridge}: {}", text(&out));
    let mut decode = Command::new("tshark");
    decode.args(["-r"]).arg(pcap).args(["-Y", "sflow", "-T", "fields", "-E", "separator=/t"]);
    for f in FIELDS {
        decode.args(["-e", f]);
    }
    let out = decode.output().unwrap();
    assert!(out.status.success(), "tshark decode: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).lines().map(parse_datagram).collect()
}

fn parse_datagram(line: &str) -> Datagram {
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), FIELDS.len(), "tshark line {line:?}");
    fn list<T: std::str::FromStr>(col: &str) -> Vec<T> {
        col.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().ok().unwrap()).collect()
    }
    let (ifindex, inoct, outoct) = (list(cols[2]), list(cols[3]), list(cols[4]));
    let (input, rate): (Vec<u32>, Vec<u32>) = (list(cols[5]), list(cols[6]));
    assert!(ifindex.len() == inoct.len() && inoct.len() == outoct.len(), "{line:?}");
    assert_eq!(input.len(), rate.len(), "{line:?}");
    Datagram {
        time: cols[0].parse().unwrap(),
        agent: cols[1].parse().unwrap(),
        counters: (0..ifindex.len()).map(|i| (ifindex[i], inoct[i], outoct[i])).collect(),
        flows: input.into_iter().zip(rate).collect(),
    }
}

/// eth1's byte counters read from sysfs inside a namespace: (started,
/// finished, rx_bytes, tx_bytes).
type Reading = (f64, f64, u64, u64);

/// Reads every node's eth1 counters in a loop until stopped.
struct KernelCounters {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<String, Vec<Reading>>>,
}

impl KernelCounters {
    fn start(namespaces: Vec<(String, String)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut readings: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                for (node, ns) in &namespaces {
                    let started = now();
                    let out = Command::new("ip")
                        .args(["netns", "exec", ns, "cat"])
                        .args(
                            ["rx_bytes", "tx_bytes"]
                                .map(|f| format!("/sys/class/net/eth1/statistics/{f}")),
                        )
                        .output()
                        .unwrap();
                    let finished = now();
                    let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter_map(|l| l.trim().parse().ok())
                        .collect();
                    if let [rx, tx] = v[..] {
                        readings.entry(node.clone()).or_default().push((started, finished, rx, tx));
                    }
                }
                sleep(Duration::from_millis(100));
            }
            readings
        });
        KernelCounters { stop, thread }
    }

    fn finish(self) -> BTreeMap<String, Vec<Reading>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// How many of `samples` (time, in, out) could be bracketed by kernel
/// readings; panics on one outside [kernel one interval before, kernel
/// right after].
fn check_counters(node: &str, samples: &[(f64, u64, u64)], kernel: &[Reading]) -> usize {
    let mut checked = 0;
    for &(t, inoct, outoct) in samples {
        let before = kernel.iter().rev().find(|r| r.1 <= t - f64::from(POLL));
        let after = kernel.iter().find(|r| r.0 >= t);
        let (Some(before), Some(after)) = (before, after) else { continue };
        assert!(
            before.2 <= inoct && inoct <= after.2,
            "{node}: ifInOctets {inoct} at {t:.3} not within the kernel's rx_bytes {} ({:.3}) .. {} ({:.3})",
            before.2,
            before.1,
            after.2,
            after.0
        );
        assert!(
            before.3 <= outoct && outoct <= after.3,
            "{node}: ifOutOctets {outoct} at {t:.3} not within the kernel's tx_bytes {} .. {}",
            before.3,
            after.3
        );
        checked += 1;
    }
    checked
}

/// `ping -f` from r1 to r2's eth1 address for `secs`.
fn flood(lab: &SflowLab, secs: u64) -> std::process::Child {
    let r2 = lab.config("r2");
    let target = r2.interfaces.iter().find(|i| i.name == "eth1").unwrap().address.unwrap().addr();
    Command::new("ip")
        .args(["netns", "exec", &lab.ns("r1"), "ping", "-f", "-q", "-w", &secs.to_string()])
        .arg(target.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn fleet_sflow_is_decoded_by_tshark_and_matches_the_kernel() {
    let tools = ["ip", "vtysh", "ping", "nft", "tshark", "dumpcap", "/usr/lib/frr/frrinit.sh"];
    if !prerequisites("fleet_sflow", true, &tools) {
        return;
    }
    let lab = SflowLab::new();
    lab.up();
    let agents: BTreeMap<&str, IpAddr> =
        NODES.iter().map(|n| (*n, lab.config(n).sflow.agent_address)).collect();
    let eth1: BTreeMap<&str, u32> = NODES.iter().map(|n| (*n, lab.ifindex(n, "eth1"))).collect();
    for node in NODES {
        // `lab up` waits for every agent to call itself healthy, and an
        // agent whose sampling is not in force does not.
        assert!(
            lab.sampling_table_exists(node),
            "{node}: no sampling table right after `lab up`:\n{}",
            lab.log(node)
        );
    }

    // Traffic, sampling 1-in-10: capture, watch and the kernel side by side.
    let watch = lab
        .pi_lab()
        .args(["sflow", "watch", "--json", "--duration", "8"])
        .args(["--listen", &format!("{SUBNET}.1:{WATCH_PORT}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let kernel = KernelCounters::start(NODES.iter().map(|n| (n.to_string(), lab.ns(n))).collect());
    let mut ping = flood(&lab, 7);
    let pcap = lab.file.with_extension("on.pcap");
    let datagrams = capture(&lab.bridge(), 8, &pcap);
    let _ = ping.wait();
    sleep(Duration::from_millis(300));
    let kernel = kernel.finish();
    let watch = watch.wait_with_output().unwrap();

    for node in NODES {
        let ours: Vec<&Datagram> = datagrams.iter().filter(|d| d.agent == agents[node]).collect();
        assert!(ours.len() >= 3, "{node}: {} datagrams from agent {}", ours.len(), agents[node]);
        let samples: Vec<(f64, u64, u64)> = ours
            .iter()
            .flat_map(|d| {
                d.counters.iter().filter(|c| c.0 == eth1[node]).map(|c| (d.time, c.1, c.2))
            })
            .collect();
        assert!(samples.len() >= 3, "{node}: {} eth1 counter samples in 8 s", samples.len());
        let checked = check_counters(node, &samples, &kernel[node]);
        assert!(
            checked >= 2,
            "{node}: only {checked} counter samples had kernel readings around them"
        );
        let flows: Vec<&(u32, u32)> = ours.iter().flat_map(|d| &d.flows).collect();
        assert!(flows.len() >= 10, "{node}: {} flow samples under ping -f", flows.len());
        assert!(
            flows.iter().all(|&&(input, rate)| input == eth1[node] && rate == RATE),
            "{node}: flow samples not from eth1 ({}) at 1-in-{RATE}: {flows:?}",
            eth1[node]
        );
    }

    // `pi-lab sflow watch` on the second collector saw both nodes.
    assert!(watch.status.success(), "sflow watch: {}", text(&watch));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&watch.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for node in NODES {
        let seen = rows.iter().any(|r| {
            r["node"] == node
                && r["agent"] == agents[node].to_string()
                && r["if_index"] == eth1[node]
                && r["ifname"] == "eth1"
        });
        assert!(seen, "sflow watch did not show {node}'s eth1:\n{}", text(&watch));
    }

    // Sampling off through the config files the agents follow.
    for node in NODES {
        lab.set_sampling(node, 0);
    }
    for node in NODES {
        eventually(RELOAD_SECS, &format!("{node} still has its sampling table"), || {
            !lab.sampling_table_exists(node)
        });
    }
    let mut ping = flood(&lab, 5);
    let datagrams = capture(&lab.bridge(), 5, &lab.file.with_extension("off.pcap"));
    let _ = ping.wait();
    for node in NODES {
        let ours: Vec<&Datagram> = datagrams.iter().filter(|d| d.agent == agents[node]).collect();
        assert!(
            ours.iter().any(|d| d.counters.iter().any(|c| c.0 == eth1[node])),
            "{node}: no counter samples with sampling off"
        );
        let flows: usize = ours.iter().map(|d| d.flows.len()).sum();
        assert_eq!(flows, 0, "{node}: {flows} flow samples with sampling_rate = 0");
    }

    // Sampling back on. r1 takes it; r2 finds its NFLOG group taken (dumpcap
    // listens on it, as hsflowd or ulogd might) and exports counters only.
    let mut squatter = Command::new("ip")
        .args(["netns", "exec", &lab.ns("r2"), "dumpcap", "-q", "-i", "nflog:6343", "-w"])
        .arg(lab.file.with_extension("nflog.pcapng"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(10, "dumpcap did not bind NFLOG group 6343 in r2", || {
        let out = lab.exec("r2", &["cat", "/proc/net/netfilter/nfnetlink_log"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some("6343"))
    });
    lab.set_sampling("r1", RATE);
    lab.set_sampling("r2", RATE);
    eventually(RELOAD_SECS, "r1 did not install its sampling table again", || {
        lab.sampling_table_exists("r1")
    });
    eventually(RELOAD_SECS, "r2 did not say it fell back to counters", || {
        lab.log("r2").contains("packet sampling 1-in-10 is off, exporting counters only")
    });
    assert!(!lab.sampling_table_exists("r2"), "r2 installed rules nobody reads");
    let mut ping = flood(&lab, 4);
    let datagrams = capture(&lab.bridge(), 4, &lab.file.with_extension("fallback.pcap"));
    let _ = ping.wait();
    let from = |node: &str| {
        let agent = agents[node];
        datagrams.iter().filter(move |d| d.agent == agent)
    };
    assert!(
        from("r1").any(|d| !d.flows.is_empty()),
        "r1: no flow samples with sampling on ({} datagrams from r1; table there now: {}); r1's log:\n{}",
        from("r1").count(),
        lab.sampling_table_exists("r1"),
        lab.log("r1")
    );
    assert!(from("r2").all(|d| d.flows.is_empty()), "r2: flow samples without its NFLOG group");
    assert!(
        from("r2").any(|d| d.counters.iter().any(|c| c.0 == eth1["r2"])),
        "r2: no counter samples after falling back"
    );
    // Group free again: the next pass takes sampling back.
    let _ = squatter.kill();
    let _ = squatter.wait();
    eventually(RELOAD_SECS, "r2 did not take sampling back", || {
        lab.sampling_table_exists("r2") && lab.log("r2").contains("sflow: settings in force again")
    });

    // SIGTERM: the agent leaves no sampling rules behind.
    let pid = lab.agent_pid("r1").expect("r1's node-agent is running");
    let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(kill.success());
    eventually(10, "r1's agent did not exit after SIGTERM", || lab.agent_pid("r1").is_none());
    assert!(!lab.sampling_table_exists("r1"), "r1's sampling table outlived its agent");
}
