//! Namespaces, configs and kernel checks for node-agent's end-to-end tests.
//! Every name starts with `t3a-`; every namespace, process and directory a
//! test makes is removed by a Drop guard, also when the test fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::node_config::{
    Auth, Bgp, BgpTimers, Flooding, HealthApi, Interface, InterfaceKind, Management, Neighbor,
    Route, Segment, Sflow,
};
use node_agent::frr::{DAEMONS, daemon_command};
use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_node-agent");

/// True when the test may run. Under `CI=true` a missing prerequisite
/// fails the test instead of skipping it.
pub fn prerequisites(test: &str, commands: &[&str]) -> bool {
    let mut missing = Vec::new();
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n"));
    if root.ok() != Some(true) {
        missing.push("root".to_string());
    }
    for cmd in commands {
        let found = Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output();
        if !found.map(|o| o.status.success()).unwrap_or(false) {
            missing.push(format!("command `{cmd}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}; run scripts/setup.sh as root", missing.join(", "));
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIP {msg}");
    false
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop with everything in it.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Netns {
    pub fn new(name: &str) -> Self {
        let name = format!("t3a-{name}");
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        check(Command::new("ip").args(["netns", "add", &name]));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ns = Netns { name, dir, children: Vec::new() };
        ns.ip(&["link", "set", "lo", "up"]);
        // The management port of the test configs.
        ns.veth("mgmt0");
        ns
    }

    pub fn ip(&self, args: &[&str]) -> String {
        check(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    pub fn ip_json(&self, args: &[&str]) -> Value {
        let text = check(Command::new("ip").args(["-j", "-d", "-n", &self.name]).args(args));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn bridge_fdb(&self, dev: &str) -> Vec<String> {
        let text =
            check(Command::new("bridge").args(["-j", "-n", &self.name, "fdb", "show", "dev", dev]));
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut dsts: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["mac"] == "00:00:00:00:00:00")
            .filter_map(|e| e["dst"].as_str().map(String::from))
            .collect();
        dsts.sort();
        dsts
    }

    /// A veth pair with both ends in this namespace (`name` and `nameP`).
    pub fn veth(&self, name: &str) {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", &format!("{name}p")]);
        self.ip(&["link", "set", &format!("{name}p"), "up"]);
    }

    pub fn agent(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, AGENT]).args(args);
        cmd.env("RUST_BACKTRACE", "0");
        cmd
    }

    /// `node-agent run --no-frr` on `config`, state in the test directory,
    /// killed on drop. Returns its pid.
    pub fn run_agent(&mut self, config: &Path, interval: &str, env: &[(&str, &Path)]) -> u32 {
        let state = self.dir.join("state");
        let (config, state) = (config.to_str().unwrap(), state.to_str().unwrap());
        let args =
            ["run", "--config", config, "--no-frr", "--interval", interval, "--state-dir", state];
        self.spawn_agent(&args, env)
    }

    /// `node-agent run` with FRR in pathspace = namespace name.
    pub fn run_agent_frr(&mut self, config: &Path, interval: &str) -> u32 {
        let state = self.dir.join("state");
        let (config, state) = (config.to_str().unwrap(), state.to_str().unwrap());
        let name = self.name.clone();
        let args = [
            "run",
            "--config",
            config,
            "--frr-pathspace",
            &name,
            "--interval",
            interval,
            "--state-dir",
            state,
        ];
        self.spawn_agent(&args, &[])
    }

    /// `node-agent ARGS` in the namespace, killed on drop; returns its pid.
    pub fn spawn_agent(&mut self, args: &[&str], env: &[(&str, &Path)]) -> u32 {
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        let mut cmd = self.agent(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stderr(log).spawn().unwrap_or_else(|e| panic!("start node-agent: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Wait for the agent started last; `None` if it did not exit in time.
    pub fn wait_agent(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.children.last_mut()?;
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn has_link(&self, dev: &str) -> bool {
        run(Command::new("ip").args(["-n", &self.name, "link", "show", dev])).status.success()
    }

    pub fn write_config(&self, file: &str, cfg: &NodeConfig) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, cfg.to_toml().unwrap()).unwrap();
        path
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn port(name: &str, address: Option<&str>, description: &str) -> Interface {
    Interface {
        name: name.into(),
        kind: InterfaceKind::Port,
        mtu: None,
        address: address.map(|a| a.parse().unwrap()),
        address6: None,
        description: description.into(),
        tc: None,
    }
}

/// A router with one uplink `eth1` and nothing else.
pub fn router(
    hostname: &str,
    loopback: &str,
    asn: u32,
    eth1: &str,
    peer: &str,
    peer_asn: u32,
) -> NodeConfig {
    let lo: std::net::Ipv4Addr = loopback.parse().unwrap();
    NodeConfig {
        schema: 1,
        lab: "t3a".into(),
        version: String::new(),
        hostname: hostname.into(),
        role: lab_spec::Role::Router,
        identity: Default::default(),
        management: Management {
            interface: Some("mgmt0".into()),
            address: "192.168.200.10/24".parse().unwrap(),
            gateway: None,
            controller: "192.168.200.1".parse().unwrap(),
        },
        loopback: Some(lo),
        loopback6: None,
        interfaces: vec![port("eth1", Some(eth1), &format!("to {peer}"))],
        bgp: Some(Bgp {
            asn,
            router_id: lo,
            neighbors: vec![Neighbor {
                address: eth1
                    .parse::<ipnet::Ipv4Net>()
                    .map(|n| {
                        let a = u32::from(n.addr());
                        std::net::Ipv4Addr::from(a ^ 1)
                    })
                    .unwrap(),
                remote_asn: peer_asn,
                interface: "eth1".into(),
                description: peer.into(),
                route_reflector_client: false,
                unnumbered: false,
            }],
            networks: vec![ipnet::Ipv4Net::from(lo)],
            timers: BgpTimers { keepalive: 1, hold: 3, connect_retry: 1 },
            multipath: 4,
            evpn: false,
        }),
        igp: None,
        vxlan: vec![],
        routes: vec![],
        sflow: Sflow {
            collectors: vec![],
            polling_interval: 20,
            sampling_rate: 0,
            agent_address: lo.into(),
            interfaces: vec![],
        },
        health: HealthApi { listen: "192.168.200.10:9180".parse().unwrap() },
        auth: Auth::from_token("t3a"),
        led: Default::default(),
        frr: None,
    }
}

/// A leaf: uplink eth1, access ports eth3 (static VNI 10010 flooding to
/// 10.0.0.6 and 10.0.0.7) and eth4 (EVPN VNI 10020), a static route.
pub fn leaf() -> NodeConfig {
    let mut cfg = router("leaf1", "10.0.0.3", 65001, "10.1.0.1/31", "spine1", 65000);
    cfg.role = lab_spec::Role::Leaf;
    cfg.interfaces.push(port("eth3", None, "to h1"));
    cfg.interfaces.push(port("eth4", None, "to h2"));
    if let Some(bgp) = cfg.bgp.as_mut() {
        bgp.evpn = true;
    }
    let vtep = "10.0.0.3".parse().unwrap();
    let segment = |vni: u32, port: &str, flooding| Segment {
        vni,
        name: format!("seg{vni}"),
        device: format!("vxlan{vni}"),
        bridge: format!("br{vni}"),
        address: None,
        address6: None,
        local_vtep: vtep,
        port: 4789,
        access_ports: vec![port.into()],
        flooding,
    };
    cfg.vxlan = vec![
        segment(
            10010,
            "eth3",
            Flooding::Static {
                remote_vteps: vec!["10.0.0.6".parse().unwrap(), "10.0.0.7".parse().unwrap()],
            },
        ),
        segment(10020, "eth4", Flooding::Evpn),
    ];
    cfg.routes = vec![Route {
        destination: "10.20.0.0/16".parse().unwrap(),
        gateway: "10.1.0.0".parse().unwrap(),
    }];
    cfg
}

/// A leaf namespace with its ports (veth pairs) in place.
pub fn leaf_netns(name: &str) -> Netns {
    let ns = Netns::new(name);
    for port in ["eth1", "eth3", "eth4"] {
        ns.veth(port);
    }
    ns
}

/// One `node-agent apply --json` pass; returns the report and exit status.
pub fn apply(ns: &Netns, config: &Path, extra: &[&str]) -> (Value, bool) {
    let cfg = config.to_str().unwrap();
    let mut args = vec!["apply", "--config", cfg, "--json", "--no-frr", "--state-dir"];
    let state = ns.dir.join("state");
    let state = state.to_str().unwrap().to_string();
    args.push(&state);
    args.extend_from_slice(extra);
    let out = run(&mut ns.agent(&args));
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.success())
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
        .collect()
}

/// Write `cfg` as the namespace's node.toml and apply it once with FRR in
/// pathspace = namespace name; the pass must succeed. Returns the report.
pub fn apply_frr(ns: &Netns, cfg: &NodeConfig) -> Value {
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success(), "{}: {report:#}\n{stderr}", ns.name);
    report
}

/// FRR daemons for one pathspace; stopped and their files removed on drop.
pub struct FrrInstance {
    pub name: String,
}

impl FrrInstance {
    pub fn start(ns: &Netns) -> Self {
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

    pub fn run_dir(&self) -> PathBuf {
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

/// Start the agent's run loop on a thread that lives in `ns` (threads it
/// spawns, link events, inherit the namespace); stop it with
/// `handle.shutdown()` and join the thread.
pub fn start_in(
    ns: &Netns,
    frr: Option<node_agent::frr::Frr>,
) -> (node_agent::agent::AgentHandle, std::thread::JoinHandle<()>) {
    use node_agent::agent::{self, Settings};
    use std::os::fd::AsRawFd;
    let netns = std::fs::File::open(format!("/var/run/netns/{}", ns.name)).unwrap();
    let settings = Settings {
        config_path: None,
        frr,
        state_dir: ns.dir.join("state"),
        interval: Duration::from_secs(1),
        board: false,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let (handle, runner) = agent::start(settings).unwrap();
        tx.send(handle).unwrap();
        runner.run().unwrap();
    });
    (rx.recv().unwrap(), thread)
}
