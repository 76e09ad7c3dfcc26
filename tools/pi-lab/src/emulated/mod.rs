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

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::node_config::InterfaceKind;
use serde::Serialize;

use self::console::Phase;
use crate::flash::identity::Identity;
use crate::fleet::journal::{Entry, Journal};
use crate::fleet::progress::Progress;
use crate::fleet::teardown::process_alive;
use crate::fleet::{ip, names};
use crate::lab_file::LabFile;
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
    Journal(#[from] crate::fleet::journal::JournalError),
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

/// Everything known before anything is made.
struct Prepared {
    lab: String,
    configs: Vec<NodeConfig>,
    switch: SwitchPlan,
    qemu: PathBuf,
    /// dnsmasq, for zero-touch boards.
    dhcp: Option<PathBuf>,
}

/// Refusals that need no change to the machine: image, qemu, memory, and
/// lab ports an emulated Pi 3B cannot have.
fn prepare(file: LabFile, opts: &UpOptions) -> Result<Prepared, EmulatedError> {
    if !opts.image.is_file() {
        let dir = opts.image.parent().map_or("out".into(), |d| d.display().to_string());
        return Err(EmulatedError::NoImage { path: opts.image.clone(), dir });
    }
    let qemu = qemu::find().ok_or(EmulatedError::Missing {
        program: qemu::PROGRAM,
        package: qemu::PACKAGE,
        why: "emulated boards run in it",
    })?;
    let dhcp = match opts.zero_touch {
        false => None,
        true => Some(dhcp::find().ok_or(EmulatedError::Missing {
            program: dhcp::PROGRAM,
            package: dhcp::PACKAGE,
            why: "zero-touch boards get their management address over DHCP",
        })?),
    };
    let lab = file.compile()?;
    let switch = switch::for_lab(&lab);
    let configs: Vec<NodeConfig> = lab.configs.values().map(board_config).collect();
    for config in &configs {
        one_nic(config)?;
    }
    fits_in_memory(configs.len(), available_memory())?;
    Ok(Prepared { lab: lab.lab.name, configs, switch, qemu, dhcp })
}

/// The config of an emulated board: the board's, with the emulated NIC's
/// MAC as its identity when the lab gives none, so `provision --discover`
/// can tell the boards apart as it tells real ones.
pub fn board_config(board: &NodeConfig) -> NodeConfig {
    if board.identity.mac.is_some() {
        return board.clone();
    }
    let mut config = board.clone();
    config.identity.mac = Some(qemu::mac_for(&config.lab, &config.hostname, None));
    config.with_version()
}

/// An emulated Pi 3B has one Ethernet port: lab links must be VLANs on it.
fn one_nic(config: &NodeConfig) -> Result<(), EmulatedError> {
    let port = switch::management_port(config);
    for iface in &config.interfaces {
        let parent = match &iface.kind {
            InterfaceKind::Vlan { parent, .. } => parent.as_str(),
            InterfaceKind::Port => iface.name.as_str(),
        };
        if parent == port && matches!(iface.kind, InterfaceKind::Vlan { .. }) {
            continue;
        }
        let message = if parent == port {
            format!(
                "{port} carries the management network untagged; a lab link on it must be a \
                 VLAN: write \"{}:{port}.N\" at both ends of the link (see `pi-lab lab switch`)",
                config.hostname
            )
        } else {
            format!(
                "an emulated Pi 3B has one Ethernet port, {port}, and no USB adapter for \
                 {parent}: carry the link as a VLAN on {port}, e.g. \"{}:{port}.101\" with the \
                 same VLAN id at the other end (see `pi-lab lab switch`)",
                config.hostname
            )
        };
        return Err(EmulatedError::OneNic {
            node: config.hostname.clone(),
            interface: iface.name.clone(),
            message,
        });
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes (0 when unreadable).
fn available_memory() -> u64 {
    proc_kib("/proc/meminfo", "MemAvailable:").map_or(0, |kib| kib * 1024)
}

/// A `KEY: N kB` line of a /proc file, in KiB.
fn proc_kib(path: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// Refuse before starting when `boards` boards would not fit in `available`.
fn fits_in_memory(boards: usize, available: u64) -> Result<(), EmulatedError> {
    let per = qemu::BOARD_MEMORY + EMULATOR_OVERHEAD;
    let need = per * boards as u64;
    if need <= available {
        return Ok(());
    }
    Err(EmulatedError::Memory {
        boards,
        need: need >> 20,
        per: per >> 20,
        have: available >> 20,
        fit: available / per,
    })
}

/// `sun_path` of a Unix socket address holds 108 bytes with its NUL.
const SOCKET_PATH_MAX: usize = 107;

/// The folder of a lab's emulated boards beside its journal; while it
/// exists the lab runs on emulated boards.
pub const BOARDS_DIR: &str = "boards";

/// Where one lab's boards live: `STATE/LAB/fleet/boards/`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(fleet_dir: &Path) -> Layout {
        Layout { dir: fleet_dir.join(BOARDS_DIR) }
    }

    pub fn boot(&self) -> PathBuf {
        self.dir.join("boot")
    }

    pub fn node(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }

    pub fn card(&self, node: &str) -> PathBuf {
        self.node(node).join("card.img")
    }

    pub fn console_log(&self, node: &str) -> PathBuf {
        self.node(node).join("console.log")
    }

    /// The console's socket: beside its log, unless that path is too long
    /// for a Unix socket (108 bytes); then in [`Layout::socket_dir`].
    pub fn console_socket(&self, node: &str) -> PathBuf {
        let near = self.node(node).join("console.sock");
        if near.as_os_str().len() < SOCKET_PATH_MAX {
            return near;
        }
        self.socket_dir().join(format!("{node}.sock"))
    }

    /// A short folder for console sockets, named after this lab's folder.
    pub fn socket_dir(&self) -> PathBuf {
        let key = lab_spec::alloc::fnv1a(&self.dir.to_string_lossy());
        PathBuf::from("/run/pi-lab").join(format!("consoles-{:08x}", key as u32))
    }

    pub fn qemu_log(&self, node: &str) -> PathBuf {
        self.node(node).join("qemu.log")
    }
}

/// Name of board `index`'s tap on the switch.
pub fn tap(lab: &str, index: usize) -> String {
    format!("{}-t{index}", names::tag(lab))
}

/// One board while the lab comes up.
#[derive(Debug, Clone, Serialize)]
pub struct BoardState {
    pub node: String,
    pub role: String,
    pub management: String,
    pub mac: String,
    pub pid: u32,
    pub phase: Phase,
    /// Seconds from the emulator's start to each phase reached.
    pub seconds: BTreeMap<Phase, f64>,
    /// What the agent last said is wrong, when not healthy.
    pub waiting: String,
    /// The emulator's resident memory, MiB.
    pub emulator_rss_mib: Option<u64>,
    /// Times the board was powered off and on again (see [`Cycle`]);
    /// phases count from the last power-on.
    pub power_cycles: u32,
    /// Why it was last powered on again.
    pub last_cycle: Option<Cycle>,
    #[serde(skip)]
    started: Option<Instant>,
    /// The console's length when last read, and when it last grew.
    #[serde(skip)]
    console_seen: (usize, Option<Instant>),
    /// How to power the board on (again).
    #[serde(skip)]
    spec: qemu::Board,
}

impl BoardState {
    /// A board just powered on as `pid`.
    fn new(config: &NodeConfig, pid: u32, spec: qemu::Board) -> BoardState {
        BoardState {
            node: config.hostname.clone(),
            role: config.role.to_string(),
            management: config.management.address.to_string(),
            mac: spec.mac.clone(),
            pid,
            phase: Phase::PoweredOn,
            seconds: BTreeMap::new(),
            waiting: String::new(),
            emulator_rss_mib: None,
            power_cycles: 0,
            last_cycle: None,
            started: Some(Instant::now()),
            console_seen: (0, None),
            spec,
        }
    }

    fn reach(&mut self, phase: Phase) {
        if phase <= self.phase {
            return;
        }
        let at = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        for p in Phase::ALL.into_iter().filter(|p| *p > self.phase && *p <= phase) {
            self.seconds.insert(p, at);
        }
        self.phase = phase;
    }
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

/// The lab's SSH key; its files are journaled when this `up` made them,
/// and the boards' host keys always (new cards, new host keys).
fn ssh_key(lab: &str, journal: &mut Journal) -> Result<crate::secrets::SshKey, EmulatedError> {
    let made = crate::secrets::SshKey::existing(lab).is_none();
    let key = crate::secrets::lab_ssh_key(lab)?;
    if made {
        // The folder first: `down` undoes newest first, files before it.
        if let Some(dir) = key.private.parent() {
            journal.record(&Entry::Path { path: dir.to_path_buf() })?;
        }
        for path in [&key.private, &key.public] {
            journal.record(&Entry::Path { path: path.clone() })?;
        }
    }
    journal.record(&Entry::Path { path: key.known_hosts.clone() })?;
    let _ = fs::remove_file(&key.known_hosts);
    Ok(key)
}

/// The bridge with the controller address, the switch's VLAN rules and a
/// tap per board.
fn switch_up(p: &Prepared, journal: &mut Journal) -> Result<(), EmulatedError> {
    let Some(first) = p.configs.first() else { return Ok(()) };
    let bridge = names::bridge(&p.lab);
    let controller = first.management.controller.to_string();
    let occupied = |what: String| {
        EmulatedError::Fleet(format!(
            "{what} already exists but lab {:?} is not up; remove it or rename the lab",
            p.lab
        ))
    };
    if ip::link_exists(None, &bridge) {
        return Err(occupied(format!("device {bridge}")));
    }
    if let Some(dev) = ip::holders_of(None, &controller)?.first() {
        return Err(occupied(format!("the controller address {controller} (on {dev})")));
    }
    journal.record(&Entry::RootLink { name: bridge.clone() })?;
    ip::bridge_add(&bridge)?;
    ip::addr_add(
        None,
        &bridge,
        &format!("{controller}/{}", first.management.address.prefix_len()),
    )?;
    ip::link_up(None, &bridge)?;
    let table = wiring::table(&names::tag(&p.lab));
    journal.record(&Entry::NftTable { family: "bridge".into(), name: table.clone() })?;
    let index_of = |board: &str| p.configs.iter().position(|c| c.hostname == board).unwrap_or(0);
    wiring::nft_load(&wiring::rules(&table, &p.switch, &|b| tap(&p.lab, index_of(b))))?;
    for index in 0..p.configs.len() {
        let tap = tap(&p.lab, index);
        journal.record(&Entry::RootLink { name: tap.clone() })?;
        ip::tap_add(&tap)?;
        ip::set_master(&tap, &bridge)?;
        // See the wiring module's docs for why the switch learns nothing.
        ip::no_learning(&tap)?;
        ip::link_up(None, &tap)?;
    }
    Ok(())
}

/// DHCP with a reservation per board on the switch (zero-touch only).
fn dhcp_up(p: &Prepared, layout: &Layout, journal: &mut Journal) -> Result<(), EmulatedError> {
    let Some(program) = &p.dhcp else { return Ok(()) };
    let leases = layout.dir.join("dhcp.leases");
    let args = dhcp::args(&names::bridge(&p.lab), &p.configs, &leases);
    let log = layout.dir.join("dhcp.log");
    fs::create_dir_all(&layout.dir)
        .map_err(|source| EmulatedError::Write { path: layout.dir.clone(), source })?;
    let pid = spawn_detached(program, &args, &log).map_err(|source| EmulatedError::Spawn {
        program: program.display().to_string(),
        node: "the management network".into(),
        source,
    })?;
    journal.record(&Entry::Process {
        netns: String::new(),
        pid,
        what: leases.display().to_string(),
    })?;
    Ok(())
}

/// One card file per node, written by flash's code path with the node's
/// identity and the lab's SSH key.
fn cards(
    configs: &[NodeConfig],
    opts: &UpOptions,
    layout: &Layout,
    key: &crate::secrets::SshKey,
) -> Result<(), EmulatedError> {
    let keys = fs::read_to_string(&key.public)
        .map_err(|source| EmulatedError::Write { path: key.public.clone(), source })?;
    let mut cards = Vec::new();
    for config in configs {
        let dir = layout.node(&config.hostname);
        fs::create_dir_all(&dir).map_err(|source| EmulatedError::Write { path: dir, source })?;
        let identity = Identity {
            config: config.clone(),
            authorized_keys: keys.clone(),
            zero_touch: opts.zero_touch,
        };
        cards.push((layout.card(&config.hostname), identity));
    }
    let report = crate::flash::write_card_files(&opts.image, &cards, opts.json)?;
    if let Some(failed) = report.targets.iter().find(|t| !t.ok) {
        return Err(EmulatedError::Card {
            card: failed.target.clone(),
            message: failed.error.clone().unwrap_or_else(|| failed.state.clone()),
        });
    }
    Ok(())
}

/// Kernel, initrd, device tree and command line, as the Pi's firmware
/// would take them from the card; the device tree less what qemu cannot
/// emulate well (see [`devicetree`]).
struct BootFiles {
    kernel: PathBuf,
    initrd: PathBuf,
    dtb: PathBuf,
    cmdline: String,
}

const DTB: &str = "bcm2837-rpi-3-b.dtb";

fn boot_files(layout: &Layout, configs: &[NodeConfig]) -> Result<BootFiles, EmulatedError> {
    let Some(first) = configs.first() else {
        return Err(EmulatedError::Fleet("the lab has no nodes".into()));
    };
    let card = layout.card(&first.hostname);
    let fail = |message: String| EmulatedError::Card { card: card.clone(), message };
    let file = fs::File::open(&card).map_err(|e| fail(e.to_string()))?;
    let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    let names = crate::flash::identity::root_files(&file, size).map_err(|e| fail(e.to_string()))?;
    let newest = |prefix: &str| -> Result<String, EmulatedError> {
        names.iter().filter(|n| n.starts_with(prefix)).max().cloned().ok_or_else(|| {
            fail(format!("no {prefix}* in the firmware partition: is this a pi-lab image?"))
        })
    };
    let dir = layout.boot();
    fs::create_dir_all(&dir)
        .map_err(|source| EmulatedError::Write { path: dir.clone(), source })?;
    let read = |name: &str| {
        crate::flash::identity::read(&file, size, name).map_err(|e| fail(format!("{name}: {e}")))
    };
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, data)
            .map_err(|source| EmulatedError::Write { path: path.clone(), source })?;
        Ok::<_, EmulatedError>(path)
    };
    let (kernel, initrd) = (newest("vmlinuz-")?, newest("initrd.img-")?);
    let kernel = write(&kernel, &read(&kernel)?)?;
    let initrd = write(&initrd, &read(&initrd)?)?;
    let tree = devicetree::for_emulator(&read(DTB)?).map_err(|e| fail(format!("{DTB}: {e}")))?;
    let dtb = write(DTB, &tree)?;
    let cmdline = String::from_utf8_lossy(&read("cmdline.txt")?).trim().to_string();
    Ok(BootFiles { kernel, initrd, dtb, cmdline })
}

/// Power every board on; each emulator is journaled with its pid.
fn start(
    p: &Prepared,
    layout: &Layout,
    boot: &BootFiles,
    journal: &mut Journal,
) -> Result<Vec<BoardState>, EmulatedError> {
    let sockets = layout.socket_dir();
    journal.record(&Entry::Tree { path: sockets.clone() })?;
    let mut boards = Vec::new();
    for (index, config) in p.configs.iter().enumerate() {
        let node = &config.hostname;
        let mac = qemu::mac_for(&p.lab, node, config.identity.mac.as_deref());
        debug_assert_eq!(config.identity.mac.as_deref(), Some(mac.as_str()));
        let socket = layout.console_socket(node);
        if let Some(dir) = socket.parent() {
            fs::create_dir_all(dir)
                .map_err(|source| EmulatedError::Write { path: dir.to_path_buf(), source })?;
        }
        let board = qemu::Board {
            card: layout.card(node),
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            dtb: boot.dtb.clone(),
            cmdline: boot.cmdline.clone(),
            mac,
            tap: tap(&p.lab, index),
            console_socket: socket,
            console_log: layout.console_log(node),
        };
        let pid = power_on(&p.qemu, &board, layout, node, journal)?;
        boards.push(BoardState::new(config, pid, board));
    }
    Ok(boards)
}

/// Start one board's emulator, journaled with its pid before anything else.
fn power_on(
    program: &Path,
    board: &qemu::Board,
    layout: &Layout,
    node: &str,
    journal: &mut Journal,
) -> Result<u32, EmulatedError> {
    let pid =
        spawn_detached(program, qemu::args(board), &layout.qemu_log(node)).map_err(|source| {
            EmulatedError::Spawn {
                program: program.display().to_string(),
                node: node.to_string(),
                source,
            }
        })?;
    journal.record(&Entry::Process {
        netns: String::new(),
        pid,
        what: layout.card(node).display().to_string(),
    })?;
    Ok(pid)
}

/// Start `program` in its own process group (Ctrl-C in the terminal of
/// `lab up` must not stop the boards or their DHCP server), its output in
/// `log`. Returns the pid; the journal, not a handle, keeps track of it.
fn spawn_detached<I, S>(program: &Path, args: I, log: &Path) -> std::io::Result<u32>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::os::unix::process::CommandExt;
    let out = fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// How often a board is powered on again, for whatever reasons.
const MAX_POWER_CYCLES: u32 = 3;

/// A board that has not answered at its management address this long
/// after power-on, and whose console has said nothing for [`QUIET_FOR`],
/// is powered on again: on a 2-core host boards answer after 50-150 s,
/// and one stuck for good would hold `lab up` to its whole timeout. A
/// slow board still prints as systemd starts its units.
const STUCK_AFTER: Duration = Duration::from_secs(600);
const QUIET_FOR: Duration = Duration::from_secs(120);

/// Why a board is powered on again; all but a lost NIC write its card
/// again first, since a board that went wrong may have written it wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// It booted without its NIC.
    NoNic,
    /// Its root file system read back corrupt.
    BadCard,
    /// Its kernel oopsed or panicked.
    Crashed,
    /// It did not answer within [`STUCK_AFTER`], its console quiet.
    Stuck,
}

