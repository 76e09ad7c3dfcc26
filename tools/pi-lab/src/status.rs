//! `pi-lab status`: the health of every node of a lab.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub fn run(_args: &StatusArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab status"))
}
