//! `pi-lab provision`: push each node's config to the running agents in
//! parallel, wait until each has reconciled it, and summarise.

pub mod discover;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use lab_spec::NodeConfig;
use serde::Serialize;

use lab_spec::ConfigAnswer;

use crate::fleet_client::{ClientError, FleetClient};
use crate::lab_file::{CompiledLab, LabFileError};
use crate::table::Table;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab provision examples/fabric.toml
  pi-lab provision lab.toml --node leaf1 --node leaf2
  pi-lab provision lab.toml --discover 30     # zero-touch: find fresh boards first
  pi-lab provision lab.toml --force           # overwrite lines typed into vtysh

A node whose FRR runs lines typed by hand (pi-lab status: hand-changed) is
not overwritten: provision names the lines and applies nothing to any node.
Keep them with `pi-lab lab save` and the node's frr = \"\"\"...\"\"\" in the
lab file, or drop them with --force.
Each agent checks the lab token (PI_LAB_TOKEN, else the lab's token file);
a fresh board accepts it when its bootstrap.sha256 holds the token's hash.
Exit status: 0 when every node applied its config, 1 when any did not,
2 when the lab file cannot be used.")]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Only these nodes (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// First listen SECONDS for unprovisioned boards announcing themselves
    /// (UDP 9181) and push to the ones whose serial number or MAC the lab names.
    /// For how long: 30, 30s, 2m.
    #[arg(long, value_name = "FOR", value_parser = lab_spec::duration::parse_positive)]
    pub discover: Option<Duration>,
    /// UDP port to hear announcements on.
    #[arg(long, default_value_t = lab_spec::announce::ANNOUNCE_PORT, env = "PI_LAB_ANNOUNCE_PORT")]
    pub announce_port: u16,
    /// How long to wait for each node to finish reconciling its new
    /// config: 120, 120s, 2m.
    #[arg(long, default_value = "120s", value_parser = lab_spec::duration::parse_positive,
          env = "PI_LAB_PROVISION_TIMEOUT")]
    pub timeout: Duration,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Overwrite lines changed by hand in FRR (see `pi-lab status`).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("cannot listen for announcements on UDP port {port}: {source}")]
    Discover { port: u16, source: std::io::Error },
    #[error(transparent)]
    FrrCheck(#[from] crate::frr_check::FrrCheckError),
}

