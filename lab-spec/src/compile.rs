//! Turning a lab and its plan into one fully resolved `NodeConfig` per
//! node: everything the agent on that board needs, no names to look up.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::lab::{FloodingMode, Lab, Node, SegmentSpec, defaults, interface_kind};
use crate::node_config::{
    Auth, Bgp, BgpTimers, DEFAULT_HEALTH_PORT, Flooding, HealthApi, Identity, Igp, IgpNeighbor,
    Interface, LOOPBACK_SESSION, Management, NODE_CONFIG_SCHEMA, Neighbor, NodeConfig, Role,
    Segment, Sflow, VXLAN_PORT,
};
use crate::plan::{EndPlan, LinkPlan, Plan, PlannedLinkKind, SegmentPlan};

/// One `NodeConfig` per node of a lab, keyed by node name. `token` is the
/// lab's bearer token; only its SHA-256 ends up in the configs.
pub fn compile(lab: &Lab, plan: &Plan, token: &str) -> BTreeMap<String, NodeConfig> {
    lab.nodes
        .values()
        .filter_map(|node| Some((node.name.clone(), node_config(lab, plan, node, token)?)))
        .collect()
}

fn node_config(lab: &Lab, plan: &Plan, node: &Node, token: &str) -> Option<NodeConfig> {
    let planned = plan.nodes.get(&node.name)?;
    let interfaces = interfaces(lab, plan, node);
    let agent_address = planned.sflow_agent();
    let config = NodeConfig {
        schema: NODE_CONFIG_SCHEMA,
        lab: lab.name.clone(),
        version: String::new(),
        hostname: node.name.clone(),
        role: node.role,
        identity: Identity { serial: node.serial.clone(), mac: node.mac.clone() },
        management: Management {
            interface: None,
            address: planned.management,
            gateway: lab.management.gateway,
            controller: lab.management.controller,
        },
        loopback: planned.loopback,
        loopback6: planned.loopback6,
        bgp: bgp(lab, plan, node),
        igp: igp(lab, plan, node),
        vxlan: vxlan(lab, plan, node),
        routes: Vec::new(),
        sflow: Sflow {
            collectors: lab.sflow.collectors.clone(),
            polling_interval: lab.sflow.polling_interval,
            sampling_rate: lab.sflow.sampling_rate,
            agent_address: IpAddr::V4(agent_address),
            interfaces: interfaces.iter().map(|i| i.name.clone()).collect(),
        },
        interfaces,
        health: HealthApi {
            listen: SocketAddr::new(IpAddr::V4(planned.management.addr()), DEFAULT_HEALTH_PORT),
        },
        auth: Auth::from_token(token),
        led: node.led.clone(),
        frr: node.frr.clone(),
    };
    Some(config.with_version())
}

/// This node's end and the other end of every link it is on.
fn ends<'p>(
    plan: &'p Plan,
    node: &str,
) -> impl Iterator<Item = (&'p LinkPlan, &'p EndPlan, &'p EndPlan)> {
    plan.links.iter().filter_map(move |l| {
        if l.a.node == node {
            Some((l, &l.a, &l.b))
        } else if l.b.node == node {
            Some((l, &l.b, &l.a))
        } else {
            None
        }
    })
}

/// Link interfaces in file order, then access ports no link uses.
fn interfaces(lab: &Lab, plan: &Plan, node: &Node) -> Vec<Interface> {
    let mut out: Vec<Interface> = ends(plan, &node.name)
        .map(|(link, mine, peer)| {
            let host_mtu = (node.role == Role::Host && link.kind == PlannedLinkKind::Access)
                .then_some(defaults::HOST_MTU);
            Interface {
                name: mine.interface.clone(),
                kind: interface_kind(&mine.interface),
                mtu: link.mtu.or(host_mtu),
                address: mine.address,
                address6: mine.address6,
                description: format!("to {}:{}", peer.node, peer.interface),
                tc: lab.tc_of(&mine.node, &mine.interface).cloned(),
            }
        })
        .collect();
    for seg in &lab.segments {
        for port in seg.access.iter().filter(|e| e.node == node.name) {
            if out.iter().all(|i| i.name != port.interface) {
                out.push(Interface {
                    name: port.interface.clone(),
                    kind: port.kind(),
                    mtu: None,
                    address: None,
                    address6: None,
                    description: format!("access port of segment {}", seg.name),
                    tc: None,
                });
            }
        }
    }
    out
}

/// BGP where the node speaks it. eBGP underlay: a session across every
/// router-to-router link. IGP underlay: iBGP between loopbacks, with the
/// spines as route reflectors (netlab's design), or a full mesh when the
/// lab has no spine that speaks BGP.
fn bgp(lab: &Lab, plan: &Plan, node: &Node) -> Option<Bgp> {
    let loopback = plan.nodes.get(&node.name)?.loopback?;
    let asn = lab.asn_of(node)?;
    let neighbors = if lab.underlay.protocol.igp().is_some() {
        ibgp_neighbors(lab, plan, node)
    } else {
        ebgp_neighbors(lab, plan, node)
    };
    Some(Bgp {
        asn,
        router_id: loopback,
        neighbors,
        networks: vec![Ipv4Net::from(loopback)],
        timers: BgpTimers {
            keepalive: lab.bgp.keepalive,
            hold: lab.bgp.hold,
            connect_retry: lab.bgp.connect_retry,
        },
        multipath: lab.bgp.multipath,
        evpn: lab.carries_evpn(node),
    })
}

