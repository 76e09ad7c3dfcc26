//! Boards, real or emulated: a node is `USER@MGMT` over SSH, with the
//! lab's own key and known hosts when the lab has them. Commands that need
//! root go through `sudo -n` unless USER is root.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::{Remote, Runner, RunnerError, Session};
use crate::fleet_client::FleetClient;

#[derive(Debug, Clone)]
pub struct Ssh {
    lab: String,
    user: String,
    /// The lab's key and known hosts (`SshKey::ssh_options`), or none.
    options: Vec<String>,
    /// Node name to its management address.
    addresses: BTreeMap<String, Ipv4Addr>,
}

impl Ssh {
    pub fn new(fleet: &FleetClient, user: String, options: Vec<String>) -> Ssh {
        let addresses =
            fleet.nodes.iter().map(|(n, c)| (n.clone(), c.management.address.addr())).collect();
        Ssh { lab: fleet.lab.clone(), user, options, addresses }
    }

    fn sudo(&self) -> &'static str {
        if self.user == "root" { "" } else { "sudo -n " }
    }

    /// `ssh [OPTIONS] -o ... USER@MGMT` for `node`. Batch mode and a 10 s
    /// connect timeout: an emulated board under load answers slowly; a
    /// dead one still fails fast.
    fn ssh(&self, node: &str) -> Result<Command, RunnerError> {
        self.ssh_with(node, &["-o", "BatchMode=yes"])
    }

    /// `ssh` for someone at a terminal: a password or passphrase may be
    /// asked; `tty` gives the remote command a terminal.
    fn ssh_for_a_person(&self, node: &str, tty: bool) -> Result<Command, RunnerError> {
        self.ssh_with(node, if tty { &["-t"] } else { &[] })
    }

    /// `ssh OPTIONS -o ConnectTimeout=10 EXTRA... USER@MGMT`.
    fn ssh_with(&self, node: &str, extra: &[&str]) -> Result<Command, RunnerError> {
        let address = self
            .addresses
            .get(node)
            .ok_or_else(|| RunnerError::NotANode { node: node.into(), lab: self.lab.clone() })?;
        let mut c = Command::new("ssh");
        c.args(&self.options).args(["-o", "ConnectTimeout=10"]).args(extra);
        c.arg(format!("{}@{address}", self.user));
        Ok(c)
    }
}

impl Ssh {
    /// The line sshd hands the board's shell for [`Runner::spawn`].
    fn spawn_line(&self, argv: &[&str]) -> String {
        format!("{}sh -c {}", self.sudo(), shell_quote(&ends_with_stdin(argv)))
    }
}

impl Runner for Ssh {
    fn place(&self, node: &str) -> String {
        let address = self.addresses.get(node).map(ToString::to_string).unwrap_or_default();
        format!("over SSH as {}@{address}", self.user)
    }

    fn command(&self, node: &str, argv: &[&str], root: bool) -> Result<Command, RunnerError> {
        let mut c = self.ssh(node)?;
        let sudo = if root { self.sudo() } else { "" };
        // ssh joins its arguments into one shell line: quote them.
        c.arg(format!("{sudo}{}", quote_all(argv)));
        Ok(c)
    }

    fn shell(&self, node: &str, line: &str) -> Result<Command, RunnerError> {
        let mut c = self.ssh(node)?;
        c.arg(line);
        Ok(c)
    }

    fn vtysh(&self, node: &str, command: &str) -> Result<Command, RunnerError> {
        let mut c = self.ssh(node)?;
        c.arg(format!("{}vtysh -c {}", self.sudo(), shell_quote(command)));
        Ok(c)
    }

    fn session(&self, node: &str, session: &Session) -> Result<Command, RunnerError> {
        // Here sudo may ask for a password: the user is at the terminal.
        let sudo = if self.user == "root" { "" } else { "sudo " };
        match session {
            Session::Shell => self.ssh_for_a_person(node, true),
            Session::Vtysh(None) => {
                let mut c = self.ssh_for_a_person(node, true)?;
                c.arg(format!("{sudo}vtysh"));
                Ok(c)
            }
            Session::Vtysh(Some(command)) => {
                let mut c = self.ssh_for_a_person(node, false)?;
                c.arg(format!("{sudo}vtysh -c {}", shell_quote(command)));
                Ok(c)
            }
            Session::Command { argv, tty } => {
                let mut c = self.ssh_for_a_person(node, *tty)?;
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                c.arg(quote_all(&argv));
                Ok(c)
            }
        }
    }

    fn spawn(&self, node: &str, argv: &[&str]) -> Result<Remote, RunnerError> {
        let mut c = self.ssh(node)?;
        c.arg(self.spawn_line(argv))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().map_err(|source| super::spawn_error(node, &c, source))?;
        Ok(Remote::hung_up(node, child))
    }
}

