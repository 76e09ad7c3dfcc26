//! The root file system, made by mmdebstrap in cached layers:
//!
//! - **base**: minbase, kernel, boot and Wi-Fi firmware, and the initramfs
//!   (the slowest part under emulation, so it is made once, here);
//! - **lab**: FRR and pi-lab's tools, installed on the unpacked base;
//! - **profile**: the profile's packages, installed on the unpacked lab layer.
//!
//! Each layer is a tarball keyed by a hash of what made it, its parent's key
//! included, so adding a package to the profile installs only the profile's
//! packages on the cached lab layer. Downloaded packages are kept between
//! builds in `CACHE/apt`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::profile::{BASE_LAYER, LAB_LAYER, cache_key};
use super::progress::Step;
use super::{ImageError, Profile, outputs};

/// What pi-lab does to make the layers besides installing packages. Part of
/// every layer's key: change it and every cached layer is rebuilt.
pub const RECIPE: &str = "pi-lab rootfs recipe 3: layers base/lab/profile, initramfs once in base, raspi-firmware defaults, hook rerun, no man/locale/doc, no ssh host keys, no debconf preconfiguration, host depmod, apt cache";

/// mmdebstrap's hook that runs dpkg under eatmydata: no fsync while the
/// throw-away build root is filled (it is packed into a tarball at the end).
pub const EATMYDATA_HOOKS: &str = "/usr/share/mmdebstrap/hooks/eatmydata";

/// mmdebstrap's eatmydata hook, and the `dpkg-architecture` (dpkg-dev) it
/// runs, are both on this host.
pub fn eatmydata_available() -> bool {
    Path::new(EATMYDATA_HOOKS).is_dir() && crate::programs::on_path("dpkg-architecture")
}

/// Emulated, an initramfs takes minutes, and package triggers would make it
/// two or three times: `update-initramfs` is a no-op while packages install
/// and runs once at the end of the base layer.
const DIVERT: &str = r#"chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.pi-lab --add /usr/sbin/update-initramfs && printf '#!/bin/sh\necho pi-lab: update-initramfs deferred\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs""#;
/// Under emulation depmod takes a minute (it decompresses every module of
/// the kernel); the host's depmod writes the same module index (the text
/// files byte for byte, the `.bin` indexes in the same format) in seconds.
/// The kernel's own call is a no-op while packages install.
const DIVERT_DEPMOD: &str = r#"chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/depmod.pi-lab --add /usr/sbin/depmod && printf '#!/bin/sh
echo pi-lab: depmod deferred
' > "$1/usr/sbin/depmod" && chmod 755 "$1/usr/sbin/depmod""#;
const HOST_DEPMOD: &str = r#"if grep -q 'pi-lab: depmod deferred' "$1/usr/sbin/depmod"; then rm -f "$1/usr/sbin/depmod"; fi && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/depmod && for d in "$1"/usr/lib/modules/*/; do v=$(basename "$d"); depmod -b "$1" -F "$1/boot/System.map-$v" -a "$v" || exit 1; done"#;

/// While a layer is built, apt does not run debconf's pre-configuration
/// (perl under emulation, up to a minute per layer, for questions that are
/// answered noninteractively anyway). Removed before the layer is packed.
const NO_PRECONFIGURE: &str = r#"printf '// pi-lab image build, removed at its end
#clear DPkg::Pre-Install-Pkgs;
' > "$1/etc/apt/apt.conf.d/99pi-lab-build""#;
const PRECONFIGURE_AGAIN: &str = r#"rm -f "$1/etc/apt/apt.conf.d/99pi-lab-build""#;

const UNDIVERT: &str = r#"rm -f "$1/usr/sbin/update-initramfs" && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs && chroot "$1" update-initramfs -c -k all"#;

/// One layer of the root file system: its packages and its cache key.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: &'static str,
    /// What the progress display calls it.
    pub title: String,
    pub packages: Vec<String>,
    pub key: String,
}

