//! The base root file system: mmdebstrap, cached as a tarball under a hash of
//! everything that makes it, with apt's downloads kept between builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::progress::Step;
use super::{ImageError, Profile, outputs};

/// What pi-lab does to the base system besides installing packages. Part of
/// the cache key: change it and every cached root file system is rebuilt.
pub const RECIPE: &str = "pi-lab rootfs recipe 2: initramfs once, raspi-firmware defaults, hook rerun, no man/locale/doc, apt cache";

/// Emulated, an initramfs takes minutes, and package triggers would make it
/// two or three times: `update-initramfs` is a no-op while packages install
/// and runs once at the end.
const DIVERT: &str = r#"chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.pi-lab --add /usr/sbin/update-initramfs && printf '#!/bin/sh\necho pi-lab: update-initramfs deferred\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs""#;
const UNDIVERT: &str = r#"rm -f "$1/usr/sbin/update-initramfs" && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs && chroot "$1" update-initramfs -c -k all"#;

/// A root file system tarball, from cache or freshly made.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tar: PathBuf,
    pub key: String,
    pub sha256: String,
    pub cached: bool,
}

pub fn provide(
    profile: &Profile,
    cache: &Path,
    no_cache: bool,
    step: &Step,
) -> Result<Rootfs, ImageError> {
    let key = profile.rootfs_key(RECIPE);
    let dir = cache.join("rootfs");
    let apt = cache.join("apt");
    for d in [&dir, &apt] {
        std::fs::create_dir_all(d)
            .map_err(|e| ImageError::io(format!("creating cache {}", d.display()), e))?;
    }
    let tar = dir.join(format!("{key}.tar"));
    let sum = dir.join(format!("{key}.tar.sha256"));
    if !no_cache
        && tar.is_file()
        && let Ok(sha256) = std::fs::read_to_string(&sum)
    {
        step.set_cached();
        return Ok(Rootfs { tar, key, sha256: sha256.trim().to_string(), cached: true });
    }
    let partial = dir.join(format!("{key}.tar.partial"));
    let _guard = outputs::RemoveOnDrop(vec![partial.clone()]);
    let log = dir.join(format!("{key}.log"));
    let defaults = dir.join(format!("{key}.raspi-firmware"));
    let extra = dir.join(format!("{key}.raspi-extra-cmdline"));
    write(&defaults, &profile.raspi_firmware_defaults())?;
    write(&extra, &format!("{}\n", profile.profile.firmware.extra_cmdline.trim()))?;
    let _inputs = outputs::RemoveOnDrop(vec![defaults.clone(), extra.clone()]);

    let mut cmd = mmdebstrap(profile, &apt, &defaults, &extra, &partial);
    step.command("mmdebstrap", &mut cmd, &log).map_err(|e| explain(e, profile, &log))?;
    let sha256 = outputs::sha256_file(&partial, &step.cancel)?;
    std::fs::rename(&partial, &tar)
        .map_err(|e| ImageError::io(format!("renaming {}", partial.display()), e))?;
    write(&sum, &format!("{sha256}\n"))?;
    Ok(Rootfs { tar, key, sha256, cached: false })
}

fn write(path: &Path, text: &str) -> Result<(), ImageError> {
    std::fs::write(path, text).map_err(|e| ImageError::io(format!("writing {}", path.display()), e))
}

/// The mmdebstrap command line. Hooks: keep downloaded packages in the
/// cache (`sync-in`/`sync-out`), set the firmware defaults and run
/// raspi-firmware's kernel hook again so `config.txt`/`cmdline.txt` use them.
fn mmdebstrap(profile: &Profile, apt: &Path, defaults: &Path, extra: &Path, out: &Path) -> Command {
    let r = &profile.profile.rootfs;
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", profile.epoch().to_string())
        .env("LC_ALL", "C.UTF-8")
        .arg("--mode=auto")
        .arg("--format=tar")
        .arg(format!("--arch={}", r.architecture))
        .arg(format!("--variant={}", r.variant))
        .arg(format!("--components={}", r.components.join(",")))
        .arg(format!("--include={}", profile.packages().join(",")))
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--dpkgopt=path-include=/usr/share/locale/locale.alias")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--skip=download/empty")
        .arg("--skip=essential/unlink")
        .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/ \"$1\"/boot/firmware")
        .arg(format!("--setup-hook=sync-in '{}' /var/cache/apt/archives/", apt.display()))
        .arg(format!("--customize-hook=sync-out /var/cache/apt/archives '{}'", apt.display()))
        .arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb")
        .arg(format!(
            "--customize-hook=upload '{}' /etc/default/raspi-firmware",
            defaults.display()
        ))
        .arg(format!(
            "--customize-hook=upload '{}' /etc/default/raspi-extra-cmdline",
            extra.display()
        ))
        .arg(format!("--essential-hook={DIVERT}"))
        .arg(format!("--customize-hook={UNDIVERT}"))
        .arg(
            "--customize-hook=chroot \"$1\" env DEB_MAINT_PARAMS=configure \
             /etc/kernel/postinst.d/z50-raspi-firmware",
        )
        .arg(&r.suite)
        .arg(out)
        .arg(&r.mirror);
    cmd
}

/// Turns mmdebstrap's failures people hit most into plain advice.
fn explain(err: ImageError, profile: &Profile, log: &Path) -> ImageError {
    let ImageError::Step { message, .. } = &err else { return err };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let r = &profile.profile.rootfs;
    let path = profile.path.display();
    if let Some(pkg) = text.lines().find_map(|l| l.split("Unable to locate package ").nth(1)) {
        return ImageError::Step {
            step: "mmdebstrap",
            message: format!(
                "package `{}` does not exist in Debian {} ({}) for {} at {}: fix rootfs.packages in {path}",
                pkg.trim(),
                r.suite,
                r.components.join(", "),
                r.architecture,
                r.mirror
            ),
        };
    }
    let unreachable = [
        "Could not connect",
        "Failed to fetch",
        "Temporary failure resolving",
        "Connection refused",
        "Unable to connect",
    ];
    if unreachable.iter().any(|m| text.contains(m)) {
        return ImageError::Step {
            step: "mmdebstrap",
            message: format!(
                "the mirror {} is unreachable: check rootfs.mirror in {path} and the network (log: {})\n{}",
                r.mirror,
                log.display(),
                message
            ),
        };
    }
    err
}

/// Unpacks the cached tarball into a fresh folder we may change.
pub fn unpack(tar: &Path, tree: &Path, step: &Step) -> Result<(), ImageError> {
    std::fs::create_dir_all(tree)
        .map_err(|e| ImageError::io(format!("creating {}", tree.display()), e))?;
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(tar)
        .arg("-C")
        .arg(tree);
    step.command("unpacking the root file system", &mut cmd, &step.log("unpack.log"))
}
