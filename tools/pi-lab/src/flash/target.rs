//! A card to write: a block device (opened exclusively, direct I/O) or a
//! regular file (an image copy; unmapped ranges stay holes).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Alignment of every buffer handed to direct I/O (covers 512 and 4096
/// byte logical blocks).
pub const ALIGN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {path} does not exist (or vanished)")]
    Missing { path: PathBuf },
    #[error("target {path} is neither a block device nor a regular file")]
    NotWritable { path: PathBuf },
    #[error(
        "target {path} is busy: something else holds it open exclusively (mounted, RAID, LVM?) ({source})"
    )]
    Busy { path: PathBuf, source: io::Error },
    #[error("cannot open target {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot {action} target {path} at byte {offset}: {source}")]
    Io { path: PathBuf, action: &'static str, offset: u64, source: io::Error },
}

/// A zero-filled buffer whose start is aligned for direct I/O, built
/// without unsafe code by over-allocating and slicing.
#[derive(Debug)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let offset = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, offset, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.offset..self.offset + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.offset..self.offset + self.len]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    BlockDevice,
    RegularFile,
}

#[derive(Debug)]
pub struct Target {
    pub path: PathBuf,
    pub kind: TargetKind,
    file: File,
    /// Device size; for a regular file, the image size it is set to.
    pub size: u64,
    /// Direct I/O is on for aligned transfers.
    direct: bool,
    /// Writes and reads of this granularity may use direct I/O.
    block: u64,
    /// A regular file is written beside its final name and renamed there
    /// only when complete; a failed run leaves no half-written file.
    partial: Option<PathBuf>,
}

/// `DIR/.NAME.pi-lab-partial` for `DIR/NAME`.
fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.pi-lab-partial"))
}

/// What kind of target a path is, following symlinks (`/dev/disk/by-id/…`).
pub fn kind_of(path: &Path) -> Result<TargetKind, TargetError> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => Ok(TargetKind::BlockDevice),
        Ok(m) if m.is_file() => Ok(TargetKind::RegularFile),
        Ok(_) => Err(TargetError::NotWritable { path: path.to_path_buf() }),
        // A file target that does not exist yet is made, if its folder exists.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match path.parent().map(|p| p.as_os_str().is_empty() || p.is_dir()) {
                Some(true) => Ok(TargetKind::RegularFile),
                _ => Err(TargetError::Missing { path: path.to_path_buf() }),
            }
        }
        Err(source) => Err(TargetError::Open { path: path.to_path_buf(), source }),
    }
}

impl Target {
    /// Open for writing. A block device is opened with O_EXCL (fails when
    /// mounted or held by another program) and O_DIRECT. A regular file is
    /// cut to `image_size`, so unmapped ranges read back as zeros.
    pub fn open(path: &Path, image_size: Option<u64>) -> Result<Target, TargetError> {
        let kind = kind_of(path)?;
        let open_err = |source: io::Error| match source.raw_os_error() {
            Some(libc::EBUSY) => TargetError::Busy { path: path.to_path_buf(), source },
            Some(libc::ENOENT) => TargetError::Missing { path: path.to_path_buf() },
            _ => TargetError::Open { path: path.to_path_buf(), source },
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match kind {
            TargetKind::BlockDevice => {
                options.custom_flags(libc::O_EXCL | libc::O_DIRECT);
                let mut file = options.open(path).map_err(open_err)?;
                let size = file.seek(SeekFrom::End(0)).map_err(open_err)?;
                let block = logical_block_size(path).max(512);
                Ok(Target {
                    path: path.to_path_buf(),
                    kind,
                    file,
                    size,
                    direct: true,
                    block,
                    partial: None,
                })
            }
            TargetKind::RegularFile => {
                let partial = partial_path(path);
                options.create(true).truncate(true);
                let file = options.open(&partial).map_err(open_err)?;
                let size = image_size.unwrap_or(0);
                file.set_len(size).map_err(open_err)?;
                let mut target = Target {
                    path: path.to_path_buf(),
                    kind,
                    file,
                    size,
                    direct: false,
                    block: 4096,
                    partial: Some(partial),
                };
                // Direct I/O where the file system has it (not all do).
                target.direct = target.set_direct(true).is_ok();
                Ok(target)
            }
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn io_err(&self, action: &'static str, offset: u64, source: io::Error) -> TargetError {
        TargetError::Io { path: self.path.clone(), action, offset, source }
    }

    /// Turn O_DIRECT on or off on the open descriptor.
    pub fn set_direct(&mut self, on: bool) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, with plain integer flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.direct = on;
        Ok(())
    }

    fn aligned(&self, offset: u64, buf: &[u8]) -> bool {
        offset.is_multiple_of(self.block)
            && (buf.len() as u64).is_multiple_of(self.block)
            && (buf.as_ptr() as usize).is_multiple_of(ALIGN)
    }

    /// Write `buf` at `offset`; transfers direct I/O cannot take (an
    /// unaligned tail) go through the page cache, flushed by `sync`.
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), TargetError> {
        let aligned = self.aligned(offset, buf);
        self.transfer("write", offset, aligned, |f| f.write_all_at(buf, offset))
    }

    /// Read `buf.len()` bytes at `offset`, with direct I/O when aligned, so
    /// what is checked is what the card holds, not the page cache.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let aligned = self.aligned(offset, buf);
        self.transfer("read", offset, aligned, |f| f.read_exact_at(buf, offset))
    }

