//! `pi-lab image build`: one Debian 13 arm64 image for the whole fleet.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Build the image from a profile.
    Build(BuildArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {}

pub fn run(_cmd: &ImageCommand) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab image build"))
}