/// The layers a profile needs, in build order. A package already in an
/// earlier layer is not installed again.
pub fn plan(profile: &Profile) -> Vec<Layer> {
    let base: Vec<String> = BASE_LAYER.iter().map(|p| p.to_string()).collect();
    let mut parts = profile.base_inputs();
    parts.push(("packages", base.join(",")));
    parts.push(("recipe", RECIPE.to_string()));
    let mut layers = vec![Layer {
        name: "base",
        title: "base layer (minbase, kernel, firmware, initramfs)".into(),
        key: cache_key(&parts),
        packages: base,
    }];
    let lab: Vec<String> = LAB_LAYER.iter().map(|p| p.to_string()).collect();
    let mut own: Vec<String> = profile.profile.rootfs.packages.clone();
    own.sort();
    own.dedup();
    own.retain(|p| !BASE_LAYER.contains(&p.as_str()) && !LAB_LAYER.contains(&p.as_str()));
    let derived = [
        ("lab", "lab layer (FRR, OpenSSH, tools)".to_string(), lab),
        ("profile", format!("profile layer ({} packages)", own.len()), own),
    ];
    for (name, title, packages) in derived {
        if packages.is_empty() {
            continue;
        }
        let parent = layers.last().map(|l| l.key.clone()).unwrap_or_default();
        let key = cache_key(&[
            ("parent", parent),
            ("layer", name.to_string()),
            ("packages", packages.join(",")),
            ("recipe", RECIPE.to_string()),
        ]);
        layers.push(Layer { name, title, packages, key });
    }
    layers
}

/// A layer's tarball, from cache or freshly made.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub name: &'static str,
    pub key: String,
    #[serde(skip)]
    pub tar: PathBuf,
    pub sha256: String,
    pub cached: bool,
    pub packages: Vec<String>,
}

/// The cached tarball of `layer`, or a new one made on top of `parent`.
pub fn provide(
    layer: &Layer,
    parent: Option<&Built>,
    profile: &Profile,
    cache: &Path,
    rebuild: bool,
    step: &Step,
) -> Result<Built, ImageError> {
    let dir = cache.join("rootfs");
    let apt = cache.join("apt");
    for d in [&dir, &apt] {
        std::fs::create_dir_all(d)
            .map_err(|e| ImageError::io(format!("creating cache {}", d.display()), e))?;
    }
    let stem = format!("{}-{}", layer.name, layer.key);
    let tar = dir.join(format!("{stem}.tar"));
    let sum = dir.join(format!("{stem}.tar.sha256"));
    let built = |tar: PathBuf, sha256: String, cached| Built {
        name: layer.name,
        key: layer.key.clone(),
        tar,
        sha256,
        cached,
        packages: layer.packages.clone(),
    };
    if !rebuild
        && tar.is_file()
        && let Ok(sha256) = std::fs::read_to_string(&sum)
    {
        step.set_cached();
        return Ok(built(tar, sha256.trim().to_string(), true));
    }
    let pid = std::process::id();
    let partial = dir.join(format!("{stem}.tar.partial-{pid}"));
    let mut guard = outputs::RemoveOnDrop(vec![partial.clone()]);
    let log = dir.join(format!("{stem}.log"));
    let mut cmd = mmdebstrap(profile);
    match parent {
        None => base_hooks(&mut cmd, profile, &apt, &dir, &stem, &mut guard)?,
        Some(p) => derived_hooks(&mut cmd, layer, &p.tar, &apt),
    }
    // Keep what apt downloaded for the next build, not in the layer.
    cmd.arg(format!("--customize-hook=sync-out /var/cache/apt/archives {}", quote(&apt)))
        .arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb");
    if eatmydata_available() {
        // Last, so its customize script (which removes the dpkg wrapper)
        // runs after ours.
        cmd.arg(format!("--hook-dir={EATMYDATA_HOOKS}"));
    }
    let r = &profile.profile.rootfs;
    cmd.arg(&r.suite).arg(&partial);
    if let Some(m) = &r.mirror {
        cmd.arg(m);
    }
    step.command("mmdebstrap", &mut cmd, &log).map_err(|e| explain(e, profile, layer, &log))?;
    let sha256 = outputs::sha256_file(&partial, &step.cancel)?;
    std::fs::rename(&partial, &tar)
        .map_err(|e| ImageError::io(format!("renaming {}", partial.display()), e))?;
    write(&sum, &format!("{sha256}\n"))?;
    Ok(built(tar, sha256, false))
}

