//! Segments of `mode = "irb"`: every member leaf gets an address in the
//! segment, on its bridge, from the allocator the hosts use; the rest of
//! the plan, and every config without irb, stay as they were.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use lab_spec::lab::SegmentMode;
use lab_spec::{Plan, compile, frr, parse};

/// Three leaves in irb segment blue (VNI 10) with two hosts, and l1 and
/// l2 in bridge segment red (VNI 20). `SUBNET` is blue's fixed subnet.
const LAB: &str = r#"name = "irb"

[nodes.l1]
role = "leaf"
asn = 65001

[nodes.l2]
role = "leaf"
asn = 65002

[nodes.l3]
role = "leaf"
asn = 65003

[nodes.h1]
role = "host"

[nodes.h2]
role = "host"

[[links]]
a = "l1:eth1"
b = "l2:eth1"

[[links]]
a = "l2:eth2"
b = "l3:eth1"

[[links]]
a = "h1:eth1"
b = "l1:eth3"

[[links]]
a = "h2:eth1"
b = "l2:eth3"

[[segments]]
name = "blue"
vni = 10
mode = "irb"
leaves = ["l1", "l2", "l3"]
access = ["l1:eth3", "l2:eth3"]
subnet = "SUBNET"

[[segments]]
name = "red"
vni = 20
leaves = ["l1", "l2"]
"#;

fn plan_with(subnet: &str) -> Result<(lab_spec::Lab, Plan), String> {
    let lab = parse(&LAB.replace("SUBNET", subnet), "irb.toml").map_err(|d| d.to_string())?;
    let plan = Plan::new(&lab).map_err(|d| d.to_string())?;
    Ok((lab, plan))
}

#[test]
fn mode_is_read_and_defaults_to_bridge() {
    let (lab, plan) = plan_with("172.16.10.0/24").unwrap();
    assert_eq!(lab.segments[0].mode, SegmentMode::Irb);
    assert_eq!(lab.segments[1].mode, SegmentMode::Bridge);
    assert_eq!(plan.segments[0].mode, SegmentMode::Irb);
}

#[test]
fn irb_leaves_share_the_segment_allocator_with_the_hosts() {
    // A /29 has 6 host addresses for 5 members: crowded, yet no collision.
    for subnet in ["172.16.10.0/24", "172.16.10.0/29"] {
        let (_, plan) = plan_with(subnet).unwrap();
        let blue = &plan.segments[0];
        let keys: Vec<&str> = blue.hosts.keys().map(String::as_str).collect();
        assert_eq!(keys, ["h1:eth1", "h2:eth1", "l1:br10", "l2:br10", "l3:br10"]);
        let addresses: BTreeSet<Ipv4Addr> = blue.hosts.values().map(|a| a.addr()).collect();
        assert_eq!(addresses.len(), 5, "{subnet}: {:?}", blue.hosts);
        for a in blue.hosts.values() {
            assert_eq!(a.prefix_len(), blue.subnet.prefix_len());
            assert!(blue.subnet.contains(&a.addr()), "{a} outside {subnet}");
            assert!(a.addr() != blue.subnet.network() && a.addr() != blue.subnet.broadcast());
        }
        assert_eq!(blue.irb_address("l3"), blue.hosts.get("l3:br10").copied());
        // Nothing else in the plan has any of them either.
        let all = plan.addresses();
        let distinct: BTreeSet<Ipv4Addr> = all.iter().map(|(a, _)| *a).collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        assert!(all.iter().any(|(_, owner)| owner == "l1:br10"));
    }
}

#[test]
fn a_bridge_segment_gives_its_leaves_no_address() {
    let (_, plan) = plan_with("172.16.10.0/24").unwrap();
    let red = &plan.segments[1];
    assert!(red.hosts.is_empty(), "{:?}", red.hosts);
    assert_eq!(red.irb_address("l1"), None);
}

#[test]
fn a_segment_too_small_for_its_members_is_an_error() {
    // A /30 has 2 host addresses for 5 members.
    let err = plan_with("172.16.10.0/30").unwrap_err();
    assert!(err.contains("segment blue"), "{err}");
}

