//! OSPF and IS-IS underlays: what `[underlay]` accepts and refuses, who
//! runs BGP with whom (iBGP, spines as route reflectors), and the FRR
//! configs the IGP fabric examples compile to (pinned by snapshots).

use std::collections::BTreeMap;
use std::path::PathBuf;

use lab_spec::diagnostics::Severity;
use lab_spec::node_config::{IgpProtocol, NodeConfig};
use lab_spec::{Plan, compile, parse};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn configs_of(name: &str) -> BTreeMap<String, NodeConfig> {
    let (_, _, configs) =
        lab_spec::compile_file(&example(name), "secret").unwrap_or_else(|e| panic!("{name}: {e}"));
    configs
}

fn compile_text(text: &str) -> BTreeMap<String, NodeConfig> {
    let lab = parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&lab).unwrap_or_else(|e| panic!("{e}"));
    compile::compile(&lab, &plan, "t")
}

/// Errors of a lab text: (line, column, message, help).
fn errors(text: &str) -> Vec<(usize, usize, String, String)> {
    let diags = match parse(text, "t.toml") {
        Ok(_) => return Vec::new(),
        Err(d) => d,
    };
    diags
        .located()
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            (d.line.unwrap_or(0), d.column.unwrap_or(0), d.message, d.help.unwrap_or_default())
        })
        .collect()
}

#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, message: &str, help: &str) {
    let found = errors(text);
    let Some(e) = found.iter().find(|e| e.2.contains(message)) else {
        panic!("no error containing {message:?}; got {found:#?}");
    };
    assert_eq!((e.0, e.1), (line, column), "{e:?}");
    assert!(e.3.contains(help), "help {:?} lacks {help:?}", e.3);
}

const TWO_ROUTERS: &str = r#"name = "t"

[underlay]
protocol = "ospf"

[nodes.r1]
role = "router"

[nodes.r2]
role = "router"

[[links]]
a = "r1:eth1"
b = "r2:eth1"
"#;

#[test]
fn an_igp_lab_without_bgp_runs_ospf_only() {
    let configs = compile_text(TWO_ROUTERS);
    let r1 = &configs["r1"];
    assert!(r1.bgp.is_none(), "no AS anywhere: no BGP");
    let igp = r1.igp.as_ref().unwrap();
    assert_eq!(igp.protocol, IgpProtocol::Ospf);
    assert_eq!(igp.area, "0.0.0.0");
    assert_eq!((igp.timers.hello, igp.timers.dead), (1, 4));
    assert_eq!(igp.neighbors.len(), 1);
    assert_eq!(igp.neighbors[0].router_id, configs["r2"].loopback.unwrap());
    assert_eq!(igp.neighbors[0].interface, "eth1");
    assert_eq!(r1.check(), Ok(()));
    assert_eq!(r1.frr_daemons(), vec!["ospfd"]);
    let frr = lab_spec::frr::render(r1);
    assert!(!frr.contains("router bgp"), "{frr}");
    assert!(frr.contains("router ospf\n ospf router-id "), "{frr}");
}

#[test]
fn timers_and_area_are_overridable() {
    let text = TWO_ROUTERS.replace(
        "protocol = \"ospf\"",
        "protocol = \"isis\"\narea = \"49.0002\"\nhello = 2\ndead = 7",
    );
    let configs = compile_text(&text);
    let igp = configs["r1"].igp.as_ref().unwrap();
    assert_eq!(igp.protocol, IgpProtocol::Isis);
    assert_eq!(igp.area, "49.0002");
    assert_eq!(igp.timers.hello_multiplier(), 4, "7 s of 2 s hellos: 4 hellos");
    let frr = lab_spec::frr::render(&configs["r1"]);
    assert!(frr.contains(" isis hello-interval 2\n isis hello-multiplier 4\n"), "{frr}");
    assert!(frr.contains(" net 49.0002."), "{frr}");
}

#[test]
fn bad_underlay_settings_are_reported_where_written() {
    let with = |lines: &str| TWO_ROUTERS.replace("protocol = \"ospf\"", lines);
    assert_error(&with("protocol = \"ospfv2\""), 4, 12, "unknown underlay protocol", "\"ospf\"");
    assert_error(
        &with("protocol = \"ospf\"\nhello = 5\ndead = 5"),
        6,
        8,
        "dead 5 must be longer than hello 5",
        "four times",
    );
    assert_error(
        &with("protocol = \"isis\"\narea = \"0.0.0.0\""),
        5,
        8,
        "is not an area address",
        "49.0001",
    );
    assert_error(
        &with("protocol = \"ospf\"\narea = \"backbone\""),
        5,
        8,
        "neither a dotted quad",
        "0.0.0.0",
    );
    assert_error(
        &with("protocol = \"ebgp\"\narea = \"0\""),
        5,
        8,
        "area with an eBGP underlay",
        "ospf",
    );
    assert_error(
        &with("protocol = \"isis\"\nhello = 1\ndead = 200"),
        6,
        8,
        "more than 100 hellos",
        "2 to 100",
    );
    assert_error(&with("protocol = \"ospf\"\nhelo = 1"), 5, 1, "unknown key \"helo\"", "hello");
}

