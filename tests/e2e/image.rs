//! `pi-lab image build`: the real image, checked with independent tools
//! (sfdisk, fsck.vfat, e2fsck, debugfs, mtools, bmaptool, zstd, sha256sum),
//! booted in `qemu-system-aarch64 -M raspi3b`, and its error cases.
//!
//! The first build takes minutes (mmdebstrap under emulation); the root file
//! system cache lives in /var/cache/pi-lab (or `PI_LAB_TEST_IMAGE_CACHE`) so
//! later runs are warm. The image is built once per test run and shared.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod boot;
mod errors;

pub(crate) use boot::{image_boots_from_a_usb_drive_in_qemu_raspi3b, image_boots_in_qemu_raspi3b};
use errors::{error_project, pi_lab_build};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{bin, prerequisites, workspace};

const TOOLS: &[&str] = &[
    "mmdebstrap",
    "mkfs.ext4",
    "debugfs",
    "e2fsck",
    "fsck.vfat",
    "sfdisk",
    "mdir",
    "mtype",
    "mcopy",
    "bmaptool",
    "zstd",
    "blkid",
];

const NAME: &str = "pi-lab-pi3b-trixie";

fn cache_dir() -> PathBuf {
    std::env::var_os("PI_LAB_TEST_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/pi-lab"))
}

fn target_dir(sub: &str) -> PathBuf {
    let d = workspace().join("target").join(sub);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Output of a program, panicking with its stderr when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) struct Built {
    out: PathBuf,
    summary: serde_json::Value,
}

impl Built {
    pub(crate) fn img(&self) -> PathBuf {
        self.out.join(format!("{NAME}.img"))
    }
}

/// Builds the image once for every test of this run (the emulated boards
/// boot it too). A test that comes while the build runs says it waits and
/// for whom; a build that failed is not tried again by the next test.
pub(crate) fn built() -> &'static Built {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    static BUILDER: std::sync::Mutex<Option<(String, Instant)>> = std::sync::Mutex::new(None);
    let me = std::thread::current().name().unwrap_or("a test").to_string();
    let builder = || BUILDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if BUILT.get().is_none()
        && let Some((who, since)) = builder()
    {
        let secs = since.elapsed().as_secs();
        eprintln!("{me}: waiting for the shared image build, started by {who} {secs} s ago");
    }
    let result = BUILT.get_or_init(|| {
        *BUILDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((me.clone(), Instant::now()));
        eprintln!("{me}: building the shared image (cache {})", cache_dir().display());
        build_shared()
    });
    match result {
        Ok(built) => built,
        Err(e) => {
            let who = builder().map(|b| b.0).unwrap_or_default();
            panic!("the shared image build (run once, by {who}) failed:\n{e}")
        }
    }
}

fn build_shared() -> Result<Built, String> {
    let out = target_dir("pi-lab-image-test/out");
    let started = Instant::now();
    let result = build(&out, &[]);
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    if !result.status.success() {
        return Err(stderr);
    }
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout)
        .map_err(|e| format!("--json summary: {e}\n{stderr}"))?;
    eprintln!("image build took {:.0} s: {stderr}", started.elapsed().as_secs_f64());
    Ok(Built { out, summary })
}

fn build(out: &Path, extra: &[&str]) -> Output {
    Command::new(bin("pi-lab"))
        .current_dir(workspace())
        .args(["image", "build", "--json", "--profile"])
        .arg(workspace().join("images/pi3b-trixie.toml"))
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(extra)
        .output()
        .expect("run pi-lab image build")
}

/// `pi-lab image build --json` that must succeed; its summary.
fn build_ok(out: &Path, extra: &[&str]) -> serde_json::Value {
    let result = build(out, extra);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    serde_json::from_slice(&result.stdout).expect("--json summary")
}

/// Copies partition `n` (1-based) out of the image into its own file.
fn extract_partition(img: &Path, n: usize, dest: &Path) {
    let dump = run(Command::new("sfdisk").arg("--json").arg(img));
    let v: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let p = &v["partitiontable"]["partitions"][n - 1];
    let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", dest.display()))
        .args(["bs=4M", "conv=sparse", "status=none", "iflag=count_bytes,skip_bytes"])
        .arg(format!("skip={}", start * 512))
        .arg(format!("count={}", size * 512)));
}

