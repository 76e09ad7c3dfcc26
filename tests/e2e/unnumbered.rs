//! BGP unnumbered and dual-stack on the virtual fleet: the fabric example
//! with IPv6 pools and an unnumbered underlay
//! (`examples/fabric-unnumbered.toml`). Every session is Established on
//! its interface, over IPv6 link-local addresses, and carries IPv4 routes
//! with IPv6 next hops; h1 reaches h2 in both segments (static and EVPN)
//! over IPv4 and IPv6; `pi-lab validate` passes. And its numbered twin
//! (`examples/fabric.toml` with IPv6 pools): IPv6 rides the IPv4 sessions,
//! BGP's next hop is each link's IPv6 address, and the kernel routes over
//! the link-local address FRR sends beside it.

// Test helpers: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use lab_spec::NodeConfig;

use crate::common::prerequisites;
use crate::fleet::{
    TOOLS, TestLab, eventually, ping, route_says, sessions_established, text, with_ipv6_pools,
};

const ROUTERS: [&str; 6] = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"];

/// Every session of `node` runs on an interface without an address of its
/// own, to the peer's IPv6 link-local address.
fn sessions_on_interfaces(lab: &TestLab, node: &str) -> Result<(), String> {
    let config = lab.config(node);
    let bgp = config.bgp.as_ref().unwrap();
    let out = lab.exec(node, &["vtysh", "-N", &lab.ns(node), "-c", "show bgp neighbors json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    for n in &bgp.neighbors {
        assert!(n.unnumbered, "{node}: {n:?}");
        let port = config.interfaces.iter().find(|i| i.name == n.interface).unwrap();
        assert_eq!((port.address, port.address6), (None, None), "{node}: {port:?}");
        let peer = json[&n.interface]["bgpNeighborAddr"].as_str().unwrap_or_default();
        if !peer.starts_with("fe80:") {
            return Err(format!("{node}: session on {} is with {peer:?}", n.interface));
        }
    }
    Ok(())
}

/// The port of `from` whose IPv6 /64 holds `to`.
fn port6_towards(from: &NodeConfig, to: &ipnet::Ipv6Net) -> String {
    let port = from.interfaces.iter().find(|i| i.address6.is_some_and(|a| a.trunc() == to.trunc()));
    port.unwrap_or_else(|| panic!("{} has no port in {to}", from.hostname)).name.clone()
}

#[test]
fn unnumbered_dual_stack_fabric_carries_both_families_and_validates() {
    if !prerequisites("unnumbered_fabric", true, TOOLS) {
        return;
    }
    let lab = TestLab::in_family("v6", "fabric-unnumbered.toml", "un", 111, |_| {});
    let started = Instant::now();
    let state = lab.up();
    eprintln!("unnumbered fabric: converged after {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(state["converged"], true);
    for node in ROUTERS {
        eventually(30, || sessions_established(&lab, node)).unwrap();
        eventually(30, || sessions_on_interfaces(&lab, node)).unwrap();
    }
    // IPv4 loopbacks through IPv6 next hops (RFC 5549), IPv6 loopbacks too.
    let (leaf1, leaf3) = (lab.config("leaf1"), lab.config("leaf3"));
    let lo3 = leaf3.loopback.unwrap().to_string();
    eventually(30, || route_says(&lab, "leaf1", &lo3, "via inet6 fe80:")).unwrap();
    let lo6 = leaf3.loopback6.unwrap().to_string();
    let from6 = leaf1.loopback6.unwrap().to_string();
    eventually(30, || ping(&lab, "leaf1", &from6, &lo6)).unwrap();
    // h1 reaches h2 in both segments, in both families.
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    for h2_port in &h2.interfaces {
        let v4 = h2_port.address.unwrap();
        let port = crate::fleet::host_port_towards(&h1, &v4);
        eventually(60, || ping(&lab, "h1", &port, &v4.addr().to_string())).unwrap();
        let v6 = h2_port.address6.unwrap();
        let port = port6_towards(&h1, &v6);
        eventually(60, || ping(&lab, "h1", &port, &v6.addr().to_string())).unwrap();
    }
    eprintln!(
        "unnumbered fabric: both families ping after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // status shows each session with its interface.
    let out = lab.pi_lab().args(["status", "--json", "--timeout", "30"]).arg(&lab.file).output();
    let nodes: serde_json::Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    let spine1 = nodes.as_array().unwrap().iter().find(|n| n["node"] == "spine1").unwrap();
    let sessions = spine1["report"]["bgp"].as_array().unwrap();
    assert_eq!(sessions.len(), 4, "{spine1:#}");
    assert!(sessions.iter().all(|s| s["interface"].is_string() && s["established"] == true));
    let out = lab.pi_lab().args(["validate", "--deadline", "90s"]).arg(&lab.file).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "validate:\n{}", text(&out));
    let said = text(&out);
    assert!(said.contains("reachability  blue: h1 -> h2:eth1 (2001:db8:"), "{said}");
    eprintln!("unnumbered fabric: validate passed after {:.1} s", started.elapsed().as_secs_f64());
    ipv6_goes_when_the_lab_drops_it(&lab);
}

/// The same lab without its IPv6 pools, provisioned: the agents take the
/// IPv6 addresses the lab gave away, and BGP stays unnumbered (IPv4 over
/// IPv6 link-local next hops needs no global IPv6).
fn ipv6_goes_when_the_lab_drops_it(lab: &TestLab) {
    let text4 = std::fs::read_to_string(&lab.file).unwrap();
    let mut doc: toml::Table = text4.parse().unwrap();
    doc.remove("pools");
    // Its IPv6 ping test would be refused now (the lab has no IPv6).
    let tests = doc.get_mut("validate").and_then(|v| v.as_array_mut()).unwrap();
    tests.retain(|t| t.get("ping").and_then(|p| p.get("af")).is_none());
    std::fs::write(&lab.file, toml::to_string(&doc).unwrap()).unwrap();
    let out = lab.pi_lab().args(["provision", "--timeout", "90"]).arg(&lab.file).output().unwrap();
    assert!(out.status.success(), "provision without IPv6:\n{}", text(&out));
    let global6 = |node: &str| {
        let out = lab.exec(node, &["ip", "-6", "-o", "addr", "show", "scope", "global"]);
        text(&out).lines().map(str::to_string).collect::<Vec<_>>()
    };
    for node in ["leaf1", "h1"] {
        eventually(30, || match global6(node) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("{node} still has {left:?}")),
        })
        .unwrap();
    }
    for node in ROUTERS {
        eventually(60, || sessions_established(lab, node)).unwrap();
    }
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    let v4 = h2.interfaces[0].address.unwrap();
    let port = crate::fleet::host_port_towards(&h1, &v4);
    eventually(60, || ping(lab, "h1", &port, &v4.addr().to_string())).unwrap();
}

