//! Watching a converging fleet costs the same however often it is watched
//! (issue 24): a 32-node leaf-spine (scripts/scale-lab.py) comes up while
//! a client asks every agent for its health as fast as it answers, and a
//! sampler counts the vtysh processes of each node all along.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_spec::NodeConfig;
use pi_lab::agent_client::AgentClient;

use crate::common::{LabFiles, prerequisites, said, workspace};

/// vtysh processes running now that talk to a node's daemons (their
/// command lines), by the pathspace (`-N NAME`). Not counted: `vtysh -m`,
/// which only parses a file (frr-reload.py pipes `show running-config`
/// into one), and processes already exiting (no command line left).
fn vtysh_by_node() -> BTreeMap<String, Vec<String>> {
    let mut seen = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return seen };
    for entry in procs.flatten() {
        let dir = entry.path();
        if !std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "vtysh") {
            continue;
        }
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if cmdline.is_empty() || args.iter().any(|a| a == "-m") {
            continue;
        }
        let node = args
            .iter()
            .position(|a| a == "-N")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| "(default pathspace)".into());
        seen.entry(node).or_default().push(args.join(" ").trim().to_string());
    }
    seen
}

/// The agents' API addresses known so far (their configs appear as
/// `lab up` starts them).
fn apis(nodes: &Path) -> Vec<SocketAddr> {
    let Ok(files) = std::fs::read_dir(nodes) else { return Vec::new() };
    files
        .flatten()
        .filter_map(|f| std::fs::read_to_string(f.path()).ok())
        .filter_map(|text| NodeConfig::from_toml(&text).ok())
        .map(|c| c.health.listen)
        .collect()
}

/// A metric's values on every line that starts with `name`.
fn metric(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// The leaf-spine of `nodes` nodes from scripts/scale-lab.py, named `tag`
/// and a pid suffix, its management subnet `{prefix}.0.0/16`.
fn scale_lab(nodes: u32, tag: &str, prefix: &str) -> (String, LabFiles) {
    let name = format!("{tag}{:03x}", std::process::id() & 0xfff);
    let generated = Command::new("python3")
        .arg(workspace().join("scripts/scale-lab.py"))
        .args([&nodes.to_string(), &name, prefix])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", said(&generated));
    let text = String::from_utf8(generated.stdout).unwrap();
    let lab = LabFiles::new(&name, &format!("pi-lab-{tag}"), &text);
    (name, lab)
}

#[test]
fn a_fleet_polled_fast_while_it_converges_runs_one_vtysh_per_node_at_most() {
    let tools = ["ip", "vtysh", "python3", "/usr/lib/frr/frrinit.sh"];
    if !prerequisites("scale polled fleet", true, &tools) {
        return;
    }
    let (name, mut lab) = scale_lab(32, "t24s", "172.28");
    lab.up = true;
    let nodes = lab.dir.join("state").join(&name).join("fleet").join("nodes");

    // The sampler: most vtysh processes seen at once, per node.
    let done = Arc::new(AtomicBool::new(false));
    let most: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let sampler = {
        let (done, most) = (done.clone(), most.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !done.load(Ordering::SeqCst) {
                for (node, running) in vtysh_by_node() {
                    let mut most = most.lock().unwrap();
                    let m = most.entry(node).or_default();
                    if running.len() > m.len() {
                        *m = running;
                    }
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };

    let up = lab
        .command(&["lab", "up", "--json", "--timeout", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up = Arc::new(Mutex::new(up));
    // The client: every known agent at once, again as soon as all answered.
    let http = AgentClient::new(Duration::from_secs(5));
    let (answers, unhealthy_answers) = (AtomicUsize::new(0), AtomicUsize::new(0));
    while up.lock().unwrap().try_wait().unwrap().is_none() {
        let addrs = apis(&nodes);
        for report in http.health_all(&addrs).into_iter().flatten() {
            answers.fetch_add(1, Ordering::SeqCst);
            if !report.healthy {
                unhealthy_answers.fetch_add(1, Ordering::SeqCst);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    let out = Arc::try_unwrap(up).unwrap().into_inner().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "lab up failed:\n{}", said(&out));

    // The client really polled while the fleet converged.
    let unhealthy = unhealthy_answers.load(Ordering::SeqCst);
    assert!(unhealthy >= 32, "only {unhealthy} answers from nodes still converging");
    assert!(samples > 100, "the sampler looked only {samples} times");
    let most = most.lock().unwrap().clone();
    // Only this lab's nodes: other tests' labs run vtysh of their own.
    let ours = |node: &String| node.starts_with(&format!("{name}-"));
    let crowded: Vec<_> = most.iter().filter(|(node, n)| ours(node) && n.len() > 1).collect();
    assert!(crowded.is_empty(), "nodes with more than one vtysh at once: {crowded:?}");

    // Every router's agent says its reads never overlapped, and how
    // little vtysh it needed for {answers} health answers.
    let addrs = apis(&nodes);
    let mut vtysh_runs = 0.0;
    let mut routers = 0;
    for addr in &addrs {
        let text = http.metrics(*addr).unwrap();
        let at_once = metric(&text, "pilab_frr_routing_reads_at_once_max");
        if at_once.is_empty() {
            continue; // a host: no FRR
        }
        routers += 1;
        assert_eq!(at_once, [1.0], "{addr}: routing reads overlapped");
        vtysh_runs += metric(&text, "pilab_frr_programs_total{program=\"vtysh\"}")[0];
    }
    assert_eq!(routers, 28, "4 spines and 24 leaves run FRR");
    let per_router = vtysh_runs / f64::from(routers);
    let answered = answers.load(Ordering::SeqCst);
    assert!(
        per_router <= 6.0,
        "{per_router:.1} vtysh runs per router for {answered} health answers: \
         watching costs more the more often it looks"
    );
    eprintln!(
        "{answered} health answers while converging ({unhealthy} unhealthy); \
         {per_router:.1} vtysh runs per router; most vtysh at once per node: {:?}",
        most.iter().filter(|(node, _)| ours(node)).map(|(_, n)| n.len()).max()
    );
}

/// A lab larger than the memory it may take is refused before anything is
/// made, saying how many nodes would fit (a budget of 1,000 MiB, so the
/// refusal does not depend on this machine's memory).
#[test]
fn a_lab_too_large_for_its_memory_is_refused_before_anything_is_made() {
    if !prerequisites("scale memory refusal", true, &["ip", "python3"]) {
        return;
    }
    let (name, lab) = scale_lab(64, "t24m", "172.27");
    let out = lab.pi_lab(&["lab", "up", "--timeout", "60", "--memory-budget", "1000"]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    // 60 routers and 4 hosts need 2,432 MiB; 900 of the 1,000 may be used.
    assert!(text.contains("does not fit in this machine's memory"), "{text}");
    assert!(text.contains("need about 2432 MiB") && text.contains("about 23 nodes"), "{text}");
    assert!(text.contains("--ignore-memory"), "{text}");
    let made: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}-")))
        .collect();
    assert!(made.is_empty(), "namespaces made by a refused lab: {made:?}");
    assert!(!lab.dir.join("state").join(&name).exists(), "a refused lab left its state folder");
}
