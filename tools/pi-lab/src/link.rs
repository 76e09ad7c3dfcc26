//! `pi-lab lab link`: cut a lab link by hand, and mend it. The port goes
//! admin-down and is marked held down, so the node's agent leaves it down
//! (it brings every other port up again); `up` removes the mark.

use std::process::ExitCode;

use crate::runner::RunnerError;
use crate::running_lab::{RunningLab, RunningLabError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Sets the admin state of one end of a lab link. The other end stays up
but loses its carrier (in the virtual fleet the veth peer sees NO-CARRIER;
on boards the switch port or VLAN peer stops hearing it), so routing on
both sides notices: a BGP session over the link goes down, and validate
fails it. The node's agent leaves a port set down this way down until
`up`, across agent restarts; a reboot brings it up again.

Examples:
  sudo pi-lab lab link examples/fabric.toml leaf1:eth1 down
  sudo pi-lab validate examples/fabric.toml --deadline 10s   # the BGP check fails
  sudo pi-lab lab link examples/fabric.toml leaf1:eth1 up")]
pub struct LinkArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// One end of a lab link: NODE:PORT, as the lab file names it.
    #[arg(value_name = "NODE:PORT")]
    pub end: String,
    /// The admin state to set.
    #[arg(value_enum)]
    pub state: LinkState,
    /// Boards: SSH as USER (default: root with the lab's own key).
    #[arg(long, value_name = "USER", env = "PI_LAB_SSH_USER")]
    pub ssh: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkState {
    Down,
    Up,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Lab(#[from] RunningLabError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

pub fn run(args: &LinkArgs) -> Result<ExitCode, LinkError> {
    let lab = RunningLab::open(&args.lab.file, args.ssh.as_deref())?;
    let (node, port) = lab.link_end(&args.end)?;
    let up = args.state == LinkState::Up;
    lab.runner()?.set_link(&node, &port, up)?;
    let peer = lab.peer(&node, &port).unwrap_or_else(|| "its peer".into());
    if up {
        println!("{node}:{port} is up; {peer} has its carrier back");
    } else {
        println!(
            "{node}:{port} is down (held down: the agent leaves it so); {peer} lost its carrier; \
             `pi-lab lab link FILE {node}:{port} up` mends it"
        );
    }
    Ok(ExitCode::SUCCESS)
}
