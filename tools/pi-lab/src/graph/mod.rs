//! `pi-lab lab graph`: the lab drawn as netlab graph draws it.
//!
//! - **topology**: every node, spines above leaves (and routers) above
//!   hosts; links labelled with both interfaces and the subnet; each
//!   VXLAN segment a cluster holding its VNI, with its VTEPs (leaves)
//!   joined to it.
//! - **bgp**: the BGP speakers, one cluster per AS; sessions drawn as
//!   eBGP or iBGP, route reflectors marked and their sessions to their
//!   clients pointing at the clients.
//!
//! Output: Graphviz `dot`, `svg` (rendered by Graphviz's `dot`, Debian
//! package `graphviz`), `d2`, or the graph itself as `json`.

mod render;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use lab_spec::lab::SegmentMode;
use lab_spec::node_config::{NodeConfig, Role};
use lab_spec::plan::{Plan, PlannedLinkKind};
use serde::Serialize;

use crate::lab_file::{LabFile, LabFileError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab lab graph examples/fabric.toml > fabric.dot
  pi-lab lab graph examples/fabric.toml --format svg -o fabric.svg
  pi-lab lab graph examples/fabric-ospf.toml --type bgp --format svg -o bgp.svg
  pi-lab lab graph topology.yml --format d2 | d2 - topology.svg
  pi-lab lab graph examples/fabric.toml --format json | jq '.edges | length'

SVG is drawn by Graphviz's dot (Debian package graphviz), without network
access.")]
pub struct GraphArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// What to draw.
    #[arg(long = "type", value_enum, default_value_t = GraphType::Topology)]
    pub kind: GraphType,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphType {
    Topology,
    Bgp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Svg,
    D2,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error(
        "SVG needs Graphviz's `dot`, which is not installed: apt-get install graphviz \
         (or take --format dot and draw it elsewhere)"
    )]
    NoDot,
    #[error("dot failed: {0}")]
    Dot(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A graph, ready for any format.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub lab: String,
    #[serde(rename = "type")]
    pub kind: GraphType,
    pub nodes: Vec<GNode>,
    pub edges: Vec<GEdge>,
    pub clusters: Vec<GCluster>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GNode {
    pub name: String,
    pub role: String,
    /// Layer from the top: 0 spines, 1 leaves and routers, 2 hosts, 3
    /// segments.
    pub rank: u8,
    /// Lines under the name: loopback, AS, "route reflector".
    pub label: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reflector: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GEdge {
    /// The upper end (nearer the spines).
    pub a: String,
    pub b: String,
    /// Near `a`, near `b`, and along the edge.
    pub a_label: String,
    pub b_label: String,
    pub label: String,
    /// `underlay`, `access`, `vtep`, `ebgp`, `ibgp`, `rr-client`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GCluster {
    pub name: String,
    pub label: String,
    pub nodes: Vec<String>,
}

pub fn run(args: &GraphArgs) -> Result<ExitCode, GraphError> {
    let file = LabFile::load(&args.lab.file)?;
    let plan = file.plan.clone();
    // Only the sessions matter here, not the token.
    let lab = file.compile_with(String::new());
    let configs: Vec<&NodeConfig> = lab.configs.values().collect();
    let graph = match args.kind {
        GraphType::Topology => topology(&plan, &configs),
        GraphType::Bgp => bgp(&plan, &configs),
    };
    let bytes = match args.format {
        GraphFormat::Dot => render::dot(&graph).into_bytes(),
        GraphFormat::D2 => render::d2(&graph).into_bytes(),
        GraphFormat::Json => {
            let mut s = serde_json::to_string_pretty(&graph).unwrap_or_default();
            s.push('\n');
            s.into_bytes()
        }
        GraphFormat::Svg => svg(&render::dot(&graph))?,
    };
    match &args.out {
        Some(path) => lab_spec::replace_file::replace(
            path,
            &bytes,
            lab_spec::replace_file::Access::mode(0o644),
        )
        .map_err(|source| GraphError::Write { path: path.clone(), source })?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not worth an error.
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dot -Tsvg`, fed on stdin.
pub fn svg(dot: &str) -> Result<Vec<u8>, GraphError> {
    let mut cmd = Command::new("dot");
    cmd.arg("-Tsvg");
    let out =
        lab_spec::program_input::run_with_input(&mut cmd, dot.as_bytes()).map_err(|e| {
            match e.kind() {
                std::io::ErrorKind::NotFound => GraphError::NoDot,
                _ => GraphError::Dot(e.to_string()),
            }
        })?;
    if !out.status.success() {
        return Err(GraphError::Dot(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

/// The layer a node is drawn in, from the top: spines, then leaves and
/// routers, then hosts (segments go below, at 3). The one layering rule
/// of `lab graph` and `pi-lab dashboard`.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Spine => 0,
        Role::Leaf | Role::Router => 1,
        Role::Host => 2,
    }
}

/// Nodes, links with their interfaces and subnets, segments as clusters.
pub fn topology(plan: &Plan, configs: &[&NodeConfig]) -> Graph {
    let nodes = configs
        .iter()
        .map(|c| GNode {
            name: c.hostname.clone(),
            role: c.role.to_string(),
            rank: rank(c.role),
            label: c.loopback.map(|l| vec![l.to_string()]).unwrap_or_default(),
            reflector: false,
        })
        .collect();
    let mut edges = Vec::new();
    for l in &plan.links {
        let role_of = |n: &str| plan.nodes.get(n).map_or(Role::Router, |p| p.role);
        let (a, b) = if rank(role_of(&l.a.node)) <= rank(role_of(&l.b.node)) {
            (&l.a, &l.b)
        } else {
            (&l.b, &l.a)
        };
        let end = |e: &lab_spec::plan::EndPlan| match e.address {
            Some(addr) if l.kind == PlannedLinkKind::Access => {
                format!("{} {}", e.interface, addr.addr())
            }
            _ => e.interface.clone(),
        };
        let label = match (&l.kind, &l.segment) {
            (PlannedLinkKind::Access, Some(s)) => format!("{s} {}", l.subnet),
            _ if l.unnumbered => "unnumbered".to_string(),
            _ => l.subnet.to_string(),
        };
        let kind = if l.kind == PlannedLinkKind::Access { "access" } else { "underlay" };
        edges.push(GEdge {
            a: a.node.clone(),
            b: b.node.clone(),
            a_label: end(a),
            b_label: end(b),
            label,
            kind: kind.into(),
        });
    }
    let mut clusters = Vec::new();
    let mut nodes: Vec<GNode> = nodes;
    for s in &plan.segments {
        let id = format!("vni{}", s.vni);
        nodes.push(GNode {
            name: id.clone(),
            role: "segment".into(),
            rank: 3,
            label: vec![format!("VNI {}", s.vni), s.subnet.to_string()],
            reflector: false,
        });
        for (leaf, vtep) in &s.vteps {
            edges.push(GEdge {
                a: leaf.clone(),
                b: id.clone(),
                a_label: String::new(),
                b_label: String::new(),
                label: match s.irb_address(leaf) {
                    Some(irb) => format!("VTEP {vtep}, irb {irb}"),
                    None => format!("VTEP {vtep}"),
                },
                kind: "vtep".into(),
            });
        }
        clusters.push(GCluster {
            name: format!("segment_{}", s.name.replace('-', "_")),
            label: match s.mode {
                SegmentMode::Irb => {
                    format!("segment {} ({}, {} flooding, irb)", s.name, s.vni, s.flooding)
                }
                SegmentMode::Bridge => {
                    format!("segment {} ({}, {} flooding)", s.name, s.vni, s.flooding)
                }
            },
            nodes: vec![id],
        });
    }
    Graph { lab: plan.lab.clone(), kind: GraphType::Topology, nodes, edges, clusters }
}

/// BGP speakers clustered by AS, one edge per session.
pub fn bgp(plan: &Plan, configs: &[&NodeConfig]) -> Graph {
    let speakers: Vec<&NodeConfig> = configs.iter().copied().filter(|c| c.bgp.is_some()).collect();
    let by_address = |addr: std::net::Ipv4Addr| -> Option<String> {
        speakers
            .iter()
            .find(|c| {
                c.loopback == Some(addr)
                    || c.interfaces.iter().any(|i| i.address.is_some_and(|a| a.addr() == addr))
            })
            .map(|c| c.hostname.clone())
    };
    let reflector = |c: &NodeConfig| {
        c.bgp.as_ref().is_some_and(|b| b.neighbors.iter().any(|n| n.route_reflector_client))
    };
    let nodes = speakers
        .iter()
        .map(|c| {
            let bgp = c.bgp.as_ref();
            let mut label = vec![format!("AS {}", bgp.map_or(0, |b| b.asn))];
            if reflector(c) {
                label.push("route reflector".into());
            }
            GNode {
                name: c.hostname.clone(),
                role: c.role.to_string(),
                rank: rank(c.role),
                label,
                reflector: reflector(c),
            }
        })
        .collect();
    let mut edges: Vec<GEdge> = Vec::new();
    for c in &speakers {
        let Some(b) = &c.bgp else { continue };
        for n in &b.neighbors {
            let Some(peer) = by_address(n.address) else { continue };
            let seen = edges
                .iter()
                .any(|e| (e.a == peer && e.b == c.hostname) || (e.a == c.hostname && e.b == peer));
            // A reflector's session to a client is drawn from the reflector.
            if seen && !n.route_reflector_client {
                continue;
            }
            edges.retain(|e| !(e.a == peer && e.b == c.hostname));
            let kind = if n.route_reflector_client {
                "rr-client"
            } else if n.remote_asn == b.asn {
                "ibgp"
            } else {
                "ebgp"
            };
            let label = match kind {
                "ebgp" => format!("eBGP {} - {}", b.asn, n.remote_asn),
                "rr-client" => "iBGP, reflected".into(),
                _ => "iBGP".into(),
            };
            edges.push(GEdge {
                a: c.hostname.clone(),
                b: peer,
                a_label: String::new(),
                b_label: String::new(),
                label,
                kind: kind.into(),
            });
        }
    }
    let mut ases: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for c in &speakers {
        if let Some(b) = &c.bgp {
            ases.entry(b.asn).or_default().push(c.hostname.clone());
        }
    }
    let clusters = ases
        .into_iter()
        .map(|(asn, nodes)| GCluster {
            name: format!("as{asn}"),
            label: format!("AS {asn}"),
            nodes,
        })
        .collect();
    Graph { lab: plan.lab.clone(), kind: GraphType::Bgp, nodes, edges, clusters }
}
