use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use node_agent::agent::{self, Settings};
use node_agent::board::BoardReader;
use node_agent::cli::{Cli, Command, Common};
use node_agent::frr::Frr;
use node_agent::health::agent_backend::AgentBackend;
use node_agent::health::{Plane, PlaneOptions};
use node_agent::netlink::Netlink;
use node_agent::read_gate::HostSlots;
use node_agent::{logging, state};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Run { config, interval, board, read_slots, common } => {
            let mut frr = frr(&common);
            if let Some(frr) = &mut frr {
                frr.start_on_demand = board;
            }
            let settings = Settings {
                config_path: config,
                frr,
                state_dir: common.state_dir,
                interval: Duration::from_secs(interval.max(1)),
                board,
            };
            let slots = read_slots
                .map(|dir| {
                    HostSlots::open(&dir)
                        .with_context(|| format!("read slots in {}", dir.display()))
                })
                .transpose()?;
            let (handle, runner) = agent::start_sharing(settings, slots)?;
            let _plane = management_plane(&handle, board)?;
            runner.run()?;
            Ok(())
        }
        Command::Apply { config, dry_run, json, common } => {
            let cfg = state::load_config(&config)?;
            let mut nl = Netlink::open().context("open netlink")?;
            let mut frr = frr(&common);
            let report = agent::pass(&mut nl, frr.as_mut(), &cfg, dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if dry_run {
                for change in &report.planned {
                    println!("{change}");
                }
                for problem in &report.problems {
                    println!("# problem: {problem}");
                }
                if let Some(frr) = &frr
                    && cfg.runs_frr()
                {
                    let now = std::fs::read_to_string(frr.conf_path()).unwrap_or_default();
                    let new = lab_spec::frr::render(&cfg);
                    let verdict =
                        if now == new { "unchanged" } else { "would be rewritten and reloaded" };
                    println!("# {}: {verdict}", frr.conf_path().display());
                }
            } else {
                for change in &report.applied {
                    println!("{change}");
                }
                println!("{} change(s), {} failure(s)", report.applied.len(), report.failed.len());
            }
            if !report.ok() {
                for e in report.errors() {
                    eprintln!("error: {e}");
                }
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The HTTP API, announcements while unprovisioned, the status LED and
/// sFlow export; they run beside the loop until the process ends.
fn management_plane(handle: &agent::AgentHandle, board: bool) -> anyhow::Result<Plane> {
    let options = PlaneOptions::default();
    // Room for the API's connections (systemd's soft limit is 1024).
    node_agent::health::raise_open_files_limit(4096);
    let status = handle.status();
    let backend = AgentBackend::new(handle.clone(), BoardReader::system_root(None))
        .with_led(Arc::clone(&options.led))
        .on_board(board)
        .with_sflow(Box::new(move || status.read().ok().map(|s| s.sflow.clone())));
    Plane::start(Arc::new(backend), options).context("start the management API")
}

fn frr(common: &Common) -> Option<Frr> {
    (!common.no_frr).then(|| {
        Frr::new(common.frr_pathspace.clone(), common.frr_dir.clone(), common.vtysh.clone())
    })
}
