//! `pi-lab lab connect`: a shell, vtysh or one command on a node of a
//! running lab, wherever it runs (a namespace of the virtual fleet, a
//! board over SSH). A command's exit code is pi-lab's; `--all` runs it on
//! every node at once.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Serialize;

use crate::runner::{Output, Runner, RunnerError, Session};
use crate::running_lab::{RunningLab, RunningLabError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Without a command: an interactive shell on the node (in the virtual
fleet, the node's namespace with the node's name as hostname; on boards,
ssh -t). --vtysh opens FRR's shell instead. After `--`: run that command;
its output passes through and its exit code is pi-lab's.

Examples:
  sudo pi-lab lab connect examples/fabric.toml leaf1
  sudo pi-lab lab connect examples/fabric.toml leaf1 --vtysh
  sudo pi-lab lab connect examples/fabric.toml leaf1 --vtysh -- show bgp summary
  sudo pi-lab lab connect examples/fabric.toml h1 -- ip route
  sudo pi-lab lab connect examples/fabric.toml --all -- ip -br addr
  sudo pi-lab lab connect examples/fabric.toml --all --json -- uptime | jq '.[].stdout'

Boards are reached over SSH as root with the lab's own key (emulated boards
have it), or as --ssh USER.

Exit status: the command's; with --all 0 when it succeeded everywhere, 1
when not; 2 when nothing ran (unknown node, lab not running).")]
pub struct ConnectArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// The node to connect to (not with --all).
    #[arg(value_name = "NODE", required_unless_present = "all", conflicts_with = "all")]
    pub node: Option<String>,
    /// The command to run, after `--`. None: an interactive shell.
    #[arg(value_name = "CMD", last = true)]
    pub command: Vec<String>,
    /// FRR's vtysh instead of a shell; with a command, one vtysh command.
    #[arg(long)]
    pub vtysh: bool,
    /// Run the command on every node at once (with --vtysh: every node
    /// that runs FRR); each line is prefixed with its node.
    #[arg(long, requires = "command")]
    pub all: bool,
    /// Print [{node, exit_code, stdout, stderr}] as JSON instead.
    #[arg(long, requires = "command")]
    pub json: bool,
    /// Boards: SSH as USER (default: root with the lab's own key).
    #[arg(long, value_name = "USER", env = "PI_LAB_SSH_USER")]
    pub ssh: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Lab(#[from] RunningLabError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error("{node} runs no FRR (hosts have no routing stack): no vtysh there")]
    NoFrr { node: String },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

/// What a command did on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRun {
    pub node: String,
    /// `None` when the command could not start (stderr says why) or a
    /// signal ended it.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl NodeRun {
    fn of(node: &str, result: Result<Output, RunnerError>) -> NodeRun {
        match result {
            Ok(out) => NodeRun {
                node: node.into(),
                exit_code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            },
            Err(e) => NodeRun {
                node: node.into(),
                exit_code: None,
                stdout: String::new(),
                stderr: format!("{e}\n"),
            },
        }
    }

    fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }
}

