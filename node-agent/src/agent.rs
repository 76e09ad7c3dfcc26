//! The agent's run loop and the handle other parts use to reach it.
//!
//! One thread owns the netlink socket and FRR and does every pass; others
//! (health API, signal handler, netlink listener) talk to it through a
//! channel:
//!
//! ```text
//! AgentHandle::apply(cfg) ──┐
//! SIGTERM/SIGINT ───────────┼──> Runner::run (passes, rollback, last-good)
//! netlink link events ──────┤        │
//! timer (--interval) ───────┘        └──> Arc<RwLock<Status>>
//! ```
//!
//! `AgentHandle::apply` checks the config, applies it (network and FRR),
//! and on any failure re-applies the previous config and returns the error.
//! A config that applied cleanly is saved as `STATE_DIR/last-good.toml`.
//! What FRR was loaded with, and the hand changes found in it, are kept in
//! `STATE_DIR/frr-loaded.json` (see `frr`).
//!
//! Wiring another part (health API, sFlow) to the agent:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use node_agent::agent::{self, Settings};
//! let settings = Settings {
//!     config_path: Some("/boot/firmware/pi-lab/node.toml".into()),
//!     frr: Some(node_agent::frr::Frr::new(None, None, "vtysh".into())),
//!     state_dir: "/var/lib/node-agent".into(),
//!     interval: std::time::Duration::from_secs(10),
//!     board: true,
//! };
//! let (handle, runner) = agent::start(settings)?;
//! let api = handle.clone();
//! std::thread::spawn(move || {
//!     // PUT /v1/config: `api.apply(cfg)` -> Ok(report) or Err(ApplyError)
//!     // GET /v1/health: `api.status().read()` -> config, reconcile, bgp, vxlan
//!     let _ = api.status();
//! });
//! runner.run()?; // until SIGTERM/SIGINT or handle.shutdown()
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab_spec::NodeConfig;
use lab_spec::frr_check::FrrCheck;
use lab_spec::frr_hand::FrrRunning;
use serde::Serialize;

use crate::frr::{COMMAND_TIMEOUT, Frr, FrrError, FrrQuery, FrrSync};
use crate::netlink::{Netlink, NetlinkError};
use crate::network::{self, Failure};
use crate::read_gate::{HostSlots, ReadGate, Turn};
use crate::sflow::SflowService;
use crate::state::{self, ConfigFileError};
use crate::status::{SharedStatus, Status, missing_ports, vni_states};
use crate::systemd;

/// How the agent is set up (from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    /// NodeConfig file to follow; re-read when it changes.
    pub config_path: Option<PathBuf>,
    /// `None`: leave FRR alone.
    pub frr: Option<Frr>,
    pub state_dir: PathBuf,
    pub interval: Duration,
    /// The agent owns the machine (a board): it keeps the hostname equal to
    /// the config's. Never in a virtual fleet, whose agents share a host.
    pub board: bool,
}

/// What one pass did (network and FRR).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    pub config_version: String,
    /// The changes the plan asked for, as `ip`/`bridge` commands.
    pub planned: Vec<String>,
    pub applied: Vec<String>,
    pub failed: Vec<Failure>,
    /// Conflicts left to a person (foreign devices in the way).
    pub problems: Vec<String>,
    pub frr: Option<FrrSync>,
    pub frr_error: Option<String>,
    /// Lines changed by hand in FRR, with their sections.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frr_hand_changes: Vec<lab_spec::frr_hand::HandChange>,
    /// sFlow settings not (fully) in force; the rest of the config is, so
    /// this alone neither fails an apply nor rolls it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sflow_error: Option<String>,
    /// Ports with netem (the lab file's, or set by hand) after the pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub impairments: Vec<lab_spec::health::PortImpairment>,
}

