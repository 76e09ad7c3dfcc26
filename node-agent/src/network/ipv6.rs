//! IPv6 on the lab network: the addresses of a dual-stack config
//! (loopback, ports, irb bridges) and IPv6 itself on the ports where BGP
//! runs unnumbered, which needs a link-local address there.
//!
//! ```text
//! NodeConfig --desired6--> Desired6 ─┐
//!                                    ├─ plan6() ──> Vec<Change> (after the IPv4 plan's)
//! kernel ─────observe6───> Observed6 ┘   (pure)
//! ```
//!
//! A config without IPv6 never reads or touches the kernel's IPv6 (an
//! IPv4-only lab reconciles exactly as before), except to take away the
//! addresses the config before it put there. Addresses are added with
//! `nodad` (a lab's addresses are planned, and duplicate address detection
//! would hold each back for a second); link-local addresses are the
//! kernel's and never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv6Net;
use lab_spec::NodeConfig;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
};

use super::{Change, Observed, Plan};
use crate::netlink::{Netlink, NetlinkError};

/// Where the kernel keeps per-interface IPv6 settings (of the namespace
/// of whoever reads it).
pub const CONF_DIR: &str = "/proc/sys/net/ipv6/conf";

/// The IPv6 a config wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired6 {
    /// Each interface here carries exactly these global addresses (and
    /// whatever link-local ones the kernel gives it; `::1` on `lo`).
    pub addresses: BTreeMap<String, BTreeSet<Ipv6Net>>,
    /// Interfaces IPv6 must be on for.
    pub enabled: BTreeSet<String>,
    /// Ports with a BGP session on the interface: they need a link-local
    /// address.
    pub link_local: BTreeSet<String>,
    /// Addresses the previous config put on interfaces this one gives no
    /// IPv6 address (a lab that dropped IPv6, or a link): taken away where
    /// they still are. Addresses typed in by hand there stay.
    pub dropped: BTreeMap<String, BTreeSet<Ipv6Net>>,
}

impl Desired6 {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.enabled.is_empty() && self.dropped.is_empty()
    }

    /// Wants IPv6 itself (not only to take some away).
    fn wants_ipv6(&self) -> bool {
        !self.addresses.is_empty() || !self.enabled.is_empty()
    }
}

/// [`desired6`] of `cfg`, plus what `previous` (the config in force
/// until now) had on interfaces `cfg` gives none.
pub fn desired6_after(cfg: &NodeConfig, previous: Option<&NodeConfig>) -> Desired6 {
    let mut d = desired6(cfg);
    let Some(previous) = previous else { return d };
    for (iface, had) in desired6(previous).addresses {
        if !d.addresses.contains_key(&iface) {
            d.dropped.insert(iface, had);
        }
    }
    d
}

/// The kernel's IPv6, as far as the agent cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed6 {
    /// IPv6 addresses other than link-local ones, per interface.
    pub addresses: BTreeMap<String, BTreeSet<Ipv6Net>>,
    /// Interfaces that have a link-local address.
    pub link_local: BTreeSet<String>,
    /// Interfaces IPv6 is off for (`disable_ipv6 = 1`).
    pub disabled: BTreeSet<String>,
    /// False when the kernel has no IPv6 at all (`ipv6.disable=1`).
    pub kernel_ipv6: bool,
}

pub fn desired6(cfg: &NodeConfig) -> Desired6 {
    let mut d = Desired6::default();
    let mut want = |iface: &str, net: Option<Ipv6Net>| {
        if let Some(net) = net {
            d.addresses.entry(iface.to_string()).or_default().insert(net);
            d.enabled.insert(iface.to_string());
        }
    };
    want("lo", cfg.loopback6.map(Ipv6Net::from));
    for iface in &cfg.interfaces {
        want(&iface.name, iface.address6);
    }
    for seg in &cfg.vxlan {
        want(&seg.bridge, seg.address6);
    }
    for port in cfg.unnumbered_ports() {
        d.enabled.insert(port.to_string());
        d.link_local.insert(port.to_string());
    }
    d
}

