//! The virtual fleet: a lab in network namespaces on one Linux host.
//!
//! `lab up` gives every node a network namespace (`{lab}-{node}`), cables
//! the lab's links as veth pairs named as in the lab file, hangs every node
//! on a management bridge in the root namespace (which carries the
//! controller address) through a port named `mgmt0`, starts FRR per router
//! namespace in its own pathspace and then the real `node-agent` with the
//! NodeConfig a board would get — except `management.interface = "mgmt0"`,
//! since a namespace has no "first Ethernet port". It waits until every
//! BGP session is Established, every VXLAN device and address is in place,
//! and prints the state table.
//!
//! Everything is written to a journal before it is made (see
//! [`journal`]), and `lab down` undoes the journal, so it works after a
//! crash and after the lab file changed. `up` on a lab that is already up
//! refuses and names `lab down`: reconciling a running fleet is the
//! agents' job, not the plumbing's.

mod agent;
mod converge;
mod frr;
mod ip;
mod journal;
mod load;
pub mod names;
mod progress;
mod teardown;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_spec::{NodeConfig, Role};

use journal::{Entry, Journal};
use load::FleetLab;
use progress::{NodeLine, Progress, Step};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo pi-lab lab up examples/two-router.toml
  sudo pi-lab lab up examples/fabric.toml --timeout 180 --json
  sudo ip netns exec fabric-leaf1 ip route      # look inside a node
  sudo vtysh -N fabric-spine1 -c 'show bgp summary'
  sudo pi-lab lab down examples/fabric.toml")]
pub struct UpArgs {
    /// The lab file.
    pub file: PathBuf,
    /// Seconds to wait for convergence before giving up (the fleet stays up).
    #[arg(long, default_value_t = 120, env = "PI_LAB_UP_TIMEOUT")]
    pub timeout: u64,
    /// Print the final state as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// node-agent binary [default: next to pi-lab, else on PATH].
    #[arg(long, env = "PI_LAB_AGENT")]
    pub agent: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo pi-lab lab down examples/fabric.toml
  sudo pi-lab lab down --name fabric        # the lab file is gone")]
pub struct DownArgs {
    /// The lab file (only its `name` is read; what is removed comes from
    /// the fleet's journal).
    #[arg(required_unless_present = "name")]
    pub file: Option<PathBuf>,
    /// The lab's name, instead of a file.
    #[arg(long, conflicts_with = "file")]
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Ip(#[from] ip::IpError),
    #[error(transparent)]
    Frr(#[from] frr::FrrError),
    #[error(transparent)]
    Agent(#[from] agent::AgentError),
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error("lab {lab:?} is already up (journal {journal}); run `pi-lab lab down` on it first")]
    AlreadyUp { lab: String, journal: PathBuf },
    #[error("{what} already exists but lab {lab:?} is not up; remove it or rename the lab")]
    Occupied { lab: String, what: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "node-agent on {node} stopped ({status}); last lines of {log}:\n{tail}\n\
         the fleet stays up for a look; `pi-lab lab down` removes it"
    )]
    AgentDied { node: String, status: String, log: PathBuf, tail: String },
    #[error(
        "not converged after {seconds} s: {waiting}\n\
         the fleet stays up for a look; `pi-lab lab down` removes it"
    )]
    Timeout { seconds: u64, waiting: String },
    #[error(
        "lab {lab:?} has no journal under {state}, yet namespaces named after it exist \
         ({found}); was it started with another PI_LAB_STATE_DIR or by another user (sudo \
         changes HOME)? Run `lab down` with that state directory"
    )]
    Stray { lab: String, state: PathBuf, found: String },
    #[error("lab down left things behind:\n  {}", .0.join("\n  "))]
    Leftovers(Vec<String>),
    #[error("must run as root: network namespaces and FRR need it")]
    NotRoot,
}

pub fn up(args: &UpArgs) -> Result<ExitCode, FleetError> {
    run_up(args)
}

