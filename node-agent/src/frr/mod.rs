//! FRR: keep `frr.conf` equal to the rendered config, reload FRR when it
//! changed, and read BGP neighbour and IGP adjacency state back.
//!
//! Daemons: the config says which routing daemons run (bgpd, ospfd,
//! isisd). The agent switches them on and off in the instance's `daemons`
//! file (Debian's `/etc/frr/daemons`, or `/etc/frr/NAME/daemons`) and, when
//! that changed while FRR runs, restarts FRR (`systemctl restart frr`, or
//! `frrinit.sh restart NAME` for a pathspace) before loading `frr.conf`.
//! Without a `daemons` file the agent leaves the daemons alone.
//!
//! When: the file is rewritten (atomically) only when its text differs;
//! FRR is reloaded when the text differs from what was last loaded or when
//! a daemon's pid changed (a restarted daemon has an empty running config).
//! What was loaded is kept in the state directory ([`kept`]): an agent
//! that restarts while FRR runs what it last loaded reloads nothing. If no
//! daemon runs, the file is written and FRR reads it when it starts
//! (`vtysh -b`, as frrinit does).
//!
//! Hand changes: what a person types into vtysh is found once per pass by
//! comparing `show running-config` with the baseline (FRR's running config
//! right after the generated config alone was loaded; see
//! [`lab_spec::frr_hand`]). They are kept: in the state directory, in
//! `frr.conf` (generated text plus hand changes, so FRR boots with them),
//! and across a new generated config, which is loaded alone first (for its
//! baseline) and then with the hand changes on top. Only
//! [`Frr::drop_hand_changes`] (`PUT /v1/config?force=true`) lets them go.
//!
//! Reload: `frr-reload.py --reload` (package `frr-pythontools`) computes the
//! difference to the running config and applies only that, so established
//! sessions stay up. When the script is missing the agent falls back to
//! `vtysh -f frr.conf`, which *adds* the file's commands to the running
//! config. Its limits: nothing is ever removed (a neighbour deleted from the
//! lab stays configured until FRR restarts), and commands that fail are
//! only logged. Changed values (timers, descriptions, remote-as) are applied,
//! and no session is reset that the commands themselves do not reset.
//!
//! # Running FRR per network namespace (virtual fleet)
//!
//! Checked with FRR 8.4 (Debian 12). With a pathspace `NAME` the daemons use
//! `/etc/frr/NAME/` for config and `/var/run/frr/NAME/` for sockets and pid
//! files (created by the daemons themselves):
//!
//! ```text
//! mkdir -p /etc/frr/NAME && chown frr:frr /etc/frr/NAME
//! printf 'service integrated-vtysh-config\n' > /etc/frr/NAME/vtysh.conf
//! ip netns exec NS /usr/lib/frr/zebra -d -N NAME -F datacenter
//! ip netns exec NS /usr/lib/frr/bgpd  -d -N NAME -F datacenter
//! ip netns exec NS /usr/lib/frr/staticd -d -N NAME -F datacenter   # optional
//! vtysh -N NAME -b            # load /etc/frr/NAME/frr.conf (node-agent's
//!                             # first pass also does it via frr-reload)
//! vtysh -N NAME -c 'show bgp summary'
//! kill $(cat /var/run/frr/NAME/bgpd.pid /var/run/frr/NAME/zebra.pid)
//! ```
//!
//! The daemons do not read `frr.conf` themselves (they look for
//! `bgpd.conf`); integrated config is pushed by vtysh. `-F datacenter` sets
//! the defaults profile (the `frr defaults` line only takes effect at
//! start). vtysh reaches the daemons through the sockets in the pathspace,
//! so it need not run inside the namespace. [`daemon_command`] builds the
//! daemon command lines.

pub mod kept;
pub mod vty;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::frr_check::Refused;
use lab_spec::frr_hand::{self, HandChange};
use lab_spec::health::{BgpNeighborState, IgpAdjacencyState};
use serde_json::Value;

use kept::Kept;

/// The FRR daemons whose restarts the agent notices (their pid files).
pub const DAEMONS: [&str; 5] = ["zebra", "bgpd", "ospfd", "isisd", "ospf6d"];

/// On a board, the mark that lets frr.service start (see `Frr::want_unit`).
pub const FRR_WANTED: &str = "/run/pi-lab/frr-wanted";

/// Where Debian installs the daemons and frr-reload.py.
pub const FRR_LIBDIR: &str = "/usr/lib/frr";

/// Command line to start one FRR daemon for pathspace `name` inside network
/// namespace `netns` (`ip netns exec NETNS /usr/lib/frr/DAEMON -d -N NAME
/// -F datacenter`). Run it, then `vtysh -N NAME -b` or node-agent.
pub fn daemon_command(netns: &str, pathspace: &str, daemon: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).arg(Path::new(FRR_LIBDIR).join(daemon)).args([
        "-d",
        "-N",
        pathspace,
        "-F",
        "datacenter",
    ]);
    cmd
}

