//! [`Backend`] over the running agent: the run loop's shared status and
//! `AgentHandle::apply`, the board reader, and the sFlow exporter's
//! counters.

use std::sync::Arc;

use lab_spec::frr_check::FrrCheck;
use lab_spec::frr_hand::FrrRunning;
use lab_spec::health::SflowState;
use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};

use super::plane::StatusLed;
use super::report::{Parts, assemble};
use super::{Backend, FrrTalk, ReconcileStats};
use crate::agent::{AgentHandle, ApplyError, HandChanges, Rollback};
use crate::board::BoardReader;
use crate::led::LedState;

/// Counters of the sFlow exporter, when one runs.
pub type SflowCounters = Box<dyn Fn() -> Option<SflowState> + Send + Sync>;

pub struct AgentBackend {
    handle: AgentHandle,
    board: BoardReader,
    sflow: SflowCounters,
    led: Option<Arc<StatusLed>>,
    /// Problems from boot (a boot config that could not be read, ...).
    boot_problems: Vec<String>,
    /// The agent owns the machine: it may set the clock.
    owns_machine: bool,
}

impl std::fmt::Debug for AgentBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBackend").field("board", &self.board).finish_non_exhaustive()
    }
}

impl AgentBackend {
    pub fn new(handle: AgentHandle, board: BoardReader) -> Self {
        AgentBackend {
            handle,
            board,
            sflow: Box::new(|| None),
            led: None,
            boot_problems: Vec::new(),
            owns_machine: false,
        }
    }

    /// On a board of its own, the agent takes the controller's time.
    pub fn on_board(mut self, board: bool) -> Self {
        self.owns_machine = board;
        self
    }

    pub fn with_sflow(mut self, counters: SflowCounters) -> Self {
        self.sflow = counters;
        self
    }

    pub fn with_led(mut self, led: Arc<StatusLed>) -> Self {
        self.led = Some(led);
        self
    }

    pub fn with_problems(mut self, problems: Vec<String>) -> Self {
        self.boot_problems = problems;
        self
    }

    fn status(&self) -> crate::status::Status {
        self.handle.status().read().map(|s| s.clone()).unwrap_or_default()
    }
}

/// sFlow as configured, for when no exporter reports counters.
fn configured_sflow(config: Option<&NodeConfig>) -> SflowState {
    let Some(c) = config else { return SflowState::default() };
    SflowState {
        enabled: !c.sflow.collectors.is_empty(),
        collectors: c.sflow.collectors.iter().map(|a| a.to_string()).collect(),
        sampling_rate: c.sflow.sampling_rate,
        ..SflowState::default()
    }
}

impl Backend for AgentBackend {
    fn stale(&self) -> bool {
        self.handle.routing_stale()
    }

    fn refresh(&self) {
        self.handle.refresh_routing();
    }

    fn controller_time(&self, date: &str) {
        if self.owns_machine
            && let Some(done) = crate::clock::follow_controller(date)
        {
            tracing::info!("{done}");
        }
    }

    fn health(&self) -> HealthReport {
        let status = self.status();
        let sflow = (self.sflow)().unwrap_or_else(|| configured_sflow(status.config.as_ref()));
        let reconcile = status.reconcile_now();
        assemble(Parts {
            config: status.config,
            board: self.board.board(),
            system: self.board.system(),
            bgp: status.bgp,
            ospf: status.ospf,
            isis: status.isis,
            ospf6: status.ospf6,
            vxlan: status.vxlan,
            sflow,
            reconcile,
            frr_hand_changes: status.frr_hand_changes.iter().map(ToString::to_string).collect(),
            impairments: status.impairments,
            problems: self.boot_problems.clone(),
        })
    }

    fn frr_running(&self) -> Option<Result<FrrRunning, String>> {
        self.handle.frr_running().map(|r| r.map_err(|e| e.to_string()))
    }

    fn frr_check(&self, text: &str) -> Option<Result<FrrCheck, String>> {
        self.handle.frr_check(text).map(|r| r.map_err(|e| e.to_string()))
    }

    fn reconcile_stats(&self) -> ReconcileStats {
        self.status().stats
    }

    fn frr_talk(&self) -> Option<FrrTalk> {
        self.handle.runs_frr().then(|| FrrTalk {
            calls: crate::frr::calls(),
            reads_at_once: self.handle.routing_reads_at_once(),
        })
    }

    fn current_config(&self) -> Option<NodeConfig> {
        self.status().config
    }

    fn apply_config(&self, config: NodeConfig, hand: HandChanges) -> ConfigAnswer {
        if let Some(led) = &self.led {
            led.set(LedState::Applying);
        }
        match self.handle.apply_with(config, hand) {
            Ok(report) => ConfigAnswer::Applied {
                version: report.config_version,
                changes: u32::try_from(report.applied.len()).unwrap_or(u32::MAX),
            },
            Err(ApplyError::Invalid(errors)) => ConfigAnswer::Invalid {
                reasons: errors.0.iter().map(ToString::to_string).collect(),
            },
            Err(ApplyError::Failed { report, rollback }) => {
                let error = format!("applying failed: {}", report.errors().join("; "));
                match rollback {
                    Rollback::Done(to) => ConfigAnswer::RolledBack { error, rolled_back_to: to },
                    Rollback::NoPrevious => ConfigAnswer::NoPreviousConfig { error },
                    Rollback::Failed { to, errors } => ConfigAnswer::RollbackFailed {
                        error,
                        rolled_back_to: to,
                        rollback_error: errors.join("; "),
                    },
                }
            }
            Err(e) => ConfigAnswer::NotApplied { error: e.to_string() },
        }
    }
}
