//! What the commands that work in a running lab share (`lab connect`,
//! `lab link`, `lab impair`, `capture`): the lab file read once, where the
//! lab runs, the runner that reaches its nodes, and `NODE:PORT` arguments
//! checked against the lab file before anything runs.

use std::path::Path;
use std::time::Duration;

use lab_spec::NodeConfig;
use lab_spec::diagnostics::list;

use crate::fleet_client::{FleetClient, RunsOn};
use crate::lab_file::{CompiledLab, LabFileError};
use crate::runner::{self, Runner, RunnerError};

#[derive(Debug, thiserror::Error)]
pub enum RunningLabError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error(
        "lab {lab} does not run on this host (no `pi-lab lab up` record) and pi-lab has no SSH \
         key of the lab's own for boards: start it with `pi-lab lab up FILE`, or reach boards \
         with --ssh USER"
    )]
    Unreachable { lab: String },
    #[error("{0:?} is not NODE:PORT (write e.g. leaf1:eth1)")]
    NotNodePort(String),
    #[error("{node}:{port} is not a lab link of {node}; {node}'s link ports are: {ports}")]
    NotALinkPort { node: String, port: String, ports: String },
    #[error("{node} has no interface {port} in the lab; it has: {ports}")]
    NoSuchPort { node: String, port: String, ports: String },
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

/// A lab file, where it runs and how to reach its nodes.
#[derive(Debug)]
pub struct RunningLab {
    pub lab: CompiledLab,
    pub fleet: FleetClient,
    runner: Option<Box<dyn Runner>>,
}

impl RunningLab {
    /// The lab of `file`, reached over SSH as `ssh_user` on boards.
    pub fn open(file: &Path, ssh_user: Option<&str>) -> Result<RunningLab, RunningLabError> {
        let lab = CompiledLab::load(file)?;
        let fleet = FleetClient::open(&lab, Duration::from_secs(5));
        let runner = runner::choose(&fleet, ssh_user);
        Ok(RunningLab { lab, fleet, runner })
    }

    pub fn name(&self) -> &str {
        self.lab.name()
    }

    pub fn runs_on(&self) -> RunsOn {
        self.fleet.runs_on
    }

    /// The runner, or why no command can reach the nodes. Asked only
    /// after the arguments are checked: a typo is reported as one.
    pub fn runner(&self) -> Result<&dyn Runner, RunningLabError> {
        self.runner
            .as_deref()
            .ok_or_else(|| RunningLabError::Unreachable { lab: self.name().to_string() })
    }

    /// `node`'s config where the lab runs, or an error naming the nodes.
    pub fn node(&self, node: &str) -> Result<&NodeConfig, RunningLabError> {
        self.fleet.nodes.get(node).ok_or_else(|| self.lab.unknown_node(node).into())
    }

    /// `NODE:PORT` where PORT is one end of a lab link of NODE.
    pub fn link_end(&self, text: &str) -> Result<(String, String), RunningLabError> {
        let (node, port) = split_node_port(text)?;
        self.node(&node)?;
        let ports = self.lab.lab.link_ports(&node);
        if !ports.contains(&port) {
            let ports = if ports.is_empty() { "none".into() } else { list(&strs(&ports)) };
            return Err(RunningLabError::NotALinkPort { node, port, ports });
        }
        Ok((node, port))
    }

    /// `NODE:PORT` where PORT is any interface the lab gives NODE.
    pub fn interface(&self, text: &str) -> Result<(String, String), RunningLabError> {
        let (node, port) = split_node_port(text)?;
        let interfaces = interfaces(self.node(&node)?);
        if !interfaces.contains(&port) {
            let ports = list(&strs(&interfaces));
            return Err(RunningLabError::NoSuchPort { node, port, ports });
        }
        Ok((node, port))
    }

    /// The other end of the lab link at `node:port`, as `NODE:PORT`.
    pub fn peer(&self, node: &str, port: &str) -> Option<String> {
        self.lab.lab.links.iter().find_map(|l| {
            let is = |e: &lab_spec::lab::Endpoint| e.node == node && e.interface == port;
            if is(&l.a) {
                Some(l.b.key())
            } else if is(&l.b) {
                Some(l.a.key())
            } else {
                None
            }
        })
    }
}

fn strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// `leaf1:eth1` as (`leaf1`, `eth1`).
pub fn split_node_port(text: &str) -> Result<(String, String), RunningLabError> {
    match text.split_once(':') {
        Some((node, port)) if !node.is_empty() && !port.is_empty() && !port.contains(':') => {
            Ok((node.to_string(), port.to_string()))
        }
        _ => Err(RunningLabError::NotNodePort(text.to_string())),
    }
}

/// Every interface the lab gives a node: its ports, segment bridges and
/// VXLAN devices, management port and loopback, in name order.
pub fn interfaces(config: &NodeConfig) -> Vec<String> {
    let mut names: Vec<String> = config.interfaces.iter().map(|i| i.name.clone()).collect();
    for segment in &config.vxlan {
        names.extend([segment.bridge.clone(), segment.device.clone()]);
    }
    names.extend(config.management.interface.clone());
    names.push("lo".into());
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab_file::LabFile;

    fn fabric() -> RunningLab {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fabric.toml");
        let lab = LabFile::load(&path).unwrap().compile_with("unit".into());
        let fleet = FleetClient::with_runs_on(&lab, RunsOn::VirtualFleet, Duration::from_secs(1));
        let runner = runner::choose(&fleet, None);
        RunningLab { lab, fleet, runner }
    }

    #[test]
    fn node_port_arguments_are_split_once() {
        assert_eq!(split_node_port("leaf1:eth1").unwrap(), ("leaf1".into(), "eth1".into()));
        for bad in ["leaf1", ":eth1", "leaf1:", "a:b:c"] {
            assert!(split_node_port(bad).unwrap_err().to_string().contains("NODE:PORT"), "{bad}");
        }
    }

    #[test]
    fn a_link_end_must_be_a_lab_link_of_the_node() {
        let lab = fabric();
        let ports = lab.lab.lab.link_ports("leaf1");
        assert!(ports.len() >= 2, "{ports:?}");
        let first = format!("leaf1:{}", ports[0]);
        assert_eq!(lab.link_end(&first).unwrap().1, ports[0]);
        assert!(lab.peer("leaf1", &ports[0]).is_some());
        let err = lab.link_end("leaf1:eth9").unwrap_err().to_string();
        assert!(err.contains("not a lab link of leaf1") && err.contains(&ports[0]), "{err}");
        let err = lab.link_end("leaf9:eth1").unwrap_err().to_string();
        assert!(err.contains("no node named \"leaf9\"") && err.contains("leaf1"), "{err}");
        assert!(lab.runner().is_ok(), "a virtual fleet always has its namespaces");
    }

    #[test]
    fn a_capture_may_use_any_interface_the_lab_gives() {
        let lab = fabric();
        let leaf = lab.node("leaf1").unwrap();
        let names = interfaces(leaf);
        assert!(names.contains(&"mgmt0".to_string()) && names.contains(&"lo".to_string()));
        if let Some(segment) = leaf.vxlan.first() {
            assert!(lab.interface(&format!("leaf1:{}", segment.bridge)).is_ok());
        }
        let err = lab.interface("leaf1:wlan0").unwrap_err().to_string();
        assert!(err.contains("no interface wlan0") && err.contains("mgmt0"), "{err}");
    }
}
