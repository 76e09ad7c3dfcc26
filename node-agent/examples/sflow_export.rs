//! Runs the sFlow exporter on its own, for demos and benchmarks:
//!
//! ```text
//! cargo run --release -p node-agent --example sflow_export -- \
//!     --collector 127.0.0.1:6343 --agent 10.0.0.1 --interval 20 --rate 100 --seconds 60
//! ```
//!
//! It prints the exporter counters (SflowState) as JSON when it ends.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use lab_spec::node_config::Sflow;
use node_agent::sflow::{Exporter, HostInfo};

#[derive(Debug, Parser)]
struct Args {
    /// Collector address; repeat for several.
    #[arg(long, required = true)]
    collector: Vec<SocketAddr>,
    /// Agent address written in every datagram.
    #[arg(long)]
    agent: IpAddr,
    /// Counter polling interval, seconds.
    #[arg(long, default_value_t = 20)]
    interval: u32,
    /// Packet sampling 1-in-N; 0 is off.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Interfaces to export and sample; all but loopback when none.
    #[arg(long, value_delimiter = ',')]
    interfaces: Vec<String>,
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = Sflow {
        collectors: args.collector,
        polling_interval: args.interval,
        sampling_rate: args.rate,
        agent_address: args.agent,
        interfaces: args.interfaces,
    };
    let handle = Exporter::start(&cfg, HostInfo::detect())?;
    std::thread::sleep(Duration::from_secs(args.seconds));
    let stats = handle.stats();
    handle.stop();
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
