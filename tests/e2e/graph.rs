//! `pi-lab lab graph` in every format: the dot source passes Graphviz's
//! `dot -Tsvg`, the SVG parses as XML and names every node, D2 and JSON
//! hold every node and link.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{bin, prerequisites, workspace};

fn graph(file: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(bin("pi-lab"))
        .args(["lab", "graph"])
        .arg(workspace().join(file))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn nodes_of(file: &str) -> Vec<String> {
    let plan = Command::new(bin("pi-lab"))
        .args(["lab", "plan", "--json"])
        .arg(workspace().join(file))
        .output();
    let plan: serde_json::Value = serde_json::from_slice(&plan.unwrap().stdout).unwrap();
    plan["nodes"].as_object().unwrap().keys().cloned().collect()
}

/// The text of every `<text>` element of an SVG, which must parse.
fn svg_texts(svg: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(svg).unwrap();
    // Graphviz writes a DOCTYPE line; the parser must be allowed to read it.
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .unwrap_or_else(|e| panic!("SVG is not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text().map(str::to_string))
        .collect()
}

#[test]
fn every_format_for_the_topology_and_bgp_views() {
    if !prerequisites("graph", false, &["dot"]) {
        return;
    }
    for file in
        ["examples/fabric.toml", "examples/fabric-isis.toml", "examples/netlab/evpn-isis.yml"]
    {
        let nodes = nodes_of(file);
        for kind in ["topology", "bgp"] {
            // dot: Graphviz takes it as it is.
            let dot = graph(file, &["--type", kind, "--format", "dot"]);
            let mut child = Command::new("dot")
                .arg("-Tsvg")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&dot).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{file} {kind}: dot -Tsvg: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stderr.is_empty(),
                "{file} {kind}: dot warns: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // svg: XML naming every node (hosts run no BGP: not in that view).
            let texts = svg_texts(&graph(file, &["--type", kind, "--format", "svg"]));
            let json: serde_json::Value =
                serde_json::from_slice(&graph(file, &["--type", kind, "--format", "json"]))
                    .unwrap();
            let drawn: Vec<&str> = json["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["role"] != "segment")
                .map(|n| n["name"].as_str().unwrap())
                .collect();
            for node in &nodes {
                let host =
                    json["nodes"].as_array().unwrap().iter().all(|n| n["name"] != node.as_str());
                if kind == "bgp" && host {
                    continue;
                }
                assert!(drawn.contains(&node.as_str()), "{file} {kind}: json lacks {node}");
                assert!(texts.iter().any(|t| t == node), "{file} {kind}: SVG does not name {node}");
            }
            // d2: every drawn node is declared.
            let d2 = String::from_utf8(graph(file, &["--type", kind, "--format", "d2"])).unwrap();
            for node in &drawn {
                assert!(d2.contains(&format!("\"{node}\": ")), "{file} {kind}: d2 lacks {node}");
            }
        }
    }
}

#[test]
fn topology_labels_links_and_draws_segments_as_clusters() {
    let json: serde_json::Value =
        serde_json::from_slice(&graph("examples/fabric.toml", &["--format", "json"])).unwrap();
    let edges = json["edges"].as_array().unwrap();
    let spine_leaf = edges.iter().find(|e| e["a"] == "spine1" && e["b"] == "leaf1").unwrap();
    assert_eq!(
        (spine_leaf["a_label"].as_str(), spine_leaf["b_label"].as_str()),
        (Some("eth1"), Some("eth1"))
    );
    assert!(spine_leaf["label"].as_str().unwrap().ends_with("/31"));
    let clusters: Vec<&str> =
        json["clusters"].as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(
        clusters,
        ["segment blue (10010, static flooding)", "segment green (10020, evpn flooding)"]
    );
    // Spines above leaves above hosts.
    let rank = |n: &str| {
        json["nodes"].as_array().unwrap().iter().find(|x| x["name"] == n).unwrap()["rank"].as_u64()
    };
    assert!(rank("spine1") < rank("leaf1") && rank("leaf1") < rank("h1"));
    let bgp: serde_json::Value = serde_json::from_slice(&graph(
        "examples/fabric.toml",
        &["--type", "bgp", "--format", "json"],
    ))
    .unwrap();
    assert!(bgp["edges"].as_array().unwrap().iter().all(|e| e["kind"] == "ebgp"));
    let rr: serde_json::Value = serde_json::from_slice(&graph(
        "examples/fabric-ospf.toml",
        &["--type", "bgp", "--format", "json"],
    ))
    .unwrap();
    let kinds: Vec<&str> =
        rr["edges"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "rr-client").count(), 8, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "ibgp").count(), 1, "spine1 - spine2");
}
