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
mod build;
mod converge;
mod frr;
pub(crate) mod ip;
pub(crate) mod journal;
pub mod names;
pub(crate) mod progress;
pub(crate) mod teardown;
mod topology;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

use journal::{Entry, Journal};
use progress::{NodeLine, Progress, Step};
use topology::FleetLab;

use crate::interrupt::Interrupt;
use crate::lab_file::{LabFile, LabFileError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo pi-lab lab up examples/two-router.toml
  sudo pi-lab lab up examples/fabric.toml --timeout 180 --json
  sudo ip netns exec fabric-leaf1 ip route      # look inside a node
  sudo vtysh -N fabric-spine1 -c 'show bgp summary'
  sudo pi-lab lab down examples/fabric.toml

  sudo pi-lab lab up examples/boards.toml --boards emulated --image out/pi-lab-pi3b-trixie.img
  sudo pi-lab lab console examples/boards.toml leaf1     # its serial console; Ctrl-] leaves
  pi-lab status examples/boards.toml && pi-lab validate examples/boards.toml

With --boards emulated every node is a Raspberry Pi 3B in qemu booting its own
card (written from the image as `pi-lab flash` writes cards), its one Ethernet
port on a bridge that plays the managed switch (`pi-lab lab switch FILE`).")]
pub struct UpArgs {
    /// The lab file.
    pub file: PathBuf,
    /// What the nodes run on: network namespaces on this machine, or
    /// emulated Raspberry Pi 3B boards.
    #[arg(long, value_enum, default_value_t = Boards::Virtual, env = "PI_LAB_BOARDS")]
    pub boards: Boards,
    /// The image emulated boards boot (.img, .img.zst, .img.xz, .img.gz)
    /// [default: out/pi-lab-pi3b-trixie.img].
    #[arg(long, env = "PI_LAB_IMAGE")]
    pub image: Option<PathBuf>,
    /// With --boards emulated: write cards of the lab but of no node (as
    /// `flash --zero-touch`); the boards get their management address over
    /// DHCP and wait for `pi-lab provision FILE --discover SECONDS`.
    #[arg(long)]
    pub zero_touch: bool,
    /// Seconds to wait for convergence before giving up [default: 120; 900
    /// with --boards emulated]. A fleet that is built stays up.
    #[arg(long, env = "PI_LAB_UP_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Print the final state as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// node-agent binary [default: next to pi-lab, else on PATH].
    #[arg(long, env = "PI_LAB_AGENT")]
    pub agent: Option<PathBuf>,
}

/// Where `lab up` runs the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Boards {
    /// A network namespace per node, veth cables, FRR and node-agent on
    /// this machine.
    Virtual,
    /// A qemu raspi3b per node, booting a card written from the image.
    Emulated,
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
        "nothing was started: the lab file impairs {ends}, and this machine's kernel, which \
         the virtual fleet's nodes share, has no {module} module (netem); use --boards \
         emulated or boards (Debian's kernel has it), or `modprobe {module}` here"
    )]
    NoNetem { module: &'static str, ends: String },
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
    #[error(transparent)]
    Emulated(#[from] crate::emulated::EmulatedError),
    #[error("{0}")]
    Console(String),
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C or SIGTERM; `next` says what became of the fleet.
    #[error("interrupted; {next}")]
    Interrupted { next: &'static str },
}

/// What an interrupted `lab up` leaves: nothing, or what `lab down` removes.
const UNDONE: &str = "`lab up` removed what it had made";
const LEFT_BEHIND: &str = "run `pi-lab lab down` to remove what is left";
const STAYS_UP: &str = "the fleet stays up; `pi-lab lab down` removes it";

/// `lab up`; Ctrl-C stops it cleanly (exit 130): while building, what was
/// made is taken back, as after a failed build; once built, the fleet
/// stays up, as after a timeout.
pub fn up(args: &UpArgs) -> Result<ExitCode, FleetError> {
    let interrupt = Interrupt::install().unwrap_or_else(|e| {
        tracing::warn!("cannot catch Ctrl-C ({e}): an interrupted `lab up` leaves its objects");
        Interrupt::never()
    });
    match run_up(args, &interrupt) {
        Err(
            e @ (FleetError::Interrupted { .. }
            | FleetError::Emulated(crate::emulated::EmulatedError::Interrupted)),
        ) => {
            eprintln!("{e}");
            Ok(ExitCode::from(130))
        }
        other => other,
    }
}

pub fn down(args: &DownArgs) -> Result<ExitCode, FleetError> {
    run_down(args)
}

pub use build::fleet_config;

/// Where the fleet keeps its journal, node configs, agent state and logs,
/// inside the lab's state directory.
fn fleet_dir_in(lab_dir: &Path) -> PathBuf {
    lab_dir.join("fleet")
}

/// `lab console`: an emulated board's serial console.
pub fn console(args: &crate::lab::ConsoleArgs) -> Result<ExitCode, FleetError> {
    let name = match (&args.name, &args.file) {
        (Some(name), _) => {
            names::check_lab(name)?;
            name.clone()
        }
        (None, Some(file)) => crate::lab_file::name_only(file)?,
        (None, None) => return Err(names::NameError::BadLab(String::new()).into()),
    };
    names::check_node(&args.node)?;
    let layout = crate::emulated::Layout::new(&fleet_dir(&name));
    let log = layout.console_log(&args.node);
    if !log.is_file() {
        let boards: Vec<String> = fs::read_dir(&layout.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("console.log").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let known = if boards.is_empty() {
            format!("lab {name} runs no emulated boards (`pi-lab lab up FILE --boards emulated`)")
        } else {
            format!("its boards are {}", boards.join(", "))
        };
        return Err(FleetError::Console(format!("no console for {:?}: {known}", args.node)));
    }
    let socket = layout.console_socket(&args.node);
    let interactive = !args.follow && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let result = if interactive && socket.exists() {
        eprintln!("attached to {}'s console; Ctrl-] leaves", args.node);
        crate::emulated::console::attach(&socket)
    } else {
        let stop = Interrupt::install().unwrap_or_else(|_| Interrupt::never());
        crate::emulated::console::follow(&log, args.follow, &|| stop.is_set())
    };
    result.map_err(|e| FleetError::Console(format!("{}: {e}", log.display())))?;
    Ok(ExitCode::SUCCESS)
}

fn fleet_dir(lab: &str) -> PathBuf {
    fleet_dir_in(&crate::secrets::state_root().join(lab))
}

/// The journal of the lab whose state directory is `lab_dir`; it exists
/// exactly while the lab has something on this host (see [`journal`]).
pub fn journal_in(lab_dir: &Path) -> PathBuf {
    fleet_dir_in(lab_dir).join("journal.jsonl")
}

fn journal_path(lab: &str) -> PathBuf {
    journal_in(&crate::secrets::state_root().join(lab))
}

fn require_root() -> Result<(), FleetError> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err(FleetError::NotRoot) }
}

fn run_up(args: &UpArgs, interrupt: &Interrupt) -> Result<ExitCode, FleetError> {
    if args.zero_touch && args.boards != Boards::Emulated {
        return Err(FleetError::Usage(
            "--zero-touch writes cards for emulated boards: add --boards emulated".into(),
        ));
    }
    require_root()?;
    let started = Instant::now();
    // Validated before anything is made; compiled (which may make the
    // lab's token) once the journal can record it.
    let file = LabFile::load(&args.file)?;
    let name = file.name().to_string();
    names::check_lab(&name)?;
    if args.boards == Boards::Virtual {
        refuse_without_netem(&file.lab)?;
    }
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
    if args.boards == Boards::Emulated {
        return up_emulated(args, file, &dir, journal, started, interrupt);
    }
    // Until the fleet is built, any failure takes back what was made: a
    // half-built fleet is of no use to look at.
    let built = prepare(file, args).and_then(|(lab, agent)| {
        let mut progress = Progress::new(&node_names(&lab), &progress::FLEET_STEPS, args.json);
        let interrupt = interrupt.clone();
        let mut fleet = build::Fleet { lab: &lab, dir, journal, agent, interrupt };
        let children = fleet.build(&mut progress.lines)?;
        Ok((lab, progress, children))
    });
    let (lab, mut progress, children) = match built {
        Ok(built) => built,
        Err(err) => {
            let undone = tear_down(&name);
            if let Err(undo) = &undone {
                eprintln!("error: cleaning up after a failed `lab up`: {undo}");
            }
            // A step cut short by Ctrl-C (its `ip` got the signal too)
            // fails with its own error; the interrupt is the news.
            if interrupt.is_set() {
                let next = if undone.is_ok() { UNDONE } else { LEFT_BEHIND };
                return Err(FleetError::Interrupted { next });
            }
            return Err(err);
        }
    };
    // Once built, the fleet stays up even when it does not converge, so
    // people can look at what is wrong.
    let built = started.elapsed();
    let fleet_dir = fleet_dir(&name);
    let timeout = args.timeout.unwrap_or(120);
    let states = wait(&lab, &fleet_dir, &mut progress.lines, children, timeout, interrupt)?;
    drop(progress);
    print_state(&lab.name, &states, [built, started.elapsed()], args.json);
    Ok(ExitCode::SUCCESS)
}

/// `lab up --boards emulated`: boards that do not come up take the lab
/// down with them; boards that came up but are not healthy stay for a look.
fn up_emulated(
    args: &UpArgs,
    file: LabFile,
    dir: &Path,
    mut journal: Journal,
    started: Instant,
    interrupt: &Interrupt,
) -> Result<ExitCode, FleetError> {
    let opts = crate::emulated::UpOptions {
        image: args.image.clone().unwrap_or_else(crate::emulated::default_image),
        timeout: Duration::from_secs(args.timeout.unwrap_or(900)),
        json: args.json,
        zero_touch: args.zero_touch,
    };
    let stopped = || interrupt.is_set();
    let name = file.name().to_string();
    let name = name.as_str();
    match crate::emulated::up(file, &opts, dir, &mut journal, &stopped) {
        Ok(boards) => {
            let seconds = started.elapsed().as_secs_f64();
            crate::emulated::print_state(name, &boards, seconds, args.zero_touch, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if err.takes_lab_down() {
                crate::emulated::keep_logs(name, dir);
                if let Err(undo) = tear_down(name) {
                    eprintln!("error: cleaning up after a failed `lab up`: {undo}");
                }
            }
            Err(err.into())
        }
    }
}

/// The virtual fleet's nodes run on this kernel: a lab that impairs ports
/// needs its netem, or nothing starts (a lab up without the delays and
/// losses it was written for would measure something else).
fn refuse_without_netem(lab: &lab_spec::Lab) -> Result<(), FleetError> {
    let impaired = lab.impairments();
    if impaired.is_empty() || crate::runner::netem::host_has_netem() {
        return Ok(());
    }
    let ends: Vec<String> =
        impaired.iter().map(|(end, netem)| format!("{end} ({netem})")).collect();
    Err(FleetError::NoNetem { module: lab_spec::impairment::MODULE, ends: ends.join(", ") })
}

fn node_names(lab: &FleetLab) -> Vec<String> {
    lab.nodes.iter().map(|n| n.hostname.clone()).collect()
}

/// Compile the lab, find the agent and check that every name is free.
fn prepare(file: LabFile, args: &UpArgs) -> Result<(FleetLab, PathBuf), FleetError> {
    let lab = FleetLab::new(&file.compile()?)?;
    let agent = agent::find(args.agent.as_deref())?;
    build::preflight(&lab)?;
    Ok((lab, agent))
}

/// Poll every node until all are converged, an agent dies, or time is up.
fn wait(
    lab: &FleetLab,
    dir: &Path,
    lines: &mut [NodeLine],
    mut children: Vec<Child>,
    timeout_secs: u64,
    interrupt: &Interrupt,
) -> Result<Vec<converge::NodeState>, FleetError> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut agents = converge::AgentWord::new();
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
        let mut states = converge::observe_all(&lab.name, &lab.nodes);
        agents.ask(&lab.nodes, &mut states);
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
        (None, Some(file)) => {
            let name = crate::lab_file::name_only(file)?;
            names::check_lab(&name)?;
            name
        }
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
    let mut problems = teardown::undo(&inner);
    if !problems.is_empty() {
        // Something may still have been settling (a process exiting, a
        // device going with its peer): one more try before giving up.
        tracing::info!(?problems, "lab down: trying once more");
        sleep(Duration::from_secs(1));
        problems = teardown::undo(&inner);
    }
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