    /// Run one transfer, with direct I/O switched off around it if it is
    /// not aligned.
    fn transfer(
        &mut self,
        action: &'static str,
        offset: u64,
        aligned: bool,
        io: impl FnOnce(&File) -> io::Result<()>,
    ) -> Result<(), TargetError> {
        let toggle = self.direct && !aligned;
        if toggle {
            self.set_direct(false).map_err(|e| self.io_err(action, offset, e))?;
        }
        let result = io(&self.file);
        if toggle {
            self.set_direct(true).map_err(|e| self.io_err(action, offset, e))?;
        }
        result.map_err(|e| self.io_err(action, offset, e))
    }

    /// A file target takes its final name (after sync, verify, identity).
    pub fn commit(&mut self) -> Result<(), TargetError> {
        if let Some(partial) = self.partial.take() {
            std::fs::rename(&partial, &self.path).map_err(|e| self.io_err("rename", 0, e))?;
        }
        Ok(())
    }

    /// Flush to the card and drop cached pages, so later reads hit the card.
    pub fn sync(&self) -> Result<(), TargetError> {
        self.file.sync_all().map_err(|e| self.io_err("fsync", 0, e))?;
        // SAFETY: advisory call on a descriptor we own.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(partial) = &self.partial {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// `/sys/class/block/NAME/queue/logical_block_size`, 512 if unknown.
fn logical_block_size(path: &Path) -> u64 {
    let Ok(real) = std::fs::canonicalize(path) else { return 512 };
    let Some(name) = real.file_name().and_then(|n| n.to_str()) else { return 512 };
    std::fs::read_to_string(format!("/sys/class/block/{name}/queue/logical_block_size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [0, 1, 4096, 1 << 20] {
            let buf = AlignedBuf::new(len);
            assert_eq!(buf.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(buf.len(), len);
        }
    }

    #[test]
    fn a_file_target_is_cut_to_the_image_and_round_trips() {
        let tmp = super::super::TestDir::new("target");
        let dir = tmp.path();
        let path = dir.join("card.img");
        std::fs::write(&path, vec![0xffu8; 100_000]).unwrap();
        let mut t = Target::open(&path, Some(3 * 4096 + 10)).unwrap();
        assert_eq!(t.kind, TargetKind::RegularFile);
        let mut buf = AlignedBuf::new(4096);
        buf.as_mut_slice().fill(7);
        t.write_at(4096, buf.as_slice()).unwrap();
        t.write_at(3 * 4096, &[9u8; 10]).unwrap();
        t.sync().unwrap();
        let mut back = AlignedBuf::new(4096);
        t.read_at(4096, back.as_mut_slice()).unwrap();
        assert_eq!(back.as_slice(), buf.as_slice());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0xffu8; 100_000],
            "old file kept until commit"
        );
        t.commit().unwrap();
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len(), 3 * 4096 + 10);
        assert!(content[..4096].iter().all(|b| *b == 0), "old bytes must not survive");
        assert_eq!(&content[3 * 4096..], &[9u8; 10]);
    }

    #[test]
    fn an_uncommitted_file_target_leaves_nothing_behind() {
        let tmp = super::super::TestDir::new("target-drop");
        let dir = tmp.path();
        let path = dir.join("card.img");
        let t = Target::open(&path, Some(8192)).unwrap();
        assert!(partial_path(&path).exists());
        drop(t);
        assert!(!partial_path(&path).exists() && !path.exists());
    }

    #[test]
    fn missing_folders_and_odd_files_are_refused() {
        let err = kind_of(Path::new("/nonexistent-pi-lab/card.img")).unwrap_err();
        assert!(matches!(err, TargetError::Missing { .. }), "{err}");
        let err = kind_of(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, TargetError::NotWritable { .. }), "{err}");
    }
}
