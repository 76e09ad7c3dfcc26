//! Validation of a [`NodeConfig`] before an agent applies it.
//!
//! The host compiler should never produce a config that fails here; the
//! agent checks anyway because a config may also arrive by hand (an edited
//! `node.toml`, a `PUT /v1/config`). Every problem is collected, not only the
//! first, and each names the field it is about and what would be right.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::node_config::{
    Flooding, IgpProtocol, InterfaceKind, NODE_CONFIG_SCHEMA, NodeConfig, Role, VXLAN_PORT,
};

/// Largest VXLAN network identifier (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// One thing wrong with a NodeConfig. `at` is the field path, e.g.
/// `interfaces[2].name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("schema: version {found} is not supported; this agent reads schema = {expected}")]
    Schema { found: u32, expected: u32 },
    #[error(
        "{at}: {value:?} is not a valid host name; use 1-63 letters, digits or '-', not starting or ending with '-'"
    )]
    Name { at: String, value: String },
    #[error(
        "{at}: {value:?} is not a valid interface name; use 1-15 characters without '/', ':' or white space"
    )]
    InterfaceName { at: String, value: String },
    #[error("{at}: interface {name:?} is defined twice; each kernel interface appears once")]
    DuplicateInterface { at: String, name: String },
    #[error("{at}: VLAN id {vlan_id} is out of range; use 1-4094")]
    VlanId { at: String, vlan_id: u16 },
    #[error("{at}: MTU {mtu} is out of range; use 68-65535")]
    Mtu { at: String, mtu: u32 },
    #[error("{at}: a {role} needs {what}")]
    Missing { at: String, role: Role, what: &'static str },
    #[error("{at}: {found} differs from the loopback {loopback}; {what} must be the loopback")]
    LoopbackMismatch { at: String, found: Ipv4Addr, loopback: Ipv4Addr, what: &'static str },
    #[error("{at}: ASN {asn} is not usable; use 1-4294967294")]
    Asn { at: String, asn: u32 },
    #[error("{at}: neighbour {address} runs over {interface:?}, which is not in `interfaces`")]
    UnknownNeighborInterface { at: String, address: Ipv4Addr, interface: String },
    #[error("{at}: neighbour {address} is not in the subnet of {interface:?} ({subnet})")]
    NeighborOutsideSubnet { at: String, address: Ipv4Addr, interface: String, subnet: String },
    #[error("{at}: neighbour {address} is listed twice")]
    DuplicateNeighbor { at: String, address: String },
    #[error("{at}: neighbour {address} is unnumbered, which needs a link, not {interface:?}")]
    UnnumberedLoopback { at: String, address: Ipv4Addr, interface: String },
    #[error(
        "{at}: keepalive {keepalive} s / hold {hold} s are invalid; hold must be 0 or at least 3 and larger than keepalive"
    )]
    Timers { at: String, keepalive: u16, hold: u16 },
    #[error("{at}: multipath must be at least 1")]
    Multipath { at: String },
    #[error("{at}: VNI {vni} is out of range; use 1-{VNI_MAX}")]
    VniRange { at: String, vni: u32 },
    #[error("{at}: VNI {vni} is used by two segments")]
    DuplicateVni { at: String, vni: u32 },
    #[error("{at}: UDP port {port} is not the VXLAN port; use {VXLAN_PORT}")]
    VxlanPort { at: String, port: u16 },
    #[error("{at}: access port {port:?} is not in `interfaces`")]
    UnknownAccessPort { at: String, port: String },
    #[error("{at}: access port {port:?} has an address; a bridge port carries no IP address")]
    AccessPortAddress { at: String, port: String },
    #[error("{at}: interface {port:?} is an access port of two segments")]
    SharedAccessPort { at: String, port: String },
    #[error(
        "{at}: segment {vni} uses EVPN flooding but `bgp.evpn` is off; turn it on or use static flooding"
    )]
    EvpnOff { at: String, vni: u32 },
    #[error("{at}: remote VTEP {vtep} is {why}")]
    RemoteVtep { at: String, vtep: Ipv4Addr, why: &'static str },
    #[error("{at}: gateway {gateway} is unspecified; give the next hop's address")]
    Gateway { at: String, gateway: Ipv4Addr },
    #[error("{at}: {value:?} is not a lower-case hex SHA-256 (64 characters)")]
    TokenHash { at: String, value: String },
    #[error("{at}: polling interval must be at least 1 s when collectors are set")]
    PollingInterval { at: String },
    #[error("{at}: {value:?} is not {what}")]
    Area { at: String, value: String, what: &'static str },
    #[error(
        "{at}: hello {hello} s / dead {dead} s are invalid; hello must be at least 1 and dead longer than hello{extra}"
    )]
    IgpTimers { at: String, hello: u16, dead: u16, extra: &'static str },
    #[error("{at}: the IGP runs over {interface:?}, which is not an addressed interface")]
    UnknownIgpInterface { at: String, interface: String },
    #[error("{at}: hosts route nothing; remove it")]
    HostRouting { at: String },
}

