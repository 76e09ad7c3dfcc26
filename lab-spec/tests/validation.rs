//! One test per kind of mistake in a lab file: each checks the message,
//! the help, and the line:column it is reported at.

use lab_spec::diagnostics::{Located, Severity};
use lab_spec::{Plan, parse};

/// Everything `pi-lab lab check` would report for a lab file.
fn report(text: &str) -> Vec<Located> {
    match parse(text, "t.toml") {
        Err(diags) => diags.located(),
        Ok(lab) => match Plan::new(&lab) {
            Err(diags) => diags.located(),
            Ok(plan) => plan.warnings.located(),
        },
    }
}

/// Assert an error whose message contains `message` at `line:column`, and
/// whose help contains `help`.
#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, message: &str, help: &str) {
    let found = report(text);
    let Some(d) = found.iter().find(|d| d.message.contains(message)) else {
        panic!("no error containing {message:?}; got {found:#?}");
    };
    assert_eq!(d.severity, Severity::Error, "{d:?}");
    assert_eq!((d.line, d.column), (Some(line), Some(column)), "{d:?}");
    let got = d.help.as_deref().unwrap_or("");
    assert!(got.contains(help), "help {got:?} lacks {help:?}");
}

/// Two routers and a link; tests append or replace lines.
const BASE: &str = r#"name = "t"

[nodes.r1]
role = "router"
asn = 100

[nodes.r2]
role = "router"
asn = 200

[[links]]
a = "r1:eth1"
b = "r2:eth1"
"#;

/// A small fabric: lines 1-30.
const FABRIC: &str = r#"name = "f"

[nodes.s1]
role = "spine"
asn = 65000

[nodes.l1]
role = "leaf"
asn = 65001

[nodes.l2]
role = "leaf"
asn = 65002

[nodes.h1]
role = "host"

[[links]]
a = "s1:eth1"
b = "l1:eth1"

[[links]]
a = "s1:eth2"
b = "l2:eth1"

[[links]]
a = "h1:eth1"
b = "l1:eth3"

[[segments]]
"#;

#[test]
fn base_labs_are_valid() {
    assert!(report(BASE).is_empty(), "{:#?}", report(BASE));
    let fabric = format!(
        "{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"l2\"]\naccess = [\"l1:eth3\"]\n"
    );
    assert!(
        report(&fabric).iter().all(|d| d.severity == Severity::Warning),
        "{:#?}",
        report(&fabric)
    );
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let text = BASE.replace("role = \"router\"\nasn = 200", "rol = \"router\"\nasn = 200");
    assert_error(&text, 8, 1, "unknown key \"rol\" in [nodes.r2]", "did you mean \"role\"?");
}

#[test]
fn unknown_top_level_key_suggests_the_right_one() {
    let text = format!("{BASE}\n[sflw]\ncollectors = []\n");
    assert_error(&text, 15, 2, "unknown key \"sflw\" in the lab file", "did you mean \"sflow\"?");
}

#[test]
fn unknown_key_without_a_near_miss_lists_the_valid_ones() {
    let text = format!("{BASE}mtux = 9000\nbanana = 1\n");
    assert_error(
        &text,
        15,
        1,
        "unknown key \"banana\" in [[links]]",
        "expected one of: a, b, mtu, subnet",
    );
}

#[test]
fn unknown_node_in_link() {
    let text = BASE.replace("b = \"r2:eth1\"", "b = \"r3:eth1\"");
    assert_error(&text, 13, 6, "unknown node \"r3\" in link", "known nodes are r1, r2");
}

#[test]
fn unknown_node_display_is_rustc_like() {
    let text = BASE.replace("b = \"r2:eth1\"", "b = \"leaf9:eth1\"");
    let diags = parse(&text, "fabric.toml").unwrap_err();
    let shown = diags.to_string();
    let expected = "fabric.toml:13:6: error: unknown node \"leaf9\" in link\n   |\n13 | b = \"leaf9:eth1\"\n   |      ^^^^^\n  = help: known nodes are r1, r2\n";
    assert!(shown.starts_with(expected), "{shown}");
    assert!(shown.ends_with("fabric.toml: 1 error"), "{shown}");
}

