//! A [`Backend`] that keeps everything in memory: for tests of the API and
//! of the tools that talk to it, and for demos. It applies any config it is
//! given (or the error it was told to return next) and reports a fixed
//! health report with the config's identity filled in.

use std::sync::Mutex;
use std::time::Duration;

use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};

use super::{Backend, ReconcileStats};

#[derive(Debug)]
pub struct MemoryBackend {
    config: Mutex<Option<NodeConfig>>,
    template: HealthReport,
    stats: ReconcileStats,
    applied: Mutex<Vec<NodeConfig>>,
    next_error: Mutex<Option<ConfigAnswer>>,
    apply_takes: Mutex<Duration>,
}

impl MemoryBackend {
    /// `template`: the report to serve; its identity and config version
    /// follow the config.
    pub fn new(config: Option<NodeConfig>, template: HealthReport, stats: ReconcileStats) -> Self {
        MemoryBackend {
            config: Mutex::new(config),
            template,
            stats,
            applied: Mutex::new(Vec::new()),
            next_error: Mutex::new(None),
            apply_takes: Mutex::new(Duration::ZERO),
        }
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

    pub fn current_version(&self) -> Option<String> {
        self.current_config().map(|c| c.version)
    }
}

impl Backend for MemoryBackend {
    fn health(&self) -> HealthReport {
        let config = self.current_config();
        let mut report = self.template.clone();
        report.node = config.as_ref().map(|c| c.hostname.clone());
        report.lab = config.as_ref().map(|c| c.lab.clone());
        report.role = config.as_ref().map(|c| c.role);
        report.reconcile.config_version = config.map(|c| c.version);
        report
    }

    fn reconcile_stats(&self) -> ReconcileStats {
        self.stats.clone()
    }

    fn current_config(&self) -> Option<NodeConfig> {
        self.config.lock().ok().and_then(|c| c.clone())
    }

    fn apply_config(&self, config: NodeConfig) -> ConfigAnswer {
        let takes = self.apply_takes.lock().map(|t| *t).unwrap_or_default();
        std::thread::sleep(takes);
        if let Ok(mut applied) = self.applied.lock() {
            applied.push(config.clone());
        }
        if let Some(e) = self.next_error.lock().ok().and_then(|mut n| n.take()) {
            return e;
        }
        let version = config.version.clone();
        if let Ok(mut current) = self.config.lock() {
            *current = Some(config);
        }
        ConfigAnswer::Applied { version, changes: 5 }
    }
}