/// Every problem found in one NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "NodeConfig has {}:", crate::diagnostics::count(n, "problem"))?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl NodeConfig {
    /// Check everything an agent relies on. Returns all problems at once.
    pub fn check(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        check_top(self, &mut errors);
        check_interfaces(self, &mut errors);
        check_bgp(self, &mut errors);
        check_igp(self, &mut errors);
        check_segments(self, &mut errors);
        check_rest(self, &mut errors);
        if errors.is_empty() { Ok(()) } else { Err(ConfigErrors(errors)) }
    }
}

fn check_top(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    if cfg.schema != NODE_CONFIG_SCHEMA {
        errors.push(ConfigError::Schema { found: cfg.schema, expected: NODE_CONFIG_SCHEMA });
    }
    for (at, value) in [("hostname", &cfg.hostname), ("lab", &cfg.lab)] {
        if !is_host_name(value) {
            errors.push(ConfigError::Name { at: at.into(), value: value.clone() });
        }
    }
    if cfg.role != Role::Host {
        if cfg.loopback.is_none() {
            errors.push(ConfigError::Missing {
                at: "loopback".into(),
                role: cfg.role,
                what: "a loopback address",
            });
        }
        if !cfg.runs_frr() {
            errors.push(ConfigError::Missing {
                at: "bgp".into(),
                role: cfg.role,
                what: "a [bgp] or [igp] section",
            });
        }
    } else {
        for (at, present) in [("bgp", cfg.bgp.is_some()), ("igp", cfg.igp.is_some())] {
            if present {
                errors.push(ConfigError::HostRouting { at: at.into() });
            }
        }
    }
}

fn check_interfaces(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    let mut seen = BTreeSet::new();
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        let at = format!("interfaces[{i}]");
        if !is_interface_name(&iface.name) {
            errors.push(ConfigError::InterfaceName {
                at: format!("{at}.name"),
                value: iface.name.clone(),
            });
        }
        if !seen.insert(iface.name.as_str()) {
            errors.push(ConfigError::DuplicateInterface {
                at: format!("{at}.name"),
                name: iface.name.clone(),
            });
        }
        if let InterfaceKind::Vlan { parent, vlan_id } = &iface.kind {
            if !is_interface_name(parent) {
                errors.push(ConfigError::InterfaceName {
                    at: format!("{at}.parent"),
                    value: parent.clone(),
                });
            }
            if !(1..=4094).contains(vlan_id) {
                errors.push(ConfigError::VlanId { at: format!("{at}.vlan_id"), vlan_id: *vlan_id });
            }
        }
        if let Some(mtu) = iface.mtu
            && !(68..=65535).contains(&mtu)
        {
            errors.push(ConfigError::Mtu { at: format!("{at}.mtu"), mtu });
        }
    }
}

