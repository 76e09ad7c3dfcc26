//! The contract between the host CLI `pi-lab` and the on-board `node-agent`.
//!
//! Data flows through this crate in one direction:
//!
//! ```text
//! lab.toml --parse--> Lab --validate--> --plan--> Plan --compile--> NodeConfig per node
//! ```
//!
//! `NodeConfig`, `HealthReport` and `ConfigAnswer` (the verdict on a pushed
//! config) are the documents that cross the wire.

pub mod alloc;
pub mod announce;
pub mod compile;
pub mod config_answer;
pub mod diagnostics;
pub mod frr;
pub mod frr_state;
pub mod health;
pub mod lab;
pub mod node_check;
pub mod node_config;
pub mod parse;
pub mod plan;
#[cfg(test)]
mod test_configs;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use config_answer::ConfigAnswer;
pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use health::HealthReport;
pub use lab::Lab;
pub use node_check::{ConfigError, ConfigErrors};
pub use node_config::{NODE_CONFIG_SCHEMA, NodeConfig, Role};
pub use parse::{parse, parse_bytes};
pub use plan::Plan;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot read lab file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file was read but is not a valid lab; the diagnostics say why.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Read and check a lab file. A file that is not UTF-8 is an invalid lab
/// (with the place of its first bad byte), not an I/O error.
pub fn load(path: &Path) -> Result<Lab, LabError> {
    let bytes =
        std::fs::read(path).map_err(|source| LabError::Io { path: path.to_path_buf(), source })?;
    parse_bytes(&bytes, &path.display().to_string()).map_err(LabError::Invalid)
}

/// Read, check, plan and compile a lab file in one go.
pub fn compile_file(
    path: &Path,
    token: &str,
) -> Result<(Lab, Plan, BTreeMap<String, NodeConfig>), LabError> {
    let lab = load(path)?;
    let plan = Plan::new(&lab).map_err(LabError::Invalid)?;
    let configs = compile::compile(&lab, &plan, token);
    Ok((lab, plan, configs))
}
