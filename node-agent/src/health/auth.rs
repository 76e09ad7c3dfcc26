//! Bearer tokens: who may read and replace a node's config.
//!
//! A provisioned node accepts the token whose SHA-256 is in its current
//! config (`auth.token_sha256`). An unprovisioned node accepts the bootstrap
//! token whose SHA-256 is in the first of the bootstrap files that exists
//! (`/boot/firmware/pi-lab/bootstrap.sha256`, then
//! `/etc/node-agent/bootstrap.sha256`); `pi-lab flash` writes it there. With
//! neither, an unprovisioned node accepts no config over the network at all:
//! it has to get `node.toml` on its boot partition.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where an unprovisioned node looks for the bootstrap token's hash.
pub const BOOTSTRAP_FILES: [&str; 2] =
    ["/boot/firmware/pi-lab/bootstrap.sha256", "/etc/node-agent/bootstrap.sha256"];

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing `Authorization: Bearer TOKEN` header")]
    MissingToken,
    #[error("wrong token")]
    WrongToken,
    #[error(
        "this node is not provisioned and has no bootstrap token: write the SHA-256 of the lab token to one of {files} (pi-lab flash does), or put node.toml on the boot partition"
    )]
    NoBootstrap { files: String },
    #[error("bootstrap file {path} does not hold a SHA-256 in hex: {reason}")]
    BadBootstrap { path: String, reason: String },
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::MissingToken | Denied::WrongToken => 401,
            Denied::NoBootstrap { .. } | Denied::BadBootstrap { .. } => 403,
        }
    }
}

/// Check `authorization` (the raw header) against the expected hash: the
/// current config's, else the bootstrap file's.
pub fn authorize(
    authorization: Option<&str>,
    config_hash: Option<&str>,
    bootstrap_files: &[PathBuf],
) -> Result<(), Denied> {
    let expected = match config_hash {
        Some(hash) => hash.to_string(),
        None => bootstrap_hash(bootstrap_files)?,
    };
    let token = bearer(authorization).ok_or(Denied::MissingToken)?;
    if token_matches(token, &expected) { Ok(()) } else { Err(Denied::WrongToken) }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Hash the presented token and compare the digests in constant time, so the
/// time taken says nothing about how much of the token was right.
pub fn token_matches(token: &str, expected_hex: &str) -> bool {
    let Ok(expected) = hex::decode(expected_hex.trim()) else {
        return false;
    };
    let presented = Sha256::digest(token.as_bytes());
    constant_time_eq(&presented, &expected)
}

/// Equal length and equal bytes, looking at every byte whatever it finds.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The first bootstrap file that exists, read and checked.
fn bootstrap_hash(files: &[PathBuf]) -> Result<String, Denied> {
    let Some(path) = files.iter().find(|p| p.exists()) else {
        let files = files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(Denied::NoBootstrap { files });
    };
    read_hash_file(path)
}

/// A hash file holds 64 hex digits, optionally followed by a file name as
/// `sha256sum` writes it.
fn read_hash_file(path: &Path) -> Result<String, Denied> {
    let bad = |reason: String| Denied::BadBootstrap { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let hash = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("expected 64 hex digits, found {:?}", hash)));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"xbcd", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_token_is_checked_against_the_config_hash() {
        let hash = sha("s3cret");
        assert_eq!(authorize(Some("Bearer s3cret"), Some(&hash), &[]), Ok(()));
        assert_eq!(authorize(Some("bearer  s3cret "), Some(&hash), &[]), Ok(()));
        assert_eq!(authorize(Some("Bearer s3cre"), Some(&hash), &[]), Err(Denied::WrongToken));
        assert_eq!(authorize(Some("Basic s3cret"), Some(&hash), &[]), Err(Denied::MissingToken));
        assert_eq!(authorize(Some("Bearer "), Some(&hash), &[]), Err(Denied::MissingToken));
        assert_eq!(authorize(None, Some(&hash), &[]), Err(Denied::MissingToken));
        assert_eq!(authorize(Some("Bearer x"), Some("not hex"), &[]), Err(Denied::WrongToken));
    }

    #[test]
    fn unprovisioned_node_uses_the_first_bootstrap_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let missing = dir.join("missing.sha256");
        let file = dir.join("bootstrap.sha256");
        let files = vec![missing.clone(), file.clone()];

        let err = authorize(Some("Bearer boot"), None, &files).unwrap_err();
        assert!(matches!(err, Denied::NoBootstrap { .. }));
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("missing.sha256"), "{err}");

        std::fs::write(&file, format!("{}  token\n", sha("boot"))).unwrap();
        assert_eq!(authorize(Some("Bearer boot"), None, &files), Ok(()));
        assert_eq!(authorize(Some("Bearer other"), None, &files), Err(Denied::WrongToken));

        std::fs::write(&file, "1234\n").unwrap();
        let err = authorize(Some("Bearer boot"), None, &files).unwrap_err();
        assert!(matches!(err, Denied::BadBootstrap { .. }), "{err}");
    }
}