#[test]
fn interface_used_twice() {
    let text = format!("{BASE}\n[[links]]\na = \"r1:eth1\"\nb = \"r2:eth2\"\n");
    assert_error(&text, 16, 9, "interface r1:eth1 is used in two links", "first used on line 12");
}

#[test]
fn duplicate_node_names_are_named_clearly() {
    let text = format!("{BASE}\n[nodes.r1]\nrole = \"router\"\nasn = 300\n");
    assert_error(&text, 15, 8, "node \"r1\" is defined twice", "rename or merge");
    // The keys inside the second table are not reported again.
    assert_eq!(report(&text).len(), 1, "{:#?}", report(&text));
}

#[test]
fn duplicate_fixed_management_addresses() {
    let text = BASE
        .replace("asn = 100", "asn = 100\nmanagement = \"192.168.200.10\"")
        .replace("asn = 200", "asn = 200\nmanagement = \"192.168.200.10\"");
    assert_error(
        &text,
        11,
        14,
        "management address 192.168.200.10 of r2 is also the management address of r1",
        "its own",
    );
}

#[test]
fn duplicate_fixed_loopbacks() {
    let text = BASE
        .replace("asn = 100", "asn = 100\nloopback = \"10.0.0.9\"")
        .replace("asn = 200", "asn = 200\nloopback = \"10.0.0.9\"");
    assert_error(&text, 11, 12, "loopback 10.0.0.9 of r2 is also the loopback of r1", "its own");
}

#[test]
fn duplicate_serials() {
    let text = BASE
        .replace("asn = 100", "asn = 100\nserial = \"00000000a1b2c3d4\"")
        .replace("asn = 200", "asn = 200\nserial = \"00000000A1B2C3D4\"");
    assert_error(
        &text,
        11,
        10,
        "serial 00000000a1b2c3d4 of r2 is also the serial of r1",
        "its own serial",
    );
}

#[test]
fn duplicate_macs() {
    let text = BASE
        .replace("asn = 100", "asn = 100\nmac = \"b8:27:eb:00:00:01\"")
        .replace("asn = 200", "asn = 200\nmac = \"B8-27-EB-00-00-01\"");
    assert_error(&text, 11, 7, "mac b8:27:eb:00:00:01 of r2 is also the mac of r1", "its own mac");
}

#[test]
fn duplicate_vnis() {
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"l2\"]\naccess = [\"l1:eth3\"]\n\n[[segments]]\nname = \"red\"\nvni = 10\nleaves = [\"l1\"]\n"
    );
    assert_error(&text, 38, 7, "VNI 10 of segment red is also the VNI of blue", "its own VNI");
}

#[test]
fn vni_out_of_range() {
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 16777216\nleaves = [\"l1\"]\naccess = [\"l1:eth3\"]\n"
    );
    assert_error(&text, 32, 7, "vni 16777216 is out of range", "between 1 and 16777215");
    let text =
        format!("{FABRIC}name = \"blue\"\nvni = 0\nleaves = [\"l1\"]\naccess = [\"l1:eth3\"]\n");
    assert_error(&text, 32, 7, "vni 0 is out of range", "between 1 and 16777215");
}

#[test]
fn unknown_segment_mode_says_what_would_be_right() {
    let segment = |mode: &str| {
        format!("{FABRIC}name = \"blue\"\nvni = 10\nmode = \"{mode}\"\nleaves = [\"l1\", \"l2\"]\n")
    };
    assert_error(&segment("irbb"), 33, 8, "unknown segment mode \"irbb\"", "did you mean \"irb\"?");
    assert_error(
        &segment("routed"),
        33,
        8,
        "unknown segment mode \"routed\"",
        "expected \"bridge\" (the leaves only bridge, the default) or \"irb\"",
    );
    let text = format!("{FABRIC}name = \"blue\"\nvni = 10\nmode = 1\nleaves = [\"l1\"]\n");
    assert!(report(&text).iter().any(|d| d.line == Some(33)), "{:#?}", report(&text));
}