fn check_bgp(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    let Some(bgp) = &cfg.bgp else { return };
    if bgp.asn == 0 || bgp.asn == u32::MAX {
        errors.push(ConfigError::Asn { at: "bgp.asn".into(), asn: bgp.asn });
    }
    router_id_is_loopback(cfg, "bgp.router_id", bgp.router_id, errors);
    let t = bgp.timers;
    if t.hold != 0 && (t.hold < 3 || t.hold <= t.keepalive) {
        errors.push(ConfigError::Timers {
            at: "bgp.timers".into(),
            keepalive: t.keepalive,
            hold: t.hold,
        });
    }
    if bgp.multipath == 0 {
        errors.push(ConfigError::Multipath { at: "bgp.multipath".into() });
    }
    let mut seen = BTreeSet::new();
    for (i, n) in bgp.neighbors.iter().enumerate() {
        let at = format!("bgp.neighbors[{i}]");
        // FRR's name for the session: two sessions on two links to one
        // peer are two unnumbered neighbours with one router id.
        if !seen.insert(n.frr_name()) {
            errors.push(ConfigError::DuplicateNeighbor { at: at.clone(), address: n.frr_name() });
        }
        if n.remote_asn == 0 || n.remote_asn == u32::MAX {
            errors.push(ConfigError::Asn { at: format!("{at}.remote_asn"), asn: n.remote_asn });
        }
        if n.between_loopbacks() {
            if n.unnumbered {
                errors.push(ConfigError::UnnumberedLoopback {
                    at: format!("{at}.unnumbered"),
                    address: n.address,
                    interface: n.interface.clone(),
                });
            }
            if cfg.loopback.is_none() {
                errors.push(ConfigError::Missing {
                    at: format!("{at}.interface"),
                    role: cfg.role,
                    what: "a loopback to source a session between loopbacks from",
                });
            }
            continue;
        }
        match cfg.interfaces.iter().find(|iface| iface.name == n.interface) {
            None => errors.push(ConfigError::UnknownNeighborInterface {
                at: format!("{at}.interface"),
                address: n.address,
                interface: n.interface.clone(),
            }),
            Some(iface) => {
                if let Some(net) = iface.address.filter(|_| !n.unnumbered)
                    && !net.trunc().contains(&n.address)
                {
                    errors.push(ConfigError::NeighborOutsideSubnet {
                        at: format!("{at}.address"),
                        address: n.address,
                        interface: n.interface.clone(),
                        subnet: net.trunc().to_string(),
                    });
                }
            }
        }
    }
}

/// BGP and the IGP both identify the router by its loopback.
fn router_id_is_loopback(cfg: &NodeConfig, at: &str, id: Ipv4Addr, errors: &mut Vec<ConfigError>) {
    if let Some(lo) = cfg.loopback
        && id != lo
    {
        errors.push(ConfigError::LoopbackMismatch {
            at: at.into(),
            found: id,
            loopback: lo,
            what: "the router id",
        });
    }
}

fn check_igp(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    let Some(igp) = &cfg.igp else { return };
    router_id_is_loopback(cfg, "igp.router_id", igp.router_id, errors);
    let area_ok = match igp.protocol {
        IgpProtocol::Ospf => igp.area.parse::<Ipv4Addr>().is_ok(),
        IgpProtocol::Isis => crate::parse::isis_area(&igp.area).is_ok(),
    };
    if !area_ok {
        let what = match igp.protocol {
            IgpProtocol::Ospf => "an OSPF area (a dotted quad such as 0.0.0.0)",
            IgpProtocol::Isis => "an IS-IS area address (such as 49.0001)",
        };
        errors.push(ConfigError::Area { at: "igp.area".into(), value: igp.area.clone(), what });
    }
    let t = igp.timers;
    let multiplier_ok =
        igp.protocol == IgpProtocol::Ospf || (2..=100).contains(&t.hello_multiplier());
    if t.hello == 0 || t.dead <= t.hello || !multiplier_ok {
        errors.push(ConfigError::IgpTimers {
            at: "igp.timers".into(),
            hello: t.hello,
            dead: t.dead,
            extra: if igp.protocol == IgpProtocol::Isis {
                ", at most 100 hellos (IS-IS)"
            } else {
                ""
            },
        });
    }
    for (i, n) in igp.neighbors.iter().enumerate() {
        let addressed =
            cfg.interfaces.iter().any(|iface| iface.name == n.interface && iface.address.is_some());
        if !addressed {
            errors.push(ConfigError::UnknownIgpInterface {
                at: format!("igp.neighbors[{i}].interface"),
                interface: n.interface.clone(),
            });
        }
    }
}

