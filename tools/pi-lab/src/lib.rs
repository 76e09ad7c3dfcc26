//! `pi-lab`: the host side of a Raspberry Pi network lab.
//!
//! Each module is one thing a user does; `main.rs` only parses the command
//! line and hands over to them.

pub mod cli;
pub mod flash;
pub mod fleet;
pub mod fleet_client;
pub mod image;
pub mod inventory;
pub mod lab;
pub mod lab_file;
pub mod provision;
pub mod replace_file;
pub mod secrets;
pub mod sflow_watch;
pub mod status;
pub mod validate;

/// Returned by commands whose issue has not landed yet.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not built yet")]
pub struct NotBuilt(pub &'static str);
