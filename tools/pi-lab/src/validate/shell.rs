//! Running a command on a node, wherever the lab runs: inside the node's
//! network namespace on a virtual fleet (`ip netns exec`, `vtysh -N`), or
//! over SSH on boards (emulated boards are boards reached at their
//! management address too). No agent endpoint runs commands.

use std::process::{Command, Stdio};

use crate::fleet_client::{FleetClient, RunsOn};

/// How commands reach the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// `ip netns exec LAB-NODE ...` (the lab runs as a virtual fleet).
    Netns,
    /// `ssh USER@MGMT ...`; vtysh through `sudo -n` unless USER is root.
    Ssh { user: String },
    /// Neither: checks that need a command are skipped.
    Unavailable,
}

/// What a command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr, for matching and messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Shell {
    /// Inside the namespaces when the lab runs as a virtual fleet, else
    /// SSH when asked for.
    pub fn choose(fleet: &FleetClient, ssh: Option<&str>) -> Shell {
        match (fleet.runs_on, ssh) {
            (RunsOn::VirtualFleet, _) => Shell::Netns,
            (RunsOn::Boards, Some(user)) => Shell::Ssh { user: user.to_string() },
            (RunsOn::Boards, None) => Shell::Unavailable,
        }
    }

    /// Why a command cannot run, when it cannot.
    pub fn unavailable(&self) -> Option<&'static str> {
        match self {
            Shell::Unavailable => Some("needs the virtual fleet or SSH to the nodes (--ssh USER)"),
            _ => None,
        }
    }

    /// `argv` on `node`.
    pub fn command(
        &self,
        fleet: &FleetClient,
        node: &str,
        argv: &[&str],
    ) -> Result<Command, String> {
        match self {
            Shell::Netns => {
                let netns = fleet
                    .netns(node)
                    .ok_or_else(|| format!("{node} has no namespace on this host"))?;
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &netns]).args(argv);
                Ok(c)
            }
            Shell::Ssh { user } => {
                let mut c = self.ssh(fleet, node, user)?;
                // ssh joins its arguments into one shell line: quote them.
                c.arg(argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
                Ok(c)
            }
            Shell::Unavailable => Err(self.unavailable().unwrap_or_default().to_string()),
        }
    }

    /// A shell command line (`sh -c LINE`) on `node`.
    pub fn shell(&self, fleet: &FleetClient, node: &str, line: &str) -> Result<Command, String> {
        match self {
            Shell::Ssh { user } => {
                let mut c = self.ssh(fleet, node, user)?;
                c.arg(line);
                Ok(c)
            }
            _ => self.command(fleet, node, &["sh", "-c", line]),
        }
    }

    /// `vtysh -c COMMAND` against `node`'s FRR.
    pub fn vtysh(&self, fleet: &FleetClient, node: &str, command: &str) -> Result<Command, String> {
        match self {
            Shell::Netns => {
                // vtysh reaches the pathspace's sockets from here.
                let netns = fleet
                    .netns(node)
                    .ok_or_else(|| format!("{node} has no namespace on this host"))?;
                let mut c = Command::new("vtysh");
                c.args(["-N", &netns, "-c", command]);
                Ok(c)
            }
            Shell::Ssh { user } => {
                let sudo = if user == "root" { "" } else { "sudo -n " };
                let mut c = self.ssh(fleet, node, user)?;
                c.arg(format!("{sudo}vtysh -c {}", shell_quote(command)));
                Ok(c)
            }
            Shell::Unavailable => Err(self.unavailable().unwrap_or_default().to_string()),
        }
    }

    fn ssh(&self, fleet: &FleetClient, node: &str, user: &str) -> Result<Command, String> {
        let config =
            fleet.nodes.get(node).ok_or_else(|| format!("{node} is not a node of the lab"))?;
        let target = format!("{user}@{}", config.management.address.addr());
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", &target]);
        Ok(c)
    }
}

/// Run a prepared command: its output, or why it could not start.
pub fn run(command: Result<Command, String>) -> Result<Output, String> {
    let mut command = command?;
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", command.get_program().to_string_lossy()))?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `'text'` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_remote_shell() {
        assert_eq!(shell_quote("10.0.0.1"), "10.0.0.1");
        assert_eq!(shell_quote("show bgp summary json"), "'show bgp summary json'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn ssh_runs_vtysh_through_sudo_unless_root() {
        let fleet = crate::fleet_client::tests::two_node_client();
        let pi = Shell::Ssh { user: "pi".into() };
        let cmd = pi.vtysh(&fleet, "leaf1", "show ip ospf neighbor json").unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args.last().unwrap(), "sudo -n vtysh -c 'show ip ospf neighbor json'");
        assert!(args.contains(&"pi@192.168.200.11".to_string()), "{args:?}");
        let root = Shell::Ssh { user: "root".into() };
        let cmd = root.command(&fleet, "leaf1", &["ping", "-c", "1", "10.0.0.1"]).unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args.last().unwrap(), "ping -c 1 10.0.0.1");
        assert!(Shell::Unavailable.vtysh(&fleet, "leaf1", "x").unwrap_err().contains("--ssh"));
    }
}