#[derive(Debug, thiserror::Error)]
pub enum FrrError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} failed ({status}): {output}")]
    Failed { program: String, status: String, output: String },
    #[error("cannot parse vtysh JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Kept(#[from] kept::KeptError),
    #[error(transparent)]
    Vty(#[from] vty::VtyError),
}

/// How often the agent talked to FRR, and how, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrrCalls {
    /// vtysh runs (running config, dry runs, `vtysh -f`).
    pub vtysh: u64,
    /// frr-reload.py runs (each runs vtysh a few times itself).
    pub reloads: u64,
    /// Questions asked on a daemon's vty socket.
    pub vty: u64,
}

static VTYSH_RUNS: AtomicU64 = AtomicU64::new(0);
static RELOAD_RUNS: AtomicU64 = AtomicU64::new(0);
static VTY_QUESTIONS: AtomicU64 = AtomicU64::new(0);

/// The counts so far (process-wide, like the agent itself).
pub fn calls() -> FrrCalls {
    FrrCalls {
        vtysh: VTYSH_RUNS.load(Ordering::Relaxed),
        reloads: RELOAD_RUNS.load(Ordering::Relaxed),
        vty: VTY_QUESTIONS.load(Ordering::Relaxed),
    }
}

/// How frr.conf reached FRR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrrSync {
    /// Same text as last time: nothing done.
    Unchanged,
    /// Applied with frr-reload.py (difference only).
    Reloaded,
    /// Applied with `vtysh -f` (additive; see the module docs).
    Applied,
    /// Written; FRR is not running and reads it when it starts.
    WrittenOnly,
}

/// One FRR instance: its config directory, pathspace and tools.
#[derive(Debug, Clone)]
pub struct Frr {
    pub pathspace: Option<String>,
    pub dir: PathBuf,
    pub vtysh: PathBuf,
    pub reload_script: PathBuf,
    /// Generated text last handed to FRR successfully, and the daemons'
    /// pids then; after a daemon restart the next sync reloads.
    loaded: Option<(String, String)>,
    /// Where what was loaded is kept across agent restarts; `None`: in
    /// memory only (`node-agent apply`).
    pub state_dir: Option<PathBuf>,
    /// What was loaded, with its baseline and hand changes; read from
    /// `state_dir` at the first sync.
    kept: Option<Kept>,
    /// The next sync lets the hand changes go.
    drop_hand: bool,
    /// The daemons' running configs at the last look for hand changes
    /// ([`FrrQuery::fingerprint`]) and what vtysh found then: while they
    /// stay the same, so do the hand changes.
    looked: Option<(String, Vec<HandChange>)>,
    /// Start FRR's systemd unit when a config needs routing and FRR is
    /// down (a board: FRR is not part of its boot, so neither sshd nor the
    /// agent waits for it, and hosts never run it).
    pub start_on_demand: bool,
}

impl Frr {
    pub fn new(pathspace: Option<String>, dir: Option<PathBuf>, vtysh: PathBuf) -> Self {
        let dir = dir.unwrap_or_else(|| match &pathspace {
            Some(name) => Path::new("/etc/frr").join(name),
            None => PathBuf::from("/etc/frr"),
        });
        Frr {
            pathspace,
            dir,
            vtysh,
            reload_script: Path::new(FRR_LIBDIR).join("frr-reload.py"),
            loaded: None,
            state_dir: None,
            kept: None,
            drop_hand: false,
            looked: None,
            start_on_demand: false,
        }
    }

    /// On a board: start FRR's unit when it is down and `cfg` routes. The
    /// start is not waited for (FRR takes a minute to come up on a Pi);
    /// the config written meanwhile is what FRR reads when it starts.
    fn start_if_down(&self, cfg: &NodeConfig) -> Result<(), FrrError> {
        if !self.start_on_demand || self.pathspace.is_some() || self.running() {
            return Ok(());
        }
        if cfg.frr_daemons().is_empty() {
            return Ok(());
        }
        tracing::info!("FRR is not running; starting frr.service");
        Self::want_unit()?;
        let mut cmd = Command::new("systemctl");
        cmd.args(["start", "--no-block", "frr.service"]);
        run(cmd).map(drop)
    }

    /// The image keeps frr.service out of the boot with a condition on this
    /// file (overlays/base/etc/systemd/system/frr.service.d/pi-lab.conf);
    /// it is made before the agent starts or restarts the unit.
    fn want_unit() -> Result<(), FrrError> {
        let path = Path::new(FRR_WANTED);
        if path.exists() {
            return Ok(());
        }
        let write = |source| FrrError::Write { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(write)?;
        }
        fs::write(path, b"").map_err(write)
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("frr.conf")
    }

