//! The command line of `node-agent`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "node-agent",
    version,
    about = "The pi-lab agent: brings up a node's lab role and reports its health",
    after_help = "Examples:
  node-agent run --config /boot/firmware/pi-lab/node.toml
  node-agent apply --config node.toml --dry-run
  ip netns exec fabric-leaf1 node-agent run --config leaf1.toml \\
      --frr-pathspace fabric-leaf1 --state-dir /var/lib/pi-lab/fabric/leaf1"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the service: reconcile every interval and on link changes,
    /// reload the config file when it changes, keep FRR in step.
    Run {
        /// NodeConfig file (TOML). Without it the agent starts from the
        /// last good config in the state directory, if any.
        #[arg(long, env = "NODE_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Seconds between reconcile passes.
        #[arg(long, env = "NODE_AGENT_INTERVAL", default_value_t = 10)]
        interval: u64,
        /// The agent owns this machine (a board, not a virtual fleet node):
        /// it keeps the hostname (kernel, /etc/hostname, /etc/hosts) equal
        /// to the config's and takes the controller's time when no NTP
        /// server keeps the clock.
        #[arg(long, env = "NODE_AGENT_BOARD")]
        board: bool,
        /// A directory of lock files (`slot-0`, `slot-1`, ...) shared by
        /// every agent on this host: a read of FRR's routing state holds
        /// one, so the agents of a virtual fleet never read more at once
        /// than there are slots. `pi-lab lab up` makes one per core.
        #[arg(long, env = "NODE_AGENT_READ_SLOTS", value_name = "DIR")]
        read_slots: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Reconcile once and exit (non-zero if anything failed).
    Apply {
        /// NodeConfig file (TOML).
        #[arg(long, env = "NODE_AGENT_CONFIG")]
        config: PathBuf,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// Settings shared by `run` and `apply`.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// FRR pathspace (`-N NAME`) when several FRR instances share a host.
    #[arg(long, env = "NODE_AGENT_FRR_PATHSPACE")]
    pub frr_pathspace: Option<String>,
    /// Where frr.conf lives [default: /etc/frr, or /etc/frr/NAME with a pathspace].
    #[arg(long, env = "NODE_AGENT_FRR_DIR")]
    pub frr_dir: Option<PathBuf>,
    /// The vtysh binary.
    #[arg(long, env = "NODE_AGENT_VTYSH", default_value = "vtysh")]
    pub vtysh: PathBuf,
    /// Leave FRR alone (no frr.conf, no reload): network only.
    #[arg(long, env = "NODE_AGENT_NO_FRR")]
    pub no_frr: bool,
    /// Where the last good config is kept.
    #[arg(long, env = "NODE_AGENT_STATE_DIR", default_value = "/var/lib/node-agent")]
    pub state_dir: PathBuf,
}
