//! What the fleet needs from a lab file: its name, each node's NodeConfig
//! (exactly what a board would get) and the cables between node ports.

use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;
use lab_spec::node_config::InterfaceKind;

use super::names;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read lab file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a lab file: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Lab(#[from] lab_spec::LabError),
}

/// One end of a cable: `node:interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub node: String,
    pub interface: String,
}

#[derive(Debug, Clone)]
pub struct FleetLab {
    pub name: String,
    /// In node-name order; a node's index here names its management veth.
    pub nodes: Vec<NodeConfig>,
    pub links: Vec<(End, End)>,
}

/// Only the lab's name, for `lab down` (which must work even when the rest
/// of the file has changed or no longer validates).
pub fn lab_name(path: &Path) -> Result<String, LoadError> {
    let doc = read_toml(path)?;
    let name = doc.get("name").and_then(|v| v.as_str()).ok_or_else(|| LoadError::Invalid {
        path: path.to_path_buf(),
        message: "no `name = \"...\"` at the top of the lab file".into(),
    })?;
    names::check_lab(name)?;
    Ok(name.to_string())
}

/// Compile the lab (exactly as for boards) and collect its cables.
pub fn load(path: &Path) -> Result<FleetLab, LoadError> {
    let name = lab_name(path)?;
    let token = crate::secrets::lab_token(&name)?;
    let (lab, _plan, configs) = lab_spec::compile_file(path, &token)?;
    let links = lab
        .links
        .iter()
        .map(|l| {
            let end = |e: &lab_spec::lab::Endpoint| End {
                node: e.node.clone(),
                interface: e.interface.clone(),
            };
            (end(&l.a), end(&l.b))
        })
        .collect();
    // BTreeMap: already in node-name order.
    let lab = FleetLab { name: lab.name, nodes: configs.into_values().collect(), links };
    check(path, &lab)?;
    Ok(lab)
}

fn read_toml(path: &Path) -> Result<toml::Table, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    text.parse::<toml::Table>()
        .map_err(|e| LoadError::Syntax { path: path.to_path_buf(), message: e.to_string() })
}

/// What the virtual fleet cannot build, said before anything is made.
fn check(path: &Path, lab: &FleetLab) -> Result<(), LoadError> {
    let invalid = |message: String| LoadError::Invalid { path: path.to_path_buf(), message };
    for node in &lab.nodes {
        names::check_node(&node.hostname)?;
        for iface in &node.interfaces {
            names::check_interface(&iface.name)?;
            if let InterfaceKind::Vlan { parent, .. } = &iface.kind {
                return Err(invalid(format!(
                    "{}:{} is an 802.1Q VLAN on {parent}; the virtual fleet cables whole ports \
                     (veth pairs), so write the link as a port, e.g. \"{}:eth1\"",
                    node.hostname, iface.name, node.hostname
                )));
            }
        }
    }
    for (a, b) in &lab.links {
        for end in [a, b] {
            if !lab.nodes.iter().any(|n| n.hostname == end.node) {
                return Err(invalid(format!(
                    "link {}:{}: no node {:?}",
                    a.node, a.interface, end.node
                )));
            }
            names::check_interface(&end.interface)?;
        }
    }
    if lab.nodes.len() > 999 {
        return Err(invalid("the virtual fleet runs at most 999 nodes".into()));
    }
    Ok(())
}