impl Serialize for Cycle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Cycle {
    fn name(self) -> &'static str {
        match self {
            Cycle::NoNic => "no-nic",
            Cycle::BadCard => "bad-card",
            Cycle::Crashed => "crashed",
            Cycle::Stuck => "stuck",
        }
    }

    fn writes_card(self) -> bool {
        self != Cycle::NoNic
    }

    /// What went wrong, and why it likely did, for the error past the limit.
    fn what(self) -> (String, &'static str) {
        let (what, cause) = match self {
            Cycle::NoNic => (
                "came up without its network port",
                "qemu's emulated USB did not enumerate the board's NIC; a busy host makes this \
                 likelier",
            ),
            Cycle::BadCard => (
                "read its root file system back corrupt",
                "each time from a card written again; a busy host makes qemu's emulated SD card \
                 likelier to fail",
            ),
            Cycle::Crashed => (
                "crashed in its kernel (oops or panic)",
                "each time from a card written again; the console shows the kernel's report",
            ),
            Cycle::Stuck => {
                let what = format!(
                    "did not answer at its management address within {} s, its console quiet \
                     for {} s,",
                    STUCK_AFTER.as_secs(),
                    QUIET_FOR.as_secs()
                );
                let cause =
                    "each time from a card written again; the console shows how far it came";
                return (what, cause);
            }
        };
        (what.to_string(), cause)
    }
}