#[test]
fn asn_out_of_range() {
    let text = BASE.replace("asn = 200", "asn = 4294967295");
    assert_error(&text, 9, 7, "asn 4294967295 is out of range", "between 1 and 4294967294");
    let text = BASE.replace("asn = 100", "asn = 0");
    assert_error(&text, 5, 7, "asn 0 is out of range", "between 1 and 4294967294");
}

#[test]
fn four_byte_asns_are_fine() {
    let text = BASE.replace("asn = 200", "asn = 4200000000");
    assert!(report(&text).is_empty(), "{:#?}", report(&text));
}

#[test]
fn missing_asn_on_a_router() {
    let text = BASE.replace("asn = 200\n", "");
    assert_error(&text, 7, 8, "router r2 has no asn", "add asn = N");
}

#[test]
fn link_from_a_node_to_itself() {
    let text = BASE.replace("b = \"r2:eth1\"", "b = \"r1:eth2\"");
    assert_error(&text, 13, 6, "link from r1 to itself", "two different nodes");
}

#[test]
fn vxlan_member_that_is_not_a_leaf() {
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"s1\"]\naccess = [\"l1:eth3\"]\n"
    );
    assert_error(&text, 33, 17, "segment member s1 is a spine, not a leaf", "list leaves only");
}

#[test]
fn vxlan_member_without_a_loopback() {
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"h1\"]\naccess = [\"l1:eth3\"]\n"
    );
    assert_error(
        &text,
        33,
        17,
        "segment member h1 is a host and has no loopback",
        "leaf the host is attached to",
    );
}

#[test]
fn access_interface_also_used_as_a_router_link() {
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"l2\"]\naccess = [\"l1:eth3\", \"l2:eth1\"]\n"
    );
    assert_error(
        &text,
        24,
        5,
        "access interface l2:eth1 of segment blue is also used as a router-to-router link",
        "use another interface",
    );
}

#[test]
fn host_on_a_port_that_is_not_an_access_port() {
    let text = format!("{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\", \"l2\"]\n");
    assert_error(
        &text,
        28,
        5,
        "host h1 is linked to l1:eth3, which is not an access port of any segment",
        "add \"l1:eth3\" to the access list",
    );
}

#[test]
fn pools_too_small() {
    let text = format!("{BASE}\n[pools]\nloopback = \"10.0.0.0/32\"\n");
    assert_error(
        &text,
        16,
        12,
        "pools.loopback 10.0.0.0/32 is too small: 2 loopbacks needed, room for 1",
        "shorter prefix",
    );
    let text = BASE
        .replace("name = \"t\"\n", "name = \"t\"\n[management]\nsubnet = \"192.168.200.0/30\"\n");
    // /30: two hosts, one of them the controller, two nodes.
    assert_error(
        &text,
        3,
        10,
        "[management] subnet 192.168.200.0/30 is too small: 2 management addresses needed, room for 1",
        "give [management] subnet a shorter prefix",
    );
}

#[test]
fn overlapping_pools() {
    let text = format!("{BASE}\n[pools]\np2p = \"10.0.0.0/16\"\n");
    assert_error(
        &text,
        16,
        7,
        "pools.p2p 10.0.0.0/16 overlaps pools.loopback 10.0.0.0/24",
        "must not overlap",
    );
}

#[test]
fn fixed_loopback_outside_its_pool() {
    let text = BASE.replace("asn = 200", "asn = 200\nloopback = \"10.9.0.1\"");
    assert_error(
        &text,
        10,
        12,
        "loopback 10.9.0.1 of r2 is outside pools.loopback 10.0.0.0/24",
        "pick a host address in 10.0.0.0/24",
    );
}

#[test]
fn fixed_management_address_outside_the_subnet() {
    let text = BASE.replace("asn = 200", "asn = 200\nmanagement = \"192.168.7.3\"");
    assert_error(
        &text,
        10,
        14,
        "management address 192.168.7.3 of r2 is outside [management] subnet 192.168.200.0/24",
        "pick a host address",
    );
}

#[test]
fn fixed_link_subnet_outside_its_pool() {
    let text = format!("{BASE}subnet = \"10.2.0.0/31\"\n");
    assert_error(
        &text,
        14,
        10,
        "subnet 10.2.0.0/31 of link r1:eth1 - r2:eth1 is outside pools.p2p 10.1.0.0/16",
        "pick a /31",
    );
}

