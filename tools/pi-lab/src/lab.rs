//! `pi-lab lab ...`: check, plan and render lab files, and run them as a
//! virtual fleet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Validate a lab file; exit 0 when valid, 1 when not.
    Check { file: PathBuf },
    /// Show the address plan.
    Plan {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one node's NodeConfig and frr.conf.
    Render { file: PathBuf, node: String },
    /// Run the lab as a virtual fleet in network namespaces.
    Up(crate::fleet::UpArgs),
    /// Tear down a virtual fleet.
    Down(crate::fleet::DownArgs),
}

pub fn run(cmd: &LabCommand) -> Result<ExitCode, crate::NotBuilt> {
    match cmd {
        LabCommand::Up(args) => Ok(crate::fleet::up(args)),
        LabCommand::Down(args) => Ok(crate::fleet::down(args)),
        _ => Err(crate::NotBuilt("pi-lab lab")),
    }
}
