//! `pi-lab sflow watch`: a small sFlow collector with a live table — what
//! to reach for before setting up sFlow-RT — and, with `--prometheus`,
//! flow metrics for Prometheus.
//!
//! Datagrams are decoded with flowparser-sflow; ones that are truncated,
//! malformed or oversized are counted and skipped. Interfaces are named by
//! the port name (0:1005) agents send, and, given the lab, mapped onto its
//! nodes and links.

pub mod collector;
pub mod decode;
pub mod lab_links;
pub mod metrics;
pub mod view;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http_server::{self, Reply, Site};
use crate::lab_file::{LabFile, LabFileError};
use collector::{Collector, lock};
use lab_links::LabLinks;
use view::Watch;

#[derive(Debug, clap::Subcommand)]
pub enum SflowCommand {
    /// Decode what the fleet sends and show a live table.
    #[command(after_help = "Examples:
  pi-lab sflow watch
  pi-lab sflow watch --lab examples/fabric.toml       # interfaces as node:name, with their link's far end
  pi-lab sflow watch --listen 192.168.200.1:6343
  pi-lab sflow watch --prometheus 127.0.0.1:9181      # and /metrics for Prometheus
  pi-lab sflow watch --json --duration 60 > sflow.jsonl")]
    Watch(WatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Address and UDP port to receive sFlow on.
    #[arg(long, env = "PI_LAB_SFLOW_LISTEN", default_value = "0.0.0.0:6343")]
    pub listen: SocketAddr,
    /// Print JSON lines (a summary, one per interface, one per flow) at
    /// every refresh instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Time between refreshes: 2, 2s, 500ms.
    #[arg(long, default_value = "2s", value_parser = lab_spec::duration::parse_positive)]
    pub refresh: Duration,
    /// How many sampled flows to show (and to export as metrics).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The lab file: interfaces get their lab node's name and the far end
    /// of their link (PEER).
    #[arg(long, value_name = "FILE", env = "PI_LAB_FILE")]
    pub lab: Option<PathBuf>,
    /// Also serve the flow metrics at http://ADDR/metrics (Prometheus text
    /// format): per interface counters and utilisation, the top flows.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<SocketAddr>,
    /// Stop after this long: 60, 60s, 5m (default: run until interrupted).
    #[arg(long, value_parser = lab_spec::duration::parse_positive)]
    pub duration: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot listen for sFlow on {addr}: {source} (is another collector using the port?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("receiving sFlow datagrams: {0}")]
    Receive(#[source] std::io::Error),
    #[error("writing the table: {0}")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error(transparent)]
    Metrics(#[from] http_server::ServeError),
}

pub fn run(cmd: &SflowCommand) -> Result<ExitCode, WatchError> {
    match cmd {
        SflowCommand::Watch(args) => watch(args),
    }
}

fn watch(args: &WatchArgs) -> Result<ExitCode, WatchError> {
    let lab = match &args.lab {
        Some(path) => Some(LabLinks::new(&LabFile::load(path)?.plan)),
        None => None,
    };
    let mut collector = Collector::bind(args.listen)?;
    let listen = collector.listen().to_string();
    let watch = Arc::new(Mutex::new(lab.map(Watch::for_lab).unwrap_or_default()));
    if let Some(addr) = args.prometheus {
        let site = MetricsSite { watch: watch.clone(), top: args.top };
        let server = http_server::serve(addr, Arc::new(site))?;
        eprintln!("flow metrics at http://{}/metrics", server.addr());
    }
    let start = Instant::now();
    let refresh = args.refresh;
    let end = args.duration.map(|d| start + d);
    let clear = !args.json && std::io::stdout().is_terminal();
    lock(&watch).tick(start);
    let mut next = start + refresh;
    loop {
        collector.receive(&watch)?;
        let now = Instant::now();
        let done = end.is_some_and(|e| now >= e);
        if now >= next || done {
            let snap = {
                let mut w = lock(&watch);
                w.tick(now);
                w.snapshot(args.top, now)
            };
            let text = if args.json {
                view::json_lines(&snap)
            } else if clear {
                format!("\x1b[2J\x1b[H{}", view::render(&snap, &listen))
            } else {
                view::render(&snap, &listen)
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(WatchError::Output)?;
            next = now + refresh;
        }
        if done {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `/metrics` for `sflow watch --prometheus`.
#[derive(Debug)]
struct MetricsSite {
    watch: Arc<Mutex<Watch>>,
    top: usize,
}

impl Site for MetricsSite {
    fn get(&self, path: &str) -> Reply {
        match path {
            "/metrics" => {
                let snapshot = lock(&self.watch).snapshot(self.top, Instant::now());
                Reply::metrics(metrics::render(&snapshot))
            }
            "/" => Reply::text("pi-lab sflow watch: flow metrics at /metrics\n"),
            _ => Reply::not_found(),
        }
    }
}
