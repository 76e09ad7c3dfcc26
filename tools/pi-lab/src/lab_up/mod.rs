//! `lab up`, `lab down` and `lab console`: a lab on this host, as a
//! virtual fleet ([`crate::fleet`]) or on emulated boards
//! ([`crate::emulated`]). Both start the same way (the lab's journal,
//! whose first entry records where the lab runs) and end the same way
//! (`lab down` undoes the journal, so it works after a crash and after the
//! lab file changed). `up` on a lab that is already up refuses and names
//! `lab down`: reconciling a running lab is the agents' job.

mod console;

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub use console::{ConsoleArgs, console};

use crate::emulated::EmulatedError;
use crate::fleet::FleetError;
use crate::interrupt::Interrupt;
use crate::lab_file::{LabFile, LabFileError};
use crate::lab_host::journal::{Entry, Journal, JournalError};
use crate::lab_host::teardown::{TeardownError, tear_down};
use crate::lab_host::{RunsOn, ip, names};

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
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
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
    /// DHCP and wait for `pi-lab provision FILE --discover 60s`.
    #[arg(long)]
    pub zero_touch: bool,
    /// How long to wait for convergence before giving up: 120, 2m, 1m30s
    /// [default: 2m; 15m with --boards emulated]. A fleet that is built
    /// stays up.
    #[arg(long, value_parser = lab_spec::duration::parse_positive, env = "PI_LAB_UP_TIMEOUT")]
    pub timeout: Option<Duration>,
    /// Print the final state as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// node-agent binary [default: next to pi-lab, else on PATH].
    #[arg(long, env = "PI_LAB_AGENT")]
    pub agent: Option<PathBuf>,
    /// Build a virtual fleet even when this machine's available memory
    /// looks too small for it (about 40 MiB per router, 8 MiB per host).
    #[arg(long, conflicts_with = "memory_budget")]
    pub ignore_memory: bool,
    /// Let a virtual fleet take at most this many MiB (leaving the rest
    /// to other work); a larger lab is refused before anything is made.
    #[arg(long, value_name = "MIB", env = "PI_LAB_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,
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
    #[command(flatten)]
    pub lab: crate::lab_arg::LabNameArg,
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Emulated(#[from] EmulatedError),
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error(transparent)]
    Teardown(#[from] TeardownError),
    #[error(
        "nothing was started: the lab file impairs {ends}, and this machine's kernel, which \
         the virtual fleet's nodes share, has no {module} module (netem); use --boards \
         emulated or boards (Debian's kernel has it), or `modprobe {module}` here"
    )]
    NoNetem { module: &'static str, ends: String },
    #[error("lab {lab:?} is already up (journal {journal}); run `pi-lab lab down` on it first")]
    AlreadyUp { lab: String, journal: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "lab {lab:?} has no journal under {state}, yet namespaces named after it exist \
         ({found}); was it started with another PI_LAB_STATE_DIR or by another user (sudo \
         changes HOME)? Run `lab down` with that state directory"
    )]
    Stray { lab: String, state: PathBuf, found: String },
    #[error("must run as root: network namespaces and FRR need it")]
    NotRoot,
    #[error("{0}")]
    Console(String),
    #[error("{0}")]
    Usage(String),
}

/// `lab up`; Ctrl-C stops it cleanly (exit 130): while building, what was
/// made is taken back, as after a failed build; once built, the lab stays
/// up, as after a timeout.
pub fn up(args: &UpArgs) -> Result<ExitCode, UpError> {
    let interrupt = Interrupt::install().unwrap_or_else(|e| {
        tracing::warn!("cannot catch Ctrl-C ({e}): an interrupted `lab up` leaves its objects");
        Interrupt::never()
    });
    match run_up(args, &interrupt) {
        Err(
            e @ (UpError::Fleet(FleetError::Interrupted { .. })
            | UpError::Emulated(EmulatedError::Interrupted)),
        ) => {
            eprintln!("{e}");
            Ok(ExitCode::from(130))
        }
        other => other,
    }
}

fn require_root() -> Result<(), UpError> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err(UpError::NotRoot) }
}

fn run_up(args: &UpArgs, interrupt: &Interrupt) -> Result<ExitCode, UpError> {
    if args.zero_touch && args.boards != Boards::Emulated {
        return Err(UpError::Usage(
            "--zero-touch writes cards for emulated boards: add --boards emulated".into(),
        ));
    }
    require_root()?;
    let started = Instant::now();
    // Validated before anything is made; compiled (which may make the
    // lab's token) once the journal can record it.
    let file = LabFile::load(&args.lab.file)?;
    let name = file.name().to_string();
    names::check_lab(&name)?;
    if args.boards == Boards::Virtual {
        refuse_without_netem(&file.lab)?;
    }
    let (dir, journal) = start_journal(&name, args.boards)?;
    match args.boards {
        Boards::Emulated => up_emulated(args, file, dir, journal, started, interrupt),
        Boards::Virtual => up_fleet(args, file, dir, journal, started, interrupt),
    }
}

/// The virtual fleet's nodes run on this kernel: a lab that impairs ports
/// needs its netem, or nothing starts (a lab up without the delays and
/// losses it was written for would measure something else).
fn refuse_without_netem(lab: &lab_spec::Lab) -> Result<(), UpError> {
    let impaired = lab.impairments();
    if impaired.is_empty() || crate::runner::netem::host_has_netem() {
        return Ok(());
    }
    let ends: Vec<String> =
        impaired.iter().map(|(end, netem)| format!("{end} ({netem})")).collect();
    Err(UpError::NoNetem { module: lab_spec::impairment::MODULE, ends: ends.join(", ") })
}

