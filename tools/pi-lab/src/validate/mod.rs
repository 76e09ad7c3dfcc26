//! `pi-lab validate`: netlab-style checks that the lab works, derived from
//! the lab file — every BGP session Established, every VNI flooding to the
//! right VTEPs, hosts of each segment reaching each other, sFlow arriving
//! from every node — retried until a deadline and reported check by check.

pub mod checks;
pub mod probe;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fleet_client::FleetClient;
use crate::lab_file::{CompiledLab, LabFileError};
use crate::table::Table;
use checks::{Check, Reports, Verdict};
use probe::{PingVia, SflowListener};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab validate examples/fabric.toml
  pi-lab validate lab.toml --deadline 2m --json
  pi-lab validate lab.toml --ssh pi        # boards: ping between hosts over SSH

Reachability runs `ping` inside the virtual fleet's namespaces when the lab
runs as one; on boards it needs --ssh (no agent endpoint runs commands), and
is reported as skipped otherwise. sFlow is checked by listening on the
collector port; if that port is taken (a collector runs here), the agents'
own datagram counters are used instead, and the report says so.

Exit status: 0 every check passed (skipped ones do not fail), 1 a check
failed, 2 the checks could not run (bad lab file, no agent answered).")]
pub struct ValidateArgs {
    /// The lab file.
    pub file: PathBuf,
    /// Retry failing checks until this long has passed: 90, 60s, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ping between hosts over SSH as USER (boards).
    #[arg(long, value_name = "USER", num_args = 0..=1, default_missing_value = "root")]
    pub ssh: Option<String>,
    /// Skip the sFlow checks.
    #[arg(long)]
    pub no_sflow: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
}

/// The whole outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub attempts: u32,
    pub seconds: f64,
    /// Set when nothing could be checked.
    pub could_not_run: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn exit_code(&self) -> ExitCode {
        if self.could_not_run.is_some() {
            ExitCode::from(2)
        } else if self.failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode, ValidateError> {
    let lab = CompiledLab::load(&args.file)?;
    let fleet = FleetClient::open(&lab, Duration::from_secs(5));
    let report = validate(&fleet, args);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", render(&report));
    }
    Ok(report.exit_code())
}

/// Run every check, retrying the failing ones until they pass or the
/// deadline passes.
pub fn validate(fleet: &FleetClient, args: &ValidateArgs) -> Report {
    let started = Instant::now();
    let configs: Vec<_> = fleet.nodes.values().collect();
    let pings = checks::pings(fleet);
    let via = PingVia::choose(fleet, args.ssh.as_deref());
    let sflow_wanted = !args.no_sflow && !checks::sflow_agents(fleet).is_empty();
    let listener = sflow_wanted.then(|| sflow_port(fleet).map(SflowListener::start));
    let why_no_socket = match &listener {
        Some(Some(Err(e))) => Some(format!("collector port busy or closed ({e})")),
        Some(None) => Some("the lab names no sFlow collector port".to_string()),
        _ => None,
    };
    let mut sent_at_start: Option<BTreeMap<String, u64>> = None;
    let mut done: BTreeMap<String, Check> = BTreeMap::new();
    let mut attempts = 0;
    let mut latest: Vec<Check>;
    loop {
        attempts += 1;
        let reports: Reports = configs
            .iter()
            .zip(fleet.health_all(&configs))
            .map(|(c, r)| (c.hostname.clone(), r.map_err(|e| e.to_string())))
            .collect();
        if attempts == 1 && !reports.is_empty() && reports.values().all(|r| r.is_err()) {
            let why = reports.values().find_map(|r| r.as_ref().err()).cloned().unwrap_or_default();
            return Report {
                lab: fleet.lab.clone(),
                passed: 0,
                failed: 0,
                skipped: 0,
                attempts,
                seconds: started.elapsed().as_secs_f64(),
                could_not_run: Some(format!(
                    "no agent of the lab answered (e.g. {why}); is the lab up?"
                )),
                checks: Vec::new(),
            };
        }
        let sent = datagrams_sent(&reports);
        let start = sent_at_start.get_or_insert_with(|| sent.clone());
        let counted: BTreeMap<String, u64> = sent
            .iter()
            .map(|(n, v)| (n.clone(), v.saturating_sub(start.get(n).copied().unwrap_or(0))))
            .collect();

        latest = checks::bgp(fleet, &reports);
        latest.extend(checks::vxlan(fleet, &reports));
        latest.extend(run_pings(fleet, &via, &pings, &done));
        if sflow_wanted {
            let heard = match &listener {
                Some(Some(Ok(l))) => Some(l.heard()),
                _ => None,
            };
            latest.extend(checks::sflow(fleet, heard.as_ref(), &counted, why_no_socket.as_deref()));
        }
        for check in &latest {
            if check.verdict != Verdict::Fail {
                done.insert(key(check), check.clone());
            }
        }
        let failing =
            latest.iter().any(|c| c.verdict == Verdict::Fail && !done.contains_key(&key(c)));
        if !failing || started.elapsed() >= args.deadline {
            break;
        }
        std::thread::sleep(
            Duration::from_secs(2).min(args.deadline.saturating_sub(started.elapsed())),
        );
    }
    // A check that passed at any attempt counts as passed.
    let checks: Vec<Check> =
        latest.into_iter().map(|c| done.get(&key(&c)).cloned().unwrap_or(c)).collect();
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    Report {
        lab: fleet.lab.clone(),
        passed: count(Verdict::Pass),
        failed: count(Verdict::Fail),
        skipped: count(Verdict::Skip),
        attempts,
        seconds: started.elapsed().as_secs_f64(),
        could_not_run: None,
        checks,
    }
}

