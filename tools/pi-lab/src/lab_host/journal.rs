//! A lab's journal: every object `lab up` makes is written down (and
//! flushed to disk) *before* it is made, so `lab down` can remove all of it
//! even when `up` died halfway. One JSON object per line; a torn last line
//! from a crash is ignored.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One thing `lab up` made (or was about to make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// Where the lab runs: the first entry `lab up` writes, before it
    /// makes anything ([`super::RunsOn::detect_in`] reads it).
    RunsOn { place: super::RunsOn },
    /// A file, or a directory removed only when empty (shared with others).
    Path { path: PathBuf },
    /// A directory pi-lab owns with everything in it.
    Tree { path: PathBuf },
    /// A network namespace; everything running in it is stopped on `down`.
    Netns { name: String },
    /// A device in the root namespace (bridge, management veth end).
    RootLink { name: String },
    /// FRR daemons running in a namespace under their own pathspace. For
    /// people reading the journal: `down` stops them with every other
    /// process of the namespace.
    Frr { netns: String },
    /// A process pi-lab started (recorded once its pid is known), in a
    /// node's namespace or (`netns` empty) in the root namespace; `what`
    /// is part of its command line, so a reused pid is never hit.
    Process { netns: String, pid: u32, what: String },
    /// An nftables table in the root namespace (the emulated switch's VLAN
    /// rules).
    NftTable { family: String, name: String },
    /// A root-namespace sysctl raised for the lab (`key` under /proc/sys):
    /// `down` puts `was` back if it still reads `set`.
    Sysctl { key: String, was: u64, set: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the fleet journal {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the fleet journal {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Start a new journal; refuses to overwrite one that exists.
    pub fn create(path: &Path) -> Result<Self, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|source| JournalError::Write { path: path.to_path_buf(), source })?;
        Ok(Journal { path: path.to_path_buf(), file })
    }

    /// Write `entry` down and flush it to disk.
    pub fn record(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(entry).unwrap_or_default();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Write { path: self.path.clone(), source })
    }
}

/// Every entry of the journal at `path`, oldest first; none if it is absent.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Read { path: path.to_path_buf(), source }),
    };
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(entry) => Some(entry),
            Err(err) => {
                tracing::warn!(%line, %err, "skipping an unreadable journal line");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_round_trip_and_a_torn_last_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.jsonl");
        let _ = fs::remove_file(&path);
        let entries = vec![
            Entry::Netns { name: "lab-r1".into() },
            Entry::RootLink { name: "lab-m0".into() },
            Entry::Process { netns: "lab-r1".into(), pid: 42, what: "node-agent".into() },
        ];
        let mut journal = Journal::create(&path).unwrap();
        for e in &entries {
            journal.record(e).unwrap();
        }
        assert!(Journal::create(&path).is_err(), "a second journal must not replace the first");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"kind\":\"netns\",\"na").unwrap();
        assert_eq!(read(&path).unwrap(), entries);
        assert_eq!(read(&dir.join("absent")).unwrap(), Vec::new());
        fs::remove_dir_all(&dir).unwrap();
    }
}