fn check_segments(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    let evpn_on = cfg.bgp.as_ref().is_some_and(|b| b.evpn);
    let mut vnis = BTreeSet::new();
    let mut names: BTreeSet<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
    let mut ports = BTreeSet::new();
    for (i, seg) in cfg.vxlan.iter().enumerate() {
        let at = format!("vxlan[{i}]");
        if !(1..=VNI_MAX).contains(&seg.vni) {
            errors.push(ConfigError::VniRange { at: format!("{at}.vni"), vni: seg.vni });
        }
        if !vnis.insert(seg.vni) {
            errors.push(ConfigError::DuplicateVni { at: format!("{at}.vni"), vni: seg.vni });
        }
        for (field, name) in [("device", &seg.device), ("bridge", &seg.bridge)] {
            if !is_interface_name(name) {
                errors.push(ConfigError::InterfaceName {
                    at: format!("{at}.{field}"),
                    value: name.clone(),
                });
            } else if !names.insert(name) {
                errors.push(ConfigError::DuplicateInterface {
                    at: format!("{at}.{field}"),
                    name: name.clone(),
                });
            }
        }
        match cfg.loopback {
            Some(lo) if lo != seg.local_vtep => errors.push(ConfigError::LoopbackMismatch {
                at: format!("{at}.local_vtep"),
                found: seg.local_vtep,
                loopback: lo,
                what: "the local VTEP",
            }),
            None => errors.push(ConfigError::Missing {
                at: format!("{at}.local_vtep"),
                role: cfg.role,
                what: "a loopback to use as its VTEP address",
            }),
            _ => {}
        }
        if seg.port != VXLAN_PORT {
            errors.push(ConfigError::VxlanPort { at: format!("{at}.port"), port: seg.port });
        }
        for port in &seg.access_ports {
            let at = format!("{at}.access_ports");
            match cfg.interfaces.iter().find(|iface| &iface.name == port) {
                None => errors.push(ConfigError::UnknownAccessPort { at, port: port.clone() }),
                Some(iface) if iface.address.is_some() => {
                    errors.push(ConfigError::AccessPortAddress { at, port: port.clone() })
                }
                Some(_) if !ports.insert(port.as_str()) => {
                    errors.push(ConfigError::SharedAccessPort { at, port: port.clone() })
                }
                Some(_) => {}
            }
        }
        match &seg.flooding {
            Flooding::Evpn if !evpn_on => {
                errors.push(ConfigError::EvpnOff { at: format!("{at}.flooding"), vni: seg.vni })
            }
            Flooding::Evpn => {}
            Flooding::Static { remote_vteps } => {
                let mut seen = BTreeSet::new();
                for vtep in remote_vteps {
                    let at = format!("{at}.flooding.remote_vteps");
                    let why = if *vtep == seg.local_vtep {
                        Some("this node's own VTEP")
                    } else if !seen.insert(*vtep) {
                        Some("listed twice")
                    } else if vtep.is_unspecified() || vtep.is_multicast() || vtep.is_broadcast() {
                        Some("not a unicast address")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        errors.push(ConfigError::RemoteVtep { at, vtep: *vtep, why });
                    }
                }
            }
        }
    }
}

fn check_rest(cfg: &NodeConfig, errors: &mut Vec<ConfigError>) {
    for (i, r) in cfg.routes.iter().enumerate() {
        if r.gateway.is_unspecified() {
            errors.push(ConfigError::Gateway {
                at: format!("routes[{i}].gateway"),
                gateway: r.gateway,
            });
        }
    }
    let hash = &cfg.auth.token_sha256;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        errors.push(ConfigError::TokenHash { at: "auth.token_sha256".into(), value: hash.clone() });
    }
    if !cfg.sflow.collectors.is_empty() && cfg.sflow.polling_interval == 0 {
        errors.push(ConfigError::PollingInterval { at: "sflow.polling_interval".into() });
    }
}

