//! A card's identity: the node's config, hostname and SSH keys written into
//! the FAT partition with a userspace FAT library (no mount), then read back.
//!
//! Files (`/boot/firmware/...` on the running board):
//! - `pi-lab/node.toml`: the NodeConfig node-agent starts from;
//! - `pi-lab/hostname`, `pi-lab/authorized_keys`: for first boot;
//! - `pi-lab/bootstrap.sha256`, `pi-lab/controller`: the lab token's hash
//!   and where pi-lab runs, so a board whose node.toml is later removed can
//!   still be re-provisioned (zero-touch) by the same lab;
//! - `sysconf.txt`: `hostname=` and `root_authorized_key=`, which Debian's
//!   raspi images apply on first boot (rpi-set-sysconf).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;

use crate::mbr::{Mbr, MbrError, PartitionType};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the card: {0}")]
    Mbr(#[from] MbrError),
    #[error("the card has no partition 1; expected a FAT32 partition there")]
    NoFat,
    #[error("partition 1 has type {0}; expected a FAT32 partition (0x0c or 0x0b)")]
    NotFat(PartitionType),
    #[error("partition 1 ({start}+{len} bytes) lies outside the card's {size} bytes")]
    OutOfBounds { start: u64, len: u64, size: u64 },
    #[error("FAT partition: {0}")]
    Fat(io::Error),
    #[error("read-back of {file} differs from what was written")]
    Mismatch { file: String },
    #[error("cannot render node.toml: {0}")]
    Toml(#[from] toml::ser::Error),
    #[error("cannot read SSH keys {path}: {source}")]
    Keys { path: PathBuf, source: io::Error },
}

/// What to write onto one card.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The node's config; with `zero_touch`, only its lab's bootstrap (the
    /// token's hash and the controller) is written.
    pub config: NodeConfig,
    /// OpenSSH `authorized_keys` lines; empty: none written.
    pub authorized_keys: String,
    /// A card of the lab, not of one node: the board waits unprovisioned,
    /// announces itself and is matched to a node by `provision --discover`
    /// (serial number or MAC), so any board can take any card.
    pub zero_touch: bool,
}

impl Identity {
    /// The node named on the card, if it names one.
    pub fn node(&self) -> Option<&str> {
        (!self.zero_touch).then_some(self.config.hostname.as_str())
    }

    /// The files to write, by path inside the FAT partition.
    pub fn files(
        &self,
        old_sysconf: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>, IdentityError> {
        let mut files = Vec::new();
        if !self.zero_touch {
            files.push(("pi-lab/node.toml".to_string(), self.config.to_toml()?.into_bytes()));
            files.push((
                "pi-lab/hostname".to_string(),
                format!("{}\n", self.config.hostname).into_bytes(),
            ));
        }
        files.push((
            "pi-lab/bootstrap.sha256".to_string(),
            format!("{}\n", self.config.auth.token_sha256).into_bytes(),
        ));
        files.push((
            "pi-lab/controller".to_string(),
            format!("{}\n", self.config.management.controller).into_bytes(),
        ));
        if !self.authorized_keys.trim().is_empty() {
            files.push((
                "pi-lab/authorized_keys".to_string(),
                self.authorized_keys.clone().into_bytes(),
            ));
        }
        if !self.zero_touch {
            files.push((
                "sysconf.txt".to_string(),
                self.sysconf(old_sysconf.unwrap_or_default()).into_bytes(),
            ));
        }
        Ok(files)
    }

    /// The image's `sysconf.txt` with our keys set (other lines kept).
    fn sysconf(&self, old: &str) -> String {
        let ours = ["hostname=", "root_authorized_key="];
        let mut out: String = old
            .lines()
            .filter(|l| !ours.iter().any(|k| l.trim_start().starts_with(k)))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(&format!("hostname={}\n", self.config.hostname));
        if let Some(key) = self
            .authorized_keys
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            out.push_str(&format!("root_authorized_key={key}\n"));
        }
        out
    }
}

