//! Files the agent keeps: the last config that applied cleanly.

use std::fs;
use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;
use lab_spec::replace_file::Access;

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

/// Replace `path` whole (see [`lab_spec::replace_file`]), keeping the
/// owner and mode of the file it replaces; its directory is made first.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    lab_spec::replace_file::replace(path, data, Access::KeepOr(0o644))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn atomic_write_keeps_the_mode_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let path = dir.join("frr.conf");
        write_atomic(&path, b"one\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }
}
