//! What a single value may be (names, interface names, addresses and
//! prefixes, roles, areas, serials, MACs, collectors): each check says what
//! is wrong and what would be right.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::diagnostics::{did_you_mean, list};
use crate::lab::{FloodingMode, SegmentMode, UnderlayProtocol, defaults};
use crate::node_config::Role;

const PROTOCOLS: &[&str] = &["ebgp", "ospf", "isis"];
const SEGMENT_MODES: &[&str] = &["bridge", "irb"];
const ROLES: &[&str] = &["router", "spine", "leaf", "host"];

type Check<T> = Result<T, (String, String)>;

/// Names of labs, nodes and segments: usable as hostnames and in file and
/// namespace names.
pub(crate) fn name_ok(s: &str, what: &str) -> Check<String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-');
    if valid {
        Ok(s.to_string())
    } else {
        Err((
            format!("{what} \"{s}\" is not a valid name"),
            "use letters, digits and '-', start with a letter, at most 63 characters (it becomes a hostname)".to_string(),
        ))
    }
}

/// A Linux interface name, optionally `parent.vlan`.
pub fn interface_ok(name: &str) -> Check<()> {
    let help = "Linux interface names are 1-15 characters without '/', ':' or spaces; write eth0.101 for VLAN 101 on eth0".to_string();
    if name.is_empty()
        || name.len() > 15
        || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        || name == "."
        || name == ".."
    {
        return Err((format!("\"{name}\" is not a valid interface name"), help));
    }
    let mut port = name;
    if let Some((parent, vid)) = name.rsplit_once('.')
        && vid.chars().all(|c| c.is_ascii_digit())
    {
        match vid.parse::<u16>() {
            Ok(id @ 1..=4094) if !parent.is_empty() => {
                if vid.starts_with('0') {
                    return Err((
                        format!("VLAN id {vid} of \"{name}\" has a leading zero"),
                        format!(
                            "write {parent}.{id}: {name} and {parent}.{id} would be one VLAN under two names"
                        ),
                    ));
                }
                port = parent;
            }
            _ => {
                return Err((
                    format!("\"{name}\" is not a valid VLAN interface"),
                    "write PARENT.VLAN with a VLAN id from 1 to 4094, e.g. eth0.101".to_string(),
                ));
            }
        }
    }
    if let Some(owner) = reserved_port(port) {
        return Err((
            format!("\"{port}\" is {owner}, not a lab port"),
            "name the lab port after its NIC, e.g. eth1, or eth0.101 for VLAN 101 on eth0"
                .to_string(),
        ));
    }
    Ok(())
}

