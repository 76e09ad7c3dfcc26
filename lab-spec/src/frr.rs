//! `frr.conf` for one node, rendered from its [`NodeConfig`].
//!
//! The output is meant to read like a config a network engineer writes by
//! hand for a leaf-spine fabric. With an eBGP underlay: one peer group per
//! neighbour role, the loopback as router id and as the only advertised
//! prefix, multipath across equal-length paths from different ASNs, and,
//! when the lab uses EVPN, `address-family l2vpn evpn`. Only nodes that own
//! an EVPN segment say `advertise-all-vni`; spines just carry the routes.
//!
//! With an OSPF or IS-IS underlay the IGP is configured on the interfaces
//! (point-to-point, short hello and dead timers) and the loopback is a
//! passive member; BGP, where it runs, is iBGP between loopbacks
//! (`update-source lo`) with the spines as route reflectors.
//!
//! The same text is valid for FRR 8.4 (Debian 12, the virtual fleet) and
//! FRR 10.3 (Debian 13, the boards).

use std::fmt::Write;

use crate::node_config::{Bgp, Flooding, Igp, IgpProtocol, Neighbor, NodeConfig, Role};

/// Name of the IS-IS instance.
pub const ISIS_INSTANCE: &str = "UNDERLAY";

/// Render the complete `frr.conf`. Pure: the same config gives the same text.
pub fn render(cfg: &NodeConfig) -> String {
    let mut out = String::new();
    header(&mut out, cfg);
    interfaces(&mut out, cfg);
    if let Some(igp) = &cfg.igp {
        router_igp(&mut out, igp);
        if cfg.runs_ospf6() {
            let _ = write!(
                out,
                "router ospf6\n ospf6 router-id {}\n log-adjacency-changes\nexit\n!\n",
                igp.router_id
            );
        }
    }
    if let Some(bgp) = &cfg.bgp {
        router_bgp(&mut out, cfg, bgp);
    }
    let mut out = lab_lines(out, cfg);
    out.push_str("end\n");
    out
}

/// Starts the comment line above the node's own lines from the lab file.
pub const LAB_LINES: &str = "! From the lab file, ";

/// The node's `frr = """..."""` lines, as written (without trailing
/// blanks), after everything generated: they may re-enter any section.
/// Their `no` lines take generated lines out ([`crate::frr_hand::fold_into`]).
fn lab_lines(generated: String, cfg: &NodeConfig) -> String {
    let Some(text) = cfg.frr.as_deref().filter(|t| !t.trim().is_empty()) else { return generated };
    let lines: String = text.trim_end().lines().map(|l| format!("{}\n", l.trim_end())).collect();
    let (mut out, lines) = crate::frr_hand::fold_into(&generated, &lines);
    let _ = writeln!(out, "{LAB_LINES}[nodes.{}] frr:", cfg.hostname);
    out.push_str(&lines);
    out.push_str("!\n");
    out
}

/// Where the lab file's lines start in a rendered `frr.conf` (0-based
/// line), if it has any: line `n` of the text is line `n - start` of the
/// node's `frr` string.
pub fn lab_lines_start(text: &str) -> Option<usize> {
    text.lines().position(|l| l.starts_with(LAB_LINES)).map(|i| i + 1)
}

/// Name of the peer group holding this node's neighbours. NodeConfig does
/// not carry the peer's role, but in a leaf-spine fabric it follows from
/// ours: leaves peer with spines and spines with leaves.
pub fn peer_group(role: Role) -> &'static str {
    match role {
        Role::Leaf => "SPINES",
        Role::Spine => "LEAVES",
        Role::Router | Role::Host => "PEERS",
    }
}

