//! Dual-stack plans (IPv6 pools) and unnumbered links, on the example
//! `fabric-unnumbered.toml` and a numbered twin of it. The mistakes are in
//! `validation.rs`.

use std::path::PathBuf;

use lab_spec::{Plan, parse};

fn example_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn plan(text: &str) -> Plan {
    let lab = parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::new(&lab).unwrap_or_else(|e| panic!("{e}"))
}

/// The unnumbered example with numbered links: a /31 and a /64 each.
fn numbered() -> String {
    example_text("fabric-unnumbered.toml")
        .replace("unnumbered = true ", "unnumbered = false")
        .replace("# p2p6 would", "p2p6 = \"2001:db8:1::/48\"\n# p2p6 would")
}

#[test]
fn dual_stack_plan_twins_every_ipv4_address() {
    let p = plan(&numbered());
    let leaf1 = &p.nodes["leaf1"];
    let (lo, lo6) = (leaf1.loopback.unwrap(), leaf1.loopback6.unwrap());
    // The same host number in both families.
    assert_eq!(u128::from(lo6) & 0xff, u128::from(u32::from(lo) & 0xff));
    assert!(p.nodes["h1"].loopback6.is_none());
    let link = &p.links[0];
    let net6 = link.subnet6.unwrap();
    assert_eq!(net6.prefix_len(), 64);
    let ends: Vec<_> = [&link.a, &link.b].iter().map(|e| e.address6.unwrap()).collect();
    assert!(ends.iter().all(|a| net6.contains(&a.addr())), "{ends:?}");
    assert_ne!(ends[0], ends[1]);
    let blue = &p.segments[0];
    let h1 = blue.hosts6["h1:eth1"];
    assert!(blue.subnet6.unwrap().contains(&h1.addr()));
    assert_eq!(blue.hosts6.len(), blue.hosts.len());
    let h1_link = p.links.iter().find(|l| l.a.node == "h1").unwrap();
    assert_eq!(h1_link.a.address6, Some(h1));
    // The same file, the same plan.
    assert_eq!(p, plan(&numbered()));
}

#[test]
fn without_ipv6_pools_a_plan_has_no_ipv6() {
    let p = plan(&example_text("fabric.toml"));
    assert!(p.nodes.values().all(|n| n.loopback6.is_none()));
    assert!(p.links.iter().all(|l| l.subnet6.is_none() && !l.unnumbered));
    let json = serde_json::to_string(&p).unwrap();
    for key in ["loopback6", "subnet6", "address6", "hosts6", "unnumbered"] {
        assert!(!json.contains(key), "{key} in {json}");
    }
}

#[test]
fn unnumbered_links_have_no_addresses() {
    let text = example_text("fabric-unnumbered.toml");
    let p = plan(&text);
    let underlay: Vec<_> = p.links.iter().filter(|l| l.segment.is_none()).collect();
    assert_eq!(underlay.len(), 8);
    for link in underlay {
        assert!(link.unnumbered);
        assert_eq!(link.subnet4(), None);
        let addresses = [link.a.address, link.b.address];
        assert_eq!((addresses, link.a.address6, link.b.address6), ([None, None], None, None));
        let json = serde_json::to_value(link).unwrap();
        assert!(json.get("subnet").is_none(), "{json}");
    }
    assert!(p.nodes.values().filter(|n| n.loopback.is_some()).all(|n| n.loopback6.is_some()));
    // Host links keep their segment addresses.
    assert!(p.links.iter().filter(|l| l.segment.is_some()).all(|l| l.a.address.is_some()));
    // One link numbered again by hand.
    let one = text
        .replace("b = \"leaf1:eth1\"\n", "b = \"leaf1:eth1\"\nunnumbered = false\n")
        .replace("# p2p6 would", "p2p6 = \"2001:db8:1::/48\"\n# p2p6 would");
    let p = plan(&one);
    assert!(!p.links[0].unnumbered && p.links[0].subnet6.is_some());
    assert!(p.links[1].unnumbered);
}

