//! `pi-lab validate`: netlab-style checks that the lab works. First those
//! derived from the lab file — every BGP session Established, every OSPF
//! neighbour Full and IS-IS adjacency Up, every VNI flooding to the right
//! VTEPs, hosts of each segment reaching each other, sFlow arriving from
//! every node — retried until a deadline; then the lab's own tests
//! (`[[validate]]`), in order; a fault test breaks something and times
//! the check's recovery ([`faults`]). Exit codes as netlab's: 0 all
//! passed, 1 a check failed, 2 nothing usable ran, 3 only warnings.

pub mod checks;
pub mod faults;
pub mod lab_tests;
pub mod probe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fleet_client::FleetClient;
use crate::interrupt::Interrupt;
use crate::lab_file::{CompiledLab, LabFileError};
use crate::runner::Runner;
use crate::table::Table;
use checks::{Check, Reports, Verdict};
use lab_spec::lab::TestSpec;
use probe::SflowListener;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab validate examples/fabric.toml
  pi-lab validate lab.toml --deadline 2m --json
  pi-lab validate lab.toml --ssh pi        # boards: pings and commands over SSH
  pi-lab validate lab.toml --list          # the lab's own tests
  pi-lab validate lab.toml --test evpn --node leaf1
  sudo pi-lab validate examples/fabric.toml --test spine1-leaf1-cut --json
                                           # a fault test: cuts a link, times the recovery

Pings, routes, commands and vtysh run inside the virtual fleet's
namespaces when the lab runs as one; on boards (emulated ones too) they run
over SSH with --ssh USER (no agent endpoint runs commands), and are
reported as skipped otherwise. Sessions and adjacencies come from the
agents. sFlow is checked by listening on the collector port; if that port
is taken (a collector runs here), the agents' own datagram counters are
used instead, and the report says so.

Exit status (netlab's): 0 every check passed (skipped ones do not fail),
1 a check failed, 2 no usable check ran or validate could not run (bad lab
file, unknown test, no agent answered), 3 only warnings.")]
pub struct ValidateArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Retry failing checks until this long has passed: 90, 60s, 1m30s.
    #[arg(long, default_value = "60s", value_parser = lab_spec::duration::parse)]
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
    /// List the lab's own tests and exit.
    #[arg(long)]
    pub list: bool,
    /// Run only this test of the lab's (repeatable); skips the derived checks.
    #[arg(long = "test", value_name = "NAME")]
    pub tests: Vec<String>,
    /// Check only these nodes (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("cannot catch Ctrl-C, which must mend a fault test's fault: {0}")]
    Signals(std::io::Error),
}

/// The whole outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub passed: usize,
    pub failed: usize,
    /// Failures of tests whose level is `warning`.
    pub warnings: usize,
    pub skipped: usize,
    pub attempts: u32,
    pub seconds: f64,
    /// Set when nothing could be checked.
    pub could_not_run: Option<String>,
    /// Ctrl-C stopped it: the tests after the one running were not run.
    pub interrupted: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn exit_code(&self) -> ExitCode {
        if self.could_not_run.is_some() {
            ExitCode::from(2)
        } else if self.failed > 0 {
            ExitCode::from(1)
        } else if self.warnings > 0 {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        }
    }

    fn could_not_run(lab: &str, started: Instant, attempts: u32, why: String) -> Report {
        Report {
            lab: lab.to_string(),
            passed: 0,
            failed: 0,
            warnings: 0,
            skipped: 0,
            attempts,
            seconds: started.elapsed().as_secs_f64(),
            could_not_run: Some(why),
            interrupted: false,
            checks: Vec::new(),
        }
    }
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode, ValidateError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    let tests = &lab.lab.tests;
    if args.list {
        print!("{}", list(tests));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(unknown) = args.tests.iter().find(|t| !tests.iter().any(|x| x.name == **t)) {
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        let known = if names.is_empty() {
            "it has none".to_string()
        } else {
            format!("its tests are {}", names.join(", "))
        };
        eprintln!("error: lab {} has no test {unknown:?}; {known}", lab.name());
        return Ok(ExitCode::from(2));
    }
    let fleet = FleetClient::open(&lab, Duration::from_secs(5));
    fleet.select(&args.nodes)?;
    // A fault must be mended on Ctrl-C too: catch it, and stop at the
    // next safe point instead of dying with a link down.
    let faults = tests.iter().any(|t| t.fault.is_some() && picked(t, args));
    let interrupt = if faults {
        Interrupt::install().map_err(ValidateError::Signals)?
    } else {
        Interrupt::never()
    };
    let report = validate(&fleet, tests, args, &interrupt);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", render(&report));
    }
    Ok(report.exit_code())
}