/// RFC 1123 label: what FRR and systemd accept as a host name.
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What the kernel accepts as an interface name (see `dev_valid_name`),
/// minus ':' which the kernel reserves for aliases.
pub fn is_interface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IFNAME_MAX
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::leaf;
    use crate::node_config::{Interface, Segment};

    fn problems(cfg: &NodeConfig) -> Vec<ConfigError> {
        cfg.check().err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn a_good_leaf_passes() {
        assert_eq!(leaf().check(), Ok(()));
    }

    #[test]
    fn wrong_schema_is_refused() {
        let mut cfg = leaf();
        cfg.schema = 2;
        assert_eq!(problems(&cfg), vec![ConfigError::Schema { found: 2, expected: 1 }]);
    }

    #[test]
    fn bad_names_and_duplicate_interfaces() {
        let mut cfg = leaf();
        cfg.hostname = "leaf_1".into();
        cfg.interfaces.push(cfg.interfaces[0].clone());
        cfg.interfaces.push(Interface {
            name: "much-too-long-name0".into(),
            kind: InterfaceKind::Port,
            mtu: None,
            address: None,
            address6: None,
            description: String::new(),
            tc: None,
        });
        let p = problems(&cfg);
        assert!(matches!(&p[0], ConfigError::Name { at, .. } if at == "hostname"), "{p:?}");
        assert!(
            p.iter().any(
                |e| matches!(e, ConfigError::DuplicateInterface { name, .. } if name == "eth1")
            )
        );
        assert!(p.iter().any(
            |e| matches!(e, ConfigError::InterfaceName { at, .. } if at == "interfaces[5].name")
        ));
    }

    #[test]
    fn vni_range_and_vtep_mismatch() {
        let mut cfg = leaf();
        cfg.vxlan[0].vni = VNI_MAX + 1;
        cfg.vxlan[0].local_vtep = "10.0.0.99".parse().unwrap();
        let p = problems(&cfg);
        assert!(p.contains(&ConfigError::VniRange { at: "vxlan[0].vni".into(), vni: VNI_MAX + 1 }));
        assert!(p.iter().any(
            |e| matches!(e, ConfigError::LoopbackMismatch { at, .. } if at == "vxlan[0].local_vtep")
        ));
    }

    #[test]
    fn neighbour_on_unknown_interface() {
        let mut cfg = leaf();
        if let Some(bgp) = cfg.bgp.as_mut() {
            bgp.neighbors[0].interface = "eth9".into();
        }
        let p = problems(&cfg);
        assert!(
            matches!(&p[..], [ConfigError::UnknownNeighborInterface { interface, .. }] if interface == "eth9"),
            "{p:?}"
        );
        let text = cfg.check().unwrap_err().to_string();
        assert!(text.contains("bgp.neighbors[0].interface"), "{text}");
    }

    #[test]
    fn evpn_segment_needs_evpn_and_vteps_must_be_remote() {
        let mut cfg = leaf();
        if let Some(bgp) = cfg.bgp.as_mut() {
            bgp.evpn = false;
        }
        let local = cfg.vxlan[0].local_vtep;
        cfg.vxlan[0].flooding = Flooding::Static { remote_vteps: vec![local] };
        let p = problems(&cfg);
        assert!(p.iter().any(|e| matches!(e, ConfigError::EvpnOff { vni: 10020, .. })), "{p:?}");
        assert!(
            p.iter()
                .any(|e| matches!(e, ConfigError::RemoteVtep { why: "this node's own VTEP", .. }))
        );
    }

    #[test]
    fn segments_must_not_reuse_names_or_ports() {
        let mut cfg = leaf();
        let mut dup: Segment = cfg.vxlan[0].clone();
        dup.vni = 10030;
        cfg.vxlan.push(dup);
        let p = problems(&cfg);
        assert!(p.iter().any(|e| matches!(e, ConfigError::DuplicateInterface { at, .. } if at == "vxlan[2].device")), "{p:?}");
        assert!(p.iter().any(|e| matches!(e, ConfigError::SharedAccessPort { .. })));
    }

    #[test]
    fn toml_round_trip_keeps_interface_kinds() {
        let mut cfg = leaf();
        cfg.interfaces[0].kind = InterfaceKind::Vlan { parent: "eth0".into(), vlan_id: 101 };
        let text = cfg.to_toml().unwrap();
        assert_eq!(NodeConfig::from_toml(&text).unwrap(), cfg, "{text}");
    }

    /// What the lab compiler produces for the example labs is what the
    /// agent accepts, and renders to FRR config with every neighbour.
    #[test]
    fn compiled_example_labs_pass_the_agent_check() {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for lab in ["two-router.toml", "fabric.toml", "fabric-ospf.toml", "fabric-isis.toml"] {
            let (_, _, configs) = crate::compile_file(&examples.join(lab), "secret").unwrap();
            for (name, cfg) in &configs {
                assert_eq!(cfg.check(), Ok(()), "{lab}: {name}");
                let text = crate::frr::render(cfg);
                for n in cfg.bgp.iter().flat_map(|b| &b.neighbors) {
                    assert!(
                        text.contains(&format!(
                            " neighbor {} remote-as {}",
                            n.address, n.remote_asn
                        ))
                    );
                }
            }
        }
    }

    #[test]
    fn interface_names() {
        assert!(is_interface_name("eth0.101"));
        assert!(is_interface_name("enx001122334455"));
        assert!(!is_interface_name("a/b"));
        assert!(!is_interface_name(""));
        assert!(!is_interface_name("0123456789abcdef"));
    }
}
