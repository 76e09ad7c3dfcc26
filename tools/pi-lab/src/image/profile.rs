//! The image profile: what goes into one image (`images/pi3b-trixie.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ImageError;

/// The base layer, on top of mmdebstrap's minbase: what boots a Pi 3B (init,
/// device manager, kernel with its initramfs, boot and Wi-Fi firmware, the
/// root file system's fsck). Built first and cached apart, because its
/// kernel and initramfs are the slowest part under emulation.
pub const BASE_LAYER: &[&str] = &[
    "systemd-sysv",
    "udev",
    "kmod",
    "e2fsprogs",
    "zstd",
    "linux-image-arm64",
    "raspi-firmware",
    "firmware-brcm80211",
];

/// The lab layer, installed on the cached base: the routing stack, remote
/// access, a clock, name resolution, and what the first-boot units use
/// (sfdisk, resize2fs, mkfs.vfat). Nothing on the board speaks TLS, so no
/// ca-certificates: its hook alone took three minutes under emulation (add
/// it to the profile's packages if you need it).
pub const LAB_LAYER: &[&str] = &[
    "iproute2",
    "frr",
    "openssh-server",
    "systemd-timesyncd",
    "systemd-resolved",
    "fdisk",
    "dosfstools",
];

/// One image profile as written in its TOML file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Base name of every output file.
    pub name: String,
    /// Hostname until the node's identity sets one.
    pub hostname: String,
    /// Size of the whole image, e.g. `2GiB`; a power of two.
    pub image_size: String,
    /// Timestamps inside the image; `SOURCE_DATE_EPOCH` overrides it.
    pub source_date_epoch: u64,
    /// Folders under `overlays/`, applied in order.
    #[serde(default)]
    pub overlays: Vec<String>,
    pub rootfs: Rootfs,
    #[serde(default)]
    pub firmware: Firmware,
    #[serde(default)]
    pub initramfs: Initramfs,
}

/// What mmdebstrap makes; all of it is part of the cache key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    pub suite: String,
    pub architecture: String,
    /// Debian mirror; unset: mmdebstrap's default for the suite (with its
    /// updates and security archives for a stable release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub components: Vec<String>,
    #[serde(default = "default_variant")]
    pub variant: String,
    /// The profile layer, installed on the cached base and lab layers.
    #[serde(default)]
    pub packages: Vec<String>,
}

fn default_variant() -> String {
    "minbase".into()
}

/// Settings for raspi-firmware's kernel hook.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Firmware {
    /// Written to `/etc/default/raspi-extra-cmdline`.
    #[serde(default)]
    pub extra_cmdline: String,
    /// Everything else: `KEY = "value"` lines of `/etc/default/raspi-firmware`.
    #[serde(flatten)]
    pub settings: BTreeMap<String, String>,
}

/// What goes into the initramfs (initramfs-tools).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Initramfs {
    /// `MODULES=list` with these kernel modules (and what they depend on).
    /// Empty: Debian's default, `MODULES=most`.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Files the packages' hooks copy in that this board does not need
    /// (paths inside the initramfs, no leading `/`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Start udev in the initramfs (Debian's way). False: init loads
    /// `modules` itself and blkid finds the root by its label.
    #[serde(default = "yes")]
    pub udev: bool,
    /// Check and mount the firmware partition on `/boot/firmware` from the
    /// initramfs, before systemd starts.
    #[serde(default)]
    pub mount_firmware: bool,
}

fn yes() -> bool {
    true
}

impl Default for Initramfs {
    fn default() -> Self {
        Self { modules: Vec::new(), exclude: Vec::new(), udev: true, mount_firmware: false }
    }
}

/// A profile with the facts derived from it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    pub path: PathBuf,
    /// The file as read, for the manifest.
    pub text: String,
    pub image_size: u64,
}

/// Words raspi-firmware's kernel hook always puts on `cmdline.txt`.
const FIRMWARE_CMDLINE: &[&str] = &["root", "rw", "fsck.repair", "net.ifnames", "rootwait"];

/// Offsets of the image layout (bytes).
pub const FIRMWARE_START: u64 = 4 << 20;
pub const FIRMWARE_END: u64 = 512 << 20;

