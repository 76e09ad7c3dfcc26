//! The virtual fleet: a lab in network namespaces on one Linux host.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    pub file: PathBuf,
}

pub fn up(_args: &UpArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab lab up"))
}

pub fn down(_args: &DownArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab lab down"))
}