fn fat(img: &Path) -> String {
    format!("{}@@{}", img.display(), 4 << 20)
}

#[test]
fn image_layout_and_file_systems_are_clean() {
    if !prerequisites("image_layout_and_file_systems_are_clean", true, TOOLS) {
        return;
    }
    let b = built();
    let img = b.img();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 2 << 30);

    let dump = run(Command::new("sfdisk").arg("--dump").arg(&img));
    assert!(dump.contains("label: dos"), "{dump}");
    assert!(
        dump.contains("start=        8192, size=     1040384, type=c"),
        "p1 FAT32 LBA 4..512 MiB:\n{dump}"
    );
    assert!(
        dump.contains("start=     1048576, size=     3145728, type=83"),
        "p2 Linux from 512 MiB to the end:\n{dump}"
    );

    let dir = target_dir("pi-lab-image-test/parts");
    let (p1, p2) = (dir.join("p1.vfat"), dir.join("p2.ext4"));
    extract_partition(&img, 1, &p1);
    extract_partition(&img, 2, &p2);
    run(Command::new("fsck.vfat").arg("-n").arg(&p1));
    run(Command::new("e2fsck").arg("-fn").arg(&p2));
    let labels = run(Command::new("blkid").arg("-p").arg("-o").arg("export").arg(&p1))
        + &run(Command::new("blkid").arg("-p").arg("-o").arg("export").arg(&p2));
    assert!(labels.contains("LABEL=RASPIFIRM") && labels.contains("TYPE=vfat"), "{labels}");
    assert!(labels.contains("LABEL=RASPIROOT") && labels.contains("TYPE=ext4"), "{labels}");

    // Root file system: agent, its enabled unit, fstab by label, no
    // per-machine state.
    let debugfs = |req: &str| run(Command::new("debugfs").arg("-R").arg(req).arg(&p2));
    let unit = debugfs("cat /etc/systemd/system/node-agent.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in node-agent.service");
    let program = exec.split_whitespace().next().unwrap();
    let agent = debugfs(&format!("stat {program}"));
    assert!(agent.contains("Mode:  0755") && agent.contains("Type: regular"), "{agent}");
    let wants = debugfs("ls -l /etc/systemd/system/multi-user.target.wants");
    for unit in [
        "node-agent.service",
        "pi-lab-ssh-hostkeys.service",
        "systemd-networkd.service",
        "ssh.service",
    ] {
        assert!(wants.contains(unit), "{unit} not enabled:\n{wants}");
    }
    let link = debugfs("stat /etc/systemd/system/multi-user.target.wants/node-agent.service");
    assert!(link.contains("/etc/systemd/system/node-agent.service"), "{link}");
    let daemons = debugfs("cat /etc/frr/daemons");
    assert!(daemons.lines().any(|l| l.trim() == "bgpd=yes"), "FRR must run bgpd:\n{daemons}");
    let fstab = debugfs("cat /etc/fstab");
    assert!(fstab.contains("LABEL=RASPIROOT") && fstab.contains("LABEL=RASPIFIRM"), "{fstab}");
    assert_eq!(debugfs("cat /etc/machine-id"), "", "machine-id must be left for first boot");
    // The caches agree with /usr: no ldconfig or hwdb update in the first
    // boot's critical path (ConditionNeedsUpdate=).
    for stamp in ["/etc/.updated", "/var/.updated"] {
        let text = debugfs(&format!("cat {stamp}"));
        assert!(text.contains("TIMESTAMP_NSEC="), "{stamp}: {text:?}");
        let usr = debugfs("stat /usr");
        let mtime = |stat: &str| {
            stat.lines().find(|l| l.trim_start().starts_with("mtime:")).map(str::to_string)
        };
        assert_eq!(
            mtime(&debugfs(&format!("stat {stamp}"))),
            mtime(&usr),
            "{stamp} must not be older than /usr"
        );
    }
    assert!(!debugfs("ls /etc/ssh").contains("ssh_host_"), "host keys must be made on first boot");
    assert!(
        debugfs("ls /boot/firmware").lines().count() <= 2,
        "/boot/firmware is only a mount point on p2"
    );

    // Firmware partition: what the Pi 3B's boot ROM and firmware read.
    let listing = run(Command::new("mdir").arg("-i").arg(fat(&img)).arg("-b").arg("::"));
    for f in [
        "bootcode.bin",
        "start.elf",
        "config.txt",
        "cmdline.txt",
        "bcm2837-rpi-3-b.dtb",
        "vmlinuz-",
        "initrd.img-",
    ] {
        assert!(listing.contains(f), "{f} missing from the firmware partition:\n{listing}");
    }
    let cmdline = run(Command::new("mtype").arg("-i").arg(fat(&img)).arg("::cmdline.txt"));
    for w in ["root=LABEL=RASPIROOT", "console=ttyS1,115200", "net.ifnames=0"] {
        let n = cmdline.split_whitespace().filter(|x| *x == w).count();
        assert_eq!(n, 1, "{w} must be in cmdline.txt exactly once: {cmdline}");
    }
    let config = run(Command::new("mtype").arg("-i").arg(fat(&img)).arg("::config.txt"));
    assert!(config.contains("arm_64bit=1") && config.contains("initramfs"), "{config}");
}

