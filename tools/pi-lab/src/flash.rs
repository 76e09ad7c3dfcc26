//! `pi-lab flash`: write an image to SD cards, verified, each with its own identity.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct FlashArgs {}

pub fn run(_args: &FlashArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab flash"))
}