/// Power `board` off and on again, its old console kept beside the new;
/// `write_card` runs in between when `why` asks for it.
fn power_cycle(
    program: &Path,
    board: &mut BoardState,
    layout: &Layout,
    journal: &mut Journal,
    why: Cycle,
    write_card: impl FnOnce() -> Result<(), EmulatedError>,
) -> Result<(), EmulatedError> {
    let log = layout.console_log(&board.node);
    if board.power_cycles >= MAX_POWER_CYCLES {
        let (what, cause) = why.what();
        let (node, cycles) = (board.node.clone(), board.power_cycles + 1);
        return Err(EmulatedError::PowerCycles { node, what, cycles, cause, log });
    }
    crate::fleet::teardown::stop_processes(&[board.pid]);
    board.power_cycles += 1;
    board.last_cycle = Some(why);
    let kept = log.with_file_name(format!("console-{}-{}.log", why.name(), board.power_cycles));
    fs::rename(&log, &kept).map_err(|source| EmulatedError::Write { path: kept, source })?;
    if why.writes_card() {
        write_card()?;
    }
    board.pid = power_on(program, &board.spec, layout, &board.node, journal)?;
    board.phase = Phase::PoweredOn;
    board.seconds.clear();
    board.started = Some(Instant::now());
    board.console_seen = (0, None);
    Ok(())
}

