//! `pi-lab lab impair`: delay, jitter, loss and a rate limit on one lab
//! port, through the netem qdisc of the node's kernel; `--clear` takes it
//! away. A kernel without netem is said so, and nothing changes.
//!
//! On a port the lab file impairs (`tc` on its link) this is a run-time
//! override: the node's agent leaves it, and `status` shows it `by hand`
//! next to the lab file's value; `--clear` puts the lab file's back.

use std::process::ExitCode;
use std::time::Duration;

use crate::runner::RunnerError;
use crate::running_lab::{RunningLab, RunningLabError};
use lab_spec::impairment::{self, Netem, NetemError};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).multiple(true)
        .args(["delay", "loss", "rate", "clear"])),
    after_help = "Puts netem on the port's egress (`tc qdisc replace dev PORT root netem
...`; the rate is netem's own `rate` option): what the port sends is
delayed, dropped or paced; to impair both directions, impair both ends.
Setting again replaces what was there. On a port the lab file impairs (`tc`
on its link) this overrides the file's value until the file changes or the node
reboots; `status` shows it as `by hand`, and --clear puts the file's back.

Examples:
  sudo pi-lab lab impair examples/fabric.toml leaf1:eth1 --delay 20ms --jitter 5ms
  sudo pi-lab lab impair examples/fabric.toml leaf1:eth1 --loss 1% --rate 10mbit
  sudo pi-lab lab impair examples/fabric.toml leaf1:eth1 --clear

Ranges: delay and jitter 0 to 60s (us, ms, s), loss 0 to 100%, rate above 0
(bit, kbit, mbit, gbit). The node's kernel needs sch_netem: Debian's kernel on
the boards and emulated boards has it; a host kernel without it (the
virtual fleet's namespaces share the host's) is refused and left as it was.")]
pub struct ImpairArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// One end of a lab link: NODE:PORT.
    #[arg(value_name = "NODE:PORT")]
    pub end: String,
    /// Delay every packet: 20ms, 500us, 1s.
    #[arg(long, value_parser = impairment::parse_delay)]
    pub delay: Option<Duration>,
    /// Vary the delay by up to this much: 5ms.
    #[arg(long, value_parser = impairment::parse_delay, requires = "delay")]
    pub jitter: Option<Duration>,
    /// Drop this share of packets: 1%, 0.5%.
    #[arg(long, value_parser = impairment::parse_loss)]
    pub loss: Option<f64>,
    /// Send at most this fast: 10mbit, 512kbit.
    #[arg(long, value_parser = impairment::parse_rate)]
    pub rate: Option<u64>,
    /// Remove the port's impairment (back to the lab file's, if it has one).
    #[arg(long, conflicts_with_all = ["delay", "jitter", "loss", "rate"])]
    pub clear: bool,
    /// Boards: SSH as USER (default: root with the lab's own key).
    #[arg(long, value_name = "USER", env = "PI_LAB_SSH_USER")]
    pub ssh: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    #[error(transparent)]
    Lab(#[from] RunningLabError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error(transparent)]
    Netem(#[from] NetemError),
}

pub fn run(args: &ImpairArgs) -> Result<ExitCode, ImpairError> {
    let netem = (!args.clear)
        .then(|| Netem::new(args.delay, args.jitter, args.loss, args.rate))
        .transpose()?;
    let lab = RunningLab::open(&args.lab.file, args.ssh.as_deref())?;
    let (node, port) = lab.link_end(&args.end)?;
    let runner = lab.runner()?;
    let from_file = lab.node(&node)?.interfaces.iter().find(|i| i.name == port);
    let from_file = from_file.and_then(|i| i.tc.clone());
    match (netem, from_file) {
        (Some(netem), _) => {
            runner.impair(&node, &port, &netem)?;
            println!("{node}:{port}: {netem} on what it sends");
        }
        (None, Some(file)) => {
            runner.impair(&node, &port, &file)?;
            println!("{node}:{port}: back to the lab file's {file}");
        }
        (None, None) if runner.clear_impairment(&node, &port)? => {
            println!("{node}:{port}: impairment removed");
        }
        (None, None) => println!("{node}:{port} had no impairment"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::lab::LabCommand;

    fn parse(args: &[&str]) -> Result<super::ImpairArgs, clap::Error> {
        let mut all = vec!["pi-lab", "lab", "impair", "lab.toml", "leaf1:eth1"];
        all.extend(args);
        match Cli::try_parse_from(all)?.command {
            Command::Lab(LabCommand::Impair(args)) => Ok(args),
            other => panic!("not impair: {other:?}"),
        }
    }

    #[test]
    fn values_are_checked_by_the_command_line() {
        let args = parse(&["--delay", "20ms", "--jitter", "5ms", "--loss", "1%"]).unwrap();
        assert_eq!(args.delay, Some(std::time::Duration::from_millis(20)));
        assert_eq!(args.loss, Some(1.0));
        for (bad, says) in [
            (&["--delay", "90s"][..], "60s"),
            (&["--loss", "150%"], "100%"),
            (&["--rate", "0kbit"], "above 0"),
            (&["--jitter", "5ms"], "--delay"),
            (&[], "--delay"),
            (&["--clear", "--loss", "1%"], "--clear"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        assert!(parse(&["--clear"]).unwrap().clear);
    }
}