impl ReconcileReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty() && self.frr_error.is_none()
    }

    /// One line per problem, for logs and the health report.
    pub fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.failed.iter().map(|f| format!("{}: {}", f.change, f.error)).collect();
        out.extend(self.problems.iter().cloned());
        out.extend(self.frr_error.iter().map(|e| format!("frr: {e}")));
        out.extend(self.sflow_error.iter().cloned());
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("config refused, nothing changed: {0}")]
    Invalid(#[from] lab_spec::ConfigErrors),
    #[error("config failed to apply: {}; {rollback}", .report.errors().join("; "))]
    Failed { report: Box<ReconcileReport>, rollback: Rollback },
    #[error("cannot read the kernel's state: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("applied, but not saved as last good: {0}")]
    Persist(#[from] ConfigFileError),
    #[error("the agent is not running")]
    Stopped,
}

/// What became of the previous config after a new one failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rollback {
    /// It is in force again.
    #[error("rolled back to {0}")]
    Done(String),
    /// There was none: the agent keeps trying the new config.
    #[error("there was no previous config to go back to; the agent keeps trying this one")]
    NoPrevious,
    /// Going back failed too; the agent keeps trying the previous config.
    #[error("rolling back to {to} failed too: {}", .errors.join("; "))]
    Failed { to: String, errors: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot open netlink: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

type Reply = Sender<Result<ReconcileReport, ApplyError>>;

/// What a new config does to the lines changed by hand in FRR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandChanges {
    /// They stay, on top of the new config.
    #[default]
    Keep,
    /// The new config replaces them (`PUT /v1/config?force=true`).
    Drop,
}

#[derive(Debug)]
enum Event {
    Apply(Box<NodeConfig>, HandChanges, Reply),
    LinkChanged,
    Shutdown,
}

/// Cheap to clone; give one to every part that needs the agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    tx: Sender<Event>,
    status: SharedStatus,
    /// Reads FRR between passes, for the API.
    frr: Option<FrrQuery>,
    reads: Arc<RoutingReads>,
}

/// The one way BGP and IGP state is read from FRR, by the run loop and by
/// the API alike: one read at a time per node, holding one of the host's
/// read slots when the agent shares its host (a virtual fleet).
#[derive(Debug, Default)]
pub struct RoutingReads {
    gate: ReadGate,
    slots: Option<HostSlots>,
}

/// What a failed read leaves in the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// The state read before stands (a refresh between passes).
    KeepLast,
    /// Every configured neighbour is reported as not answering (a pass).
    NotAnswering,
}

impl RoutingReads {
    pub fn new(slots: Option<HostSlots>) -> Self {
        RoutingReads { gate: ReadGate::default(), slots: slots.filter(|s| !s.is_empty()) }
    }

    /// The most reads that ever ran at once on this node (1: the gate held).
    pub fn most_at_once(&self) -> usize {
        self.gate.most_at_once()
    }

    /// Read BGP and IGP state for `cfg` into `status`, unless another
    /// caller's read is running: then that one's result is used. `needed`:
    /// whether the status still needs a read once it is this caller's turn.
    fn read(
        &self,
        query: &FrrQuery,
        status: &SharedStatus,
        cfg: &NodeConfig,
        patience: Duration,
        on_failure: OnFailure,
        needed: impl Fn(&Status) -> bool,
    ) -> Turn {
        self.gate.read_or_wait(patience, || {
            if !status.read().is_ok_and(|s| needed(&s)) {
                return;
            }
            let _slot = match &self.slots {
                Some(slots) => match slots.take(patience) {
                    Some(slot) => Some(slot),
                    // The host is busy: the state read before stands.
                    None if on_failure == OnFailure::KeepLast => return,
                    None => None,
                },
                None => None,
            };
            let started = Instant::now();
            let (bgp, igp) = (query.neighbors(cfg), query.igp_adjacencies(cfg));
            let ospf6 = query.ospf6_adjacencies(cfg);
            let Ok(mut s) = status.write() else { return };
            // A pass for another config published meanwhile: its state stands.
            if s.config.as_ref() != Some(cfg) {
                return;
            }
            s.routing_at = Some(Instant::now());
            if on_failure == OnFailure::KeepLast {
                s.refreshed = Some((started, started.elapsed()));
            }
            match (bgp, on_failure) {
                (Ok(bgp), _) => s.bgp = bgp,
                (Err(e), OnFailure::KeepLast) => {
                    tracing::debug!(error = %e, "BGP state from FRR not refreshed")
                }
                (Err(e), OnFailure::NotAnswering) => {
                    tracing::debug!(error = %e, "no BGP state from FRR");
                    s.bgp = unanswered_neighbors(cfg);
                }
            }
            match (igp, &cfg.igp) {
                (Ok(igp), _) => s.set_igp(cfg, igp),
                (Err(e), Some(wanted)) if on_failure == OnFailure::NotAnswering => {
                    tracing::debug!(error = %e, "no IGP state from FRR");
                    s.set_igp(cfg, lab_spec::frr_state::unknown(wanted));
                }
                (Err(e), _) => tracing::debug!(error = %e, "IGP state from FRR not refreshed"),
            }
            match (ospf6, &cfg.igp) {
                (Ok(ospf6), _) => s.ospf6 = ospf6,
                (Err(e), Some(wanted)) if on_failure == OnFailure::NotAnswering => {
                    tracing::debug!(error = %e, "no OSPFv3 state from FRR");
                    s.ospf6 = lab_spec::frr_state::ospf6_adjacencies(wanted, &Default::default());
                }
                (Err(e), _) => tracing::debug!(error = %e, "OSPFv3 state from FRR not refreshed"),
            }
        })
    }
}

