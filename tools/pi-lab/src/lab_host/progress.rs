//! One progress line per node, a mark per step: for the virtual fleet
//! namespace, links, FRR, agent, converged; emulated boards name their
//! boot phases.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Netns = 0,
    Links = 1,
    Frr = 2,
    Agent = 3,
    Converged = 4,
}

/// The virtual fleet's steps, in the order of [`Step`].
pub const FLEET_STEPS: [&str; 5] = ["namespace", "links", "FRR", "agent", "converged"];

impl From<Step> for usize {
    fn from(step: Step) -> usize {
        step as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Todo,
    Done,
    Skip,
    Failed,
}

#[derive(Debug)]
pub struct NodeLine {
    bar: ProgressBar,
    labels: Vec<&'static str>,
    marks: Vec<Mark>,
    note: String,
}

#[derive(Debug)]
pub struct Progress {
    _multi: MultiProgress,
    pub lines: Vec<NodeLine>,
}

impl Progress {
    /// Lines for `nodes` with a mark for each of `steps`; drawn on stderr
    /// only when it is a terminal and `quiet` is false.
    pub fn new(nodes: &[String], steps: &[&'static str], quiet: bool) -> Self {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let width = nodes.iter().map(String::len).max().unwrap_or(4);
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let lines = nodes
            .iter()
            .map(|node| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{node:<width$}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                let line = NodeLine {
                    bar,
                    labels: steps.to_vec(),
                    marks: vec![Mark::Todo; steps.len()],
                    note: String::new(),
                };
                line.redraw();
                line
            })
            .collect();
        Progress { _multi: multi, lines }
    }
}

impl NodeLine {
    pub fn done(&mut self, step: impl Into<usize>) {
        let step = step.into();
        if self.marks.get(step) != Some(&Mark::Done) {
            self.set(step, Mark::Done, "");
        }
    }

    /// A step this node does not have (hosts run no FRR).
    pub fn skip(&mut self, step: impl Into<usize>) {
        self.set(step.into(), Mark::Skip, "");
    }

    pub fn failed(&mut self, step: impl Into<usize>, why: &str) {
        self.set(step.into(), Mark::Failed, why);
        self.bar.finish();
    }

    pub fn note(&mut self, note: &str) {
        if self.note != note {
            self.note = note.to_string();
            self.redraw();
        }
    }

    /// The last step done; the line stops moving.
    pub fn finish(&mut self) {
        self.done(self.marks.len().saturating_sub(1));
        self.bar.finish();
    }

    fn set(&mut self, step: usize, mark: Mark, note: &str) {
        if let Some(m) = self.marks.get_mut(step) {
            *m = mark;
        }
        self.note = note.to_string();
        self.redraw();
    }

    fn redraw(&self) {
        let mut parts: Vec<String> = self
            .labels
            .iter()
            .zip(self.marks.iter().copied())
            .filter(|(_, m)| *m != Mark::Skip)
            .map(|(label, mark)| match mark {
                Mark::Done => format!("{label} ✓"),
                Mark::Failed => format!("{label} ✗"),
                _ => format!("{label} …"),
            })
            .collect();
        if !self.note.is_empty() {
            parts.push(format!("({})", self.note));
        }
        self.bar.set_message(parts.join("  "));
    }
}