fn write(path: &Path, text: &str) -> Result<(), ImageError> {
    std::fs::write(path, text).map_err(|e| ImageError::io(format!("writing {}", path.display()), e))
}

/// `'text'` for sh, whatever `text` holds.
fn quote(text: &Path) -> String {
    format!("'{}'", text.to_string_lossy().replace('\'', r"'\''"))
}

/// What every layer's mmdebstrap has: tar output, no docs. The apt cache is
/// synchronised in by each layer's hooks (after the parent's tree is in
/// place) and out after them.
fn mmdebstrap(profile: &Profile) -> Command {
    let r = &profile.profile.rootfs;
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", profile.epoch().to_string())
        .env("LC_ALL", "C.UTF-8")
        .arg("--mode=auto")
        // dpkg's "Unpacking"/"Setting up" lines: the progress display shows
        // the last one, and the log says where the time went.
        .arg("--verbose")
        .arg("--format=tar")
        .arg(format!("--arch={}", r.architecture))
        .arg(format!("--components={}", r.components.join(",")))
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--dpkgopt=path-include=/usr/share/locale/locale.alias")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--skip=download/empty")
        .arg("--skip=essential/unlink");
    cmd
}

/// The base layer: minbase plus kernel and firmware; board settings for
/// raspi-firmware's hook and the initramfs, which is made once at the end.
fn base_hooks(
    cmd: &mut Command,
    profile: &Profile,
    apt: &Path,
    dir: &Path,
    stem: &str,
    guard: &mut outputs::RemoveOnDrop,
) -> Result<(), ImageError> {
    let r = &profile.profile.rootfs;
    let pid = std::process::id();
    let file = |what: &str, text: &str| -> Result<PathBuf, ImageError> {
        let p = dir.join(format!("{stem}.{what}-{pid}"));
        write(&p, text)?;
        Ok(p)
    };
    let defaults = file("raspi-firmware", &profile.raspi_firmware_defaults())?;
    let extra = file(
        "raspi-extra-cmdline",
        &format!("{}\n", profile.profile.firmware.extra_cmdline.trim()),
    )?;
    guard.0.extend([defaults.clone(), extra.clone()]);
    cmd.arg(format!("--variant={}", r.variant))
        .arg(format!("--include={}", BASE_LAYER.join(",")))
        .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/ \"$1\"/boot/firmware")
        .arg(sync_in(apt))
        .arg(format!("--essential-hook={DIVERT}"))
        .arg(format!("--essential-hook={NO_PRECONFIGURE}"));
    let host_depmod = crate::programs::on_path("depmod");
    if host_depmod {
        cmd.arg(format!("--essential-hook={DIVERT_DEPMOD}"));
    }
    cmd.arg(format!("--customize-hook=upload {} /etc/default/raspi-firmware", quote(&defaults)))
        .arg(format!("--customize-hook=upload {} /etc/default/raspi-extra-cmdline", quote(&extra)));
    for (i, (path, text, mode)) in profile.initramfs_files().into_iter().enumerate() {
        let f = file(&format!("initramfs-{i}"), &text)?;
        guard.0.push(f.clone());
        let dir =
            Path::new(path).parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        cmd.arg(format!("--customize-hook=mkdir -p \"$1{dir}\""))
            .arg(format!("--customize-hook=upload {} {path}", quote(&f)))
            .arg(format!("--customize-hook=chmod {mode:o} \"$1{path}\""));
    }
    cmd.arg(format!("--customize-hook={PRECONFIGURE_AGAIN}"));
    if host_depmod {
        cmd.arg(format!("--customize-hook={HOST_DEPMOD}"));
    }
    cmd.arg(format!("--customize-hook={UNDIVERT}")).arg(
        "--customize-hook=chroot \"$1\" env DEB_MAINT_PARAMS=configure \
         /etc/kernel/postinst.d/z50-raspi-firmware",
    );
    Ok(())
}