#[test]
fn image_outputs_agree_with_bmaptool_zstd_and_sha256sum() {
    if !prerequisites("image_outputs_agree_with_bmaptool_zstd_and_sha256sum", true, TOOLS) {
        return;
    }
    let b = built();
    run(Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&b.out));
    // bmaptool checks the bmap's own checksum and every range's sha256.
    let copy = target_dir("pi-lab-image-test/bmap").join("copy.img");
    let _ = std::fs::remove_file(&copy);
    run(Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(b.out.join(format!("{NAME}.img.bmap")))
        .arg(b.img())
        .arg(&copy));
    run(Command::new("cmp").arg(b.img()).arg(&copy));
    std::fs::remove_file(&copy).unwrap();
    let bmap = std::fs::read_to_string(b.out.join(format!("{NAME}.img.bmap"))).unwrap();
    assert!(
        bmap.contains("<bmap version=\"2.0\">") && bmap.contains("<BlockSize> 4096 </BlockSize>")
    );
    // bmaptool checks only ranges with a `chksum` attribute: every one has it.
    let ranges = bmap.matches("<Range").count();
    assert!(ranges > 0 && bmap.matches("<Range chksum=\"").count() == ranges, "{bmap}");
    let mapped = b.summary["mapped_size"].as_u64().unwrap();
    assert!(mapped > 200 << 20 && mapped < 1536 << 20, "mapped {mapped}");
    let unz = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{0}.zst' | cmp - '{0}'", b.img().display()))
        .status()
        .unwrap();
    assert!(unz.success(), "the .zst does not decompress to the image");

    let manifest = std::fs::read_to_string(b.out.join(format!("{NAME}.manifest"))).unwrap();
    let m: toml::Value = toml::from_str(&manifest).expect("manifest is TOML");
    let pkgs = m["package"].as_array().unwrap();
    for want in
        ["linux-image-arm64", "raspi-firmware", "frr", "openssh-server", "firmware-brcm80211"]
    {
        let p = pkgs
            .iter()
            .find(|p| p["name"].as_str() == Some(want))
            .unwrap_or_else(|| panic!("{want} not in manifest"));
        assert!(!p["version"].as_str().unwrap().is_empty());
    }
    for key in ["profile_sha256", "node_agent_sha256", "rootfs_cache_key", "rootfs_tar_sha256"] {
        assert_eq!(m["inputs"][key].as_str().unwrap().len(), 64, "{key}");
    }
}