/// Devices a node has besides its lab ports: the loopback, the fleet's
/// management port, and the agent's VXLAN device and bridge of each VNI
/// (`vxlanN`, `brN`, see `compile`).
fn reserved_port(name: &str) -> Option<String> {
    let vni = |prefix: &str| {
        name.strip_prefix(prefix).filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    if name == "lo" {
        Some("the loopback".to_string())
    } else if name == defaults::FLEET_MANAGEMENT_PORT {
        Some("the management port of the virtual fleet".to_string())
    } else if let Some(n) = vni("vxlan") {
        Some(format!("the agent's VXLAN device of VNI {n}"))
    } else {
        vni("br").map(|n| format!("the agent's bridge of VNI {n}"))
    }
}

pub(super) fn ipv4(s: &str, what: &str) -> Check<Ipv4Addr> {
    s.parse().map_err(|_| {
        (
            format!("{what} \"{s}\" is not an IPv4 address"),
            "write a dotted quad, e.g. 192.168.200.10 (the underlay is IPv4)".to_string(),
        )
    })
}

/// A prefix written as its network address, with a length in `lengths`.
pub(super) fn network(s: &str, what: &str, lengths: RangeInclusive<u8>) -> Check<Ipv4Net> {
    let v4 = |n| match n {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    };
    prefix(s, what, ("IPv4", "10.1.0.0/16"), lengths, v4)
}

pub(super) fn ipv6(s: &str, what: &str) -> Check<Ipv6Addr> {
    s.parse().map_err(|_| {
        (
            format!("{what} \"{s}\" is not an IPv6 address"),
            "write it as RFC 5952 does, e.g. 2001:db8::1".to_string(),
        )
    })
}

/// An IPv6 prefix written as its network address, with a length in
/// `lengths`.
pub(super) fn network6(s: &str, what: &str, lengths: RangeInclusive<u8>) -> Check<Ipv6Net> {
    let v6 = |n| match n {
        IpNet::V6(n) => Some(n),
        IpNet::V4(_) => None,
    };
    prefix(s, what, ("IPv6", "2001:db8:1::/48"), lengths, v6)
}

/// A prefix of the family `pick` takes (named and shown by `family`).
fn prefix<N>(
    s: &str,
    what: &str,
    (family, example): (&str, &str),
    lengths: RangeInclusive<u8>,
    pick: impl Fn(IpNet) -> Option<N>,
) -> Check<N> {
    let not_one = || {
        (
            format!("{what} \"{s}\" is not an {family} prefix"),
            format!("write ADDRESS/LENGTH, e.g. {example}"),
        )
    };
    let net: IpNet = s.parse().map_err(|_| not_one())?;
    let Some(picked) = pick(net) else { return Err(not_one()) };
    if !lengths.contains(&net.prefix_len()) {
        return Err((
            format!("{what} {net} has the wrong length"),
            format!("use a prefix length from /{} to /{}", lengths.start(), lengths.end()),
        ));
    }
    if net.trunc() != net {
        return Err((
            format!("{what} {net} has host bits set"),
            format!("did you mean {}?", net.trunc()),
        ));
    }
    Ok(picked)
}

pub(crate) fn role(s: &str) -> Check<Role> {
    match s {
        "router" => Ok(Role::Router),
        "spine" => Ok(Role::Spine),
        "leaf" => Ok(Role::Leaf),
        "host" => Ok(Role::Host),
        _ => Err((
            format!("unknown role \"{s}\""),
            match did_you_mean(s, ROLES) {
                Some(r) => format!("did you mean \"{r}\"?"),
                None => format!("expected one of: {}", list(ROLES)),
            },
        )),
    }
}

pub(super) fn protocol(s: &str) -> Check<UnderlayProtocol> {
    match s {
        "ebgp" => Ok(UnderlayProtocol::Ebgp),
        "ospf" => Ok(UnderlayProtocol::Ospf),
        "isis" => Ok(UnderlayProtocol::Isis),
        _ => Err((
            format!("unknown underlay protocol \"{s}\""),
            match did_you_mean(s, PROTOCOLS) {
                Some(p) => format!("did you mean \"{p}\"?"),
                None => "expected \"ebgp\" (the default), \"ospf\" or \"isis\"".to_string(),
            },
        )),
    }
}

/// An OSPF area: a dotted quad, or a number written as a string.
pub(super) fn ospf_area(s: &str) -> Check<String> {
    if let Ok(addr) = s.parse::<Ipv4Addr>() {
        return Ok(addr.to_string());
    }
    match s.parse::<u32>() {
        Ok(n) => Ok(Ipv4Addr::from(n).to_string()),
        Err(_) => Err((
            format!("OSPF area \"{s}\" is neither a dotted quad nor a number"),
            "write area = \"0.0.0.0\" (the backbone) or area = \"0\"".to_string(),
        )),
    }
}

/// An IS-IS area address: an AFI byte and up to six groups of four hex
/// digits, e.g. `49.0001`.
pub fn isis_area(s: &str) -> Check<String> {
    let mut parts = s.split('.');
    let afi = parts.next().unwrap_or("");
    let groups: Vec<&str> = parts.collect();
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    if hex(afi, 2) && groups.len() <= 6 && groups.iter().all(|g| hex(g, 4)) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err((
            format!("IS-IS area \"{s}\" is not an area address"),
            "write two hex digits and groups of four, e.g. area = \"49.0001\"".to_string(),
        ))
    }
}