/// The lab's tests, one line each.
pub fn list(tests: &[TestSpec]) -> String {
    if tests.is_empty() {
        return "the lab has no tests of its own ([[validate]]); validate runs the derived checks\n"
            .into();
    }
    let rows = tests.iter().map(|t| {
        let mut on: Vec<String> = t.nodes.clone();
        on.extend(t.roles.iter().map(|r| format!("role {r}")));
        let mut flags = Vec::new();
        if let Some(w) = t.wait {
            flags.push(format!("wait {w}s"));
        }
        if t.warning {
            flags.push("warning".into());
        }
        if let Some(f) = &t.fault {
            flags.push(format!("{}, recover {}s", f.fault, f.recover));
        }
        [
            t.name.clone(),
            t.check.kind().to_string(),
            on.join(", "),
            flags.join(", "),
            t.description.clone().unwrap_or_default(),
        ]
    });
    Table::new(["TEST", "CHECK", "NODES", "OPTIONS", "DESCRIPTION"]).with_rows(rows).to_string()
}

/// Run every derived check (unless `--test` picks the lab's tests),
/// retrying the failing ones until they pass or the deadline passes; then
/// the lab's tests, in order.
pub fn validate(
    fleet: &FleetClient,
    tests: &[TestSpec],
    args: &ValidateArgs,
    interrupt: &Interrupt,
) -> Report {
    let started = Instant::now();
    let runner = crate::runner::choose(fleet, args.ssh.as_deref());
    let runner = runner.as_deref();
    let picked: Vec<&TestSpec> = tests.iter().filter(|t| picked(t, args)).collect();
    let (mut checks, attempts) = if args.tests.is_empty() {
        match derived(fleet, runner, args, started) {
            Ok(done) => done,
            Err(report) => return *report,
        }
    } else {
        (Vec::new(), 0)
    };
    for test in picked {
        if interrupt.is_set() {
            break;
        }
        checks.extend(match &test.fault {
            Some(fault) => faults::run(fleet, runner, test, fault, &args.nodes, interrupt),
            None => lab_tests::run_test(fleet, runner, test, &args.nodes),
        });
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let mut report = Report {
        lab: fleet.lab.clone(),
        passed: count(Verdict::Pass),
        failed: count(Verdict::Fail),
        warnings: count(Verdict::Warn),
        skipped: count(Verdict::Skip),
        attempts,
        seconds: started.elapsed().as_secs_f64(),
        could_not_run: None,
        interrupted: interrupt.is_set(),
        checks,
    };
    if report.passed + report.failed + report.warnings == 0 {
        report.could_not_run = Some(if report.skipped > 0 {
            format!("no usable test: all {} checks were skipped", report.skipped)
        } else {
            "no usable test: the lab has nothing to check here".to_string()
        });
    }
    report
}

/// Does `--test` pick `test` (no `--test`: every test)?
fn picked(test: &TestSpec, args: &ValidateArgs) -> bool {
    args.tests.is_empty() || args.tests.contains(&test.name)
}

/// The checks derived from the lab, retried until the deadline; `Err`
/// when no agent answers.
fn derived(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    args: &ValidateArgs,
    started: Instant,
) -> Result<(Vec<Check>, u32), Box<Report>> {
    let only = |c: &Check| args.nodes.is_empty() || args.nodes.contains(&c.node);
    let configs: Vec<_> = fleet.nodes.values().collect();
    let pings = checks::pings(fleet);
    let sflow_wanted = !args.no_sflow && !checks::sflow_agents(fleet).is_empty();
    let listener = sflow_wanted.then(|| sflow_collector(fleet).map(SflowListener::start));
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
            let why = format!("no agent of the lab answered (e.g. {why}); is the lab up?");
            return Err(Box::new(Report::could_not_run(&fleet.lab, started, attempts, why)));
        }
        let sent = datagrams_sent(&reports);
        let start = sent_at_start.get_or_insert_with(|| sent.clone());
        let counted: BTreeMap<String, u64> = sent
            .iter()
            .map(|(n, v)| (n.clone(), sent_since(start.get(n).copied().unwrap_or(0), *v)))
            .collect();

        latest = checks::bgp(fleet, &reports);
        latest.extend(checks::igp(fleet, &reports));
        latest.extend(checks::vxlan(fleet, &reports));
        latest.extend(run_pings(runner, &pings, &done));
        if sflow_wanted {
            let heard = match &listener {
                Some(Some(Ok(l))) => Some(l.heard()),
                _ => None,
            };
            latest.extend(checks::sflow(fleet, heard.as_ref(), &counted, why_no_socket.as_deref()));
        }
        latest.retain(only);
        for check in &latest {
            if check.verdict != Verdict::Fail {
                done.insert(key(check), check.clone());
            }
        }
        let failing =
            latest.iter().any(|c| c.verdict == Verdict::Fail && !done.contains_key(&key(c)));
        if !failing || started.elapsed() >= args.deadline || crate::interrupt::requested() {
            break;
        }
        std::thread::sleep(
            Duration::from_secs(2).min(args.deadline.saturating_sub(started.elapsed())),
        );
    }
    // A check that passed at any attempt counts as passed.
    let checks: Vec<Check> =
        latest.into_iter().map(|c| done.get(&key(&c)).cloned().unwrap_or(c)).collect();
    Ok((checks, attempts))
}

