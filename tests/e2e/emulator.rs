//! One system emulator at a time. An emulated Pi 3B keeps a host core busy
//! (TCG, one thread); two labs or boot tests at once on a 2-core machine
//! make every board miss its deadline. Every test that starts
//! `qemu-system-aarch64` first takes the emulator turn: an exclusive
//! `flock` on one file under `target/`, so the rule holds across test
//! threads and across test processes (two `cargo test` runs, nextest).

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{prerequisites, workspace};

/// Held while a test runs emulators; dropping it lets the next one go.
pub struct EmulatorTurn {
    // Closing the file releases the lock.
    _lock: File,
    test: String,
    since: Instant,
}

impl Drop for EmulatorTurn {
    fn drop(&mut self) {
        eprintln!(
            "{}: emulator turn over after {:.0} s",
            self.test,
            self.since.elapsed().as_secs_f64()
        );
    }
}

fn lock_path() -> PathBuf {
    workspace().join("target/e2e-emulator.lock")
}

/// Who holds the turn now, as written by the holder.
fn holder_path() -> PathBuf {
    workspace().join("target/e2e-emulator.holder")
}

/// Waits for the emulator turn, saying whom it waits for.
pub fn emulator_turn(test: &str) -> EmulatorTurn {
    std::fs::create_dir_all(workspace().join("target")).unwrap();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path())
        .unwrap_or_else(|e| panic!("{test}: cannot open {}: {e}", lock_path().display()));
    let asked = Instant::now();
    if lock.try_lock().is_err() {
        let holder = std::fs::read_to_string(holder_path()).unwrap_or_default();
        eprintln!("{test}: waiting for the emulator turn, held by {}", holder.trim());
        lock.lock().unwrap_or_else(|e| panic!("{test}: emulator lock: {e}"));
    }
    let waited = asked.elapsed().as_secs_f64();
    let mut holder = File::create(holder_path()).unwrap();
    let _ = writeln!(holder, "{test} (pid {}), waited {waited:.0} s for it", std::process::id());
    eprintln!("{test}: has the emulator turn (waited {waited:.0} s)");
    EmulatorTurn { _lock: lock, test: test.to_string(), since: Instant::now() }
}

/// Command lines of this workspace's running emulators (tests start them
/// with files under `target/`).
fn our_emulators() -> Vec<String> {
    let target = workspace().join("target").canonicalize().unwrap().display().to_string();
    let ps = Command::new("ps").args(["-eo", "pid=,args="]).output().unwrap();
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains("qemu-system-") && l.contains(&target))
        .map(str::to_string)
        .collect()
}

/// A real emulator, paused at reset (no kernel to run), for a moment.
fn run_an_emulator(test: &str, marker: &std::path::Path) -> (Instant, Instant) {
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-aarch64")
        .args(["-M", "raspi3b", "-m", "1G", "-display", "none", "-monitor", "none"])
        .args(["-serial", "null", "-S", "-name"])
        .arg(marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let others: Vec<String> = our_emulators()
        .into_iter()
        .filter(|l| !l.contains(&marker.display().to_string()))
        .collect();
    let alive = qemu.try_wait().unwrap().is_none();
    let _ = qemu.kill();
    let _ = qemu.wait();
    assert!(alive, "{test}: qemu-system-aarch64 -M raspi3b -S exited at once");
    assert!(others.is_empty(), "{test}: other emulators ran during my turn: {others:?}");
    (started, Instant::now())
}

/// The harness itself: two tests that each need an emulator, started at
/// once, run one after the other; while one holds the turn, another
/// process (flock(1), an independent tool) cannot take it.
#[test]
fn emulator_tests_take_turns() {
    let tools = ["qemu-system-aarch64", "flock"];
    if !prerequisites("emulator_tests_take_turns", false, &tools) {
        return;
    }
    let dir = workspace().join("target/e2e-emulator-harness");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let gate = std::sync::Barrier::new(2);
    let runs: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let one = |name: &'static str| {
            let (gate, dir) = (&gate, &dir);
            s.spawn(move || {
                gate.wait();
                let test = format!("emulator_tests_take_turns/{name}");
                let _turn = emulator_turn(&test);
                let busy = Command::new("flock")
                    .args(["--nonblock", "--conflict-exit-code", "75"])
                    .arg(lock_path())
                    .arg("true")
                    .status()
                    .unwrap();
                assert_eq!(busy.code(), Some(75), "{test}: another process took the turn I hold");
                run_an_emulator(&test, &dir.join(name))
            })
        };
        let (a, b) = (one("a"), one("b"));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let (first, second) =
        if runs[0].0 <= runs[1].0 { (runs[0], runs[1]) } else { (runs[1], runs[0]) };
    assert!(
        first.1 <= second.0,
        "the two emulators overlapped: the second started {:?} before the first ended",
        first.1 - second.0
    );
}