#[test]
fn compile_puts_the_address_on_the_leaf_bridge_and_bgp_leaves_it_alone() {
    let (lab, plan) = plan_with("172.16.10.0/24").unwrap();
    let configs = compile::compile(&lab, &plan, "secret");
    let blue = &plan.segments[0];
    for leaf in ["l1", "l2", "l3"] {
        let cfg = &configs[leaf];
        cfg.check().unwrap();
        let seg = cfg.vxlan.iter().find(|s| s.vni == 10).unwrap();
        assert_eq!(seg.bridge, "br10");
        assert_eq!(seg.address, blue.irb_address(leaf), "{leaf}");
        assert!(seg.address.is_some());
        // The segment is not routed: BGP announces the loopback only.
        let bgp = cfg.bgp.as_ref().unwrap();
        assert_eq!(bgp.networks, vec![Ipv4Net::from(cfg.loopback.unwrap())]);
        let conf = frr::render(cfg);
        assert!(!conf.contains("172.16.10."), "{leaf} frr.conf names the segment:\n{conf}");
        assert!(!conf.contains("redistribute"), "{conf}");
    }
    let red = configs["l1"].vxlan.iter().find(|s| s.vni == 20).unwrap();
    assert_eq!(red.address, None);
    // Hosts keep their addresses, from the same subnet.
    let h1 = &configs["h1"].interfaces[0];
    assert_eq!(h1.address, blue.hosts.get("h1:eth1").copied());
}

#[test]
fn the_address_round_trips_through_the_wire_format() {
    let (lab, plan) = plan_with("172.16.10.0/24").unwrap();
    let l1 = &compile::compile(&lab, &plan, "secret")["l1"];
    let text = l1.to_toml().unwrap();
    let wanted = format!("address = \"{}\"", l1.vxlan[0].address.unwrap());
    assert!(text.contains(&wanted), "{text}");
    assert_eq!(&lab_spec::NodeConfig::from_toml(&text).unwrap(), l1);
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

/// A lab without irb compiles to the very configs it did before irb
/// existed: no `address` key, and the same version (pinned from then).
#[test]
fn a_config_without_irb_serializes_exactly_as_before() {
    let lab = lab_spec::load(&example("boards.toml")).unwrap();
    let plan = Plan::new(&lab).unwrap();
    let leaf1 = &compile::compile(&lab, &plan, "secret")["leaf1"];
    assert_eq!(leaf1.vxlan[0].address, None);
    let text = leaf1.to_toml().unwrap();
    let vxlan = text.split("[[vxlan]]").nth(1).unwrap().split("[sflow]").next().unwrap();
    assert_eq!(
        vxlan,
        r#"
vni = 10010
name = "blue"
device = "vxlan10010"
bridge = "br10010"
local_vtep = "10.0.0.101"
port = 4789
access_ports = ["eth0.201"]

[vxlan.flooding]
mode = "static"
remote_vteps = ["10.0.0.232"]

"#
    );
    assert_eq!(leaf1.version, "0843968a8bfebb52");
    assert_eq!(leaf1.version, leaf1.content_version());
}

#[test]
fn the_two_leaf_boards_example_pings_across_irb() {
    let lab = lab_spec::load(&example("two-leaf-boards.toml")).unwrap();
    let plan = Plan::new(&lab).unwrap();
    assert!(plan.warnings.is_empty(), "{}", plan.warnings);
    let blue = &plan.segments[0];
    assert_eq!((blue.vni, blue.mode), (10010, SegmentMode::Irb));
    let keys: Vec<&str> = blue.hosts.keys().map(String::as_str).collect();
    assert_eq!(keys, ["leaf1:br10010", "leaf2:br10010"]);
    let configs = compile::compile(&lab, &plan, "secret");
    for (name, cfg) in &configs {
        cfg.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cfg.bgp.as_ref().unwrap().timers.hold, 30);
        assert!(cfg.vxlan[0].address.is_some());
    }
}