pub fn run(args: &ConnectArgs) -> Result<ExitCode, ConnectError> {
    let lab = RunningLab::open(&args.lab.file, args.ssh.as_deref())?;
    let nodes = match &args.node {
        Some(node) => vec![node.clone()],
        None => every_node(&lab, args.vtysh),
    };
    for node in &nodes {
        let config = lab.node(node)?;
        if args.vtysh && !config.runs_frr() {
            return Err(ConnectError::NoFrr { node: node.clone() });
        }
    }
    let runner = lab.runner()?;
    if args.all || args.json {
        let runs = run_everywhere(runner, &nodes, &args.command, args.vtysh, !args.json)?;
        if args.json {
            let text = serde_json::to_string_pretty(&runs).unwrap_or_default();
            write_out(&mut std::io::stdout().lock(), &format!("{text}\n"))?;
        }
        return Ok(if runs.iter().all(NodeRun::ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let node = &nodes[0];
    let session = session(&args.command, args.vtysh);
    // Ctrl-C is the command's (ping prints its summary and exits): pi-lab
    // outlives it and hands back its exit code.
    let _ = crate::interrupt::Interrupt::install();
    let status = runner.interactive(node, &session)?;
    Ok(ExitCode::from(crate::runner::exit_code(status).clamp(0, 255) as u8))
}

/// The nodes `--all` runs on: all of them, or those with FRR for vtysh.
fn every_node(lab: &RunningLab, vtysh: bool) -> Vec<String> {
    lab.fleet
        .nodes
        .values()
        .filter(|c| !vtysh || c.runs_frr())
        .map(|c| c.hostname.clone())
        .collect()
}

/// The session on one node: a shell, vtysh, or the command (with a
/// terminal when both ends are one, so `top` works and pipes stay clean).
fn session(command: &[String], vtysh: bool) -> Session {
    match (command.is_empty(), vtysh) {
        (true, false) => Session::Shell,
        (true, true) => Session::Vtysh(None),
        (false, true) => Session::Vtysh(Some(command.join(" "))),
        (false, false) => Session::Command {
            argv: command.to_vec(),
            tty: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
        },
    }
}

/// How many nodes run the command at once: a 128-node lab on 2 cores must
/// not start 128 ssh or vtysh processes together.
const AT_ONCE: usize = 8;

/// Run on every node, a few at a time; with `print`, each node's lines
/// are printed as soon as it and the nodes before it are done.
fn run_everywhere(
    runner: &dyn Runner,
    nodes: &[String],
    command: &[String],
    vtysh: bool,
    print: bool,
) -> Result<Vec<NodeRun>, ConnectError> {
    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
    let vtysh_line = command.join(" ");
    let one = |node: &str| {
        let result =
            if vtysh { runner.run_vtysh(node, &vtysh_line) } else { runner.run(node, &argv) };
        NodeRun::of(node, result)
    };
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut done: BTreeMap<usize, NodeRun> = BTreeMap::new();
    let mut runs = Vec::with_capacity(nodes.len());
    std::thread::scope(|scope| -> Result<(), ConnectError> {
        for _ in 0..AT_ONCE.min(nodes.len()) {
            let (tx, next, one) = (tx.clone(), &next, &one);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(node) = nodes.get(i) else { break };
                    if tx.send((i, one(node))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, run) in rx {
            done.insert(i, run);
            while let Some(run) = done.remove(&runs.len()) {
                if print {
                    print_prefixed(&run)?;
                }
                runs.push(run);
            }
        }
        Ok(())
    })?;
    Ok(runs)
}

/// A node's output, each line prefixed with `NODE: `; stderr to stderr.
fn print_prefixed(run: &NodeRun) -> Result<(), ConnectError> {
    write_out(&mut std::io::stdout().lock(), &prefixed(&run.node, &run.stdout))?;
    let mut err = prefixed(&run.node, &run.stderr);
    match run.exit_code {
        Some(0) => {}
        Some(code) => err.push_str(&format!("{}: exit {code}\n", run.node)),
        None => err.push_str(&format!("{}: did not exit normally\n", run.node)),
    }
    write_out(&mut std::io::stderr().lock(), &err)
}

fn prefixed(node: &str, text: &str) -> String {
    text.lines().map(|line| format!("{node}: {line}\n")).collect()
}

/// Write, taking a closed pipe (`| head`) as the reader's choice.
fn write_out(out: &mut impl Write, text: &str) -> Result<(), ConnectError> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ConnectError::Output(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_carries_its_node() {
        assert_eq!(prefixed("r1", "a\nb\n"), "r1: a\nr1: b\n");
        assert_eq!(prefixed("r1", "no newline"), "r1: no newline\n");
        assert_eq!(prefixed("r1", ""), "");
    }

    #[test]
    fn the_session_follows_the_arguments() {
        assert_eq!(session(&[], false), Session::Shell);
        assert_eq!(session(&[], true), Session::Vtysh(None));
        let words = ["show".to_string(), "bgp".into(), "summary".into()];
        assert_eq!(session(&words, true), Session::Vtysh(Some("show bgp summary".into())));
        assert!(matches!(session(&words, false), Session::Command { argv, .. } if argv == words));
    }

    #[test]
    fn a_command_that_cannot_start_has_no_exit_code() {
        let err = RunnerError::NotANode { node: "r9".into(), lab: "t".into() };
        let run = NodeRun::of("r9", Err(err));
        assert_eq!(run.exit_code, None);
        assert!(!run.ok() && run.stderr.contains("r9"));
    }

    #[test]
    fn the_command_line_parses() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "pi-lab", "lab", "connect", "lab.toml", "--all", "--json", "--", "ip", "-br", "a",
        ])
        .unwrap();
        let crate::cli::Command::Lab(crate::lab::LabCommand::Connect(args)) = cli.command else {
            panic!("not connect")
        };
        assert!(args.all && args.json && args.node.is_none());
        assert_eq!(args.command, ["ip", "-br", "a"]);
        let both = crate::cli::Cli::try_parse_from([
            "pi-lab", "lab", "connect", "lab.toml", "r1", "--all", "--", "true",
        ]);
        assert!(both.is_err(), "NODE and --all exclude each other");
        let neither = crate::cli::Cli::try_parse_from(["pi-lab", "lab", "connect", "lab.toml"]);
        assert!(neither.is_err(), "a node or --all");
    }
}
