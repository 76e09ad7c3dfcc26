//! Acting on the nodes of a running lab, wherever it runs: one [`Runner`]
//! interface, one implementation per place. [`Netns`]: the virtual fleet,
//! a network namespace per node on this host. [`Ssh`]: boards and emulated
//! boards, reached at their management address (with the lab's own key
//! when it has one). [`choose`] picks one at run time from where the lab's
//! state directory says it runs ([`RunsOn`]), as a debug-probe library
//! picks its backend.
//!
//! `validate`, `lab connect`, `lab link`, `lab impair` and `capture` all
//! act through a runner: there is one way to run a command on a node. Each
//! place only says how a command line reaches a node ([`Runner::command`],
//! [`Runner::vtysh`], [`Runner::session`], [`Runner::spawn`]); the verbs on
//! top (set a link's admin state, impair a port) are the same everywhere.

pub mod netem;
mod netns;
mod remote;
mod ssh;

use std::fmt;
use std::io;
use std::process::{Command, ExitStatus, Stdio};

use lab_spec::node_config::alias;

use crate::fleet_client::{FleetClient, RunsOn};
pub use netem::Netem;
pub use netns::Netns;
pub use remote::Remote;
pub use ssh::{Ssh, shell_quote};

/// Why commands cannot reach the nodes of a lab on boards: no key of the
/// lab's own and no `--ssh USER`.
pub const UNREACHABLE: &str = "needs the virtual fleet or SSH to the nodes (--ssh USER)";

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{node} is not a node of lab {lab}")]
    NotANode { node: String, lab: String },
    #[error("{node}: cannot run {program}: {source}")]
    Spawn { node: String, program: String, source: io::Error },
    #[error("{node}: `{command}` failed: {stderr}")]
    Failed { node: String, command: String, stderr: String },
    #[error(
        "{node}: the kernel there has no {module} module ({what}), so nothing was changed; \
         the emulated boards and real Pi boards (Debian's kernel) have it"
    )]
    MissingModule { node: String, module: &'static str, what: &'static str },
}

/// What a command printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr, for matching and messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// An interactive session on a node, on the user's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// A login shell.
    Shell,
    /// vtysh against the node's FRR: interactive, or one command.
    Vtysh(Option<String>),
    /// A command; `tty`: give it a terminal (over SSH: `ssh -t`).
    Command { argv: Vec<String>, tty: bool },
}

/// How commands reach the nodes of one lab. Implementations only build
/// command lines; every verb is a provided method, the same everywhere.
pub trait Runner: fmt::Debug + Send + Sync {
    /// Where commands run, for messages: `in namespace fabric-leaf1`.
    fn place(&self, node: &str) -> String;

    /// `argv` on `node`, not started. `root`: the command needs root
    /// (capture, link state, qdiscs).
    fn command(&self, node: &str, argv: &[&str], root: bool) -> Result<Command, RunnerError>;

    /// A shell command line on `node` (`sh -c LINE`).
    fn shell(&self, node: &str, line: &str) -> Result<Command, RunnerError>;

    /// `vtysh -c COMMAND` against `node`'s FRR.
    fn vtysh(&self, node: &str, command: &str) -> Result<Command, RunnerError>;

    /// A session on the user's terminal (stdio inherited).
    fn session(&self, node: &str, session: &Session) -> Result<Command, RunnerError>;

    /// Start `argv` as root on `node` with its stdout and stderr piped
    /// back; [`Remote::stop`] (or dropping it) ends it on the node too.
    fn spawn(&self, node: &str, argv: &[&str]) -> Result<Remote, RunnerError>;

    /// Run `argv` on `node` and collect what it printed.
    fn run(&self, node: &str, argv: &[&str]) -> Result<Output, RunnerError> {
        collect(node, self.command(node, argv, false)?)
    }

    /// Run a shell line on `node` and collect what it printed.
    fn run_shell(&self, node: &str, line: &str) -> Result<Output, RunnerError> {
        collect(node, self.shell(node, line)?)
    }

    /// Run one vtysh command against `node`'s FRR.
    fn run_vtysh(&self, node: &str, command: &str) -> Result<Output, RunnerError> {
        collect(node, self.vtysh(node, command)?)
    }

