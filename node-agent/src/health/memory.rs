//! A [`Backend`] that keeps everything in memory: for tests of the API and
//! of the tools that talk to it, and for demos. It applies any config it is
//! given (or the error it was told to return next) and reports a fixed
//! health report with the config's identity filled in. It can also play a
//! backend whose report goes stale (`stale_until_refreshed`).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};

use super::{Backend, HandChanges, ReconcileStats};

#[derive(Debug)]
pub struct MemoryBackend {
    config: Mutex<Option<NodeConfig>>,
    template: Mutex<HealthReport>,
    stats: ReconcileStats,
    applied: Mutex<Vec<NodeConfig>>,
    /// What each apply was to do with hand changes, in order.
    hand_modes: Mutex<Vec<HandChanges>>,
    next_error: Mutex<Option<ConfigAnswer>>,
    apply_takes: Mutex<Duration>,
    refresh: Mutex<Refresh>,
    refresh_moved: Condvar,
}

/// A refresh the test holds until it lets go.
#[derive(Debug, Default)]
struct Refresh {
    /// While set: stale; the report a refresh serves from then on.
    fresh: Option<HealthReport>,
    started: bool,
    released: bool,
    done: u32,
}

impl MemoryBackend {
    /// `template`: the report to serve; its identity and config version
    /// follow the config.
    pub fn new(config: Option<NodeConfig>, template: HealthReport, stats: ReconcileStats) -> Self {
        MemoryBackend {
            config: Mutex::new(config),
            template: Mutex::new(template),
            stats,
            applied: Mutex::new(Vec::new()),
            hand_modes: Mutex::new(Vec::new()),
            next_error: Mutex::new(None),
            apply_takes: Mutex::new(Duration::ZERO),
            refresh: Mutex::new(Refresh::default()),
            refresh_moved: Condvar::new(),
        }
    }

    /// The report is stale until a refresh, which waits for
    /// `release_refresh` and then serves `fresh`.
    pub fn stale_until_refreshed(&self, fresh: HealthReport) {
        self.change_refresh(|r| {
            *r = Refresh { fresh: Some(fresh), done: r.done, ..Refresh::default() }
        });
    }

    /// A refresh has started and waits for `release_refresh`.
    pub fn refresh_started(&self) -> bool {
        self.refresh.lock().is_ok_and(|r| r.started)
    }

    pub fn release_refresh(&self) {
        self.change_refresh(|r| r.released = true);
    }

    /// Refreshes that found the report stale.
    pub fn refreshes(&self) -> u32 {
        self.refresh.lock().map(|r| r.done).unwrap_or_default()
    }

    fn change_refresh(&self, change: impl FnOnce(&mut Refresh)) {
        if let Ok(mut r) = self.refresh.lock() {
            change(&mut r);
        }
        self.refresh_moved.notify_all();
    }

    /// Every `apply_config` from now on takes `time`, as a real pass does.
    pub fn slow_applies(&self, time: Duration) {
        if let Ok(mut t) = self.apply_takes.lock() {
            *t = time;
        }
    }

    /// The next `apply_config` answers `error` (and changes nothing).
    pub fn fail_next(&self, error: ConfigAnswer) {
        if let Ok(mut next) = self.next_error.lock() {
            *next = Some(error);
        }
    }

    /// Configs `apply_config` was called with, in order.
    pub fn applied(&self) -> Vec<NodeConfig> {
        self.applied.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// For each `apply_config`, whether hand changes were to stay.
    pub fn hand_modes(&self) -> Vec<HandChanges> {
        self.hand_modes.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn current_version(&self) -> Option<String> {
        self.current_config().map(|c| c.version)
    }
}

impl Backend for MemoryBackend {
    fn health(&self) -> HealthReport {
        let config = self.current_config();
        let mut report =
            self.template.lock().map_or_else(|p| p.into_inner().clone(), |t| t.clone());
        report.node = config.as_ref().map(|c| c.hostname.clone());
        report.lab = config.as_ref().map(|c| c.lab.clone());
        report.role = config.as_ref().map(|c| c.role);
        report.reconcile.config_version = config.map(|c| c.version);
        report
    }

    fn stale(&self) -> bool {
        self.refresh.lock().is_ok_and(|r| r.fresh.is_some())
    }

    /// Stale until done, as a real backend is while it waits for FRR.
    fn refresh(&self) {
        let Ok(mut r) = self.refresh.lock() else { return };
        if r.fresh.is_none() {
            return;
        }
        r.started = true;
        self.refresh_moved.notify_all();
        while !r.released {
            match self.refresh_moved.wait(r) {
                Ok(next) => r = next,
                Err(_) => return,
            }
        }
        if let (Some(fresh), Ok(mut template)) = (r.fresh.take(), self.template.lock()) {
            *template = fresh;
        }
        r.done += 1;
    }

    fn reconcile_stats(&self) -> ReconcileStats {
        self.stats.clone()
    }

    fn current_config(&self) -> Option<NodeConfig> {
        self.config.lock().ok().and_then(|c| c.clone())
    }

    fn apply_config(&self, config: NodeConfig, hand: HandChanges) -> ConfigAnswer {
        let takes = self.apply_takes.lock().map(|t| *t).unwrap_or_default();
        std::thread::sleep(takes);
        if let Ok(mut applied) = self.applied.lock() {
            applied.push(config.clone());
        }
        if let Ok(mut modes) = self.hand_modes.lock() {
            modes.push(hand);
        }
        if let Some(e) = self.next_error.lock().ok().and_then(|mut n| n.take()) {
            return e;
        }
        let version = config.version.clone();
        if let Ok(mut current) = self.config.lock() {
            *current = Some(config);
        }
        if let (HandChanges::Drop, Ok(mut template)) = (hand, self.template.lock()) {
            template.frr_hand_changes.clear();
        }
        ConfigAnswer::Applied { version, changes: 5 }
    }
}