/// How provisioning one node ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Applied and reconciled.
    Applied {
        version: String,
        changes: u64,
    },
    Unreachable {
        error: String,
    },
    /// The agent refused the token or the config.
    Refused {
        error: String,
    },
    /// Applying failed and the agent went back to its previous config.
    RolledBack {
        error: String,
        rolled_back_to: String,
    },
    /// Applying failed on a node that had no config before; it keeps
    /// trying this one.
    Failed {
        error: String,
    },
    /// Applying failed and going back to the previous config failed too.
    RollbackFailed {
        error: String,
        rolled_back_to: String,
        rollback_error: String,
    },
    /// Applied, but the reconcile pass reports errors.
    ReconcileFailed {
        version: String,
        errors: Vec<String>,
    },
    /// Applied, but the reconcile did not finish in time.
    Timeout {
        version: String,
    },
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Applied { .. })
    }

    fn short(&self) -> String {
        match self {
            Outcome::Applied { changes, .. } => format!("applied ({changes} changes)"),
            Outcome::Unreachable { .. } => "UNREACHABLE".into(),
            Outcome::Refused { .. } => "REFUSED".into(),
            Outcome::RolledBack { .. } => "ROLLED BACK".into(),
            Outcome::Failed { .. } => "FAILED".into(),
            Outcome::RollbackFailed { .. } => "ROLLBACK FAILED".into(),
            Outcome::ReconcileFailed { .. } => "RECONCILE FAILED".into(),
            Outcome::Timeout { .. } => "TIMEOUT".into(),
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Outcome::Applied { .. } => None,
            Outcome::Unreachable { error } | Outcome::Refused { error } => Some(error.clone()),
            Outcome::RolledBack { error, rolled_back_to } => {
                Some(format!("{error}; now running {rolled_back_to}"))
            }
            Outcome::Failed { error } => {
                Some(format!("{error}; no previous config to go back to, the node keeps trying"))
            }
            Outcome::RollbackFailed { error, rolled_back_to, rollback_error } => Some(format!(
                "{error}; going back to {rolled_back_to} failed too: {rollback_error}"
            )),
            Outcome::ReconcileFailed { errors, .. } => Some(errors.join("; ")),
            Outcome::Timeout { version } => {
                Some(format!("config {version} pushed, reconcile not finished in time"))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub api: SocketAddr,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
}

pub fn run(args: &ProvisionArgs) -> Result<ExitCode, ProvisionError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    // The agent answers a PUT once it has applied the config: on a Pi, with
    // FRR reloading, that can take longer than a plain request. (The
    // connection itself still times out in seconds.)
    let fleet = FleetClient::open(&lab, args.timeout.max(Duration::from_secs(15)));
    let configs = fleet.select(&args.nodes)?;
    let targets = match args.discover {
        Some(window) => discovered(&fleet, &configs, args.announce_port, window)?,
        None => configs.iter().map(|c| (*c, fleet.api(c))).collect(),
    };
    let to_check: Vec<&NodeConfig> = targets.iter().map(|(c, _)| *c).collect();
    if !frr_lines_pass(&lab, &fleet, &to_check, args.json)? {
        return Ok(ExitCode::from(1));
    }
    let hand_changed = hand_changed(&fleet, &targets);
    if !hand_changed.is_empty() && !args.force {
        print_refusal(&hand_changed, args.json);
        return Ok(ExitCode::from(1));
    }
    let wait = args.timeout;
    let results = push_all(&fleet, &targets, wait, !args.json, args.force);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results).unwrap_or_default());
    } else {
        print!("{}", summary(&results));
    }
    let all_ok = results.iter().all(|r| r.outcome.ok());
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The nodes' own FRR lines, checked before anything is applied: by this
/// host's FRR if it has one, else by each node's. Lines FRR refuses are
/// printed at their place in the lab file.
fn frr_lines_pass(
    lab: &CompiledLab,
    fleet: &FleetClient,
    configs: &[&NodeConfig],
    json: bool,
) -> Result<bool, ProvisionError> {
    let with_lines = crate::frr_check::nodes_with_lines(configs);
    if with_lines.is_empty() {
        return Ok(true);
    }
    let checked = match crate::frr_check::check_here(&lab.lab, &with_lines)? {
        Some(checked) => checked,
        None => crate::frr_check::check_on_nodes(fleet, &lab.lab, &with_lines),
    };
    for (node, why) in &checked.unchecked {
        eprintln!(
            "warning: nothing could check the frr lines of {node} ({why}); if its FRR refuses \
             them, its agent goes back to its previous config"
        );
    }
    if !checked.diags.has_errors() {
        return Ok(true);
    }
    if json {
        let doc = serde_json::json!({ "result": "frr_refused", "errors": checked.diags.located() });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        eprintln!("{}", checked.diags);
        eprintln!("nothing was provisioned: FRR refuses lines of the lab file");
    }
    Ok(false)
}

/// A node whose FRR runs lines typed by hand, and those lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandChanged {
    pub node: String,
    pub hand_changes: Vec<String>,
}

/// The nodes among `targets` with hand changes their new config does not
/// carry (the lab file's `frr` lines may say them now), by their health
/// reports (asked all at once). A node that does not answer has none to
/// lose here; pushing to it reports it.
pub fn hand_changed(
    fleet: &FleetClient,
    targets: &[(&NodeConfig, SocketAddr)],
) -> Vec<HandChanged> {
    let reports: Vec<_> = std::thread::scope(|scope| {
        let asks: Vec<_> = targets
            .iter()
            .map(|(config, addr)| (config, scope.spawn(move || fleet.http().health(*addr))))
            .collect();
        asks.into_iter()
            .map(|(config, ask)| (config, ask.join().ok().and_then(Result::ok)))
            .collect()
    });
    reports
        .into_iter()
        .filter_map(|(config, report)| {
            let new = lab_spec::frr::render(config);
            let hand_changes: Vec<String> =
                report?.frr_hand_changes.into_iter().filter(|c| !carried(&new, c)).collect();
            (!hand_changes.is_empty())
                .then(|| HandChanged { node: config.hostname.clone(), hand_changes })
        })
        .collect()
}

/// Whether the generated `config` says what the hand change (one-line
/// form) did.
fn carried(config: &str, change: &str) -> bool {
    change
        .parse::<lab_spec::frr_hand::HandChange>()
        .is_ok_and(|c| lab_spec::frr_hand::carried(config, &c))
}

