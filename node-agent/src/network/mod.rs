//! The node's lab network in the kernel: links, addresses, bridges, VXLAN
//! devices, flood lists and static routes, reconciled over netlink.
//!
//! ```text
//! NodeConfig --desired--> Desired ─┐
//!                                  ├─ plan() ──> Vec<Change> ──apply()──> Report
//! kernel ─────observe───> Observed ┘   (pure)                (netlink)
//! ```
//!
//! Ownership: devices the agent creates (bridges, VXLAN and VLAN devices)
//! carry the interface alias [`OWNER_ALIAS`]; only those are ever deleted.
//! A link is brought up unless someone held it down by hand (`pi-lab lab
//! link NODE:PORT down` marks it with the alias [`alias::HELD_DOWN`]): a
//! cut link stays cut until it is set up again.
//! Addresses are removed only from interfaces the config names (the
//! segment bridges among them: an irb address or none), flood
//! entries only from VXLAN devices of static segments, routes only when
//! they carry the agent's routing protocol number [`ROUTE_PROTOCOL`].

pub mod apply;
pub mod desired;
pub mod ipv6;
pub mod messages;
pub mod observe;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

pub use apply::{Failure, Report, apply};
pub use desired::desired;
pub use observe::observe;
pub use plan::{Plan, plan};

pub use lab_spec::node_config::alias;

/// Interface alias (IFLA_IFALIAS) marking a device node-agent created.
pub const OWNER_ALIAS: &str = alias::OWNER;

/// Routing protocol number on routes node-agent installs (`ip route show
/// proto 200`). Outside the numbers iproute2 and FRR use.
pub const ROUTE_PROTOCOL: u8 = 200;

/// MTU of VXLAN devices: 1500 minus the 50 bytes of VXLAN over IPv4.
pub const VXLAN_MTU: u32 = 1450;

/// Parameters that define a VXLAN device; a change means re-creating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VxlanParams {
    pub vni: u32,
    pub local: Ipv4Addr,
    pub port: u16,
    pub learning: bool,
}

/// What kind of device the agent creates for a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Create {
    Bridge,
    Vlan { parent: String, vlan_id: u16 },
    Vxlan(VxlanParams),
}

/// One link as the config wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredLink {
    pub name: String,
    /// `None`: the link must already exist (a port, `lo`).
    pub create: Option<Create>,
    pub mtu: Option<u32>,
    /// Bridge this link joins. `None`: leave its master alone.
    pub master: Option<String>,
}

/// Addresses wanted on one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedAddresses {
    pub addresses: BTreeSet<Ipv4Net>,
    /// True: remove every other IPv4 address (except 127/8 on `lo`).
    pub exclusive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StaticRoute {
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// The lab network as the config wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// In creation order: ports, bridges, VLANs, VXLAN devices.
    pub links: Vec<DesiredLink>,
    pub addresses: BTreeMap<String, WantedAddresses>,
    /// Static-flooding VXLAN device -> remote VTEPs.
    pub flood: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    pub routes: BTreeSet<StaticRoute>,
    pub management: Option<Management>,
}

/// The management address, added where it is missing (never removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Management {
    /// `None`: the first wired Ethernet port (see [`LinkState::wired`]).
    pub interface: Option<String>,
    pub address: Ipv4Net,
}

/// A link as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: `bridge`, `vxlan`, `vlan`, `veth`; empty for none.
    pub kind: String,
    pub up: bool,
    pub mtu: u32,
    pub master: Option<String>,
    pub alias: Option<String>,
    pub vxlan: Option<VxlanParams>,
    /// VLAN parent name and id.
    pub vlan: Option<(String, u16)>,
    /// A wired Ethernet port backed by hardware (not virtual, not Wi-Fi):
    /// `eth0` on a Pi 3B, `usb0` in the emulator.
    pub wired: bool,
}

impl LinkState {
    pub fn owned(&self) -> bool {
        matches!(self.alias.as_deref(), Some(OWNER_ALIAS | alias::OWNER_HELD_DOWN))
    }

    /// Set down by hand and marked so: its admin state is left alone.
    pub fn held_down(&self) -> bool {
        matches!(self.alias.as_deref(), Some(alias::HELD_DOWN | alias::OWNER_HELD_DOWN))
    }
}

/// The kernel's state, as far as the agent cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: BTreeMap<String, LinkState>,
    /// IPv4 addresses per interface name.
    pub addresses: BTreeMap<String, BTreeSet<Ipv4Net>>,
    /// All-zeros FDB destinations per VXLAN device name.
    pub flood: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// Main-table routes with protocol [`ROUTE_PROTOCOL`].
    pub routes: BTreeSet<StaticRoute>,
}

