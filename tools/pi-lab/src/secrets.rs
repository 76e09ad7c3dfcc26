//! Where pi-lab keeps per-lab state and the lab's bearer token.
//!
//! The token authenticates `pi-lab` to every agent of a lab. Only its
//! SHA-256 goes into NodeConfigs; the token itself stays on the controller,
//! in `STATE_DIR/LAB/token` (mode 0600), unless `PI_LAB_TOKEN` is set.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read or write the lab token {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
    #[error("the lab token in {path} is empty; delete the file to make a new one")]
    EmptyToken { path: PathBuf },
    #[error(
        "cannot make the lab's SSH key {path} with ssh-keygen (Debian package openssh-client): {message}"
    )]
    SshKey { path: PathBuf, message: String },
}

/// Root of pi-lab's state: `$PI_LAB_STATE_DIR`, else
/// `$XDG_STATE_HOME/pi-lab`, else `~/.local/state/pi-lab`, else
/// `/var/lib/pi-lab`.
pub fn state_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PI_LAB_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("pi-lab");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/pi-lab"),
        None => PathBuf::from("/var/lib/pi-lab"),
    }
}

/// State directory of one lab, created if missing.
pub fn lab_dir(lab: &str) -> Result<PathBuf, SecretError> {
    let path = state_root().join(lab);
    fs::create_dir_all(&path)
        .map_err(|source| SecretError::StateDir { path: path.clone(), source })?;
    Ok(path)
}

/// The lab's bearer token: `$PI_LAB_TOKEN`, else the token file, made on
/// first use from 32 random bytes.
pub fn lab_token(lab: &str) -> Result<String, SecretError> {
    if let Ok(token) = std::env::var("PI_LAB_TOKEN")
        && !token.is_empty()
    {
        return Ok(token);
    }
    let path = lab_dir(lab)?.join("token");
    if path.exists() {
        return read_token(&path);
    }
    let token =
        random_hex(32).map_err(|source| SecretError::Token { path: path.clone(), source })?;
    write_private(&path, &token)
        .map_err(|source| SecretError::Token { path: path.clone(), source })?;
    Ok(token)
}

/// The lab's own SSH key pair, `STATE_DIR/LAB/ssh/id_ed25519[.pub]`, made
/// on first use. Its public half goes onto the lab's cards, so pi-lab can
/// reach the boards (validate's pings, lab tests) without the user's keys.
pub fn lab_ssh_key(lab: &str) -> Result<SshKey, SecretError> {
    let dir = lab_dir(lab)?.join("ssh");
    let key = SshKey::in_dir(&dir);
    if key.complete() {
        return Ok(key);
    }
    let fail = |message: String| SecretError::SshKey { path: key.private.clone(), message };
    fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let _ = fs::remove_file(&key.private);
    let _ = fs::remove_file(&key.public);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("pi-lab lab {lab}"))
        .arg("-f")
        .arg(&key.private)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(key)
}

/// Where a lab's SSH key and the boards' host keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub private: PathBuf,
    pub public: PathBuf,
    /// Host keys of the lab's boards (`UserKnownHostsFile`).
    pub known_hosts: PathBuf,
}

impl SshKey {
    /// The lab's key if it was made already (pi-lab never makes one just to
    /// look). Both halves, as `lab_ssh_key` wants them: with one missing it
    /// makes the pair again.
    pub fn existing(lab: &str) -> Option<SshKey> {
        let key = SshKey::in_dir(&state_root().join(lab).join("ssh"));
        key.complete().then_some(key)
    }

    fn complete(&self) -> bool {
        self.private.is_file() && self.public.is_file()
    }

    fn in_dir(dir: &Path) -> SshKey {
        SshKey {
            private: dir.join("id_ed25519"),
            public: dir.join("id_ed25519.pub"),
            known_hosts: dir.join("known_hosts"),
        }
    }

    /// `ssh` options that use this key and keep the boards' host keys
    /// apart from the user's (boards get new host keys with every card).
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.private.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=accept-new".into(),
            // "Permanently added ... to the list of known hosts" on every
            // new card is noise in `validate`'s findings; errors still show.
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }
}

fn read_token(path: &Path) -> Result<String, SecretError> {
    let text = fs::read_to_string(path)
        .map_err(|source| SecretError::Token { path: path.to_path_buf(), source })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(SecretError::EmptyToken { path: path.to_path_buf() });
    }
    Ok(token)
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write a file readable only by its owner, atomically.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    lab_spec::replace_file::replace(
        path,
        format!("{contents}\n").as_bytes(),
        lab_spec::replace_file::Access::mode(0o600),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn token_is_made_once_and_kept_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = dir.join("token");
        fs::create_dir_all(&dir).unwrap();
        let token = random_hex(32).unwrap();
        write_private(&path, &token).unwrap();
        assert_eq!(read_token(&path).unwrap(), token);
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token(&path), Err(SecretError::EmptyToken { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