/// Read the IPv6 addresses and settings of the links in `observed`.
pub fn observe6(nl: &mut Netlink, observed: &Observed) -> Result<Observed6, NetlinkError> {
    let names: BTreeMap<u32, &str> =
        observed.links.values().map(|l| (l.index, l.name.as_str())).collect();
    let mut o = Observed6 { kernel_ipv6: Path::new(CONF_DIR).exists(), ..Observed6::default() };
    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet6;
    for m in nl.dump(RouteNetlinkMessage::GetAddress(req))? {
        let RouteNetlinkMessage::NewAddress(a) = m else { continue };
        let (Some(name), Some(net)) = (names.get(&a.header.index), address6(&a)) else {
            continue;
        };
        if is_link_local(&net.addr()) {
            o.link_local.insert(name.to_string());
        } else {
            o.addresses.entry(name.to_string()).or_default().insert(net);
        }
    }
    for name in names.values() {
        let off = std::fs::read_to_string(disable_path(name)).is_ok_and(|v| v.trim() == "1");
        if off {
            o.disabled.insert(name.to_string());
        }
    }
    Ok(o)
}

/// `/proc/sys/net/ipv6/conf/NAME/disable_ipv6`.
pub fn disable_path(interface: &str) -> PathBuf {
    Path::new(CONF_DIR).join(interface).join("disable_ipv6")
}

fn address6(a: &AddressMessage) -> Option<Ipv6Net> {
    let ip = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Address(IpAddr::V6(ip)) | AddressAttribute::Local(IpAddr::V6(ip)) => {
            Some(*ip)
        }
        _ => None,
    })?;
    Ipv6Net::new(ip, a.header.prefix_len).ok()
}

/// fe80::/10.
fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The changes that bring the kernel's IPv6 to `d`; `observed` says which
/// links exist now and which are up.
pub fn plan6(d: &Desired6, o: &Observed6, observed: &Observed) -> Plan {
    let mut p = Plan::default();
    for (iface, had) in &d.dropped {
        let still = o.addresses.get(iface).into_iter().flatten().filter(|a| had.contains(a));
        for address in still {
            p.changes.push(Change::RemoveAddress6 { interface: iface.clone(), address: *address });
        }
    }
    if !d.wants_ipv6() {
        return p;
    }
    if !o.kernel_ipv6 {
        p.problems.push(format!(
            "the kernel has no IPv6 ({CONF_DIR} is missing; is ipv6.disable=1 on the kernel command line?), which this config needs"
        ));
        return p;
    }
    for iface in d.enabled.iter().filter(|i| o.disabled.contains(*i)) {
        p.changes.push(Change::EnableIpv6 { interface: iface.clone() });
    }
    let none = BTreeSet::new();
    for (iface, want) in &d.addresses {
        let have = o.addresses.get(iface).unwrap_or(&none);
        for address in want.difference(have) {
            p.changes.push(Change::AddAddress6 { interface: iface.clone(), address: *address });
        }
        for address in have.difference(want).filter(|a| !a.addr().is_loopback()) {
            p.changes.push(Change::RemoveAddress6 { interface: iface.clone(), address: *address });
        }
    }
    // A port set down loses its link-local address; one that is up and
    // has IPv6 on gets it from the kernel at once (tentative at first).
    for port in &d.link_local {
        let up = observed.links.get(port).is_some_and(|l| l.up);
        if up && !o.disabled.contains(port) && !o.link_local.contains(port) {
            p.problems.push(format!(
                "{port}: no IPv6 link-local address, which its BGP session on the interface needs (is net.ipv6.conf.{}.addr_gen_mode 1?)",
                sysctl_name(port)
            ));
        }
    }
    p
}

