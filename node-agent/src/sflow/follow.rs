//! Keeps the exporter in line with the config the agent runs: started when
//! the config names collectors, reconfigured when its sFlow settings
//! change, stopped when they go away. Checked once a second.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use lab_spec::health::SflowState;
use lab_spec::node_config::Sflow;

use super::{Exporter, ExporterHandle, HostInfo};
use crate::status::SharedStatus;

#[derive(Debug, Default)]
pub struct SflowFollower {
    running: Mutex<Option<(Sflow, ExporterHandle)>>,
    /// The last error logged, so a lasting one is said once.
    said: Mutex<Option<String>>,
}

impl SflowFollower {
    /// Follow the run loop's config from a background thread.
    pub fn spawn(status: SharedStatus) -> Arc<SflowFollower> {
        let follower = Arc::new(SflowFollower::default());
        let inner = Arc::clone(&follower);
        let spawned = thread::Builder::new().name("sflow-follow".into()).spawn(move || {
            loop {
                let wanted =
                    status.read().ok().and_then(|s| s.config.as_ref().map(|c| c.sflow.clone()));
                inner.follow(wanted.as_ref());
                thread::sleep(Duration::from_secs(1));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("no sFlow export: cannot start its thread: {e}");
        }
        follower
    }

    /// Counters of the running exporter, `None` when none runs.
    pub fn stats(&self) -> Option<SflowState> {
        self.running.lock().ok()?.as_ref().map(|(_, h)| h.stats())
    }

    pub fn follow(&self, wanted: Option<&Sflow>) {
        let Ok(mut running) = self.running.lock() else { return };
        let wanted = wanted.filter(|s| !s.collectors.is_empty());
        match (wanted, running.as_mut()) {
            (None, Some(_)) => {
                if let Some((_, handle)) = running.take() {
                    handle.stop();
                    tracing::info!("sFlow export stopped");
                }
            }
            (None, None) => {}
            (Some(cfg), Some((current, _))) if current == cfg => {}
            (Some(cfg), Some((current, handle))) => match handle.reconfigure(cfg) {
                Ok(()) => *current = cfg.clone(),
                Err(e) => self.say(format!("sFlow settings not applied: {e}")),
            },
            (Some(cfg), None) => match Exporter::start(cfg, HostInfo::detect()) {
                Ok(handle) => {
                    tracing::info!(collectors = ?cfg.collectors, "sFlow export started");
                    *running = Some((cfg.clone(), handle));
                }
                Err(e) => self.say(format!("sFlow export not started: {e}")),
            },
        }
    }

    fn say(&self, message: String) {
        if let Ok(mut said) = self.said.lock()
            && said.as_deref() != Some(message.as_str())
        {
            tracing::warn!("{message}");
            *said = Some(message);
        }
    }
}
