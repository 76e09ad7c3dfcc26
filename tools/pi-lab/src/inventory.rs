//! `pi-lab inventory`: Ansible inventory and Prometheus targets from a lab.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {}

pub fn run(_args: &InventoryArgs) -> Result<ExitCode, crate::NotBuilt> {
    Err(crate::NotBuilt("pi-lab inventory"))
}
