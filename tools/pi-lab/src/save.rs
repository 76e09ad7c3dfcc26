//! `pi-lab lab save`: collect what runs in every node's FRR, hand changes
//! included, from the agents (`GET /v1/frr/running`): the same on boards,
//! emulated boards and a virtual fleet.
//!
//! For each node with FRR, `DIR/NODE/frr.conf` is its running config and
//! `DIR/NODE/hand.conf` the lines changed by hand, as FRR lines: what the
//! node's `frr = """..."""` in the lab file takes to make them part of the
//! lab (after the lines it has).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lab_spec::NodeConfig;
use lab_spec::frr_hand::FrrRunning;
use serde::Serialize;

use crate::fleet_client::{ClientError, FleetClient};
use crate::lab_file::{CompiledLab, LabFileError};
use crate::table::Table;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab lab save examples/two-router.toml              # into two-router-saved/
  pi-lab lab save lab.toml -o saved/ --node r1
  pi-lab lab save lab.toml --json | jq '.[] | select(.hand_changes | length > 0)'

To keep a node's hand changes in the lab, put its hand.conf in the lab file:
  [nodes.r1]
  frr = \"\"\"
  ...the lines of saved/r1/hand.conf...
  \"\"\"
then `pi-lab provision` applies them as part of the lab (no --force needed).
Exit status: 0 when every node with FRR was saved, 1 when any was not.")]
pub struct SaveArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Where to write NODE/frr.conf and NODE/hand.conf [default: LABNAME-saved].
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Only these nodes (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each agent: 10, 10s, 1m30s, 500ms.
    #[arg(long, default_value = "10s", value_parser = lab_spec::duration::parse_positive, env = "PI_LAB_TIMEOUT")]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

/// What became of one node.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub node: String,
    /// The files written, when saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frr_conf: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hand_conf: Option<PathBuf>,
    pub hand_changes: Vec<String>,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn run(args: &SaveArgs) -> Result<ExitCode, SaveError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    let fleet = FleetClient::open(&lab, args.timeout);
    let configs: Vec<&NodeConfig> =
        fleet.select(&args.nodes)?.into_iter().filter(|c| c.runs_frr()).collect();
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}-saved", lab.name())));
    let saved = save_all(&fleet, &configs, &dir);
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&saved).unwrap_or_default()))?;
    } else {
        print(&summary(&saved, &dir))?;
    }
    let all = saved.iter().all(|s| s.error.is_none());
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Print to stdout; a closed pipe (`| jq ... | head`) is no error.
fn print(text: &str) -> Result<(), SaveError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(SaveError::Output(e)),
        _ => Ok(()),
    }
}

/// Ask every agent at once, then write each node's files.
pub fn save_all(fleet: &FleetClient, configs: &[&NodeConfig], dir: &Path) -> Vec<Saved> {
    let answers: Vec<Result<FrrRunning, String>> = std::thread::scope(|scope| {
        let asks: Vec<_> =
            configs.iter().map(|c| scope.spawn(move || fleet.frr_running(c))).collect();
        asks.into_iter()
            .map(|a| match a.join() {
                Ok(answer) => answer.map_err(|e: ClientError| e.to_string()),
                Err(_) => Err("the request thread panicked".into()),
            })
            .collect()
    });
    configs.iter().zip(answers).map(|(c, answer)| save_one(&c.hostname, answer, dir)).collect()
}

fn save_one(node: &str, answer: Result<FrrRunning, String>, dir: &Path) -> Saved {
    let failed = |error: String| Saved {
        node: node.to_string(),
        frr_conf: None,
        hand_conf: None,
        hand_changes: Vec::new(),
        error: Some(error),
    };
    let running = match answer {
        Ok(running) => running,
        Err(e) => return failed(e),
    };
    let (frr_conf, hand_conf) = (dir.join(node).join("frr.conf"), dir.join(node).join("hand.conf"));
    let written = std::fs::create_dir_all(dir.join(node))
        .and_then(|()| write(&frr_conf, &running.running))
        .and_then(|()| write(&hand_conf, &running.hand_conf));
    match written {
        Ok(()) => Saved {
            node: node.to_string(),
            frr_conf: Some(frr_conf),
            hand_conf: Some(hand_conf),
            hand_changes: running.hand_changes,
            error: None,
        },
        Err(e) => failed(format!("cannot write into {}: {e}", dir.join(node).display())),
    }
}

/// Running configs may hold secrets (BGP passwords): for the owner only.
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    lab_spec::replace_file::replace(
        path,
        text.as_bytes(),
        lab_spec::replace_file::Access::mode(0o600),
    )
}

/// The table, what failed, and how to keep hand changes.
pub fn summary(saved: &[Saved], dir: &Path) -> String {
    let rows = saved.iter().map(|s| {
        let hand = match (&s.error, s.hand_changes.len()) {
            (Some(_), _) => "-".to_string(),
            (None, 0) => "none".to_string(),
            (None, n) => crate::status::drift(&s.hand_changes).unwrap_or_else(|| n.to_string()),
        };
        let files = match &s.frr_conf {
            Some(_) => format!("{}/{{frr,hand}}.conf", dir.join(&s.node).display()),
            None => "NOT SAVED".into(),
        };
        vec![s.node.clone(), hand, files]
    });
    let mut out = Table::new(["NODE", "HAND CHANGES", "FILES"]).with_rows(rows).to_string();
    for s in saved {
        if let Some(e) = &s.error {
            out.push_str(&format!("{}: {e}\n", s.node));
        }
    }
    let ok = saved.iter().filter(|s| s.error.is_none()).count();
    out.push_str(&format!("{ok} of {} nodes saved to {}\n", saved.len(), dir.display()));
    let changed: Vec<&str> =
        saved.iter().filter(|s| !s.hand_changes.is_empty()).map(|s| s.node.as_str()).collect();
    if !changed.is_empty() {
        out.push_str(&format!(
            "to keep the hand changes in the lab, put NODE/hand.conf into the lab file as \
             [nodes.NODE] frr = \"\"\"...\"\"\" (after any lines it has) for {}\n",
            lab_spec::diagnostics::list(&changed)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_running_and_hand_config() {
        let dir = tempfile::tempdir().unwrap();
        let running = FrrRunning {
            node: "r1".into(),
            running: "frr version 8.4.4\nip route 10.99.0.0/24 Null0\nend\n".into(),
            hand_changes: vec!["+ip route 10.99.0.0/24 Null0".into()],
            hand_conf: "ip route 10.99.0.0/24 Null0\n".into(),
        };
        let saved = vec![
            save_one("r1", Ok(running), dir.path()),
            save_one("r2", Err("192.168.200.2:9180 is unreachable".into()), dir.path()),
        ];
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("r1/hand.conf"), "ip route 10.99.0.0/24 Null0\n");
        assert!(read("r1/frr.conf").starts_with("frr version 8.4.4\n"));
        assert!(!dir.path().join("r2").exists());
        let text = summary(&saved, dir.path());
        assert!(text.contains("hand-changed, 1 line"), "{text}");
        assert!(text.contains("r2: 192.168.200.2:9180 is unreachable"), "{text}");
        assert!(text.contains("1 of 2 nodes saved"), "{text}");
        assert!(text.contains("frr = \"\"\"...\"\"\" (after any lines it has) for r1"), "{text}");
        let json = serde_json::to_value(&saved).unwrap();
        assert_eq!(json[0]["hand_changes"][0], "+ip route 10.99.0.0/24 Null0");
        assert_eq!(json[1]["error"], "192.168.200.2:9180 is unreachable");
    }
}
