//! The two file systems made from the root file system, cached beside the
//! layers: the ext4 root (`mkfs.ext4 -d`, inode times fixed) and the FAT32
//! firmware partition (`/boot/firmware`). Their inputs are the root file
//! system and the image's fixed ids, so a build that changes only overlays
//! or the agent copies them and writes its own few files on top
//! (`top.rs`), instead of unpacking and formatting again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::firstboot::{self, Unit};
use super::outputs::{self, Package, RemoveOnDrop};
use super::profile::{FIRMWARE_END, cache_key};
use super::progress::Step;
use super::rootfs::{self, Built};
use super::{ImageError, Profile, assemble, overlay};

/// What pi-lab does between the root file system and the cached file
/// systems. Part of their key.
pub const RECIPE: &str = "pi-lab filesystems recipe 1: machine state cleared, mtimes clamped, mkfs.vfat+mcopy, mkfs.ext4 -d, debugfs times";

/// What a build needs to know about the root file system without
/// unpacking it: which paths exist, its units, its packages.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    /// Directories, as paths without a leading `/`.
    pub dirs: BTreeSet<String>,
    /// Everything else (files, links, devices).
    pub other: BTreeSet<String>,
    pub units: BTreeMap<String, Unit>,
    pub packages: Vec<Package>,
}

impl Index {
    pub fn is_dir(&self, rel: &str) -> bool {
        self.dirs.contains(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.dirs.contains(rel) || self.other.contains(rel)
    }
}

/// The cached file systems of one root file system.
#[derive(Debug)]
pub struct Filesystems {
    pub key: String,
    pub ext4: PathBuf,
    pub vfat: PathBuf,
    pub index: Index,
    pub cached: bool,
}

/// The key: the root file system's, plus everything that decides the bytes
/// of the file systems (size, ids from the profile's name and the epoch).
pub fn key(rootfs: &Built, profile: &Profile) -> String {
    cache_key(&[
        ("rootfs", rootfs.key.clone()),
        ("rootfs sha256", rootfs.sha256.clone()),
        ("image size", profile.image_size.to_string()),
        ("name", profile.profile.name.clone()),
        ("epoch", profile.epoch().to_string()),
        ("recipe", RECIPE.to_string()),
    ])
}

pub fn provide(
    rootfs: &Built,
    profile: &Profile,
    cache: &Path,
    rebuild: bool,
    work: &Path,
    step: &Step,
) -> Result<Filesystems, ImageError> {
    let key = key(rootfs, profile);
    let dir = cache.join("fs");
    fs::create_dir_all(&dir)
        .map_err(|e| ImageError::io(format!("creating cache {}", dir.display()), e))?;
    let at = |ext: &str| dir.join(format!("{key}.{ext}"));
    let (ext4, vfat, index) = (at("ext4"), at("vfat"), at("json"));
    if !rebuild
        && ext4.is_file()
        && vfat.is_file()
        && let Some(idx) = read_index(&index)
    {
        step.set_cached();
        return Ok(Filesystems { key, ext4, vfat, index: idx, cached: true });
    }
    let pid = std::process::id();
    let partial = |p: &Path| PathBuf::from(format!("{}.partial-{pid}", p.display()));
    let (p_ext4, p_vfat, p_index) = (partial(&ext4), partial(&vfat), partial(&index));
    let _guard = RemoveOnDrop(vec![p_ext4.clone(), p_vfat.clone(), p_index.clone()]);

    let tree = work.join("rootfs");
    let _tree_guard = RemoveOnDrop(vec![tree.clone()]);
    step.message("unpacking the root file system");
    rootfs::unpack(&rootfs.tar, &tree, step)?;
    firstboot::clear_machine_state(&tree)?;
    overlay::clamp_mtimes(&tree, profile.epoch())?;
    let units = firstboot::unit_index(&tree)?;
    let packages = outputs::packages(&tree)?;
    step.message("FAT32 file system from /boot/firmware");
    let firmware = tree.join("boot/firmware");
    assemble::firmware_fs(&firmware, &p_vfat, profile, step)?;
    // On p2, /boot/firmware is only the mount point.
    assemble::empty_dir(&firmware)?;
    overlay::clamp_mtimes(&firmware, profile.epoch())?;
    let idx = Index { units, packages, ..index_of(&tree)? };
    step.message("ext4 file system (mkfs.ext4 -d)");
    assemble::root_fs(&tree, &p_ext4, profile.image_size - FIRMWARE_END, profile, work, step)?;
    let text = serde_json::to_vec(&idx)
        .map_err(|e| ImageError::Step { step: "file systems", message: e.to_string() })?;
    fs::write(&p_index, text)
        .map_err(|e| ImageError::io(format!("writing {}", p_index.display()), e))?;
    // The index last: it marks the entry complete.
    for (from, to) in [(&p_ext4, &ext4), (&p_vfat, &vfat), (&p_index, &index)] {
        fs::rename(from, to)
            .map_err(|e| ImageError::io(format!("renaming {}", from.display()), e))?;
    }
    Ok(Filesystems { key, ext4, vfat, index: idx, cached: false })
}

fn read_index(path: &Path) -> Option<Index> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Which paths of the tree are directories and which are not.
fn index_of(tree: &Path) -> Result<Index, ImageError> {
    let mut idx = Index::default();
    for (rel, meta) in overlay::walk(tree)? {
        let p = rel.to_string_lossy().into_owned();
        if meta.is_dir() {
            idx.dirs.insert(p);
        } else {
            idx.other.insert(p);
        }
    }
    Ok(idx)
}
