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
pub mod duration;
pub mod expr;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod frr;
pub mod frr_check;
pub mod frr_hand;
pub mod frr_state;
pub mod health;
pub mod impairment;
pub mod lab;
#[cfg(feature = "netlab")]
pub mod netlab;
pub mod node_check;
pub mod node_config;
pub mod parse;
pub mod plan;
pub mod program_input;
pub mod prometheus;
pub mod replace_file;
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
    #[error(
        "{path} is a netlab topology; this build of lab-spec reads them only with its `netlab` feature"
    )]
    NetlabOff { path: PathBuf },
}

/// Read and check a lab file. A file that is not UTF-8 is an invalid lab
/// (with the place of its first bad byte), not an I/O error. A `.yml` or
/// `.yaml` file is a netlab topology, converted first (see [`netlab`]);
/// what it leaves to netlab's runtime is in the lab's `notes`.
pub fn load(path: &Path) -> Result<Lab, LabError> {
    let bytes =
        std::fs::read(path).map_err(|source| LabError::Io { path: path.to_path_buf(), source })?;
    let name = path.display().to_string();
    if is_netlab(path) {
        return load_netlab(path, &bytes, &name);
    }
    parse_bytes(&bytes, &name).map_err(LabError::Invalid)
}

/// netlab topologies are YAML; lab files are TOML.
pub fn is_netlab(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
}

#[cfg(feature = "netlab")]
fn load_netlab(path: &Path, bytes: &[u8], name: &str) -> Result<Lab, LabError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| LabError::Invalid(parse::not_utf8(bytes, &e, name)))?;
    let import =
        netlab::convert(text, name, &netlab::default_name(path)).map_err(LabError::Invalid)?;
    let mut lab = parse(&import.toml, &format!("{name} (as TOML)")).map_err(LabError::Invalid)?;
    lab.notes = import.notes;
    Ok(lab)
}

#[cfg(not(feature = "netlab"))]
fn load_netlab(path: &Path, _bytes: &[u8], _name: &str) -> Result<Lab, LabError> {
    Err(LabError::NetlabOff { path: path.to_path_buf() })
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
