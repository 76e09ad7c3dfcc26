//! Which disks may be written: refusals, their override flags, `--list`.
//!
//! Decisions are pure functions of [`DiskFacts`], so they are tested
//! without hardware; [`SysFacts`] reads the facts from /sys and /proc.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Bigger than this is not an SD card (or USB stick) but someone's disk.
pub const MAX_CARD_BYTES: u64 = 256_000_000_000;

/// Mount points that make a disk a system disk.
const SYSTEM_PATHS: &[&str] = &[
    "/",
    "/boot",
    "/boot/efi",
    "/boot/firmware",
    "/efi",
    "/usr",
    "/var",
    "/home",
    "/etc",
    "/opt",
    "/srv",
    "/root",
    "/nix",
    "/var/lib",
    "/var/log",
];

#[derive(Debug, thiserror::Error)]
pub enum SafetyError {
    #[error("{path} is a partition of {disk}; give the whole disk: --to {disk}")]
    Partition { path: PathBuf, disk: PathBuf },
    #[error("cannot read facts about {path}: {message}")]
    Facts { path: PathBuf, message: String },
}

/// Something mounted (or used as swap) from a disk or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
}

/// What we know about a disk before writing to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskFacts {
    pub path: PathBuf,
    pub name: String,
    pub model: String,
    pub size: u64,
    pub removable: bool,
    pub transport: String,
    pub read_only: bool,
    pub mounts: Vec<Mount>,
}

impl DiskFacts {
    /// Mounts of system paths (/, /usr, …) or swap.
    pub fn system_mounts(&self) -> Vec<&Mount> {
        self.mounts
            .iter()
            .filter(|m| SYSTEM_PATHS.contains(&m.mountpoint.as_str()) || m.mountpoint == "[swap]")
            .collect()
    }

    /// A disk a user most likely means: removable, not in use, card-sized.
    pub fn is_candidate(&self) -> bool {
        self.removable && self.mounts.is_empty() && self.size > 0 && self.size <= MAX_CARD_BYTES
    }

    pub fn describe(&self) -> String {
        let model = if self.model.is_empty() { "unknown model" } else { &self.model };
        format!("{} ({model}, {}, {})", self.path.display(), human_bytes(self.size), self.transport)
    }
}

/// Risks the user has explicitly accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub mounted: bool,
    pub system_disk: bool,
    pub non_removable: bool,
    pub large_disk: bool,
    pub short_target: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Mounted(Vec<Mount>),
    SystemDisk(Vec<Mount>),
    NonRemovable,
    LargeDisk {
        size: u64,
    },
    /// The image is bigger, but every mapped byte fits.
    ShortTarget {
        size: u64,
        image: u64,
    },
    /// Mapped data would fall off the end: no flag can make this work.
    TooSmall {
        size: u64,
        needed: u64,
    },
    ReadOnly,
}

impl Refusal {
    /// The flag that accepts this risk, if any can.
    pub fn override_flag(&self) -> Option<&'static str> {
        match self {
            Refusal::Mounted(_) => Some("--allow-mounted"),
            Refusal::SystemDisk(_) => Some("--allow-system-disk"),
            Refusal::NonRemovable => Some("--allow-non-removable"),
            Refusal::LargeDisk { .. } => Some("--allow-large-disk"),
            Refusal::ShortTarget { .. } => Some("--allow-short-target"),
            Refusal::TooSmall { .. } | Refusal::ReadOnly => None,
        }
    }
}

fn list_mounts(mounts: &[Mount]) -> String {
    mounts
        .iter()
        .map(|m| format!("{} on {}", m.device, m.mountpoint))
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Mounted(m) => {
                write!(f, "it has mounted partitions ({}); unmount them first", list_mounts(m))
            }
            Refusal::SystemDisk(m) => {
                write!(
                    f,
                    "it holds this system ({}): writing it would destroy the running system",
                    list_mounts(m)
                )
            }
            Refusal::NonRemovable => {
                write!(f, "it is not a removable disk (SD cards and USB sticks are)")
            }
            Refusal::LargeDisk { size } => write!(
                f,
                "it holds {}, more than any SD card (limit {})",
                human_bytes(*size),
                human_bytes(MAX_CARD_BYTES)
            ),
            Refusal::ShortTarget { size, image } => write!(
                f,
                "it holds {} but the image is {} (all mapped data fits; the file systems will be cut short)",
                human_bytes(*size),
                human_bytes(*image)
            ),
            Refusal::TooSmall { size, needed } => write!(
                f,
                "it holds {} but the image needs at least {}; use a bigger card",
                human_bytes(*size),
                human_bytes(*needed)
            ),
            Refusal::ReadOnly => write!(f, "it is read-only (write-protect switch on the card?)"),
        }
    }
}

