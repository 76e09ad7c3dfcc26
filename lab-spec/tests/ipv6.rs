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