/// What would be lost, and what to do instead.
pub fn refusal(nodes: &[HandChanged]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&format!(
            "{}: {}; provision would overwrite:\n",
            n.node,
            crate::status::drift(&n.hand_changes).unwrap_or_default()
        ));
        for line in &n.hand_changes {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(
        "nothing was provisioned. Keep the lines with `pi-lab lab save` and the node's \
         frr = \"\"\"...\"\"\" in the lab file, or overwrite them with --force\n",
    );
    out
}

fn print_refusal(nodes: &[HandChanged], json: bool) {
    if json {
        let doc = serde_json::json!({ "result": "hand_changed", "nodes": nodes });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", refusal(nodes));
    }
}

/// Where to push each config: the lab's management address, or for boards
/// heard announcing themselves, the address they announced from.
pub fn discovered<'a>(
    fleet: &FleetClient,
    configs: &[&'a NodeConfig],
    port: u16,
    window: Duration,
) -> Result<Vec<(&'a NodeConfig, SocketAddr)>, ProvisionError> {
    eprintln!("listening {}s for boards announcing themselves on UDP {port}...", window.as_secs());
    let heard = discover::listen(port, window)
        .map_err(|source| ProvisionError::Discover { port, source })?;
    let matched = discover::match_boards(configs, &heard);
    for h in &heard {
        let a = &h.announcement;
        let node = matched.iter().find(|(_, (_, m))| m == h).map(|(n, _)| n.as_str());
        eprintln!(
            "  heard {} (serial {}, MAC {}){}",
            h.from,
            a.serial.as_deref().unwrap_or("unknown"),
            a.mac.as_deref().unwrap_or("unknown"),
            node.map_or(" — no node of this lab has that serial or MAC".to_string(), |n| format!(
                " -> {n}"
            )),
        );
    }
    Ok(configs
        .iter()
        .map(|c| match matched.get(&c.hostname) {
            Some((_, heard)) => (*c, heard.api()),
            None => (*c, fleet.api(c)),
        })
        .collect())
}