/// SSH public keys: the given file, else every `~/.ssh/*.pub`.
pub fn authorized_keys(path: Option<&Path>) -> Result<String, IdentityError> {
    if let Some(path) = path {
        return std::fs::read_to_string(path)
            .map_err(|source| IdentityError::Keys { path: path.to_path_buf(), source });
    }
    let Some(home) = std::env::var_os("HOME") else { return Ok(String::new()) };
    let dir = PathBuf::from(home).join(".ssh");
    let mut keys: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    keys.sort();
    let mut out = String::new();
    for key in keys {
        let text = std::fs::read_to_string(&key)
            .map_err(|source| IdentityError::Keys { path: key.clone(), source })?;
        out.push_str(text.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Byte range of partition 1, from the MBR.
pub fn fat_partition(file: &File, size: u64) -> Result<(u64, u64), IdentityError> {
    let mbr = Mbr::read_from(file)?;
    let fat = mbr.partition(1).ok_or(IdentityError::NoFat)?;
    if !fat.kind.is_fat32() {
        return Err(IdentityError::NotFat(fat.kind));
    }
    let (start, len) = (fat.start(), fat.len());
    if fat.end() > size {
        return Err(IdentityError::OutOfBounds { start, len, size });
    }
    Ok((start, len))
}

/// A window onto one partition of the card, for the FAT library.
#[derive(Debug)]
struct Partition<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Partition<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        let n = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Partition<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the FAT partition",
            ));
        }
        let n = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Partition<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the partition")
        })?;
        Ok(self.pos)
    }
}

fn open_fs(
    file: &File,
    start: u64,
    len: u64,
) -> Result<fatfs::FileSystem<Partition<'_>>, IdentityError> {
    let options = fatfs::FsOptions::new().time_provider(&UTC_CLOCK);
    fatfs::FileSystem::new(Partition { file, start, len, pos: 0 }, options)
        .map_err(IdentityError::Fat)
}

/// File times in UTC (fatfs without chrono would write month 0).
#[derive(Debug)]
struct UtcClock;

static UTC_CLOCK: UtcClock = UtcClock;

impl fatfs::TimeProvider for UtcClock {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let t = secs % 86_400;
        fatfs::DateTime {
            date: fatfs::Date { year: year.clamp(1980, 2107) as u16, month, day },
            time: fatfs::Time {
                hour: (t / 3600) as u16,
                min: (t / 60 % 60) as u16,
                sec: (t % 60) as u16,
                millis: 0,
            },
        }
    }
}