#[test]
fn one_as_for_ibgp_and_an_as_for_every_evpn_speaker() {
    let ases = TWO_ROUTERS
        .replace("role = \"router\"\n\n[nodes.r2]", "role = \"router\"\nasn = 100\n\n[nodes.r2]")
        .replace("[[links]]", "asn = 200\n\n[[links]]");
    assert_error(&ases, 13, 7, "r2 is in AS 200 but r1 is in AS 100", "protocol = \"ebgp\"");
    let ebgp_without_as = TWO_ROUTERS.replace("protocol = \"ospf\"", "protocol = \"ebgp\"");
    assert_error(&ebgp_without_as, 6, 8, "router r1 has no asn", "[bgp]");
    let fabric = std::fs::read_to_string(example("fabric-ospf.toml")).unwrap();
    let no_as = fabric.replace("asn = 65000 ", "# no asn ");
    let found = errors(&no_as);
    assert!(
        found
            .iter()
            .any(|e| e.2.contains("leaf1 speaks EVPN, which rides on iBGP, but has no asn")),
        "{found:#?}"
    );
}

#[test]
fn spines_reflect_for_the_leaves_and_mesh_with_each_other() {
    for (file, protocol) in
        [("fabric-ospf.toml", IgpProtocol::Ospf), ("fabric-isis.toml", IgpProtocol::Isis)]
    {
        let configs = configs_of(file);
        let spine1 = &configs["spine1"];
        let leaf1 = &configs["leaf1"];
        let sb = spine1.bgp.as_ref().unwrap();
        let lb = leaf1.bgp.as_ref().unwrap();
        assert_eq!(sb.asn, 65000);
        assert_eq!(lb.asn, 65000);
        // spine1: four clients and spine2.
        let clients: Vec<&str> = sb
            .neighbors
            .iter()
            .filter(|n| n.route_reflector_client)
            .map(|n| n.description.as_str())
            .collect();
        assert_eq!(clients, ["leaf1", "leaf2", "leaf3", "leaf4"], "{file}");
        let peers: Vec<&str> = sb
            .neighbors
            .iter()
            .filter(|n| !n.route_reflector_client)
            .map(|n| n.description.as_str())
            .collect();
        assert_eq!(peers, ["spine2"]);
        // leaf1: the two spines, between loopbacks, not as clients.
        let to: Vec<(&str, bool)> =
            lb.neighbors.iter().map(|n| (n.description.as_str(), n.between_loopbacks())).collect();
        assert_eq!(to, [("spine1", true), ("spine2", true)]);
        assert_eq!(lb.neighbors[0].address, spine1.loopback.unwrap());
        assert!(lb.evpn && sb.evpn);
        assert!(!configs["leaf2"].vxlan.is_empty());
        assert!(configs["h1"].igp.is_none() && configs["h1"].bgp.is_none());
        assert_eq!(spine1.igp.as_ref().unwrap().protocol, protocol);
        assert_eq!(spine1.igp.as_ref().unwrap().neighbors.len(), 4);
        for (name, config) in &configs {
            assert_eq!(config.check(), Ok(()), "{file}: {name}");
        }
    }
}

#[test]
fn without_spines_ibgp_is_a_full_mesh() {
    let text = r#"name = "t"
[underlay]
protocol = "isis"
[bgp]
asn = 65000
[nodes.r1]
role = "router"
[nodes.r2]
role = "router"
[nodes.r3]
role = "router"
[[links]]
a = "r1:eth1"
b = "r2:eth1"
[[links]]
a = "r2:eth2"
b = "r3:eth1"
"#;
    let configs = compile_text(text);
    for (name, c) in &configs {
        let n = &c.bgp.as_ref().unwrap().neighbors;
        assert_eq!(n.len(), 2, "{name}");
        assert!(n.iter().all(|n| n.between_loopbacks() && !n.route_reflector_client));
    }
    assert_eq!(configs["r2"].igp.as_ref().unwrap().neighbors.len(), 2);
}

#[test]
fn daemons_file_switches_only_the_routing_daemons() {
    let configs = configs_of("fabric-isis.toml");
    let debian = "zebra=yes\nbgpd=no\nospfd=no\nospf6d=no\nisisd=no\n\nvtysh_enable=yes\n";
    let text = lab_spec::frr::daemons(debian, &configs["spine1"]);
    assert_eq!(text, "zebra=yes\nbgpd=yes\nospfd=no\nospf6d=no\nisisd=yes\n\nvtysh_enable=yes\n");
    assert_eq!(lab_spec::frr::daemons(&text, &configs["spine1"]), text, "idempotent");
    let missing = lab_spec::frr::daemons("zebra=yes\n", &configs["spine1"]);
    assert_eq!(missing, "zebra=yes\nbgpd=yes\nospfd=no\nisisd=yes\n");
}

#[test]
fn igp_fabric_configs_read_like_hand_written_ones() {
    for file in ["fabric-ospf.toml", "fabric-isis.toml"] {
        let configs = configs_of(file);
        for node in ["spine1", "leaf1"] {
            let mut config = configs[node].clone();
            // The version line changes with every token; pin the rest.
            config.version = String::new();
            let name = format!("{}_{node}_frr", file.trim_end_matches(".toml").replace('-', "_"));
            insta::assert_snapshot!(name, lab_spec::frr::render(&config));
        }
    }
}
