//! `pi-lab sflow watch`: a small sFlow collector with a live table.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum SflowCommand {
    /// Decode what the fleet sends and show a live table.
    Watch(WatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {}

pub fn run(_cmd: &SflowCommand) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab sflow watch"))
}
