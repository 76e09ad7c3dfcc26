//! `NodeConfig`: everything one node-agent needs, fully resolved.
//!
//! The host compiles a lab into one of these per node and delivers it either
//! on the card's FAT partition (`pi-lab/node.toml`) or over the management
//! API (`PUT /v1/config`). Nothing in here refers to a pool or to another
//! node by name alone: every address is concrete, so the agent never has to
//! look anything up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the NodeConfig format. Bumped on any incompatible change.
pub const NODE_CONFIG_SCHEMA: u32 = 1;

/// UDP port of every VXLAN device (IANA). The kernel default is 8472.
pub const VXLAN_PORT: u16 = 4789;

/// Default TCP port of node-agent's HTTP API.
pub const DEFAULT_HEALTH_PORT: u16 = 9180;

/// What a node does in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A plain BGP router (netlab's default device role).
    Router,
    Spine,
    Leaf,
    Host,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Router => "router",
            Role::Spine => "spine",
            Role::Leaf => "leaf",
            Role::Host => "host",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Always [`NODE_CONFIG_SCHEMA`].
    pub schema: u32,
    /// Name of the lab this node belongs to.
    pub lab: String,
    /// Content hash of this config (see [`NodeConfig::content_version`]).
    #[serde(default)]
    pub version: String,
    pub hostname: String,
    pub role: Role,
    #[serde(default)]
    pub identity: Identity,
    pub management: Management,
    /// Router loopback (/32). `None` for hosts.
    #[serde(default)]
    pub loopback: Option<Ipv4Addr>,
    /// IPv6 loopback (/128) of a router in a dual-stack lab: BGP announces
    /// it in `ipv6 unicast`. Left out when `None`, so IPv4-only configs
    /// stay byte for byte what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback6: Option<Ipv6Addr>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub bgp: Option<Bgp>,
    /// The interior gateway protocol of an OSPF or IS-IS underlay. `None`
    /// with an eBGP underlay, and on hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub igp: Option<Igp>,
    #[serde(default)]
    pub vxlan: Vec<Segment>,
    /// Static routes (hosts: towards other segments through their leaf).
    #[serde(default)]
    pub routes: Vec<Route>,
    pub sflow: Sflow,
    pub health: HealthApi,
    pub auth: Auth,
    #[serde(default)]
    pub led: Led,
    /// FRR lines from the lab file, appended to the generated `frr.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frr: Option<String>,
}

/// Identity of the board this config is meant for (zero-touch matching).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Board serial number as in `/proc/device-tree/serial-number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// MAC address of the management port, lower-case `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The management network as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Management {
    /// Management interface. `None`: the first Ethernet device, matched by
    /// type (a Pi 3B has `eth0`, the emulator `usb0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Address with prefix length, e.g. `192.168.200.11/24`.
    pub address: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Where pi-lab runs: announcements and sFlow go there.
    pub controller: Ipv4Addr,
}

/// Interface aliases (IFLA_IFALIAS) node-agent and pi-lab agree on: the
/// kernel keeps them with the link, so they outlive an agent restart and
/// go with a reboot, exactly as a link's admin state does.
pub mod alias {
    /// A device node-agent created; only those are ever deleted.
    pub const OWNER: &str = "pi-lab";
    /// A lab port set down by hand (`pi-lab lab link NODE:PORT down`):
    /// node-agent leaves it down instead of bringing it up again.
    pub const HELD_DOWN: &str = "held down";
    /// A device node-agent created (a VLAN link on a board), held down by
    /// hand: still node-agent's.
    pub const OWNER_HELD_DOWN: &str = "pi-lab held down";
}