#[test]
fn image_rebuild_after_overlay_change_reuses_the_root_file_system() {
    if !prerequisites("image_rebuild_after_overlay_change_reuses_the_root_file_system", true, TOOLS)
    {
        return;
    }
    let b = built();
    // A project copy whose only change is one more overlay file.
    let proj = target_dir("pi-lab-image-test/overlay-proj");
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(proj.join("images")).unwrap();
    run(Command::new("cp").arg("-a").arg(workspace().join("overlays")).arg(&proj));
    std::fs::write(proj.join("overlays/base/etc/pi-lab-test-marker"), "changed overlay\n").unwrap();
    std::fs::copy(workspace().join("images/pi3b-trixie.toml"), proj.join("images/p.toml")).unwrap();
    let out = proj.join("out");
    let result = pi_lab_build(&proj.join("images/p.toml"), &out).arg("--json").output().unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let s: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(s["rootfs_cached"], true, "an overlay change must not rebuild the root file system");
    assert_eq!(s["filesystems_cached"], true, "nor its file systems");
    assert_eq!(s["rootfs_key"], b.summary["rootfs_key"]);
    assert_ne!(
        s["image_sha256"], b.summary["image_sha256"],
        "the overlay change must show in the image"
    );
    run(Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&out));
    let p2 = out.join("p2.ext4");
    extract_partition(&out.join(format!("{NAME}.img")), 2, &p2);
    // The overlay was written into a copy of the cached file system: it
    // must still be clean, and the file root's, with the epoch's mtime.
    run(Command::new("e2fsck").arg("-fn").arg(&p2));
    let debugfs = |req: &str| run(Command::new("debugfs").arg("-R").arg(req).arg(&p2));
    assert_eq!(debugfs("cat /etc/pi-lab-test-marker"), "changed overlay\n");
    let stat = debugfs("stat /etc/pi-lab-test-marker");
    assert!(stat.contains("User:     0   Group:     0"), "{stat}");
    assert!(stat.contains("mtime: 0x67748580"), "mtime must be the epoch: {stat}");
    std::fs::remove_dir_all(&proj).unwrap();
}

/// Adding a package to the profile rebuilds only the profile layer: base
/// and lab come from the cache (the progress lines and `--json` say so),
/// and apt installs only the profile's packages on them.
#[test]
fn image_rebuild_after_adding_a_package_reuses_base_and_lab_layers() {
    if !prerequisites(
        "image_rebuild_after_adding_a_package_reuses_base_and_lab_layers",
        true,
        TOOLS,
    ) {
        return;
    }
    let b = built();
    let (proj, out) = error_project("package", |t| {
        assert!(t.contains("\"ethtool\","));
        t.replace("\"ethtool\",", "\"ethtool\",\n  \"tree\",")
    });
    // An earlier run left this profile layer in the cache: remove it, so
    // this build makes it (and only it).
    let planned = run(Command::new(bin("pi-lab"))
        .args(["image", "packages", "--json", "--profile"])
        .arg(proj.join("images/p.toml")));
    let planned: serde_json::Value = serde_json::from_str(&planned).unwrap();
    let key = planned[2]["key"].as_str().unwrap().to_string();
    assert_eq!(planned[2]["name"], "profile");
    let remove_layer = || {
        for ext in ["tar", "tar.sha256"] {
            let _ = std::fs::remove_file(cache_dir().join(format!("rootfs/profile-{key}.{ext}")));
        }
    };
    remove_layer();
    let result = pi_lab_build(&proj.join("images/p.toml"), &out).arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let layer = |v: &serde_json::Value, name: &str| {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} layer in {v}"))
    };
    for name in ["base", "lab"] {
        assert_eq!(layer(&s, name)["cached"], true, "{name} layer must come from the cache");
        assert_eq!(layer(&s, name)["key"], layer(&b.summary, name)["key"]);
        let line = stderr.lines().find(|l| l.contains(&format!("{name} layer"))).unwrap();
        assert!(line.contains("cached"), "progress must show the cached {name} layer: {line}");
    }
    let profile = layer(&s, "profile");
    assert_eq!(profile["cached"], false);
    assert_ne!(profile["key"], layer(&b.summary, "profile")["key"]);
    let line = stderr.lines().find(|l| l.contains("profile layer")).unwrap();
    assert!(line.contains(" ran "), "progress must show the profile layer was built: {line}");
    // apt unpacked the profile's packages, nothing of the lab or base layer.
    let log = cache_dir()
        .join("rootfs")
        .join(format!("profile-{}.log", profile["key"].as_str().unwrap()));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("Unpacking tree"), "tree was not installed:\n{log}");
    for other in ["Unpacking frr ", "Unpacking linux-image", "Unpacking openssh-server"] {
        assert!(
            !log.contains(other),
            "the profile layer installed more than its packages: {other}"
        );
    }
    let manifest = std::fs::read_to_string(out.join(format!("{NAME}.manifest"))).unwrap();
    assert!(manifest.contains("name = \"tree\""), "tree not in the manifest");
    let p2 = out.join("p2.ext4");
    extract_partition(&out.join(format!("{NAME}.img")), 2, &p2);
    let tree = run(Command::new("debugfs").arg("-R").arg("stat /usr/bin/tree").arg(&p2));
    assert!(tree.contains("Type: regular"), "{tree}");
    std::fs::remove_dir_all(&proj).unwrap();
    remove_layer(); // half a GiB the shared cache does not need
    let fs = s["filesystems_key"].as_str().unwrap();
    for ext in ["ext4", "vfat", "json"] {
        let _ = std::fs::remove_file(cache_dir().join(format!("fs/{fs}.{ext}")));
    }
}

