//! Files the agent keeps: the last config that applied cleanly.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a valid NodeConfig: {error}")]
    Parse { path: PathBuf, error: toml::de::Error },
    #[error("{path}: {error}")]
    Invalid { path: PathBuf, error: lab_spec::ConfigErrors },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

/// Read, parse and check a NodeConfig file. Errors name the file and, for
/// TOML errors, the line and column.
pub fn load_config(path: &Path) -> Result<NodeConfig, ConfigFileError> {
    let text = fs::read_to_string(path)
        .map_err(|error| ConfigFileError::Read { path: path.into(), error })?;
    let cfg = NodeConfig::from_toml(&text)
        .map_err(|error| ConfigFileError::Parse { path: path.into(), error })?;
    cfg.check().map_err(|error| ConfigFileError::Invalid { path: path.into(), error })?;
    Ok(cfg)
}

/// `STATE_DIR/last-good.toml`.
pub fn last_good_path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-good.toml")
}

pub fn save_last_good(state_dir: &Path, cfg: &NodeConfig) -> Result<(), ConfigFileError> {
    let path = last_good_path(state_dir);
    let text = cfg.to_toml().map_err(|e| ConfigFileError::Write {
        path: path.clone(),
        error: std::io::Error::other(e),
    })?;
    write_atomic(&path, text.as_bytes()).map_err(|error| ConfigFileError::Write { path, error })
}

/// Write via a temporary file in the same directory and rename, so readers
/// never see half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