    /// Run a session on the user's terminal until it ends.
    fn interactive(&self, node: &str, session: &Session) -> Result<ExitStatus, RunnerError> {
        let mut command = self.session(node, session)?;
        command.status().map_err(|source| spawn_error(node, &command, source))
    }

    /// Set `port`'s admin state. Down marks the port held down, so the
    /// node's agent leaves it down; up removes the mark.
    fn set_link(&self, node: &str, port: &str, up: bool) -> Result<(), RunnerError> {
        let shown = self.checked(node, &["ip", "-j", "link", "show", "dev", port], false)?;
        let argv = link_argv(port, alias_in(&shown).as_deref(), up);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.checked(node, &argv, true).map(drop)
    }

    /// Stop `node`'s routing (FRR) and keep it stopped against the node's
    /// agent, which would start it again; `run`: start it and hand it back
    /// to the agent. On a board: frr.service masked for this boot, then
    /// unmasked.
    fn set_routing(&self, node: &str, run: bool) -> Result<(), RunnerError> {
        let line = if run {
            "systemctl unmask --runtime frr.service && systemctl start frr.service"
        } else {
            "systemctl mask --runtime --now frr.service"
        };
        self.checked(node, &["sh", "-c", line], true).map(drop)
    }

    /// Whether `node`'s routing (FRR) runs.
    fn routing_runs(&self, node: &str) -> Result<bool, RunnerError> {
        let out = self.run(node, &["systemctl", "is-active", "frr.service"])?;
        Ok(out.stdout.trim() == "active")
    }

    /// Put `netem` on `port` as its root qdisc, replacing what was there.
    /// Nothing changes when the node's kernel has no netem.
    fn impair(&self, node: &str, port: &str, netem: &Netem) -> Result<(), RunnerError> {
        self.require_netem(node)?;
        let argv = netem.tc_replace(port);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        match self.checked(node, &argv, true) {
            Err(RunnerError::Failed { stderr, .. }) if netem::kind_unknown(&stderr) => {
                Err(netem::missing(node))
            }
            other => other.map(drop),
        }
    }

    /// Remove the netem qdisc of `port`; false when it had none (a root
    /// qdisc of another kind stays).
    fn clear_impairment(&self, node: &str, port: &str) -> Result<bool, RunnerError> {
        let shown = self.checked(node, &["tc", "qdisc", "show", "dev", port, "root"], false)?;
        if !netem::is_netem(&shown) {
            return Ok(false);
        }
        self.checked(node, &["tc", "qdisc", "del", "dev", port, "root"], true)?;
        Ok(true)
    }

    /// The current root qdisc of `port`, as `tc` shows it.
    fn qdisc(&self, node: &str, port: &str) -> Result<String, RunnerError> {
        self.checked(node, &["tc", "qdisc", "show", "dev", port, "root"], false)
    }

    /// Whether `node`'s kernel can give netem (loaded, built in, or a
    /// module to load); asked before anything changes.
    fn require_netem(&self, node: &str) -> Result<(), RunnerError> {
        let out = self.run_shell(node, &netem::probe_line())?;
        match out.code {
            Some(0) => Ok(()),
            Some(netem::PROBE_MISSING) => Err(netem::missing(node)),
            _ => Err(RunnerError::Failed {
                node: node.to_string(),
                command: "looking for sch_netem".into(),
                stderr: out.text().trim().to_string(),
            }),
        }
    }

    /// Run `argv` (as root if `root`); its stdout, or an error with stderr.
    fn checked(&self, node: &str, argv: &[&str], root: bool) -> Result<String, RunnerError> {
        let out = collect(node, self.command(node, argv, root)?)?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(RunnerError::Failed {
                node: node.to_string(),
                command: argv.join(" "),
                stderr: out.text().trim().to_string(),
            })
        }
    }
}