/// How long an API answer waits for FRR's state; then the last pass's
/// stands. Below `pi-lab status`'s default 5 s per node.
const API_FRR_TIMEOUT: Duration = Duration::from_secs(2);

impl AgentHandle {
    /// Check, apply and (on success) persist a new config. Blocks until the
    /// pass is done. On failure the previous config is applied again.
    pub fn apply(&self, cfg: NodeConfig) -> Result<ReconcileReport, ApplyError> {
        self.apply_with(cfg, HandChanges::Keep)
    }

    /// [`Self::apply`], saying what becomes of the hand changes in FRR.
    pub fn apply_with(
        &self,
        cfg: NodeConfig,
        hand: HandChanges,
    ) -> Result<ReconcileReport, ApplyError> {
        cfg.check()?;
        // The config in force, saved as last-good, and its last pass clean:
        // nothing to do, and no reason to wait behind a pass (slow on a Pi
        // while FRR answers).
        if let Ok(status) = self.status.read()
            && hand == HandChanges::Keep
            && status.config.as_ref() == Some(&cfg)
            && status.saved.as_ref() == Some(&cfg)
            && status.reconcile.ok
        {
            return Ok(ReconcileReport { config_version: version_of(&cfg), ..Default::default() });
        }
        let (reply, answer) = mpsc::channel();
        self.tx.send(Event::Apply(Box::new(cfg), hand, reply)).map_err(|_| ApplyError::Stopped)?;
        answer.recv().map_err(|_| ApplyError::Stopped)?
    }

    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    /// An answer now would show routing state older than
    /// [`crate::status::ROUTING_FRESH`]: call [`Self::refresh_routing`]
    /// first.
    pub fn routing_stale(&self) -> bool {
        self.frr.is_some() && self.status.read().is_ok_and(|s| s.routing_stale())
    }

    /// Read BGP and IGP state from FRR again, between the run loop's
    /// passes. When FRR does not answer in time, the last pass's state
    /// stands; when another caller reads right now, its read is used.
    pub fn refresh_routing(&self) {
        let Some(frr) = &self.frr else { return };
        let cfg = match self.status.read() {
            Ok(s) if s.routing_stale() => s.config.clone(),
            _ => None,
        };
        let Some(cfg) = cfg else { return };
        self.reads.read(
            frr,
            &self.status,
            &cfg,
            API_FRR_TIMEOUT,
            OnFailure::KeepLast,
            Status::routing_stale,
        );
    }

    /// This agent talks to FRR.
    pub fn runs_frr(&self) -> bool {
        self.frr.is_some()
    }

    /// The most routing reads that ever ran at once on this node.
    pub fn routing_reads_at_once(&self) -> usize {
        self.reads.most_at_once()
    }

    /// FRR's running config now and the hand changes in it (against the
    /// last pass's baseline); `None` when this node runs no FRR.
    pub fn frr_running(&self) -> Option<Result<FrrRunning, FrrError>> {
        let frr = self.frr.as_ref()?;
        let (node, baseline, known) = {
            let status = self.status.read().ok()?;
            let config = status.config.as_ref().filter(|c| c.runs_frr())?;
            (config.hostname.clone(), status.frr_baseline.clone(), status.frr_hand_changes.clone())
        };
        Some(frr.running_config().map(|running| {
            // Without a baseline yet, the changes the last pass knew.
            let hand = baseline.map_or(known, |b| lab_spec::frr_hand::diff(&b, &running));
            FrrRunning {
                node,
                hand_changes: hand.iter().map(ToString::to_string).collect(),
                hand_conf: lab_spec::frr_hand::render(&hand),
                running,
            }
        }))
    }