pub fn down(args: &DownArgs) -> Result<ExitCode, FleetError> {
    run_down(args)
}

fn fleet_dir(lab: &str) -> PathBuf {
    crate::secrets::state_root().join(lab).join("fleet")
}

fn journal_path(lab: &str) -> PathBuf {
    fleet_dir(lab).join("journal.jsonl")
}

fn require_root() -> Result<(), FleetError> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err(FleetError::NotRoot) }
}

fn run_up(args: &UpArgs) -> Result<ExitCode, FleetError> {
    require_root()?;
    let started = Instant::now();
    let name = load::lab_name(&args.file)?;
    let journal = journal_path(&name);
    if journal.exists() {
        return Err(FleetError::AlreadyUp { lab: name, journal });
    }
    let lab_dir = crate::secrets::state_root().join(&name);
    let (lab_dir_new, token_new) = (!lab_dir.exists(), !lab_dir.join("token").exists());
    let dir = fleet_dir(&name);
    fs::create_dir_all(&dir).map_err(|source| FleetError::Write { path: dir.clone(), source })?;
    let mut journal = Journal::create(&journal)?;
    if lab_dir_new {
        journal.record(&Entry::Path { path: lab_dir.clone() })?;
    }
    if token_new {
        journal.record(&Entry::Path { path: lab_dir.join("token") })?;
    }
    // Until the fleet is built, any failure takes back what was made: a
    // half-built fleet is of no use to look at.
    let built = prepare(args).and_then(|(lab, agent)| {
        let mut progress = Progress::new(&node_names(&lab), args.json);
        let mut fleet = Fleet { lab: &lab, dir, journal, agent };
        let children = fleet.build(&mut progress.lines)?;
        Ok((lab, progress, children))
    });
    let (lab, mut progress, children) = match built {
        Ok(built) => built,
        Err(err) => {
            if let Err(undo) = tear_down(&name) {
                eprintln!("error: cleaning up after a failed `lab up`: {undo}");
            }
            return Err(err);
        }
    };
    // Once built, the fleet stays up even when it does not converge, so
    // people can look at what is wrong.
    let built = started.elapsed();
    let fleet_dir = fleet_dir(&name);
    let states = wait(&lab, &fleet_dir, &mut progress.lines, children, args.timeout)?;
    drop(progress);
    print_state(&lab.name, &states, [built, started.elapsed()], args.json);
    Ok(ExitCode::SUCCESS)
}

fn node_names(lab: &FleetLab) -> Vec<String> {
    lab.nodes.iter().map(|n| n.hostname.clone()).collect()
}

/// Compile the lab, find the agent and check that every name is free.
fn prepare(args: &UpArgs) -> Result<(FleetLab, PathBuf), FleetError> {
    let lab = load::load(&args.file)?;
    let agent = agent::find(args.agent.as_deref())?;
    preflight(&lab)?;
    Ok((lab, agent))
}

/// Refuse before making anything when a name the lab needs is taken.
fn preflight(lab: &FleetLab) -> Result<(), FleetError> {
    let occupied = |what: String| FleetError::Occupied { lab: lab.name.clone(), what };
    for node in &lab.nodes {
        let ns = names::netns(&lab.name, &node.hostname);
        if ip::netns_exists(&ns) {
            return Err(occupied(format!("network namespace {ns}")));
        }
        if frr::run_dir(&ns).join("watchfrr.pid").exists() {
            return Err(occupied(format!("FRR pathspace {ns}")));
        }
    }
    let bridge = names::bridge(&lab.name);
    if ip::link_exists(None, &bridge) {
        return Err(occupied(format!("device {bridge}")));
    }
    if let Some(first) = lab.nodes.first() {
        let controller = first.management.controller.to_string();
        if let Some(dev) = ip::holders_of(None, &controller)?.first() {
            return Err(occupied(format!(
                "the controller address {controller} (on {dev}; another lab with the same \
                 management subnet?)"
            )));
        }
    }
    Ok(())
}

