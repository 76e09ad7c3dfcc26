//! Both example labs validate, plan and compile, and their plans are
//! pinned by snapshots (`cargo insta review` after an intended change).

use std::path::PathBuf;

use lab_spec::node_config::{Flooding, InterfaceKind, Role};
use lab_spec::{Plan, compile};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn plan_of(name: &str) -> (lab_spec::Lab, Plan) {
    let lab = lab_spec::load(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan = Plan::new(&lab).unwrap_or_else(|e| panic!("{name}: {e}"));
    (lab, plan)
}

#[test]
fn two_router_example_compiles_to_one_ebgp_session() {
    let (lab, plan) = plan_of("two-router.toml");
    let configs = compile::compile(&lab, &plan, "secret");
    assert_eq!(configs.len(), 2);
    let r1 = &configs["r1"];
    let r2 = &configs["r2"];
    let b1 = r1.bgp.as_ref().unwrap();
    let b2 = r2.bgp.as_ref().unwrap();
    assert_eq!((b1.asn, b2.asn), (100, 200));
    assert_eq!(b1.neighbors.len(), 1);
    assert_eq!(b1.neighbors[0].remote_asn, 200);
    assert_eq!(b1.neighbors[0].description, "r2");
    assert_eq!(b1.neighbors[0].address, r2.interfaces[0].address.unwrap().addr());
    assert_eq!(b2.neighbors[0].address, r1.interfaces[0].address.unwrap().addr());
    assert_eq!(r1.interfaces[0].address.unwrap().prefix_len(), 31);
    assert_eq!(b1.router_id, r1.loopback.unwrap());
    assert_eq!(b1.networks, vec![ipnet::Ipv4Net::from(r1.loopback.unwrap())]);
    assert!(!b1.evpn);
    assert!(r1.vxlan.is_empty());
    assert_eq!(r1.version, r1.content_version());
    assert_eq!(r1.auth, lab_spec::node_config::Auth::from_token("secret"));
    assert_eq!(r1.health.listen.ip(), std::net::IpAddr::V4(r1.management.address.addr()));
    assert_eq!(r1.sflow.collectors, vec!["192.168.200.1:6343".parse().unwrap()]);
    // Round trip through the wire format.
    let back = lab_spec::NodeConfig::from_toml(&r1.to_toml().unwrap()).unwrap();
    assert_eq!(&back, r1);
}

#[test]
fn fabric_example_compiles_with_vteps_and_evpn() {
    let (lab, plan) = plan_of("fabric.toml");
    let configs = compile::compile(&lab, &plan, "secret");
    assert_eq!(configs.len(), 8);
    let leaf1 = &configs["leaf1"];
    let leaf3 = &configs["leaf3"];
    assert_eq!(leaf1.bgp.as_ref().unwrap().neighbors.len(), 2);
    assert!(leaf1.bgp.as_ref().unwrap().evpn);
    assert!(configs["spine1"].bgp.as_ref().unwrap().evpn);
    assert_eq!(configs["spine1"].bgp.as_ref().unwrap().neighbors.len(), 4);
    let blue = leaf1.vxlan.iter().find(|s| s.vni == 10010).unwrap();
    assert_eq!(blue.device, "vxlan10010");
    assert_eq!(blue.bridge, "br10010");
    assert_eq!(blue.port, 4789);
    assert_eq!(blue.local_vtep, leaf1.loopback.unwrap());
    assert_eq!(blue.access_ports, vec!["eth3".to_string()]);
    assert_eq!(blue.flooding, Flooding::Static { remote_vteps: vec![leaf3.loopback.unwrap()] });
    let green = leaf1.vxlan.iter().find(|s| s.vni == 10020).unwrap();
    assert_eq!(green.flooding, Flooding::Evpn);
    // leaf2 is in green only, with no access port.
    assert_eq!(configs["leaf2"].vxlan.len(), 1);
    let access = leaf1.interfaces.iter().find(|i| i.name == "eth3").unwrap();
    assert_eq!(access.address, None);
    assert_eq!(access.kind, InterfaceKind::Port);
    let h1 = &configs["h1"];
    assert_eq!(h1.role, Role::Host);
    assert!(h1.bgp.is_none());
    assert!(h1.loopback.is_none());
    assert_eq!(h1.interfaces.len(), 2);
    assert!(h1.interfaces.iter().all(|i| i.mtu == Some(1450) && i.address.is_some()));
    assert_eq!(h1.sflow.agent_address, std::net::IpAddr::V4(h1.management.address.addr()));
    // h1:eth1 and h2:eth1 share blue's subnet.
    let blue_plan = plan.segments.iter().find(|s| s.name == "blue").unwrap();
    let h2 = &configs["h2"];
    assert!(blue_plan.subnet.contains(&h1.interfaces[0].address.unwrap().addr()));
    assert!(blue_plan.subnet.contains(&h2.interfaces[0].address.unwrap().addr()));
}

#[test]
fn plan_of_two_router_example() {
    let (_, plan) = plan_of("two-router.toml");
    insta::assert_json_snapshot!("two_router_plan_json", plan);
}

#[test]
fn plan_of_fabric_example() {
    let (_, plan) = plan_of("fabric.toml");
    insta::assert_json_snapshot!("fabric_plan_json", plan);
}

#[test]
fn same_file_same_plan() {
    let (_, a) = plan_of("fabric.toml");
    let (_, b) = plan_of("fabric.toml");
    assert_eq!(a, b);
}

/// The lab-file reference in the README must stay a valid lab.
#[test]
fn readme_reference_lab_is_valid() {
    let readme = std::fs::read_to_string(example("../README.md")).unwrap();
    let start = readme.find("```toml\nname = \"fabric\"").expect("reference block") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let others = "\n[nodes.spine1]\nrole = \"spine\"\nasn = 65000\n\n[nodes.leaf3]\nrole = \"leaf\"\nasn = 65003\n";
    let text = format!("{}{others}", &readme[start..end]);
    let lab = lab_spec::parse(&text, "README.md").unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&lab).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.nodes["leaf1"].loopback, Some("10.0.0.21".parse().unwrap()));
    assert_eq!(plan.links[0].subnet, "10.1.9.0/31".parse().unwrap());
}