#[test]
fn numbered_dual_stack_fabric_carries_ipv6_over_its_ipv4_sessions() {
    if !prerequisites("numbered_dual_stack_fabric", true, TOOLS) {
        return;
    }
    let lab = TestLab::in_family("v6", "fabric.toml", "nd", 113, with_ipv6_pools);
    let started = Instant::now();
    assert_eq!(lab.up()["converged"], true);
    for node in ROUTERS {
        eventually(30, || sessions_established(&lab, node)).unwrap();
    }
    // leaf3's IPv6 loopback, learnt over IPv4 sessions: BGP's next hops
    // are the spines' global IPv6 addresses on the links (not IPv4-mapped
    // ones), and the kernel routes through both spines (over the
    // link-local addresses FRR sends beside them, as eBGP does).
    let (leaf1, leaf3) = (lab.config("leaf1"), lab.config("leaf3"));
    let lo6 = leaf3.loopback6.unwrap().to_string();
    let spines6: Vec<String> = leaf1
        .interfaces
        .iter()
        .filter(|i| i.description.contains("spine"))
        .filter_map(|port| {
            // The other end of the link's /64 (::1 and ::2).
            let mut seg = port.address6?.addr().segments();
            seg[7] = if seg[7] == 1 { 2 } else { 1 };
            Some(std::net::Ipv6Addr::from(seg).to_string())
        })
        .collect();
    assert_eq!(spines6.len(), 2, "{leaf1:?}");
    let show = format!("show bgp ipv6 unicast {lo6}/128 json");
    eventually(30, || {
        let bgp = text(&lab.exec("leaf1", &["vtysh", "-N", &lab.ns("leaf1"), "-c", &show]));
        let route = text(&lab.exec("leaf1", &["ip", "-6", "route", "show", &lo6]));
        let via_both = ["dev eth1", "dev eth2"].iter().all(|d| route.contains(d));
        if spines6.iter().all(|s| bgp.contains(&format!("\"{s}\""))) && via_both {
            Ok(())
        } else {
            Err(format!("{lo6}: bgp {bgp}\nkernel {route:?}\nwant next hops {spines6:?}"))
        }
    })
    .unwrap();
    let from6 = leaf1.loopback6.unwrap().to_string();
    eventually(30, || ping(&lab, "leaf1", &from6, &lo6)).unwrap();
    // h1 reaches h2 over IPv6 in both segments.
    let (h1, h2) = (lab.config("h1"), lab.config("h2"));
    for h2_port in &h2.interfaces {
        let v6 = h2_port.address6.unwrap();
        let port = port6_towards(&h1, &v6);
        eventually(60, || ping(&lab, "h1", &port, &v6.addr().to_string())).unwrap();
    }
    let out = lab.pi_lab().args(["validate", "--deadline", "90s"]).arg(&lab.file).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "validate:\n{}", text(&out));
    eprintln!(
        "numbered dual-stack: validate passed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
