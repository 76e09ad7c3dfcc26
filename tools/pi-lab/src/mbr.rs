//! The MBR partition table of a card: `image build` writes it, `flash`
//! reads it to find the FAT partition where a card's identity goes.
//!
//! Sector 0: boot code (left zero: the Pi's firmware does not run it), the
//! disk signature at byte 440, four 16-byte partition entries from byte
//! 446, and 0x55 0xaa at 510.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes per sector, as MBR counts them.
pub const SECTOR: u64 = 512;

const SIGNATURE_AT: usize = 440;
const ENTRIES_AT: usize = 446;
const ENTRY_LEN: usize = 16;
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xaa];

#[derive(Debug, thiserror::Error)]
pub enum MbrError {
    #[error("cannot read the partition table: {0}")]
    Read(io::Error),
    #[error("no MBR partition table (signature {0:#06x}, expected 0x55aa)")]
    NoSignature(u16),
    #[error("partition at byte {start} ({len} bytes) is not whole {SECTOR}-byte sectors")]
    Unaligned { start: u64, len: u64 },
    #[error("partition at byte {start} ({len} bytes) lies beyond what MBR can address (2 TiB)")]
    TooLarge { start: u64, len: u64 },
    #[error("an MBR holds at most 4 primary partitions, not {0}")]
    TooMany(usize),
}

/// The partition type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionType(pub u8);

impl PartitionType {
    /// FAT32 addressed by LBA: the Pi's firmware partition.
    pub const FAT32_LBA: PartitionType = PartitionType(0x0c);
    /// FAT32 with CHS addressing, as older tools write it.
    pub const FAT32_CHS: PartitionType = PartitionType(0x0b);
    pub const LINUX: PartitionType = PartitionType(0x83);

    pub fn is_fat32(self) -> bool {
        self == Self::FAT32_LBA || self == Self::FAT32_CHS
    }
}

impl fmt::Display for PartitionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// One primary partition, in sectors as the table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub kind: PartitionType,
    pub first_sector: u32,
    pub sectors: u32,
}

impl Partition {
    /// A partition of `len` bytes from byte `start`; both must be whole
    /// sectors within MBR's reach.
    pub fn new(kind: PartitionType, start: u64, len: u64) -> Result<Partition, MbrError> {
        if !start.is_multiple_of(SECTOR) || !len.is_multiple_of(SECTOR) || len == 0 {
            return Err(MbrError::Unaligned { start, len });
        }
        let too_large = || MbrError::TooLarge { start, len };
        let first_sector = u32::try_from(start / SECTOR).map_err(|_| too_large())?;
        let sectors = u32::try_from(len / SECTOR).map_err(|_| too_large())?;
        first_sector.checked_add(sectors - 1).ok_or_else(too_large)?;
        Ok(Partition { kind, first_sector, sectors })
    }

    /// First byte.
    pub fn start(&self) -> u64 {
        u64::from(self.first_sector) * SECTOR
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.sectors) * SECTOR
    }

    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start() + self.len()
    }

    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut e = [0u8; ENTRY_LEN];
        // Status 0x00, not "active": the Pi's firmware does not look.
        let last = self.first_sector + (self.sectors - 1);
        e[1..4].copy_from_slice(&chs(self.first_sector));
        e[4] = self.kind.0;
        e[5..8].copy_from_slice(&chs(last));
        e[8..12].copy_from_slice(&self.first_sector.to_le_bytes());
        e[12..16].copy_from_slice(&self.sectors.to_le_bytes());
        e
    }

    /// `None` for an unused entry (type 0 or no sectors).
    fn decode(e: &[u8]) -> Option<Partition> {
        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        let partition =
            Partition { kind: PartitionType(e[4]), first_sector: word(8), sectors: word(12) };
        (partition.kind.0 != 0 && !partition.is_empty()).then_some(partition)
    }
}

/// The table: disk signature and the four primary entries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    pub disk_signature: u32,
    pub partitions: [Option<Partition>; 4],
}

impl Mbr {
    /// A table with `partitions` as entries 1, 2, ... in that order.
    pub fn new(disk_signature: u32, partitions: &[Partition]) -> Result<Mbr, MbrError> {
        if partitions.len() > 4 {
            return Err(MbrError::TooMany(partitions.len()));
        }
        let mut entries = [None; 4];
        for (entry, p) in entries.iter_mut().zip(partitions) {
            *entry = Some(*p);
        }
        Ok(Mbr { disk_signature, partitions: entries })
    }

    /// Partition `number`, counted from 1 as in `/dev/sdb1`.
    pub fn partition(&self, number: usize) -> Option<&Partition> {
        self.partitions.get(number.checked_sub(1)?)?.as_ref()
    }

    /// Sector 0 of the disk.
    pub fn to_bytes(&self) -> [u8; SECTOR as usize] {
        let mut sector = [0u8; SECTOR as usize];
        sector[SIGNATURE_AT..SIGNATURE_AT + 4].copy_from_slice(&self.disk_signature.to_le_bytes());
        for (i, p) in self.partitions.iter().enumerate() {
            if let Some(p) = p {
                let at = ENTRIES_AT + i * ENTRY_LEN;
                sector[at..at + ENTRY_LEN].copy_from_slice(&p.encode());
            }
        }
        sector[510..].copy_from_slice(&BOOT_SIGNATURE);
        sector
    }