fn header(out: &mut String, cfg: &NodeConfig) {
    let _ = write!(
        out,
        "! {host} ({role}) in lab {lab}: written by node-agent from config {version}.\n\
         ! Lines typed into vtysh are kept and shown by pi-lab status; pi-lab lab save collects them.\n\
         frr version 8.4\n\
         frr defaults datacenter\n\
         hostname {host}\n\
         log syslog informational\n\
         service integrated-vtysh-config\n",
        host = cfg.hostname,
        role = cfg.role,
        lab = cfg.lab,
        version = if cfg.version.is_empty() { "-" } else { &cfg.version },
    );
    // Routers forward; zebra sets the sysctl (a namespace starts with 0).
    if cfg.role != Role::Host {
        out.push_str("ip forwarding\n");
        if cfg.loopback6.is_some() {
            out.push_str("ipv6 forwarding\n");
        }
    }
    out.push_str("!\n");
}

/// Seconds between router advertisements on an unnumbered port: the peer
/// finds our link-local address in them, so a short interval brings a
/// session up soon after a link or FRR restart.
pub const RA_INTERVAL: u16 = 3;

/// Every interface with a description, with the IGP where it runs and
/// router advertisements where BGP runs unnumbered; then the loopback, a
/// passive IGP member.
fn interfaces(out: &mut String, cfg: &NodeConfig) {
    let igp = cfg.igp.as_ref();
    let unnumbered = cfg.unnumbered_ports();
    for iface in &cfg.interfaces {
        let runs_igp = igp.is_some_and(|i| i.neighbors.iter().any(|n| n.interface == iface.name));
        let sends_ra = unnumbered.contains(&iface.name.as_str());
        if iface.description.trim().is_empty() && !runs_igp && !sends_ra {
            continue;
        }
        let _ = writeln!(out, "interface {}", iface.name);
        if !iface.description.trim().is_empty() {
            let _ = writeln!(out, " description {}", one_line(&iface.description));
        }
        if let Some(igp) = igp.filter(|_| runs_igp) {
            igp_interface(out, igp, cfg.loopback6.is_some());
        }
        if sends_ra {
            let _ = writeln!(out, " ipv6 nd ra-interval {RA_INTERVAL}\n no ipv6 nd suppress-ra");
        }
        out.push_str("exit\n!\n");
    }
    if let Some(igp) = igp {
        let v6 = cfg.loopback6.is_some();
        out.push_str("interface lo\n");
        let _ = match (igp.protocol, v6) {
            (IgpProtocol::Ospf, false) => {
                writeln!(out, " ip ospf area {}\n ip ospf passive", igp.area)
            }
            (IgpProtocol::Ospf, true) => writeln!(
                out,
                " ip ospf area {0}\n ip ospf passive\n ipv6 ospf6 area {0}\n ipv6 ospf6 passive",
                igp.area
            ),
            (IgpProtocol::Isis, false) => {
                writeln!(out, " ip router isis {ISIS_INSTANCE}\n isis passive")
            }
            (IgpProtocol::Isis, true) => writeln!(
                out,
                " ip router isis {ISIS_INSTANCE}\n ipv6 router isis {ISIS_INSTANCE}\n isis passive"
            ),
        };
        out.push_str("exit\n!\n");
    }
}

/// A point-to-point link in the IGP, with the lab's timers; with `ipv6`,
/// OSPFv3 beside OSPFv2, or IS-IS for both families.
fn igp_interface(out: &mut String, igp: &Igp, ipv6: bool) {
    let t = igp.timers;
    let _ = match igp.protocol {
        IgpProtocol::Ospf => write!(
            out,
            " ip ospf area {}\n ip ospf network point-to-point\n ip ospf hello-interval {}\n ip ospf dead-interval {}\n",
            igp.area, t.hello, t.dead
        ),
        IgpProtocol::Isis => write!(
            out,
            " ip router isis {ISIS_INSTANCE}\n{}{}",
            if ipv6 { format!(" ipv6 router isis {ISIS_INSTANCE}\n") } else { String::new() },
            format_args!(
                " isis network point-to-point\n isis hello-interval {}\n isis hello-multiplier {}\n",
                t.hello,
                t.hello_multiplier()
            )
        ),
    };
    if ipv6 && igp.protocol == IgpProtocol::Ospf {
        let _ = write!(
            out,
            " ipv6 ospf6 area {}\n ipv6 ospf6 network point-to-point\n ipv6 ospf6 hello-interval {}\n ipv6 ospf6 dead-interval {}\n",
            igp.area, t.hello, t.dead
        );
    }
}