/// Every refusal for writing an image of `image_size` bytes (mapped data
/// ending at `mapped_end`) onto this disk, minus those overridden.
pub fn check(
    facts: &DiskFacts,
    image_size: Option<u64>,
    mapped_end: u64,
    ov: Overrides,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let system: Vec<Mount> = facts.system_mounts().into_iter().cloned().collect();
    if !system.is_empty() && !ov.system_disk {
        refusals.push(Refusal::SystemDisk(system));
    }
    if !facts.mounts.is_empty() && !ov.mounted {
        refusals.push(Refusal::Mounted(facts.mounts.clone()));
    }
    if !facts.removable && !ov.non_removable {
        refusals.push(Refusal::NonRemovable);
    }
    if facts.size > MAX_CARD_BYTES && !ov.large_disk {
        refusals.push(Refusal::LargeDisk { size: facts.size });
    }
    if facts.read_only {
        refusals.push(Refusal::ReadOnly);
    }
    let needed = mapped_end.max(1 << 20);
    if facts.size < needed {
        refusals.push(Refusal::TooSmall { size: facts.size, needed });
    } else if let Some(image) = image_size
        && facts.size < image
        && !ov.short_target
    {
        refusals.push(Refusal::ShortTarget { size: facts.size, image });
    }
    refusals
}

/// Where disk facts come from (the real system, or a test's table).
pub trait FactSource {
    fn facts(&self, path: &Path) -> Result<DiskFacts, SafetyError>;
    fn list(&self) -> Vec<DiskFacts>;
}

/// Facts from /sys/class/block, /proc/self/mountinfo and /proc/swaps.
#[derive(Debug, Default)]
pub struct SysFacts;

impl FactSource for SysFacts {
    fn facts(&self, path: &Path) -> Result<DiskFacts, SafetyError> {
        let facts_err = |message: String| SafetyError::Facts { path: path.to_path_buf(), message };
        let rdev = std::fs::metadata(path).map_err(|e| facts_err(e.to_string()))?.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
            .map_err(|e| facts_err(format!("not in /sys/dev/block: {e}")))?;
        if sys.join("partition").exists() {
            let disk = sys.parent().and_then(|p| p.file_name()).map(|n| Path::new("/dev").join(n));
            return Err(SafetyError::Partition {
                path: path.to_path_buf(),
                disk: disk.unwrap_or_else(|| PathBuf::from("/dev/…")),
            });
        }
        let name = sys.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        Ok(disk_facts(&name, path.to_path_buf(), &MountTable::read()))
    }

    fn list(&self) -> Vec<DiskFacts> {
        let table = MountTable::read();
        let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
        let mut disks: Vec<DiskFacts> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with("ram") && !n.starts_with("zram"))
            .map(|n| disk_facts(&n, Path::new("/dev").join(&n), &table))
            .filter(|d| d.size > 0)
            .collect();
        disks.sort_by(|a, b| a.path.cmp(&b.path));
        disks
    }
}

