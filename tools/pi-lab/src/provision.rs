//! `pi-lab provision`: push each node's config to the running boards.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {}

pub fn run(_args: &ProvisionArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab provision"))
}
