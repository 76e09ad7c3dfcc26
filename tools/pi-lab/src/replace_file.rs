//! Files pi-lab writes are replaced whole: written beside the target,
//! synced, then renamed over it, so a reader never sees half a file and a
//! failure leaves the old one in place; then the directory is synced, so
//! the rename itself survives a power cut.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};

/// Replace `path` with `contents`, with permission bits `mode` and, when
/// given, owner `(uid, gid)`.
pub fn replace(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = write_then_rename(&tmp, path, contents, mode, owner);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    tmp: &Path,
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(tmp)?;
    file.write_all(contents)?;
    // The umask may have narrowed `mode` at creation.
    file.set_permissions(Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        chown(tmp, Some(uid), Some(gid))?;
    }
    file.sync_all()?;
    fs::rename(tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::File::open(dir)?.sync_all()
}

/// `.NAME.pi-lab-tmp` beside `path`: hidden, and never taken for the file.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.pi-lab-tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_with_mode_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        replace(&path, b"one\n", 0o600, None).unwrap();
        replace(&path, b"two\n", 0o640, None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "temp file left behind");
        let missing = dir.join("no-such-dir").join("file");
        assert!(replace(&missing, b"x", 0o644, None).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