fn read_file(fs: &fatfs::FileSystem<Partition<'_>>, path: &str) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    fs.root_dir().open_file(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Write the identity into partition 1 of `file` (direct I/O must be off),
/// then flush and read every file back through a fresh mount of the FAT.
/// Returns the paths written.
pub fn write(file: &File, size: u64, identity: &Identity) -> Result<Vec<String>, IdentityError> {
    let (start, len) = fat_partition(file, size)?;
    let fs = open_fs(file, start, len)?;
    let old = read_file(&fs, "sysconf.txt").ok().map(|b| String::from_utf8_lossy(&b).into_owned());
    let files = identity.files(old.as_deref())?;
    let fs = if fs.root_dir().open_dir("pi-lab").is_err() {
        fs.root_dir().create_dir("pi-lab").map_err(IdentityError::Fat)?;
        fs.unmount().map_err(IdentityError::Fat)?;
        dot_entries::repair(&mut Partition { file, start, len, pos: 0 }, b"PI-LAB     ")
            .map_err(IdentityError::Fat)?;
        open_fs(file, start, len)?
    } else {
        fs
    };
    for (path, data) in &files {
        let mut f = fs.root_dir().create_file(path).map_err(IdentityError::Fat)?;
        f.truncate()
            .and_then(|()| f.write_all(data))
            .and_then(|()| f.flush())
            .map_err(IdentityError::Fat)?;
    }
    fs.unmount().map_err(IdentityError::Fat)?;
    file.sync_all().map_err(IdentityError::Fat)?;
    drop_cache(file);

    let fs = open_fs(file, start, len)?;
    for (path, data) in &files {
        let back = read_file(&fs, path).map_err(IdentityError::Fat)?;
        if &back != data {
            return Err(IdentityError::Mismatch { file: path.clone() });
        }
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// The names of the files in the root of the card's FAT partition.
pub fn root_files(file: &File, size: u64) -> Result<Vec<String>, IdentityError> {
    let (start, len) = fat_partition(file, size)?;
    let fs = open_fs(file, start, len)?;
    let mut names = Vec::new();
    for entry in fs.root_dir().iter() {
        let entry = entry.map_err(IdentityError::Fat)?;
        if entry.is_file() {
            names.push(entry.file_name());
        }
    }
    names.sort();
    Ok(names)
}

/// One file of the card's FAT partition (what the board's firmware would
/// load: kernel, initrd, device tree, `cmdline.txt`).
pub fn read(file: &File, size: u64, path: &str) -> Result<Vec<u8>, IdentityError> {
    let (start, len) = fat_partition(file, size)?;
    let fs = open_fs(file, start, len)?;
    read_file(&fs, path).map_err(IdentityError::Fat)
}

/// fatfs 0.3 writes a new directory's `.` and `..` with long-name
/// entries in front of them and `..` pointing at the root's cluster;
/// fsck.vfat (run at boot for /boot/firmware) would "repair" that by
/// renaming and deleting entries. Put them the way the FAT spec wants.
mod dot_entries {
    use std::io::{self, Read, Seek, SeekFrom, Write};

    const ENTRY: usize = 32;
    const LFN: u8 = 0x0f;
    const DIRECTORY: u8 = 0x10;

    struct Geometry {
        bytes_per_sector: u64,
        sectors_per_cluster: u64,
        fat_start: u64,
        data_start: u64,
        root_cluster: u32,
    }

    fn le16(b: &[u8], at: usize) -> u64 {
        u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn geometry<T: Read + Seek>(disk: &mut T) -> io::Result<Geometry> {
        let mut boot = [0u8; 512];
        disk.seek(SeekFrom::Start(0))?;
        disk.read_exact(&mut boot)?;
        let bytes_per_sector = le16(&boot, 11);
        let sectors_per_cluster = u64::from(boot[13]);
        let reserved = le16(&boot, 14);
        let fats = u64::from(boot[16]);
        let fat_size = u64::from(le32(&boot, 36));
        if bytes_per_sector == 0 || sectors_per_cluster == 0 || le16(&boot, 22) != 0 {
            return Err(io::Error::other("not a FAT32 boot sector"));
        }
        Ok(Geometry {
            bytes_per_sector,
            sectors_per_cluster,
            fat_start: reserved * bytes_per_sector,
            data_start: (reserved + fats * fat_size) * bytes_per_sector,
            root_cluster: le32(&boot, 44),
        })
    }

    impl Geometry {
        fn cluster_bytes(&self) -> u64 {
            self.bytes_per_sector * self.sectors_per_cluster
        }

        fn offset(&self, cluster: u32) -> u64 {
            self.data_start + u64::from(cluster.saturating_sub(2)) * self.cluster_bytes()
        }

        fn next<T: Read + Seek>(&self, disk: &mut T, cluster: u32) -> io::Result<Option<u32>> {
            let mut entry = [0u8; 4];
            disk.seek(SeekFrom::Start(self.fat_start + u64::from(cluster) * 4))?;
            disk.read_exact(&mut entry)?;
            let next = u32::from_le_bytes(entry) & 0x0fff_ffff;
            Ok((2..0x0fff_fff0).contains(&next).then_some(next))
        }
    }

    /// Cluster of the root directory's subdirectory `name` (8.3, padded).
    fn find<T: Read + Seek>(
        disk: &mut T,
        geo: &Geometry,
        name: &[u8; 11],
    ) -> io::Result<Option<u32>> {
        let mut cluster = Some(geo.root_cluster);
        let mut buf = vec![0u8; geo.cluster_bytes() as usize];
        // Bounded walk: a corrupt chain must not loop forever.
        for _ in 0..4096 {
            let Some(c) = cluster else { break };
            disk.seek(SeekFrom::Start(geo.offset(c)))?;
            disk.read_exact(&mut buf)?;
            for e in buf.chunks(ENTRY) {
                if e[0] == 0 {
                    return Ok(None);
                }
                if &e[..11] == name && e[11] & DIRECTORY != 0 && e[11] != LFN {
                    return Ok(Some(((le16(e, 20) as u32) << 16) | le16(e, 26) as u32));
                }
            }
            cluster = geo.next(disk, c)?;
        }
        Ok(None)
    }

    pub(super) fn repair<T: Read + Write + Seek>(disk: &mut T, name: &[u8; 11]) -> io::Result<()> {
        let geo = geometry(disk)?;
        let Some(cluster) = find(disk, &geo, name)? else { return Ok(()) };
        let mut slots = [0u8; 4 * ENTRY];
        disk.seek(SeekFrom::Start(geo.offset(cluster)))?;
        disk.read_exact(&mut slots)?;
        let is = |i: usize, n: &[u8]| slots[i * ENTRY..i * ENTRY + 11] == *n;
        let lfn = |i: usize| slots[i * ENTRY + 11] == LFN;
        if !(lfn(0) && is(1, b".          ") && lfn(2) && is(3, b"..         ")) {
            return Ok(());
        }
        let mut fixed = [0u8; 4 * ENTRY];
        fixed[..ENTRY].copy_from_slice(&slots[ENTRY..2 * ENTRY]);
        fixed[ENTRY..2 * ENTRY].copy_from_slice(&slots[3 * ENTRY..]);
        // `..` of a directory in the root points at cluster 0.
        fixed[ENTRY + 20..ENTRY + 22].fill(0);
        fixed[ENTRY + 26..ENTRY + 28].fill(0);
        fixed[2 * ENTRY] = 0xe5;
        fixed[3 * ENTRY] = 0xe5;
        disk.seek(SeekFrom::Start(geo.offset(cluster)))?;
        disk.write_all(&fixed)
    }
}

fn drop_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: advisory call on a descriptor we own.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u16, u16) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A leaf's NodeConfig as a card gets it.
    pub(crate) fn node(name: &str) -> NodeConfig {
        lab_spec::fixtures::sflow_leaf(name).with_version()
    }

    /// A card image: MBR with a FAT32 partition 1 at 1 MiB (the real image
    /// puts it at 4 MiB; the offset is read from the table either way).
    fn card(path: &Path, kind: u8) -> File {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        let (start, len) = (1u64 << 20, 40u64 << 20);
        file.set_len(start + len).unwrap();
        let p1 = crate::mbr::Partition::new(PartitionType(kind), start, len).unwrap();
        file.write_all_at(&Mbr::new(1, &[p1]).unwrap().to_bytes(), 0).unwrap();
        let part = Partition { file: &file, start, len, pos: 0 };
        fatfs::format_volume(
            part,
            fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat32),
        )
        .unwrap();
        file
    }

    #[test]
    fn identity_lands_in_the_fat_partition_and_reads_back() {
        let tmp = super::super::TestDir::new("identity");
        let dir = tmp.path();
        let file = card(&dir.join("card.img"), 0x0c);
        let identity = Identity {
            config: node("leaf1"),
            authorized_keys: "ssh-ed25519 AAAA me@host\n".into(),
            zero_touch: false,
        };
        let size = file.metadata().unwrap().len();
        let written = write(&file, size, &identity).unwrap();
        assert!(written.contains(&"pi-lab/node.toml".to_string()));
        // Again, over the first: files are replaced, not appended to.
        let identity2 = Identity { config: node("leaf2"), ..identity };
        write(&file, size, &identity2).unwrap();
        let (start, len) = fat_partition(&file, size).unwrap();
        let fs = open_fs(&file, start, len).unwrap();
        let toml = String::from_utf8(read_file(&fs, "pi-lab/node.toml").unwrap()).unwrap();
        assert_eq!(NodeConfig::from_toml(&toml).unwrap(), node("leaf2"));
        let sysconf = String::from_utf8(read_file(&fs, "sysconf.txt").unwrap()).unwrap();
        assert_eq!(sysconf, "hostname=leaf2\nroot_authorized_key=ssh-ed25519 AAAA me@host\n");
    }

    #[test]
    fn a_zero_touch_card_carries_the_lab_but_no_node() {
        let identity = Identity {
            config: node("leaf1"),
            authorized_keys: "ssh-ed25519 AAAA me@host\n".into(),
            zero_touch: true,
        };
        let names: Vec<String> =
            identity.files(None).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["pi-lab/bootstrap.sha256", "pi-lab/controller", "pi-lab/authorized_keys"]
        );
        assert_eq!(identity.node(), None);
    }

    #[test]
    fn civil_dates_are_right() {
        use super::civil_from_days;
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_card_without_a_fat_partition_is_named() {
        let tmp = super::super::TestDir::new("identity-bad");
        let dir = tmp.path();
        let file = card(&dir.join("linux.img"), 0x83);
        let identity =
            Identity { config: node("x"), authorized_keys: String::new(), zero_touch: false };
        let err = write(&file, 41 << 20, &identity).unwrap_err().to_string();
        assert!(err.contains("type 0x83"), "{err}");
        file.write_all_at(&[0, 0], 510).unwrap();
        let err = write(&file, 41 << 20, &identity).unwrap_err().to_string();
        assert!(err.contains("no MBR"), "{err}");
    }
}
