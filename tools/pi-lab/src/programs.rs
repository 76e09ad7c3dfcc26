//! The host programs pi-lab runs (qemu, dnsmasq, node-agent, the image
//! build's tools): found one way, on `PATH`, as a shell would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The executable `prog` in the first `PATH` directory that has one.
pub fn find(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| executable(p))
}

/// Whether `prog` is on `PATH`.
pub fn on_path(prog: &str) -> bool {
    find(prog).is_some()
}

/// A regular file someone may run.
pub fn executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_but_not_nonsense() {
        assert!(on_path("sh"));
        assert!(find("sh").is_some_and(|p| p.is_absolute() || p.starts_with(".")));
        assert!(!on_path("pi-lab-no-such-program"));
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pi-lab-not-a-program");
        std::fs::write(&file, "data").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!executable(&file));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(executable(&file));
        std::fs::remove_file(&file).unwrap();
        assert!(!executable(&std::env::temp_dir()), "a directory is no program");
    }
}
