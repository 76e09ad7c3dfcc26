//! One progress line per node: namespace, links, FRR, agent, converged.

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

const LABELS: [&str; 5] = ["namespace", "links", "FRR", "agent", "converged"];

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
    marks: [Mark; 5],
    note: String,
}

#[derive(Debug)]
pub struct Progress {
    _multi: MultiProgress,
    pub lines: Vec<NodeLine>,
}

impl Progress {
    /// Lines for `nodes`; drawn on stderr only when it is a terminal and
    /// `quiet` is false.
    pub fn new(nodes: &[String], quiet: bool) -> Self {
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
                let line = NodeLine { bar, marks: [Mark::Todo; 5], note: String::new() };
                line.redraw();
                line
            })
            .collect();
        Progress { _multi: multi, lines }
    }
}

impl NodeLine {
    pub fn done(&mut self, step: Step) {
        self.set(step, Mark::Done, "");
    }

    /// A step this node does not have (hosts run no FRR).
    pub fn skip(&mut self, step: Step) {
        self.set(step, Mark::Skip, "");
    }

    pub fn failed(&mut self, step: Step, why: &str) {
        self.set(step, Mark::Failed, why);
        self.bar.finish();
    }

    pub fn note(&mut self, note: &str) {
        if self.note != note {
            self.note = note.to_string();
            self.redraw();
        }
    }

    pub fn finish(&mut self) {
        self.done(Step::Converged);
        self.bar.finish();
    }

    fn set(&mut self, step: Step, mark: Mark, note: &str) {
        self.marks[step as usize] = mark;
        self.note = note.to_string();
        self.redraw();
    }

    fn redraw(&self) {
        let mut parts: Vec<String> = LABELS
            .iter()
            .zip(self.marks)
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
