//! The disk image, made without loop devices or mounts:
//! `/boot/firmware` becomes a FAT32 file system made in a plain file
//! (`mkfs.vfat`, filled by mtools' `mcopy`), the rest an ext4 file system
//! made by `mkfs.ext4 -d` (both cached, see `filesystems.rs`); both are
//! copied, holes kept, into one sparse file behind an MBR we write, and the
//! build's own files are written on top (`top.rs`).
//!
//! Layout: MBR; p1 FAT32 (LBA, type 0x0c) `RASPIFIRM` 4 MiB..512 MiB;
//! p2 Linux (0x83) ext4 `RASPIROOT` 512 MiB..end.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use super::filesystems::Filesystems;
use super::overlay::walk;
use super::profile::{FIRMWARE_END, FIRMWARE_START};
use super::progress::{Cancel, Step};
use super::{ImageError, Profile};
use crate::mbr::{Mbr, MbrError, Partition, PartitionType};

fn io(ctx: &str, p: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let ctx = format!("{ctx} {}", p.display());
    move |e| ImageError::io(ctx, e)
}

/// Builds the whole image at `img`: MBR, the cached file systems at their
/// offsets, then the build's own files from `top`.
pub fn image(
    fs: &Filesystems,
    top: &Path,
    staged: &super::top::Staged,
    profile: &Profile,
    img: &Path,
    work: &Path,
    step: &Step,
) -> Result<(), ImageError> {
    step.message("partition table and placement");
    let mut out =
        OpenOptions::new().write(true).create_new(true).open(img).map_err(io("creating", img))?;
    out.set_len(profile.image_size).map_err(io("sizing", img))?;
    let table = mbr(profile.derived_u32("disk signature"), profile.image_size)
        .map_err(|e| ImageError::Step { step: "partition table", message: e.to_string() })?;
    out.write_all(&table.to_bytes()).map_err(io("writing the MBR of", img))?;
    place(&fs.vfat, &out, FIRMWARE_START, &step.cancel)?;
    place(&fs.ext4, &out, FIRMWARE_END, &step.cancel)?;
    drop(out);
    super::top::write(top, staged, img, &fs.index, profile, work, step)
}

/// The card's partition table: fixed disk signature, p1 FAT32 (LBA) from
/// 4 to 512 MiB, p2 Linux from there to the end.
pub fn mbr(signature: u32, image_size: u64) -> Result<Mbr, MbrError> {
    let firmware =
        Partition::new(PartitionType::FAT32_LBA, FIRMWARE_START, FIRMWARE_END - FIRMWARE_START)?;
    let root = Partition::new(PartitionType::LINUX, FIRMWARE_END, image_size - FIRMWARE_END)?;
    Mbr::new(signature, &[firmware, root])
}

/// Formats a FAT32 file system the size of p1 in `out` (`mkfs.vfat
/// --invariant` with the profile's volume id) and copies `src` (the tree's
/// `/boot/firmware`) into it with mtools, keeping the clamped mtimes.
pub fn firmware_fs(
    src: &Path,
    out: &Path,
    profile: &Profile,
    step: &Step,
) -> Result<(), ImageError> {
    let size = FIRMWARE_END - FIRMWARE_START;
    let epoch = profile.epoch().to_string();
    let mut mkfs = Command::new("mkfs.vfat");
    mkfs.env("SOURCE_DATE_EPOCH", &epoch)
        .args(["-F", "32", "-S", "512", "-s", "8", "-n", "RASPIFIRM", "--invariant", "-i"])
        .arg(format!("{:08X}", profile.derived_u32("firmware volume id")))
        .arg("-C")
        .arg(out)
        .arg((size / 1024).to_string());
    step.command("mkfs.vfat", &mut mkfs, &step.log("mkfs.vfat.log"))?;
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(io("reading", src))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io("reading", src))?;
    entries.sort();
    if entries.is_empty() {
        return Err(ImageError::Step {
            step: "firmware partition",
            message: "/boot/firmware is empty: raspi-firmware's hook did not run (see the mmdebstrap log in the cache)"
                .into(),
        });
    }
    let mut mcopy = Command::new("mcopy");
    mcopy
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C")
        .args(["-s", "-m", "-p", "-Q", "-i"])
        .arg(out)
        .args(&entries)
        .arg("::");
    step.command("mcopy", &mut mcopy, &step.log("mcopy.log"))
}