/// A lab interface: a whole port or an 802.1Q VLAN on a parent port.
///
/// No `deny_unknown_fields` here: serde cannot combine it with the
/// flattened `kind`, and every config with an interface would fail to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Kernel name: `eth1`, `enx001122334455`, `eth0.101`.
    pub name: String,
    #[serde(flatten)]
    pub kind: InterfaceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Point-to-point or host address with prefix length. `None` for an
    /// access port that only joins a bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Net>,
    /// IPv6 address with prefix length in a dual-stack lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
    /// Free text for people: usually `to spine1:eth1`.
    #[serde(default)]
    pub description: String,
    /// The lab file's impairment of what this port sends (netem). Added
    /// after schema 1 was fixed: optional, so configs without it load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc: Option<crate::impairment::Netem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InterfaceKind {
    /// A whole port that already exists (built-in, USB adapter, veth).
    Port,
    /// An 802.1Q sub-interface the agent creates on `parent`.
    Vlan { parent: String, vlan_id: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to advertise (the loopback at least).
    pub networks: Vec<Ipv4Net>,
    pub timers: BgpTimers,
    /// Paths to install for ECMP (`maximum-paths`).
    pub multipath: u16,
    /// Turn on `address-family l2vpn evpn` with `advertise-all-vni`.
    pub evpn: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    /// The peer's address on the link (or its loopback, between
    /// loopbacks). For a session on the interface (`unnumbered`) the
    /// peer's router id, which names the session in health reports and
    /// tests: the session itself runs to whatever IPv6 link-local address
    /// answers on `interface`.
    pub address: Ipv4Addr,
    pub remote_asn: u32,
    /// Local interface the session runs over; [`LOOPBACK_SESSION`] for an
    /// iBGP session between loopbacks (sourced from `lo`, carried by the IGP).
    pub interface: String,
    /// The peer node's name, for `description`.
    pub description: String,
    /// This node reflects the peer's routes (the peer is its client).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub route_reflector_client: bool,
    /// BGP unnumbered (RFC 5549): the session runs on `interface` over
    /// IPv6 link-local addresses (FRR's `neighbor IF interface`) and
    /// carries IPv4 routes with IPv6 next hops.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unnumbered: bool,
}

/// `Neighbor::interface` of a session between loopbacks.
pub const LOOPBACK_SESSION: &str = "lo";

impl Neighbor {
    /// An iBGP session between loopbacks rather than across one link.
    pub fn between_loopbacks(&self) -> bool {
        self.interface == LOOPBACK_SESSION
    }

    /// How FRR names the session (`neighbor X ...`, and its key in `show
    /// bgp neighbors json`): the interface when unnumbered, else the
    /// peer's address.
    pub fn frr_name(&self) -> String {
        if self.unnumbered { self.interface.clone() } else { self.address.to_string() }
    }
}

/// Which link-state protocol carries the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IgpProtocol {
    Ospf,
    Isis,
}

impl std::fmt::Display for IgpProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IgpProtocol::Ospf => "ospf",
            IgpProtocol::Isis => "isis",
        })
    }
}

/// OSPF or IS-IS on this node: every router-to-router link point-to-point,
/// the loopback advertised (passive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Igp {
    pub protocol: IgpProtocol,
    /// The loopback.
    pub router_id: Ipv4Addr,
    /// OSPF: the area as a dotted quad (`0.0.0.0`). IS-IS: the area address
    /// (`49.0001`); the system id is made from the router id.
    pub area: String,
    pub timers: IgpTimers,
    /// One expected adjacency per point-to-point interface.
    pub neighbors: Vec<IgpNeighbor>,
}

/// Hello and dead (hold) time in seconds. IS-IS holds for `dead / hello`
/// hellos (`isis hello-multiplier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgpTimers {
    pub hello: u16,
    pub dead: u16,
}

impl Default for IgpTimers {
    /// Short timers: an adjacency comes up within a second or two and a
    /// dead neighbour is noticed in four.
    fn default() -> Self {
        IgpTimers { hello: 1, dead: 4 }
    }
}

impl IgpTimers {
    /// `isis hello-multiplier`: hellos missed before the adjacency drops.
    pub fn hello_multiplier(&self) -> u16 {
        self.dead.div_ceil(self.hello.max(1))
    }
}

/// An adjacency the IGP should form: over `interface`, with the router
/// whose router id (loopback) is `router_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgpNeighbor {
    pub interface: String,
    pub router_id: Ipv4Addr,
    /// The peer node's name.
    pub description: String,
}

impl Igp {
    /// The IS-IS NET: area, system id from the router id (each octet as
    /// three digits: 10.0.0.75 -> 0100.0000.0075), selector 00.
    pub fn isis_net(&self) -> String {
        let digits: String = self.router_id.octets().iter().map(|o| format!("{o:03}")).collect();
        format!("{}.{}.{}.{}.00", self.area, &digits[0..4], &digits[4..8], &digits[8..12])
    }
}

/// BGP timers in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpTimers {
    pub keepalive: u16,
    pub hold: u16,
    pub connect_retry: u16,
}

impl Default for BgpTimers {
    /// Short timers: labs want fast convergence, not stability on WAN links.
    fn default() -> Self {
        BgpTimers { keepalive: 3, hold: 9, connect_retry: 5 }
    }
}

