//! What the agent knows right now, shared with the health API and sFlow.
//!
//! The run loop writes it after every pass; between passes the health API
//! may read FRR again and write the routing state only
//! (`AgentHandle::refresh_routing`). Readers take the read lock briefly and
//! clone what they need.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::health::{BgpNeighborState, IgpAdjacencyState, ReconcileState, SflowState, VniState};
use lab_spec::node_config::{Flooding, IgpProtocol, InterfaceKind};

use crate::network::Observed;

#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The config being applied; `None` while waiting to be provisioned.
    pub config: Option<NodeConfig>,
    /// The config last saved as last-good: an apply of the same config
    /// has nothing left to do (it is in force and saved).
    pub saved: Option<NodeConfig>,
    pub reconcile: ReconcileState,
    /// Totals since start, for `/metrics`.
    pub stats: crate::health::ReconcileStats,
    pub bgp: Vec<BgpNeighborState>,
    /// OSPF neighbours or IS-IS adjacencies (whichever the underlay runs).
    pub ospf: Vec<IgpAdjacencyState>,
    pub isis: Vec<IgpAdjacencyState>,
    /// OSPFv3 neighbours of a dual-stack OSPF underlay.
    pub ospf6: Vec<IgpAdjacencyState>,
    pub vxlan: Vec<VniState>,
    /// Lines changed by hand in FRR as of the last pass.
    pub frr_hand_changes: Vec<lab_spec::frr_hand::HandChange>,
    /// Ports with netem as of the last pass.
    pub impairments: Vec<lab_spec::health::PortImpairment>,
    /// FRR's running config right after the generated config was loaded:
    /// what the API compares a fresh running config with.
    pub frr_baseline: Option<String>,
    /// The sFlow exporter's counters as of the last pass.
    pub sflow: SflowState,
    /// When the last pass finished, on the monotonic clock: reports give
    /// its age, never a wall-clock time (a Pi has no real-time clock).
    pub last_run: Option<Instant>,
    /// When `bgp`, `ospf` and `isis` were last read from FRR (by a pass
    /// or a refresh).
    pub routing_at: Option<Instant>,
    /// When the last refresh for the API started, and how long it took.
    pub refreshed: Option<(Instant, Duration)>,
}

/// Routing state older than this is read from FRR again before the API
/// answers with it.
pub const ROUTING_FRESH: Duration = Duration::from_secs(2);
/// The same while a session or adjacency is down: `pi-lab status` right
/// after BGP came up must say so, not what a pass saw a second ago. While
/// all is up, a session going down shows within `ROUTING_FRESH`.
pub const ROUTING_FRESH_WHILE_DOWN: Duration = Duration::from_millis(250);
/// A refresh starts no sooner than this many times as long as the last one
/// took after it started, so refreshing stays a small share of a slow
/// board's time however often clients ask (a read is a question on a
/// daemon's vty socket, well under a millisecond on an idle host, but an
/// emulated board under load can take seconds to answer).
pub const ROUTING_COST_FACTOR: u32 = 10;

impl Status {
    /// The reconcile state as reported now, with the age of the last pass.
    pub fn reconcile_now(&self) -> ReconcileState {
        let mut r = self.reconcile.clone();
        r.last_run_age_seconds = self.last_run.map(|t| t.elapsed().as_secs());
        r
    }

    /// The config routes, what FRR said is older than [`ROUTING_FRESH`]
    /// ([`ROUTING_FRESH_WHILE_DOWN`] if anything is down), and the last
    /// refresh is [`ROUTING_COST_FACTOR`] times its own length ago.
    pub fn routing_stale(&self) -> bool {
        let routes = self.config.as_ref().is_some_and(|c| c.bgp.is_some() || c.igp.is_some());
        let all_up = self.bgp.iter().all(|n| n.established)
            && self.ospf.iter().chain(&self.isis).chain(&self.ospf6).all(|a| a.up);
        let fresh = if all_up { ROUTING_FRESH } else { ROUTING_FRESH_WHILE_DOWN };
        let old = self.routing_at.is_none_or(|t| t.elapsed() >= fresh);
        let may =
            self.refreshed.is_none_or(|(at, took)| at.elapsed() >= took * ROUTING_COST_FACTOR);
        routes && old && may
    }

    /// IGP adjacencies, filed under the protocol `cfg` runs.
    pub fn set_igp(&mut self, cfg: &NodeConfig, adjacencies: Vec<IgpAdjacencyState>) {
        (self.ospf, self.isis) = match cfg.igp.as_ref().map(|i| i.protocol) {
            Some(IgpProtocol::Ospf) => (adjacencies, Vec::new()),
            Some(IgpProtocol::Isis) => (Vec::new(), adjacencies),
            None => (Vec::new(), Vec::new()),
        };
    }
}

/// Ports `cfg` uses that the kernel does not have: lab ports, parents of
/// VLANs, and a named management port.
pub fn missing_ports(cfg: &NodeConfig, observed: &Observed) -> Vec<String> {
    let mut ports: Vec<&str> = cfg
        .interfaces
        .iter()
        .map(|i| match &i.kind {
            InterfaceKind::Port => i.name.as_str(),
            InterfaceKind::Vlan { parent, .. } => parent.as_str(),
        })
        .chain(cfg.management.interface.as_deref())
        .filter(|p| !observed.links.contains_key(*p))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports.into_iter().map(str::to_string).collect()
}

pub type SharedStatus = Arc<RwLock<Status>>;

/// Per-segment VTEP state from the kernel: the device is up and, for static
/// flooding, the flood list is exactly the configured remote VTEPs.
pub fn vni_states(cfg: &NodeConfig, observed: &Observed) -> Vec<VniState> {
    cfg.vxlan
        .iter()
        .map(|seg| {
            let device_up = observed.links.get(&seg.device).is_some_and(|l| l.up);
            let remote_vteps: Vec<_> = observed
                .flood
                .get(&seg.device)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let (flooding, expected_vteps) = match &seg.flooding {
                Flooding::Static { remote_vteps } => {
                    let mut v = remote_vteps.clone();
                    v.sort();
                    ("static", v)
                }
                Flooding::Evpn => ("evpn", Vec::new()),
            };
            let ok = device_up && (flooding == "evpn" || remote_vteps == expected_vteps);
            VniState {
                vni: seg.vni,
                device: seg.device.clone(),
                device_up,
                bridge: seg.bridge.clone(),
                flooding: flooding.into(),
                remote_vteps,
                expected_vteps,
                ok,
            }
        })
        .collect()
}