    /// `/var/run/frr[/NAME]`: where the daemons' vty sockets are.
    fn run_dir(&self) -> PathBuf {
        match &self.pathspace {
            Some(name) => Path::new("/var/run/frr").join(name),
            None => PathBuf::from("/var/run/frr"),
        }
    }

    /// Changes when a daemon restarts (and lost its running config unless
    /// something ran `vtysh -b`).
    fn daemon_pids(&self) -> String {
        DAEMONS
            .iter()
            .map(|d| {
                fs::read_to_string(self.run_dir().join(format!("{d}.pid"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn running(&self) -> bool {
        DAEMONS.iter().any(|d| self.run_dir().join(format!("{d}.vty")).exists())
    }

    /// Bring FRR to `lab_spec::frr::render(cfg)`, with the daemons it
    /// needs running.
    pub fn sync(&mut self, cfg: &NodeConfig) -> Result<FrrSync, FrrError> {
        self.sync_daemons(cfg)?;
        let synced = self.sync_text(&lab_spec::frr::render(cfg))?;
        self.start_if_down(cfg)?;
        Ok(synced)
    }

    /// Switch the routing daemons `cfg` needs on (and the others off) in
    /// the `daemons` file; restart FRR if it runs and the file changed.
    fn sync_daemons(&mut self, cfg: &NodeConfig) -> Result<(), FrrError> {
        let path = self.dir.join("daemons");
        let Ok(existing) = fs::read_to_string(&path) else { return Ok(()) };
        let wanted = lab_spec::frr::daemons(&existing, cfg);
        if wanted == existing {
            return Ok(());
        }
        write_atomic(&path, wanted.as_bytes())?;
        if self.running() {
            tracing::info!(daemons = ?cfg.frr_daemons(), "FRR daemons changed; restarting FRR");
            self.loaded = None;
            if self.pathspace.is_none() && self.start_on_demand {
                Self::want_unit()?;
            }
            run(self.restart_command())?;
        }
        Ok(())
    }

    /// How FRR is restarted: its systemd unit on a board, `frrinit.sh` for
    /// a pathspace (which has no unit).
    fn restart_command(&self) -> Command {
        match &self.pathspace {
            Some(name) => {
                let mut cmd = Command::new(Path::new(FRR_LIBDIR).join("frrinit.sh"));
                cmd.args(["restart", name]);
                cmd
            }
            None => {
                let mut cmd = Command::new("systemctl");
                cmd.args(["restart", "frr.service"]);
                cmd
            }
        }
    }

    /// Bring FRR to the generated `text`, with the hand changes kept on
    /// top (unless [`Self::drop_hand_changes`] was called).
    pub fn sync_text(&mut self, text: &str) -> Result<FrrSync, FrrError> {
        let pids = self.daemon_pids();
        let drop = std::mem::take(&mut self.drop_hand);
        if !drop && self.loaded.as_ref().is_some_and(|(t, p)| t == text && *p == pids) {
            return Ok(FrrSync::Unchanged);
        }
        self.ensure_vtysh_conf()?;
        let kept = self.kept().clone();
        let same = kept.generated == text && kept.baseline.is_some();
        if !self.running() {
            let hand = if drop { Vec::new() } else { kept.hand };
            let baseline = kept.baseline.filter(|_| kept.generated == text);
            let effective = frr_hand::apply(text, &hand);
            self.keep(Kept { generated: text.to_string(), baseline, hand, pids: kept.pids })?;
            self.write_conf(&effective)?;
            return Ok(FrrSync::WrittenOnly);
        }
        if !drop && same && kept.pids == pids {
            // FRR runs what was loaded before this agent started.
            self.write_conf(&frr_hand::apply(text, &kept.hand))?;
            self.loaded = Some((text.to_string(), pids));
            return Ok(FrrSync::Unchanged);
        }
        let hand = if drop { Vec::new() } else { self.current_hand(&kept, &pids) };
        // A failed load may have applied half of the text: whatever comes
        // next (a rollback to the previous text, too) must load in full.
        self.loaded = None;
        self.looked = None;
        let how = self.load_new(text, hand, &pids)?;
        self.loaded = Some((text.to_string(), pids));
        Ok(how)
    }

    /// The generated config loaded alone, to see it in FRR's words (the
    /// baseline), then with the hand changes on top. The hand changes go
    /// for a moment; after a new config or a restart of FRR, which is when
    /// this runs, that is no loss.
    fn load_new(
        &mut self,
        text: &str,
        hand: Vec<HandChange>,
        pids: &str,
    ) -> Result<FrrSync, FrrError> {
        let generated = text.to_string();
        // Kept first: an agent stopped halfway still has the hand changes.
        self.keep(Kept {
            generated: generated.clone(),
            baseline: None,
            hand: hand.clone(),
            pids: pids.to_string(),
        })?;
        let how = self.load(text)?;
        let baseline = self.settled_baseline(text, &hand);
        // What the new config says itself (the lab file took the lines
        // over) is no hand change any more.
        let carried =
            |b: &str, c: &HandChange| frr_hand::carried(b, c) && frr_hand::carried(text, c);
        let hand: Vec<HandChange> = match &baseline {
            Some(b) => hand.into_iter().filter(|c| !carried(b, c)).collect(),
            None => hand,
        };
        if !hand.is_empty() {
            tracing::info!(lines = hand.len(), "hand changes put back on top of the new config");
            self.load(&frr_hand::apply(text, &hand))?;
        }
        self.keep(Kept { generated, baseline, hand, pids: pids.to_string() })?;
        Ok(how)
    }

    /// FRR's running config right after `text` alone was loaded. A reload
    /// can return before FRR let go of every line it removes (an emulated
    /// Pi still listed a static route typed by hand): such lines are
    /// waited out for a few seconds, then taken out of the baseline, which
    /// would otherwise hide them from every later look, and lose them.
    fn settled_baseline(&self, text: &str, hand: &[HandChange]) -> Option<String> {
        const TRIES: u32 = 6;
        for attempt in 1..=TRIES {
            let running = self
                .query()
                .running_config()
                .inspect_err(
                    |e| tracing::warn!(error = %e, "no baseline of the generated FRR config"),
                )
                .ok()?;
            let lingering = frr_hand::lingering(&running, text, hand);
            if lingering.is_empty() {
                return Some(running);
            }
            if attempt == TRIES {
                let lines: Vec<String> = lingering.iter().map(|c| c.line.clone()).collect();
                tracing::warn!(?lines, "FRR still runs hand lines the generated config lacks");
                return Some(frr_hand::apply(&running, &lingering));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        None
    }

    /// Write `text` to frr.conf and have FRR load it.
    fn load(&self, text: &str) -> Result<FrrSync, FrrError> {
        let path = self.conf_path();
        self.write_conf(text)?;
        if self.reload_script.exists() && !self.fresh() {
            self.reload(&path)?;
            Ok(FrrSync::Reloaded)
        } else {
            let mut cmd = self.vtysh_command();
            cmd.arg("-f").arg(&path);
            run(cmd)?;
            Ok(FrrSync::Applied)
        }
    }

    /// FRR runs no routing instance yet (it just started with no config):
    /// adding the whole file with `vtysh -f` is then all a reload would
    /// do, for a fraction of its cost (frr-reload.py is a Python program
    /// that runs vtysh three times; a 256-node fleet spent most of its
    /// start in it). Asked on the routing daemons' vty sockets; a daemon
    /// that does not run holds nothing, one that does not answer is not
    /// taken for fresh.
    fn fresh(&self) -> bool {
        let query = self.query();
        ["bgpd", "ospfd", "isisd"].iter().all(|daemon| {
            match query.ask(daemon, "show running-config") {
                Ok(config) => !config.lines().any(|l| l.starts_with("router ")),
                Err(FrrError::Vty(e)) => e.no_socket(),
                Err(_) => false,
            }
        })
    }

    fn write_conf(&self, text: &str) -> Result<(), FrrError> {
        let path = self.conf_path();
        if fs::read_to_string(&path).ok().as_deref() != Some(text) {
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// The hand changes in FRR now, when FRR still runs what `kept` says
    /// (same daemons, a baseline to compare with); else the ones kept.
    fn current_hand(&self, kept: &Kept, pids: &str) -> Vec<HandChange> {
        let Some(baseline) = kept.baseline.as_deref().filter(|_| kept.pids == pids) else {
            return kept.hand.clone();
        };
        match self.query().running_config() {
            Ok(running) => frr_hand::diff(baseline, &running),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read FRR's running config; keeping the hand changes known");
                kept.hand.clone()
            }
        }
    }

    /// The next sync lets the hand changes go: FRR gets the generated
    /// config alone (`provision --force`).
    pub fn drop_hand_changes(&mut self) {
        self.drop_hand = true;
        self.looked = None;
    }

    /// [`Self::current_hand`], with vtysh asked only when a daemon's
    /// running config changed since it was last asked.
    fn hand_now(&mut self, kept: &Kept, pids: &str) -> Vec<HandChange> {
        let print = self.query().fingerprint();
        if let (Some(now), Some((then, found))) = (&print, &self.looked)
            && now == then
        {
            return found.clone();
        }
        let found = self.current_hand(kept, pids);
        self.looked = print.map(|p| (p, found.clone()));
        found
    }

    /// Look for hand changes (once per pass: `show running-config`) and
    /// keep what is found, in the state directory and in frr.conf. While
    /// FRR cannot be compared (not running, restarted, no baseline yet) the
    /// hand changes known are the answer.
    pub fn hand_changes(&mut self) -> Vec<HandChange> {
        let pids = self.daemon_pids();
        let trusted = self.loaded.as_ref().is_some_and(|(_, p)| *p == pids) && self.running();
        let kept = self.kept().clone();
        if !trusted {
            return kept.hand;
        }
        let found = self.hand_now(&kept, &pids);
        if found != kept.hand {
            tracing::info!(changes = ?found.iter().map(ToString::to_string).collect::<Vec<_>>(), "FRR changed by hand");
            let effective = frr_hand::apply(&kept.generated, &found);
            let saved = self
                .keep(Kept { hand: found.clone(), ..kept })
                .and_then(|()| self.write_conf(&effective));
            if let Err(e) = saved {
                tracing::warn!(error = %e, "hand changes not kept");
            }
        }
        found
    }

    /// FRR's running config right after the generated config alone was
    /// loaded, if known.
    pub fn baseline(&self) -> Option<&str> {
        self.kept.as_ref().and_then(|k| k.baseline.as_deref())
    }

    /// What was kept, read from the state directory the first time.
    fn kept(&mut self) -> &Kept {
        let state_dir = self.state_dir.clone();
        self.kept.get_or_insert_with(|| {
            let Some(dir) = state_dir else { return Kept::default() };
            kept::load(&dir)
                .inspect_err(
                    |e| tracing::error!(error = %e, "starting without what FRR was loaded with"),
                )
                .ok()
                .flatten()
                .unwrap_or_default()
        })
    }

    fn keep(&mut self, kept: Kept) -> Result<(), FrrError> {
        // No write while nothing changed (every pass while FRR is down).
        if self.kept.as_ref() == Some(&kept) {
            return Ok(());
        }
        if let Some(dir) = &self.state_dir {
            kept::save(dir, &kept)?;
        }
        self.kept = Some(kept);
        Ok(())
    }

    fn reload(&self, path: &Path) -> Result<(), FrrError> {
        let mut cmd = Command::new(&self.reload_script);
        // With the file at CONFDIR/frr.conf frr-reload does not `write` the
        // running config over ours.
        cmd.args(["--reload", "--stdout", "--confdir"]).arg(&self.dir);
        if let Some(name) = &self.pathspace {
            // frr-reload keeps its temporary files in the run directory;
            // the pathspace's own one goes away with the instance.
            cmd.args(["--pathspace", name]);
            cmd.arg("--rundir").arg(Path::new("/var/run/frr").join(name));
        }
        if let Some(bindir) = self.vtysh.parent().filter(|p| !p.as_os_str().is_empty()) {
            cmd.arg("--bindir").arg(bindir);
        }
        cmd.arg(path);
        run(cmd).map(|_| ())
    }

    /// vtysh warns on every call without it; the package ships one only
    /// for the default pathspace.
    fn ensure_vtysh_conf(&self) -> Result<(), FrrError> {
        let path = self.dir.join("vtysh.conf");
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, b"service integrated-vtysh-config\n")
    }

    pub fn vtysh_command(&self) -> Command {
        self.query().command()
    }

    /// What reads this instance's state, for the run loop.
    pub fn query(&self) -> FrrQuery {
        FrrQuery {
            pathspace: self.pathspace.clone(),
            vtysh: self.vtysh.clone(),
            run_dir: self.run_dir(),
            timeout: COMMAND_TIMEOUT,
            run_loop: true,
        }
    }

    /// `show bgp vrf default neighbors json`, merged with the configured
    /// neighbours so an unconfigured or missing session still shows.
    pub fn neighbors(&self, cfg: &NodeConfig) -> Result<Vec<BgpNeighborState>, FrrError> {
        self.query().neighbors(cfg)
    }

    /// The IGP adjacencies `cfg` expects, as FRR sees them (all `Missing`
    /// when FRR does not answer).
    pub fn igp_adjacencies(&self, cfg: &NodeConfig) -> Vec<IgpAdjacencyState> {
        let Some(igp) = &cfg.igp else { return Vec::new() };
        self.query().igp_adjacencies(cfg).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "no IGP state from FRR");
            lab_spec::frr_state::unknown(igp)
        })
    }
}

/// Reads FRR's state: `show` commands on the daemons' vty sockets
/// ([`vty`]), vtysh for the running config and dry runs. The run loop
/// reads after each pass ([`Frr::query`]); the health API reads between
/// passes with its own copy ([`FrrQuery::beside_the_loop`]), so an answer
/// is never a pass old.
#[derive(Debug, Clone)]
pub struct FrrQuery {
    pathspace: Option<String>,
    vtysh: PathBuf,
    /// Where the daemons' vty sockets are.
    run_dir: PathBuf,
    /// How long FRR gets to answer.
    timeout: Duration,
    /// Waiting for FRR is a sign of life for the watchdog only when the
    /// run loop waits: another thread's waits must not hide a stuck loop.
    run_loop: bool,
}

impl FrrQuery {
    /// For a thread other than the run loop, giving FRR `timeout`.
    pub fn beside_the_loop(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.run_loop = false;
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.vtysh);
        if let Some(name) = &self.pathspace {
            cmd.args(["-N", name]);
        }
        cmd
    }

    /// `show running-config`, as FRR prints it.
    pub fn running_config(&self) -> Result<String, FrrError> {
        let mut cmd = self.command();
        cmd.args(["-c", "show running-config"]);
        run_within(cmd, self.timeout, self.run_loop)
    }

    /// FRR's own check of a frr.conf text (`vtysh --dryrun`, which needs no
    /// daemons): the lines it refuses, numbered from 1.
    pub fn dry_run(&self, text: &str) -> Result<Vec<Refused>, FrrError> {
        let dir = tempfile::tempdir()
            .map_err(|source| FrrError::Write { path: std::env::temp_dir(), source })?;
        let conf = dir.path().join("frr.conf");
        // vtysh reads its own vtysh.conf from the config directory first.
        write_atomic(&dir.path().join("vtysh.conf"), b"service integrated-vtysh-config\n")?;
        write_atomic(&conf, text.as_bytes())?;
        let mut cmd = Command::new(&self.vtysh);
        cmd.arg("--config_dir").arg(dir.path()).arg("-C").arg("-f").arg(&conf);
        match run_within(cmd, self.timeout, self.run_loop) {
            Ok(_) => Ok(Vec::new()),
            Err(FrrError::Failed { program, status, output }) => {
                let refused = lab_spec::frr_check::parse_dryrun(&output);
                if refused.is_empty() {
                    return Err(FrrError::Failed { program, status, output });
                }
                Ok(refused)
            }
            Err(e) => Err(e),
        }
    }

    /// `command`'s JSON from `daemon`, on its vty socket; through vtysh
    /// only when this FRR has no socket where the agent looks.
    fn show(&self, daemon: &str, command: &str) -> Result<Value, FrrError> {
        match self.ask(daemon, command) {
            Ok(text) => Ok(serde_json::from_str(&text)?),
            Err(FrrError::Vty(e)) if e.no_socket() && !self.run_dir.exists() => {
                let mut cmd = self.command();
                cmd.args(["-c", command]);
                Ok(serde_json::from_str(&run_within(cmd, self.timeout, self.run_loop)?)?)
            }
            Err(e) => Err(e),
        }
    }

    /// One question to one daemon on its vty socket.
    pub fn ask(&self, daemon: &str, command: &str) -> Result<String, FrrError> {
        VTY_QUESTIONS.fetch_add(1, Ordering::Relaxed);
        let mut vty = vty::Vty::connect(&self.run_dir, daemon, self.timeout)?;
        Ok(vty.ask(command)?)
    }

    /// Every running daemon's own `show running-config`, one after the
    /// other (vty sockets, no vtysh): it changes whenever FRR's running
    /// config does, so it tells whether vtysh must look again. `None`
    /// when a daemon cannot be asked.
    pub fn fingerprint(&self) -> Option<String> {
        let mut sockets: Vec<String> = fs::read_dir(&self.run_dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".vty").map(str::to_string))
            .filter(|daemon| daemon != "watchfrr")
            .collect();
        if sockets.is_empty() {
            return None;
        }
        sockets.sort();
        let mut all = String::new();
        for daemon in sockets {
            all.push_str(&format!("#{daemon}\n"));
            all.push_str(&self.ask(&daemon, "show running-config").ok()?);
        }
        Some(all)
    }

    /// The configured BGP neighbours as FRR sees them.
    pub fn neighbors(&self, cfg: &NodeConfig) -> Result<Vec<BgpNeighborState>, FrrError> {
        let Some(bgp) = &cfg.bgp else { return Ok(Vec::new()) };
        let json = self.show("bgpd", "show bgp vrf default neighbors json")?;
        Ok(bgp.neighbors.iter().map(|n| neighbor_state(n, json.get(n.frr_name()))).collect())
    }

    /// The IGP adjacencies `cfg` expects, as FRR sees them.
    pub fn igp_adjacencies(&self, cfg: &NodeConfig) -> Result<Vec<IgpAdjacencyState>, FrrError> {
        let Some(igp) = &cfg.igp else { return Ok(Vec::new()) };
        let daemon = match igp.protocol {
            lab_spec::node_config::IgpProtocol::Ospf => "ospfd",
            lab_spec::node_config::IgpProtocol::Isis => "isisd",
        };
        let json = self.show(daemon, lab_spec::frr_state::show_command(igp.protocol))?;
        Ok(lab_spec::frr_state::adjacencies(igp, &json))
    }

    /// The OSPFv3 neighbours of a dual-stack OSPF underlay, as FRR sees
    /// them; none asked for otherwise.
    pub fn ospf6_adjacencies(&self, cfg: &NodeConfig) -> Result<Vec<IgpAdjacencyState>, FrrError> {
        let Some(igp) = cfg.igp.as_ref().filter(|_| cfg.runs_ospf6()) else {
            return Ok(Vec::new());
        };
        let json = self.show("ospf6d", lab_spec::frr_state::OSPF6_SHOW)?;
        Ok(lab_spec::frr_state::ospf6_adjacencies(igp, &json))
    }
}

/// One neighbour from FRR's JSON (`None`: FRR does not know it). FRR keys
/// a session by the peer's address, or by the interface it runs on.
pub fn neighbor_state(
    n: &lab_spec::node_config::Neighbor,
    json: Option<&Value>,
) -> BgpNeighborState {
    let state = json
        .and_then(|j| j.get("bgpState"))
        .and_then(Value::as_str)
        .unwrap_or("NotConfigured")
        .to_string();
    let established = state == "Established";
    let uptime_seconds = json
        .and_then(|j| j.get("bgpTimerUpMsec"))
        .and_then(Value::as_u64)
        .filter(|_| established)
        .map(|ms| ms / 1000);
    let prefixes_received = json
        .and_then(|j| j.pointer("/addressFamilyInfo/ipv4Unicast/acceptedPrefixCounter"))
        .and_then(Value::as_u64);
    BgpNeighborState {
        address: n.address,
        remote_asn: n.remote_asn,
        description: n.description.clone(),
        state,
        established,
        uptime_seconds,
        prefixes_received,
        interface: n.unnumbered.then(|| n.interface.clone()),
    }
}

/// A stuck vtysh (a daemon that does not answer) must not stall the agent.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn run(cmd: Command) -> Result<String, FrrError> {
    run_within(cmd, COMMAND_TIMEOUT, true)
}

/// Run `cmd` for at most `timeout`; `alive`: the waits are the run loop's.
fn run_within(mut cmd: Command, timeout: Duration, alive: bool) -> Result<String, FrrError> {
    let program = format!("{:?}", cmd.get_program());
    count_run(Path::new(cmd.get_program()));
    let spawn_err = |source| FrrError::Spawn { program: program.clone(), source };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(spawn_err)?;
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = pipe(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = pipe(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // Waiting with a deadline is not being stuck.
        if alive {
            crate::systemd::alive();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(stdout),
        status => {
            let status =
                status.map_or_else(|| format!("killed after {timeout:?}"), |s| s.to_string());
            let output = format!("{stdout}{stderr}");
            let output = output.trim();
            // The end of the output says what went wrong.
            let cut = output.len().saturating_sub(2000);
            let cut = (cut..output.len()).find(|i| output.is_char_boundary(*i)).unwrap_or(0);
            Err(FrrError::Failed { program, status, output: output[cut..].to_string() })
        }
    }
}

/// Counts vtysh and frr-reload.py runs for [`calls`].
fn count_run(program: &Path) {
    let name = program.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.starts_with("vtysh") {
        VTYSH_RUNS.fetch_add(1, Ordering::Relaxed);
    } else if name.starts_with("frr-reload") {
        RELOAD_RUNS.fetch_add(1, Ordering::Relaxed);
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FrrError> {
    crate::state::write_atomic(path, data)
        .map_err(|source| FrrError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_state_from_frr_json() {
        let n = lab_spec::node_config::Neighbor {
            address: "10.1.0.0".parse().unwrap(),
            remote_asn: 65000,
            interface: "eth1".into(),
            description: "spine1".into(),
            route_reflector_client: false,
            unnumbered: false,
        };
        let json: Value = serde_json::from_str(
            r#"{"10.1.0.0":{"remoteAs":65000,"bgpState":"Established","bgpTimerUpMsec":12345,
                "addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":3}}}}"#,
        )
        .unwrap();
        let s = neighbor_state(&n, json.get("10.1.0.0"));
        assert!(s.established);
        assert_eq!((s.uptime_seconds, s.prefixes_received), (Some(12), Some(3)));
        let missing = neighbor_state(&n, None);
        assert_eq!((missing.state.as_str(), missing.established), ("NotConfigured", false));
    }

    /// FRR 8.4 keys a session on an interface by the interface's name.
    #[test]
    fn unnumbered_neighbour_state_is_found_by_interface() {
        let n = lab_spec::node_config::Neighbor {
            address: "10.0.0.122".parse().unwrap(),
            remote_asn: 65000,
            interface: "eth1".into(),
            description: "spine1".into(),
            route_reflector_client: false,
            unnumbered: true,
        };
        let json: Value = serde_json::from_str(
            r#"{"eth1":{"bgpNeighborAddr":"fe80::c8e3:75ff:fe05:8b32","remoteAs":65000,
                "bgpState":"Established","bgpTimerUpMsec":29000,"addressFamilyInfo":{
                "ipv4Unicast":{"acceptedPrefixCounter":1},"ipv6Unicast":{"acceptedPrefixCounter":1}}}}"#,
        )
        .unwrap();
        let s = neighbor_state(&n, json.get(n.frr_name()));
        assert!(s.established);
        assert_eq!(s.interface.as_deref(), Some("eth1"));
        assert_eq!(s.session(), "10.0.0.122 on eth1");
        assert!(s.is_of(&n));
    }

    #[test]
    fn the_daemons_the_config_needs_are_switched_on() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fs::write(dir.join("daemons"), "bgpd=yes\nospfd=no\nisisd=no\nvtysh_enable=yes\n").unwrap();
        // A pathspace nobody runs: the file changes, nothing is restarted.
        let mut frr = Frr::new(Some("t3a-nobody".into()), Some(dir.clone()), "vtysh".into());
        let mut cfg = lab_spec::fixtures::sflow_leaf("leaf1");
        cfg.bgp = None;
        cfg.igp = Some(lab_spec::node_config::Igp {
            protocol: lab_spec::node_config::IgpProtocol::Ospf,
            router_id: cfg.loopback.unwrap(),
            area: "0.0.0.0".into(),
            timers: Default::default(),
            neighbors: vec![],
        });
        assert_eq!(frr.sync(&cfg).unwrap(), FrrSync::WrittenOnly);
        let daemons = fs::read_to_string(dir.join("daemons")).unwrap();
        assert_eq!(daemons, "bgpd=no\nospfd=yes\nisisd=no\nvtysh_enable=yes\n");
        assert!(fs::read_to_string(dir.join("frr.conf")).unwrap().contains("router ospf\n"));
    }

