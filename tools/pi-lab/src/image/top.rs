//! The build's own files, on top of the cached file systems: overlays,
//! node-agent, hostname and the enabled units' links. They are staged in a
//! small folder (`top`) and then written into the image's copy of the ext4
//! root with one debugfs script (files under `/boot/firmware` go into the
//! FAT partition with mcopy). Files and links are owned by root, their
//! modes kept, their times the epoch; whatever a path held before is
//! replaced. Folders that already exist keep their mode and owner.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::filesystems::Index;
use super::profile::{FIRMWARE_END, FIRMWARE_START};
use super::progress::Step;
use super::{ImageError, Profile, firstboot, overlay};

/// The staged files, and which folders came from the overlays (a new
/// folder gets the overlay's mode, any other new folder 0755).
#[derive(Debug)]
pub struct Staged {
    pub overlay_dirs: BTreeSet<String>,
}

/// Stages the overlays, node-agent and first-boot settings in `top`.
pub fn stage(
    overlays: &Path,
    names: &[String],
    agent: &Path,
    profile: &Profile,
    index: &Index,
    top: &Path,
) -> Result<Staged, ImageError> {
    fs::create_dir_all(top)
        .map_err(|e| ImageError::io(format!("creating {}", top.display()), e))?;
    overlay::apply(overlays, names, top)?;
    let overlay_dirs = overlay::walk(top)?
        .into_iter()
        .filter(|(_, m)| m.is_dir())
        .map(|(r, _)| r.to_string_lossy().into_owned())
        .collect();
    firstboot::prepare(top, profile, agent, &index.units)?;
    Ok(Staged { overlay_dirs })
}

