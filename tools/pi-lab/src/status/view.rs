//! What fleet operations need to know about a lab: every node's compiled
//! config (where its API listens, what it should have) and the segments
//! (which VTEPs and hosts belong together).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use lab_spec::NodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Lab(String),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("no node {node:?} in lab {lab}; its nodes are: {known}")]
    UnknownNode { node: String, lab: String, known: String },
}

/// A VXLAN segment as fleet checks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentView {
    pub name: String,
    pub vni: u32,
    pub evpn: bool,
    /// Member leaf to its VTEP address.
    pub vteps: BTreeMap<String, Ipv4Addr>,
    /// `host:interface` to its address in the segment.
    pub hosts: BTreeMap<String, Ipv4Net>,
}

#[derive(Debug, Clone)]
pub struct LabView {
    pub name: String,
    pub file: PathBuf,
    /// Node name to its compiled config.
    pub nodes: BTreeMap<String, NodeConfig>,
    pub segments: Vec<SegmentView>,
}

impl LabView {
    /// Compile the lab file with the lab's token; also returns the token.
    pub fn load(path: &Path) -> Result<(LabView, String), ViewError> {
        let name = lab_name(path)?;
        let token = crate::secrets::lab_token(&name)?;
        let (mut nodes, segments) = compile(path, &token)?;
        if runs_as_virtual_fleet(&name, &nodes) {
            for config in nodes.values_mut() {
                *config = fleet_config(config);
            }
        }
        let view = LabView { name, file: path.to_path_buf(), nodes, segments };
        Ok((view, token))
    }

    /// Where node `name`'s management API listens.
    pub fn api(&self, name: &str) -> Option<SocketAddr> {
        self.nodes.get(name).map(|c| c.health.listen)
    }

    /// The nodes named (all when none are), in name order; an unknown name
    /// is an error that lists the known ones.
    pub fn select(&self, names: &[String]) -> Result<Vec<&NodeConfig>, ViewError> {
        if names.is_empty() {
            return Ok(self.nodes.values().collect());
        }
        let mut picked = Vec::new();
        for name in names {
            let config = self.nodes.get(name).ok_or_else(|| ViewError::UnknownNode {
                node: name.clone(),
                lab: self.name.clone(),
                known: lab_spec::diagnostics::list(
                    &self.nodes.keys().map(String::as_str).collect::<Vec<_>>(),
                ),
            })?;
            picked.push(config);
        }
        picked.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        picked.dedup_by(|a, b| a.hostname == b.hostname);
        Ok(picked)
    }
}

/// True when every node of the lab has its virtual-fleet namespace
/// (`LAB-NODE`, see `fleet::names`).
pub fn runs_as_virtual_fleet(lab: &str, nodes: &BTreeMap<String, NodeConfig>) -> bool {
    !nodes.is_empty() && nodes.keys().all(|node| netns_exists(&netns(lab, node)))
}

pub use crate::fleet::names::netns;

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The config the virtual fleet gives a node: as on a board, but with the
/// management port named (`mgmt0`), since a namespace has no "first
/// Ethernet port" (mirrors `fleet::fleet_config`).
fn fleet_config(config: &NodeConfig) -> NodeConfig {
    let mut config = config.clone();
    config.management.interface = Some(crate::fleet::names::MGMT_PORT.to_string());
    config.with_version()
}

type Compiled = (BTreeMap<String, NodeConfig>, Vec<SegmentView>);

fn compile(path: &Path, token: &str) -> Result<Compiled, ViewError> {
    let (_lab, plan, nodes) =
        lab_spec::compile_file(path, token).map_err(|e| ViewError::Lab(e.to_string()))?;
    let segments = plan
        .segments
        .iter()
        .map(|s| SegmentView {
            name: s.name.clone(),
            vni: s.vni,
            evpn: matches!(s.flooding, lab_spec::lab::FloodingMode::Evpn),
            vteps: s.vteps.clone(),
            hosts: s.hosts.clone(),
        })
        .collect();
    Ok((nodes, segments))
}

/// Only the `name` of a lab file (for the token) before compiling it.
fn lab_name(path: &Path) -> Result<String, ViewError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ViewError::Lab(format!("cannot read lab file {}: {e}", path.display())))?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| ViewError::Lab(format!("{}: not a lab file: {e}", path.display())))?;
    doc.get("name").and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| {
        ViewError::Lab(format!(
            "{}: no `name = \"...\"` at the top of the lab file",
            path.display()
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A compiled node as lab-spec would make it, from TOML.
    pub(crate) fn node(
        name: &str,
        role: &str,
        asn: u32,
        octet: u8,
        vni: Option<u32>,
    ) -> NodeConfig {
        let vxlan = vni.map_or(String::new(), |vni| {
            format!(
                "[[vxlan]]\nvni = {vni}\nname = \"blue\"\ndevice = \"vxlan{vni}\"\nbridge = \"br{vni}\"\n\
                 local_vtep = \"10.0.0.{octet}\"\nport = 4789\naccess_ports = [\"eth3\"]\n\
                 flooding = {{ mode = \"static\", remote_vteps = [\"10.0.0.9\"] }}\n"
            )
        });
        let text = format!(
            "schema = 1\nlab = \"t5\"\nhostname = \"{name}\"\nrole = \"{role}\"\nloopback = \"10.0.0.{octet}\"\n\
             [management]\naddress = \"192.168.200.{octet}/24\"\ncontroller = \"192.168.200.1\"\n\
             [bgp]\nasn = {asn}\nrouter_id = \"10.0.0.{octet}\"\nneighbors = []\nnetworks = []\nmultipath = 4\nevpn = false\n\
             [bgp.timers]\nkeepalive = 3\nhold = 9\nconnect_retry = 5\n\
             {vxlan}\
             [sflow]\ncollectors = []\npolling_interval = 20\nsampling_rate = 0\nagent_address = \"10.0.0.{octet}\"\ninterfaces = []\n\
             [health]\nlisten = \"192.168.200.{octet}:9180\"\n[auth]\ntoken_sha256 = \"{}\"\n",
            "00".repeat(32)
        );
        NodeConfig::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}")).with_version()
    }

    pub(crate) fn two_node_view() -> LabView {
        let nodes = [
            node("leaf1", "leaf", 65001, 11, Some(10010)),
            node("spine1", "spine", 65000, 12, None),
        ]
        .into_iter()
        .map(|c| (c.hostname.clone(), c))
        .collect();
        LabView { name: "t5".into(), file: "t5.toml".into(), nodes, segments: Vec::new() }
    }

    #[test]
    fn select_names_unknown_nodes() {
        let view = two_node_view();
        assert_eq!(view.select(&[]).unwrap().len(), 2);
        let picked = view.select(&["spine1".into(), "spine1".into()]).unwrap();
        assert_eq!(picked.len(), 1);
        let err = view.select(&["leaf9".into()]).unwrap_err().to_string();
        assert!(err.contains("leaf9") && err.contains("leaf1, spine1"), "{err}");
    }
}