/// One VXLAN segment (VNI) on a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub vni: u32,
    /// Segment name from the lab file.
    pub name: String,
    /// VXLAN device name, e.g. `vxlan10010`.
    pub device: String,
    /// Bridge the VXLAN device and access ports join, e.g. `br10010`.
    pub bridge: String,
    /// The leaf's own address in the segment, on the bridge (a segment of
    /// `mode = "irb"`). Left out when `None`, so configs without one stay
    /// byte for byte (and version for version) what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Net>,
    /// The leaf's IPv6 address on the bridge (a dual-stack irb segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
    /// Local VTEP address: this leaf's loopback.
    pub local_vtep: Ipv4Addr,
    /// Always [`VXLAN_PORT`].
    pub port: u16,
    /// Access ports that join the bridge.
    pub access_ports: Vec<String>,
    pub flooding: Flooding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Flooding {
    /// Head-end replication: one all-zeros FDB entry per remote VTEP.
    Static { remote_vteps: Vec<Ipv4Addr> },
    /// FRR learns remote VTEPs over BGP EVPN and installs the flood list.
    Evpn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sflow {
    /// Where to send datagrams; empty disables export.
    pub collectors: Vec<SocketAddr>,
    /// Counter polling interval in seconds.
    pub polling_interval: u32,
    /// Packet sampling 1-in-N; 0 turns sampling off.
    pub sampling_rate: u32,
    /// Agent address in every datagram: loopback, else management address.
    pub agent_address: IpAddr,
    /// Interfaces whose counters are exported and that are sampled.
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthApi {
    /// Address and port of the HTTP API (the management address).
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Lower-case hex SHA-256 of the bearer token. The token itself never
    /// lands on the card.
    pub token_sha256: String,
}

impl Auth {
    pub fn from_token(token: &str) -> Self {
        Auth { token_sha256: hex::encode(Sha256::digest(token.as_bytes())) }
    }
}

/// The status LED.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Led {
    /// No LED.
    #[default]
    None,
    /// A sysfs LED class device, e.g. the on-board `ACT` LED.
    Sysfs { name: String },
    /// An external LED on a BCM GPIO pin.
    Gpio { pin: u8 },
}

impl NodeConfig {
    /// A dual-stack router (IPv6 loopback) or host (an IPv6 address).
    pub fn has_ipv6(&self) -> bool {
        self.loopback6.is_some() || self.interfaces.iter().any(|i| i.address6.is_some())
    }

    /// Ports that carry a BGP session on the interface (unnumbered).
    pub fn unnumbered_ports(&self) -> Vec<&str> {
        let bgp = self.bgp.as_ref().map(|b| b.neighbors.as_slice()).unwrap_or_default();
        bgp.iter().filter(|n| n.unnumbered).map(|n| n.interface.as_str()).collect()
    }

    /// Nodes that route run FRR: BGP, an IGP, or both.
    pub fn runs_frr(&self) -> bool {
        self.bgp.is_some() || self.igp.is_some()
    }

    /// The FRR daemons this node needs besides zebra (and staticd, which
    /// FRR always runs): `bgpd`, `ospfd`, `isisd`.
    pub fn frr_daemons(&self) -> Vec<&'static str> {
        let mut daemons = Vec::new();
        if self.bgp.is_some() {
            daemons.push("bgpd");
        }
        match self.igp.as_ref().map(|i| i.protocol) {
            Some(IgpProtocol::Ospf) => daemons.push("ospfd"),
            Some(IgpProtocol::Isis) => daemons.push("isisd"),
            None => {}
        }
        if self.runs_ospf6() {
            daemons.push("ospf6d");
        }
        daemons
    }

    /// A dual-stack router of an OSPF underlay runs OSPFv3 beside OSPFv2
    /// (an IS-IS underlay carries IPv6 in the same instance).
    pub fn runs_ospf6(&self) -> bool {
        self.loopback6.is_some()
            && self.igp.as_ref().is_some_and(|i| i.protocol == IgpProtocol::Ospf)
    }

    /// Hash of everything but `version` itself: the same content always gets
    /// the same version, so a re-provision with no change is a no-op.
    pub fn content_version(&self) -> String {
        let mut copy = self.clone();
        copy.version = String::new();
        let json = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// Fill in `version` from the content.
    pub fn with_version(mut self) -> Self {
        self.version = self.content_version();
        self
    }

    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}
