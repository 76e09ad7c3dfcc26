//! Steps of the build: the progress display, Ctrl-C, and child programs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::ImageError;
use crate::interrupt::Interrupt;

/// Ctrl-C for the build: pi-lab's one interrupt flag
/// ([`crate::interrupt`]), read as [`ImageError::Interrupted`]. Every step
/// checks it and stops cleanly, so the guards remove temporary files.
#[derive(Debug, Clone)]
pub struct Cancel(Interrupt);

impl Cancel {
    pub fn install() -> Result<Self, ImageError> {
        Interrupt::install()
            .map(Self)
            .map_err(|e| ImageError::io("installing the Ctrl-C handler", e))
    }

    /// A handle that is never cancelled (unit tests).
    pub fn never() -> Self {
        Self(Interrupt::never())
    }

    pub fn check(&self) -> Result<(), ImageError> {
        self.0.check().map_err(|_| ImageError::Interrupted)
    }
}

/// How one step went, for `--json` and the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub name: String,
    /// `ran` or `cached`.
    pub outcome: &'static str,
    pub seconds: f64,
}

/// The step being run: lets it say it came from cache or show what it does.
#[derive(Debug)]
pub struct Step {
    bar: ProgressBar,
    logs: PathBuf,
    name: String,
    cached: AtomicBool,
    pub cancel: Cancel,
}

impl Step {
    /// Where a child program's output goes: outside `--out`, so a full
    /// output disk does not swallow the error message.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    pub fn set_cached(&self) {
        self.cached.store(true, Ordering::Relaxed);
    }

    pub fn message(&self, msg: &str) {
        let short: String = msg.chars().take(70).collect();
        self.bar.set_message(format!("{}: {short}", self.name));
    }

    /// Runs a program with its output in `log`; the last line shows in the
    /// progress display. On failure the error has the log's tail.
    pub fn command(
        &self,
        what: &'static str,
        cmd: &mut Command,
        log: &Path,
    ) -> Result<(), ImageError> {
        let out = std::fs::File::create(log)
            .map_err(|e| ImageError::io(format!("creating {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| ImageError::io("duplicating a log handle", e))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| ImageError::io(format!("starting {what}"), e))?;
        let status = self.wait(&mut child, log)?;
        if status.success() {
            return Ok(());
        }
        self.cancel.check()?;
        Err(ImageError::Step {
            step: what,
            message: format!(
                "failed ({status}); last lines of {}:\n{}",
                log.display(),
                tail(log, 15)
            ),
        })
    }

    fn wait(&self, child: &mut Child, log: &Path) -> Result<std::process::ExitStatus, ImageError> {
        loop {
            if let Some(status) =
                child.try_wait().map_err(|e| ImageError::io("waiting for a child", e))?
            {
                return Ok(status);
            }
            if self.cancel.check().is_err() {
                stop(child);
                return Err(ImageError::Interrupted);
            }
            if let Some(line) = tail(log, 1).lines().last() {
                self.message(line);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Asks a child to stop and lets it clean up (mmdebstrap unmounts what it
/// mounted in its chroot); kills it only if it does not end in time.
fn stop(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` lines of a log file (reads at most its last 16 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How the steps are shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A spinner with the running program's last line, then the result line.
    Bars,
    /// Only the result lines (`--json`: stdout is for the summary).
    Lines,
}

/// The list of steps, shown one line each: `✓ name  ran 12.3s` or `cached`.
#[derive(Debug)]
pub struct Steps {
    show: Show,
    logs: tempfile::TempDir,
    cancel: Cancel,
    records: Vec<StepRecord>,
}

impl Steps {
    pub fn new(show: Show, cancel: Cancel) -> Result<Self, ImageError> {
        let logs = super::outputs::private_dir(&std::env::temp_dir(), "pi-lab-image-logs-")?;
        Ok(Self { show, logs, cancel, records: Vec::new() })
    }

    pub fn note(&self, msg: &str) {
        eprintln!("  note: {msg}");
    }

    pub fn run<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Step) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        self.cancel.check()?;
        let bar = if self.show == Show::Bars {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(name.to_string());
        let step = Step {
            logs: self.logs.path().to_path_buf(),
            bar: bar.clone(),
            name: name.to_string(),
            cached: AtomicBool::new(false),
            cancel: self.cancel.clone(),
        };
        let started = Instant::now();
        let result = f(&step).and_then(|v| self.cancel.check().map(|_| v));
        let seconds = started.elapsed().as_secs_f64();
        let outcome = if step.cached.load(Ordering::Relaxed) { "cached" } else { "ran" };
        bar.finish_and_clear();
        let mark = if result.is_ok() { "✓" } else { "✗" };
        eprintln!("{mark} {name:<52} {outcome:>6} {seconds:7.1}s");
        tracing::info!(step = name, outcome, seconds, ok = result.is_ok(), "image build step");
        if result.is_ok() {
            self.records.push(StepRecord { name: name.to_string(), outcome, seconds });
        }
        result
    }

    pub fn records(&self) -> Vec<StepRecord> {
        self.records.clone()
    }
}