impl Loaded {
    /// Reads and checks a profile; errors name the file, line and column.
    pub fn read(path: &Path) -> Result<Self, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImageError::Profile {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ImageError> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ImageError::Profile {
                path: path.to_path_buf(),
                message: format!("line {}, column {}: {}", at.0, at.1, e.message()),
            }
        })?;
        let bad = |message: String| ImageError::Profile { path: path.to_path_buf(), message };
        let image_size = parse_size(&profile.image_size).map_err(bad)?;
        check(&profile).map_err(bad)?;
        Ok(Self { profile, path: path.to_path_buf(), text: text.to_string(), image_size })
    }

    /// Every package the layers install (base, lab, profile), sorted and
    /// without duplicates.
    pub fn packages(&self) -> Vec<String> {
        let mut all: Vec<String> =
            BASE_LAYER.iter().chain(LAB_LAYER).map(|p| p.to_string()).collect();
        all.extend(self.profile.rootfs.packages.iter().cloned());
        all.sort();
        all.dedup();
        all
    }

    /// Files for initramfs-tools from the profile's `[initramfs]`.
    pub fn initramfs_files(&self) -> Vec<super::initramfs::File> {
        super::initramfs::files(&self.profile.initramfs)
    }

    /// `SOURCE_DATE_EPOCH` from the environment, else the profile's.
    pub fn epoch(&self) -> u64 {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(self.profile.source_date_epoch)
    }

    /// Content of `/etc/default/raspi-firmware`.
    pub fn raspi_firmware_defaults(&self) -> String {
        let mut out = String::from("# Written by pi-lab image build from the profile.\n");
        for (k, v) in &self.profile.firmware.settings {
            out.push_str(&format!("{k}=\"{v}\"\n"));
        }
        out
    }

    /// What the base layer is made from, for its cache key: suite,
    /// architecture, mirror, components, variant, firmware and initramfs
    /// settings and the epoch (package lists are added by the layer).
    pub fn base_inputs(&self) -> Vec<(&'static str, String)> {
        let r = &self.profile.rootfs;
        let initramfs: String =
            self.initramfs_files().iter().map(|(p, t, m)| format!("{p} {m:o}\n{t}")).collect();
        vec![
            ("suite", r.suite.clone()),
            ("arch", r.architecture.clone()),
            ("mirror", r.mirror.clone().unwrap_or_else(|| "(mmdebstrap default)".into())),
            ("components", r.components.join(",")),
            ("variant", r.variant.clone()),
            ("raspi-firmware", self.raspi_firmware_defaults()),
            ("extra-cmdline", self.profile.firmware.extra_cmdline.clone()),
            ("initramfs", initramfs),
            ("epoch", self.epoch().to_string()),
        ]
    }

    /// 32 bits derived from the profile, for disk signature and volume id.
    pub fn derived_u32(&self, what: &str) -> u32 {
        let d = self.derived_bytes(what);
        u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    }

    /// A UUID (version 4 layout) derived from the profile.
    pub fn derived_uuid(&self, what: &str) -> String {
        let mut b = self.derived_bytes(what);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(&b[..16]);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    fn derived_bytes(&self, what: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(what.as_bytes());
        h.update([0]);
        h.update(self.profile.name.as_bytes());
        h.update([0]);
        h.update(self.epoch().to_string().as_bytes());
        h.finalize().into()
    }
}

/// A cache key: sha256 over `name NUL value NUL` pairs, in order.
pub fn cache_key(parts: &[(&str, String)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn check(p: &Profile) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !name_ok(&p.name) {
        return Err(format!(
            "name = {:?}: use letters, digits, '-', '_' or '.' (it names the output files)",
            p.name
        ));
    }
    if p.hostname.is_empty()
        || p.hostname.len() > 63
        || !p.hostname.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!("hostname = {:?}: use 1-63 letters, digits or '-'", p.hostname));
    }
    for pkg in &p.rootfs.packages {
        let ok = pkg.len() >= 2
            && pkg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !ok {
            return Err(format!(
                "rootfs.packages: {pkg:?} is not a Debian package name (lower-case letters, digits, '+', '-', '.')"
            ));
        }
    }
    if p.rootfs.components.is_empty() {
        return Err("rootfs.components is empty: give at least \"main\"".into());
    }
    if let Some(m) = &p.rootfs.mirror
        && !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file://"))
    {
        return Err(format!(
            "rootfs.mirror = {m:?}: give an http://, https:// or file:// URL, or leave it out for mmdebstrap's default"
        ));
    }
    for x in &p.initramfs.exclude {
        let ok = !x.is_empty()
            && !x.starts_with('/')
            && !x.split('/').any(|c| c == ".." || c.is_empty())
            && x.chars().all(|c| c.is_ascii_alphanumeric() || "._-+/".contains(c));
        if !ok {
            return Err(format!(
                "initramfs.exclude: {x:?} must be a path inside the initramfs without a leading '/', like \"usr/lib/udev/hwdb.bin\""
            ));
        }
    }
    for m in &p.initramfs.modules {
        let ok = !m.is_empty()
            && m.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !ok {
            return Err(format!(
                "initramfs.modules: {m:?} is not a kernel module name (like \"smsc95xx\" or \"sdhci_iproc\")"
            ));
        }
    }
    for o in &p.overlays {
        if o.is_empty() || o.contains('/') || o.starts_with('.') {
            return Err(format!("overlays: {o:?} must be the name of a folder under overlays/"));
        }
    }
    for word in p.firmware.extra_cmdline.split_whitespace() {
        let name = word.split('=').next().unwrap_or(word);
        if FIRMWARE_CMDLINE.contains(&name) || name == "console" {
            return Err(format!(
                "firmware.extra_cmdline: `{word}` is already on the command line raspi-firmware writes \
                 (root=, rw, fsck.repair=, net.ifnames=0, rootwait, console=): set ROOTPART or CONSOLES instead, or drop it"
            ));
        }
    }
    for k in p.firmware.settings.keys() {
        if !k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            return Err(format!(
                "firmware.{k}: settings of /etc/default/raspi-firmware are upper-case shell variables like CONSOLES"
            ));
        }
    }
    Ok(())
}

