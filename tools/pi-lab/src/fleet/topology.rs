//! What the fleet builds from a compiled lab: each node's NodeConfig
//! (exactly what a board would get) and the cables between node ports, and
//! what it cannot build, said before anything is made.

use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;

use crate::lab_file::CompiledLab;
use crate::lab_host::names;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{}: {message}", .path.display())]
    Unsupported { path: PathBuf, message: String },
    #[error(transparent)]
    Name(#[from] names::NameError),
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

impl FleetLab {
    /// The lab's nodes and cables, checked for what the fleet can build.
    pub fn new(lab: &CompiledLab) -> Result<FleetLab, TopologyError> {
        names::check_lab(lab.name())?;
        let end = |e: &lab_spec::lab::Endpoint| End {
            node: e.node.clone(),
            interface: e.interface.clone(),
        };
        let links = lab.lab.links.iter().map(|l| (end(&l.a), end(&l.b))).collect();
        // BTreeMap: already in node-name order.
        let fleet = FleetLab {
            name: lab.name().to_string(),
            nodes: lab.configs.values().cloned().collect(),
            links,
        };
        check(&lab.path, &fleet)?;
        Ok(fleet)
    }
}

/// What the virtual fleet cannot build, said before anything is made.
fn check(path: &Path, lab: &FleetLab) -> Result<(), TopologyError> {
    let invalid =
        |message: String| TopologyError::Unsupported { path: path.to_path_buf(), message };
    for node in &lab.nodes {
        names::check_node(&node.hostname)?;
        for iface in &node.interfaces {
            names::check_interface(&iface.name)?;
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