/// One step that brings the kernel closer to the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    DeleteLink {
        name: String,
        reason: String,
    },
    CreateLink {
        name: String,
        create: Create,
        mtu: Option<u32>,
    },
    SetLink {
        name: String,
        up: bool,
        mtu: Option<u32>,
        master: Option<String>,
    },
    ReleaseLink {
        name: String,
    },
    AddAddress {
        interface: String,
        address: Ipv4Net,
    },
    RemoveAddress {
        interface: String,
        address: Ipv4Net,
    },
    AddFlood {
        device: String,
        vtep: Ipv4Addr,
    },
    RemoveFlood {
        device: String,
        vtep: Ipv4Addr,
    },
    AddRoute {
        route: StaticRoute,
    },
    RemoveRoute {
        route: StaticRoute,
    },
    /// `disable_ipv6 = 0` for an interface that needs IPv6.
    EnableIpv6 {
        interface: String,
    },
    AddAddress6 {
        interface: String,
        address: Ipv6Net,
    },
    RemoveAddress6 {
        interface: String,
        address: Ipv6Net,
    },
}

impl Change {
    /// The object this change is about, for per-object error reports.
    pub fn object(&self) -> String {
        match self {
            Change::DeleteLink { name, .. }
            | Change::CreateLink { name, .. }
            | Change::SetLink { name, .. }
            | Change::ReleaseLink { name } => name.clone(),
            Change::AddAddress { interface, address }
            | Change::RemoveAddress { interface, address } => format!("{interface} {address}"),
            Change::AddAddress6 { interface, address }
            | Change::RemoveAddress6 { interface, address } => format!("{interface} {address}"),
            Change::EnableIpv6 { interface } => format!("{interface} ipv6"),
            Change::AddFlood { device, vtep } | Change::RemoveFlood { device, vtep } => {
                format!("{device} flood {vtep}")
            }
            Change::AddRoute { route } | Change::RemoveRoute { route } => {
                format!("route {}", route.destination)
            }
        }
    }
}

/// Printed like the `ip`/`bridge` command that would do the same, so the
/// dry-run plan reads naturally.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::DeleteLink { name, reason } => write!(f, "ip link del {name}  # {reason}"),
            Change::CreateLink { name, create, mtu } => {
                write!(f, "ip link add {name}")?;
                if let Some(mtu) = mtu {
                    write!(f, " mtu {mtu}")?;
                }
                match create {
                    Create::Bridge => write!(f, " type bridge"),
                    Create::Vlan { parent, vlan_id } => {
                        write!(f, " link {parent} type vlan id {vlan_id}")
                    }
                    Create::Vxlan(v) => write!(
                        f,
                        " type vxlan id {} local {} dstport {}{}",
                        v.vni,
                        v.local,
                        v.port,
                        if v.learning { "" } else { " nolearning" }
                    ),
                }
            }
            Change::SetLink { name, up, mtu, master } => {
                write!(f, "ip link set {name}")?;
                if let Some(master) = master {
                    write!(f, " master {master}")?;
                }
                if let Some(mtu) = mtu {
                    write!(f, " mtu {mtu}")?;
                }
                if *up {
                    write!(f, " up")?;
                }
                Ok(())
            }
            Change::ReleaseLink { name } => write!(f, "ip link set {name} nomaster"),
            Change::AddAddress { interface, address } => {
                write!(f, "ip addr add {address} dev {interface}")
            }
            Change::RemoveAddress { interface, address } => {
                write!(f, "ip addr del {address} dev {interface}")
            }
            Change::AddFlood { device, vtep } => {
                write!(f, "bridge fdb append 00:00:00:00:00:00 dev {device} dst {vtep}")
            }
            Change::RemoveFlood { device, vtep } => {
                write!(f, "bridge fdb del 00:00:00:00:00:00 dev {device} dst {vtep}")
            }
            Change::AddRoute { route } => write!(
                f,
                "ip route add {} via {} proto {ROUTE_PROTOCOL}",
                route.destination, route.gateway
            ),
            Change::RemoveRoute { route } => write!(
                f,
                "ip route del {} via {} proto {ROUTE_PROTOCOL}",
                route.destination, route.gateway
            ),
            Change::EnableIpv6 { interface } => {
                write!(f, "sysctl -w net.ipv6.conf.{}.disable_ipv6=0", ipv6::sysctl_name(interface))
            }
            Change::AddAddress6 { interface, address } => {
                write!(f, "ip addr add {address} dev {interface} nodad")
            }
            Change::RemoveAddress6 { interface, address } => {
                write!(f, "ip addr del {address} dev {interface}")
            }
        }
    }
}

/// One reconcile pass: observe, plan, and (unless `dry_run`) apply.
/// `previous` is the config in force until now, if another.
pub fn reconcile(
    nl: &mut crate::netlink::Netlink,
    cfg: &lab_spec::NodeConfig,
    previous: Option<&lab_spec::NodeConfig>,
    dry_run: bool,
) -> Result<(Plan, Report), crate::netlink::NetlinkError> {
    let observed = observe(nl)?;
    let mut plan = plan(&desired(cfg), &observed);
    // IPv6 only where this config or the one before had some: an
    // IPv4-only lab reads none.
    let want6 = ipv6::desired6_after(cfg, previous);
    if !want6.is_empty() {
        let plan6 = ipv6::plan6(&want6, &ipv6::observe6(nl, &observed)?, &observed);
        plan.changes.extend(plan6.changes);
        plan.problems.extend(plan6.problems);
    }
    let mut report = Report { problems: plan.problems.clone(), ..Report::default() };
    if !dry_run {
        let done = apply(nl, &observed, &plan.changes);
        report.applied = done.applied;
        report.failed = done.failed;
    }
    Ok((plan, report))
}
