//! Fault tests (`[[validate]]` with `fault` and `recover`): once the
//! test's check passes, break what the test says (a link end set down, as
//! `lab link` does), watch the check come back, and mend the fault again,
//! also when the check never comes back and on Ctrl-C.
//!
//! Recovery is measured, not guessed: from the cut, the check is started
//! every [`POLL`] on every node of the test, each run in its own thread so
//! a slow failure (a ping waiting for its answer) does not hide the next
//! one. A run is timed by when it started (a ping's echo leaves then). The
//! check "broke after" the first run that failed and "recovered after" the
//! first run that passed with no failure after it; it must recover within
//! `recover` seconds and then keep passing for [`HOLD`].

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab_spec::lab::{Fault, TestCheck, TestFault, TestSpec};
use serde::Serialize;

use super::checks::{Check, Kind, Verdict};
use super::lab_tests::{self, Outcome};
use crate::fleet_client::FleetClient;
use crate::interrupt::Interrupt;
use crate::runner::{Runner, UNREACHABLE};

/// How often the check starts during the watch.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a recovered check must keep passing.
pub const HOLD: Duration = Duration::from_secs(2);
/// How long a mended link gets to be up again (carrier on both ends).
const RESTORE: Duration = Duration::from_secs(10);

/// What one node's check did after the fault, in seconds from the fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    /// What was broken: `link spine1:eth1 down`.
    pub fault: String,
    /// The first failed run; `None`: it never failed.
    pub broke_after: Option<f64>,
    /// The first passing run with no failure after it; `None`: it did not
    /// pass again.
    pub recovered_after: Option<f64>,
    /// The time it had (`recover`).
    pub within: u32,
    /// How long it was watched, and how many runs.
    pub watched: f64,
    pub runs: usize,
}

/// One run of the check during the watch.
#[derive(Debug, Clone)]
struct Run {
    started: Duration,
    outcome: Outcome,
}

/// Run a fault test: the check as usual first (with `wait`), then the
/// fault, the watch and the repair. One check per node, and one for the
/// repair.
pub fn run(
    fleet: &FleetClient,
    runner: Option<&dyn Runner>,
    test: &TestSpec,
    fault: &TestFault,
    only: &[String],
    interrupt: &Interrupt,
) -> Vec<Check> {
    let before = lab_tests::run_test(fleet, runner, test, only);
    if before.is_empty() || before.iter().any(|c| c.verdict != Verdict::Pass) {
        return before.into_iter().map(|c| not_ready(c, &fault.fault)).collect();
    }
    let Some(runner) = runner else {
        return vec![repair_check(test, &fault.fault, Err(UNREACHABLE.into()))];
    };
    let nodes: Vec<String> = before.iter().map(|c| c.node.clone()).collect();
    let cut = Instant::now();
    let made = make(runner, &fault.fault, false);
    let (runs, watched) = match &made {
        Ok(()) => watch(fleet, runner, &poll_check(&test.check), &nodes, fault, cut, interrupt),
        Err(_) => (BTreeMap::new(), Duration::ZERO),
    };
    // Mend it whatever happened, and say so.
    let repair = make(runner, &fault.fault, true).and_then(|()| verify(runner, &fault.fault));
    let mut checks: Vec<Check> = nodes
        .iter()
        .map(|node| {
            let outcome = match (&made, runs.get(node)) {
                (Err(e), _) => Outcome::Fail(format!("could not make the fault: {e}")),
                (Ok(()), runs) => {
                    let runs = runs.map(Vec::as_slice).unwrap_or_default();
                    judge_runs(runs, fault, watched, interrupt.is_set())
                }
            };
            let mut check = lab_tests::judge(test, node, outcome);
            check.recovery = made.is_ok().then(|| recovery(runs.get(node), fault, watched));
            check
        })
        .collect();
    checks.push(repair_check(test, &fault.fault, repair));
    checks
}