/// Two builds with the same inputs give the same bytes. Here the file
/// systems are made again from the cached root file system
/// (`--no-cache=filesystems`: unpack, mkfs, FAT, debugfs) and every output
/// must equal the shared build's. The cold path is the opt-in test below.
#[test]
fn image_is_reproducible_on_the_warm_path() {
    if !prerequisites("image_is_reproducible_on_the_warm_path", true, TOOLS) {
        return;
    }
    let b = built();
    let out = target_dir("pi-lab-image-test/warm-repro");
    let s = build_ok(&out, &["--no-cache=filesystems"]);
    assert_eq!(s["rootfs_cached"], true);
    assert_eq!(s["filesystems_cached"], false, "the file systems must be made again");
    let sums = |dir: &Path| std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert_eq!(sums(&out), sums(&b.out), "same inputs must give the same bytes");
    assert_eq!(s["image_sha256"], b.summary["image_sha256"]);
    // And once more from the cached file systems.
    assert_eq!(build_ok(&out, &[])["filesystems_cached"], true);
    assert_eq!(sums(&out), sums(&b.out));
}

/// File names in an initramfs: newc cpio archives one after another; the
/// last is zstd-compressed (initramfs-tools keeps the already compressed
/// modules in an uncompressed archive in front).
fn initrd_files(path: &Path, scratch: &Path) -> Vec<String> {
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut data = std::fs::read(path).unwrap();
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos] == 0 {
            pos += 1;
        } else if data[pos..].starts_with(b"070701") {
            let h = &data[pos..pos + 110];
            let (size, namesize) = (hex(&h[54..62]), hex(&h[94..102]));
            let name = String::from_utf8_lossy(&data[pos + 110..pos + 110 + namesize - 1]);
            let name = name.into_owned();
            pos = (pos + 110 + namesize).next_multiple_of(4);
            pos = (pos + size).next_multiple_of(4);
            if name != "TRAILER!!!" {
                names.push(name);
            }
        } else if data[pos..].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let tail = scratch.join("initrd-tail.zst");
            std::fs::write(&tail, &data[pos..]).unwrap();
            let out = Command::new("zstd").arg("-dc").arg(&tail).output().unwrap();
            assert!(out.status.success(), "the initrd's zstd part does not decompress");
            (data, pos) = (out.stdout, 0);
        } else {
            panic!("{}: unknown data at byte {pos}", path.display());
        }
    }
    names
}

/// The image's initrd, copied out of its firmware partition into `dir`.
fn copy_initrd(img: &Path, dir: &Path) -> PathBuf {
    let listing = run(Command::new("mdir").arg("-i").arg(fat(img)).arg("-b").arg("::"));
    let name = listing
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .find(|l| l.starts_with("initrd.img-"))
        .expect("initrd.img-* in the firmware partition");
    let initrd = dir.join(&name);
    run(Command::new("mcopy")
        .arg("-o")
        .arg("-i")
        .arg(fat(img))
        .arg(format!("::{name}"))
        .arg(&initrd));
    initrd
}

