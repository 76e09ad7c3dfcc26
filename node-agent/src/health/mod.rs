//! The management API: `GET /v1/health`, `GET /metrics`, `GET`/`PUT
//! /v1/config`, served over plain HTTP/1.1 on the management address.
//!
//! The server knows nothing about netlink or FRR. It talks to the agent
//! through [`Backend`]: the run loop implements it over its shared state and
//! its apply-with-rollback; the tests implement it with a few fields.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(backend: Arc<dyn node_agent::health::Backend>) -> std::io::Result<()> {
//! use node_agent::health::{Server, ServerConfig};
//! let config = ServerConfig::new("0.0.0.0:9180".parse().unwrap());
//! let server = Server::start(config, backend)?;
//! // ... run the agent ...
//! server.shutdown();
//! # Ok(()) }
//! ```

pub mod agent_backend;
pub mod auth;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod plane;
pub mod report;
mod routes;
mod server;

use std::collections::BTreeMap;
use std::sync::Mutex;

use lab_spec::frr_check::FrrCheck;
use lab_spec::frr_hand::FrrRunning;
use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};
use serde::Serialize;

pub use crate::agent::HandChanges;

pub use plane::{Plane, PlaneOptions};
pub use server::{Server, ServerConfig, exchange, raise_open_files_limit};

/// What the HTTP API needs from the agent. Every method but `apply_config`
/// and `refresh` is called from the server's event loop and must answer in
/// a few milliseconds; those two run on workers: `apply_config` may take
/// as long as a reconcile pass, `refresh` as long as FRR takes to answer.
pub trait Backend: Send + Sync {
    /// The report served at `/v1/health`.
    fn health(&self) -> HealthReport;
    /// Reconcile counters for `/metrics` (not in the HealthReport).
    fn reconcile_stats(&self) -> ReconcileStats;
    /// How the agent talked to FRR, for `/metrics`; `None` without FRR.
    fn frr_talk(&self) -> Option<FrrTalk> {
        None
    }
    /// The config being applied; `None` while unprovisioned.
    fn current_config(&self) -> Option<NodeConfig>;
    /// Validate and apply `config`; on failure roll back to the previous
    /// config, and persist the config as last-good once it applied. `hand`:
    /// whether lines changed by hand in FRR stay on top of it. The answer
    /// is what the client gets.
    fn apply_config(&self, config: NodeConfig, hand: HandChanges) -> ConfigAnswer;
    /// The controller's time (an HTTP `Date`) came with an authenticated
    /// request; a board without NTP takes it (see [`crate::clock`]).
    fn controller_time(&self, _date: &str) {}
    /// Part of the report (FRR's sessions) is older than the agent lets an
    /// answer be: the server calls `refresh` on a worker before answering.
    fn stale(&self) -> bool {
        false
    }
    /// Read that part again (bounded by the backend's own timeout).
    fn refresh(&self) {}
    /// FRR's running config and the hand changes in it, read now (on a
    /// worker); `None` when this node runs no FRR.
    fn frr_running(&self) -> Option<Result<FrrRunning, String>> {
        None
    }
    /// FRR's own check of a frr.conf text (on a worker); `None` when this
    /// node has no FRR to ask.
    fn frr_check(&self, _text: &str) -> Option<Result<FrrCheck, String>> {
        None
    }
}

/// How the agent talked to FRR since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrrTalk {
    pub calls: crate::frr::FrrCalls,
    /// The most routing reads that ever ran at once (1: the gate held).
    pub reads_at_once: usize,
}

/// Reconcile counters since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileStats {
    pub passes_total: u64,
    pub errors_total: u64,
    pub last_success_unix: Option<u64>,
    pub last_duration_seconds: Option<f64>,
}

/// Answers given, by status code, for `pilab_http_requests_total`.
#[derive(Debug, Default)]
pub struct HttpCounters(Mutex<BTreeMap<u16, u64>>);

impl HttpCounters {
    pub fn count(&self, status: u16) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(status).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        self.0.lock().map(|m| m.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default()
    }
}
