//! A [`Graph`] as Graphviz `dot` text or D2 text, with netlab graph's
//! look (its colours for nodes, hosts, eBGP and iBGP sessions and VLAN
//! access links).

use std::fmt::Write;

use super::{GEdge, GNode, Graph, GraphType};

/// A quoted dot ID: `"..."` with `\` and `"` escaped; newlines become
/// centred line breaks.
fn q(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn node_label(n: &GNode) -> String {
    // A segment's node is named by its VNI line.
    let mut lines = if n.role == "segment" { Vec::new() } else { vec![n.name.clone()] };
    lines.extend(n.label.iter().cloned());
    lines.join("\n")
}

fn node_style(n: &GNode) -> &'static str {
    match n.role.as_str() {
        "host" => "fillcolor=\"#d1bfab\"",
        "segment" => "shape=ellipse, style=\"dashed\", fillcolor=white",
        _ if n.reflector => "peripheries=2",
        _ => "",
    }
}

fn edge_style(e: &GEdge) -> &'static str {
    match e.kind.as_str() {
        "access" => "color=\"#d26400\"",
        "vtep" => "color=\"#d26400\", style=dashed",
        "ebgp" => "color=\"#b21a1a\", penwidth=2",
        "ibgp" => "color=\"#613913\", penwidth=2",
        "rr-client" => "color=\"#613913\", penwidth=2, dir=forward, arrowhead=normal",
        _ => "",
    }
}

/// Graphviz source: spines on top, then leaves and routers, then hosts.
pub fn dot(g: &Graph) -> String {
    let mut out = String::new();
    let title = match g.kind {
        GraphType::Topology => format!("{}: topology", g.lab),
        GraphType::Bgp => format!("{}: BGP sessions", g.lab),
    };
    let _ = writeln!(out, "graph {} {{", q(&g.lab));
    let _ = writeln!(
        out,
        "  graph [rankdir=TB, nodesep=0.5, ranksep=1, bgcolor=transparent, fontname=Verdana, label={}, labelloc=t, labeljust=l, fontsize=16];",
        q(&title)
    );
    out.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ff9f01\", fontname=Verdana, fontsize=11, margin=\"0.3,0.1\"];\n");
    out.push_str("  edge [fontname=Verdana, fontsize=9, labelfontsize=8, labeldistance=1.5];\n");
    let clustered: Vec<&str> =
        g.clusters.iter().flat_map(|c| c.nodes.iter().map(String::as_str)).collect();
    for n in g.nodes.iter().filter(|n| !clustered.contains(&n.name.as_str())) {
        let style = node_style(n);
        let sep = if style.is_empty() { "" } else { ", " };
        let _ = writeln!(out, "  {} [label={}{sep}{style}];", q(&n.name), q(&node_label(n)));
    }
    for c in &g.clusters {
        let _ = writeln!(out, "  subgraph {} {{", q(&format!("cluster_{}", c.name)));
        let _ = writeln!(
            out,
            "    label={}; style=\"rounded,filled\"; fillcolor=\"#e8e8e8\"; color=\"#c0c0c0\"; fontsize=12; margin=16;",
            q(&c.label)
        );
        for name in &c.nodes {
            if let Some(n) = g.nodes.iter().find(|n| n.name == *name) {
                let style = node_style(n);
                let sep = if style.is_empty() { "" } else { ", " };
                let _ =
                    writeln!(out, "    {} [label={}{sep}{style}];", q(&n.name), q(&node_label(n)));
            }
        }
        // Layers inside the cluster (spines above leaves above hosts).
        for rank in 0..=2u8 {
            let layer: Vec<String> = g
                .nodes
                .iter()
                .filter(|n| n.rank == rank && c.nodes.contains(&n.name))
                .map(|n| q(&n.name))
                .collect();
            if layer.len() > 1 {
                let _ = writeln!(out, "    {{ rank=same; {}; }}", layer.join("; "));
            }
        }
        out.push_str("  }\n");
    }
    // Layers: only for nodes outside clusters (dot cannot rank across them).
    for (rank, kind) in [(0u8, "min"), (1, "same"), (2, "same")] {
        let layer: Vec<String> = g
            .nodes
            .iter()
            .filter(|n| n.rank == rank && !clustered.contains(&n.name.as_str()))
            .map(|n| q(&n.name))
            .collect();
        if layer.len() > 1 {
            let _ = writeln!(out, "  {{ rank={kind}; {}; }}", layer.join("; "));
        }
    }
    for e in &g.edges {
        let mut attrs = Vec::new();
        if !e.label.is_empty() {
            attrs.push(format!("label={}", q(&e.label)));
        }
        if !e.a_label.is_empty() {
            attrs.push(format!("taillabel={}", q(&e.a_label)));
        }
        if !e.b_label.is_empty() {
            attrs.push(format!("headlabel={}", q(&e.b_label)));
        }
        let style = edge_style(e);
        if !style.is_empty() {
            attrs.push(style.to_string());
        }
        let _ = writeln!(out, "  {} -- {} [{}];", q(&e.a), q(&e.b), attrs.join(", "));
    }
    out.push_str("}\n");
    out
}