/// The initrd is made with the profile's module list (MODULES=list), not
/// Debian's MODULES=most: at most 12 MiB, and it still holds what a Pi 3B
/// needs for its root on SD or a USB drive and its Ethernet (the boot tests
/// below show it boots from both).
#[test]
fn image_initrd_is_small_and_holds_sd_usb_storage_and_usb_net_modules() {
    if !prerequisites(
        "image_initrd_is_small_and_holds_sd_usb_storage_and_usb_net_modules",
        true,
        TOOLS,
    ) {
        return;
    }
    let b = built();
    let dir = target_dir("pi-lab-image-test/initrd");
    let initrd = copy_initrd(&b.img(), &dir);
    let size = std::fs::metadata(&initrd).unwrap().len();
    eprintln!("initrd {}: {:.1} MiB", initrd.display(), size as f64 / (1 << 20) as f64);
    assert!(size <= 12 << 20, "initrd is {size} bytes, more than 12 MiB");
    let modules: Vec<String> = initrd_files(&initrd, &dir)
        .iter()
        .filter(|f| f.contains("/kernel/"))
        .filter_map(|f| f.rsplit('/').next()?.split(".ko").next().map(|m| m.replace('-', "_")))
        .collect();
    for m in [
        "bcm2835",
        "sdhci_iproc",
        "ext4",
        "dwc2",
        "usbnet",
        "smsc95xx",
        "lan78xx",
        "cdc_ether",
        "rndis_host",
        "usb_storage",
        "uas",
        "sd_mod",
    ] {
        assert!(modules.iter().any(|x| x == m), "module {m} not in the initrd: {modules:?}");
    }
    assert!(modules.len() < 80, "MODULES=list, yet {} modules: {modules:?}", modules.len());
}

/// The profile's boot shortcuts are in the initrd: no udev (init loads the
/// modules, blkid finds the root by label), fsck for the ext4 root, and
/// what mounts the firmware partition before systemd (vfat and its code
/// pages, fsck.vfat, the script).
#[test]
fn image_initrd_has_no_udev_and_mounts_the_firmware_partition() {
    let test = "image_initrd_has_no_udev_and_mounts_the_firmware_partition";
    if !prerequisites(test, true, TOOLS) {
        return;
    }
    let b = built();
    let dir = target_dir("pi-lab-image-test/initrd-boot");
    let initrd = copy_initrd(&b.img(), &dir);
    let files = initrd_files(&initrd, &dir);
    let has = |tail: &str| files.iter().any(|f| f.ends_with(tail));
    for absent in ["bin/udevadm", "systemd-udevd", "rules.d/50-udev-default.rules"] {
        assert!(!has(absent), "{absent} is in the initrd, yet the profile says udev = false");
    }
    for present in [
        "sbin/blkid",
        "sbin/fsck",
        "sbin/fsck.ext4",
        "sbin/fsck.vfat",
        "/vfat.ko.xz",
        "/nls_cp437.ko.xz",
        "/nls_ascii.ko.xz",
        "scripts/local-bottom/pi-lab-firmware",
        "scripts/init-top/udev",
    ] {
        assert!(has(present), "{present} missing from the initrd: {files:?}");
    }
}

/// The repository names no package registry or mirror host: the profile
/// leaves the mirror to mmdebstrap (or the user).
#[test]
fn repository_names_no_package_registry_host() {
    let files = run(Command::new("git").arg("-C").arg(workspace()).arg("ls-files"));
    // Spelled in pieces so this file does not match itself.
    let hosts = [
        ["deb", ".debian.org"],
        ["security", ".debian.org"],
        ["ftp", ".debian.org"],
        ["archive", ".ubuntu.com"],
        ["ports", ".ubuntu.com"],
        ["static", ".crates.io"],
        ["index", ".crates.io"],
        ["pypi", ".org"],
        ["registry", ".npmjs.org"],
    ]
    .map(|p| p.concat());
    let mut found = Vec::new();
    for f in files.lines().filter(|f| !f.ends_with("Cargo.lock")) {
        let Ok(text) = std::fs::read_to_string(workspace().join(f)) else { continue };
        for h in &hosts {
            if text.contains(h.as_str()) {
                found.push(format!("{f}: {h}"));
            }
        }
    }
    assert!(found.is_empty(), "registry host names in the repository: {found:?}");
}