#[test]
fn fixed_management_address_on_the_controller() {
    let text = BASE.replace("asn = 200", "asn = 200\nmanagement = \"192.168.200.1\"");
    assert_error(
        &text,
        10,
        14,
        "management address 192.168.200.1 of r2 collides with the controller",
        "pick another management address",
    );
}

#[test]
fn id_colliding_with_a_fixed_loopback() {
    let text = BASE
        .replace("asn = 100", "asn = 100\nloopback = \"10.0.0.7\"")
        .replace("asn = 200", "asn = 200\nid = 7");
    assert_error(&text, 11, 6, "loopback 10.0.0.7 of r2 collides with r1", "pick another loopback");
}

#[test]
fn collector_that_is_not_address_and_port() {
    let text =
        format!("{BASE}\n[sflow]\ncollectors = [\"192.168.200.1:6343\", \"collector.lab:6343\"]\n");
    assert_error(
        &text,
        16,
        37,
        "collector \"collector.lab:6343\" is not address[:port]",
        "default port 6343",
    );
}

#[test]
fn unknown_role_suggests_one() {
    let text = BASE.replace("role = \"router\"\nasn = 200", "role = \"spin\"\nasn = 200");
    assert_error(&text, 8, 8, "unknown role \"spin\"", "did you mean \"spine\"?");
}

#[test]
fn wrong_type_says_what_was_expected() {
    let text = BASE.replace("asn = 200", "asn = \"200\"");
    assert_error(
        &text,
        9,
        7,
        "\"asn\" in [nodes.r2] must be an integer, found string",
        "an integer",
    );
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let text = BASE.replace("asn = 200", "asn = = 200");
    let found = report(&text);
    assert_eq!(found[0].line, Some(9), "{found:#?}");
    assert!(found[0].message.starts_with("invalid TOML"), "{found:#?}");
}

#[test]
fn every_error_is_reported_sorted_by_position() {
    let text = BASE
        .replace("asn = 100", "asn = 0")
        .replace("b = \"r2:eth1\"", "b = \"r9:eth1\"")
        .replace("role = \"router\"\nasn = 200", "rle = \"router\"\nasn = 200");
    let found = report(&text);
    let lines: Vec<usize> = found.iter().filter_map(|d| d.line).collect();
    assert!(found.len() >= 3, "{found:#?}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    assert!(found.iter().any(|d| d.message.contains("asn 0")));
    assert!(found.iter().any(|d| d.message.contains("unknown key \"rle\"")));
    assert!(found.iter().any(|d| d.message.contains("unknown node \"r9\"")));
}

#[test]
fn displaced_names_are_warned_about() {
    // Pin r2 onto r1's home host number: r1 must move and the plan says so.
    let home = lab_spec::alloc::home_slot("r1", 254) + 1;
    let text = BASE.replace("asn = 200", &format!("asn = 200\nid = {home}"));
    let found = report(&text);
    let w = found.iter().find(|d| d.message.starts_with("r1: loopback")).expect("warning");
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!((w.line, w.column), (Some(3), Some(8)));
    assert!(w.message.contains("is taken by r2"), "{w:?}");
}

#[test]
fn a_broken_node_is_not_also_reported_as_unknown() {
    let text = BASE.replace("role = \"router\"\nasn = 200", "rol = \"router\"\nasn = 200");
    let found = report(&text);
    assert!(found.iter().all(|d| !d.message.contains("unknown node")), "{found:#?}");
    assert_error(&text, 7, 8, "missing \"role\" in [nodes.r2]", "add role");
}

#[test]
fn invalid_utf8_is_reported_at_its_first_bad_byte() {
    let mut bytes = BASE.replace("asn = 200", "asn = 200 # caf").into_bytes();
    let at = bytes.iter().position(|b| *b == b'f').expect("f") + 1;
    bytes.splice(at..at, [0xe9, b'!', 0xff]);
    let diags = lab_spec::parse_bytes(&bytes, "t.toml").unwrap_err();
    let found = diags.located();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].line, found[0].column), (Some(9), Some(16)), "{found:#?}");
    assert_eq!(found[0].message, "byte 0xe9 is not UTF-8");
    assert!(diags.to_string().contains("t.toml:9:16: error"), "{diags}");
}