fn key(check: &Check) -> String {
    format!("{}|{}", check.kind, check.name)
}

/// Pings that have not passed yet, all at once.
fn run_pings(
    runner: Option<&dyn Runner>,
    pings: &[checks::Ping],
    done: &BTreeMap<String, Check>,
) -> Vec<Check> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = pings
            .iter()
            .map(|p| {
                let previous =
                    done.get(&format!("{}|{}", checks::Kind::Reachability, p.name())).cloned();
                scope.spawn(move || previous.unwrap_or_else(|| probe::ping(runner, p)))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// The port of the lab's sFlow collectors (the controller listens there).
/// The lab's first collector: validate listens there.
fn sflow_collector(fleet: &FleetClient) -> Option<SocketAddr> {
    fleet.nodes.values().flat_map(|c| c.sflow.collectors.iter()).copied().next()
}

/// Datagrams an agent sent since it counted `start`. A count below
/// `start` is an agent that started again (its counters begin at 0), and
/// everything it counted since is new.
fn sent_since(start: u64, now: u64) -> u64 {
    if now < start { now } else { now - start }
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
            Verdict::Warn => "WARN",
            Verdict::Skip => "SKIP",
        };
        [verdict.to_string(), c.kind.to_string(), c.name.clone(), c.detail.clone()]
    });
    let mut out = Table::new(["RESULT", "CHECK", "WHAT", "FOUND"]).with_rows(rows).to_string();
    out.push_str(&format!(
        "\nvalidate {}: {} passed, {} failed, {} warnings, {} skipped ({} attempts in {:.0}s)\n",
        report.lab,
        report.passed,
        report.failed,
        report.warnings,
        report.skipped,
        report.attempts,
        report.seconds
    ));
    if report.interrupted {
        out.push_str("interrupted: the tests after the last one shown did not run\n");
    }
    for (verdict, title) in [(Verdict::Fail, "failed checks"), (Verdict::Warn, "warnings")] {
        let these: Vec<&Check> = report.checks.iter().filter(|c| c.verdict == verdict).collect();
        if !these.is_empty() {
            out.push_str(&format!("{title}:\n"));
            for c in these {
                out.push_str(&format!("  {} {}: {}\n", c.kind, c.name, c.detail));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_sent_count_again_from_zero_after_an_agent_restart() {
        assert_eq!(sent_since(10, 14), 4);
        assert_eq!(sent_since(10, 10), 0);
        // Restarted: 3 sent since, though below the count at the start.
        assert_eq!(sent_since(10, 3), 3);
    }

    #[test]
    fn report_names_failed_checks_and_sets_the_exit_code() {
        let check = |verdict, name: &str| Check {
            kind: checks::Kind::Bgp,
            node: "leaf1".into(),
            name: name.into(),
            verdict,
            detail: "Active (want Established)".into(),
            recovery: None,
        };
        let report = Report {
            lab: "t5".into(),
            passed: 1,
            failed: 1,
            warnings: 0,
            skipped: 0,
            attempts: 3,
            seconds: 6.0,
            could_not_run: None,
            interrupted: false,
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
        let warned = Report { failed: 0, warnings: 1, ..report.clone() };
        assert_eq!(warned.exit_code(), ExitCode::from(3));
        let broken = Report { could_not_run: Some("x".into()), ..report };
        assert_eq!(broken.exit_code(), ExitCode::from(2));
    }
}