fn key(check: &Check) -> String {
    format!("{}|{}", check.kind, check.name)
}

/// Pings that have not passed yet, all at once.
fn run_pings(
    fleet: &FleetClient,
    via: &PingVia,
    pings: &[checks::Ping],
    done: &BTreeMap<String, Check>,
) -> Vec<Check> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = pings
            .iter()
            .map(|p| {
                let previous =
                    done.get(&format!("{}|{}", checks::Kind::Reachability, p.name())).cloned();
                scope.spawn(move || previous.unwrap_or_else(|| probe::ping(fleet, via, p)))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// The port of the lab's sFlow collectors (the controller listens there).
fn sflow_port(fleet: &FleetClient) -> Option<u16> {
    fleet.nodes.values().flat_map(|c| c.sflow.collectors.iter()).map(|c| c.port()).next()
}

fn datagrams_sent(reports: &Reports) -> BTreeMap<String, u64> {
    reports
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|r| (n.clone(), r.sflow.datagrams_sent)))
        .collect()
}

/// The report: one line per check, then the failures again at the end
/// where a reader looks first.
pub fn render(report: &Report) -> String {
    if let Some(why) = &report.could_not_run {
        return format!("validate {}: could not run: {why}\n", report.lab);
    }
    let rows = report.checks.iter().map(|c| {
        let verdict = match c.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        [verdict.to_string(), c.kind.to_string(), c.name.clone(), c.detail.clone()]
    });
    let mut out = Table::new(["RESULT", "CHECK", "WHAT", "FOUND"]).with_rows(rows).to_string();
    out.push_str(&format!(
        "\nvalidate {}: {} passed, {} failed, {} skipped ({} attempts in {:.0}s)\n",
        report.lab, report.passed, report.failed, report.skipped, report.attempts, report.seconds
    ));
    let failed: Vec<&Check> = report.checks.iter().filter(|c| c.verdict == Verdict::Fail).collect();
    if !failed.is_empty() {
        out.push_str("failed checks:\n");
        for c in failed {
            out.push_str(&format!("  {} {}: {}\n", c.kind, c.name, c.detail));
        }
    }
    out
}

/// `90`, `60s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 90, 60s, 2m"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unit"));
    }

    #[test]
    fn report_names_failed_checks_and_sets_the_exit_code() {
        let check = |verdict, name: &str| Check {
            kind: checks::Kind::Bgp,
            name: name.into(),
            verdict,
            detail: "Active (want Established)".into(),
        };
        let report = Report {
            lab: "t5".into(),
            passed: 1,
            failed: 1,
            skipped: 0,
            attempts: 3,
            seconds: 6.0,
            could_not_run: None,
            checks: vec![
                check(Verdict::Pass, "leaf1 -> spine1"),
                check(Verdict::Fail, "leaf1 -> spine2"),
            ],
        };
        let text = render(&report);
        assert!(
            text.contains("failed checks:\n  bgp leaf1 -> spine2: Active (want Established)"),
            "{text}"
        );
        assert_eq!(report.exit_code(), ExitCode::from(1));
        let none = Report { failed: 0, checks: vec![], ..report.clone() };
        assert_eq!(none.exit_code(), ExitCode::SUCCESS);
        let broken = Report { could_not_run: Some("x".into()), ..report };
        assert_eq!(broken.exit_code(), ExitCode::from(2));
    }
}
