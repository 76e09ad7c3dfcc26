//! What makes one image fit every board: things left for first boot (host
//! keys, machine-id, growing the root file system), identity-independent
//! settings (fstab by label, hostname), node-agent and enabled units.
//!
//! node-agent is installed where its unit's `ExecStart=` points
//! (`/usr/local/bin/node-agent` with the shipped unit).
//!
//! The first-boot units and scripts themselves are files in
//! `overlays/base` (read them there); this module installs the agent, clears
//! per-machine state and enables units the way `systemctl enable` would,
//! without running anything inside the arm64 tree.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ImageError, Profile};

/// Units enabled in every image. Each must exist in the tree (from a
/// package or an overlay).
pub const UNITS: &[&str] = &[
    "node-agent.service",
    "pi-lab-growroot.service",
    "pi-lab-ssh-hostkeys.service",
    "pi-lab-mgmt-network.service",
    "pi-lab-identity.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "ssh.service",
];

/// Units of Debian's packages masked in every image: `sshd-keygen.service`
/// makes an RSA host key on first boot, half a minute on a Pi 3B (minutes
/// emulated) that sshd waits for; `pi-lab-ssh-hostkeys.service` makes
/// Ed25519 and ECDSA keys instead. (FRR is kept out of the boot by a
/// drop-in, `overlays/base/etc/systemd/system/frr.service.d/`.)
/// `e2scrub_reap.service` looks for LVM snapshots a card never has, one more
/// unit in the boot's critical minutes.
pub const MASKED: &[&str] = &["sshd-keygen.service", "e2scrub_reap.service"];

/// `/boot/firmware` is `nofail` with a long device timeout: an emulated or
/// slow card must not drop the boot into emergency mode; units that need
/// it say `RequiresMountsFor=/boot/firmware`.
pub const FSTAB: &str = "\
# <file system>   <mount point>   <type>  <options>                                              <dump> <pass>
LABEL=RASPIROOT   /               ext4    rw,noatime,errors=remount-ro                           0      1
LABEL=RASPIFIRM   /boot/firmware  vfat    rw,noatime,umask=0077,nofail,x-systemd.device-timeout=5min  0  2
";

fn io(ctx: &str, p: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let ctx = format!("{ctx} {}", p.display());
    move |e| ImageError::io(ctx, e)
}

fn write(p: &Path, text: &str) -> Result<(), ImageError> {
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    if p.symlink_metadata().is_ok() {
        fs::remove_file(p).map_err(io("replacing", p))?;
    }
    fs::write(p, text).map_err(io("writing", p))
}

/// A unit file of the root file system: where it is and its `[Install]`
/// section, so units can be enabled without the tree at hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Absolute path in the image, e.g. `/usr/lib/systemd/system/ssh.service`.
    pub path: String,
    pub install: Vec<(String, String)>,
}

/// Where systemd looks for unit files, most specific first.
const UNIT_DIRS: &[&str] = &["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"];

/// The unit files of `tree` (regular files only; the first directory of
/// [`UNIT_DIRS`] that has a unit wins, as for systemd).
pub fn unit_index(tree: &Path) -> Result<BTreeMap<String, Unit>, ImageError> {
    let mut out = BTreeMap::new();
    for dir in UNIT_DIRS {
        let d = tree.join(dir);
        if !d.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        for entry in fs::read_dir(&d).map_err(io("reading", &d))? {
            let entry = entry.map_err(io("reading", &d))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if out.contains_key(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let path = format!("/{dir}/{name}");
            out.insert(name, Unit { path, install: install_section(&text) });
        }
    }
    Ok(out)
}

/// The units a build can enable: those in the build's own files (`top`,
/// from overlays) first, then the root file system's.
#[derive(Debug)]
pub struct Units<'a> {
    pub top: &'a Path,
    pub base: &'a BTreeMap<String, Unit>,
}

impl Units<'_> {
    fn top_unit(&self, unit: &str) -> Option<PathBuf> {
        UNIT_DIRS.iter().map(|d| self.top.join(d).join(unit)).find(|p| p.is_file())
    }

    /// The unit's path in the image and its `[Install]` section.
    pub fn find(&self, unit: &str) -> Result<Option<Unit>, ImageError> {
        if let Some(p) = self.top_unit(unit) {
            let text = fs::read_to_string(&p).map_err(io("reading", &p))?;
            let path = Path::new("/").join(p.strip_prefix(self.top).unwrap_or(&p));
            return Ok(Some(Unit {
                path: path.to_string_lossy().into_owned(),
                install: install_section(&text),
            }));
        }
        Ok(self.base.get(unit).cloned())
    }
}