/// IS-IS regenerates an LSP at most every `lsp-gen-interval` (30 s by
/// default): with it, a new adjacency reaches the other routers half a
/// minute late. A lab wants 1 s.
fn router_igp(out: &mut String, igp: &Igp) {
    let _ = match igp.protocol {
        IgpProtocol::Ospf => write!(
            out,
            "router ospf\n ospf router-id {}\n log-adjacency-changes\nexit\n!\n",
            igp.router_id
        ),
        IgpProtocol::Isis => write!(
            out,
            "router isis {ISIS_INSTANCE}\n is-type level-2-only\n net {}\n metric-style wide\n lsp-gen-interval 1\n log-adjacency-changes\nexit\n!\n",
            igp.isis_net()
        ),
    };
}

/// A peer group and its neighbours.
struct Group<'a> {
    name: &'static str,
    members: Vec<&'a Neighbor>,
    /// iBGP between loopbacks: sourced from `lo`.
    loopbacks: bool,
    /// The members are this node's route-reflector clients.
    reflect: bool,
}

/// Direct (eBGP underlay) neighbours by role, iBGP peers, and clients of a
/// route reflector, each in its own group; empty groups are left out.
fn groups<'a>(cfg: &NodeConfig, bgp: &'a Bgp) -> Vec<Group<'a>> {
    let pick = |f: &dyn Fn(&Neighbor) -> bool| -> Vec<&'a Neighbor> {
        bgp.neighbors.iter().filter(|n| f(n)).collect()
    };
    let groups = [
        Group {
            name: peer_group(cfg.role),
            members: pick(&|n| !n.between_loopbacks()),
            loopbacks: false,
            reflect: false,
        },
        Group {
            name: "IBGP",
            members: pick(&|n| n.between_loopbacks() && !n.route_reflector_client),
            loopbacks: true,
            reflect: false,
        },
        Group {
            name: "RR-CLIENTS",
            members: pick(&|n| n.between_loopbacks() && n.route_reflector_client),
            loopbacks: true,
            reflect: true,
        },
    ];
    groups.into_iter().filter(|g| !g.members.is_empty()).collect()
}