/// A layer on top of its parent: the parent's tree unpacked, then apt
/// (run from outside, as mmdebstrap itself does, with dpkg chrooted)
/// installs only this layer's packages.
fn derived_hooks(cmd: &mut Command, layer: &Layer, parent: &Path, apt: &Path) {
    cmd.arg("--variant=custom")
        .arg(format!(
            "--setup-hook=tar --xattrs --xattrs-include='*' --numeric-owner -xpf {} -C \"$1\"",
            quote(parent)
        ))
        .arg(sync_in(apt))
        .arg(format!("--setup-hook={NO_PRECONFIGURE}"))
        .arg(format!(
            "--customize-hook=APT_CONFIG=\"$MMDEBSTRAP_APT_CONFIG\" apt-get --yes \
             -o Dir::Bin::dpkg=env -o DPkg::Options::=--unset=TMPDIR -o DPkg::Options::=dpkg \
             -o DPkg::Chroot-Directory=\"$1\" install {}",
            layer.packages.join(" ")
        ))
        // openssh-server's postinst makes random host keys; every board
        // makes its own on first boot, and the tarball stays reproducible.
        .arg("--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*")
        .arg(format!("--customize-hook={PRECONFIGURE_AGAIN}"));
}

fn sync_in(apt: &Path) -> String {
    format!("--setup-hook=sync-in {} /var/cache/apt/archives/", quote(apt))
}

/// Turns mmdebstrap's failures people hit most into plain advice.
fn explain(err: ImageError, profile: &Profile, layer: &Layer, log: &Path) -> ImageError {
    let ImageError::Step { message, .. } = &err else { return err };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let r = &profile.profile.rootfs;
    let path = profile.path.display();
    let mirror = r.mirror.clone().unwrap_or_else(|| "mmdebstrap's default mirror".into());
    if let Some(pkg) = text.lines().find_map(|l| l.split("Unable to locate package ").nth(1)) {
        let fix = if layer.name == "profile" {
            format!("fix rootfs.packages in {path}")
        } else {
            format!("pi-lab's {} layer needs it: is the suite right in {path}?", layer.name)
        };
        return ImageError::Step {
            step: "mmdebstrap",
            message: format!(
                "package `{}` does not exist in Debian {} ({}) for {} at {mirror}: {fix}",
                pkg.trim(),
                r.suite,
                r.components.join(", "),
                r.architecture,
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
                "the mirror {mirror} is unreachable: check rootfs.mirror in {path} and the network (log: {})\n{}",
                log.display(),
                message
            ),
        };
    }
    err
}

/// Unpacks a layer's tarball into a fresh folder we may change.
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../images/pi3b-trixie.toml");

    fn profile(text: &str) -> Profile {
        Profile::parse(Path::new("p.toml"), text).unwrap()
    }

    #[test]
    fn adding_a_package_changes_only_the_profile_layer() {
        let a = plan(&profile(SHIPPED));
        let b = plan(&profile(&SHIPPED.replace("\"ethtool\",", "\"ethtool\", \"tree\",")));
        let names: Vec<_> = a.iter().map(|l| l.name).collect();
        assert_eq!(names, ["base", "lab", "profile"]);
        assert_eq!(a[0].key, b[0].key);
        assert_eq!(a[1].key, b[1].key);
        assert_ne!(a[2].key, b[2].key);
        assert!(b[2].packages.contains(&"tree".to_string()));
    }

    #[test]
    fn a_base_change_changes_every_layer_and_duplicates_are_dropped() {
        let a = plan(&profile(SHIPPED));
        let b = plan(&profile(&SHIPPED.replace("\"ext4\",", "\"ext4\", \"vfat\",")));
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x.key, y.key, "{}", x.name);
        }
        let c = plan(&profile(&SHIPPED.replace("\"ethtool\",", "\"ethtool\", \"frr\",")));
        assert_eq!(a[2].key, c[2].key, "frr is already in the lab layer");
        let d = plan(&profile(&SHIPPED.replace(
            "packages = [\n  \"iputils-ping\",\n  \"procps\",\n  \"less\",\n  \"tcpdump\",\n  \"ethtool\",\n]",
            "packages = []",
        )));
        assert_eq!(d.len(), 2, "no profile layer without profile packages");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