#[test]
fn node_names_that_differ_only_in_case() {
    let text = format!("{BASE}\n[nodes.R2]\nrole = \"router\"\nasn = 300\n");
    assert_error(
        &text,
        15,
        8,
        "node \"R2\" differs from node \"r2\" only in case",
        "rename one of them",
    );
}

#[test]
fn lab_ports_must_not_take_the_names_of_the_nodes_own_devices() {
    for (port, owner) in [
        ("lo", "the loopback"),
        ("mgmt0", "the management port of the virtual fleet"),
        ("vxlan10", "the agent's VXLAN device of VNI 10"),
        ("br10", "the agent's bridge of VNI 10"),
        ("br10.101", "the agent's bridge of VNI 10"),
    ] {
        let text = BASE.replace("b = \"r2:eth1\"", &format!("b = \"r2:{port}\""));
        let shown = port.split('.').next().unwrap_or(port);
        assert_error(&text, 13, 9, &format!("\"{shown}\" is {owner}"), "name the lab port after");
    }
    // Names that only start like them are lab ports.
    for port in ["bridge1", "vxlan", "br", "lo1", "mgmt1", "eth0.10"] {
        let text = BASE.replace("b = \"r2:eth1\"", &format!("b = \"r2:{port}\""));
        assert!(report(&text).is_empty(), "{port}: {:#?}", report(&text));
    }
}

#[test]
fn a_vlan_id_has_one_spelling() {
    let text = format!("{BASE}\n[[links]]\na = \"r1:eth0.101\"\nb = \"r2:eth0.0101\"\n");
    assert_error(
        &text,
        17,
        9,
        "VLAN id 0101 of \"eth0.0101\" has a leading zero",
        "write eth0.101",
    );
}

#[test]
fn a_board_mac_is_unicast() {
    for (mac, kind) in [
        ("ff:ff:ff:ff:ff:ff", "the broadcast address"),
        ("01:00:5e:00:00:01", "a multicast address"),
        ("B9:27:EB:12:34:56", "a multicast address"),
        ("00:00:00:00:00:00", "the all-zero address"),
    ] {
        let text = BASE.replace("asn = 200", &format!("asn = 200\nmac = \"{mac}\""));
        assert_error(&text, 10, 7, kind, "unicast MAC");
    }
    let text = BASE.replace("asn = 200", "asn = 200\nmac = \"b8:27:eb:12:34:56\"");
    assert!(report(&text).is_empty(), "{:#?}", report(&text));
}

#[test]
fn an_empty_nodes_table() {
    let text = "name = \"t\"\n\n[nodes]\n";
    assert_error(text, 3, 1, "the lab has no nodes", "[nodes.NAME]");
    let text = "name = \"t\"\nnodes = {}\n";
    assert_error(text, 2, 9, "the lab has no nodes", "[nodes.NAME]");
}

#[test]
fn a_hostile_file_does_not_flood_the_terminal() {
    // 2,000 nodes and 2,000 references to nodes that do not exist.
    let mut text = String::from("name = \"t\"\n");
    for i in 0..2000 {
        text.push_str(&format!("[nodes.r{i}]\nrole = \"router\"\nasn = {}\n", i + 1));
    }
    for i in 0..1000 {
        text.push_str(&format!("[[links]]\na = \"x{i}:eth1\"\nb = \"y{i}:eth1\"\n"));
    }
    let diags = parse(&text, "t.toml").unwrap_err();
    assert_eq!(diags.errors().count(), 2000, "every error is still found");
    let shown = diags.to_string();
    assert!(shown.len() < 64 * 1024, "{} bytes", shown.len());
    assert!(shown.contains("known nodes are r0, r1, r10, r100, r1000, r1001, r1002, r1003, r1004, r1005 and 1990 more\n"), "{shown}");
    assert!(shown.contains("... and 1950 more not shown here"), "{shown}");
    assert!(shown.ends_with("t.toml: 2000 errors"), "{shown}");
}

