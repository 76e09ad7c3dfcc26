//! The agent runs the sFlow exporter with the config it applies, in-process
//! in a namespace of its own (root only): counters reach the collector,
//! `Status.sflow` reports them, a taken NFLOG group means counters only and
//! an error in the reconcile state (no rollback), sampling comes back once
//! the group is free, and shutdown removes the sampling table.
//! Namespace `t4w-ag-PID`, deleted even when the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{check, prerequisites, router};
use node_agent::agent::{self, Settings};
use node_agent::sflow::nflog::NflogGroup;

struct Ns(String);

impl Ns {
    fn new() -> Self {
        let ns = Ns(format!("t4w-ag-{}", std::process::id()));
        let _ = Command::new("ip").args(["netns", "del", &ns.0]).output();
        check(Command::new("ip").args(["netns", "add", &ns.0]));
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt0p"],
            &["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"],
            &["link", "set", "eth1p", "up"],
            &["link", "set", "mgmt0p", "up"],
        ] {
            check(Command::new("ip").arg("-n").arg(&ns.0).args(args));
        }
        ns
    }

    /// Moves the calling thread (and threads it spawns later) into it.
    fn enter(&self) {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    fn sampling_table(&self) -> bool {
        let nft = ["netns", "exec", &self.0, "nft", "list", "table", "netdev", "node_agent_sflow"];
        Command::new("ip").args(nft).output().unwrap().status.success()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "after {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_exports_sflow_falls_back_to_counters_and_cleans_up() {
    if !prerequisites("agent_sflow", &["ip", "nft"]) {
        return;
    }
    let ns = Ns::new();
    // This test's thread, the agent it starts and the collector socket all
    // live in the namespace from here on.
    ns.enter();
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // hsflowd or ulogd would hold the group like this.
    let squatter = NflogGroup::bind(6343).unwrap();

    let scratch = tempfile::Builder::new().prefix(&format!("{}-", ns.0)).tempdir().unwrap();
    let state = scratch.path().join("state");
    let settings = Settings {
        config_path: None,
        frr: None,
        state_dir: state.clone(),
        interval: Duration::from_secs(1),
        board: false,
    };
    let (handle, runner) = agent::start(settings).unwrap();
    let thread = std::thread::spawn(move || runner.run().unwrap());

    let mut cfg = router("r1", "10.0.0.1", 65001, "10.1.0.0/31", "r2", 65002);
    cfg.sflow.collectors = vec![collector.local_addr().unwrap()];
    cfg.sflow.polling_interval = 1;
    cfg.sflow.sampling_rate = 10;
    let report = handle.apply(cfg.clone()).expect("sFlow trouble alone does not fail an apply");
    let error = report.sflow_error.clone().unwrap_or_default();
    assert!(
        error.contains("packet sampling 1-in-10 is off, exporting counters only")
            && error.contains("NFLOG group 6343"),
        "{report:?}"
    );
    assert!(!ns.sampling_table(), "rules installed with nobody reading the group");
    {
        let status = handle.status().read().unwrap().clone();
        assert_eq!(status.config.as_ref(), Some(&cfg), "rolled back");
        assert!(!status.reconcile.ok);
        assert!(status.reconcile.errors.iter().any(|e| e.starts_with("sflow: packet sampling")));
        assert!(status.sflow.enabled && status.sflow.sampling_rate == 0, "{:?}", status.sflow);
    }
    let mut buf = [0u8; 2048];
    let (n, _) = collector.recv_from(&mut buf).expect("counter datagrams despite no sampling");
    assert_eq!(&buf[..4], &[0, 0, 0, 5], "sFlow version 5 ({n} bytes)");

    // The group is free again: the next pass (1 s) takes sampling back.
    drop(squatter);
    eventually(5, "sampling did not come back", || {
        let s = handle.status().read().unwrap().clone();
        s.reconcile.ok && s.sflow.sampling_rate == 10
    });
    assert!(ns.sampling_table());
    eventually(5, "no datagram counted in Status.sflow", || {
        let s = handle.status().read().unwrap().sflow.clone();
        s.datagrams_sent > 0 && s.counter_samples_sent > 0 && s.send_errors == 0
    });

    handle.shutdown();
    thread.join().unwrap();
    assert!(!ns.sampling_table(), "the sampling table outlived the agent");
}