    /// The table in sector 0 (`sector` may be longer).
    pub fn parse(sector: &[u8]) -> Result<Mbr, MbrError> {
        let Some(sector) = sector.get(..SECTOR as usize) else {
            return Err(MbrError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes, a sector has {SECTOR}", sector.len()),
            )));
        };
        if sector[510..] != BOOT_SIGNATURE {
            return Err(MbrError::NoSignature(u16::from_be_bytes([sector[510], sector[511]])));
        }
        let disk_signature = u32::from_le_bytes([
            sector[SIGNATURE_AT],
            sector[SIGNATURE_AT + 1],
            sector[SIGNATURE_AT + 2],
            sector[SIGNATURE_AT + 3],
        ]);
        let mut partitions = [None; 4];
        for (i, entry) in partitions.iter_mut().enumerate() {
            let at = ENTRIES_AT + i * ENTRY_LEN;
            *entry = Partition::decode(&sector[at..at + ENTRY_LEN]);
        }
        Ok(Mbr { disk_signature, partitions })
    }

    /// The table of a disk or image file.
    pub fn read_from(file: &File) -> Result<Mbr, MbrError> {
        let mut sector = [0u8; SECTOR as usize];
        file.read_exact_at(&mut sector, 0).map_err(MbrError::Read)?;
        Mbr::parse(&sector)
    }
}

/// CHS address with the usual 255 heads x 63 sectors geometry; past the
/// reach of CHS it is the conventional 1023/254/63.
fn chs(lba: u32) -> [u8; 3] {
    let (heads, sectors) = (255u32, 63u32);
    let c = lba / (heads * sectors);
    if c > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let h = (lba / sectors) % heads;
    let s = lba % sectors + 1;
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_table() -> Mbr {
        let p1 = Partition::new(PartitionType::FAT32_LBA, 4 << 20, 508 << 20).unwrap();
        let p2 = Partition::new(PartitionType::LINUX, 512 << 20, 1536 << 20).unwrap();
        Mbr::new(0x1234_5678, &[p1, p2]).unwrap()
    }

    #[test]
    fn the_table_lands_at_the_documented_offsets() {
        let m = card_table().to_bytes();
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert_eq!(&m[440..444], &0x1234_5678_u32.to_le_bytes());
        assert_eq!(m[446], 0x00, "not active");
        assert_eq!(m[446 + 4], 0x0c);
        assert_eq!(&m[446 + 8..446 + 12], &8192_u32.to_le_bytes());
        assert_eq!(m[462 + 4], 0x83);
        assert_eq!(&m[462 + 12..462 + 16], &((1536_u32 << 20) / 512).to_le_bytes());
        assert!(m[478..510].iter().all(|b| *b == 0), "entries 3 and 4 unused");
    }

    #[test]
    fn a_written_table_reads_back_the_same() {
        let table = card_table();
        let back = Mbr::parse(&table.to_bytes()).unwrap();
        assert_eq!(back, table);
        let fat = back.partition(1).unwrap();
        assert!(fat.kind.is_fat32());
        assert_eq!((fat.start(), fat.len(), fat.end()), (4 << 20, 508 << 20, 512 << 20));
        assert_eq!(back.partition(3), None);
        assert_eq!(back.partition(0), None);
    }

    #[test]
    fn a_sector_without_the_boot_signature_is_no_table() {
        let mut sector = card_table().to_bytes();
        sector[510] = 0;
        let err = Mbr::parse(&sector).unwrap_err();
        assert!(matches!(err, MbrError::NoSignature(0x00aa)), "{err}");
        assert!(err.to_string().contains("no MBR partition table"), "{err}");
        assert!(matches!(Mbr::parse(&[0x55, 0xaa]), Err(MbrError::Read(_))));
    }

    #[test]
    fn partitions_must_be_whole_sectors_within_two_tebibytes() {
        let fat = PartitionType::FAT32_LBA;
        assert!(matches!(Partition::new(fat, 100, 512), Err(MbrError::Unaligned { .. })));
        assert!(matches!(Partition::new(fat, 512, 0), Err(MbrError::Unaligned { .. })));
        assert!(matches!(Partition::new(fat, 512, 2 << 40), Err(MbrError::TooLarge { .. })));
        assert!(matches!(Partition::new(fat, 2 << 40, 512), Err(MbrError::TooLarge { .. })));
        let p = Partition::new(fat, 512, 512).unwrap();
        assert!(matches!(Mbr::new(0, &[p; 5]), Err(MbrError::TooMany(5))));
    }

    #[test]
    fn chs_addresses() {
        // LBA 8192 = cylinder 0, head 130, sector 3 with 255x63 geometry.
        assert_eq!(chs(8192), [130, 3, 0]);
        assert_eq!(chs(u32::MAX), [0xfe, 0xff, 0xff]);
    }

    /// util-linux's sfdisk, an independent reader, sees the same table.
    #[test]
    fn sfdisk_reads_what_we_write() {
        let has_sfdisk = std::process::Command::new("sfdisk").arg("--version").output().is_ok();
        if !has_sfdisk {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "sfdisk missing: setup.sh");
            eprintln!("SKIP sfdisk missing (package fdisk)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pi-lab-mbr.img");
        let file = File::create(&path).unwrap();
        file.set_len(2 << 30).unwrap();
        file.write_all_at(&card_table().to_bytes(), 0).unwrap();
        let out = std::process::Command::new("sfdisk").arg("--json").arg(&path).output().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let table = &doc["partitiontable"];
        assert_eq!(table["label"], "dos");
        assert_eq!(table["id"], "0x12345678");
        let parts = table["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (&parts[0]["start"], &parts[0]["size"], &parts[0]["type"]),
            (&8192.into(), &1_040_384.into(), &"c".into())
        );
        assert_eq!(
            (&parts[1]["start"], &parts[1]["size"], &parts[1]["type"]),
            (&1_048_576.into(), &3_145_728.into(), &"83".into())
        );
    }
}
