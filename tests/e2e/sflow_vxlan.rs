//! sFlow in a VXLAN fabric (`examples/fabric.toml`, sampling 1-in-1): the
//! agents sample their VXLAN devices too, and a sample taken there names
//! its tunnel (`extended_vni_ingress`). `pi-lab sflow watch` (flowparser-
//! sflow doing the XDR) shows h1's pings to h2 in segment blue as a flow
//! in VNI 10010, sampled on a leaf's `vxlan10010`; samples from the
//! spines' underlay ports show the same inner flow, its VNI read from the
//! VXLAN header. `status` says how the agents sample (nflog), what, and
//! how many samples were lost.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use crate::common::prerequisites;
use crate::fleet::{TOOLS, TestLab, eventually, host_port_towards, ping, text};

#[test]
fn flows_in_a_vxlan_segment_are_shown_with_their_vni() {
    if !prerequisites("sflow_vxlan", true, TOOLS) {
        return;
    }
    let lab = TestLab::edited("fabric.toml", "vx", 114, |doc| {
        let sflow = doc.get_mut("sflow").and_then(|s| s.as_table_mut()).unwrap();
        sflow.insert("sampling_rate".into(), 1.into());
        // Counter samples bring the port names (vxlan10010) within the watch.
        sflow.insert("polling_interval".into(), 2.into());
    });
    assert_eq!(lab.up()["converged"], true);
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    // In fabric.toml each host's eth1 is in blue (VNI 10010), eth2 in green.
    let h2_blue = h2.interfaces.iter().find(|i| i.name == "eth1").and_then(|i| i.address).unwrap();
    let h1_port = host_port_towards(&h1, &h2_blue);
    let to = h2_blue.addr().to_string();
    eventually(60, || ping(&lab, "h1", &h1_port, &to)).unwrap();
    let h1_addr = h1.interfaces.iter().find(|i| i.name == h1_port).and_then(|i| i.address).unwrap();

    let watch = lab
        .pi_lab()
        .args(["sflow", "watch", "--json", "--duration", "8", "--top", "50"])
        .args(["--listen", "172.31.114.1:6343", "--lab"])
        .arg(&lab.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pinger = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("h1"), "ping", "-q", "-i", "0.05", "-w", "7"])
        .args(["-I", &h1_port, &to])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let out = watch.wait_with_output().unwrap();
    let _ = pinger.wait_with_output();
    assert!(out.status.success(), "sflow watch:\n{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pings: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["type"] == "flow" && v["src"] == h1_addr.addr().to_string())
        .filter(|v| v["dst"] == to.as_str() && v["proto"] == "icmp")
        .collect();
    // On a leaf's VXLAN device, named by the agent's tunnel structure.
    let on_vxlan = pings.iter().find(|v| v["input"] == "vxlan10010");
    let on_vxlan = on_vxlan.unwrap_or_else(|| panic!("no sample on vxlan10010: {pings:#?}"));
    assert_eq!(on_vxlan["vni"], 10010, "{on_vxlan}");
    // On a spine, inside the VXLAN packet it forwards.
    let on_spine =
        pings.iter().find(|v| v["node"].as_str().is_some_and(|n| n.starts_with("spine")));
    let on_spine = on_spine.unwrap_or_else(|| panic!("no sample on a spine: {pings:#?}"));
    assert_eq!(on_spine["vni"], 10010, "{on_spine}");
    // status says how leaf1 samples, and that its VXLAN devices are in it.
    let out = lab.pi_lab().args(["status", "--json", "--timeout", "30"]).arg(&lab.file).output();
    let nodes: serde_json::Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    let leaf1 = nodes.as_array().unwrap().iter().find(|n| n["node"] == "leaf1").unwrap();
    let sflow = &leaf1["report"]["sflow"];
    assert_eq!(sflow["sampling_method"], "nflog", "{sflow}");
    let sampled = sflow["sampling_interfaces"].as_array().unwrap();
    assert!(sampled.iter().any(|i| i == "vxlan10010"), "{sflow}");
    assert!(sflow["samples_lost"].is_u64(), "{sflow}");
}