    /// FRR's own check (`vtysh --dryrun`) of a frr.conf text; `None` when
    /// this agent leaves FRR alone.
    pub fn frr_check(&self, text: &str) -> Option<Result<FrrCheck, FrrError>> {
        let frr = self.frr.as_ref()?;
        Some(frr.dry_run(text).map(|refused| FrrCheck { refused }))
    }

    /// Ask the run loop to stop after the current pass.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Event::Shutdown);
    }
}

/// The agent itself; `run` blocks until shutdown.
#[derive(Debug)]
pub struct Runner {
    settings: Settings,
    nl: Netlink,
    rx: Receiver<Event>,
    tx: Sender<Event>,
    status: SharedStatus,
    current: Option<NodeConfig>,
    config_mtime: Option<SystemTime>,
    sflow: SflowService,
    reads: Arc<RoutingReads>,
}

/// Create the agent. Hand out the handle, then call `runner.run()`.
pub fn start(settings: Settings) -> Result<(AgentHandle, Runner), AgentError> {
    start_sharing(settings, None)
}

/// [`start`], for an agent that shares its host with others: routing
/// reads hold one of `slots` (see [`HostSlots`]).
pub fn start_sharing(
    mut settings: Settings,
    slots: Option<HostSlots>,
) -> Result<(AgentHandle, Runner), AgentError> {
    if let Some(frr) = settings.frr.as_mut() {
        frr.state_dir.get_or_insert_with(|| settings.state_dir.clone());
    }
    let (tx, rx) = mpsc::channel();
    let status = Arc::new(RwLock::new(Status::default()));
    let frr = settings.frr.as_ref().map(|f| f.query().beside_the_loop(API_FRR_TIMEOUT));
    let reads = Arc::new(RoutingReads::new(slots));
    let handle = AgentHandle { tx: tx.clone(), status: status.clone(), frr, reads: reads.clone() };
    let runner = Runner {
        settings,
        reads,
        nl: Netlink::open()?,
        rx,
        tx,
        status,
        current: None,
        config_mtime: None,
        sflow: SflowService::default(),
    };
    Ok((handle, runner))
}

