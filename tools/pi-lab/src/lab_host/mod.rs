//! What a lab has on this host, whichever way it runs (virtual fleet or
//! emulated boards): its folder in the state directory, the journal of
//! everything `lab up` made (whose first entry records where the lab runs),
//! undoing that journal, and the host's names and `ip` plumbing.
//!
//! Both ways of running a lab build on this module; it imports neither.

pub(crate) mod ip;
pub(crate) mod journal;
pub mod names;
pub(crate) mod progress;
pub(crate) mod sysctl;
pub(crate) mod teardown;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;
use serde::{Deserialize, Serialize};

/// Where a lab runs. Read from the record `lab up` writes first in the
/// lab's journal, never from names found on the machine: namespaces called
/// `LAB-NODE` may belong to another user's lab or another state directory.
///
/// A new way to run a lab adds a variant here and what differs for its
/// nodes (config, API address, where commands run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunsOn {
    /// Raspberry Pi boards on the management network: each agent runs the
    /// config compiled for its board and listens on its management address.
    Boards,
    /// The virtual fleet on this host (`pi-lab lab up`): a network
    /// namespace per node; configs name the management port `mgmt0`.
    VirtualFleet,
    /// Emulated Pi 3B boards on this host (`pi-lab lab up --boards
    /// emulated`): reached like boards, over the lab's bridge, with the
    /// config compiled for a board.
    EmulatedBoards,
}

impl RunsOn {
    /// Where lab `lab` runs, from its state directory under pi-lab's state
    /// root (`PI_LAB_STATE_DIR`).
    pub fn detect(lab: &str) -> RunsOn {
        RunsOn::detect_in(&crate::secrets::state_root().join(lab))
    }

    /// Where the lab whose state directory is `lab_dir` runs: where its
    /// journal's record says while the journal exists (from `lab up`'s
    /// first step until `lab down` removed the last object), else on
    /// boards. A journal without a record (a crash between creating it and
    /// writing the first line) holds nothing yet and reads as the fleet.
    pub fn detect_in(lab_dir: &Path) -> RunsOn {
        let journal = journal_in(lab_dir);
        if !journal.exists() {
            return RunsOn::Boards;
        }
        let entries = journal::read(&journal).unwrap_or_default();
        match entries.first() {
            Some(journal::Entry::RunsOn { place }) => *place,
            _ => RunsOn::VirtualFleet,
        }
    }

    /// Where the agent of a node running `config` listens: the same on
    /// every kind of fleet (`config` is already the one it runs there).
    pub fn api(self, config: &NodeConfig) -> SocketAddr {
        config.health.listen
    }

    /// The network namespace on this host where `node`'s commands run, if
    /// the lab runs here.
    pub fn netns(self, lab: &str, node: &str) -> Option<String> {
        match self {
            RunsOn::Boards | RunsOn::EmulatedBoards => None,
            RunsOn::VirtualFleet => Some(names::netns(lab, node)),
        }
    }
}

impl std::fmt::Display for RunsOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunsOn::Boards => "boards",
            RunsOn::VirtualFleet => "a virtual fleet on this host",
            RunsOn::EmulatedBoards => "emulated Pi 3B boards on this host",
        })
    }
}

/// Where a running lab keeps its journal, node configs, agent state, logs
/// (and an emulated lab its cards), inside the lab's state directory.
pub fn dir_in(lab_dir: &Path) -> PathBuf {
    lab_dir.join("fleet")
}

/// [`dir_in`] of lab `lab` under pi-lab's state root.
pub fn dir(lab: &str) -> PathBuf {
    dir_in(&crate::secrets::state_root().join(lab))
}

/// The journal of the lab whose state directory is `lab_dir`; it exists
/// exactly while the lab has something on this host (see [`journal`]).
pub fn journal_in(lab_dir: &Path) -> PathBuf {
    dir_in(lab_dir).join("journal.jsonl")
}

/// [`journal_in`] of lab `lab` under pi-lab's state root.
pub fn journal_path(lab: &str) -> PathBuf {
    journal_in(&crate::secrets::state_root().join(lab))
}

#[cfg(test)]
mod tests {
    use super::journal::{Entry, Journal};
    use super::*;

    #[test]
    fn the_journal_record_decides_where_a_lab_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunsOn::detect_in(dir.path()), RunsOn::Boards, "no journal: boards");
        let path = journal_in(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for place in [RunsOn::EmulatedBoards, RunsOn::VirtualFleet] {
            let _ = std::fs::remove_file(&path);
            let mut journal = Journal::create(&path).unwrap();
            journal.record(&Entry::RunsOn { place }).unwrap();
            journal.record(&Entry::Netns { name: "lab-r1".into() }).unwrap();
            assert_eq!(RunsOn::detect_in(dir.path()), place);
        }
        std::fs::write(&path, "").unwrap();
        assert_eq!(RunsOn::detect_in(dir.path()), RunsOn::VirtualFleet, "an empty journal");
    }

    #[test]
    fn only_the_virtual_fleet_runs_commands_in_namespaces() {
        assert_eq!(RunsOn::VirtualFleet.netns("lab", "leaf1").as_deref(), Some("lab-leaf1"));
        assert_eq!(RunsOn::Boards.netns("lab", "leaf1"), None);
        assert_eq!(RunsOn::EmulatedBoards.netns("lab", "leaf1"), None);
    }
}
