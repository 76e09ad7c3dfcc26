//! The virtual fleet: a node is a network namespace `LAB-NODE` on this
//! host, its FRR a pathspace of the same name.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use super::{Remote, Runner, RunnerError, Session};
use crate::fleet::frr;
use crate::fleet_client::FleetClient;

#[derive(Debug, Clone)]
pub struct Netns {
    lab: String,
    nodes: BTreeSet<String>,
}

impl Netns {
    pub fn new(fleet: &FleetClient) -> Netns {
        Netns { lab: fleet.lab.clone(), nodes: fleet.nodes.keys().cloned().collect() }
    }

    /// `node`'s namespace (and FRR pathspace).
    fn netns(&self, node: &str) -> Result<String, RunnerError> {
        if !self.nodes.contains(node) {
            return Err(RunnerError::NotANode { node: node.into(), lab: self.lab.clone() });
        }
        Ok(crate::lab_host::names::netns(&self.lab, node))
    }

    /// `ip netns exec NETNS ARGV...`; `ip` execs the command, so the child
    /// is the command itself.
    fn exec(&self, node: &str, argv: &[&str]) -> Result<Command, RunnerError> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns(node)?]).args(argv);
        Ok(c)
    }

    /// The user's shell in the namespace. The namespace shares this host's
    /// hostname: with `unshare` the shell gets a UTS namespace of its own
    /// named after the node, so the prompt says where it is.
    fn login(&self, node: &str) -> Result<Command, RunnerError> {
        let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty());
        let shell = shell.unwrap_or_else(|| "bash".to_string());
        let mut c = if crate::programs::on_path("unshare") {
            let line = r#"hostname "$0" 2>/dev/null; exec "$1""#;
            self.exec(node, &["unshare", "--uts", "sh", "-c", line, node, &shell])?
        } else {
            self.exec(node, &[&shell])?
        };
        c.env("PI_LAB_LAB", &self.lab).env("PI_LAB_NODE", node);
        Ok(c)
    }
}

impl Runner for Netns {
    /// The pathspace's FRR, as `lab up` starts it; the fleet's agents
    /// never start FRR themselves, so a stopped one stays stopped.
    fn set_routing(&self, node: &str, run: bool) -> Result<(), RunnerError> {
        let ns = self.netns(node)?;
        let done = if run { frr::start(&ns, node) } else { frr::stop(&ns) };
        done.map_err(|e| RunnerError::Failed {
            node: node.to_string(),
            command: format!("frrinit.sh {} {ns}", if run { "start" } else { "stop" }),
            stderr: e.to_string(),
        })
    }

    fn routing_runs(&self, node: &str) -> Result<bool, RunnerError> {
        Ok(frr::running(&self.netns(node)?))
    }

    fn place(&self, node: &str) -> String {
        format!("in namespace {}", crate::lab_host::names::netns(&self.lab, node))
    }

    fn command(&self, node: &str, argv: &[&str], _root: bool) -> Result<Command, RunnerError> {
        self.exec(node, argv)
    }

    fn shell(&self, node: &str, line: &str) -> Result<Command, RunnerError> {
        self.exec(node, &["sh", "-c", line])
    }

    fn vtysh(&self, node: &str, command: &str) -> Result<Command, RunnerError> {
        // vtysh reaches the pathspace's sockets from here.
        let mut c = Command::new("vtysh");
        c.args(["-N", &self.netns(node)?, "-c", command]);
        Ok(c)
    }

    fn session(&self, node: &str, session: &Session) -> Result<Command, RunnerError> {
        match session {
            Session::Shell => self.login(node),
            Session::Vtysh(command) => {
                let mut c = Command::new("vtysh");
                c.args(["-N", &self.netns(node)?]);
                if let Some(command) = command {
                    c.args(["-c", command]);
                }
                Ok(c)
            }
            Session::Command { argv, .. } => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                self.exec(node, &argv)
            }
        }
    }

    fn spawn(&self, node: &str, argv: &[&str]) -> Result<Remote, RunnerError> {
        let mut c = self.exec(node, argv)?;
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().map_err(|source| super::spawn_error(node, &c, source))?;
        Ok(Remote::signalled(node, child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_client::RunsOn;

    fn runner() -> Netns {
        let mut fleet = crate::fleet_client::tests::two_node_client();
        fleet.runs_on = RunsOn::VirtualFleet;
        Netns::new(&fleet)
    }

    fn args(c: &Command) -> Vec<String> {
        let mut all = vec![c.get_program().to_string_lossy().into_owned()];
        all.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        all
    }

    #[test]
    fn commands_run_in_the_nodes_namespace_and_vtysh_in_its_pathspace() {
        let r = runner();
        let c = r.command("leaf1", &["ip", "-br", "link"], true).unwrap();
        assert_eq!(args(&c), ["ip", "netns", "exec", "t5-leaf1", "ip", "-br", "link"]);
        let c = r.vtysh("spine1", "show bgp summary json").unwrap();
        assert_eq!(args(&c), ["vtysh", "-N", "t5-spine1", "-c", "show bgp summary json"]);
        let c = r.session("spine1", &Session::Vtysh(None)).unwrap();
        assert_eq!(args(&c), ["vtysh", "-N", "t5-spine1"]);
        let err = r.command("leaf9", &["true"], false).unwrap_err();
        assert!(matches!(err, RunnerError::NotANode { .. }), "{err}");
    }

    #[test]
    fn the_login_shell_knows_its_node() {
        let c = runner().session("leaf1", &Session::Shell).unwrap();
        let all = args(&c);
        assert_eq!(all[..4], ["ip", "netns", "exec", "t5-leaf1"]);
        let envs: Vec<_> = c.get_envs().collect();
        assert!(envs.contains(&("PI_LAB_NODE".as_ref(), Some("leaf1".as_ref()))), "{envs:?}");
    }
}