impl Runner {
    pub fn run(mut self) -> Result<(), AgentError> {
        self.listen_for_signals()?;
        self.listen_for_link_events();
        if let Some(cfg) = self.initial_config() {
            // The node is provisioned from now on: the API must accept the
            // lab's token even while this first pass is still running.
            if let Ok(mut status) = self.status.write() {
                status.config = Some(cfg.clone());
            }
            if let Err(e) = self.apply_new(cfg, HandChanges::Keep) {
                tracing::error!(error = %e, "initial config did not apply cleanly");
            }
        } else {
            tracing::info!("no config yet; waiting to be provisioned");
        }
        systemd::notify("READY=1");
        // systemd watches from READY on; the pings come from their own
        // thread while this loop shows signs of life.
        let _watchdog = systemd::Watchdog::start();
        let mut next_pass = Instant::now() + self.settings.interval;
        loop {
            systemd::alive();
            let wait = next_pass.saturating_duration_since(Instant::now());
            // Turn at least once a second, so the watchdog hears from us.
            let event = self.rx.recv_timeout(wait.min(Duration::from_secs(1)));
            match event {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Event::Apply(cfg, hand, reply)) => {
                    let _ = reply.send(self.apply_new(*cfg, hand));
                }
                Ok(Event::LinkChanged) => {
                    // Our own changes cause events too: let a burst settle.
                    self.drain_link_events(Duration::from_millis(300));
                    self.periodic_pass();
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= next_pass => {
                    self.follow_config_file();
                    self.periodic_pass();
                    next_pass = Instant::now() + self.settings.interval;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        systemd::notify("STOPPING=1");
        tracing::info!("stopping");
        // Takes the packet sampling rules away with it.
        self.sflow.stop();
        Ok(())
    }

    /// The config file, unless the last good config is newer (a `PUT
    /// /v1/config` after the card was written wins over the card's file).
    fn initial_config(&mut self) -> Option<NodeConfig> {
        let last_good = state::last_good_path(&self.settings.state_dir);
        let from_file = self.settings.config_path.clone().and_then(|path| {
            self.config_mtime = mtime(&path);
            state::load_config(&path)
                .map_err(|e| tracing::error!(error = %e, "config file refused"))
                .ok()
        });
        let saved = state::load_config(&last_good).ok();
        match (from_file, saved) {
            (Some(_), Some(s)) if mtime(&last_good) > self.config_mtime => {
                tracing::info!(path = %last_good.display(), "last good config is newer than the config file; using it");
                Some(s)
            }
            (Some(f), _) => Some(f),
            (None, s) => s,
        }
    }

    fn follow_config_file(&mut self) {
        let Some(path) = self.settings.config_path.clone() else { return };
        let now = mtime(&path);
        if now == self.config_mtime {
            return;
        }
        self.config_mtime = now;
        match state::load_config(&path) {
            Ok(cfg) if Some(&cfg) == self.current.as_ref() => {}
            Ok(cfg) => match self.apply_new(cfg, HandChanges::Keep) {
                Ok(_) => tracing::info!(path = %path.display(), "new config file applied"),
                Err(e) => tracing::error!(error = %e, "new config file not applied"),
            },
            Err(e) => {
                tracing::error!(error = %e, "config file refused; keeping the current config")
            }
        }
    }

    fn periodic_pass(&mut self) {
        let Some(cfg) = self.current.clone() else { return };
        match self.pass(&cfg) {
            Ok(report) if !report.ok() => {
                tracing::warn!(errors = ?report.errors(), "pass finished with errors")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pass failed"),
        }
    }

    /// Check, apply, roll back on failure, persist on success.
    fn apply_new(
        &mut self,
        cfg: NodeConfig,
        hand: HandChanges,
    ) -> Result<ReconcileReport, ApplyError> {
        cfg.check()?;
        if let (HandChanges::Drop, Some(frr)) = (hand, self.settings.frr.as_mut()) {
            frr.drop_hand_changes();
        }
        let report = self.pass(&cfg)?;
        if report.ok() {
            self.current = Some(cfg.clone());
            state::save_last_good(&self.settings.state_dir, &cfg)?;
            if let Ok(mut status) = self.status.write() {
                status.saved = Some(cfg);
            }
            return Ok(report);
        }
        let rollback = match self.current.clone() {
            Some(prev) => self.roll_back(&prev, &report),
            None => {
                // Nothing to go back to: keep trying the new one.
                self.current = Some(cfg);
                Rollback::NoPrevious
            }
        };
        Err(ApplyError::Failed { report: Box::new(report), rollback })
    }

    /// Apply `prev` again after `failed`; says whether that worked.
    fn roll_back(&mut self, prev: &NodeConfig, failed: &ReconcileReport) -> Rollback {
        tracing::warn!(errors = ?failed.errors(), "rolling back to the previous config");
        let to = version_of(prev);
        let errors = match self.pass(prev) {
            Ok(report) if report.ok() => return Rollback::Done(to),
            Ok(report) => report.errors(),
            Err(e) => vec![e.to_string()],
        };
        tracing::error!(?errors, "rollback pass failed");
        Rollback::Failed { to, errors }
    }

    /// One pass for `cfg`: network, FRR, sFlow; publishes the result.
    fn pass(&mut self, cfg: &NodeConfig) -> Result<ReconcileReport, NetlinkError> {
        let started = Instant::now();
        let mut report = network_pass(&mut self.nl, cfg, self.current.as_ref(), false)?;
        impair_pass(cfg, self.current.as_ref(), false, &mut report);
        // Before FRR: sampling needs only the interfaces, and a reload
        // that takes long on a busy host must not hold it back.
        report.sflow_error = self.sflow.sync(cfg);
        frr_pass(self.settings.frr.as_mut(), cfg, false, &mut report);
        if self.settings.board {
            // Not a reason to roll a config back: logged, tried next pass.
            match crate::hostname::reconcile(&cfg.hostname, std::path::Path::new("/etc")) {
                Ok(done) => report.applied.extend(done),
                Err(e) => tracing::warn!(error = %e, "hostname"),
            }
        }
        self.publish(cfg, &report, started.elapsed());
        Ok(report)
    }

    fn publish(&mut self, cfg: &NodeConfig, report: &ReconcileReport, took: Duration) {
        let observed = network::observe(&mut self.nl).ok();
        let vxlan = observed.as_ref().map(|o| vni_states(cfg, o)).unwrap_or_default();
        let missing = observed.as_ref().map(|o| missing_ports(cfg, o)).unwrap_or_default();
        // One line for `systemctl status node-agent`.
        let errors = report.errors();
        systemd::notify(&match errors.first() {
            None => format!("STATUS=config {}: converged", version_of(cfg)),
            Some(first) => format!(
                "STATUS=config {}: {} error(s), first: {first}",
                version_of(cfg),
                errors.len()
            ),
        });
        let Ok(mut status) = self.status.write() else { return };
        status.config = Some(cfg.clone());
        let r = &mut status.reconcile;
        r.config_version = Some(version_of(cfg));
        r.ok = report.ok() && report.sflow_error.is_none();
        r.missing_ports = missing;
        r.changes = u32::try_from(report.applied.len()).unwrap_or(u32::MAX);
        r.passes += 1;
        r.errors = errors;
        let (ok, errors) = (r.ok, r.errors.len() as u64);
        status.last_run = Some(Instant::now());
        let finished = SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
        let stats = &mut status.stats;
        stats.passes_total += 1;
        stats.errors_total += errors;
        stats.last_duration_seconds = Some(took.as_secs_f64());
        if ok {
            stats.last_success_unix = finished;
        }
        status.frr_hand_changes = report.frr_hand_changes.clone();
        status.impairments = report.impairments.clone();
        status.frr_baseline =
            self.settings.frr.as_ref().and_then(|f| f.baseline()).map(str::to_string);
        status.vxlan = vxlan;
        status.sflow = self.sflow.stats();
        drop(status);
        self.read_routing(cfg);
    }

    /// After each pass: BGP and IGP state (or, while another caller reads,
    /// theirs), so the status never shows a pass-old session.
    fn read_routing(&self, cfg: &NodeConfig) {
        let Some(frr) = &self.settings.frr else { return };
        if cfg.bgp.is_none() && cfg.igp.is_none() {
            if let Ok(mut s) = self.status.write() {
                (s.bgp, s.ospf, s.isis) = (Vec::new(), Vec::new(), Vec::new());
                s.ospf6 = Vec::new();
                s.routing_at = Some(Instant::now());
            }
            return;
        }
        let query = frr.query();
        let turn = self.reads.read(
            &query,
            &self.status,
            cfg,
            COMMAND_TIMEOUT,
            OnFailure::NotAnswering,
            |_| true,
        );
        if turn == Turn::GaveUp {
            tracing::debug!("routing state not read after this pass: another read still runs");
        }
    }

    fn listen_for_signals(&self) -> Result<(), AgentError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(AgentError::Signals)?;
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    let _ = tx.send(Event::Shutdown);
                }
            })
            .map_err(AgentError::Signals)?;
        Ok(())
    }