/// What following the boards needs besides the boards themselves.
struct Watch<'a> {
    p: &'a Prepared,
    layout: &'a Layout,
    journal: &'a mut Journal,
    target: Phase,
    timeout: Duration,
    /// To write a board's card again.
    cards: (&'a UpOptions, &'a crate::secrets::SshKey),
}

impl Watch<'_> {
    /// Follow every board until all reach the target phase: console for the
    /// boot phases, the agent's `/v1/health` for the rest.
    fn run(
        &mut self,
        boards: &mut [BoardState],
        progress: &mut Progress,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), EmulatedError> {
        let client = crate::fleet_client::AgentClient::new(Duration::from_secs(3));
        let started = Instant::now();
        loop {
            if stop() {
                return Err(EmulatedError::Interrupted);
            }
            for ((board, config), line) in
                boards.iter_mut().zip(&self.p.configs).zip(&mut progress.lines)
            {
                // One read of the console per board and turn, until healthy.
                let log = if board.phase < Phase::Healthy {
                    let log = fs::read(self.layout.console_log(&board.node)).unwrap_or_default();
                    String::from_utf8_lossy(&log).into_owned()
                } else {
                    String::new()
                };
                // A board powered on again has a new console: look next turn.
                if !self.check(board, config, &log)? {
                    look(board, config, &log, &client);
                }
                for phase in Phase::ALL[1..].iter().filter(|ph| **ph <= board.phase) {
                    line.done(*phase as usize - 1);
                }
                line.note(&note(board));
            }
            if boards.iter().all(|b| b.phase >= self.target) {
                for line in &mut progress.lines {
                    line.finish();
                }
                return Ok(());
            }
            if started.elapsed() >= self.timeout {
                return Err(timed_out(boards, self.layout, self.timeout));
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    }

    /// The emulator still runs and the board, not yet healthy, is in no
    /// [`trouble`] (`log`: its console). Else it is powered on again and
    /// the answer is true.
    fn check(
        &mut self,
        board: &mut BoardState,
        config: &NodeConfig,
        log: &str,
    ) -> Result<bool, EmulatedError> {
        if !process_alive(board.pid) {
            let log = self.layout.qemu_log(&board.node);
            let tail =
                console::tail(&log, 10) + &console::tail(&self.layout.console_log(&board.node), 20);
            return Err(EmulatedError::Died { node: board.node.clone(), log, tail });
        }
        if board.phase >= Phase::Healthy {
            return Ok(false);
        }
        if log.len() != board.console_seen.0 {
            board.console_seen = (log.len(), Some(Instant::now()));
        }
        let up = board.started.map_or(Duration::ZERO, |s| s.elapsed());
        let quiet = board.console_seen.1.map_or(up, |t| t.elapsed());
        let Some(why) = trouble(board, log, up, quiet) else { return Ok(false) };
        tracing::warn!(node = %board.node, why = why.name(), "powering the board on again");
        let ((opts, key), layout) = (self.cards, self.layout);
        let write_card = || cards(std::slice::from_ref(config), opts, layout, key);
        power_cycle(&self.p.qemu, board, layout, self.journal, why, write_card)?;
        Ok(true)
    }
}

/// Why a booting board (`log`: its console, `quiet` since it last grew;
/// `up`: time since power-on) must be powered on again, if it must.
fn trouble(board: &BoardState, log: &str, up: Duration, quiet: Duration) -> Option<Cycle> {
    let stuck = board.phase < Phase::AgentUp && up >= STUCK_AFTER && quiet >= QUIET_FOR;
    if board.phase == Phase::Systemd && console::nic_lost(log) {
        Some(Cycle::NoNic)
    } else if console::card_corrupted(log) {
        Some(Cycle::BadCard)
    } else if console::kernel_crashed(log) {
        Some(Cycle::Crashed)
    } else if stuck {
        Some(Cycle::Stuck)
    } else {
        None
    }
}

/// The progress line's note: time since power-on, power cycles, and what
/// the agent still waits for.
fn note(board: &BoardState) -> String {
    let mut note = format!("{} s", board.started.map_or(0, |s| s.elapsed().as_secs()));
    if board.power_cycles > 0 {
        let why = board.last_cycle.map_or("", Cycle::name);
        note += &format!(", power-cycled {}x (last: {why})", board.power_cycles);
    }
    if board.phase >= Phase::Provisioned && !board.waiting.is_empty() {
        note += &format!(", {}", board.waiting);
    }
    note
}

/// One look at one board: its console, then its agent.
fn look(
    board: &mut BoardState,
    config: &NodeConfig,
    log: &str,
    client: &crate::fleet_client::AgentClient,
) {
    if board.phase < Phase::Systemd {
        board.reach(console::phase_of(log));
    }
    if board.phase < Phase::Systemd {
        return;
    }
    let Ok(report) = client.health(config.health.listen) else { return };
    board.reach(Phase::AgentUp);
    let r = &report.reconcile;
    if r.config_version.as_deref() == Some(config.version.as_str()) && r.passes > 0 {
        board.reach(Phase::Provisioned);
    }
    board.waiting = report.problems.join("; ");
    if board.phase >= Phase::Provisioned && report.healthy {
        board.reach(Phase::Healthy);
    }
}

/// The error for boards that did not make it in time: not booted (the
/// lab goes down) or booted but not healthy (it stays up for a look).
fn timed_out(boards: &[BoardState], layout: &Layout, timeout: Duration) -> EmulatedError {
    if let Some(b) = boards.iter().find(|b| b.phase < Phase::AgentUp) {
        let log = layout.console_log(&b.node);
        return EmulatedError::Boot {
            node: b.node.clone(),
            seconds: timeout.as_secs(),
            phase: b.phase.label(),
            tail: console::tail(&log, 25),
            log,
        };
    }
    let waiting: Vec<String> = boards
        .iter()
        .filter(|b| b.phase < Phase::Healthy)
        .map(|b| format!("{}: {} ({})", b.node, b.phase.label(), b.waiting))
        .collect();
    EmulatedError::NotHealthy { seconds: timeout.as_secs(), waiting: waiting.join("; ") }
}

impl EmulatedError {
    /// Whether the lab must be taken down (it cannot be of use), or stays
    /// up for a look.
    pub fn takes_lab_down(&self) -> bool {
        !matches!(self, EmulatedError::NotHealthy { .. })
    }
}

/// Before a failed `up` takes the lab down: keep every board's serial
/// console and emulator log in `STATE/LAB/failed-up/`, for a look after.
pub fn keep_logs(lab: &str, fleet_dir: &Path) {
    let layout = Layout::new(fleet_dir);
    let keep = crate::secrets::state_root().join(lab).join("failed-up");
    let Ok(entries) = fs::read_dir(&layout.dir) else { return };
    let _ = fs::remove_dir_all(&keep);
    for entry in entries.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        for (from, to) in [
            (layout.console_log(&node), keep.join(format!("{node}-console.log"))),
            (layout.qemu_log(&node), keep.join(format!("{node}-qemu.log"))),
        ] {
            if from.is_file() && fs::create_dir_all(&keep).is_ok() {
                let _ = fs::copy(&from, &to);
            }
        }
    }
    if keep.is_dir() {
        eprintln!("serial consoles of the boards kept in {}", keep.display());
    }
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> Option<u64> {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:").map(|kib| kib / 1024)
}

/// The state table after `lab up --boards emulated`.
pub fn print_state(lab: &str, boards: &[BoardState], seconds: f64, zero_touch: bool, json: bool) {
    if json {
        let doc = serde_json::json!({
            "lab": lab,
            "boards": "emulated",
            "zero_touch": zero_touch,
            "healthy": !zero_touch,
            "seconds": seconds,
            "nodes": boards,
        });
        println!("{doc:#}");
        return;
    }
    let state = if zero_touch { "waiting to be provisioned" } else { "healthy" };
    println!(
        "lab {lab} is up on {} emulated Pi 3B boards, {state}, in {seconds:.0} s\n",
        boards.len()
    );
    let at =
        |b: &BoardState, p: Phase| b.seconds.get(&p).map_or("-".into(), |s| format!("{s:.0}s"));
    let rows: Vec<Vec<String>> = boards
        .iter()
        .map(|b| {
            vec![
                b.node.clone(),
                b.role.clone(),
                b.management.clone(),
                b.mac.clone(),
                at(b, Phase::Kernel),
                at(b, Phase::Systemd),
                at(b, Phase::AgentUp),
                at(b, Phase::Healthy),
                b.emulator_rss_mib.map_or("-".into(), |m| format!("{m} MiB")),
            ]
        })
        .collect();
    let header =
        ["NODE", "ROLE", "MGMT", "MAC", "KERNEL", "SYSTEMD", "AGENT", "HEALTHY", "EMULATOR RSS"];
    print!("{}", crate::table::Table::new(header).with_rows(rows));
    if zero_touch {
        println!("\nzero-touch cards: find the boards and give them their configs with");
        println!("           pi-lab provision FILE --discover 60");
    }
    println!("\nconsole:   sudo pi-lab lab console FILE NODE        (Ctrl-] leaves)");
    println!("check:     pi-lab status FILE   pi-lab validate FILE");
    println!("tear down: sudo pi-lab lab down --name {lab}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, ifaces: &[(&str, Option<(&str, u16)>)]) -> NodeConfig {
        let mut c = crate::fleet_client::tests::node(name, "leaf", 65001, 11, None);
        c.management.interface = None;
        c.interfaces = ifaces
            .iter()
            .map(|(n, vlan)| lab_spec::node_config::Interface {
                name: n.to_string(),
                kind: match vlan {
                    Some((parent, id)) => {
                        InterfaceKind::Vlan { parent: parent.to_string(), vlan_id: *id }
                    }
                    None => InterfaceKind::Port,
                },
                mtu: None,
                address: None,
                description: String::new(),
                tc: None,
            })
            .collect();
        c
    }

    #[test]
    fn an_emulated_board_takes_vlans_on_eth0_and_nothing_else() {
        assert!(one_nic(&config("r1", &[("eth0.101", Some(("eth0", 101)))])).is_ok());
        let usb = one_nic(&config("r1", &[("eth1", None)])).unwrap_err().to_string();
        assert!(usb.starts_with("r1:eth1: an emulated Pi 3B has one Ethernet port, eth0"), "{usb}");
        assert!(usb.contains("r1:eth0.101") && usb.contains("lab switch"), "{usb}");
        let bare = one_nic(&config("r1", &[("eth0", None)])).unwrap_err().to_string();
        assert!(bare.contains("management network untagged"), "{bare}");
        let other = one_nic(&config("r1", &[("eth1.5", Some(("eth1", 5)))])).unwrap_err();
        assert!(other.to_string().contains("no USB adapter for eth1"), "{other}");
    }

    #[test]
    fn console_sockets_fit_a_unix_socket_address() {
        let short = Layout::new(Path::new("/s/lab/fleet"));
        assert_eq!(short.console_socket("r1"), Path::new("/s/lab/fleet/boards/r1/console.sock"));
        let long = Layout::new(&Path::new("/").join("x".repeat(120)));
        let socket = long.console_socket("r1");
        assert!(socket.as_os_str().len() < 108 && socket.starts_with("/run/pi-lab/"), "{socket:?}");
        assert_ne!(long.socket_dir(), short.socket_dir());
    }

    #[test]
    fn memory_is_checked_before_anything_starts() {
        let gib = 1u64 << 30;
        assert!(fits_in_memory(2, 4 * gib).is_ok());
        let err = fits_in_memory(8, 5 * gib).unwrap_err().to_string();
        assert!(err.contains("8 emulated boards need about 11264 MiB"), "{err}");
        assert!(err.contains("3 would fit"), "{err}");
    }

    /// A board description for tests (nothing is started from it).
    fn spec(dir: &Path) -> qemu::Board {
        let layout = Layout::new(dir);
        qemu::Board {
            card: layout.card("r1"),
            kernel: "k".into(),
            initrd: "i".into(),
            dtb: "d".into(),
            cmdline: String::new(),
            mac: String::new(),
            tap: String::new(),
            console_socket: dir.join("s"),
            console_log: layout.console_log("r1"),
        }
    }

    #[test]
    fn phases_are_timed_once_and_in_order() {
        let mut b = BoardState::new(&config("r1", &[]), 0, spec(Path::new("/nonexistent")));
        b.reach(Phase::Systemd);
        b.reach(Phase::Kernel);
        b.reach(Phase::Systemd);
        let phases: Vec<Phase> = b.seconds.keys().copied().collect();
        assert_eq!(phases, vec![Phase::Kernel, Phase::Systemd]);
    }

    /// A board r1 in a fresh directory, its "emulator" a real process to
    /// stop (pid 0 would be this test's own process group).
    fn cycling(name: &str) -> (PathBuf, Layout, Journal, std::process::Child, BoardState) {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let layout = Layout::new(&dir);
        fs::create_dir_all(layout.node("r1")).unwrap();
        let journal = Journal::create(&dir.join("journal.jsonl")).unwrap();
        let old = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let b = BoardState::new(&config("r1", &[]), old.id(), spec(&dir));
        (dir, layout, journal, old, b)
    }

    #[test]
    fn a_board_whose_card_reads_back_corrupt_gets_its_card_written_again() {
        let (dir, layout, mut journal, mut old, mut b) = cycling("pi-lab-bad-card");
        let log = "[  133.683312] EXT4-fs error (device mmcblk0p2): ext4_lookup:1821: inode #4936";
        assert!(console::card_corrupted(log));
        assert!(!console::card_corrupted("EXT4-fs (mmcblk0p2): mounted filesystem"));
        let program = Path::new("/bin/true");
        let mut written = 0;
        for cycle in 1..=MAX_POWER_CYCLES {
            fs::write(layout.console_log("r1"), log).unwrap();
            let again = || {
                written += 1;
                Ok(())
            };
            power_cycle(program, &mut b, &layout, &mut journal, Cycle::BadCard, again).unwrap();
            let kept = layout.node("r1").join(format!("console-bad-card-{cycle}.log"));
            assert_eq!(fs::read_to_string(kept).unwrap(), log);
        }
        assert_eq!(written, MAX_POWER_CYCLES, "the card was not written before each power-on");
        old.wait().unwrap();
        let err = power_cycle(program, &mut b, &layout, &mut journal, Cycle::BadCard, || Ok(()))
            .unwrap_err();
        assert!(
            err.to_string().contains("r1 read its root file system back corrupt 4 times"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_board_without_its_nic_is_powered_on_again_a_few_times_then_refused() {
        let (dir, layout, mut journal, mut old, mut b) = cycling("pi-lab-power-cycle");
        b.reach(Phase::Systemd);
        // `true` stands in for qemu: only the bookkeeping is under test.
        let program = Path::new("/bin/true");
        for cycle in 1..=MAX_POWER_CYCLES {
            fs::write(layout.console_log("r1"), format!("boot {cycle}")).unwrap();
            let card = || panic!("a lost NIC needs no new card");
            power_cycle(program, &mut b, &layout, &mut journal, Cycle::NoNic, card).unwrap();
            assert_eq!((b.power_cycles, b.phase), (cycle, Phase::PoweredOn));
            assert!(b.seconds.is_empty());
            let kept = layout.node("r1").join(format!("console-no-nic-{cycle}.log"));
            assert_eq!(fs::read_to_string(kept).unwrap(), format!("boot {cycle}"));
        }
        assert!(!process_alive(old.id()), "the old emulator was not stopped");
        old.wait().unwrap();
        let journaled = crate::fleet::journal::read(&dir.join("journal.jsonl")).unwrap();
        assert_eq!(journaled.len(), MAX_POWER_CYCLES as usize, "{journaled:?}");
        let err = power_cycle(program, &mut b, &layout, &mut journal, Cycle::NoNic, || Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("r1 came up without its network port 4 times"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_board_that_crashed_or_is_stuck_before_it_answers_is_powered_on_again() {
        let mut b = BoardState::new(&config("r1", &[]), 0, spec(Path::new("/nonexistent")));
        b.reach(Phase::Systemd);
        let oops = "[  131.11] Internal error: Oops: 0000000096000005 [#1] SMP\n\
                    [  131.12] Call trace:\n[  131.12]  bcm2835_finish_data+0x3c/0xd8 [bcm2835]";
        let (booting, long) = (Duration::from_secs(30), STUCK_AFTER + Duration::from_secs(1));
        let fine = "[   10.04] systemd[1]: systemd 257 running";
        assert_eq!(trouble(&b, oops, booting, booting), Some(Cycle::Crashed));
        assert_eq!(trouble(&b, fine, booting, booting), None);
        assert_eq!(trouble(&b, fine, long, QUIET_FOR), Some(Cycle::Stuck));
        // Slow, but its console still grows: not stuck.
        assert_eq!(trouble(&b, fine, long, QUIET_FOR / 2), None);
        // Once the agent answers, what remains is the agent's to report.
        b.reach(Phase::AgentUp);
        assert_eq!(trouble(&b, fine, long, long), None);
        assert!(Cycle::Stuck.writes_card() && Cycle::Crashed.writes_card());
        b.power_cycles = 1;
        b.last_cycle = Some(Cycle::Crashed);
        assert!(note(&b).contains("power-cycled 1x (last: crashed)"), "{}", note(&b));
        assert_eq!(serde_json::to_value(&b).unwrap()["last_cycle"], "crashed");
    }
}
