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
//! Everything is written to the lab's journal before it is made (see
//! [`crate::lab_host::journal`]); `lab down` ([`crate::lab_up`]) undoes it.

mod agent;
mod build;
mod converge;
pub(crate) mod frr;
mod memory;
mod neighbour_tables;
mod topology;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use topology::FleetLab;

pub use build::fleet_config;

use crate::interrupt::Interrupt;
use crate::lab_file::{LabFile, LabFileError};
use crate::lab_host::journal::{self, Journal};
use crate::lab_host::progress::{self, NodeLine, Progress, Step};
use crate::lab_host::{ip, names};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
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
    #[error(
        "lab {lab:?} does not fit in this machine's memory: its {nodes} nodes need about \
         {need} MiB ({routers} routers x {router_mib} MiB, {hosts} hosts x {host_mib} MiB), and \
         {available} MiB are available (or allowed by --memory-budget); about {fit} nodes of \
         this lab's kind fit. Use a smaller lab, take other labs down (`pi-lab lab list`), \
         or pass --ignore-memory to try anyway"
    )]
    TooBig {
        lab: String,
        nodes: u64,
        need: u64,
        routers: u64,
        router_mib: u64,
        hosts: u64,
        host_mib: u64,
        available: u64,
        fit: u64,
    },
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
    /// Ctrl-C or SIGTERM; `next` says what became of the fleet.
    #[error("interrupted; {next}")]
    Interrupted { next: &'static str },
}

/// What an interrupted `lab up` leaves: nothing, or what `lab down` removes.
pub(crate) const UNDONE: &str = "`lab up` removed what it had made";
pub(crate) const LEFT_BEHIND: &str = "run `pi-lab lab down` to remove what is left";
const STAYS_UP: &str = "the fleet stays up; `pi-lab lab down` removes it";

/// A fleet whose namespaces, links, FRR and agents are made.
pub struct Built {
    lab: FleetLab,
    progress: Progress,
    children: Vec<Child>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built").field("lab", &self.lab.name).finish_non_exhaustive()
    }
}

/// Make the fleet of `file` in `dir`, each object journaled first. On an
/// error, what was made is in the journal for the caller to undo.
pub fn build(
    file: LabFile,
    agent: Option<&Path>,
    dir: PathBuf,
    journal: Journal,
    json: bool,
    memory: MemoryLimit,
    interrupt: &Interrupt,
) -> Result<Built, FleetError> {
    let lab = FleetLab::new(&file.compile()?)?;
    let agent = agent::find(agent)?;
    fits_in_memory(&lab, memory)?;
    build::preflight(&lab)?;
    let mut progress = Progress::new(&node_names(&lab), &progress::FLEET_STEPS, json);
    let interrupt = interrupt.clone();
    let mut fleet = build::Fleet { lab: &lab, dir, journal, agent, interrupt };
    let children = fleet.build(&mut progress.lines)?;
    Ok(Built { lab, progress, children })
}

/// How much memory a fleet may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// What the machine has available now.
    Available,
    /// At most this many MiB (and no more than is available).
    Budget(u64),
    /// Build it whatever it takes (`--ignore-memory`).
    Ignore,
}

/// Refuse a lab this machine's memory cannot hold (see [`memory`]).
fn fits_in_memory(lab: &FleetLab, limit: MemoryLimit) -> Result<(), FleetError> {
    let available = match (limit, memory::available_mib()) {
        (MemoryLimit::Ignore, _) | (MemoryLimit::Available, None) => return Ok(()),
        (MemoryLimit::Available, Some(a)) => a,
        (MemoryLimit::Budget(b), a) => a.map_or(b, |a| a.min(b)),
    };
    let need = memory::MemoryNeed::of(&lab.nodes, available);
    if need.fits() {
        return Ok(());
    }
    Err(FleetError::TooBig {
        lab: lab.name.clone(),
        nodes: need.routers + need.hosts,
        need: need.mib(),
        routers: need.routers,
        router_mib: memory::ROUTER_MIB,
        hosts: need.hosts,
        host_mib: memory::HOST_MIB,
        available,
        fit: need.nodes_that_fit(),
    })
}

/// Wait for a built fleet to converge and print its state; a fleet that
/// does not converge stays up, so people can look at what is wrong.
/// `times`: when `up` started and how long building took.
pub fn converge(
    built: Built,
    started: Instant,
    timeout: Duration,
    json: bool,
    interrupt: &Interrupt,
) -> Result<(), FleetError> {
    let Built { lab, mut progress, children } = built;
    let built_after = started.elapsed();
    let dir = crate::lab_host::dir(&lab.name);
    let states = wait(&lab, &dir, &mut progress.lines, children, timeout, interrupt)?;
    drop(progress);
    print_state(&lab.name, &states, [built_after, started.elapsed()], json);
    Ok(())
}

fn node_names(lab: &FleetLab) -> Vec<String> {
    lab.nodes.iter().map(|n| n.hostname.clone()).collect()
}

/// How long `lab up` waits for one agent's health report; one that takes
/// longer is asked again on the next round.
const AGENT_PATIENCE: Duration = Duration::from_secs(5);

/// Poll every node until all are converged, an agent dies, or time is up.
fn wait(
    lab: &FleetLab,
    dir: &Path,
    lines: &mut [NodeLine],
    mut children: Vec<Child>,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<Vec<converge::NodeState>, FleetError> {
    let deadline = Instant::now() + timeout;
    let http = crate::agent_client::AgentClient::new(AGENT_PATIENCE);
    let configs: Vec<lab_spec::NodeConfig> = lab.nodes.iter().map(fleet_config).collect();
    loop {
        if interrupt.is_set() {
            for line in lines.iter_mut() {
                line.note("interrupted");
            }
            return Err(FleetError::Interrupted { next: STAYS_UP });
        }
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
        let states = converge::observe_all(&lab.name, &http, &configs);
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
            return Err(FleetError::Timeout {
                seconds: timeout.as_secs(),
                waiting: waiting.join("; "),
            });
        }
        sleep(Duration::from_millis(500));
    }
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
