//! What the build needs on the host, checked before anything slow starts.

use crate::programs::on_path;
use std::path::Path;
use std::process::Command;

use super::ImageError;

/// A program the build runs and the Debian package that has it.
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("mmdebstrap", "mmdebstrap", "builds the root filesystem"),
    ("arch-test", "arch-test", "lets mmdebstrap check foreign architectures"),
    ("mkfs.ext4", "e2fsprogs", "makes the root filesystem"),
    ("debugfs", "e2fsprogs", "fixes inode change times for reproducible images"),
    ("mkfs.vfat", "dosfstools", "makes the firmware partition"),
    ("mcopy", "mtools", "copies files into the firmware partition without mounting it"),
    ("dpkg-query", "dpkg", "lists the installed packages for the manifest"),
    ("tar", "tar", "unpacks the cached root filesystem"),
    ("zstd", "zstd", "compresses the image"),
    ("cargo", "rustup (https://rustup.rs)", "builds node-agent"),
];

/// Checks everything; fixes binfmt_misc itself when it safely can (as root).
/// Returns notes on what it did, for the user.
pub fn check(arch: &str, need_cargo: bool) -> Result<Vec<String>, ImageError> {
    let mut notes = Vec::new();
    for (prog, package, why) in PROGRAMS {
        if *prog == "cargo" && !need_cargo {
            continue;
        }
        if !on_path(prog) {
            return Err(ImageError::Prerequisite {
                what: format!("`{prog}` is not on PATH (it {why})"),
                fix: format!("install it: apt-get install {package}  (or run scripts/setup.sh)"),
            });
        }
    }
    if e2fs_version().is_some_and(|v| v < (1, 43)) {
        return Err(ImageError::Prerequisite {
            what: "mkfs.ext4 is older than 1.43 and has no `-d` to populate a file system".into(),
            fix: "install e2fsprogs 1.43 or newer".into(),
        });
    }
    if host_arch().as_deref() != Some(arch) {
        foreign_arch(arch, &mut notes)?;
    }
    Ok(notes)
}

fn foreign_arch(arch: &str, notes: &mut Vec<String>) -> Result<(), ImageError> {
    let qemu = match arch {
        "arm64" => "aarch64",
        "armhf" | "armel" => "arm",
        other => other,
    };
    if !Path::new(&format!("/usr/libexec/qemu-binfmt/{qemu}-binfmt-P")).exists()
        && !on_path(&format!("qemu-{qemu}-static"))
    {
        return Err(ImageError::Prerequisite {
            what: format!("this host cannot run {arch} programs (no qemu-{qemu}-static)"),
            fix: "install them: apt-get install qemu-user-static binfmt-support".into(),
        });
    }
    let misc = Path::new("/proc/sys/fs/binfmt_misc");
    if !misc.join("status").exists() {
        if !is_root() {
            return Err(ImageError::Prerequisite {
                what: "binfmt_misc is not mounted".into(),
                fix: "as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc".into(),
            });
        }
        run_fix("mount", &["-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])?;
        notes.push("mounted binfmt_misc on /proc/sys/fs/binfmt_misc".into());
    }
    let entry = misc.join(format!("qemu-{qemu}"));
    let enabled = std::fs::read_to_string(&entry).is_ok_and(|s| s.starts_with("enabled"));
    if !enabled {
        if !is_root() || !on_path("update-binfmts") {
            return Err(ImageError::Prerequisite {
                what: format!("binfmt_misc has no enabled qemu-{qemu} entry"),
                fix: format!(
                    "as root: apt-get install binfmt-support qemu-user-static && update-binfmts --enable qemu-{qemu}"
                ),
            });
        }
        run_fix("update-binfmts", &["--enable", &format!("qemu-{qemu}")])?;
        notes.push(format!("enabled qemu-{qemu} in binfmt_misc (update-binfmts --enable)"));
    }
    Ok(())
}

fn run_fix(prog: &str, args: &[&str]) -> Result<(), ImageError> {
    let ok = Command::new(prog).args(args).status().is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(ImageError::Prerequisite {
            what: format!("`{prog} {}` failed", args.join(" ")),
            fix: "run it by hand as root and look at its message".into(),
        })
    }
}

pub fn is_root() -> bool {
    // The effective uid, from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Debian's name for the host architecture.
fn host_arch() -> Option<String> {
    Some(
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "armhf",
            "x86" => "i386",
            other => other,
        }
        .to_string(),
    )
}

fn e2fs_version() -> Option<(u32, u32)> {
    let out = Command::new("mkfs.ext4").arg("-V").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().nth(1)?;
    let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}