fn router_bgp(out: &mut String, cfg: &NodeConfig, bgp: &Bgp) {
    let groups = groups(cfg, bgp);
    let t = bgp.timers;
    let ibgp = groups.iter().any(|g| g.loopbacks);
    let _ = writeln!(out, "router bgp {}", bgp.asn);
    let _ = writeln!(out, " bgp router-id {}", bgp.router_id);
    out.push_str(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n");
    if !ibgp {
        out.push_str(" bgp bestpath as-path multipath-relax\n");
    }
    let _ = writeln!(out, " timers bgp {} {}", t.keepalive, t.hold);
    for g in &groups {
        let _ = writeln!(out, " neighbor {} peer-group", g.name);
        if g.loopbacks {
            let _ = writeln!(out, " neighbor {} update-source lo", g.name);
        }
        let _ = writeln!(out, " neighbor {} timers connect {}", g.name, t.connect_retry);
    }
    for g in &groups {
        for n in &g.members {
            neighbor(out, n, g.name);
        }
    }
    let networks: Vec<String> = bgp.networks.iter().map(|n| n.trunc().to_string()).collect();
    unicast(out, "ipv4", &networks, &groups, bgp.multipath);
    if let Some(lo6) = cfg.loopback6 {
        unicast(out, "ipv6", &[format!("{lo6}/128")], &groups, bgp.multipath);
    }
    if bgp.evpn {
        out.push_str(" !\n address-family l2vpn evpn\n");
        activate(out, &groups);
        if cfg.vxlan.iter().any(|s| s.flooding == Flooding::Evpn) {
            out.push_str("  advertise-all-vni\n");
        }
        out.push_str(" exit-address-family\n");
    }
    out.push_str("exit\n!\n");
}

/// One neighbour in its group: by address, or on its interface.
fn neighbor(out: &mut String, n: &Neighbor, group: &str) {
    let name = n.frr_name();
    if n.unnumbered {
        let _ = writeln!(out, " neighbor {name} interface peer-group {group}");
        let _ = writeln!(out, " neighbor {name} remote-as {}", n.remote_asn);
    } else {
        let _ = writeln!(out, " neighbor {name} remote-as {}", n.remote_asn);
        let _ = writeln!(out, " neighbor {name} peer-group {group}");
    }
    if !n.description.trim().is_empty() {
        let _ = writeln!(out, " neighbor {name} description {}", one_line(&n.description));
    }
}

/// `address-family ipv4 unicast` or `ipv6 unicast`: the node's prefixes,
/// every group, ECMP (across ASes for eBGP, within the AS for iBGP).
fn unicast(out: &mut String, family: &str, networks: &[String], groups: &[Group], paths: u16) {
    let ebgp = groups.iter().any(|g| !g.loopbacks);
    let ibgp = groups.iter().any(|g| g.loopbacks);
    let _ = writeln!(out, " !\n address-family {family} unicast");
    for net in networks {
        let _ = writeln!(out, "  network {net}");
    }
    activate(out, groups);
    if ebgp || !ibgp {
        let _ = writeln!(out, "  maximum-paths {paths}");
    }
    if ibgp {
        let _ = writeln!(out, "  maximum-paths ibgp {paths}");
    }
    out.push_str(" exit-address-family\n");
}

/// `activate` every group in an address family, and reflect to clients.
fn activate(out: &mut String, groups: &[Group]) {
    for g in groups {
        let _ = writeln!(out, "  neighbor {} activate", g.name);
        if g.reflect {
            let _ = writeln!(out, "  neighbor {} route-reflector-client", g.name);
        }
    }
}

/// The routing daemons pi-lab switches on and off in `/etc/frr/daemons`.
pub const ROUTING_DAEMONS: [&str; 3] = ["bgpd", "ospfd", "isisd"];

/// Daemons switched like [`ROUTING_DAEMONS`] where the file names them,
/// and added only when wanted: OSPFv3 of a dual-stack OSPF underlay.
pub const IPV6_DAEMONS: [&str; 1] = ["ospf6d"];

/// `/etc/frr/daemons` with the routing daemons `cfg` needs set to `yes`
/// and the others pi-lab manages set to `no`; every other line is kept.
/// A daemon that runs for nothing costs a Pi 3B several MiB.
pub fn daemons(existing: &str, cfg: &NodeConfig) -> String {
    let wanted = cfg.frr_daemons();
    let mut seen = Vec::new();
    let mut out = String::new();
    let managed = ROUTING_DAEMONS.iter().chain(&IPV6_DAEMONS);
    for line in existing.lines() {
        let daemon = managed.clone().find(|d| {
            line.trim_start().strip_prefix(**d).is_some_and(|rest| rest.starts_with('='))
        });
        match daemon {
            Some(d) => {
                seen.push(*d);
                let on = if wanted.contains(d) { "yes" } else { "no" };
                let _ = writeln!(out, "{d}={on}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for d in ROUTING_DAEMONS.iter().filter(|d| !seen.contains(d)) {
        let on = if wanted.contains(d) { "yes" } else { "no" };
        let _ = writeln!(out, "{d}={on}");
    }
    for d in IPV6_DAEMONS.iter().filter(|d| !seen.contains(d) && wanted.contains(d)) {
        let _ = writeln!(out, "{d}=yes");
    }
    out
}

/// FRR reads one command a line: fold anything that would break that.
fn one_line(text: &str) -> String {
    text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{leaf, spine};

    #[test]
    fn leaf_config_reads_like_a_hand_written_one() {
        let expected = "\
! leaf1 (leaf) in lab fabric: written by node-agent from config -.
! Lines typed into vtysh are kept and shown by pi-lab status; pi-lab lab save collects them.
frr version 8.4
frr defaults datacenter
hostname leaf1
log syslog informational
service integrated-vtysh-config
ip forwarding
!
interface eth1
 description to spine1:eth1
exit
!
interface eth2
 description to spine2:eth1
exit
!
interface eth3
 description to h1:eth1 (blue)
exit
!
interface eth4
 description to h1:eth2 (green)
exit
!
router bgp 65001
 bgp router-id 10.0.0.3
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 timers bgp 3 9
 neighbor SPINES peer-group
 neighbor SPINES timers connect 5
 neighbor 10.1.0.0 remote-as 65000
 neighbor 10.1.0.0 peer-group SPINES
 neighbor 10.1.0.0 description spine1
 neighbor 10.1.0.2 remote-as 65000
 neighbor 10.1.0.2 peer-group SPINES
 neighbor 10.1.0.2 description spine2
 !
 address-family ipv4 unicast
  network 10.0.0.3/32
  neighbor SPINES activate
  maximum-paths 4
 exit-address-family
 !
 address-family l2vpn evpn
  neighbor SPINES activate
  advertise-all-vni
 exit-address-family
exit
!
end
";
        assert_eq!(render(&leaf()), expected);
    }

    #[test]
    fn spine_carries_evpn_without_advertising_vnis() {
        let text = render(&spine());
        assert!(text.contains("router bgp 65000\n bgp router-id 10.0.0.1\n"), "{text}");
        assert!(text.contains(" neighbor LEAVES peer-group\n"));
        assert!(text.contains(" neighbor 10.1.0.5 remote-as 65002\n"));
        assert!(text.contains(
            " address-family l2vpn evpn\n  neighbor LEAVES activate\n exit-address-family\n"
        ));
        assert!(!text.contains("advertise-all-vni"));
    }

    #[test]
    fn static_only_leaf_and_no_evpn() {
        let mut cfg = leaf();
        cfg.vxlan.retain(|s| s.flooding != Flooding::Evpn);
        assert!(!render(&cfg).contains("advertise-all-vni"));
        if let Some(bgp) = cfg.bgp.as_mut() {
            bgp.evpn = false;
        }
        assert!(!render(&cfg).contains("l2vpn"));
    }

    #[test]
    fn the_lab_files_lines_come_last_as_written() {
        let mut cfg = leaf();
        cfg.frr =
            Some("\nrouter bgp 65001  \n neighbor 10.1.0.0 description by hand\nexit\n\n".into());
        let text = render(&cfg);
        assert!(
            text.ends_with(
                " exit-address-family\nexit\n!\n! From the lab file, [nodes.leaf1] frr:\n\nrouter bgp 65001\n \
                 neighbor 10.1.0.0 description by hand\nexit\n!\nend\n"
            ),
            "{text}"
        );
        let start = lab_lines_start(&text).unwrap();
        assert_eq!(text.lines().nth(start + 1), Some("router bgp 65001"));
        assert_eq!(lab_lines_start(&render(&leaf())), None);
        cfg.frr = Some("  \n".into());
        assert_eq!(render(&cfg), render(&leaf()));
    }

    #[test]
    fn host_without_bgp_has_no_router_section_and_descriptions_stay_on_one_line() {
        let mut cfg = leaf();
        cfg.bgp = None;
        cfg.interfaces[0].description = "to spine1\nrouter bgp 1".into();
        let text = render(&cfg);
        assert!(!text.contains("\nrouter bgp"), "{text}");
        assert!(text.contains(" description to spine1 router bgp 1\n"));
    }
}
