//! What the agent knows right now, shared with the health API and sFlow.
//!
//! The run loop is the only writer; readers take the read lock briefly and
//! clone what they need.

use std::sync::{Arc, RwLock};

use lab_spec::NodeConfig;
use lab_spec::health::{BgpNeighborState, IgpAdjacencyState, ReconcileState, SflowState, VniState};
use lab_spec::node_config::Flooding;

use crate::network::Observed;

#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The config being applied; `None` while waiting to be provisioned.
    pub config: Option<NodeConfig>,
    pub reconcile: ReconcileState,
    /// Totals since start, for `/metrics`.
    pub stats: crate::health::ReconcileStats,
    pub bgp: Vec<BgpNeighborState>,
    /// OSPF neighbours or IS-IS adjacencies (whichever the underlay runs).
    pub ospf: Vec<IgpAdjacencyState>,
    pub isis: Vec<IgpAdjacencyState>,
    pub vxlan: Vec<VniState>,
    /// The sFlow exporter's counters as of the last pass.
    pub sflow: SflowState,
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
