//! `pi-lab validate`: netlab-style checks that the lab works.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

pub fn run(_args: &ValidateArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab validate"))
}