/// A fleet being built.
struct Fleet<'a> {
    lab: &'a FleetLab,
    dir: PathBuf,
    journal: Journal,
    agent: PathBuf,
}

impl Fleet<'_> {
    fn ns(&self, node: &str) -> String {
        names::netns(&self.lab.name, node)
    }

    /// Namespaces, management, links, FRR, agents — in that order, so each
    /// agent starts on a node whose cables are already plugged in.
    fn build(&mut self, lines: &mut [NodeLine]) -> Result<Vec<Child>, FleetError> {
        self.management_bridge()?;
        for (index, node) in self.lab.nodes.iter().enumerate() {
            self.namespace(index, node)
                .inspect_err(|e| lines[index].failed(Step::Netns, &e.to_string()))?;
            lines[index].done(Step::Netns);
        }
        self.links()?;
        for line in lines.iter_mut() {
            line.done(Step::Links);
        }
        self.frr(lines)?;
        let mut children = Vec::new();
        for (index, node) in self.lab.nodes.iter().enumerate() {
            let child = self
                .agent(node)
                .inspect_err(|e| lines[index].failed(Step::Agent, &e.to_string()))?;
            lines[index].done(Step::Agent);
            children.push(child);
        }
        Ok(children)
    }

    fn management_bridge(&mut self) -> Result<(), FleetError> {
        let Some(first) = self.lab.nodes.first() else { return Ok(()) };
        let bridge = names::bridge(&self.lab.name);
        let controller =
            format!("{}/{}", first.management.controller, first.management.address.prefix_len());
        self.journal.record(&Entry::RootLink { name: bridge.clone() })?;
        ip::bridge_add(&bridge)?;
        ip::addr_add(None, &bridge, &controller)?;
        ip::link_up(None, &bridge)?;
        Ok(())
    }

    /// The node's namespace, `lo` up, forwarding on routers, and `mgmt0`
    /// on the management bridge with the node's management address.
    fn namespace(&mut self, index: usize, node: &NodeConfig) -> Result<(), FleetError> {
        let ns = self.ns(&node.hostname);
        self.journal.record(&Entry::Netns { name: ns.clone() })?;
        ip::netns_add(&ns)?;
        ip::link_up(Some(&ns), "lo")?;
        let forward = if node.role == Role::Host { "0" } else { "1" };
        ip::sysctl(&ns, &format!("net.ipv4.ip_forward={forward}"))?;
        let root_end = names::mgmt_root_end(&self.lab.name, index);
        self.journal.record(&Entry::RootLink { name: root_end.clone() })?;
        ip::veth_from_root(&root_end, &ns, names::MGMT_PORT)?;
        ip::set_master(&root_end, &names::bridge(&self.lab.name))?;
        ip::link_up(None, &root_end)?;
        ip::addr_add(Some(&ns), names::MGMT_PORT, &node.management.address.to_string())?;
        ip::link_up(Some(&ns), names::MGMT_PORT)?;
        Ok(())
    }

    /// One veth pair per cable, born inside the two namespaces (nothing to
    /// journal: deleting a namespace deletes its ends). Ports come up like
    /// a plugged-in cable; addresses are the agent's job.
    fn links(&mut self) -> Result<(), FleetError> {
        for (a, b) in &self.lab.links {
            let (a_ns, b_ns) = (self.ns(&a.node), self.ns(&b.node));
            ip::veth_between(&a_ns, &a.interface, &b_ns, &b.interface)?;
            ip::link_up(Some(&a_ns), &a.interface)?;
            ip::link_up(Some(&b_ns), &b.interface)?;
        }
        Ok(())
    }

    /// FRR on every router: pathspaces written (and journaled) one by one,
    /// then all instances started at once (each start takes a while).
    fn frr(&mut self, lines: &mut [NodeLine]) -> Result<(), FleetError> {
        let mut routers = Vec::new();
        for (index, node) in self.lab.nodes.iter().enumerate() {
            if node.bgp.is_none() {
                lines[index].skip(Step::Frr);
                continue;
            }
            let ns = self.ns(&node.hostname);
            self.journal.record(&Entry::Tree { path: frr::config_dir(&ns) })?;
            self.journal.record(&Entry::Tree { path: frr::run_dir(&ns) })?;
            self.journal.record(&Entry::Frr { netns: ns.clone() })?;
            frr::write_pathspace(&ns, &node.hostname)
                .inspect_err(|e| lines[index].failed(Step::Frr, &e.to_string()))?;
            routers.push((index, ns, node.hostname.as_str()));
        }
        let results: Vec<(usize, Result<(), frr::FrrError>)> = std::thread::scope(|scope| {
            let starts: Vec<_> = routers
                .iter()
                .map(|(index, ns, host)| (*index, scope.spawn(move || frr::start(ns, host))))
                .collect();
            starts
                .into_iter()
                .map(|(index, start)| {
                    let result = start.join().unwrap_or_else(|_| {
                        Err(frr::FrrError::Start {
                            netns: String::new(),
                            message: "panicked".into(),
                        })
                    });
                    (index, result)
                })
                .collect()
        });
        for (index, result) in results {
            match result {
                Ok(()) => lines[index].done(Step::Frr),
                Err(err) => {
                    lines[index].failed(Step::Frr, &err.to_string());
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// Write the node's NodeConfig (as a board gets it, with the management
    /// port named) and start its agent.
    fn agent(&mut self, node: &NodeConfig) -> Result<Child, FleetError> {
        let ns = self.ns(&node.hostname);
        let files = agent::AgentFiles::new(&self.dir, &node.hostname);
        let text = fleet_config(node).to_toml().map_err(|e| FleetError::Write {
            path: files.config.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&files.config, &text)?;
        let child = agent::spawn(&self.agent, &ns, &node.hostname, node.bgp.is_some(), &files)?;
        self.journal.record(&Entry::Process {
            netns: ns,
            pid: child.id(),
            what: "node-agent".into(),
        })?;
        Ok(child)
    }
}

/// Poll every node until all are converged, an agent dies, or time is up.
fn wait(
    lab: &FleetLab,
    dir: &Path,
    lines: &mut [NodeLine],
    mut children: Vec<Child>,
    timeout_secs: u64,
) -> Result<Vec<converge::NodeState>, FleetError> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        for ((node, child), line) in lab.nodes.iter().zip(&mut children).zip(lines.iter_mut()) {
            if let Ok(Some(status)) = child.try_wait() {
                let files = agent::AgentFiles::new(dir, &node.hostname);
                line.failed(Step::Converged, "agent stopped");
                return Err(FleetError::AgentDied {
                    node: node.hostname.clone(),
                    status: status.to_string(),
                    tail: agent::log_tail(&files, 15),
                    log: files.log,
                });
            }
        }
        let states = converge::observe_all(&lab.name, &lab.nodes);
        for (state, line) in states.iter().zip(lines.iter_mut()) {
            if state.converged() {
                line.finish();
            } else {
                line.note(&state.waiting_for());
            }
        }
        if states.iter().all(converge::NodeState::converged) {
            return Ok(states);
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = states
                .iter()
                .filter(|s| !s.converged())
                .map(|s| format!("{}: {}", s.node, s.waiting_for()))
                .collect();
            for line in lines.iter_mut() {
                line.note("timed out");
            }
            return Err(FleetError::Timeout { seconds: timeout_secs, waiting: waiting.join("; ") });
        }
        sleep(Duration::from_millis(500));
    }
}

/// The NodeConfig a board would get, with the management port named: a
/// namespace has no "first Ethernet port" to find by type.
fn fleet_config(node: &NodeConfig) -> NodeConfig {
    let mut config = node.clone();
    config.management.interface = Some(names::MGMT_PORT.to_string());
    config.with_version()
}

fn write_atomic(path: &Path, text: &str) -> Result<(), FleetError> {
    let write_err = |source| FleetError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(write_err)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(write_err)?;
    fs::rename(&tmp, path).map_err(write_err)
}

/// The state table (or JSON); `times`: built after, converged after.
fn print_state(lab: &str, states: &[converge::NodeState], times: [Duration; 2], json: bool) {
    let [built, converged] = times.map(|t| t.as_secs_f64());
    if json {
        let doc = serde_json::json!({
            "lab": lab,
            "converged": true,
            "seconds": converged,
            "built_seconds": built,
            "nodes": states,
        });
        println!("{doc:#}");
        return;
    }
    println!(
        "lab {lab} converged in {converged:.1} s (namespaces, links, FRR, agents: {built:.1} s)\n"
    );
    print!("{}", converge::table(states));
    println!("\nlook inside: sudo ip netns exec {lab}-NODE ...   sudo vtysh -N {lab}-NODE");
    println!("tear down:   sudo pi-lab lab down --name {lab}");
}

fn run_down(args: &DownArgs) -> Result<ExitCode, FleetError> {
    require_root()?;
    let name = match (&args.name, &args.file) {
        (Some(name), _) => {
            names::check_lab(name)?;
            name.clone()
        }
        (None, Some(file)) => load::lab_name(file)?,
        (None, None) => return Err(names::NameError::BadLab(String::new()).into()),
    };
    if !journal_path(&name).exists() && !fleet_dir(&name).exists() {
        let strays = ip::netns_with_prefix(&format!("{name}-"));
        if !strays.is_empty() {
            return Err(FleetError::Stray {
                lab: name,
                state: crate::secrets::state_root(),
                found: strays.join(", "),
            });
        }
        eprintln!("lab {name} is not up; nothing to remove");
        return Ok(ExitCode::SUCCESS);
    }
    tear_down(&name)?;
    eprintln!("lab {name} is down");
    Ok(ExitCode::SUCCESS)
}

/// Undo the lab's journal.
fn tear_down(name: &str) -> Result<(), FleetError> {
    let journal = journal_path(name);
    let entries = journal::read(&journal)?;
    // Directories holding the journal go last, once all else is gone: if
    // something is left, the journal stays for the next `down`.
    let (outer, inner): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| holds(e, &journal));
    let problems = teardown::undo(&inner);
    if !problems.is_empty() {
        return Err(FleetError::Leftovers(problems));
    }
    let dir = fleet_dir(name);
    fs::remove_dir_all(&dir)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|e| {
            FleetError::Leftovers(vec![format!("cannot remove {}: {e}", dir.display())])
        })?;
    let problems = teardown::undo(&outer);
    if !problems.is_empty() {
        return Err(FleetError::Leftovers(problems));
    }
    Ok(())
}

