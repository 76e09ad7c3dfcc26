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
    /// `options` name the lab's own key and known hosts when it has a key.
    Ssh { user: String, options: Vec<String> },
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
    /// SSH: as the user asked for, or as root with the lab's own key
    /// (`STATE/LAB/ssh/`, which pi-lab puts on the cards of emulated
    /// boards), else not at all.
    pub fn choose(fleet: &FleetClient, ssh: Option<&str>) -> Shell {
        let key = crate::secrets::SshKey::existing(&fleet.lab);
        let options = key.as_ref().map(crate::secrets::SshKey::ssh_options).unwrap_or_default();
        match (fleet.runs_on, ssh, key) {
            (RunsOn::VirtualFleet, _, _) => Shell::Netns,
            (_, Some(user), _) => Shell::Ssh { user: user.to_string(), options },
            (_, None, Some(_)) => Shell::Ssh { user: "root".into(), options },
            (_, None, None) => Shell::Unavailable,
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
            Shell::Ssh { user, options } => {
                let mut c = ssh(fleet, node, user, options)?;
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
            Shell::Ssh { user, options } => {
                let mut c = ssh(fleet, node, user, options)?;
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
            Shell::Ssh { user, options } => {
                let sudo = if user == "root" { "" } else { "sudo -n " };
                let mut c = ssh(fleet, node, user, options)?;
                c.arg(format!("{sudo}vtysh -c {}", shell_quote(command)));
                Ok(c)
            }
            Shell::Unavailable => Err(self.unavailable().unwrap_or_default().to_string()),
        }
    }
}

/// `ssh [OPTIONS] USER@MGMT` for `node`. A 10 s connect timeout: an
/// emulated board under load answers slowly; a dead one still fails fast.
fn ssh(fleet: &FleetClient, node: &str, user: &str, options: &[String]) -> Result<Command, String> {
    let config = fleet.nodes.get(node).ok_or_else(|| format!("{node} is not a node of the lab"))?;
    let target = format!("{user}@{}", config.management.address.addr());
    let mut c = Command::new("ssh");
    c.args(options).args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", &target]);
    Ok(c)
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
        let pi = Shell::Ssh { user: "pi".into(), options: vec!["-i".into(), "/k".into()] };
        let cmd = pi.vtysh(&fleet, "leaf1", "show ip ospf neighbor json").unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args.last().unwrap(), "sudo -n vtysh -c 'show ip ospf neighbor json'");
        assert!(args.contains(&"pi@192.168.200.11".to_string()), "{args:?}");
        assert_eq!(args[..2], ["-i", "/k"], "the lab's key comes first");
        let root = Shell::Ssh { user: "root".into(), options: Vec::new() };
        let cmd = root.command(&fleet, "leaf1", &["ping", "-c", "1", "10.0.0.1"]).unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args.last().unwrap(), "ping -c 1 10.0.0.1");
        assert!(Shell::Unavailable.vtysh(&fleet, "leaf1", "x").unwrap_err().contains("--ssh"));
    }
}
