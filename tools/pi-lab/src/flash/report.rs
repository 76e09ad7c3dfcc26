//! What the user sees: a progress bar per target, then a summary table
//! (or JSON with `--json`).

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::safety::human_bytes;
use super::target::TargetKind;
use super::write::Stage;
use crate::table::Table;

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: PathBuf,
    pub kind: Option<TargetKind>,
    /// Model and size of a block device.
    pub device: Option<String>,
    pub node: Option<String>,
    pub ok: bool,
    pub stage: Stage,
    /// What the card holds now, in words.
    pub state: String,
    pub error: Option<String>,
    pub bytes_written: u64,
    pub write_seconds: f64,
    pub verified: bool,
    pub verify_seconds: f64,
    pub identity_files: Vec<String>,
}

impl TargetReport {
    pub fn new(target: PathBuf) -> TargetReport {
        TargetReport {
            target,
            kind: None,
            device: None,
            node: None,
            ok: false,
            stage: Stage::Untouched,
            state: String::new(),
            error: None,
            bytes_written: 0,
            write_seconds: 0.0,
            verified: false,
            verify_seconds: 0.0,
            identity_files: Vec::new(),
        }
    }

    /// Close the report: success, or the error and what it left behind.
    pub fn finish(mut self, result: Result<(), String>) -> TargetReport {
        match result {
            Ok(()) => {
                self.ok = true;
                let verified =
                    if self.verified { "verified" } else { "not verified (--no-verify)" };
                let identity =
                    if self.identity_files.is_empty() { "no identity" } else { "identity written" };
                self.state = format!("complete: written, {verified}, {identity}");
            }
            Err(err) => {
                self.error = Some(err);
                self.state = if self.kind == Some(TargetKind::RegularFile) {
                    // Target::drop removed the partial copy.
                    "not written: the partial copy was removed; the file is as it was before".into()
                } else {
                    self.stage.consequence().into()
                };
            }
        }
        self
    }

    fn throughput(&self) -> String {
        if self.write_seconds > 0.0 {
            format!("{:.1} MB/s", self.bytes_written as f64 / self.write_seconds / 1e6)
        } else {
            "-".into()
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FlashReport {
    pub image: PathBuf,
    pub bmap: Option<PathBuf>,
    pub image_size: Option<u64>,
    pub mapped_bytes: Option<u64>,
    /// Set when the image itself was bad (every target stopped).
    pub image_error: Option<String>,
    pub targets: Vec<TargetReport>,
}

impl FlashReport {
    pub fn ok(&self) -> bool {
        self.image_error.is_none() && self.targets.iter().all(|t| t.ok)
    }

    /// The table printed after a run.
    pub fn table(&self) -> String {
        let rows = self.targets.iter().map(|t| {
            [
                t.target.display().to_string(),
                t.node.clone().unwrap_or_else(|| "-".into()),
                if t.ok { "ok".into() } else { "FAILED".into() },
                human_bytes(t.bytes_written),
                t.throughput(),
                if t.verified { "ok".into() } else { "-".into() },
                t.state.clone(),
            ]
        });
        let mut out =
            Table::new(["TARGET", "NODE", "RESULT", "WRITTEN", "SPEED", "VERIFY", "STATE"])
                .with_rows(rows)
                .to_string();
        for t in self.targets.iter().filter(|t| !t.ok) {
            if let Some(err) = &t.error {
                out.push_str(&format!("{}: {err}\n", t.target.display()));
            }
        }
        if let Some(err) = &self.image_error {
            out.push_str(&format!("image: {err}\n"));
        }
        out
    }
}

/// One bar per target under a shared header; hidden when not on a terminal.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub fn new(hidden: bool) -> Bars {
        let target =
            if hidden { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Bars { multi: MultiProgress::with_draw_target(target) }
    }

    pub fn add(&self, name: &str, total: Option<u64>) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        let template = if total.is_some() {
            "{prefix:24!} {msg:8} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} ETA {eta}"
        } else {
            "{prefix:24!} {msg:8} {spinner} {bytes:>10} {bytes_per_sec:>12}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name.to_string());
        bar.set_message("write");
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