#[test]
fn a_very_long_line_is_cut_around_the_caret() {
    let many = "\"10.0.0.1\", ".repeat(2000);
    let text = format!("{BASE}\n[sflow]\ncollectors = [{many}\"bad\"]\n");
    let shown = parse(&text, "t.toml").unwrap_err().to_string();
    assert!(shown.lines().all(|l| l.chars().count() < 200), "{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].starts_with("t.toml:16:"), "{shown}");
    // The last 120 characters of the line, the caret under "bad".
    let cut = format!("…{}\"bad\"]", &many[many.len() - 114..]);
    assert_eq!(lines[2], format!("16 | {cut}"));
    assert_eq!(lines[3], format!("   | {}^^^^^", " ".repeat(cut.chars().count() - 6)));

    // A long value at the start of its line: the line is cut after it.
    let text = BASE.replace("a = \"r1:eth1\"", &format!("a = \"r1:eth1\" # {}", "x".repeat(5000)));
    let text = text.replace("b = \"r2:eth1\"", "b = \"r9:eth1\"");
    let text = text.replace("[[links]]", &format!("[[links]] # {}", "y".repeat(5000)));
    let shown = parse(&text, "t.toml").unwrap_err().to_string();
    assert!(shown.contains("13 | b = \"r9:eth1\"\n   |      ^^\n"), "{shown}");
    let text = BASE.replace("asn = 200", &format!("asn = 200\n{} = 1", "k".repeat(5000)));
    let shown = parse(&text, "t.toml").unwrap_err().to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0].chars().count(), "t.toml:10:1: error: ".len() + 300, "{}", lines[0]);
    assert_eq!(lines[2], format!("10 | {}…", "k".repeat(120)));
    assert_eq!(lines[3], format!("   | {}", "^".repeat(120)));
}

#[test]
fn invisible_and_control_characters_are_escaped() {
    let text =
        BASE.replace("[nodes.r2]", "[nodes.\"r\u{200b}2\"]").replace("r2:eth1", "r2:eth\\u00001");
    let diags = parse(&text, "t.toml").unwrap_err();
    let shown = diags.to_string();
    assert!(shown.contains("node name \"r\\u{200b}2\" is not a valid name"), "{shown}");
    assert!(shown.contains("7 | [nodes.\"r\\u{200b}2\"]\n  |        ^^^^^^^^^^^^\n"), "{shown}");
    assert!(shown.contains("\"eth\\01\" is not a valid interface name"), "{shown}");
    assert!(!shown.contains('\u{0}') && !shown.contains('\u{200b}'), "{shown:?}");
}

