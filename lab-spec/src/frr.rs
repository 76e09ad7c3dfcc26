//! `frr.conf` for one node, rendered from its [`NodeConfig`].
//!
//! The output is meant to read like a config a network engineer writes by
//! hand for an eBGP leaf-spine fabric: one peer group per neighbour role,
//! the loopback as router id and as the only advertised prefix, multipath
//! across equal-length paths from different ASNs, and, when the lab uses
//! EVPN, `address-family l2vpn evpn`. Only nodes that own an EVPN segment
//! say `advertise-all-vni`; spines just carry the routes.
//!
//! The same text is valid for FRR 8.4 (Debian 12, the virtual fleet) and
//! FRR 10.3 (Debian 13, the boards).

use std::fmt::Write;

use crate::node_config::{Bgp, Flooding, NodeConfig, Role};

/// Render the complete `frr.conf`. Pure: the same config gives the same text.
pub fn render(cfg: &NodeConfig) -> String {
    let mut out = String::new();
    header(&mut out, cfg);
    interfaces(&mut out, cfg);
    if let Some(bgp) = &cfg.bgp {
        router_bgp(&mut out, cfg, bgp);
    }
    out.push_str("end\n");
    out
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
         ! Edits are overwritten; change the lab file instead.\n\
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
    }
    out.push_str("!\n");
}

fn interfaces(out: &mut String, cfg: &NodeConfig) {
    for iface in cfg.interfaces.iter().filter(|i| !i.description.trim().is_empty()) {
        let _ = write!(
            out,
            "interface {}\n description {}\nexit\n!\n",
            iface.name,
            one_line(&iface.description)
        );
    }
}

fn router_bgp(out: &mut String, cfg: &NodeConfig, bgp: &Bgp) {
    let group = peer_group(cfg.role);
    let t = bgp.timers;
    let _ = writeln!(out, "router bgp {}", bgp.asn);
    let _ = writeln!(out, " bgp router-id {}", bgp.router_id);
    out.push_str(
        " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n",
    );
    let _ = writeln!(out, " timers bgp {} {}", t.keepalive, t.hold);
    let has_peers = !bgp.neighbors.is_empty();
    if has_peers {
        let _ = writeln!(out, " neighbor {group} peer-group");
        let _ = writeln!(out, " neighbor {group} timers connect {}", t.connect_retry);
    }
    for n in &bgp.neighbors {
        let _ = writeln!(out, " neighbor {} remote-as {}", n.address, n.remote_asn);
        let _ = writeln!(out, " neighbor {} peer-group {group}", n.address);
        if !n.description.trim().is_empty() {
            let _ =
                writeln!(out, " neighbor {} description {}", n.address, one_line(&n.description));
        }
    }
    out.push_str(" !\n address-family ipv4 unicast\n");
    for net in &bgp.networks {
        let _ = writeln!(out, "  network {}", net.trunc());
    }
    if has_peers {
        let _ = writeln!(out, "  neighbor {group} activate");
    }
    let _ = writeln!(out, "  maximum-paths {}", bgp.multipath);
    out.push_str(" exit-address-family\n");
    if bgp.evpn {
        out.push_str(" !\n address-family l2vpn evpn\n");
        if has_peers {
            let _ = writeln!(out, "  neighbor {group} activate");
        }
        if cfg.vxlan.iter().any(|s| s.flooding == Flooding::Evpn) {
            out.push_str("  advertise-all-vni\n");
        }
        out.push_str(" exit-address-family\n");
    }
    out.push_str("exit\n!\n");
}

/// FRR reads one command a line: fold anything that would break that.
fn one_line(text: &str) -> String {
    text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_configs::{leaf, spine};

    #[test]
    fn leaf_config_reads_like_a_hand_written_one() {
        let expected = "\
! leaf1 (leaf) in lab fabric: written by node-agent from config -.
! Edits are overwritten; change the lab file instead.
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
    fn host_without_bgp_has_no_router_section_and_descriptions_stay_on_one_line() {
        let mut cfg = leaf();
        cfg.bgp = None;
        cfg.interfaces[0].description = "to spine1\nrouter bgp 1".into();
        let text = render(&cfg);
        assert!(!text.contains("\nrouter bgp"), "{text}");
        assert!(text.contains(" description to spine1 router bgp 1\n"));
    }
}
