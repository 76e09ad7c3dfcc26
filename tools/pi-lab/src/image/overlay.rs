//! Overlays: folders under `overlays/` copied onto the root file system, owned
//! by root, modes kept; plus helpers that walk the tree.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;

fn io(ctx: &str, p: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let ctx = format!("{ctx} {}", p.display());
    move |e| ImageError::io(ctx, e)
}

/// Copies each overlay onto `tree`, in the profile's order.
pub fn apply(overlays: &Path, names: &[String], tree: &Path) -> Result<(), ImageError> {
    for name in names {
        let src = overlays.join(name);
        if !src.is_dir() {
            return Err(ImageError::Step {
                step: "overlays",
                message: format!("overlay `{name}` is not a folder: expected {}", src.display()),
            });
        }
        copy_tree(&src, tree)?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), ImageError> {
    for (rel, meta) in walk(src)? {
        let from = src.join(&rel);
        let to = dst.join(&rel);
        let ft = meta.file_type();
        if ft.is_dir() {
            if !to.is_dir() {
                fs::create_dir_all(&to).map_err(io("creating", &to))?;
            }
        } else {
            // Replace whatever is there (a file, or a symlink we must not follow).
            if to.symlink_metadata().is_ok() {
                fs::remove_file(&to).map_err(io("replacing", &to))?;
            }
            if ft.is_symlink() {
                let target = fs::read_link(&from).map_err(io("reading link", &from))?;
                std::os::unix::fs::symlink(&target, &to).map_err(io("creating link", &to))?;
            } else {
                fs::copy(&from, &to).map_err(io("copying to", &to))?;
            }
        }
        if !ft.is_symlink() {
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io("chmod", &to))?;
        }
        lchown(&to, Some(0), Some(0)).map_err(io("chown", &to))?;
    }
    Ok(())
}

/// Every entry under `root` (relative paths, sorted, parents first).
pub fn walk(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>, ImageError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io("reading", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io("reading", &dir))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let r = rel.join(&name);
            let meta = fs::symlink_metadata(root.join(&r)).map_err(io("stat", &root.join(&r)))?;
            if meta.is_dir() {
                subdirs.push(r.clone());
            }
            out.push((r, meta));
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Files newer than the epoch (made by us or maintainer scripts) get the
/// epoch as their mtime, so the image does not carry build times.
pub fn clamp_mtimes(tree: &Path, epoch: u64) -> Result<(), ImageError> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(epoch as i64, 0);
    let mut all = walk(tree)?;
    all.push((PathBuf::new(), fs::symlink_metadata(tree).map_err(io("stat", tree))?));
    for (rel, meta) in all {
        if meta.mtime() <= epoch as i64 {
            continue;
        }
        let p = tree.join(&rel);
        utimensat(nix::fcntl::AT_FDCWD, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| ImageError::io(format!("setting times of {}", p.display()), e.into()))?;
    }
    Ok(())
}

/// sha256 of each overlay (paths, modes, link targets and contents), for
/// the manifest.
pub fn hashes(overlays: &Path, names: &[String]) -> Result<BTreeMap<String, String>, ImageError> {
    let mut out = BTreeMap::new();
    for name in names {
        let root = overlays.join(name);
        let mut h = Sha256::new();
        for (rel, meta) in walk(&root)? {
            h.update(rel.to_string_lossy().as_bytes());
            h.update(format!("\0{:o}\0", meta.mode()).as_bytes());
            let p = root.join(&rel);
            if meta.file_type().is_symlink() {
                h.update(
                    fs::read_link(&p).map_err(io("reading link", &p))?.to_string_lossy().as_bytes(),
                );
            } else if meta.is_file() {
                h.update(fs::read(&p).map_err(io("reading", &p))?);
            }
            h.update([0]);
        }
        out.insert(name.clone(), hex::encode(h.finalize()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_and_modes_and_replaces_links() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let (src, dst) = (base.join("ov/a"), base.join("tree"));
        fs::create_dir_all(src.join("etc/x")).unwrap();
        fs::create_dir_all(dst.join("etc")).unwrap();
        fs::write(src.join("etc/x/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("etc/x/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("x/run.sh", src.join("etc/link")).unwrap();
        // A symlink in the tree pointing outside must be replaced, not followed.
        std::os::unix::fs::symlink("/nonexistent", dst.join("etc/link")).unwrap();
        apply(&base.join("ov"), &["a".into()], &dst).unwrap();
        let m = fs::metadata(dst.join("etc/x/run.sh")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o755);
        assert_eq!(fs::read_link(dst.join("etc/link")).unwrap(), PathBuf::from("x/run.sh"));
        let h1 = hashes(&base.join("ov"), &["a".into()]).unwrap();
        fs::write(src.join("etc/x/run.sh"), "#!/bin/sh\nexit 1\n").unwrap();
        assert_ne!(h1, hashes(&base.join("ov"), &["a".into()]).unwrap());
        let err = apply(&base.join("ov"), &["missing".into()], &dst).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        fs::remove_dir_all(&base).unwrap();
    }
}