#[test]
fn an_error_caused_by_an_earlier_error_is_not_reported() {
    // h1 is on l1:eth3, the access port of a segment whose VNI is wrong:
    // the VNI is the one mistake.
    let text = format!(
        "{FABRIC}name = \"blue\"\nvni = 0\nleaves = [\"l1\", \"l2\"]\naccess = [\"l1:eth3\"]\n"
    );
    let found = report(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_error(&text, 32, 7, "vni 0 is out of range", "between 1 and 16777215");
    // A value the TOML parser cannot read is not also a key written twice.
    let text = BASE.replace("role = \"router\"\nasn = 200", "role = router\nasn = 200");
    let found = report(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn toml_syntax_errors_name_the_key() {
    let text = BASE.replace("asn = 200", "asn = 65001x");
    assert_error(
        &text,
        9,
        7,
        "invalid TOML in the value of \"asn\" in [nodes.r2]: ",
        "numbers, true and false stay bare",
    );
    let text = BASE.replace("b = \"r2:eth1\"", "b = \"r2:eth1");
    let found = report(&text);
    assert!(found[0].message.starts_with("invalid TOML in the value of \"b\" in [[links]]: "));
    let text = format!("{BASE}[nodes.r3\n");
    let found = report(&text);
    assert!(found[0].message.starts_with("invalid TOML in a table header: "), "{found:#?}");
    let text = format!("nme = \"t\"\nx y = 1\n{BASE}");
    let found = report(&text);
    assert!(found[0].message.starts_with("invalid TOML in the lab file: "), "{found:#?}");
}

#[test]
fn the_two_ends_of_a_link_carry_one_vlan_id() {
    let text = BASE
        .replace("a = \"r1:eth1\"\nb = \"r2:eth1\"", "a = \"r1:eth0.101\"\nb = \"r2:eth0.102\"");
    assert_error(
        &text,
        13,
        9,
        "the ends of link r1:eth0.101 - r2:eth0.102 carry different VLAN ids, 101 and 102",
        "tag both ends alike, e.g. b = \"r2:eth0.101\"",
    );
    // A VLAN at one end and a whole port (a USB adapter) at the other is fine.
    let text = BASE.replace("b = \"r2:eth1\"", "b = \"r2:eth0.102\"");
    assert!(report(&text).is_empty(), "{:#?}", report(&text));
}

#[test]
fn one_vlan_id_carries_one_link() {
    // Links 1 and 3 both use VLAN 101; 102 is taken by link 2.
    let text = format!(
        "{}\n[nodes.r3]\nrole = \"router\"\nasn = 300\n\n[[links]]\na = \"r1:eth0.102\"\nb = \"r3:eth0.102\"\n\n[[links]]\na = \"r2:eth2\"\nb = \"r3:eth0.101\"\n",
        BASE.replace(
            "a = \"r1:eth1\"\nb = \"r2:eth1\"",
            "a = \"r1:eth0.101\"\nb = \"r2:eth0.101\""
        )
    );
    assert_error(
        &text,
        25,
        9,
        "VLAN 101 already carries the link on line 11",
        "give this link the next free VLAN id: \"r3:eth0.103\"",
    );
    assert_eq!(report(&text).len(), 1, "{:#?}", report(&text));
}

#[test]
fn frr_lines_reach_the_node_config_and_its_frr_conf() {
    let text = BASE.replace(
        "asn = 100\n",
        "asn = 100\nfrr = \"\"\"\nip route 10.99.0.0/24 Null0\nrouter bgp 100\n network 10.99.0.0/24\nexit\n\"\"\"\n",
    );
    let lab = parse(&text, "t.toml").unwrap();
    let plan = Plan::new(&lab).unwrap();
    let configs = lab_spec::compile::compile(&lab, &plan, "t");
    let frr = configs["r1"].frr.as_deref().unwrap();
    assert_eq!(frr, "ip route 10.99.0.0/24 Null0\nrouter bgp 100\n network 10.99.0.0/24\nexit\n");
    assert!(lab_spec::frr::render(&configs["r1"]).contains("frr:\nip route 10.99.0.0/24 Null0\n"));
    // A node without them serializes as before: versions stay.
    assert!(!configs["r2"].to_toml().unwrap().contains("frr"));
    // Line 2 of the string is line 9 of the file, after its indent.
    let node = &lab.nodes["r1"];
    let span = node.spans.frr.clone().unwrap();
    let line = lab_spec::parse::string_line_span(&text, &span, frr, 2);
    assert_eq!(&text[line.clone()], "network 10.99.0.0/24");
    let source = lab_spec::diagnostics::Source::new("t.toml", &text);
    assert_eq!(source.line_col(line.start), (9, 2));
}

#[test]
fn a_host_has_no_frr_lines() {
    let text =
        format!("{BASE}\n[nodes.h1]\nrole = \"host\"\nfrr = \"ip route 10.0.0.0/8 Null0\"\n");
    assert_error(&text, 17, 7, "host h1 has frr lines", "hosts run no FRR");
}

// IPv6 pools (a dual-stack lab) and unnumbered links.

/// FABRIC with its segment: lines 1-34. Tests put pools and underlay
/// settings after it and keys after the lines they name.
fn v6_lab() -> String {
    format!("{FABRIC}name = \"blue\"\nvni = 10\nleaves = [\"l1\"]\naccess = [\"l1:eth3\"]\n")
}

const V6_POOLS: &str = r#"
[pools]
loopback6 = "2001:db8::/64"
p2p6 = "2001:db8:1::/48"
segments6 = "2001:db8:2::/48"
"#;

#[test]
fn unnumbered_link_with_a_host_end() {
    let lab = v6_lab();
    let text = lab.replace("b = \"l1:eth3\"\n", "b = \"l1:eth3\"\nunnumbered = true\n");
    assert_error(
        &text,
        29,
        14,
        "unnumbered link h1:eth1 - l1:eth3 has a host end",
        "only links between routers",
    );
}

#[test]
fn unnumbered_link_with_a_subnet_or_an_igp() {
    let lab = v6_lab();
    let text = lab.replace(
        "b = \"l1:eth1\"\n",
        "b = \"l1:eth1\"\nunnumbered = true\nsubnet = \"10.1.0.0/31\"\n",
    );
    assert_error(
        &text,
        22,
        10,
        "subnet on unnumbered link s1:eth1 - l1:eth1",
        "no addresses of its own",
    );
    let text = format!("{lab}\n[underlay]\nprotocol = \"ospf\"\nunnumbered = true\n");
    assert_error(&text, 38, 14, "unnumbered links with the ospf underlay", "protocol = \"ebgp\"");
}

#[test]
fn overlapping_ipv6_pools() {
    let lab = v6_lab();
    let text = format!("{lab}{}", V6_POOLS.replace("2001:db8:2::/48", "2001:db8:1:ff00::/56"));
    assert_error(
        &text,
        39,
        13,
        "pools.segments6 2001:db8:1:ff00::/56 overlaps pools.p2p6 2001:db8:1::/48",
        "must not overlap",
    );
}

#[test]
fn ipv6_pools_too_small() {
    let lab = v6_lab();
    let text = format!("{lab}{}", V6_POOLS.replace("2001:db8::/64", "2001:db8::/128"));
    assert_error(
        &text,
        37,
        13,
        "pools.loopback6 2001:db8::/128 is too small: 3 IPv6 loopbacks needed, room for 1",
        "shorter prefix",
    );
    let text = format!("{lab}{}", V6_POOLS.replace("2001:db8:1::/48", "2001:db8:1::/64"));
    assert_error(
        &text,
        38,
        8,
        "pools.p2p6 2001:db8:1::/64 is too small: 2 IPv6 link subnets needed, room for 1",
        "shorter prefix",
    );
}

#[test]
fn fixed_ipv6_addresses_outside_their_pools() {
    let lab = v6_lab();
    let text = format!(
        "{}{V6_POOLS}",
        lab.replace("asn = 65001\n", "asn = 65001\nloopback6 = \"2001:db9::1\"\n")
            .replace("b = \"l1:eth1\"\n", "b = \"l1:eth1\"\nsubnet6 = \"2001:db8:9::/64\"\n")
            .replace(
                "access = [\"l1:eth3\"]\n",
                "access = [\"l1:eth3\"]\nsubnet6 = \"2001:db8:3:1::/64\"\n"
            )
    );
    assert_error(
        &text,
        10,
        13,
        "IPv6 loopback 2001:db9::1 of l1 is outside pools.loopback6 2001:db8::/64",
        "pick an address in 2001:db8::/64",
    );
    assert_error(
        &text,
        22,
        11,
        "subnet6 2001:db8:9::/64 of link s1:eth1 - l1:eth1 is outside pools.p2p6",
        "pick a /64 in 2001:db8:1::/48",
    );
    assert_error(
        &text,
        37,
        11,
        "subnet6 2001:db8:3:1::/64 of segment blue is outside pools.segments6",
        "pick a /64",
    );
}

#[test]
fn ipv6_without_its_pool() {
    let lab = v6_lab();
    let text = lab.replace("asn = 65001\n", "asn = 65001\nloopback6 = \"2001:db8::1\"\n");
    assert_error(&text, 10, 13, "loopback6 without pools.loopback6", "add loopback6 to [pools]");
    let text = format!("{lab}\n[pools]\nsegments6 = \"2001:db8:2::/48\"\n");
    assert_error(&text, 37, 13, "pools.segments6 without pools.loopback6", "loopback6 = ");
    let text = format!("{lab}\n[pools]\nloopback6 = \"2001:db8::/64\"\n");
    assert_error(&text, 37, 13, "needs pools.p2p6 for its numbered links", "unnumbered = true");
    let text = lab.replace("role = \"host\"\n", "role = \"host\"\nloopback6 = \"2001:db8::1\"\n");
    assert_error(&text, 17, 13, "host h1 has a loopback", "only routers");
}