/// A path entry that is `file` or one of its parent directories.
fn holds(entry: &Entry, file: &Path) -> bool {
    match entry {
        Entry::Path { path } | Entry::Tree { path } => file.starts_with(path),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = r#"
schema = 1
lab = "two-router"
hostname = "r1"
role = "router"
loopback = "10.0.0.1"
[management]
address = "192.168.200.11/24"
controller = "192.168.200.1"
[[interfaces]]
name = "eth1"
kind = "port"
address = "10.1.0.0/31"
description = "to r2:eth1"
[sflow]
collectors = []
polling_interval = 20
sampling_rate = 0
agent_address = "10.0.0.1"
interfaces = []
[health]
listen = "192.168.200.11:9180"
[auth]
token_sha256 = "00"
"#;

    #[test]
    fn the_written_config_names_mgmt0_and_reads_back_the_same() {
        let node = NodeConfig::from_toml(R1).unwrap();
        let config = fleet_config(&node);
        assert_eq!(config.management.interface.as_deref(), Some("mgmt0"));
        assert_eq!(config.version, config.content_version());
        assert_ne!(
            config.version,
            fleet_config(&NodeConfig { hostname: "r2".into(), ..node }).version
        );
        let back = NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap();
        assert_eq!(back, config);
    }
}
