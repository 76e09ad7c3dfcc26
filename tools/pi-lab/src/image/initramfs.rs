//! The initramfs-tools configuration an image's base layer is built with,
//! from the profile's `[initramfs]`: which modules, what is left out, and
//! the two boot shortcuts a Pi 3B gains most from (no udev in the
//! initramfs, the firmware partition mounted before systemd starts).

use super::profile::Initramfs;

/// One file for initramfs-tools: path in the root file system, content,
/// mode.
pub type File = (&'static str, String, u32);

const INIT_TOP_UDEV: &str = include_str!("initramfs/init-top-udev");
const INIT_BOTTOM_UDEV: &str = include_str!("initramfs/init-bottom-udev");
const HOOK_NO_UDEV: &str = include_str!("initramfs/hook-no-udev");
const LOCAL_BOTTOM_FIRMWARE: &str = include_str!("initramfs/local-bottom-firmware");
const HOOK_FIRMWARE: &str = include_str!("initramfs/hook-firmware");

/// Every file pi-lab writes under `/etc/initramfs-tools` for this profile.
/// initramfs-tools runs the packages' hooks first, then these; a boot
/// script here replaces the package's script of the same name.
pub fn files(i: &Initramfs) -> Vec<File> {
    let mut files = vec![("/etc/initramfs-tools/conf.d/pi-lab", conf(i), 0o644)];
    if !i.modules.is_empty() {
        let mut list =
            String::from("# Written by pi-lab image build from the profile's [initramfs].\n");
        for m in &i.modules {
            list.push_str(m);
            list.push('\n');
        }
        files.push(("/etc/initramfs-tools/modules", list, 0o644));
    }
    if !i.exclude.is_empty() {
        let mut hook = String::from(
            "#!/bin/sh\n# Written by pi-lab image build: files the profile's [initramfs] leaves out.\n\
             case \"$1\" in prereqs) exit 0 ;; esac\n",
        );
        for path in &i.exclude {
            hook.push_str(&format!("rm -f \"$DESTDIR/{path}\"\n"));
        }
        files.push(("/etc/initramfs-tools/hooks/pi-lab-exclude", hook, 0o755));
    }
    if !i.udev {
        files.push(("/etc/initramfs-tools/scripts/init-top/udev", INIT_TOP_UDEV.into(), 0o755));
        files.push((
            "/etc/initramfs-tools/scripts/init-bottom/udev",
            INIT_BOTTOM_UDEV.into(),
            0o755,
        ));
        files.push(("/etc/initramfs-tools/hooks/pi-lab-no-udev", HOOK_NO_UDEV.into(), 0o755));
    }
    if i.mount_firmware {
        files.push((
            "/etc/initramfs-tools/scripts/local-bottom/pi-lab-firmware",
            LOCAL_BOTTOM_FIRMWARE.into(),
            0o755,
        ));
        files.push(("/etc/initramfs-tools/hooks/pi-lab-firmware", HOOK_FIRMWARE.into(), 0o755));
    }
    files
}

/// `conf.d/pi-lab`. The root is always ext4 (pi-lab makes it), and saying
/// so is what puts fsck into the initramfs: its hook cannot look at the
/// root's type from inside the build root, and left it out.
fn conf(i: &Initramfs) -> String {
    let mut conf = String::from(
        "# Written by pi-lab image build.\n\
         # The root's type, for the fsck hook (it cannot probe LABEL=RASPIROOT at build time).\n\
         FSTYPE=ext4\n",
    );
    if !i.modules.is_empty() {
        conf.push_str(
            "# Only the modules listed in /etc/initramfs-tools/modules (and their dependencies).\n\
             MODULES=list\n",
        );
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [File], path: &str) -> Option<&'a str> {
        files.iter().find(|f| f.0 == path).map(|f| f.1.as_str())
    }

    #[test]
    fn debian_defaults_only_name_the_root_type() {
        let files = files(&Initramfs { udev: true, ..Default::default() });
        assert_eq!(files.len(), 1, "{files:?}");
        let conf = file(&files, "/etc/initramfs-tools/conf.d/pi-lab").unwrap();
        assert!(conf.contains("FSTYPE=ext4") && !conf.contains("MODULES"), "{conf}");
    }

    #[test]
    fn without_udev_its_boot_scripts_are_replaced_and_blkid_kept() {
        let files = files(&Initramfs { udev: false, ..Default::default() });
        let top = file(&files, "/etc/initramfs-tools/scripts/init-top/udev").unwrap();
        assert!(top.lines().filter(|l| !l.starts_with('#')).all(|l| !l.contains("udev")), "{top}");
        let bottom = file(&files, "/etc/initramfs-tools/scripts/init-bottom/udev").unwrap();
        assert!(bottom.contains("move /dev") && !bottom.contains("udevadm"), "{bottom}");
        let hook = file(&files, "/etc/initramfs-tools/hooks/pi-lab-no-udev").unwrap();
        assert!(hook.contains("copy_exec /sbin/blkid") && hook.contains("usr/bin/udevadm"));
    }

    #[test]
    fn firmware_mount_brings_its_modules_and_checks_first() {
        let files = files(&Initramfs { udev: true, mount_firmware: true, ..Default::default() });
        let hook = file(&files, "/etc/initramfs-tools/hooks/pi-lab-firmware").unwrap();
        assert!(hook.contains("manual_add_modules vfat nls_cp437 nls_ascii"), "{hook}");
        let script =
            file(&files, "/etc/initramfs-tools/scripts/local-bottom/pi-lab-firmware").unwrap();
        let fsck = script.find("fsck.vfat -a").unwrap();
        let mount = script.find("mount -t vfat").unwrap();
        assert!(fsck < mount, "fsck before mount");
        assert!(script.contains("LABEL=RASPIFIRM") && script.contains("/boot/firmware"));
    }
}