/// An interface's name in a sysctl key: `eth0.101` is `eth0/101`.
pub fn sysctl_name(interface: &str) -> String {
    interface.replace('.', "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::LinkState;

    fn observed(up: &[&str]) -> Observed {
        let mut o = Observed::default();
        for (i, name) in up.iter().enumerate() {
            let link = LinkState {
                index: i as u32 + 1,
                name: name.to_string(),
                up: true,
                ..LinkState::default()
            };
            o.links.insert(name.to_string(), link);
        }
        o
    }

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn desired() -> Desired6 {
        Desired6 {
            addresses: BTreeMap::from([
                ("lo".into(), BTreeSet::from([net("2001:db8::65/128")])),
                ("eth3".into(), BTreeSet::from([net("2001:db8:2:4d::61/64")])),
            ]),
            enabled: ["lo", "eth1", "eth3"].into_iter().map(String::from).collect(),
            link_local: BTreeSet::from(["eth1".to_string()]),
            dropped: BTreeMap::new(),
        }
    }

    #[test]
    fn an_ipv4_only_config_wants_no_ipv6() {
        let mut cfg = lab_spec::fixtures::leaf();
        assert!(desired6(&cfg).is_empty());
        assert_eq!(
            plan6(&desired6(&cfg), &Observed6::default(), &Observed::default()),
            Plan::default()
        );
        cfg.loopback6 = Some("2001:db8::1".parse().unwrap());
        assert_eq!(desired6(&cfg).addresses["lo"], BTreeSet::from([net("2001:db8::1/128")]));
    }

    #[test]
    fn ipv6_goes_on_where_it_is_off_and_addresses_follow_the_config() {
        let o = Observed6 {
            addresses: BTreeMap::from([
                ("lo".into(), BTreeSet::from([net("::1/128")])),
                ("eth3".into(), BTreeSet::from([net("2001:db8:9::1/64")])),
            ]),
            link_local: BTreeSet::from(["eth3".to_string()]),
            disabled: BTreeSet::from(["eth1".to_string()]),
            kernel_ipv6: true,
        };
        let p = plan6(&desired(), &o, &observed(&["lo", "eth1", "eth3"]));
        let text: Vec<String> = p.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "sysctl -w net.ipv6.conf.eth1.disable_ipv6=0",
                "ip addr add 2001:db8:2:4d::61/64 dev eth3 nodad",
                "ip addr del 2001:db8:9::1/64 dev eth3",
                "ip addr add 2001:db8::65/128 dev lo nodad",
            ]
        );
        // eth1 is off for now: its missing link-local address is no news.
        assert!(p.problems.is_empty(), "{:?}", p.problems);
    }

    #[test]
    fn converged_needs_nothing_and_a_missing_link_local_is_a_problem() {
        let mut o = Observed6 {
            addresses: BTreeMap::from([
                ("lo".into(), BTreeSet::from([net("::1/128"), net("2001:db8::65/128")])),
                ("eth3".into(), BTreeSet::from([net("2001:db8:2:4d::61/64")])),
            ]),
            link_local: BTreeSet::from(["eth1".to_string(), "eth3".to_string()]),
            disabled: BTreeSet::new(),
            kernel_ipv6: true,
        };
        let links = observed(&["lo", "eth1", "eth3"]);
        assert_eq!(plan6(&desired(), &o, &links), Plan::default());
        o.link_local.remove("eth1");
        let p = plan6(&desired(), &o, &links);
        assert!(p.changes.is_empty());
        assert!(p.problems[0].starts_with("eth1: no IPv6 link-local address"), "{:?}", p.problems);
        o.kernel_ipv6 = false;
        assert!(plan6(&desired(), &o, &links).problems[0].contains("the kernel has no IPv6"));
    }

    #[test]
    fn a_lab_that_drops_ipv6_takes_its_addresses_away_and_leaves_hand_made_ones() {
        let mut before = lab_spec::fixtures::leaf();
        before.loopback6 = Some("2001:db8::65".parse().unwrap());
        let after = lab_spec::fixtures::leaf();
        let d = desired6_after(&after, Some(&before));
        assert!(!d.is_empty() && !d.wants_ipv6());
        let o = Observed6 {
            addresses: BTreeMap::from([(
                "lo".into(),
                BTreeSet::from([net("::1/128"), net("2001:db8::65/128"), net("2001:db8:7::1/128")]),
            )]),
            kernel_ipv6: true,
            ..Observed6::default()
        };
        let text: Vec<String> =
            plan6(&d, &o, &observed(&["lo"])).changes.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["ip addr del 2001:db8::65/128 dev lo"]);
        // Gone already: nothing to do; and with no earlier config, nothing read.
        assert_eq!(plan6(&d, &Observed6::default(), &observed(&["lo"])), Plan::default());
        assert!(desired6_after(&after, None).is_empty());
        assert!(desired6_after(&after, Some(&after)).is_empty());
    }

    #[test]
    fn vlan_names_in_sysctl_keys_use_a_slash() {
        assert_eq!(sysctl_name("eth0.101"), "eth0/101");
        let change = Change::EnableIpv6 { interface: "eth0.101".into() };
        assert_eq!(change.to_string(), "sysctl -w net.ipv6.conf.eth0/101.disable_ipv6=0");
        assert_eq!(
            disable_path("eth0.101"),
            Path::new("/proc/sys/net/ipv6/conf/eth0.101/disable_ipv6")
        );
    }
}