fn read_sys(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn disk_facts(name: &str, path: PathBuf, table: &MountTable) -> DiskFacts {
    let sys = Path::new("/sys/block").join(name);
    // virtio and NVMe report a PCI vendor number here, not a name.
    let vendor = Some(read_sys(sys.join("device/vendor")))
        .filter(|v| !v.starts_with("0x"))
        .unwrap_or_default();
    let model = read_sys(sys.join("device/model"));
    let model = [vendor, model].join(" ").trim().to_string();
    let size = read_sys(sys.join("size")).parse::<u64>().unwrap_or(0) * 512;
    let removable = read_sys(sys.join("removable")) == "1";
    let read_only = read_sys(sys.join("ro")) == "1";
    let mut devices = vec![(name.to_string(), read_sys(sys.join("dev")))];
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for entry in entries.filter_map(Result::ok) {
            if entry.path().join("partition").exists() {
                let part = entry.file_name().to_string_lossy().into_owned();
                devices.push((part, read_sys(entry.path().join("dev"))));
            }
        }
    }
    // Device-mapper/RAID built on top of the disk count as its use too.
    let mut holders = Vec::new();
    for (dev, _) in &devices {
        let dir = if dev == name { sys.join("holders") } else { sys.join(dev).join("holders") };
        for holder in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
            let h = holder.file_name().to_string_lossy().into_owned();
            let number = read_sys(Path::new("/sys/class/block").join(&h).join("dev"));
            holders.push((h, number));
        }
    }
    devices.extend(holders);
    let mounts = devices.iter().flat_map(|(dev, number)| table.mounts_of(dev, number)).collect();
    DiskFacts {
        path,
        name: name.to_string(),
        model,
        size,
        removable,
        transport: transport(name, &sys),
        read_only,
        mounts,
    }
}

/// usb, mmc, sata, nvme, loop, virtio…, from where the device sits in sysfs.
fn transport(name: &str, sys: &Path) -> String {
    let real =
        std::fs::canonicalize(sys).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let kind = if name.starts_with("loop") {
        "loop"
    } else if name.starts_with("mmcblk") {
        "mmc"
    } else if name.starts_with("nvme") {
        "nvme"
    } else if real.contains("/usb") {
        "usb"
    } else if real.contains("/ata") {
        "sata"
    } else if real.contains("/virtio") {
        "virtio"
    } else {
        "other"
    };
    kind.to_string()
}

/// Mounted file systems and active swap, keyed by device.
#[derive(Debug, Default)]
pub struct MountTable {
    /// (major:minor, source, mountpoint)
    entries: Vec<(String, String, String)>,
}

impl MountTable {
    pub fn read() -> MountTable {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
        MountTable::parse(&mountinfo, &swaps)
    }

