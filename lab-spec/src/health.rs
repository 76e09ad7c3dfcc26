//! `HealthReport`: what `GET /v1/health` returns.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::node_config::Role;

/// Version of the HealthReport format. 2 added `ospf` and `isis`; 3
/// reports the age of the last pass from the board's monotonic clock
/// (`last_run_age_seconds`, instead of a wall-clock time) and the ports a
/// board lacks; 4 the lines changed by hand in FRR (`frr_hand_changes`);
/// 5 the ports' impairments (`impairments`); 6 the interface of a BGP
/// session on an interface (unnumbered) and OSPFv3 neighbours (`ospf6`). A
/// reader of 6 reads 1 to 5 (the new fields are empty).
pub const HEALTH_SCHEMA: u32 = 6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Always [`HEALTH_SCHEMA`].
    pub schema: u32,
    /// `None` while the agent waits to be provisioned.
    pub node: Option<String>,
    pub lab: Option<String>,
    pub role: Option<Role>,
    pub agent_version: String,
    pub board: Board,
    pub system: System,
    pub bgp: Vec<BgpNeighborState>,
    /// OSPF neighbours of an OSPF underlay, one per expected adjacency.
    #[serde(default)]
    pub ospf: Vec<IgpAdjacencyState>,
    /// IS-IS adjacencies of an IS-IS underlay, one per expected adjacency.
    #[serde(default)]
    pub isis: Vec<IgpAdjacencyState>,
    /// OSPFv3 neighbours of a dual-stack OSPF underlay, one per expected
    /// adjacency (left out when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ospf6: Vec<IgpAdjacencyState>,
    pub vxlan: Vec<VniState>,
    pub sflow: SflowState,
    pub reconcile: ReconcileState,
    /// Lines of FRR's running config changed by hand (vtysh) against the
    /// generated config, as of the last pass: `+`/`-`, then the sections
    /// around the line (`+router bgp 100 > network 10.9.0.0/24`; see
    /// [`crate::frr_hand`]). The node stays healthy: a lab is meant to be
    /// changed by hand.
    #[serde(default)]
    pub frr_hand_changes: Vec<String>,
    /// Ports the lab file impairs, or that run netem anyway (`pi-lab lab
    /// impair`), as of the last pass.
    #[serde(default)]
    pub impairments: Vec<PortImpairment>,
    /// Overall verdict: every neighbour and adjacency up, every VNI ok,
    /// last reconcile ok.
    pub healthy: bool,
    /// Why `healthy` is false, one reason a line.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Facts about the hardware. `None` means "unknown" (not a Pi, or the
/// kernel does not expose it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub mac: Option<String>,
    pub soc_temperature_celsius: Option<f64>,
    pub under_voltage: Option<bool>,
    pub throttled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub hostname: String,
    pub uptime_seconds: u64,
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpNeighborState {
    /// The peer's address; for a session on an interface, the peer's
    /// router id (see `Neighbor::address`).
    pub address: Ipv4Addr,
    pub remote_asn: u32,
    pub description: String,
    /// FRR's state name: `Established`, `Active`, `Connect`, ...
    pub state: String,
    pub established: bool,
    pub uptime_seconds: Option<u64>,
    pub prefixes_received: Option<u64>,
    /// The local interface of a session on an interface (BGP unnumbered,
    /// over IPv6 link-local addresses); `None` for a session to an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl BgpNeighborState {
    /// How people tell the session apart: `10.1.0.0`, or `10.0.0.122 on
    /// eth1` for one on an interface.
    pub fn session(&self) -> String {
        match &self.interface {
            Some(i) => format!("{} on {i}", self.address),
            None => self.address.to_string(),
        }
    }

    /// Is this the session of `n` (by address, and interface if it runs on one)?
    pub fn is_of(&self, n: &crate::node_config::Neighbor) -> bool {
        self.address == n.address && self.interface.as_deref().is_none_or(|i| i == n.interface)
    }
}