/// Users with Docker or Podman can build the agent with `cross`; the
/// README says how.
#[test]
fn cross_toml_builds_the_agent_for_the_boards() {
    let text = std::fs::read_to_string(workspace().join("Cross.toml")).expect("Cross.toml");
    let cross: toml::Value = toml::from_str(&text).expect("Cross.toml is TOML");
    assert_eq!(
        cross["build"]["default-target"].as_str(),
        Some("aarch64-unknown-linux-musl"),
        "{text}"
    );
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    assert!(
        readme.contains("cross build -p node-agent --release --target aarch64-unknown-linux-musl"),
        "README has no section for cross users"
    );
}

/// One more cold build (`--no-cache`, minutes) must give the same bytes
/// as the shared build. Too slow for every run, so it says so in the
/// summary as ignored rather than passing without a look:
/// `cargo test -p pi-lab-e2e -- --ignored image_is_reproducible`.
#[test]
#[ignore = "one more cold image build (~10 min); run with --ignored"]
fn image_is_reproducible_from_a_cold_cache() {
    if !prerequisites("image_is_reproducible_from_a_cold_cache", true, TOOLS) {
        return;
    }
    let b = built();
    let out = target_dir("pi-lab-image-test/repro");
    let s = build_ok(&out, &["--no-cache"]);
    assert_eq!(s["rootfs_cached"], false);
    assert_eq!(
        s["image_sha256"], b.summary["image_sha256"],
        "same inputs must give the same image bytes"
    );
}

/// Ctrl-C in the middle of a build: pi-lab stops, says so, and leaves
/// neither outputs nor its work folder behind.
#[test]
fn image_ctrl_c_leaves_nothing() {
    if !prerequisites("image_ctrl_c_leaves_nothing", true, TOOLS) {
        return;
    }
    let _ = built(); // warm cache; the file systems are made again (tens of
    // seconds), so the build is unpacking or formatting when interrupted
    let (proj, out) = error_project("ctrlc", |t| t);
    let child = pi_lab_build(&proj.join("images/p.toml"), &out)
        .arg("--no-cache=filesystems")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    run(Command::new("kill").arg("-INT").arg(child.id().to_string()));
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let entries: Vec<_> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(entries.is_empty(), "left behind: {entries:?}");
}

/// The image's management-address unit reads the NodeConfig that
/// `pi-lab lab render` (and flash) produce: static address plus DHCP on the
/// management port, lab ports left to node-agent.
#[test]
fn image_mgmt_network_script_reads_a_rendered_node_config() {
    if !prerequisites(
        "image_mgmt_network_script_reads_a_rendered_node_config",
        false,
        &["sh", "awk"],
    ) {
        return;
    }
    let dir = target_dir("pi-lab-image-test/mgmt");
    let node = dir.join("node.toml");
    let rendered = run(Command::new(bin("pi-lab"))
        .args(["lab", "render"])
        .arg(workspace().join("examples/fabric.toml"))
        .arg("leaf1"));
    std::fs::write(&node, &rendered).unwrap();
    let net = dir.join("run/10-pi-lab-mgmt.network");
    let _ = std::fs::remove_dir_all(dir.join("run"));
    run(Command::new("sh")
        .arg(workspace().join("overlays/base/usr/local/sbin/pi-lab-mgmt-network"))
        .arg(&node)
        .arg(&net));
    let cfg: toml::Value = toml::from_str(&rendered).unwrap();
    let address = cfg["management"]["address"].as_str().unwrap();
    let mgmt = std::fs::read_to_string(&net).unwrap();
    assert!(mgmt.contains(&format!("Address={address}")) && mgmt.contains("DHCP=yes"), "{mgmt}");
    let lab = std::fs::read_to_string(dir.join("run/05-pi-lab-lab-ports.network")).unwrap();
    for port in
        cfg["interfaces"].as_array().unwrap().iter().filter(|i| i["kind"].as_str() == Some("port"))
    {
        let name = port["name"].as_str().unwrap();
        assert!(lab.contains(name), "lab port {name} not left unmanaged:\n{lab}");
    }
    assert!(lab.contains("Unmanaged=yes"), "{lab}");
}
