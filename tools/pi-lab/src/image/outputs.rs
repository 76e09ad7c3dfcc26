//! The outputs: written into a hidden work folder inside `--out`, renamed
//! into place only when all of them are complete. A failure or Ctrl-C
//! removes the work folder, so `--out` never holds a half-written file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::progress::Cancel;
use super::{ImageError, Profile};

/// Removes the paths it holds when dropped (files or folders).
#[derive(Debug)]
pub struct RemoveOnDrop(pub Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// A private folder (mode 0700, a new random name: nothing planted in
/// advance is followed) in `parent`, removed on drop. `image build` runs
/// as root, so a name another user could guess is never used.
pub fn private_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, ImageError> {
    tempfile::Builder::new().prefix(prefix).tempdir_in(parent).map_err(|e| {
        ImageError::io(format!("creating a folder {prefix}… in {}", parent.display()), e)
    })
}

/// `OUT/.NAME.build-XXXXXX`: everything of one build until it is complete.
#[derive(Debug)]
pub struct WorkDir {
    dir: tempfile::TempDir,
    name: String,
}

/// Where the outputs ended up.
#[derive(Debug)]
pub struct Finals {
    pub image: PathBuf,
    pub compressed: PathBuf,
    pub bmap: PathBuf,
    pub manifest: PathBuf,
    pub sums: PathBuf,
    pub compressed_size: u64,
}

pub const SUFFIXES: &[&str] = &[".img", ".img.zst", ".img.bmap", ".manifest"];

impl WorkDir {
    pub fn new(out: &Path, name: &str) -> Result<Self, ImageError> {
        let dir = private_dir(out, &format!(".{name}.build-"))?;
        Ok(Self { dir, name: name.to_string() })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `NAME` + suffix inside the work folder.
    pub fn file(&self, suffix: &str) -> PathBuf {
        self.path().join(format!("{}{suffix}", self.name))
    }

    /// Renames the finished outputs into `out` (same file system: atomic).
    pub fn commit(&self, out: &Path) -> Result<Finals, ImageError> {
        let mut names: Vec<String> = SUFFIXES.iter().map(|s| format!("{}{s}", self.name)).collect();
        names.push("SHA256SUMS".into());
        for n in &names {
            let from = self.path().join(n);
            let to = out.join(n);
            fs::rename(&from, &to).map_err(|e| {
                ImageError::io(format!("moving {} to {}", from.display(), to.display()), e)
            })?;
        }
        let at = |s: &str| out.join(format!("{}{s}", self.name));
        let compressed = at(".img.zst");
        let compressed_size = fs::metadata(&compressed).map(|m| m.len()).unwrap_or(0);
        Ok(Finals {
            image: at(".img"),
            bmap: at(".img.bmap"),
            manifest: at(".manifest"),
            sums: out.join("SHA256SUMS"),
            compressed,
            compressed_size,
        })
    }
}

pub fn sha256_file(path: &Path, cancel: &Cancel) -> Result<String, ImageError> {
    let mut f =
        File::open(path).map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        cancel.check()?;
        let n = f
            .read(&mut buf)
            .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// One installed package, from the tree's dpkg database.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

pub fn packages(tree: &Path) -> Result<Vec<Package>, ImageError> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", tree.join("var/lib/dpkg").display()))
        .args(["-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| ImageError::io("running dpkg-query", e))?;
    if !out.status.success() {
        return Err(ImageError::Step {
            step: "manifest",
            message: format!("dpkg-query failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let mut list: Vec<Package> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let status = it.next()?;
            (status.trim() == "ii").then_some(())?;
            Some(Package {
                name: it.next()?.into(),
                version: it.next()?.into(),
                architecture: it.next()?.into(),
            })
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// Hashes of everything that went into the image.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    pub agent_sha256: String,
    pub rootfs_key: String,
    pub rootfs_sha256: String,
    pub layers: &'a [super::rootfs::Built],
    pub filesystems_key: String,
    pub overlays: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    image: ManifestImage<'a>,
    inputs: ManifestInputs<'a>,
    profile: &'a super::profile::Profile,
    package: &'a [Package],
}

#[derive(Debug, Serialize)]
struct ManifestImage<'a> {
    name: &'a str,
    size: u64,
    source_date_epoch: u64,
    built_by: String,
    disk_signature: String,
    root_uuid: String,
    firmware_volume_id: String,
}

#[derive(Debug, Serialize)]
struct ManifestInputs<'a> {
    profile_file: String,
    profile_sha256: String,
    node_agent_sha256: &'a str,
    rootfs_cache_key: &'a str,
    rootfs_tar_sha256: &'a str,
    filesystems_cache_key: &'a str,
    overlays: &'a BTreeMap<String, String>,
    layer: Vec<ManifestLayer<'a>>,
}

#[derive(Debug, Serialize)]
struct ManifestLayer<'a> {
    name: &'a str,
    cache_key: &'a str,
    tar_sha256: &'a str,
    packages: &'a [String],
}

/// Writes `NAME.manifest`; returns its sha256.
pub fn manifest(
    work: &WorkDir,
    inputs: &Inputs<'_>,
    packages: &[Package],
) -> Result<String, ImageError> {
    let p = inputs.profile;
    let m = Manifest {
        image: ManifestImage {
            name: &p.profile.name,
            size: p.image_size,
            source_date_epoch: p.epoch(),
            built_by: format!("pi-lab {}", env!("CARGO_PKG_VERSION")),
            disk_signature: format!("0x{:08x}", p.derived_u32("disk signature")),
            root_uuid: p.derived_uuid("root file system uuid"),
            firmware_volume_id: format!("{:08X}", p.derived_u32("firmware volume id")),
        },
        inputs: ManifestInputs {
            profile_file: p
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            profile_sha256: hex::encode(Sha256::digest(p.text.as_bytes())),
            node_agent_sha256: &inputs.agent_sha256,
            rootfs_cache_key: &inputs.rootfs_key,
            rootfs_tar_sha256: &inputs.rootfs_sha256,
            filesystems_cache_key: &inputs.filesystems_key,
            overlays: &inputs.overlays,
            layer: inputs
                .layers
                .iter()
                .map(|l| ManifestLayer {
                    name: l.name,
                    cache_key: &l.key,
                    tar_sha256: &l.sha256,
                    packages: &l.packages,
                })
                .collect(),
        },
        profile: &p.profile,
        package: packages,
    };
    let text = toml::to_string(&m)
        .map_err(|e| ImageError::Step { step: "manifest", message: e.to_string() })?;
    let header = "# pi-lab image manifest: what is in the image and what made it.\n";
    write_hashed(&work.file(".manifest"), format!("{header}{text}").as_bytes())
}

/// Writes a small output file and returns the sha256 of what it wrote.
pub fn write_hashed(path: &Path, bytes: &[u8]) -> Result<String, ImageError> {
    fs::write(path, bytes).map_err(|e| ImageError::io(format!("writing {}", path.display()), e))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// `SHA256SUMS` in `sha256sum -c` format, from the hashes taken while
/// each output was written (`sums` in [`SUFFIXES`] order).
pub fn sha256sums(work: &WorkDir, sums: &[String]) -> Result<(), ImageError> {
    let mut text = String::new();
    for (s, sum) in SUFFIXES.iter().zip(sums) {
        let p = work.file(s);
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        text.push_str(&format!("{sum}  {name}\n"));
    }
    write_hashed(&work.path().join("SHA256SUMS"), text.as_bytes()).map(|_| ())
}

/// Flushes the outputs to disk (in parallel) before they are renamed into
/// place, so a crash never leaves a complete-looking, half-written image.
pub fn sync(work: &WorkDir) -> Result<(), ImageError> {
    let mut names: Vec<PathBuf> = SUFFIXES.iter().map(|s| work.file(s)).collect();
    names.push(work.path().join("SHA256SUMS"));
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|p| {
                scope.spawn(move || {
                    File::open(p)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| ImageError::io(format!("syncing {}", p.display()), e))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err(ImageError::Step { step: "sync", message: "a sync thread panicked".into() })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::progress::{Cancel, Show, Steps};
    use super::*;

    /// A folder of someone else's, and a symlink to it planted at `at`.
    fn plant(at: &Path) -> tempfile::TempDir {
        let victim = tempfile::tempdir().unwrap();
        fs::write(victim.path().join("keep"), b"mine").unwrap();
        std::os::unix::fs::symlink(victim.path(), at).unwrap();
        victim
    }

    fn untouched(victim: &Path, link: &Path) {
        let names: Vec<_> = fs::read_dir(victim).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["keep"], "nothing written through the link");
        assert_eq!(fs::read(victim.join("keep")).unwrap(), b"mine");
        assert_eq!(fs::read_link(link).unwrap(), victim, "the planted link is left alone");
    }

    #[test]
    fn a_symlink_planted_at_the_old_log_folder_name_is_not_followed() {
        // Where `image build` (as root) used to put its logs.
        let link = std::env::temp_dir().join(format!("pi-lab-image-logs-{}", std::process::id()));
        let victim = plant(&link);
        let mut steps = Steps::new(Show::Lines, Cancel::never()).unwrap();
        let log = steps
            .run("a step", |step| {
                let log = step.log("mkfs.log");
                fs::write(&log, b"output").unwrap();
                Ok(log)
            })
            .unwrap();
        assert!(!log.starts_with(&link) && log.is_file(), "{}", log.display());
        drop(steps);
        assert!(!log.exists(), "the log folder goes with the build");
        untouched(victim.path(), &link);
        fs::remove_file(&link).unwrap();
    }

    #[test]
    fn a_symlink_planted_at_the_old_work_folder_name_is_not_followed() {
        let out = tempfile::tempdir().unwrap();
        let link = out.path().join(format!(".pi.build-{}", std::process::id()));
        let victim = plant(&link);
        let work = WorkDir::new(out.path(), "pi").unwrap();
        fs::write(work.file(".img"), b"image").unwrap();
        assert_ne!(work.path(), link);
        drop(work);
        untouched(victim.path(), &link);
        let left: Vec<_> = fs::read_dir(out.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the planted link is left in --out");
    }
}
