//! Emulated boards: every node of a lab as a Raspberry Pi 3B in
//! `qemu-system-aarch64 -M raspi3b`, booting its own card.
//!
//! The third way to run a lab, between the virtual fleet and real boards,
//! and the one that carries the board path end to end:
//!
//! ```text
//! image ─flash (same code path)─> card file per node, with its identity
//!   ─> qemu raspi3b, its one NIC a tap on the lab's switch (bridge: the
//!      management network untagged, the controller address on it; one
//!      802.1Q VLAN per lab link, membership enforced per port)
//!   ─> boot: kernel, systemd, agent up at the management address
//!   ─> provisioned (the card's config applied) ─> healthy
//! ```
//!
//! After that the lab is reached exactly as real boards are: `provision`,
//! `status` and `validate` talk to the management addresses over the
//! bridge, and pings go over SSH with the lab's own key.
//!
//! Like the virtual fleet, everything is journaled before it is made
//! (emulators, taps, bridge, switch rules, cards), and `lab down` undoes
//! the journal, so it also cleans up after a crashed `up`.

pub mod console;
pub mod devicetree;
pub mod dhcp;
pub mod qemu;
pub mod wiring;

mod board;
mod hardware;
mod layout;
mod prepare;
mod report;
mod watch;

pub use board::BoardState;
use hardware::{boot_files, cards, dhcp_up, power_on, ssh_key, start, switch_up};
pub use layout::{Layout, tap};
pub use prepare::board_config;
use prepare::{Prepared, prepare, proc_kib};
use report::rss_mib;
pub use report::{keep_logs, print_state};
pub use watch::Cycle;
use watch::Watch;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::node_config::InterfaceKind;
use serde::Serialize;

use self::console::Phase;
use crate::flash::identity::Identity;
use crate::lab_file::LabFile;
use crate::lab_host::journal::{Entry, Journal};
use crate::lab_host::progress::Progress;
use crate::lab_host::teardown::process_alive;
use crate::lab_host::{ip, names};
use crate::switch::{self, SwitchPlan};

/// Memory qemu needs beside the guest's 1 GiB: its translated-code cache
/// and its own code and buffers.
const EMULATOR_OVERHEAD: u64 = (qemu::TB_CACHE_MIB << 20) + (128 << 20);

#[derive(Debug, thiserror::Error)]
pub enum EmulatedError {
    #[error(
        "no image at {path}: build one with `sudo pi-lab image build --out {dir}` \
         or name it with --image PATH (env PI_LAB_IMAGE)"
    )]
    NoImage { path: PathBuf, dir: String },
    #[error("{program} is not installed: `sudo apt-get install {package}` ({why})")]
    Missing { program: &'static str, package: &'static str, why: &'static str },
    #[error(
        "{boards} emulated boards need about {need} MiB of memory ({per} MiB each) but {have} MiB \
         are available: {fit} would fit; free memory or run a smaller lab"
    )]
    Memory { boards: usize, need: u64, per: u64, have: u64, fit: u64 },
    #[error("{node}:{interface}: {message}")]
    OneNic { node: String, interface: String, message: String },
    #[error(transparent)]
    Lab(#[from] crate::lab_file::LabFileError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Journal(#[from] crate::lab_host::journal::JournalError),
    #[error(transparent)]
    Ip(#[from] ip::IpError),
    #[error(transparent)]
    Nft(#[from] wiring::NftError),
    #[error("writing the cards: {0}")]
    Flash(#[from] crate::flash::FlashError),
    #[error("card {card}: {message}")]
    Card { card: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot start {program} for {node}: {source}")]
    Spawn { program: String, node: String, source: std::io::Error },
    #[error(
        "{node} did not boot within {seconds} s (stuck after: {phase}); last lines of its \
         serial console {log}:\n{tail}\nall boards were stopped and the lab was taken down"
    )]
    Boot { node: String, seconds: u64, phase: &'static str, log: PathBuf, tail: String },
    #[error(
        "the emulator of {node} stopped ({log}):\n{tail}\nall boards were stopped and the lab \
         was taken down"
    )]
    Died { node: String, log: PathBuf, tail: String },
    #[error(
        "{node} {what} {cycles} times ({cause}): see {log}\nall boards were stopped and the lab \
         was taken down"
    )]
    PowerCycles { node: String, what: String, cycles: u32, cause: &'static str, log: PathBuf },
    #[error(
        "not healthy after {seconds} s: {waiting}\nthe boards stay up for a look \
         (`pi-lab status`, `pi-lab lab console NODE`); `pi-lab lab down` removes them"
    )]
    NotHealthy { seconds: u64, waiting: String },
    #[error("interrupted (Ctrl-C): the boards were stopped and the lab was taken down")]
    Interrupted,
    #[error("{0}")]
    Fleet(String),
}

/// What `lab up --boards emulated` needs beyond the lab file.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub image: PathBuf,
    pub timeout: Duration,
    pub json: bool,
    /// Cards of the lab but of no node: the boards come up unprovisioned,
    /// for `provision --discover`.
    pub zero_touch: bool,
}

/// The image `lab up --boards emulated` boots when not told: what
/// `pi-lab image build` writes by default.
pub fn default_image() -> PathBuf {
    PathBuf::from("out/pi-lab-pi3b-trixie.img")
}

/// Run `file` as emulated boards. `stop` says Ctrl-C was pressed.
pub fn up(
    file: LabFile,
    opts: &UpOptions,
    fleet_dir: &Path,
    journal: &mut Journal,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<BoardState>, EmulatedError> {
    let name = file.name().to_string();
    let prepared = prepare(file, opts)?;
    let layout = Layout::new(fleet_dir);
    journal.record(&Entry::Tree { path: layout.dir.clone() })?;
    let key = ssh_key(&name, journal)?;
    switch_up(&prepared, journal)?;
    dhcp_up(&prepared, &layout, journal)?;
    cards(&prepared.configs, opts, &layout, &key)?;
    let boot = boot_files(&layout, &prepared.configs)?;
    let mut boards = start(&prepared, &layout, &boot, journal)?;
    let mut progress = Progress::new(
        &boards.iter().map(|b| b.node.clone()).collect::<Vec<_>>(),
        &Phase::ALL[1..].iter().map(|p| p.label()).collect::<Vec<_>>(),
        opts.json,
    );
    let target = if opts.zero_touch { Phase::AgentUp } else { Phase::Healthy };
    let mut watching = Watch {
        p: &prepared,
        layout: &layout,
        journal,
        target,
        timeout: opts.timeout,
        cards: (opts, &key),
    };
    watching.run(&mut boards, &mut progress, stop)?;
    for b in &mut boards {
        b.emulator_rss_mib = rss_mib(b.pid);
    }
    Ok(boards)
}