/// The runner for where `fleet` runs: the namespaces of a virtual fleet,
/// else SSH as `ssh_user` or as root with the lab's own key (which pi-lab
/// puts on the cards of emulated boards). `None`: no way to the nodes.
pub fn choose(fleet: &FleetClient, ssh_user: Option<&str>) -> Option<Box<dyn Runner>> {
    let key = crate::secrets::SshKey::existing(&fleet.lab);
    let options = key.as_ref().map(crate::secrets::SshKey::ssh_options).unwrap_or_default();
    let user = match (fleet.runs_on, ssh_user, key) {
        (RunsOn::VirtualFleet, _, _) => return Some(Box::new(Netns::new(fleet))),
        (_, Some(user), _) => user.to_string(),
        (_, None, Some(_)) => "root".to_string(),
        (_, None, None) => return None,
    };
    Some(Box::new(Ssh::new(fleet, user, options)))
}

/// Run a prepared command with no input: its output, or why it could not
/// start.
pub fn collect(node: &str, mut command: Command) -> Result<Output, RunnerError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| spawn_error(node, &command, source))?;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn spawn_error(node: &str, command: &Command, source: io::Error) -> RunnerError {
    RunnerError::Spawn {
        node: node.to_string(),
        program: command.get_program().to_string_lossy().into_owned(),
        source,
    }
}

/// The exit code a shell would report for `status`: the code, or 128 +
/// the signal that ended it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// The alias of the one link `ip -j link show dev PORT` printed.
fn alias_in(json: &str) -> Option<String> {
    let links: serde_json::Value = serde_json::from_str(json).ok()?;
    links.get(0)?.get("ifalias")?.as_str().map(str::to_string)
}

/// `ip link set` for `port` going `up` or down, given its `alias` now.
/// Down: marked held down, keeping an agent-made device the agent's. Up:
/// the mark goes, and an alias someone else gave stays.
fn link_argv(port: &str, current: Option<&str>, up: bool) -> Vec<String> {
    let owned = matches!(current, Some(alias::OWNER | alias::OWNER_HELD_DOWN));
    let new_alias = match (up, owned, current) {
        (false, true, _) => Some(alias::OWNER_HELD_DOWN),
        (false, false, _) => Some(alias::HELD_DOWN),
        (true, true, _) => Some(alias::OWNER),
        (true, false, Some(alias::HELD_DOWN)) => Some(""),
        (true, false, _) => None,
    };
    let mut argv: Vec<String> = ["ip", "link", "set", "dev", port].map(String::from).to_vec();
    if let Some(new_alias) = new_alias {
        argv.extend(["alias".to_string(), new_alias.to_string()]);
    }
    argv.push(if up { "up" } else { "down" }.to_string());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_marks_the_port_held_down_and_up_takes_the_mark_away() {
        let line = |current, up| link_argv("eth1", current, up).join(" ");
        assert_eq!(line(None, false), "ip link set dev eth1 alias held down down");
        assert_eq!(line(Some("held down"), true), "ip link set dev eth1 alias  up");
        assert_eq!(line(Some("pi-lab"), false), "ip link set dev eth1 alias pi-lab held down down");
        assert_eq!(line(Some("pi-lab held down"), true), "ip link set dev eth1 alias pi-lab up");
        assert_eq!(line(Some("uplink to isp"), true), "ip link set dev eth1 up");
        assert_eq!(line(None, true), "ip link set dev eth1 up");
        let argv = link_argv("eth0.101", Some("pi-lab"), false);
        assert_eq!(argv[6], "pi-lab held down", "one argument, spaces and all");
    }

    #[test]
    fn the_alias_comes_from_ip_json() {
        assert_eq!(
            alias_in(r#"[{"ifname":"eth1","ifalias":"held down"}]"#).as_deref(),
            Some("held down")
        );
        assert_eq!(alias_in(r#"[{"ifname":"eth1"}]"#), None);
        assert_eq!(alias_in("not json"), None);
    }

    #[test]
    fn without_the_fleet_or_a_key_there_is_no_runner() {
        let fleet = crate::fleet_client::tests::two_node_client();
        assert!(choose(&fleet, None).is_none());
        let ssh = choose(&fleet, Some("pi")).expect("SSH as pi");
        assert_eq!(ssh.place("leaf1"), "over SSH as pi@192.168.200.11");
    }

    #[test]
    fn exit_codes_are_a_shells() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