pub(super) fn flooding(s: &str) -> Check<FloodingMode> {
    match s {
        "static" => Ok(FloodingMode::Static),
        "evpn" => Ok(FloodingMode::Evpn),
        _ => Err((
            format!("unknown flooding \"{s}\""),
            "expected \"static\" (head-end replication lists) or \"evpn\" (BGP EVPN)".to_string(),
        )),
    }
}

pub(super) fn segment_mode(s: &str) -> Check<SegmentMode> {
    match s {
        "bridge" => Ok(SegmentMode::Bridge),
        "irb" => Ok(SegmentMode::Irb),
        _ => Err((
            format!("unknown segment mode \"{s}\""),
            match did_you_mean(s, SEGMENT_MODES) {
                Some(m) => format!("did you mean \"{m}\"?"),
                None => "expected \"bridge\" (the leaves only bridge, the default) or \"irb\" (each leaf also gets an address on its bridge)".to_string(),
            },
        )),
    }
}

/// A board serial number as the kernel shows it: hex digits, stored in
/// lower case.
pub(super) fn serial(s: &str) -> Check<String> {
    if !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err((
            format!("serial \"{s}\" is not a board serial number"),
            "write the hex digits of /proc/device-tree/serial-number, e.g. \"00000000a1b2c3d4\""
                .to_string(),
        ))
    }
}

/// A MAC address with `:` or `-`, stored as lower-case `aa:bb:cc:dd:ee:ff`.
pub(super) fn mac(s: &str) -> Check<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let hex_pair = |p: &&str| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit());
    let bytes: Vec<u8> = parts.iter().filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    if parts.len() != 6 || !parts.iter().all(hex_pair) {
        return Err((
            format!("mac \"{s}\" is not a MAC address"),
            "write six hex pairs, e.g. \"b8:27:eb:12:34:56\"".to_string(),
        ));
    }
    let mac = parts.join(":").to_ascii_lowercase();
    let kind = if bytes.iter().all(|b| *b == 0xff) {
        "the broadcast address"
    } else if bytes[0] & 1 == 1 {
        "a multicast address (its first byte is odd)"
    } else if bytes.iter().all(|b| *b == 0) {
        "the all-zero address"
    } else {
        return Ok(mac);
    };
    Err((
        format!("mac {mac} is {kind}, not a board's address"),
        "write the board's own unicast MAC, e.g. \"b8:27:eb:12:34:56\" (ip link show eth0)"
            .to_string(),
    ))
}

/// `address[:port]`, IPv4 or IPv6 (`[2001:db8::1]:6343`).
pub fn collector(s: &str) -> Check<SocketAddr> {
    let parsed = s.parse::<SocketAddr>().ok().or_else(|| {
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, defaults::SFLOW_PORT))
    });
    match parsed {
        Some(addr) if addr.port() != 0 => Ok(addr),
        _ => Err((
            format!("collector \"{s}\" is not address[:port]"),
            "write e.g. \"192.168.200.1\", \"192.168.200.1:6343\" or \"[2001:db8::1]:6343\" (default port 6343)".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectors_take_default_port() {
        assert_eq!(collector("10.0.0.1").unwrap(), "10.0.0.1:6343".parse().unwrap());
        assert_eq!(collector("10.0.0.1:9999").unwrap(), "10.0.0.1:9999".parse().unwrap());
        assert_eq!(collector("[2001:db8::1]:1").unwrap(), "[2001:db8::1]:1".parse().unwrap());
        assert_eq!(collector("2001:db8::1").unwrap().port(), 6343);
        assert!(collector("host.example:6343").is_err());
        assert!(collector("10.0.0.1:0").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(interface_ok("eth0.101").is_ok());
        assert!(interface_ok("enx001122334455").is_ok());
        assert!(interface_ok("eth0.0").is_err());
        assert!(interface_ok("eth0.4095").is_err());
        assert!(interface_ok("a-name-that-is-too-long").is_err());
        assert!(interface_ok("").is_err());
    }

    #[test]
    fn macs_are_normalised() {
        assert_eq!(mac("B8-27-EB-12-34-56").unwrap(), "b8:27:eb:12:34:56");
        assert!(mac("b8:27:eb:12:34").is_err());
    }
}