/// Push every config at once, one thread and one progress bar per node.
pub fn push_all(
    fleet: &FleetClient,
    targets: &[(&NodeConfig, SocketAddr)],
    wait: Duration,
    show_progress: bool,
    force: bool,
) -> Vec<NodeResult> {
    let bars = MultiProgress::new();
    if !show_progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:<12} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(config, addr)| {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(config.hostname.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                scope.spawn(move || {
                    let started = Instant::now();
                    let outcome = provision_one(fleet, config, *addr, wait, &bar, force);
                    bar.finish_with_message(outcome.short());
                    NodeResult {
                        node: config.hostname.clone(),
                        api: *addr,
                        outcome,
                        seconds: started.elapsed().as_secs_f64(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(targets)
            .map(|(h, (config, addr))| {
                h.join().unwrap_or_else(|_| NodeResult {
                    node: config.hostname.clone(),
                    api: *addr,
                    outcome: Outcome::Unreachable { error: "the push thread panicked".into() },
                    seconds: 0.0,
                })
            })
            .collect()
    })
}

fn provision_one(
    fleet: &FleetClient,
    config: &NodeConfig,
    addr: SocketAddr,
    wait: Duration,
    bar: &ProgressBar,
    force: bool,
) -> Outcome {
    bar.set_message(format!("pushing config {} to {addr}", config.version));
    let (version, changes) = match fleet.push(config, addr, force) {
        Ok(ConfigAnswer::Applied { version, changes }) => (version, u64::from(changes)),
        Ok(ConfigAnswer::Invalid { reasons }) => {
            return Outcome::Refused { error: format!("invalid config: {}", reasons.join("; ")) };
        }
        Ok(ConfigAnswer::RolledBack { error, rolled_back_to }) => {
            return Outcome::RolledBack { error, rolled_back_to };
        }
        Ok(ConfigAnswer::NoPreviousConfig { error }) => return Outcome::Failed { error },
        Ok(ConfigAnswer::RollbackFailed { error, rolled_back_to, rollback_error }) => {
            return Outcome::RollbackFailed { error, rolled_back_to, rollback_error };
        }
        Ok(ConfigAnswer::NotApplied { error }) => return Outcome::Refused { error },
        Err(e @ ClientError::Unreachable { .. }) => {
            return Outcome::Unreachable { error: e.to_string() };
        }
        Err(e) => return Outcome::Refused { error: e.to_string() },
    };
    bar.set_message(format!("waiting for the reconcile of {version}"));
    match wait_reconciled(fleet, config, addr, &version, wait) {
        // The pass that applied it made the changes, not the latest pass.
        Outcome::Applied { version, .. } => Outcome::Applied { version, changes },
        other => other,
    }
}

/// Poll the health report until the agent reports a finished pass of
/// `version`. After the first push a fresh board moves its API from the
/// address it announced to its management address, so both are tried.
fn wait_reconciled(
    fleet: &FleetClient,
    config: &NodeConfig,
    pushed_to: SocketAddr,
    version: &str,
    wait: Duration,
) -> Outcome {
    let deadline = Instant::now() + wait;
    let mut addrs = vec![fleet.api(config)];
    if pushed_to != addrs[0] {
        addrs.push(pushed_to);
    }
    loop {
        for addr in &addrs {
            let Ok(report) = fleet.http().health(*addr) else { continue };
            let r = &report.reconcile;
            if r.config_version.as_deref() == Some(version) && r.last_run_age_seconds.is_some() {
                let changes = u64::from(r.changes);
                return if r.ok {
                    Outcome::Applied { version: version.to_string(), changes }
                } else {
                    let hint =
                        lab_spec::health::missing_port_hint(&config.hostname, &r.missing_ports);
                    Outcome::ReconcileFailed {
                        version: version.to_string(),
                        errors: r.errors.iter().cloned().chain(hint).collect(),
                    }
                };
            }
        }
        if Instant::now() >= deadline {
            return Outcome::Timeout { version: version.to_string() };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The table after the bars, then what went wrong where.
pub fn summary(results: &[NodeResult]) -> String {
    let rows = results.iter().map(|r| {
        let version = match &r.outcome {
            Outcome::Applied { version, .. }
            | Outcome::ReconcileFailed { version, .. }
            | Outcome::Timeout { version } => version.clone(),
            _ => "-".into(),
        };
        vec![
            r.node.clone(),
            r.api.to_string(),
            r.outcome.short(),
            version,
            format!("{:.1}s", r.seconds),
        ]
    });
    let mut out =
        Table::new(["NODE", "API", "RESULT", "CONFIG", "TIME"]).with_rows(rows).to_string();
    for r in results {
        if let Some(detail) = r.outcome.detail() {
            out.push_str(&format!("{}: {detail}\n", r.node));
        }
    }
    let ok = results.iter().filter(|r| r.outcome.ok()).count();
    out.push_str(&format!("{ok} of {} nodes provisioned\n", results.len()));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lab_spec::node_config::Auth;
    use node_agent::health::memory::MemoryBackend;
    use node_agent::health::{Backend, HandChanges, ReconcileStats, Server, ServerConfig};

    use super::*;
    use crate::fleet_client::tests::{client, node};
    use crate::validate::checks::tests::report;

    const TOKEN: &str = "t5-token";

    /// A real API server on loopback in front of an in-memory agent that
    /// already runs an older config.
    fn agent(name: &str, octet: u8) -> (Server, Arc<MemoryBackend>, NodeConfig) {
        let mut old = node(name, "leaf", 65000 + u32::from(octet), octet, None);
        old.auth = Auth::from_token(TOKEN);
        let mut template = report();
        template.reconcile.ok = true;
        template.reconcile.last_run_age_seconds = Some(3);
        let backend =
            Arc::new(MemoryBackend::new(Some(old.clone()), template, ReconcileStats::default()));
        let server = Server::start(
            ServerConfig::new("127.0.0.1:0".parse().unwrap()),
            backend.clone() as Arc<dyn Backend>,
        )
        .unwrap();
        let mut new = old;
        new.health.listen = server.local_addr();
        new.sflow.polling_interval = 10; // something changed
        (server, backend, new.with_version())
    }

    fn closed_port() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[test]
    fn pushes_to_every_node_and_reports_the_dead_one() {
        let (_s1, b1, c1) = agent("leaf1", 11);
        let (_s2, b2, c2) = agent("leaf2", 12);
        let mut dead = node("leaf3", "leaf", 65003, 13, None);
        dead.health.listen = closed_port();
        let fleet = client(vec![c1.clone(), c2.clone(), dead.clone()], TOKEN);
        let targets =
            vec![(&c1, c1.health.listen), (&c2, c2.health.listen), (&dead, dead.health.listen)];
        let results = push_all(&fleet, &targets, Duration::from_secs(5), false, false);

        assert_eq!(
            results[0].outcome,
            Outcome::Applied { version: c1.version.clone(), changes: 5 }
        );
        assert_eq!(
            results[1].outcome,
            Outcome::Applied { version: c2.version.clone(), changes: 5 }
        );
        assert!(matches!(&results[2].outcome, Outcome::Unreachable { .. }), "{:?}", results[2]);
        assert_eq!(b1.applied(), vec![c1.clone()]);
        assert_eq!(b2.current_version(), Some(c2.version.clone()));
        let text = summary(&results);
        assert!(text.contains("2 of 3 nodes provisioned"), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("leaf3") && l.contains("UNREACHABLE")),
            "{text}"
        );
    }

    #[test]
    fn hand_changes_are_found_first_and_only_force_overwrites_them() {
        let (_s1, b1, c1) = agent("leaf1", 11);
        let (_s2, b2, c2) = agent("leaf2", 12);
        let mut template = b1.health();
        template.frr_hand_changes = vec!["+ip route 10.99.0.0/24 Null0".into()];
        b1.stale_until_refreshed(template);
        b1.release_refresh();
        let fleet = client(vec![c1.clone(), c2.clone()], TOKEN);
        let targets = vec![(&c1, c1.health.listen), (&c2, c2.health.listen)];
        let found = hand_changed(&fleet, &targets);
        assert_eq!(
            found,
            vec![HandChanged {
                node: "leaf1".into(),
                hand_changes: vec!["+ip route 10.99.0.0/24 Null0".into()]
            }]
        );
        let text = refusal(&found);
        assert!(
            text.starts_with(
                "leaf1: hand-changed, 1 line; provision would overwrite:\n  +ip route"
            ),
            "{text}"
        );
        assert!(text.contains("--force"), "{text}");
        assert!(b1.applied().is_empty() && b2.applied().is_empty());
        // The lab file says it now (`lab save`, then the node's frr lines):
        // nothing would be lost.
        let mut saved = c1.clone();
        saved.frr = Some("ip route 10.99.0.0/24 Null0\n".into());
        assert!(hand_changed(&fleet, &[(&saved, c1.health.listen)]).is_empty());

        push_all(&fleet, &targets, Duration::from_secs(5), false, true);
        assert_eq!(b1.hand_modes(), [HandChanges::Drop]);
        assert!(hand_changed(&fleet, &targets).is_empty());
        push_all(&fleet, &targets, Duration::from_secs(5), false, false);
        assert_eq!(b2.hand_modes(), [HandChanges::Drop, HandChanges::Keep]);
    }

    #[test]
    fn refusals_and_rollbacks_are_reported() {
        let (_s, backend, config) = agent("leaf1", 11);
        let targets = vec![(&config, config.health.listen)];

        let wrong = client(vec![config.clone()], "wrong");
        let results = push_all(&wrong, &targets, Duration::from_secs(2), false, false);
        assert!(
            matches!(&results[0].outcome, Outcome::Refused { error } if error.contains("401")),
            "{:?}",
            results[0]
        );

        let before = backend.current_version().unwrap();
        backend.fail_next(ConfigAnswer::RolledBack {
            error: "applying failed: FRR refused frr.conf".into(),
            rolled_back_to: before.clone(),
        });
        let fleet = client(vec![config.clone()], TOKEN);
        let results = push_all(&fleet, &targets, Duration::from_secs(2), false, false);
        assert_eq!(
            results[0].outcome,
            Outcome::RolledBack {
                error: "applying failed: FRR refused frr.conf".into(),
                rolled_back_to: before.clone()
            }
        );
        assert_eq!(backend.current_version(), Some(before.clone()));

        backend.fail_next(ConfigAnswer::RollbackFailed {
            error: "applying failed: FRR refused frr.conf".into(),
            rolled_back_to: before.clone(),
            rollback_error: "eth4: No such device".into(),
        });
        let results = push_all(&fleet, &targets, Duration::from_secs(2), false, false);
        assert_eq!(
            results[0].outcome,
            Outcome::RollbackFailed {
                error: "applying failed: FRR refused frr.conf".into(),
                rolled_back_to: before.clone(),
                rollback_error: "eth4: No such device".into(),
            }
        );
        assert!(summary(&results).contains("ROLLBACK FAILED"), "{}", summary(&results));
        backend.fail_next(ConfigAnswer::NoPreviousConfig { error: "applying failed".into() });
        let results = push_all(&fleet, &targets, Duration::from_secs(2), false, false);
        assert_eq!(results[0].outcome, Outcome::Failed { error: "applying failed".into() });
    }

    /// A 200 that is not the agent's answer is no success.
    #[test]
    fn a_garbled_answer_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for body in [r#"{"applied": true}"#, "OK", r#"{"result": "rolled_back"}"#] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 8192];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                std::io::Write::write_all(&mut stream, answer.as_bytes()).unwrap();
            }
        });
        let mut config = node("leaf1", "leaf", 65001, 11, None);
        config.health.listen = addr;
        let fleet = client(vec![config.clone()], TOKEN);
        for _ in 0..3 {
            let err = fleet.push(&config, addr, false).unwrap_err();
            assert!(
                matches!(err, ClientError::Garbled { .. }),
                "a garbled 200 must be an error: {err}"
            );
        }
        server.join().unwrap();
    }

    #[test]
    fn status_calls_a_node_on_another_config_stale() {
        let (_s, _backend, config) = agent("leaf1", 11);
        let fleet = client(vec![config.clone()], TOKEN);
        let statuses = crate::status::collect(&fleet, &[&config]);
        assert!(statuses[0].reachable);
        assert!(!statuses[0].healthy, "{:?}", statuses[0]);
        assert!(statuses[0].problems[0].contains("run pi-lab provision"), "{:?}", statuses[0]);
        push_all(&fleet, &[(&config, config.health.listen)], Duration::from_secs(2), false, false);
        let statuses = crate::status::collect(&fleet, &[&config]);
        assert!(statuses[0].healthy, "{:?}", statuses[0].problems);
        let table = crate::status::render(&statuses);
        assert!(table.starts_with("NODE"), "{table}");
        assert!(table.contains("leaf1  127.0.0.1  yes"), "{table}");
    }

    #[test]
    fn zero_touch_finds_a_fresh_board_by_serial_and_provisions_it() {
        use node_agent::health::{Plane, PlaneOptions};
        use node_agent::identity::Paths;

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("boot")).unwrap();
        let announce_port =
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::write(dir.join("boot/controller"), format!("127.0.0.1:{announce_port}")).unwrap();
        let bootstrap = dir.join("bootstrap.sha256");
        std::fs::write(&bootstrap, Auth::from_token(TOKEN).token_sha256).unwrap();

        // A fresh board: no config, its serial in the device tree.
        let mut template = report();
        template.board.serial = Some("00000000a1b2c3d4".into());
        template.reconcile.ok = true;
        template.reconcile.last_run_age_seconds = Some(3);
        let backend = Arc::new(MemoryBackend::new(None, template, ReconcileStats::default()));
        let api_port = closed_port().port();
        let mut server = ServerConfig::new(format!("0.0.0.0:{api_port}").parse().unwrap());
        server.bootstrap_files = vec![bootstrap];
        let options = PlaneOptions {
            server,
            paths: Paths { boot_dir: dir.join("boot") },
            announce: true,
            announce_interval: Duration::from_millis(100),
            tick: Duration::from_millis(100),
            ..PlaneOptions::default()
        };
        let plane = Plane::start(backend.clone() as Arc<dyn Backend>, options).unwrap();

        // The lab knows the board by serial and gives it its own address.
        let mut config = node("leaf1", "leaf", 65001, 11, None);
        config.identity.serial = Some("A1B2C3D4".into());
        config.auth = Auth::from_token(TOKEN);
        config.health.listen = format!("127.0.0.2:{api_port}").parse().unwrap();
        let config = config.with_version();
        let mut stranger = node("leaf2", "leaf", 65002, 12, None);
        stranger.identity.serial = Some("ffffffff".into());

        let fleet = client(vec![config.clone(), stranger.clone()], TOKEN);
        let targets =
            discovered(&fleet, &[&config, &stranger], announce_port, Duration::from_millis(800))
                .unwrap();
        assert_eq!(targets[0].1, format!("127.0.0.1:{api_port}").parse().unwrap());
        assert_eq!(targets[1].1, stranger.health.listen, "not heard: the lab's address");

        let results = push_all(&fleet, &targets[..1], Duration::from_secs(5), false, false);
        assert_eq!(
            results[0].outcome,
            Outcome::Applied { version: config.version.clone(), changes: 5 }
        );
        assert_eq!(backend.current_version(), Some(config.version.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while plane.listening() != Some(config.health.listen)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(plane.listening(), Some(config.health.listen), "the API moved to its address");
        drop(plane);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