    pub fn parse(mountinfo: &str, swaps: &str) -> MountTable {
        let mut entries = Vec::new();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
            if fields.len() < 5 || fields.len() < sep + 3 {
                continue;
            }
            let mountpoint = unescape(fields[4]);
            entries.push((fields[2].to_string(), fields[sep + 2].to_string(), mountpoint));
        }
        for line in swaps.lines().skip(1) {
            if let Some(dev) = line.split_whitespace().next() {
                entries.push((String::new(), unescape(dev), "[swap]".to_string()));
            }
        }
        MountTable { entries }
    }

    /// Mounts whose device number is `number` or whose source is /dev/`dev`.
    pub fn mounts_of(&self, dev: &str, number: &str) -> Vec<Mount> {
        let dev_path = format!("/dev/{dev}");
        let mapper = format!("/dev/mapper/{dev}");
        self.entries
            .iter()
            .filter(|(n, source, _)| {
                (!number.is_empty() && n == number)
                    || *source == dev_path
                    || *source == mapper
                    || std::fs::canonicalize(source).is_ok_and(|p| p == Path::new(&dev_path))
            })
            .map(|(_, _, mp)| Mount { device: dev.to_string(), mountpoint: mp.clone() })
            .collect()
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> DiskFacts {
        DiskFacts {
            path: "/dev/sdb".into(),
            name: "sdb".into(),
            model: "SanDisk Ultra".into(),
            size: 32_000_000_000,
            removable: true,
            transport: "usb".into(),
            read_only: false,
            mounts: vec![],
        }
    }

    fn mount(mp: &str) -> Mount {
        Mount { device: "sdb1".into(), mountpoint: mp.into() }
    }

    const IMAGE: Option<u64> = Some(4 << 30);
    const MAPPED: u64 = 1 << 30;

    #[test]
    fn a_free_removable_card_is_accepted() {
        assert!(check(&card(), IMAGE, MAPPED, Overrides::default()).is_empty());
        assert!(card().is_candidate());
    }

    #[test]
    fn each_risk_is_refused_and_only_its_own_flag_overrides_it() {
        type Case = (DiskFacts, &'static str, fn(&mut Overrides));
        let cases: Vec<Case> = vec![
            (DiskFacts { mounts: vec![mount("/media/x")], ..card() }, "--allow-mounted", |o| {
                o.mounted = true
            }),
            (DiskFacts { removable: false, ..card() }, "--allow-non-removable", |o| {
                o.non_removable = true
            }),
            (DiskFacts { size: 300_000_000_000, ..card() }, "--allow-large-disk", |o| {
                o.large_disk = true
            }),
            (DiskFacts { size: 2 << 30, ..card() }, "--allow-short-target", |o| {
                o.short_target = true
            }),
        ];
        for (facts, flag, set) in cases {
            let refusals = check(&facts, IMAGE, MAPPED, Overrides::default());
            assert_eq!(refusals.len(), 1, "{flag}: {refusals:?}");
            assert_eq!(refusals[0].override_flag(), Some(flag));
            let mut ov = Overrides { mounted: false, ..Overrides::default() };
            set(&mut ov);
            assert!(check(&facts, IMAGE, MAPPED, ov).is_empty(), "{flag} must override");
            // Every other flag leaves the refusal in place.
            let all_others = Overrides {
                mounted: flag != "--allow-mounted",
                system_disk: true,
                non_removable: flag != "--allow-non-removable",
                large_disk: flag != "--allow-large-disk",
                short_target: flag != "--allow-short-target",
            };
            assert_eq!(check(&facts, IMAGE, MAPPED, all_others).len(), 1, "{flag}");
        }
    }

    #[test]
    fn the_system_disk_needs_two_flags() {
        let facts = DiskFacts { mounts: vec![mount("/"), mount("/boot/efi")], ..card() };
        let refusals = check(&facts, IMAGE, MAPPED, Overrides::default());
        assert!(matches!(&refusals[0], Refusal::SystemDisk(m) if m.len() == 2), "{refusals:?}");
        assert!(matches!(&refusals[1], Refusal::Mounted(_)));
        let ov = Overrides { mounted: true, ..Overrides::default() };
        assert!(matches!(check(&facts, IMAGE, MAPPED, ov)[..], [Refusal::SystemDisk(_)]));
        let swap = DiskFacts { mounts: vec![mount("[swap]")], ..card() };
        assert!(matches!(
            check(&swap, IMAGE, MAPPED, Overrides::default())[0],
            Refusal::SystemDisk(_)
        ));
    }

    #[test]
    fn too_small_for_the_data_cannot_be_overridden() {
        let facts = DiskFacts { size: 512 << 20, ..card() };
        let all = Overrides {
            mounted: true,
            system_disk: true,
            non_removable: true,
            large_disk: true,
            short_target: true,
        };
        let refusals = check(&facts, IMAGE, MAPPED, all);
        assert_eq!(refusals, vec![Refusal::TooSmall { size: 512 << 20, needed: MAPPED }]);
        assert_eq!(refusals[0].override_flag(), None);
        assert!(refusals[0].to_string().contains("use a bigger card"));
        let ro = DiskFacts { read_only: true, ..card() };
        assert_eq!(check(&ro, IMAGE, MAPPED, all), vec![Refusal::ReadOnly]);
    }

    #[test]
    fn mountinfo_and_swaps_are_matched_by_number_and_name() {
        let mountinfo = "\
22 1 8:17 / /media/my\\040card rw,relatime shared:1 - vfat /dev/sdb1 rw
23 1 0:25 / / rw - btrfs /dev/sda2 rw
24 1 8:18 / /mnt rw - ext4 /dev/sdb2 rw";
        let swaps = "Filename Type Size Used Priority\n/dev/sdc1 partition 1 0 -2\n";
        let table = MountTable::parse(mountinfo, swaps);
        assert_eq!(
            table.mounts_of("sdb1", "8:17"),
            vec![Mount { device: "sdb1".into(), mountpoint: "/media/my card".into() }]
        );
        assert_eq!(table.mounts_of("sda2", "8:2")[0].mountpoint, "/");
        assert_eq!(table.mounts_of("sdc1", "8:33")[0].mountpoint, "[swap]");
        assert!(table.mounts_of("sdd1", "8:49").is_empty());
    }

    #[test]
    fn sizes_read_like_disk_labels() {
        assert_eq!(human_bytes(31_914_983_424), "31.9 GB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