pub fn empty_dir(dir: &Path) -> Result<(), ImageError> {
    for entry in fs::read_dir(dir).map_err(io("reading", dir))? {
        let p = entry.map_err(io("reading", dir))?.path();
        if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&p).map_err(io("removing", &p))?;
        } else {
            fs::remove_file(&p).map_err(io("removing", &p))?;
        }
    }
    Ok(())
}

/// `mkfs.ext4 -d`: the file system made straight from the tree, with UUID,
/// directory hash seed and times fixed, then inode change and access times
/// set to the epoch (mkfs copies them from the tree, where they are the
/// unpack time; mtimes are already clamped in the tree).
pub fn root_fs(
    tree: &Path,
    out: &Path,
    size: u64,
    profile: &Profile,
    work: &Path,
    step: &Step,
) -> Result<(), ImageError> {
    let epoch = profile.epoch().to_string();
    let mut cmd = Command::new("mkfs.ext4");
    cmd.env("E2FSPROGS_FAKE_TIME", &epoch)
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("LC_ALL", "C")
        .env("MKE2FS_CONFIG", "/etc/mke2fs.conf")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-L", "RASPIROOT"])
        .arg("-U")
        .arg(profile.derived_uuid("root file system uuid"))
        .arg("-E")
        .arg(format!(
            "hash_seed={},root_owner=0:0,nodiscard",
            profile.derived_uuid("root directory hash seed")
        ))
        .arg("-d")
        .arg(tree)
        .arg(out)
        .arg(format!("{}k", size / 1024));
    step.command("mkfs.ext4", &mut cmd, &step.log("mkfs.ext4.log"))?;
    fix_ctimes(tree, out, profile.epoch(), work, step)
}

fn fix_ctimes(
    tree: &Path,
    img: &Path,
    epoch: u64,
    work: &Path,
    step: &Step,
) -> Result<(), ImageError> {
    let script = work.join("ctimes.debugfs");
    let mut text = format!("sif / ctime @{epoch}\nsif / atime @{epoch}\n");
    for (rel, _) in walk(tree)? {
        let p = rel.to_string_lossy();
        if p.contains('"') || p.contains('\n') {
            return Err(ImageError::Step {
                step: "root file system",
                message: format!(
                    "file name /{p} has a quote or newline; debugfs cannot address it"
                ),
            });
        }
        text.push_str(&format!("sif \"/{p}\" ctime @{epoch}\nsif \"/{p}\" atime @{epoch}\n"));
    }
    fs::write(&script, text).map_err(io("writing", &script))?;
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string()).arg("-w").arg("-f").arg(&script).arg(img);
    let log = step.log("debugfs.log");
    step.command("debugfs (inode change times)", &mut cmd, &log)?;
    // debugfs exits 0 even when a command fails; its errors name the command.
    let out = fs::read_to_string(&log).unwrap_or_default();
    if let Some(line) = out.lines().find(|l| l.starts_with("sif:") || l.contains("File not found"))
    {
        return Err(ImageError::Step {
            step: "root file system",
            message: format!("debugfs: {line}"),
        });
    }
    fs::remove_file(&script).map_err(io("removing", &script))
}

