//! `pi-lab dashboard`: the lab live in a browser. One local web server and
//! one page (embedded in the binary: nothing is loaded from the network)
//! with the topology as `lab graph` lays it out, each node's health, each
//! link's session state and live rates from sFlow, the top sampled flows,
//! and a node's whole health report on a click; plus `/metrics`, the flow
//! metrics of `sflow watch --prometheus`.
//!
//! Agents are reached through the fleet client (so the dashboard works the
//! same on a virtual fleet, emulated boards and boards); sFlow comes in
//! through `sflow watch`'s collector. The page follows by server-sent
//! events: a change is pushed within [`PUBLISH_EVERY`] of its arrival.

mod assets;
pub mod layout;
pub mod model;
mod site;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fleet_client::FleetClient;
use crate::http_server::{self, ServeError};
use crate::interrupt::Interrupt;
use crate::lab_file::{CompiledLab, LabFileError};
use crate::sflow_watch::collector::{self, Collector};
use crate::sflow_watch::lab_links::LabLinks;
use crate::sflow_watch::view::Watch;
use crate::sflow_watch::{WatchError, metrics};
use crate::status::NodeStatus;
use model::Topology;
use site::{Hub, Page};

/// How often the page's state is rebuilt and, if it changed, pushed.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab dashboard examples/fabric.toml                 # then open http://127.0.0.1:8181/
  pi-lab dashboard lab.toml --listen 0.0.0.0:8181       # reachable from other machines
  pi-lab dashboard lab.toml --sflow 192.168.200.1:6343  # where the lab's agents send sFlow
  curl -s http://127.0.0.1:8181/metrics                 # flow metrics for Prometheus

The server is read-only and listens on localhost unless --listen says
otherwise. sFlow rates change as counter samples arrive: set
[sflow] polling_interval = 2 in the lab for a lively page.")]
pub struct DashboardArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Address and TCP port of the web server.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub listen: SocketAddr,
    /// Address and UDP port to receive the lab's sFlow on (default: all
    /// addresses, on the port of the lab's collector at the controller,
    /// else 6343).
    #[arg(long, value_name = "ADDR")]
    pub sflow: Option<SocketAddr>,
    /// How many sampled flows to show (and to export as metrics).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Time between two health requests to each agent: 1, 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = from_100ms_to_1h)]
    pub poll: Duration,
    /// How long to wait for an agent's answer: 2, 2s, 500ms.
    #[arg(long, default_value = "2s", value_parser = from_100ms_to_1h, env = "PI_LAB_TIMEOUT")]
    pub timeout: Duration,
}

fn from_100ms_to_1h(text: &str) -> Result<Duration, String> {
    let duration = lab_spec::duration::parse(text)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&duration) {
        return Err(format!("{text:?} is not from 100ms to 1h, e.g. 1s or 500ms"));
    }
    Ok(duration)
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("{0} (pass --sflow ADDR to listen elsewhere)")]
    Sflow(#[from] WatchError),
    #[error("{0} (pass --listen ADDR to use another address or port)")]
    Serve(#[from] ServeError),
    #[error("cannot catch Ctrl-C: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

pub fn run(args: &DashboardArgs) -> Result<ExitCode, DashboardError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    let timeout = args.timeout;
    let fleet = Arc::new(FleetClient::open(&lab, timeout));
    let topology = Arc::new(Topology::new(&lab, fleet.runs_on.to_string()));
    let sflow_listen = args.sflow.unwrap_or_else(|| default_sflow(&lab));
    let mut collector = Collector::bind(sflow_listen)?;
    let listen = collector.listen().to_string();
    let watch = Arc::new(Mutex::new(Watch::for_lab(LabLinks::new(&lab.plan))));
    let health: Health = Arc::new(Mutex::new(BTreeMap::new()));
    let hub = Arc::new(Hub::default());
    let page = Arc::new(Page::new(&topology, hub.clone(), health.clone(), watch.clone(), args.top));
    // Something to show before the first health answer: every node unknown.
    let empty = collector::lock(&watch).snapshot(args.top, Instant::now());
    page.publish(model::live(&topology, &BTreeMap::new(), &empty, &listen));
    let server = http_server::serve(args.listen, page.clone())?;
    let interrupt = Interrupt::install().map_err(DashboardError::Signals)?;

    let receiving = watch.clone();
    std::thread::Builder::new()
        .name("sflow".into())
        .spawn(move || {
            loop {
                if let Err(e) = collector.receive(&receiving) {
                    tracing::warn!("sFlow: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .map_err(DashboardError::Thread)?;
    for node in fleet.nodes.keys() {
        poll_health(&fleet, node, args.poll, &health).map_err(DashboardError::Thread)?;
    }
    println!(
        "dashboard for lab {} ({}) at http://{}/ — sFlow on {listen}, metrics at /metrics; Ctrl-C stops it",
        topology.lab,
        fleet.runs_on,
        server.addr()
    );
    while !interrupt.is_set() {
        let started = Instant::now();
        let snapshot = {
            let mut w = collector::lock(&watch);
            w.tick(started);
            w.snapshot(args.top, started)
        };
        let state = model::live(&topology, &lock(&health), &snapshot, &listen);
        page.publish(state);
        std::thread::sleep(PUBLISH_EVERY.saturating_sub(started.elapsed()));
    }
    Ok(ExitCode::from(130))
}

/// The last health answer of every node asked so far.
type Health = Arc<Mutex<BTreeMap<String, NodeStatus>>>;

pub(crate) use collector::lock;

/// Where the lab sends sFlow to pi-lab: the port of its collector at the
/// controller address, on every address here.
fn default_sflow(lab: &CompiledLab) -> SocketAddr {
    let controller = std::net::IpAddr::V4(lab.lab.management.controller);
    let port = lab
        .lab
        .sflow
        .collectors
        .iter()
        .find(|c| c.ip() == controller)
        .map_or(lab_spec::lab::defaults::SFLOW_PORT, |c| c.port());
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// Asks `node`'s agent for its health every `every`, from a thread of its
/// own: a node that does not answer delays nobody else.
fn poll_health(
    fleet: &Arc<FleetClient>,
    node: &str,
    every: Duration,
    health: &Health,
) -> std::io::Result<()> {
    let (fleet, health, node) = (fleet.clone(), health.clone(), node.to_string());
    std::thread::Builder::new().name(format!("health-{node}")).stack_size(256 * 1024).spawn(
        move || {
            let Some(config) = fleet.nodes.get(&node) else { return };
            loop {
                let started = Instant::now();
                let status = crate::status::judge(config, fleet.api(config), fleet.health(config));
                lock(&health).insert(node.clone(), status);
                std::thread::sleep(every.saturating_sub(started.elapsed()));
            }
        },
    )?;
    Ok(())
}

/// The flow metrics page of the dashboard, as `sflow watch --prometheus`.
fn metrics_page(watch: &Mutex<Watch>, top: usize) -> String {
    metrics::render(&collector::lock(watch).snapshot(top, Instant::now()))
}