    /// Wake up when a link appears, disappears or changes (a VXLAN device
    /// deleted by hand is back within a second, not an interval).
    fn listen_for_link_events(&self) {
        const RTMGRP_LINK: u32 = 1;
        let socket =
            netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).and_then(|mut s| {
                s.bind(&netlink_sys::SocketAddr::new(0, RTMGRP_LINK))?;
                Ok(s)
            });
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no netlink events; relying on the interval");
                return;
            }
        };
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new().name("link-events".into()).spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while socket.recv(&mut &mut buf[..], 0).is_ok() {
                if tx.send(Event::LinkChanged).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no netlink event thread");
        }
    }

    fn drain_link_events(&self, settle: Duration) {
        let until = Instant::now() + settle;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Event::LinkChanged) => {}
                Ok(other) => {
                    // Not ours to drop: put it back for the main loop.
                    let _ = self.tx.send(other);
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// One pass without the run loop (`node-agent apply`).
pub fn pass(
    nl: &mut Netlink,
    frr: Option<&mut Frr>,
    cfg: &NodeConfig,
    dry_run: bool,
) -> Result<ReconcileReport, NetlinkError> {
    let mut report = network_pass(nl, cfg, None, dry_run)?;
    impair_pass(cfg, None, dry_run, &mut report);
    frr_pass(frr, cfg, dry_run, &mut report);
    Ok(report)
}

/// The lab file's impairments (netem), after the links they sit on.
/// A failure fails the pass like a netlink change would: a new config is
/// rolled back rather than left half in force.
fn impair_pass(
    cfg: &NodeConfig,
    previous: Option<&NodeConfig>,
    dry_run: bool,
    report: &mut ReconcileReport,
) {
    let done = crate::impair::reconcile(cfg, previous, dry_run, &mut report.planned);
    report.applied.extend(done.applied);
    report.failed.extend(done.failed.into_iter().map(|(change, error)| Failure {
        object: change.split_whitespace().nth(4).unwrap_or_default().to_string(),
        change,
        error,
    }));
    report.impairments = done.states;
}

/// Links, addresses, bridges and VXLAN devices.
fn network_pass(
    nl: &mut Netlink,
    cfg: &NodeConfig,
    previous: Option<&NodeConfig>,
    dry_run: bool,
) -> Result<ReconcileReport, NetlinkError> {
    let (plan, net) = network::reconcile(nl, cfg, previous, dry_run)?;
    Ok(ReconcileReport {
        config_version: version_of(cfg),
        planned: plan.changes.iter().map(ToString::to_string).collect(),
        applied: net.applied,
        failed: net.failed,
        problems: net.problems,
        ..Default::default()
    })
}

/// frr.conf written and reloaded when it changed; then the one look per
/// pass for hand changes.
fn frr_pass(frr: Option<&mut Frr>, cfg: &NodeConfig, dry_run: bool, report: &mut ReconcileReport) {
    let (Some(frr), true, false) = (frr, cfg.runs_frr(), dry_run) else { return };
    match frr.sync(cfg) {
        Ok(how) => {
            if how != FrrSync::Unchanged {
                tracing::info!(?how, path = %frr.conf_path().display(), "frr.conf");
            }
            report.frr = Some(how);
        }
        Err(e) => report.frr_error = Some(e.to_string()),
    }
    report.frr_hand_changes = frr.hand_changes();
}

/// The configured BGP neighbours, in state `FrrNotAnswering`.
fn unanswered_neighbors(cfg: &NodeConfig) -> Vec<lab_spec::health::BgpNeighborState> {
    let neighbors = cfg.bgp.iter().flat_map(|b| &b.neighbors);
    neighbors
        .map(|n| {
            let mut state = crate::frr::neighbor_state(n, None);
            state.state = "FrrNotAnswering".into();
            state
        })
        .collect()
}

fn version_of(cfg: &NodeConfig) -> String {
    if cfg.version.is_empty() { cfg.content_version() } else { cfg.version.clone() }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router with one BGP neighbour.
    fn router() -> NodeConfig {
        lab_spec::fixtures::bgp_router()
    }

    #[test]
    fn an_unanswering_frr_leaves_every_neighbour_down() {
        let cfg = router();
        let n = 1;
        let states = unanswered_neighbors(&cfg);
        assert_eq!(states.len(), n);
        assert!(states.iter().all(|s| !s.established && s.state == "FrrNotAnswering"));
    }

    #[test]
    fn routing_state_is_read_again_sooner_while_something_is_down() {
        let ago = |ms| Instant::now().checked_sub(Duration::from_millis(ms));
        let mut status = Status { config: Some(router()), ..Status::default() };
        assert!(status.routing_stale(), "never read");
        status.bgp = unanswered_neighbors(&router());
        status.routing_at = ago(0);
        assert!(!status.routing_stale());
        status.routing_at = ago(300);
        assert!(status.routing_stale(), "a session down and 300 ms old");
        status.bgp.iter_mut().for_each(|n| n.established = true);
        assert!(!status.routing_stale(), "all up and 300 ms old");
        status.routing_at = ago(2100);
        assert!(status.routing_stale(), "all up and 2.1 s old");
        // A slow refresh is not repeated soon, however often clients ask.
        status.refreshed = ago(2100).map(|at| (at, Duration::from_millis(500)));
        assert!(!status.routing_stale(), "refreshed in 0.5 s, 2.1 s ago");
        status.refreshed = ago(5100).map(|at| (at, Duration::from_millis(500)));
        assert!(status.routing_stale(), "refreshed in 0.5 s, 5.1 s ago");
        // Nothing routed: nothing to read.
        let mut host = router();
        host.bgp = None;
        status.config = Some(host);
        assert!(!status.routing_stale());
    }
}