/// `2GiB`, `512MiB`, `4294967296` -> bytes; must be a power of two of at
/// least 1 GiB (the firmware partition alone ends at 512 MiB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = t.strip_suffix("MiB") {
        (n, 1u64 << 20)
    } else {
        (t, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("image_size = {s:?}: write a size like \"2GiB\" or \"4096MiB\""))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("image_size = {s:?} is too large"))?;
    if !bytes.is_power_of_two() || bytes < (1 << 30) {
        return Err(format!(
            "image_size = {s:?}: must be a power of two of at least 1GiB (qemu's SD card emulation needs a power of two), e.g. \"2GiB\""
        ));
    }
    Ok(bytes)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../images/pi3b-trixie.toml");

    #[test]
    fn shipped_profile_loads() {
        let p = Loaded::parse(Path::new("pi3b-trixie.toml"), SHIPPED).unwrap();
        assert_eq!(p.image_size, 2 << 30);
        assert!(p.packages().iter().any(|p| p == "frr"));
        assert!(p.raspi_firmware_defaults().contains("ROOTPART=\"LABEL=RASPIROOT\""));
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let text = SHIPPED.replace("hostname = \"pi-lab\"", "hostnme = \"pi-lab\"");
        let err = Loaded::parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("p.toml") && err.contains("line") && err.contains("hostnme"), "{err}");
    }

    #[test]
    fn size_must_be_power_of_two() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert!(parse_size("3GiB").unwrap_err().contains("power of two"));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn base_inputs_change_with_initramfs_not_with_overlays_or_packages() {
        let a = Loaded::parse(Path::new("p"), SHIPPED).unwrap();
        let mut b = a.clone();
        b.profile.overlays.push("extra".into());
        b.profile.hostname = "other".into();
        b.profile.rootfs.packages.push("vim".into());
        assert_eq!(cache_key(&a.base_inputs()), cache_key(&b.base_inputs()));
        b.profile.initramfs.modules.push("vfat".into());
        assert_ne!(cache_key(&a.base_inputs()), cache_key(&b.base_inputs()));
    }

    #[test]
    fn shipped_profile_names_no_mirror_and_a_pi3b_module_list() {
        let p = Loaded::parse(Path::new("p"), SHIPPED).unwrap();
        assert_eq!(p.profile.rootfs.mirror, None, "the repository names no mirror host");
        let files = p.initramfs_files();
        let file = |path: &str| files.iter().find(|f| f.0 == path).map(|f| f.1.clone()).unwrap();
        assert!(file("/etc/initramfs-tools/conf.d/pi-lab").contains("MODULES=list"));
        let modules = file("/etc/initramfs-tools/modules");
        let hook = file("/etc/initramfs-tools/hooks/pi-lab-exclude");
        assert!(hook.contains("rm -f \"$DESTDIR/usr/lib/udev/hwdb.bin\""), "{hook}");
        assert!(!p.profile.initramfs.udev && p.profile.initramfs.mount_firmware);
        assert!(file("/etc/initramfs-tools/scripts/init-top/udev").contains("pi-lab"));
        for m in [
            "bcm2835",
            "sdhci_iproc",
            "ext4",
            "dwc2",
            "smsc95xx",
            "lan78xx",
            "cdc_ether",
            "rndis_host",
            "usb_storage",
            "uas",
            "sd_mod",
        ] {
            assert!(modules.lines().any(|l| l == m), "{m} missing from the initramfs list");
        }
    }

    #[test]
    fn extra_cmdline_must_not_repeat_what_raspi_firmware_writes() {
        let text =
            SHIPPED.replace("extra_cmdline = \"\"", "extra_cmdline = \"quiet net.ifnames=0\"");
        let err = Loaded::parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("net.ifnames=0") && err.contains("already"), "{err}");
        let text = SHIPPED.replace("extra_cmdline = \"\"", "extra_cmdline = \"quiet\"");
        assert!(Loaded::parse(Path::new("p.toml"), &text).is_ok());
    }

    #[test]
    fn bad_module_and_mirror_are_named() {
        let text = SHIPPED.replace("\"smsc95xx\"", "\"smsc95xx.ko\"");
        let err = Loaded::parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("initramfs.modules") && err.contains("smsc95xx.ko"), "{err}");
        let text = SHIPPED.replace("[rootfs]\n", "[rootfs]\nmirror = \"ftp:/x\"\n");
        let err = Loaded::parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("rootfs.mirror"), "{err}");
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = Loaded::parse(Path::new("p"), SHIPPED).unwrap();
        assert_eq!(a.derived_uuid("root"), a.derived_uuid("root"));
        assert_ne!(a.derived_uuid("root"), a.derived_uuid("hash"));
        assert_eq!(a.derived_uuid("root").len(), 36);
    }
}