/// Copies the data of `src` into `dst` at `offset`, skipping holes, so the
/// image stays sparse and the block map sees only what the file systems
/// wrote. copy_file_range copies in the kernel (a reflink where the file
/// system can); between two file systems it may refuse, and then the data
/// goes through a buffer.
pub fn place(src: &Path, dst: &File, offset: u64, cancel: &Cancel) -> Result<(), ImageError> {
    use nix::errno::Errno;
    use nix::fcntl::copy_file_range;
    let input = File::open(src).map_err(io("opening", src))?;
    let len = input.metadata().map_err(io("stat", src))?.size();
    let mut in_kernel = true;
    let mut buf = Vec::new();
    for (start, end) in data_ranges(&input, len).map_err(io("finding data in", src))? {
        let mut pos = start;
        while pos < end {
            cancel.check()?;
            let n = ((end - pos) as usize).min(1 << 30);
            let (mut from, mut to) = (pos as i64, (offset + pos) as i64);
            let done = if in_kernel {
                match copy_file_range(&input, Some(&mut from), dst, Some(&mut to), n) {
                    Ok(done) => done,
                    Err(Errno::EXDEV | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOSYS) => {
                        in_kernel = false;
                        continue;
                    }
                    Err(e) => return Err(ImageError::io("copying into the image", e.into())),
                }
            } else {
                buf.resize(n.min(8 << 20), 0);
                input.read_exact_at(&mut buf, pos).map_err(io("reading", src))?;
                dst.write_all_at(&buf, offset + pos)
                    .map_err(|e| ImageError::io("writing the image", e))?;
                buf.len()
            };
            if done == 0 {
                return Err(ImageError::Step {
                    step: "assemble",
                    message: format!("{} ended early at byte {pos}", src.display()),
                });
            }
            pos += done as u64;
        }
    }
    Ok(())
}

/// `(start, end)` byte ranges holding data (SEEK_DATA/SEEK_HOLE).
pub fn data_ranges(file: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use nix::unistd::{Whence, lseek};
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        let start = match lseek(file.as_fd(), pos, Whence::SeekData) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = lseek(file.as_fd(), start, Whence::SeekHole)?;
        out.push((start as u64, (end as u64).min(len)));
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_layout_matches_design() {
        let m = mbr(0x1234_5678, 2 << 30).unwrap();
        assert_eq!(m.disk_signature, 0x1234_5678);
        let p1 = m.partition(1).unwrap();
        assert_eq!(p1.kind, PartitionType::FAT32_LBA);
        assert_eq!((p1.start(), p1.len()), (4 << 20, 508 << 20));
        let p2 = m.partition(2).unwrap();
        assert_eq!(p2.kind, PartitionType::LINUX);
        assert_eq!((p2.start(), p2.end()), (512 << 20, 2 << 30));
        assert_eq!(m.partition(3), None);
    }

    #[test]
    fn place_copies_data_and_keeps_holes_also_across_file_systems() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        let f = File::create(&src).unwrap();
        f.set_len(16 << 20).unwrap();
        f.write_all_at(b"first", 1 << 20).unwrap();
        f.write_all_at(b"second", 12 << 20).unwrap();
        // /dev/shm is tmpfs: copy_file_range from here refuses (EXDEV).
        let shm = tempfile::Builder::new().prefix("pi-lab-place-").tempdir_in("/dev/shm").ok();
        let targets = [Some(dir.join("dst")), shm.as_ref().map(|d| d.path().join("dst"))];
        for dst_path in targets.iter().flatten() {
            let dst = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dst_path)
                .unwrap();
            dst.set_len(32 << 20).unwrap();
            place(&src, &dst, 4 << 20, &Cancel::never()).unwrap();
            let mut got = [0u8; 6];
            dst.read_exact_at(&mut got[..5], (5 << 20) as u64).unwrap();
            assert_eq!(&got[..5], b"first", "{}", dst_path.display());
            dst.read_exact_at(&mut got, (16 << 20) as u64).unwrap();
            assert_eq!(&got, b"second");
            let mapped: u64 = data_ranges(&dst, 32 << 20).unwrap().iter().map(|(a, b)| b - a).sum();
            assert!(mapped < 4 << 20, "holes must stay holes: {mapped} bytes mapped");
            fs::remove_file(dst_path).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_errors_name_their_cause_once() {
        let e = ImageError::io("opening x", std::io::Error::from_raw_os_error(2));
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }

    #[test]
    fn data_ranges_skip_holes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("pi-lab-holes");
        let f =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(b"x", 4 << 20).unwrap();
        let r = data_ranges(&f, 8 << 20).unwrap();
        fs::remove_file(&p).unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].0 <= 4 << 20 && r[0].1 > 4 << 20 && r[0].1 - r[0].0 <= 1 << 20, "{r:?}");
    }
}
