//! The exporter as part of the agent: started when a config is applied,
//! reconfigured on every new config, stopped on shutdown.
//!
//! Packet sampling needs nftables and an NFLOG group; when either fails the
//! node still exports counters (sampling off) and the error is reported in
//! the reconcile state. Every pass tries again, so sampling comes back once
//! the cause is fixed (`modprobe nfnetlink_log`, another listener gone).

use lab_spec::NodeConfig;
use lab_spec::health::SflowState;
use lab_spec::node_config::Sflow;

use super::{Exporter, ExporterHandle, HostInfo, SflowError, nft};

/// What the exporter runs with now, to tell whether a pass must change it.
#[derive(Debug, Clone, PartialEq)]
struct Applied {
    wanted: Sflow,
    hostname: String,
    /// Sampling was refused; the exporter runs with `sampling_rate = 0`.
    counters_only: bool,
}

/// The agent's exporter (none while there is no config or no collector).
#[derive(Debug, Default)]
pub struct SflowService {
    handle: Option<ExporterHandle>,
    applied: Option<Applied>,
    /// Why the config's sFlow settings are not fully in force.
    error: Option<String>,
    cleared_leftovers: bool,
}

impl SflowService {
    /// Brings the exporter in line with `cfg`; returns what is not in force
    /// (for the reconcile state). Cheap when nothing changed.
    pub fn sync(&mut self, cfg: &NodeConfig) -> Option<String> {
        let unchanged = self.applied.as_ref().is_some_and(|a| {
            a.wanted == cfg.sflow && a.hostname == cfg.hostname && !a.counters_only
        });
        if unchanged || (self.applied.is_none() && cfg.sflow.collectors.is_empty()) {
            self.clear_leftovers();
            return self.error.clone();
        }
        let result = self.apply(cfg);
        let error = result.err().map(|e| format!("sflow: {e}"));
        if error != self.error {
            match &error {
                Some(e) => tracing::error!("{e}"),
                None if self.error.is_some() => tracing::info!("sflow: settings in force again"),
                None => {}
            }
        }
        self.error = error;
        self.error.clone()
    }

    /// Counters for the health report; zeros (disabled) when not running.
    pub fn stats(&self) -> SflowState {
        self.handle.as_ref().map(ExporterHandle::stats).unwrap_or_default()
    }

    /// Stops the exporter and removes the sampling table.
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        self.applied = None;
    }

    fn apply(&mut self, cfg: &NodeConfig) -> Result<(), SflowError> {
        if cfg.sflow.collectors.is_empty() {
            self.stop();
            return Ok(());
        }
        let same_host = self.applied.as_ref().is_some_and(|a| a.hostname == cfg.hostname);
        if !same_host {
            // host_descr is fixed per exporter: a new hostname needs a new one.
            self.stop();
        }
        let sampling = self.run_with(cfg, &cfg.sflow);
        let Err(sampling_error) = sampling else {
            self.applied = Some(applied(cfg, false));
            return Ok(());
        };
        if cfg.sflow.sampling_rate == 0 {
            self.stop();
            return Err(sampling_error);
        }
        // Counters without sampling are better than nothing.
        let counters_only = Sflow { sampling_rate: 0, ..cfg.sflow.clone() };
        match self.run_with(cfg, &counters_only) {
            Ok(()) => {
                self.applied = Some(applied(cfg, true));
                Err(SflowError::CountersOnly {
                    rate: cfg.sflow.sampling_rate,
                    source: Box::new(sampling_error),
                })
            }
            Err(e) => {
                self.stop();
                Err(e)
            }
        }
    }

    /// Reconfigures the running exporter, or starts one.
    fn run_with(&mut self, cfg: &NodeConfig, sflow: &Sflow) -> Result<(), SflowError> {
        if let Some(h) = &self.handle {
            return h.reconfigure(sflow);
        }
        let host = HostInfo { hostname: cfg.hostname.clone(), ..HostInfo::detect() };
        self.handle = Some(Exporter::start(sflow, host)?);
        Ok(())
    }

    /// A killed agent leaves its sampling table behind; with no exporter to
    /// clear it, do it once here (best effort: nft may not be installed).
    fn clear_leftovers(&mut self) {
        if self.handle.is_none() && !self.cleared_leftovers {
            self.cleared_leftovers = true;
            if let Err(e) = nft::remove() {
                tracing::debug!("sflow: clearing old sampling rules: {e}");
            }
        }
    }
}

fn applied(cfg: &NodeConfig, counters_only: bool) -> Applied {
    Applied { wanted: cfg.sflow.clone(), hostname: cfg.hostname.clone(), counters_only }
}