/// Writes `top` into the image: `/boot/firmware` entries into p1, the rest
/// into p2.
pub fn write(
    top: &Path,
    staged: &Staged,
    img: &Path,
    index: &Index,
    profile: &Profile,
    work: &Path,
    step: &Step,
) -> Result<(), ImageError> {
    let epoch = profile.epoch();
    let firmware = top.join("boot/firmware");
    if firmware.is_dir() {
        let entries = sorted_entries(&firmware)?;
        if !entries.is_empty() {
            step.message("overlay files into the FAT32 partition (mcopy)");
            let mut mcopy = Command::new("mcopy");
            mcopy
                .env("SOURCE_DATE_EPOCH", epoch.to_string())
                .env("MTOOLS_SKIP_CHECK", "1")
                .env("LC_ALL", "C")
                .args(["-s", "-o", "-Q", "-i"])
                .arg(format!("{}@@{FIRMWARE_START}", img.display()))
                .args(&entries)
                .arg("::");
            step.command("mcopy", &mut mcopy, &step.log("mcopy-top.log"))?;
        }
    }
    step.message("overlays, agent and settings into ext4 (debugfs)");
    let script = work.join("top.debugfs");
    fs::write(&script, script_for(top, index, &staged.overlay_dirs, epoch)?)
        .map_err(|e| ImageError::io(format!("writing {}", script.display()), e))?;
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .env("LC_ALL", "C")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(format!("{}?offset={FIRMWARE_END}", img.display()));
    let log = step.log("debugfs-top.log");
    step.command("debugfs (overlays)", &mut cmd, &log)?;
    check_log(&log)
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, ImageError> {
    let io = |e| ImageError::io(format!("reading {}", dir.display()), e);
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

/// debugfs exits 0 even when a command fails; its errors start with the
/// command's name.
fn check_log(log: &Path) -> Result<(), ImageError> {
    let out = fs::read_to_string(log).unwrap_or_default();
    let failed = ["mkdir:", "write:", "symlink:", "rm:", "sif:", "cd:", "ext2fs_"];
    match out.lines().find(|l| failed.iter().any(|f| l.starts_with(f))) {
        Some(line) => Err(ImageError::Step {
            step: "writing the overlays into the root file system",
            message: format!("debugfs: {line} (full log: {})", log.display()),
        }),
        None => Ok(()),
    }
}

/// One debugfs command argument, quoted.
fn q(path: &str) -> String {
    format!("\"{path}\"")
}

/// The debugfs script that makes the file system hold `top` (except
/// `/boot/firmware`), given what `index` says is already there.
pub fn script_for(
    top: &Path,
    index: &Index,
    overlay_dirs: &BTreeSet<String>,
    epoch: u64,
) -> Result<String, ImageError> {
    let mut s = String::new();
    let bad = |message: String| ImageError::Step { step: "overlays", message };
    for (rel, meta) in overlay::walk(top)? {
        let r = rel.to_string_lossy().into_owned();
        if r == "boot/firmware" || r.starts_with("boot/firmware/") {
            continue;
        }
        if r.contains('"') || r.contains('\n') || r.contains('\\') {
            return Err(bad(format!(
                "file name /{r} has a quote, backslash or newline; debugfs cannot address it"
            )));
        }
        let p = format!("/{r}");
        let kind = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let mtime = (meta.mtime().max(0) as u64).min(epoch);
        if kind.is_dir() {
            if index.is_dir(&r) {
                // An existing folder keeps its mode and owner; its entries
                // changed, so its times are the epoch.
                for t in ["mtime", "ctime", "atime"] {
                    let _ = writeln!(s, "sif {} {t} @{epoch}", q(&p));
                }
                continue;
            }
            if index.exists(&r) {
                let _ = writeln!(s, "rm {}", q(&p));
            }
            let mode = if overlay_dirs.contains(&r) { mode } else { 0o755 };
            let _ = writeln!(s, "mkdir {}", q(&p));
            let _ = writeln!(s, "sif {} mode 0{:o}", q(&p), 0o40000 | mode);
        } else {
            if index.is_dir(&r) {
                return Err(bad(format!(
                    "an overlay puts a file at /{r}, which is a directory in the root file system"
                )));
            }
            if index.exists(&r) {
                let _ = writeln!(s, "rm {}", q(&p));
            }
            if kind.is_symlink() {
                let target = fs::read_link(top.join(&rel))
                    .map_err(|e| ImageError::io(format!("reading link /{r}"), e))?;
                let t = target.to_string_lossy();
                if t.contains('"') || t.contains('\n') {
                    return Err(bad(format!("link /{r} -> {t}: debugfs cannot write this target")));
                }
                let _ = writeln!(s, "symlink {} {}", q(&p), q(&t));
            } else if kind.is_file() {
                let (parent, name) = match r.rsplit_once('/') {
                    Some((d, n)) => (format!("/{d}"), n.to_string()),
                    None => ("/".to_string(), r.clone()),
                };
                let src = top.join(&rel);
                let src = src.to_string_lossy();
                if src.contains('"') || src.contains('\n') {
                    return Err(bad(format!("the work folder {src} has a quote or newline")));
                }
                let _ = writeln!(s, "cd {}", q(&parent));
                let _ = writeln!(s, "write {} {}", q(&src), q(&name));
                let _ = writeln!(s, "sif {} mode 0{:o}", q(&p), 0o100000 | mode);
            } else {
                return Err(bad(format!("/{r} in an overlay is not a file, folder or link")));
            }
        }
        let _ = writeln!(s, "sif {} uid 0", q(&p));
        let _ = writeln!(s, "sif {} gid 0", q(&p));
        let _ = writeln!(s, "sif {} mtime @{mtime}", q(&p));
        for t in ["ctime", "atime", "crtime"] {
            let _ = writeln!(s, "sif {} {t} @{epoch}", q(&p));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replaces_files_makes_missing_folders_and_refuses_file_over_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().to_path_buf();
        fs::create_dir_all(top.join("etc/new")).unwrap();
        fs::write(top.join("etc/hostname"), "x\n").unwrap();
        fs::write(top.join("etc/new/a b"), "y\n").unwrap();
        std::os::unix::fs::symlink("/usr/lib/x", top.join("etc/link")).unwrap();
        let mut index = Index::default();
        index.dirs.extend(["etc".to_string()]);
        index.other.extend(["etc/hostname".to_string(), "etc/link".to_string()]);
        let overlay_dirs: BTreeSet<String> = ["etc".to_string()].into();
        let s = script_for(&top, &index, &overlay_dirs, 1000).unwrap();
        assert!(s.contains("rm \"/etc/hostname\"\ncd \"/etc\"\nwrite "), "{s}");
        assert!(s.contains("mkdir \"/etc/new\"") && !s.contains("mkdir \"/etc\""), "{s}");
        assert!(s.contains("sif \"/etc/new\" mode 040755"), "a folder not from an overlay: {s}");
        assert!(!s.contains("sif \"/etc\" mode"), "an existing folder keeps its mode: {s}");
        assert!(s.contains("write \"") && s.contains("\" \"a b\""), "{s}");
        assert!(s.contains("rm \"/etc/link\"\nsymlink \"/etc/link\" \"/usr/lib/x\""), "{s}");
        assert!(s.contains("sif \"/etc/new/a b\" mode 0100644"), "{s}");
        assert!(s.contains("sif \"/etc/hostname\" mtime @1000"), "{s}");
        index.dirs.insert("etc/hostname".into());
        let err = script_for(&top, &index, &overlay_dirs, 1000).unwrap_err().to_string();
        assert!(err.contains("/etc/hostname") && err.contains("directory"), "{err}");
        fs::remove_dir_all(&top).unwrap();
    }
}