/// A failing check before the fault: nothing was broken.
fn not_ready(mut check: Check, fault: &Fault) -> Check {
    if check.verdict != Verdict::Pass {
        check.detail = format!("before the fault ({fault} not made): {}", check.detail);
    }
    check
}

/// The check as it runs during the watch: a ping sends one echo, so a
/// run is timed by that echo.
fn poll_check(check: &TestCheck) -> TestCheck {
    match check {
        TestCheck::Ping { to, af, .. } => TestCheck::Ping { to: to.clone(), count: 1, af: *af },
        other => other.clone(),
    }
}

/// Make the fault (`mend`: undo it).
fn make(runner: &dyn Runner, fault: &Fault, mend: bool) -> Result<(), String> {
    match fault {
        Fault::Link(end) => {
            runner.set_link(&end.node, &end.interface, mend).map_err(|e| e.to_string())
        }
        Fault::Routing { node, .. } => runner.set_routing(node, mend).map_err(|e| e.to_string()),
    }
}

/// Is the mended fault gone, within [`RESTORE`]? A link end must be up
/// with its carrier (so its peer is up too); routing must run.
fn verify(runner: &dyn Runner, fault: &Fault) -> Result<(), String> {
    let end = match fault {
        Fault::Link(end) => end,
        Fault::Routing { node, .. } => return verify_routing(runner, node),
    };
    let started = Instant::now();
    loop {
        let state = link_state(runner, &end.node, &end.interface);
        match &state {
            Ok(s) if s == "UP" => return Ok(()),
            _ if started.elapsed() >= RESTORE => {
                let found = state.unwrap_or_else(|e| e);
                return Err(format!(
                    "{end} is not up again after {} s ({found})",
                    RESTORE.as_secs()
                ));
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

fn verify_routing(runner: &dyn Runner, node: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match runner.routing_runs(node) {
            Ok(true) => return Ok(()),
            found if started.elapsed() >= RESTORE => {
                let found = found.map_or_else(|e| e.to_string(), |_| "not running".into());
                let secs = RESTORE.as_secs();
                return Err(format!(
                    "routing on {node} is not running again after {secs} s ({found})"
                ));
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

/// The kernel's operational state of `port` (`UP`, `DOWN`,
/// `LOWERLAYERDOWN`), with `admin down` when its admin flag is off.
fn link_state(runner: &dyn Runner, node: &str, port: &str) -> Result<String, String> {
    let shown = runner
        .checked(node, &["ip", "-j", "link", "show", "dev", port], false)
        .map_err(|e| e.to_string())?;
    let links: serde_json::Value =
        serde_json::from_str(&shown).map_err(|e| format!("ip -j link: {e}"))?;
    let link = &links[0];
    let admin_up = link["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "UP"));
    let operstate = link["operstate"].as_str().unwrap_or("UNKNOWN").to_string();
    Ok(if admin_up { operstate } else { format!("admin down, {operstate}") })
}

/// Start the check on every node every [`POLL`] from `cut` until each has
/// broken, recovered and held for [`HOLD`], or `recover` + [`HOLD`] has
/// passed, or Ctrl-C. Every run started is waited for.
fn watch(
    fleet: &FleetClient,
    runner: &dyn Runner,
    check: &TestCheck,
    nodes: &[String],
    fault: &TestFault,
    cut: Instant,
    interrupt: &Interrupt,
) -> (BTreeMap<String, Vec<Run>>, Duration) {
    let window = Duration::from_secs(u64::from(fault.recover)) + HOLD;
    let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(String, Run)>();
        loop {
            let started = cut.elapsed();
            if started >= window || interrupt.is_set() {
                break;
            }
            for node in nodes {
                let tx = tx.clone();
                scope.spawn(move || {
                    let outcome = lab_tests::check_on(fleet, Some(runner), check, node);
                    let _ = tx.send((node.clone(), Run { started, outcome }));
                });
            }
            std::thread::sleep(POLL);
            for (node, run) in rx.try_iter() {
                runs.entry(node).or_default().push(run);
            }
            if nodes.iter().all(|n| runs.get(n).is_some_and(|r| settled(r))) {
                break;
            }
        }
        drop(tx);
        for (node, run) in rx.iter() {
            runs.entry(node).or_default().push(run);
        }
    });
    for list in runs.values_mut() {
        list.sort_by_key(|r| r.started);
    }
    (runs, cut.elapsed())
}

/// Broke, recovered, and passed for [`HOLD`] since.
fn settled(runs: &[Run]) -> bool {
    let (broke, recovered) = times(runs);
    let last_pass = runs.iter().filter(|r| passed(r)).map(|r| r.started).max();
    match (broke, recovered, last_pass) {
        (Some(_), Some(rec), Some(last)) => last.saturating_sub(rec) >= HOLD,
        _ => false,
    }
}

fn passed(run: &Run) -> bool {
    matches!(run.outcome, Outcome::Pass(_) | Outcome::Skip(_))
}

/// When the check first failed, and when it passed with no failure after.
fn times(runs: &[Run]) -> (Option<Duration>, Option<Duration>) {
    let broke = runs.iter().filter(|r| !passed(r)).map(|r| r.started).min();
    let last_fail = runs.iter().filter(|r| !passed(r)).map(|r| r.started).max();
    let recovered = runs
        .iter()
        .filter(|r| passed(r) && last_fail.is_none_or(|f| r.started > f))
        .map(|r| r.started)
        .min();
    (broke, recovered)
}

/// The verdict of one node's runs.
fn judge_runs(runs: &[Run], fault: &TestFault, watched: Duration, interrupted: bool) -> Outcome {
    let within = fault.recover;
    let (broke, recovered) = times(runs);
    let broke_text =
        broke.map_or("never broke".to_string(), |b| format!("broke after {}", secs(b)));
    let last = runs.last().map(|r| match &r.outcome {
        Outcome::Pass(s) | Outcome::Fail(s) | Outcome::Skip(s) => s.clone(),
    });
    if interrupted {
        return Outcome::Fail(format!(
            "interrupted {} after {}: {broke_text}",
            fault.fault,
            secs(watched)
        ));
    }
    if runs.is_empty() {
        return Outcome::Fail("the check never ran after the fault".into());
    }
    if runs.iter().all(|r| matches!(r.outcome, Outcome::Skip(_))) {
        return Outcome::Skip(last.unwrap_or_default());
    }
    match recovered {
        Some(_) if broke.is_none() => Outcome::Pass(format!(
            "{}: never broke ({} runs in {})",
            fault.fault,
            runs.len(),
            secs(watched)
        )),
        Some(rec) if rec <= Duration::from_secs(u64::from(within)) => Outcome::Pass(format!(
            "{}: {broke_text}, recovered after {} (within {within} s)",
            fault.fault,
            secs(rec)
        )),
        Some(rec) => Outcome::Fail(format!(
            "{}: {broke_text}, recovered only after {} (allowed {within} s)",
            fault.fault,
            secs(rec)
        )),
        None => Outcome::Fail(format!(
            "{}: {broke_text}, not recovered within {within} s (still failing after {}): {}",
            fault.fault,
            secs(watched),
            last.unwrap_or_default()
        )),
    }
}

fn recovery(runs: Option<&Vec<Run>>, fault: &TestFault, watched: Duration) -> Recovery {
    let runs = runs.map(Vec::as_slice).unwrap_or_default();
    let (broke, recovered) = times(runs);
    let round = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    Recovery {
        fault: fault.fault.to_string(),
        broke_after: broke.map(round),
        recovered_after: recovered.map(round),
        within: fault.recover,
        watched: round(watched),
        runs: runs.len(),
    }
}

/// `1.4 s`.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The repair, as a check of its own: a fault left behind must be seen.
fn repair_check(test: &TestSpec, fault: &Fault, repaired: Result<(), String>) -> Check {
    let (node, mended, by_hand) = match fault {
        Fault::Link(end) => (
            &end.node,
            format!("{end} is up again, with its carrier"),
            format!("pi-lab lab link FILE {end} up"),
        ),
        Fault::Routing { node, .. } => (
            node,
            format!("routing on {node} runs again"),
            format!(
                "on a board `systemctl unmask --runtime frr.service; systemctl start \
                 frr.service` (pi-lab lab connect FILE {node} -- ...), on a virtual fleet \
                 `ip netns exec LAB-{node} /usr/lib/frr/frrinit.sh start LAB-{node}`"
            ),
        ),
    };
    let (ok, detail) = match repaired {
        Ok(()) => (true, mended),
        Err(e) => (false, format!("{e}; mend it by hand: {by_hand}")),
    };
    Check::new(Kind::Test, node, format!("{}: mend {fault}", test.name), ok, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_spec::lab::Endpoint;

    fn run(ms: u64, ok: bool) -> Run {
        let outcome = if ok { Outcome::Pass("ok".into()) } else { Outcome::Fail("lost".into()) };
        Run { started: Duration::from_millis(ms), outcome }
    }

    fn fault(recover: u32) -> TestFault {
        let end =
            Endpoint { node: "spine1".into(), interface: "eth1".into(), spans: Default::default() };
        TestFault { fault: Fault::Link(end), recover }
    }

    #[test]
    fn recovery_is_the_first_pass_after_the_last_failure() {
        // A pass between failures (ECMP hashing a run onto the good path)
        // is not a recovery.
        let runs = [run(0, true), run(200, false), run(400, true), run(600, false), run(800, true)];
        let (broke, recovered) = times(&runs);
        assert_eq!(broke, Some(Duration::from_millis(200)));
        assert_eq!(recovered, Some(Duration::from_millis(800)));
        let out = judge_runs(&runs, &fault(5), Duration::from_secs(3), false);
        assert_eq!(
            out,
            Outcome::Pass(
                "link spine1:eth1 down: broke after 0.2 s, recovered after 0.8 s (within 5 s)"
                    .into()
            )
        );
    }

    #[test]
    fn too_late_or_never_fails_and_never_broken_passes() {
        let late = [run(0, false), run(1200, true)];
        let out = judge_runs(&late, &fault(1), Duration::from_secs(3), false);
        assert!(
            matches!(&out, Outcome::Fail(s) if s.contains("recovered only after 1.2 s (allowed 1 s)")),
            "{out:?}"
        );
        let never = [run(0, false), run(200, false)];
        let out = judge_runs(&never, &fault(1), Duration::from_secs(3), false);
        assert!(
            matches!(&out, Outcome::Fail(s) if s.contains("not recovered within 1 s (still failing after 3.0 s): lost")),
            "{out:?}"
        );
        let fine = [run(0, true), run(200, true)];
        let out = judge_runs(&fine, &fault(1), Duration::from_secs(3), false);
        assert_eq!(
            out,
            Outcome::Pass("link spine1:eth1 down: never broke (2 runs in 3.0 s)".into())
        );
        let out = judge_runs(&fine, &fault(1), Duration::from_secs(1), true);
        assert!(matches!(&out, Outcome::Fail(s) if s.starts_with("interrupted")), "{out:?}");
    }

    #[test]
    fn the_watch_ends_once_the_check_held_after_recovering() {
        assert!(!settled(&[run(0, true), run(3000, true)]), "never broke: watch the whole time");
        assert!(!settled(&[run(0, false), run(200, true), run(1000, true)]));
        assert!(settled(&[run(0, false), run(200, true), run(2200, true)]));
    }

    #[test]
    fn a_ping_sends_one_echo_per_run() {
        let ping = TestCheck::Ping { to: "h2".into(), count: 3, af: None };
        assert_eq!(poll_check(&ping), TestCheck::Ping { to: "h2".into(), count: 1, af: None });
    }
}