    /// FRR down (a board between boot and FRR's start): hand changes kept
    /// by an earlier agent go into the frr.conf FRR will boot from, and a
    /// new generated config keeps them; a forced one drops them.
    #[test]
    fn kept_hand_changes_are_in_the_file_frr_boots_from() {
        let dir = tempfile::tempdir().unwrap();
        let hand = vec![HandChange {
            added: true,
            context: vec![],
            line: "ip route 10.99.0.0/24 Null0".into(),
        }];
        let kept = Kept { generated: "old\n".into(), baseline: None, hand, pids: String::new() };
        kept::save(dir.path(), &kept).unwrap();
        let new_frr = || {
            let mut frr =
                Frr::new(Some("t3a-nobody".into()), Some(dir.path().join("etc")), "vtysh".into());
            frr.state_dir = Some(dir.path().to_path_buf());
            frr
        };
        let conf = || fs::read_to_string(dir.path().join("etc/frr.conf")).unwrap();
        let generated = "hostname r1\n!\nend\n";
        assert_eq!(new_frr().sync_text(generated).unwrap(), FrrSync::WrittenOnly);
        assert!(conf().contains("\nip route 10.99.0.0/24 Null0\n!\nend\n"), "{}", conf());
        // Another agent later: the same, from the state directory.
        let mut frr = new_frr();
        assert_eq!(frr.hand_changes().len(), 1);
        assert_eq!(frr.sync_text("hostname r1 (new)\n!\nend\n").unwrap(), FrrSync::WrittenOnly);
        assert!(conf().contains("ip route 10.99.0.0/24 Null0"), "{}", conf());
        frr.drop_hand_changes();
        assert_eq!(frr.sync_text("hostname r1 (new)\n!\nend\n").unwrap(), FrrSync::WrittenOnly);
        assert_eq!(conf(), "hostname r1 (new)\n!\nend\n");
        assert!(new_frr().hand_changes().is_empty());
    }

    #[test]
    fn config_dir_follows_the_pathspace() {
        let frr = Frr::new(Some("lab-leaf1".into()), None, "vtysh".into());
        assert_eq!(frr.conf_path(), Path::new("/etc/frr/lab-leaf1/frr.conf"));
        let cmd = daemon_command("lab-leaf1", "lab-leaf1", "bgpd");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "lab-leaf1",
                "/usr/lib/frr/bgpd",
                "-d",
                "-N",
                "lab-leaf1",
                "-F",
                "datacenter"
            ]
        );
    }
}