/// A D2 key or label: always quoted.
fn dq(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// D2 source: the same graph, clusters as containers.
pub fn d2(g: &Graph) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "# {} ({:?}), drawn by pi-lab lab graph\ndirection: down\n", g.lab, g.kind);
    let cluster_of = |name: &str| g.clusters.iter().find(|c| c.nodes.iter().any(|n| n == name));
    let path = |name: &str| match cluster_of(name) {
        Some(c) => format!("{}.{}", dq(&c.name), dq(name)),
        None => dq(name),
    };
    let fill = |n: &GNode| match n.role.as_str() {
        "host" => "#d1bfab",
        "segment" => "#ffffff",
        _ => "#ff9f01",
    };
    let node = |out: &mut String, n: &GNode, indent: &str| {
        let shape = if n.role == "segment" { "oval" } else { "rectangle" };
        let double = if n.reflector { "; style.double-border: true" } else { "" };
        let _ = writeln!(
            out,
            "{indent}{}: {} {{shape: {shape}; style.fill: \"{}\"{double}}}",
            dq(&n.name),
            dq(&node_label(n)),
            fill(n)
        );
    };
    for n in g.nodes.iter().filter(|n| cluster_of(&n.name).is_none()) {
        node(&mut out, n, "");
    }
    for c in &g.clusters {
        let _ = writeln!(out, "{}: {} {{", dq(&c.name), dq(&c.label));
        out.push_str("  style.fill: \"#e8e8e8\"\n");
        for name in &c.nodes {
            if let Some(n) = g.nodes.iter().find(|n| n.name == *name) {
                node(&mut out, n, "  ");
            }
        }
        out.push_str("}\n");
    }
    for e in &g.edges {
        let mut parts = Vec::new();
        if !e.a_label.is_empty() || !e.b_label.is_empty() {
            parts.push(format!("{} — {}", e.a_label, e.b_label));
        }
        if !e.label.is_empty() {
            parts.push(e.label.clone());
        }
        let arrow = if e.kind == "rr-client" { "->" } else { "--" };
        let color = match e.kind.as_str() {
            "ebgp" => "#b21a1a",
            "ibgp" | "rr-client" => "#613913",
            "access" | "vtep" => "#d26400",
            _ => "#404040",
        };
        let dash = if e.kind == "vtep" { "; style.stroke-dash: 3" } else { "" };
        let _ = writeln!(
            out,
            "{} {arrow} {}: {} {{style.stroke: \"{color}\"{dash}}}",
            path(&e.a),
            path(&e.b),
            dq(&parts.join("\n"))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_survive() {
        assert_eq!(q("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(dq("x\ny"), "\"x\\ny\"");
    }
}