#[test]
fn fixed_ipv6_addresses_are_kept() {
    let text = numbered()
        .replace("asn = 65001\n", "asn = 65001\nloopback6 = \"2001:db8::99\"\n")
        .replace("b = \"leaf1:eth1\"\n", "b = \"leaf1:eth1\"\nsubnet6 = \"2001:db8:1:9::/64\"\n");
    let p = plan(&text);
    assert_eq!(p.nodes["leaf1"].loopback6, Some("2001:db8::99".parse().unwrap()));
    assert_eq!(p.links[0].subnet6, Some("2001:db8:1:9::/64".parse().unwrap()));
    // leaf1:eth1 sorts before spine1:eth1, so it gets ::1.
    assert_eq!(p.links[0].b.address6, Some("2001:db8:1:9::1/64".parse().unwrap()));
    assert_eq!(p.links[0].a.address6, Some("2001:db8:1:9::2/64".parse().unwrap()));
}

fn configs(text: &str) -> std::collections::BTreeMap<String, lab_spec::NodeConfig> {
    let lab = parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&lab).unwrap_or_else(|e| panic!("{e}"));
    lab_spec::compile::compile(&lab, &plan, "secret")
}

#[test]
fn unnumbered_sessions_run_on_interfaces_named_by_the_peer_loopback() {
    let configs = configs(&example_text("fabric-unnumbered.toml"));
    let (leaf1, spine1) = (&configs["leaf1"], &configs["spine1"]);
    let bgp = leaf1.bgp.as_ref().unwrap();
    assert_eq!(bgp.neighbors.len(), 2);
    let n = &bgp.neighbors[0];
    assert!(n.unnumbered);
    assert_eq!((n.interface.as_str(), n.address), ("eth1", spine1.loopback.unwrap()));
    assert_eq!(n.frr_name(), "eth1");
    assert_eq!(leaf1.loopback6, Some("2001:db8::65".parse().unwrap()));
    assert!(leaf1.interfaces.iter().all(|i| i.address.is_none() && i.address6.is_none()));
    let h1 = &configs["h1"];
    assert!(h1.interfaces.iter().all(|i| i.address6.is_some()));
    assert!(h1.routes.is_empty(), "segments are not routed, in either family");
    for config in configs.values() {
        config.check().unwrap_or_else(|e| panic!("{}: {e}", config.hostname));
        let back = lab_spec::NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap();
        assert_eq!(&back, config);
    }
}

#[test]
fn two_unnumbered_links_to_one_peer_are_two_sessions() {
    let text = example_text("fabric-unnumbered.toml").replacen(
        "[[segments]]",
        "[[links]]\na = \"spine1:eth5\"\nb = \"leaf1:eth5\"\n\n[[segments]]",
        1,
    );
    let configs = configs(&text);
    let leaf1 = &configs["leaf1"];
    let to_spine1 =
        leaf1.bgp.as_ref().unwrap().neighbors.iter().filter(|n| n.description == "spine1");
    assert_eq!(to_spine1.count(), 2);
    leaf1.check().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unnumbered_dual_stack_frr_confs() {
    let configs = configs(&example_text("fabric-unnumbered.toml"));
    insta::assert_snapshot!(
        "fabric_unnumbered_leaf1_frr",
        lab_spec::frr::render(&configs["leaf1"])
    );
    insta::assert_snapshot!(
        "fabric_unnumbered_spine1_frr",
        lab_spec::frr::render(&configs["spine1"])
    );
}

#[test]
fn numbered_dual_stack_carries_ipv6_on_the_ipv4_sessions() {
    let configs = configs(&numbered());
    let text = lab_spec::frr::render(&configs["leaf1"]);
    assert!(text.contains("ipv6 forwarding\n"), "{text}");
    assert!(!text.contains("interface peer-group"), "{text}");
    assert!(!text.contains("suppress-ra"), "{text}");
    let v6 = text.split(" address-family ipv6 unicast\n").nth(1).unwrap();
    assert!(v6.starts_with("  network 2001:db8::65/128\n  neighbor SPINES activate\n"), "{text}");
    assert!(configs["leaf1"].interfaces[0].address6.is_some());
}

#[test]
fn lab_tests_may_name_ipv6_addresses_and_prefixes() {
    let text = format!(
        "{}\n[[validate]]\nname = \"v6\"\nnodes = [\"leaf1\"]\nping = \"2001:db8::13\"\n\n[[validate]]\nname = \"v6-route\"\nnodes = [\"leaf1\"]\nroute = \"2001:db8::13/128\"\n",
        example_text("fabric-unnumbered.toml")
    );
    let lab = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lab.tests.len(), 5);
}

