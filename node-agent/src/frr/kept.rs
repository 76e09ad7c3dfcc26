//! What the agent last loaded into FRR, kept in its state directory
//! (`STATE_DIR/frr-loaded.json`, written atomically): a restarted agent
//! (on a board, every reboot) finds FRR running exactly that and leaves it
//! alone, hand changes included, instead of reloading over them.

use std::fs;
use std::path::{Path, PathBuf};

use lab_spec::frr_hand::HandChange;
use serde::{Deserialize, Serialize};

/// The file's name in the state directory.
pub const FILE: &str = "frr-loaded.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The generated frr.conf last loaded (`lab_spec::frr::render`).
    pub generated: String,
    /// `show running-config` right after `generated` alone was loaded:
    /// the generated config in FRR's words, what hand changes are found
    /// against. `None` until FRR has run it.
    pub baseline: Option<String>,
    /// Hand changes kept on top of `generated`.
    #[serde(default)]
    pub hand: Vec<HandChange>,
    /// The daemons' pids when it was loaded: while they are the same, FRR
    /// has not restarted and still runs it.
    #[serde(default)]
    pub pids: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not what node-agent keeps there: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// What was kept; `None` when nothing was (a first start).
pub fn load(state_dir: &Path) -> Result<Option<Kept>, KeptError> {
    let path = path(state_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeptError::Read { path, source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| KeptError::Parse { path, source })
}

pub fn save(state_dir: &Path, kept: &Kept) -> Result<(), KeptError> {
    let path = path(state_dir);
    let text = serde_json::to_vec_pretty(kept)
        .map_err(|e| KeptError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    crate::state::write_atomic(&path, &text).map_err(|source| KeptError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_reads_back_and_nothing_kept_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let kept = Kept {
            generated: "router bgp 100\nexit\n".into(),
            baseline: Some("router bgp 100\nexit\n".into()),
            hand: vec![HandChange {
                added: true,
                context: vec!["router bgp 100".into()],
                line: "neighbor 10.1.0.1 description by hand".into(),
            }],
            pids: "1\n,2\n,,".into(),
        };
        save(dir.path(), &kept).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(kept));
        fs::write(path(dir.path()), "{").unwrap();
        assert!(matches!(load(dir.path()), Err(KeptError::Parse { .. })));
    }
}