/// A session across every router link: to the peer's address, or on the
/// interface when the link is unnumbered (named by the peer's loopback).
fn ebgp_neighbors(lab: &Lab, plan: &Plan, node: &Node) -> Vec<Neighbor> {
    ends(plan, &node.name)
        .filter(|(link, _, _)| link.kind == PlannedLinkKind::Underlay)
        .filter_map(|(link, mine, peer)| {
            let address = match link.unnumbered {
                true => plan.nodes.get(&peer.node)?.loopback?,
                false => peer.address?.addr(),
            };
            Some(Neighbor {
                address,
                remote_asn: lab.asn_of(lab.nodes.get(&peer.node)?)?,
                interface: mine.interface.clone(),
                description: peer.node.clone(),
                route_reflector_client: false,
                unnumbered: link.unnumbered,
            })
        })
        .collect()
}

/// Route reflectors peer with everyone (their clients and each other);
/// clients peer with the reflectors only.
fn ibgp_neighbors(lab: &Lab, plan: &Plan, node: &Node) -> Vec<Neighbor> {
    let reflectors = lab.nodes.values().any(|n| is_reflector(lab, n));
    let me_reflector = is_reflector(lab, node);
    lab.nodes
        .values()
        .filter(|peer| peer.name != node.name && lab.asn_of(peer).is_some())
        .filter(|peer| !reflectors || me_reflector || is_reflector(lab, peer))
        .filter_map(|peer| {
            Some(Neighbor {
                address: plan.nodes.get(&peer.name)?.loopback?,
                remote_asn: lab.asn_of(peer)?,
                interface: LOOPBACK_SESSION.to_string(),
                description: peer.name.clone(),
                route_reflector_client: me_reflector && !is_reflector(lab, peer),
                unnumbered: false,
            })
        })
        .collect()
}

/// Spines that speak BGP reflect the routes of an IGP underlay's iBGP.
fn is_reflector(lab: &Lab, node: &Node) -> bool {
    node.role == Role::Spine && lab.asn_of(node).is_some()
}

/// OSPF or IS-IS on every router of an IGP underlay: one adjacency per
/// router-to-router link.
fn igp(lab: &Lab, plan: &Plan, node: &Node) -> Option<Igp> {
    let protocol = lab.underlay.protocol.igp()?;
    let router_id = plan.nodes.get(&node.name)?.loopback?;
    let neighbors = ends(plan, &node.name)
        .filter(|(link, _, _)| link.kind == PlannedLinkKind::Underlay)
        .filter_map(|(_, mine, peer)| {
            Some(IgpNeighbor {
                interface: mine.interface.clone(),
                router_id: plan.nodes.get(&peer.node)?.loopback?,
                description: peer.node.clone(),
            })
        })
        .collect();
    Some(Igp {
        protocol,
        router_id,
        area: lab.underlay.area.clone(),
        timers: lab.underlay.timers,
        neighbors,
    })
}

fn vxlan(lab: &Lab, plan: &Plan, node: &Node) -> Vec<Segment> {
    let Some(local_vtep) = plan.nodes.get(&node.name).and_then(|n| n.loopback) else {
        return Vec::new();
    };
    lab.segments
        .iter()
        .filter(|s| s.leaves.contains(&node.name))
        .map(|s| Segment {
            vni: s.vni,
            name: s.name.clone(),
            device: format!("vxlan{}", s.vni),
            bridge: s.bridge(),
            address: irb_address(plan, s, &node.name),
            address6: segment_plan(plan, s).and_then(|p| p.irb_address6(&node.name)),
            local_vtep,
            port: VXLAN_PORT,
            access_ports: s
                .access
                .iter()
                .filter(|e| e.node == node.name)
                .map(|e| e.interface.clone())
                .collect(),
            flooding: flooding(plan, s, &node.name),
        })
        .collect()
}

/// The leaf's address on the segment's bridge, planned for irb segments
/// only.
fn irb_address(plan: &Plan, segment: &SegmentSpec, me: &str) -> Option<Ipv4Net> {
    segment_plan(plan, segment)?.irb_address(me)
}

fn segment_plan<'p>(plan: &'p Plan, segment: &SegmentSpec) -> Option<&'p SegmentPlan> {
    plan.segments.iter().find(|p| p.name == segment.name)
}

fn flooding(plan: &Plan, segment: &SegmentSpec, me: &str) -> Flooding {
    match segment.flooding {
        FloodingMode::Evpn => Flooding::Evpn,
        FloodingMode::Static => {
            let mut remote_vteps: Vec<Ipv4Addr> = segment
                .leaves
                .iter()
                .filter(|l| l.as_str() != me)
                .filter_map(|l| plan.nodes.get(l)?.loopback)
                .collect();
            remote_vteps.sort();
            Flooding::Static { remote_vteps }
        }
    }
}