/// A shell line that runs `argv` until it ends or its stdin closes,
/// whichever is first. Killing the local ssh client closes the session
/// but does not stop the remote command (it has no terminal to lose),
/// and a quiet capture would never notice a closed pipe: a watcher reads
/// the session's stdin and kills the command at its end. Background jobs
/// get /dev/null for stdin, so the session's stdin is kept as fd 3, and
/// the watcher holds no stdout, so the session ends with the command.
pub fn ends_with_stdin(argv: &[&str]) -> String {
    format!(
        "exec 3<&0 </dev/null; {} & p=$!; (cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null) \
         >/dev/null 2>&1 & exec 3<&-; wait $p",
        quote_all(argv)
    )
}

fn quote_all(argv: &[&str]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
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
    use std::io::Read;
    use std::time::{Duration, Instant};

    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn ssh(user: &str) -> Ssh {
        let fleet = crate::fleet_client::tests::two_node_client();
        Ssh::new(&fleet, user.into(), vec!["-i".into(), "/k".into()])
    }

    #[test]
    fn quoting_survives_a_remote_shell() {
        assert_eq!(shell_quote("10.0.0.1"), "10.0.0.1");
        assert_eq!(shell_quote("show bgp summary json"), "'show bgp summary json'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn ssh_runs_vtysh_and_root_commands_through_sudo_unless_root() {
        let pi = ssh("pi");
        let args_of = |c| args(&c);
        let cmd = args_of(pi.vtysh("leaf1", "show ip ospf neighbor json").unwrap());
        assert_eq!(cmd.last().unwrap(), "sudo -n vtysh -c 'show ip ospf neighbor json'");
        assert!(cmd.contains(&"pi@192.168.200.11".to_string()), "{cmd:?}");
        assert_eq!(cmd[..2], ["-i", "/k"], "the lab's key comes first");
        let at = |word: &str| cmd.iter().position(|a| a == word).unwrap();
        assert!(
            at("BatchMode=yes") < at("pi@192.168.200.11"),
            "options before the target: {cmd:?}"
        );
        let cmd = args_of(
            pi.command("leaf1", &["ip", "link", "set", "dev", "eth1", "up"], true).unwrap(),
        );
        assert_eq!(cmd.last().unwrap(), "sudo -n ip link set dev eth1 up");
        let cmd = args_of(pi.command("leaf1", &["uptime"], false).unwrap());
        assert_eq!(cmd.last().unwrap(), "uptime");
        let root = ssh("root");
        let cmd = args_of(root.command("leaf1", &["ping", "-c", "1", "10.0.0.1"], true).unwrap());
        assert_eq!(cmd.last().unwrap(), "ping -c 1 10.0.0.1");
    }

    #[test]
    fn sessions_get_a_terminal_when_a_person_needs_one() {
        let pi = ssh("pi");
        let shell = args(&pi.session("leaf1", &Session::Shell).unwrap());
        assert!(shell.contains(&"-t".to_string()), "{shell:?}");
        assert!(!shell.contains(&"BatchMode=yes".to_string()), "a password may be asked");
        let vtysh = args(&pi.session("leaf1", &Session::Vtysh(None)).unwrap());
        assert_eq!(vtysh.last().unwrap(), "sudo vtysh");
        let argv = vec!["cat".to_string(), "/etc/frr/frr.conf".to_string()];
        let piped = args(&pi.session("leaf1", &Session::Command { argv, tty: false }).unwrap());
        assert!(!piped.contains(&"-t".to_string()), "binary output stays clean: {piped:?}");
        assert_eq!(piped.last().unwrap(), "cat /etc/frr/frr.conf");
    }

    /// What the node's shell does with the line `spawn` sends: the command
    /// ends when the session's stdin closes, and its output still arrives.
    #[test]
    fn a_spawned_command_ends_when_its_session_closes() {
        let line = ends_with_stdin(&["sh", "-c", "echo ready; exec sleep 60"]);
        let mut child = Command::new("sh")
            .args(["-c", &line])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        let started = Instant::now();
        drop(child.stdin.take());
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        child.wait().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "sleep was killed, not waited for");
    }

    /// The whole line as the board's shell gets it from sshd (`sh -c
    /// LINE`), quoting and all: a filter with spaces and quotes arrives
    /// as one argument.
    #[test]
    fn the_spawn_line_survives_the_boards_shell() {
        let line = ssh("root").spawn_line(&["printf", "%s|", "tcp port 179", "it's"]);
        let mut child = Command::new("sh")
            .args(["-c", &line])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let _session = child.stdin.take(); // open until the command is done
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(out, "tcp port 179|it's|");
        assert!(ssh("pi").spawn_line(&["tcpdump"]).starts_with("sudo -n sh -c "));
    }

    #[test]
    fn a_spawned_command_that_ends_by_itself_ends_the_session() {
        let line = ends_with_stdin(&["echo", "done"]);
        let mut child = Command::new("sh")
            .args(["-c", &line])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // stdin stays open: the output must end anyway.
        let _stdin = child.stdin.take();
        let started = Instant::now();
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(out, b"done\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
