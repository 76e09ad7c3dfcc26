//! The contract between the host CLI `pi-lab` and the on-board `node-agent`.
//!
//! Data flows through this crate in one direction:
//!
//! ```text
//! lab.toml --parse--> Lab --validate--> --plan--> Plan --compile--> NodeConfig per node
//! ```
//!
//! `NodeConfig` and `HealthReport` are the two documents that cross the wire.

pub mod announce;
pub mod health;
pub mod node_config;

pub use health::HealthReport;
pub use node_config::{NODE_CONFIG_SCHEMA, NodeConfig, Role};
