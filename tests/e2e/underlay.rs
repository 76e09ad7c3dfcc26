//! OSPF and IS-IS underlays in the virtual fleet: the leaf-spine examples
//! with an IGP underlay come up with every adjacency, iBGP to the route
//! reflectors, both segments (static and EVPN) carrying pings, and
//! `pi-lab validate` passing.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Instant;

use lab_spec::node_config::IgpProtocol;

use crate::common::prerequisites;
use crate::fleet::{
    TOOLS, TestLab, eventually, host_port_towards, ping, route_says, sessions_established, text,
    with_ipv6_pools,
};

/// Every adjacency `node`'s config expects is up, as FRR says it.
fn adjacencies_up(lab: &TestLab, node: &str) -> Result<(), String> {
    let config = lab.config(node);
    let Some(igp) = &config.igp else { return Ok(()) };
    let command = lab_spec::frr_state::show_command(igp.protocol);
    let out = Command::new("vtysh").args(["-N", &lab.ns(node), "-c", command]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    for a in lab_spec::frr_state::adjacencies(igp, &json) {
        if !a.up {
            return Err(format!(
                "{node}: {} adjacency on {} is {}",
                igp.protocol, a.interface, a.state
            ));
        }
    }
    Ok(())
}

/// The daemons running in `node`'s FRR pathspace (by pid file).
fn daemons(lab: &TestLab, node: &str) -> Vec<String> {
    let dir = std::path::Path::new("/var/run/frr").join(lab.ns(node));
    ["bgpd", "ospfd", "isisd"]
        .into_iter()
        .filter(|d| dir.join(format!("{d}.pid")).exists())
        .map(str::to_string)
        .collect()
}

fn igp_fabric(example: &str, tag: &str, subnet: u8, protocol: IgpProtocol) {
    let lab = TestLab::new(example, tag, subnet);
    let started = Instant::now();
    let state = lab.up();
    eprintln!("{example}: converged after {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(state["converged"], true);
    let daemon = match protocol {
        IgpProtocol::Ospf => "ospfd",
        IgpProtocol::Isis => "isisd",
    };
    for node in ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"] {
        adjacencies_up(&lab, node).unwrap();
        sessions_established(&lab, node).unwrap();
        assert_eq!(daemons(&lab, node), ["bgpd", daemon], "{node}");
        let config = lab.config(node);
        assert_eq!(config.igp.as_ref().unwrap().protocol, protocol);
        let bgp = config.bgp.as_ref().unwrap();
        assert!(bgp.neighbors.iter().all(|n| n.between_loopbacks() && n.remote_asn == bgp.asn));
    }
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    for h2_port in h2.interfaces.iter().filter_map(|i| i.address) {
        let port = host_port_towards(&h1, &h2_port);
        eventually(60, || ping(&lab, "h1", &port, &h2_port.addr().to_string())).unwrap();
    }
    eprintln!("{example}: both segments ping after {:.1} s", started.elapsed().as_secs_f64());
    // status shows the adjacencies as it shows BGP sessions.
    let out = lab.pi_lab().args(["status", "--json", "--timeout", "30"]).arg(&lab.file).output();
    let out = out.unwrap();
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spine1 = nodes.as_array().unwrap().iter().find(|n| n["node"] == "spine1").unwrap();
    let list = &spine1["report"][protocol.to_string()];
    assert_eq!(list.as_array().map(Vec::len), Some(4), "{spine1:#}");
    let out = lab.pi_lab().args(["validate", "--deadline", "90s"]).arg(&lab.file).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "validate:\n{}", text(&out));
    eprintln!("{example}: validate passed after {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn ospf_fabric_carries_static_and_evpn_segments_and_validates() {
    if !prerequisites("ospf_fabric", true, TOOLS) {
        return;
    }
    igp_fabric("fabric-ospf.toml", "of", 236, IgpProtocol::Ospf);
}

#[test]
fn isis_fabric_carries_static_and_evpn_segments_and_validates() {
    if !prerequisites("isis_fabric", true, TOOLS) {
        return;
    }
    igp_fabric("fabric-isis.toml", "if", 237, IgpProtocol::Isis);
}

/// Every OSPFv3 neighbour `node`'s dual-stack config expects is Full.
fn ospf6_full(lab: &TestLab, node: &str) -> Result<(), String> {
    let config = lab.config(node);
    let igp = config.igp.as_ref().unwrap();
    let show = lab_spec::frr_state::OSPF6_SHOW;
    let out = Command::new("vtysh").args(["-N", &lab.ns(node), "-c", show]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let down: Vec<String> = lab_spec::frr_state::ospf6_adjacencies(igp, &json)
        .into_iter()
        .filter(|a| !a.up)
        .map(|a| format!("{node}: OSPFv3 on {} is {}", a.interface, a.state))
        .collect();
    if down.is_empty() { Ok(()) } else { Err(down.join("; ")) }
}

#[test]
fn dual_stack_ospf_fabric_runs_ospfv3_beside_ospfv2_and_validates() {
    if !prerequisites("dual_stack_ospf_fabric", true, TOOLS) {
        return;
    }
    let lab = TestLab::in_family("v6", "fabric-ospf.toml", "o6", 112, with_ipv6_pools);
    let started = Instant::now();
    assert_eq!(lab.up()["converged"], true);
    for node in ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"] {
        adjacencies_up(&lab, node).unwrap();
        eventually(30, || ospf6_full(&lab, node)).unwrap();
        assert_eq!(daemons(&lab, node), ["bgpd", "ospfd"], "{node}");
        let ospf6 = std::path::Path::new("/var/run/frr").join(lab.ns(node)).join("ospf6d.pid");
        assert!(ospf6.exists(), "{node}: no ospf6d");
    }
    // The IPv6 loopbacks route through OSPFv3.
    let (leaf1, leaf4) = (lab.config("leaf1"), lab.config("leaf4"));
    let lo6 = leaf4.loopback6.unwrap().to_string();
    eventually(30, || route_says(&lab, "leaf1", &lo6, "proto ospf")).unwrap();
    let from = leaf1.loopback6.unwrap().to_string();
    eventually(30, || ping(&lab, "leaf1", &from, &lo6)).unwrap();
    let out = lab.pi_lab().args(["validate", "--deadline", "90s"]).arg(&lab.file).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "validate:\n{}", text(&out));
    assert!(text(&out).contains("ospf6"), "{}", text(&out));
    eprintln!("dual-stack OSPF: validate passed after {:.1} s", started.elapsed().as_secs_f64());
}
