//! Files pi-lab and the agent write are replaced whole: written to a fresh
//! temporary file beside the target (created with O_EXCL under a random
//! name, by `tempfile`), synced, then renamed over it, so a reader never
//! sees half a file and a failure leaves the old one in place; then the
//! directory is synced, so the rename itself survives a power cut
//! (without it the old file, or none, can come back).

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown};
use std::path::Path;

/// Who may read and write the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// These permission bits and, when given, this owner `(uid, gid)`.
    Set { mode: u32, owner: Option<(u32, u32)> },
    /// The replaced file's mode and owner (Debian ships /etc/frr/frr.conf
    /// as frr:frr 0640); this mode for a new file.
    KeepOr(u32),
}

impl Access {
    /// These permission bits, owned by whoever writes the file.
    pub const fn mode(mode: u32) -> Self {
        Access::Set { mode, owner: None }
    }
}

/// Replace `path` with `contents`; its directory must exist.
pub fn replace(path: &Path, contents: &[u8], access: Access) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Hidden, and never taken for the file; removed when dropped on error.
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir)?;
    let (mode, owner) = match access {
        Access::Set { mode, owner } => (mode, owner),
        Access::KeepOr(mode) => match fs::metadata(path) {
            Ok(old) => (old.mode() & 0o7777, Some((old.uid(), old.gid()))),
            Err(_) => (mode, None),
        },
    };
    tmp.write_all(contents)?;
    tmp.as_file().set_permissions(Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        fchown(tmp.as_file(), Some(uid), Some(gid))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Writes "one", calls `between`, replaces it with "two"; the mode
    /// it ends with, once the file is whole and alone in its directory.
    fn replaced_twice(first: Access, between: fn(&Path), second: Access) -> u32 {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("frr.conf");
        replace(&path, b"one\n", first).unwrap();
        between(&path);
        replace(&path, b"two\n", second).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "temp file left behind");
        mode(&path)
    }

    #[test]
    fn replaces_whole_with_the_mode_it_is_given() {
        assert_eq!(replaced_twice(Access::mode(0o600), |_| {}, Access::mode(0o640)), 0o640);
    }

    #[test]
    fn keeps_the_mode_of_the_file_it_replaces() {
        let chmod = |path: &Path| fs::set_permissions(path, Permissions::from_mode(0o640)).unwrap();
        assert_eq!(replaced_twice(Access::KeepOr(0o644), chmod, Access::KeepOr(0o644)), 0o640);
        // A new file gets the mode given.
        assert_eq!(
            replaced_twice(
                Access::mode(0o600),
                |p| fs::remove_file(p).unwrap(),
                Access::KeepOr(0o644)
            ),
            0o644
        );
    }

    #[test]
    fn a_failure_leaves_the_old_file_and_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no-such-dir").join("file");
        assert!(replace(&missing, b"x", Access::KeepOr(0o644)).is_err());
        // A directory in the way: the rename fails after the write.
        let path = tmp.path().join("dir");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"old").unwrap();
        assert!(replace(&path, b"new", Access::KeepOr(0o644)).is_err());
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"old");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "temp file left behind");
    }
}