/// A port's netem: what the lab file wants and what runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortImpairment {
    pub port: String,
    /// The lab file's (through the NodeConfig); `None`: it wants none.
    pub wanted: Option<crate::impairment::Netem>,
    /// What the port's netem qdisc does now; `None`: no netem, or one that
    /// sets nothing.
    pub running: Option<crate::impairment::Netem>,
    pub state: ImpairmentState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpairmentState {
    /// Running as the lab file says.
    AsLabFile,
    /// Changed at run time (`pi-lab lab impair`): left so until the lab
    /// file's value changes, or the port loses its qdisc (a reboot).
    ByHand,
    /// Wanted and not running (the kernel has no sch_netem, or `tc`
    /// failed): the reconcile errors say why.
    NotApplied,
}

impl PortImpairment {
    /// For people: `delay 20ms`, `delay 50ms (by hand; lab file: delay
    /// 20ms)`, `NOT APPLIED: delay 20ms`.
    pub fn summary(&self) -> String {
        let shown = |n: &Option<crate::impairment::Netem>| {
            n.as_ref().map_or_else(|| "none".to_string(), ToString::to_string)
        };
        match self.state {
            ImpairmentState::AsLabFile => shown(&self.running),
            ImpairmentState::ByHand => {
                format!("{} (by hand; lab file: {})", shown(&self.running), shown(&self.wanted))
            }
            ImpairmentState::NotApplied => format!("NOT APPLIED: {}", shown(&self.wanted)),
        }
    }
}

/// One OSPF neighbour or IS-IS adjacency the config expects, as FRR sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgpAdjacencyState {
    /// Local interface of the point-to-point link.
    pub interface: String,
    /// The neighbour's router id (its loopback).
    pub router_id: Ipv4Addr,
    /// The neighbour's name.
    pub description: String,
    /// FRR's state: OSPF `Full`, `2-Way`, `Init`, ...; IS-IS `Up`,
    /// `Initializing`, `Down`; `Missing` when FRR does not list it.
    pub state: String,
    /// OSPF `Full`, IS-IS `Up`.
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VniState {
    pub vni: u32,
    pub device: String,
    pub device_up: bool,
    pub bridge: String,
    /// Flooding mode: `static` or `evpn`.
    pub flooding: String,
    /// Remote VTEPs in the kernel's flood list (all-zeros FDB entries).
    pub remote_vteps: Vec<Ipv4Addr>,
    /// For static flooding: what the config asks for.
    pub expected_vteps: Vec<Ipv4Addr>,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SflowState {
    pub enabled: bool,
    pub collectors: Vec<String>,
    pub datagrams_sent: u64,
    pub counter_samples_sent: u64,
    pub flow_samples_sent: u64,
    pub send_errors: u64,
    pub sampling_rate: u32,
    /// Interfaces whose packets are being sampled now (the rules are in
    /// place and read); empty while packet sampling is off.
    #[serde(default)]
    pub sampling_interfaces: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileState {
    /// Version of the config being applied (`NodeConfig::version`).
    pub config_version: Option<String>,
    /// Seconds since the last finished pass, on the board's monotonic
    /// clock. A Pi has no real-time clock and a lab rarely has NTP, so the
    /// board's wall-clock time is never used for ages.
    #[serde(default)]
    pub last_run_age_seconds: Option<u64>,
    pub ok: bool,
    /// Changes made by the last pass.
    pub changes: u32,
    pub passes: u64,
    pub errors: Vec<String>,
    /// Ports the config names that this board does not have: a USB
    /// adapter not plugged in, or a VLAN's parent port.
    #[serde(default)]
    pub missing_ports: Vec<String>,
}

/// What to tell a person about ports a board lacks: a Pi 3B has one
/// Ethernet port, so a lab port other than `eth0` needs a USB adapter, or
/// the link must become a VLAN on `eth0` carried by the switch.
pub fn missing_port_hint(node: &str, ports: &[String]) -> Option<String> {
    let first = ports.first()?;
    Some(format!(
        "{node} has no {}: a Pi 3B has one Ethernet port, eth0; plug in a USB Ethernet adapter \
         for {first}, or carry the link as a VLAN on eth0 (write \"{node}:eth0.N\" in the lab \
         file, the same N at the other end; `pi-lab lab switch FILE` shows the switch)",
        ports.join(", ")
    ))
}
