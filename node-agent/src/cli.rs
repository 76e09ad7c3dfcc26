//! The command line of `node-agent`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "node-agent",
    version,
    about = "The pi-lab agent: brings up a node's lab role and reports its health",
    after_help = "Examples:
  node-agent run --config /boot/firmware/pi-lab/node.toml
  node-agent apply --config node.toml --dry-run"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the service: reconcile, export sFlow, serve the health API.
    Run {
        /// NodeConfig file (TOML).
        #[arg(long, env = "NODE_AGENT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Reconcile once and exit.
    Apply {
        #[arg(long, env = "NODE_AGENT_CONFIG")]
        config: PathBuf,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