/// Where node-agent goes: the program its unit starts (`ExecStart=`), so
/// unit and binary cannot disagree. The unit comes from an overlay.
pub fn agent_path(top: &Path) -> Result<PathBuf, ImageError> {
    let units = Units { top, base: &BTreeMap::new() };
    let unit = units.top_unit("node-agent.service").ok_or_else(|| ImageError::Step {
        step: "node-agent",
        message: "no node-agent.service in the image: overlays/base/etc/systemd/system/node-agent.service is missing".into(),
    })?;
    let text = fs::read_to_string(&unit).map_err(io("reading", &unit))?;
    let program = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .filter_map(|cmd| cmd.split_whitespace().next())
        .map(|p| p.trim_start_matches(['-', '@', ':', '+', '!']))
        .find(|p| p.starts_with('/'))
        .ok_or_else(|| ImageError::Step {
            step: "node-agent",
            message: format!("{}: no ExecStart= with an absolute path", unit.display()),
        })?;
    Ok(PathBuf::from(program))
}

/// Per-machine state is made on first boot, never shipped in the image:
/// no SSH host keys, an empty machine-id (systemd makes one,
/// ConditionFirstBoot), no D-Bus machine id. Done once on the root file
/// system, before it is cached.
pub fn clear_machine_state(tree: &Path) -> Result<(), ImageError> {
    let ssh = tree.join("etc/ssh");
    if ssh.is_dir() {
        for entry in fs::read_dir(&ssh).map_err(io("reading", &ssh))? {
            let p = entry.map_err(io("reading", &ssh))?.path();
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ssh_host_")) {
                fs::remove_file(&p).map_err(io("removing", &p))?;
            }
        }
    }
    write(&tree.join("etc/machine-id"), "")?;
    let dbus_id = tree.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok_and(|m| m.is_file()) {
        fs::remove_file(&dbus_id).map_err(io("removing", &dbus_id))?;
    }
    Ok(())
}

/// The build's own files in `top` (which already holds the overlays):
/// node-agent, hostname, hosts, fstab, and the enabled units' links.
pub fn prepare(
    top: &Path,
    profile: &Profile,
    agent: &Path,
    base_units: &BTreeMap<String, Unit>,
) -> Result<(), ImageError> {
    let rel = agent_path(top)?;
    let bin = top.join(rel.strip_prefix("/").unwrap_or(&rel));
    if let Some(dir) = bin.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    fs::copy(agent, &bin).map_err(io("installing node-agent to", &bin))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &bin))?;
    let host = &profile.profile.hostname;
    write(&top.join("etc/hostname"), &format!("{host}\n"))?;
    write(
        &top.join("etc/hosts"),
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
        ),
    )?;
    write(&top.join("etc/fstab"), FSTAB)?;
    let updated = updated_stamp(profile.epoch());
    write(&top.join("etc/.updated"), &updated)?;
    write(&top.join("var/.updated"), &updated)?;
    let units = Units { top, base: base_units };
    for unit in UNITS {
        enable(&units, unit)?;
    }
    for unit in MASKED {
        link(top, "", unit, Path::new("/dev/null"))?;
    }
    Ok(())
}

/// `/etc/.updated` and `/var/.updated` as `systemd-update-done` writes
/// them. The image's caches were made when its packages were installed, so
/// the `ConditionNeedsUpdate=` units (ldconfig, hwdb, journal catalog) have
/// nothing to do on first boot; without these stamps they ran first in the
/// boot's critical path (ldconfig alone 5.5 s on an emulated Pi 3B). An
/// `apt upgrade` on the board makes `/usr` newer and they run again.
pub fn updated_stamp(epoch: u64) -> String {
    format!(
        "# This file was created by pi-lab image build: /usr and the caches made from it agree.\n\
         TIMESTAMP_NSEC={epoch}000000000\n"
    )
}