/// The lab's folder and journal, whose first entry says where it runs,
/// then the state directory and token if `up` makes them.
fn start_journal(name: &str, boards: Boards) -> Result<(PathBuf, Journal), UpError> {
    let path = crate::lab_host::journal_path(name);
    if path.exists() {
        return Err(UpError::AlreadyUp { lab: name.to_string(), journal: path });
    }
    let lab_dir = crate::secrets::state_root().join(name);
    let (lab_dir_new, token_new) = (!lab_dir.exists(), !lab_dir.join("token").exists());
    let dir = crate::lab_host::dir(name);
    fs::create_dir_all(&dir).map_err(|source| UpError::Write { path: dir.clone(), source })?;
    let mut journal = Journal::create(&path)?;
    let place = match boards {
        Boards::Virtual => RunsOn::VirtualFleet,
        Boards::Emulated => RunsOn::EmulatedBoards,
    };
    journal.record(&Entry::RunsOn { place })?;
    if lab_dir_new {
        journal.record(&Entry::Path { path: lab_dir.clone() })?;
    }
    if token_new {
        journal.record(&Entry::Path { path: lab_dir.join("token") })?;
    }
    Ok((dir, journal))
}

/// `lab up` of a virtual fleet: until the fleet is built, any failure
/// takes back what was made (a half-built fleet is of no use to look at);
/// once built, it stays up even when it does not converge.
fn up_fleet(
    args: &UpArgs,
    file: LabFile,
    dir: PathBuf,
    journal: Journal,
    started: Instant,
    interrupt: &Interrupt,
) -> Result<ExitCode, UpError> {
    let name = file.name().to_string();
    let agent = args.agent.as_deref();
    let built = match crate::fleet::build(
        file,
        agent,
        dir,
        journal,
        args.json,
        memory_limit(args),
        interrupt,
    ) {
        Ok(built) => built,
        Err(err) => {
            let undone = tear_down(&name);
            if let Err(undo) = &undone {
                eprintln!("error: cleaning up after a failed `lab up`: {undo}");
            }
            // A step cut short by Ctrl-C (its `ip` got the signal too)
            // fails with its own error; the interrupt is the news.
            if interrupt.is_set() {
                let next =
                    if undone.is_ok() { crate::fleet::UNDONE } else { crate::fleet::LEFT_BEHIND };
                return Err(FleetError::Interrupted { next }.into());
            }
            return Err(err.into());
        }
    };
    let timeout = args.timeout.unwrap_or(Duration::from_secs(120));
    crate::fleet::converge(built, started, timeout, args.json, interrupt)?;
    Ok(ExitCode::SUCCESS)
}

fn memory_limit(args: &UpArgs) -> crate::fleet::MemoryLimit {
    use crate::fleet::MemoryLimit;
    match (args.ignore_memory, args.memory_budget) {
        (true, _) => MemoryLimit::Ignore,
        (false, Some(mib)) => MemoryLimit::Budget(mib),
        (false, None) => MemoryLimit::Available,
    }
}

/// `lab up --boards emulated`: boards that do not come up take the lab
/// down with them; boards that came up but are not healthy stay for a look.
fn up_emulated(
    args: &UpArgs,
    file: LabFile,
    dir: PathBuf,
    mut journal: Journal,
    started: Instant,
    interrupt: &Interrupt,
) -> Result<ExitCode, UpError> {
    let opts = crate::emulated::UpOptions {
        image: args.image.clone().unwrap_or_else(crate::emulated::default_image),
        timeout: args.timeout.unwrap_or(Duration::from_secs(900)),
        json: args.json,
        zero_touch: args.zero_touch,
    };
    let stopped = || interrupt.is_set();
    let name = file.name().to_string();
    let name = name.as_str();
    match crate::emulated::up(file, &opts, &dir, &mut journal, &stopped) {
        Ok(boards) => {
            let seconds = started.elapsed().as_secs_f64();
            crate::emulated::print_state(name, &boards, seconds, args.zero_touch, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if err.takes_lab_down() {
                crate::emulated::keep_logs(name, &dir);
                if let Err(undo) = tear_down(name) {
                    eprintln!("error: cleaning up after a failed `lab up`: {undo}");
                }
            }
            Err(err.into())
        }
    }
}

/// The lab's name from `--name` or from its file, checked.
fn lab_name(lab: &crate::lab_arg::LabNameArg) -> Result<String, UpError> {
    let name = match (&lab.name, &lab.file) {
        (Some(name), _) => name.clone(),
        (None, Some(file)) => crate::lab_file::name_only(file)?,
        (None, None) => String::new(),
    };
    names::check_lab(&name)?;
    Ok(name)
}

/// `lab down`: undo the lab's journal.
pub fn down(args: &DownArgs) -> Result<ExitCode, UpError> {
    require_root()?;
    let name = lab_name(&args.lab)?;
    if !crate::lab_host::journal_path(&name).exists() && !crate::lab_host::dir(&name).exists() {
        let strays = ip::netns_with_prefix(&format!("{name}-"));
        if !strays.is_empty() {
            return Err(UpError::Stray {
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
