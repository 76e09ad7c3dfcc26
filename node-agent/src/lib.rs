//! `node-agent`: brings up a node's lab role and reports on it.
//!
//! ```text
//! NodeConfig --> reconcile (netlink: links, addresses, bridges, VXLAN, FDB)
//!            --> frr (render frr.conf, reload, read BGP state)
//!            --> sflow (counter and flow samples to collectors)
//!            --> health (HTTP API, Prometheus metrics, status LED)
//! ```

pub mod agent;
pub mod board;
pub mod cli;
pub mod clock;
pub mod frr;
pub mod health;
pub mod hostname;
pub mod identity;
pub mod impair;
pub mod led;
pub mod logging;
pub mod netlink;
pub mod network;
pub mod read_gate;
pub mod sflow;
pub mod state;
pub mod status;
pub mod sysinfo;
pub mod systemd;
