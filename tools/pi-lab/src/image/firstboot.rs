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

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

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

/// Units of Debian's packages that a board must not start at boot:
/// - `frr.service`: Debian orders it before `network.target`, so sshd and
///   anything after the network would wait for FRR's start (a minute and
///   more on a Pi); node-agent starts it when the node's config routes.
/// - `sshd-keygen.service`: makes an RSA host key on first boot, half a
///   minute on a Pi; `pi-lab-ssh-hostkeys.service` makes Ed25519 and ECDSA.
pub const NOT_AT_BOOT: &[(&str, Off)] =
    &[("frr.service", Off::Disabled), ("sshd-keygen.service", Off::Masked)];

/// How a unit is kept from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Off {
    /// `systemctl disable`: not pulled in by a target; can still be started.
    Disabled,
    /// `systemctl mask`: cannot be started at all.
    Masked,
}

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

/// Where node-agent goes: the program its unit starts (`ExecStart=`), so
/// unit and binary cannot disagree.
pub fn agent_path(tree: &Path) -> Result<PathBuf, ImageError> {
    let unit = find_unit(tree, "node-agent.service").ok_or_else(|| ImageError::Step {
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

pub fn prepare(tree: &Path, profile: &Profile, agent: &Path) -> Result<(), ImageError> {
    let rel = agent_path(tree)?;
    let bin = tree.join(rel.strip_prefix("/").unwrap_or(&rel));
    if let Some(dir) = bin.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    fs::copy(agent, &bin).map_err(io("installing node-agent to", &bin))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &bin))?;

    // Per-machine state is made on first boot, never shipped in the image.
    for entry in fs::read_dir(tree.join("etc/ssh")).map_err(io("reading", &tree.join("etc/ssh")))? {
        let p = entry.map_err(io("reading", &tree.join("etc/ssh")))?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ssh_host_")) {
            fs::remove_file(&p).map_err(io("removing", &p))?;
        }
    }
    // Empty machine-id: systemd makes one on first boot (ConditionFirstBoot).
    write(&tree.join("etc/machine-id"), "")?;
    let dbus_id = tree.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok_and(|m| m.is_file()) {
        fs::remove_file(&dbus_id).map_err(io("removing", &dbus_id))?;
    }
    let host = &profile.profile.hostname;
    write(&tree.join("etc/hostname"), &format!("{host}\n"))?;
    write(
        &tree.join("etc/hosts"),
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
        ),
    )?;
    write(&tree.join("etc/fstab"), FSTAB)?;
    for unit in UNITS {
        enable(tree, unit)?;
    }
    for (unit, off) in NOT_AT_BOOT {
        keep_off(tree, unit, *off)?;
    }
    Ok(())
}

/// Where systemd looks for unit files, most specific first.
const UNIT_DIRS: &[&str] = &["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"];

fn find_unit(tree: &Path, unit: &str) -> Option<PathBuf> {
    UNIT_DIRS.iter().map(|d| tree.join(d).join(unit)).find(|p| p.symlink_metadata().is_ok())
}

/// `systemctl enable` for one unit: links from its `[Install]` section
/// (`WantedBy=`, `RequiredBy=`, `Alias=`) and the same for `Also=` units.
pub fn enable(tree: &Path, unit: &str) -> Result<(), ImageError> {
    let mut todo = vec![unit.to_string()];
    let mut done: Vec<String> = Vec::new();
    while let Some(unit) = todo.pop() {
        if done.contains(&unit) {
            continue;
        }
        let path = find_unit(tree, &unit).ok_or_else(|| ImageError::Step {
            step: "enable units",
            message: format!(
                "unit {unit} is not in the image: it must come from a package or an overlay (etc/systemd/system/{unit})"
            ),
        })?;
        let text = fs::read_to_string(&path).map_err(io("reading", &path))?;
        let target = Path::new("/").join(path.strip_prefix(tree).unwrap_or(&path));
        for (key, value) in install_section(&text) {
            for name in value.split_whitespace() {
                match key.as_str() {
                    "WantedBy" => link(tree, &format!("{name}.wants"), &unit, &target)?,
                    "RequiredBy" => link(tree, &format!("{name}.requires"), &unit, &target)?,
                    "Alias" => link(tree, "", name, &target)?,
                    "Also" => todo.push(name.to_string()),
                    _ => {}
                }
            }
        }
        done.push(unit);
    }
    Ok(())
}

/// `systemctl disable` (every link to the unit under `/etc/systemd/system`
/// goes) or `systemctl mask` (the unit name points at `/dev/null`).
pub fn keep_off(tree: &Path, unit: &str, off: Off) -> Result<(), ImageError> {
    let etc = tree.join("etc/systemd/system");
    for entry in fs::read_dir(&etc).map_err(io("reading", &etc))?.flatten() {
        let link = entry.path().join(unit);
        if entry.path().is_dir() && link.symlink_metadata().is_ok() {
            fs::remove_file(&link).map_err(io("removing", &link))?;
        }
    }
    if off == Off::Masked {
        link(tree, "", unit, Path::new("/dev/null"))?;
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
    fn enable_follows_install_section_and_also() {
        let tree = std::env::temp_dir().join(format!("pi-lab-enable-{}", std::process::id()));
        let lib = tree.join("usr/lib/systemd/system");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("a.service"), "[Unit]\n[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\nAlias=b.service\nAlso=c.socket\n").unwrap();
        fs::write(lib.join("c.socket"), "[Install]\nWantedBy=sockets.target\n").unwrap();
        enable(&tree, "a.service").unwrap();
        let etc = tree.join("etc/systemd/system");
        assert_eq!(
            fs::read_link(etc.join("multi-user.target.wants/a.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/a.service")
        );
        assert_eq!(
            fs::read_link(etc.join("b.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/a.service")
        );
        assert!(etc.join("sockets.target.wants/c.socket").symlink_metadata().is_ok());
        let err = enable(&tree, "missing.service").unwrap_err().to_string();
        assert!(err.contains("missing.service"), "{err}");
        assert!(agent_path(&tree).is_err());
        let etc_unit = tree.join("etc/systemd/system/node-agent.service");
        fs::write(&etc_unit, "[Service]\nExecStart=-/usr/local/bin/node-agent run --config /x\n")
            .unwrap();
        assert_eq!(agent_path(&tree).unwrap(), Path::new("/usr/local/bin/node-agent"));
        keep_off(&tree, "a.service", Off::Disabled).unwrap();
        assert!(etc.join("multi-user.target.wants/a.service").symlink_metadata().is_err());
        keep_off(&tree, "c.socket", Off::Masked).unwrap();
        assert_eq!(fs::read_link(etc.join("c.socket")).unwrap(), Path::new("/dev/null"));
        assert!(etc.join("sockets.target.wants/c.socket").symlink_metadata().is_err());
        fs::remove_dir_all(&tree).unwrap();
    }
}
