//! `pi-lab sflow watch`: a small sFlow collector with a live table — what
//! to reach for before setting up sFlow-RT.
//!
//! Datagrams are decoded with flowparser-sflow; ones that are truncated,
//! malformed or oversized are counted and skipped.

pub mod decode;
pub mod view;

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum SflowCommand {
    /// Decode what the fleet sends and show a live table.
    #[command(after_help = "Examples:
  pi-lab sflow watch
  pi-lab sflow watch --listen 192.168.200.1:6343
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
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0, value_parser = positive_secs)]
    pub refresh: f64,
    /// How many sampled flows to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_parser = positive_secs)]
    pub duration: Option<f64>,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds, e.g. 2 or 0.5")),
    }
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
}

pub fn run(cmd: &SflowCommand) -> Result<ExitCode, WatchError> {
    match cmd {
        SflowCommand::Watch(args) => watch(args),
    }
}

fn watch(args: &WatchArgs) -> Result<ExitCode, WatchError> {
    let sock = UdpSocket::bind(args.listen)
        .map_err(|source| WatchError::Bind { addr: args.listen, source })?;
    let listen =
        sock.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| args.listen.to_string());
    sock.set_read_timeout(Some(Duration::from_millis(100))).map_err(WatchError::Receive)?;
    tracing::info!("listening for sFlow on {listen}");
    let start = Instant::now();
    let refresh = Duration::from_secs_f64(args.refresh);
    let end = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let clear = !args.json && std::io::stdout().is_terminal();
    let mut w = view::Watch::default();
    w.tick(start);
    let mut next = start + refresh;
    // Bigger than any UDP payload: nothing is cut short by the kernel.
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => match decode::decode(&buf[..n]) {
                Ok(d) => w.ingest(d),
                Err(why) => {
                    tracing::debug!("skipped a {n}-byte datagram: {why:?}");
                    w.bad(why);
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WatchError::Receive(e)),
        }
        let now = Instant::now();
        let done = end.is_some_and(|e| now >= e);
        if now >= next || done {
            w.tick(now);
            let snap = w.snapshot(args.top);
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