/// An IGP fabric example made dual-stack.
fn dual_stack(example: &str) -> String {
    let pools = "[pools]\nloopback6 = \"2001:db8::/64\"\np2p6 = \"2001:db8:1::/48\"\nsegments6 = \"2001:db8:2::/48\"\n\n[underlay]";
    example_text(example).replacen("[underlay]", pools, 1)
}

#[test]
fn dual_stack_igps_carry_ipv6() {
    let ospf = configs(&dual_stack("fabric-ospf.toml"));
    let leaf1 = &ospf["leaf1"];
    assert_eq!(leaf1.frr_daemons(), ["bgpd", "ospfd", "ospf6d"]);
    insta::assert_snapshot!("fabric_ospf_dual_stack_leaf1_frr", lab_spec::frr::render(leaf1));
    let daemons = lab_spec::frr::daemons("bgpd=no\nospfd=no\nisisd=no\n", leaf1);
    assert_eq!(daemons, "bgpd=yes\nospfd=yes\nisisd=no\nospf6d=yes\n");
    let isis = configs(&dual_stack("fabric-isis.toml"));
    insta::assert_snapshot!(
        "fabric_isis_dual_stack_leaf1_frr",
        lab_spec::frr::render(&isis["leaf1"])
    );
    assert_eq!(isis["leaf1"].frr_daemons(), ["bgpd", "isisd"]);
    // Without IPv6 the daemons file gets no ospf6d line, and one that has
    // it is switched off.
    let v4 = configs(&example_text("fabric-ospf.toml"));
    let daemons = lab_spec::frr::daemons("bgpd=no\nospfd=no\nisisd=no\n", &v4["leaf1"]);
    assert_eq!(daemons, "bgpd=yes\nospfd=yes\nisisd=no\n");
    let daemons = lab_spec::frr::daemons("ospf6d=yes\n", &v4["leaf1"]);
    assert_eq!(daemons, "ospf6d=no\nbgpd=yes\nospfd=yes\nisisd=no\n");
}

/// netlab's way: ipv6 in the addressing pools, `unnumbered` on a link, on
/// one interface of a link, or on the whole p2p pool.
#[cfg(feature = "netlab")]
#[test]
fn netlab_ipv6_pools_and_unnumbered_links_convert() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/netlab/unnumbered-ipv6.yml");
    let (_, plan, configs) =
        lab_spec::compile_file(&path, "secret").unwrap_or_else(|e| panic!("{e}"));
    let underlay: Vec<_> = plan.links.iter().filter(|l| l.segment.is_none()).collect();
    assert_eq!(underlay.len(), 2);
    assert!(underlay.iter().all(|l| l.unnumbered), "on the link and on one interface");
    assert_eq!(plan.nodes["spine"].loopback6, Some("2001:db8::1".parse().unwrap()));
    let ha = &configs["ha"];
    assert!(ha.interfaces[0].address6.is_some_and(|a| a.to_string().starts_with("2001:db8:20:")));
    assert!(configs["spine"].bgp.as_ref().unwrap().neighbors.iter().all(|n| n.unnumbered));
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "addressing:\n",
        "addressing:\n  p2p:\n    unnumbered: true\n",
        1,
    );
    let text = text
        .replace("  unnumbered: true\n- interfaces", "- interfaces")
        .replace(", unnumbered: true", "");
    let import = lab_spec::netlab::convert(&text, "t.yml", "t").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        import.toml.contains("[underlay]\nprotocol = \"ebgp\"\nunnumbered = true\n"),
        "{}",
        import.toml
    );
}