/// `systemctl enable` for one unit: links (made in `units.top`) from its
/// `[Install]` section (`WantedBy=`, `RequiredBy=`, `Alias=`) and the same
/// for `Also=` units.
pub fn enable(units: &Units<'_>, unit: &str) -> Result<(), ImageError> {
    let mut todo = vec![unit.to_string()];
    let mut done: Vec<String> = Vec::new();
    while let Some(unit) = todo.pop() {
        if done.contains(&unit) {
            continue;
        }
        let found = units.find(&unit)?.ok_or_else(|| ImageError::Step {
            step: "enable units",
            message: format!(
                "unit {unit} is not in the image: it must come from a package or an overlay (etc/systemd/system/{unit})"
            ),
        })?;
        let target = PathBuf::from(&found.path);
        for (key, value) in &found.install {
            for name in value.split_whitespace() {
                match key.as_str() {
                    "WantedBy" => link(units.top, &format!("{name}.wants"), &unit, &target)?,
                    "RequiredBy" => link(units.top, &format!("{name}.requires"), &unit, &target)?,
                    "Alias" => link(units.top, "", name, &target)?,
                    "Also" => todo.push(name.to_string()),
                    _ => {}
                }
            }
        }
        done.push(unit);
    }
    Ok(())
}

fn link(tree: &Path, dir: &str, name: &str, target: &Path) -> Result<(), ImageError> {
    let d = tree.join("etc/systemd/system").join(dir);
    fs::create_dir_all(&d).map_err(io("creating", &d))?;
    let l = d.join(name);
    if l.symlink_metadata().is_ok() {
        fs::remove_file(&l).map_err(io("replacing", &l))?;
    }
    symlink(target, &l).map_err(io("linking", &l))
}

/// `key=value` pairs of a unit's `[Install]` section.
fn install_section(text: &str) -> Vec<(String, String)> {
    let mut in_install = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if in_install && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_follows_install_section_and_also_across_top_and_base() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (tree, top) = (dir.join("tree"), dir.join("top"));
        let lib = tree.join("usr/lib/systemd/system");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("a.service"), "[Unit]\n[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\nAlias=b.service\nAlso=c.socket\n").unwrap();
        fs::write(lib.join("c.socket"), "[Install]\nWantedBy=sockets.target\n").unwrap();
        let base = unit_index(&tree).unwrap();
        assert_eq!(base["a.service"].path, "/usr/lib/systemd/system/a.service");
        let top_units = top.join("etc/systemd/system");
        fs::create_dir_all(&top_units).unwrap();
        fs::write(top_units.join("c.socket"), "[Install]\nWantedBy=other.target\n").unwrap();
        let units = Units { top: &top, base: &base };
        enable(&units, "a.service").unwrap();
        assert_eq!(
            fs::read_link(top_units.join("multi-user.target.wants/a.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/a.service")
        );
        assert_eq!(
            fs::read_link(top_units.join("b.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/a.service")
        );
        // The overlay's c.socket wins over the package's.
        assert_eq!(
            fs::read_link(top_units.join("other.target.wants/c.socket")).unwrap(),
            Path::new("/etc/systemd/system/c.socket")
        );
        assert!(top_units.join("sockets.target.wants/c.socket").symlink_metadata().is_err());
        let err = enable(&units, "missing.service").unwrap_err().to_string();
        assert!(err.contains("missing.service"), "{err}");
        assert!(agent_path(&top).is_err());
        fs::write(
            top_units.join("node-agent.service"),
            "[Service]\nExecStart=-/usr/local/bin/node-agent run --config /x\n",
        )
        .unwrap();
        assert_eq!(agent_path(&top).unwrap(), Path::new("/usr/local/bin/node-agent"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn machine_state_is_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().to_path_buf();
        fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        fs::create_dir_all(tree.join("var/lib/dbus")).unwrap();
        fs::write(tree.join("etc/ssh/ssh_host_ed25519_key"), "secret").unwrap();
        fs::write(tree.join("etc/ssh/sshd_config"), "keep").unwrap();
        fs::write(tree.join("etc/machine-id"), "0123").unwrap();
        fs::write(tree.join("var/lib/dbus/machine-id"), "0123").unwrap();
        clear_machine_state(&tree).unwrap();
        assert!(!tree.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(tree.join("etc/ssh/sshd_config").exists());
        assert_eq!(fs::read_to_string(tree.join("etc/machine-id")).unwrap(), "");
        assert!(!tree.join("var/lib/dbus/machine-id").exists());
        fs::remove_dir_all(&tree).unwrap();
    }
}
