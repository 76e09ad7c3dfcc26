//! `pi-lab image build`: one Debian 13 arm64 image for the whole fleet.
//!
//! The steps, each named in the progress display (`ran` or `cached`):
//! prerequisites -> agent (cargo, aarch64 musl) -> root file system layers
//! (mmdebstrap: base, lab, profile; each cached by a hash of what made it)
//! -> file systems (ext4 and FAT32 of the root file system, cached) -> the
//! build's own files (overlays, agent, first boot) -> assemble (MBR, cached
//! file systems placed, own files written with debugfs; no loop devices, no
//! mounts) -> one pass for bmap, sha256 and zstd -> manifest and SHA256SUMS
//! -> rename into place.

pub mod agent;
pub mod assemble;
pub mod filesystems;
pub mod firstboot;
pub mod initramfs;
pub mod outputs;
pub mod overlay;
pub mod pack;
pub mod prereqs;
pub mod profile;
pub mod progress;
pub mod rootfs;
pub mod top;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

pub use profile::Loaded as Profile;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Build the image from a profile.
    #[command(after_help = "Examples:
  pi-lab image build --out out/
  pi-lab image build --profile images/pi3b-trixie.toml --out out/ --json
  SOURCE_DATE_EPOCH=1735689600 pi-lab image build --no-cache --out out/
  pi-lab image build --no-cache=filesystems --out out/

Outputs in --out: NAME.img, NAME.img.zst, NAME.img.bmap, NAME.manifest,
SHA256SUMS. Needs root (mmdebstrap, file ownership in the root file system).

The root file system is cached in layers (base: minbase, kernel, firmware;
lab: FRR and tools; profile: the profile's packages), then as file systems.
Adding a package rebuilds only the profile layer; changing an overlay or the
agent reuses everything and takes seconds.")]
    Build(BuildArgs),
    /// Print the packages each layer installs (`LAYER PACKAGE`, one a line).
    #[command(after_help = "Examples:
  pi-lab image packages --profile images/pi3b-trixie.toml | cut -d' ' -f2 | paste -sd,
  pi-lab image packages --json    # each layer's name, cache key and packages")]
    Packages {
        /// Image profile (TOML).
        #[arg(long, env = "PI_LAB_PROFILE", default_value = "images/pi3b-trixie.toml")]
        profile: PathBuf,
        /// Each layer's name, cache key (its tarball is CACHE/rootfs/NAME-KEY.tar)
        /// and packages, as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `--no-cache` rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rebuild {
    /// Every root file system layer and the file systems (downloaded
    /// packages are still reused).
    All,
    /// Only the file systems, from the cached root file system.
    Filesystems,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Image profile (TOML).
    #[arg(long, env = "PI_LAB_PROFILE", default_value = "images/pi3b-trixie.toml")]
    pub profile: PathBuf,
    /// Where the outputs go (created if missing).
    #[arg(long, env = "PI_LAB_OUT", default_value = "out")]
    pub out: PathBuf,
    /// Rebuild even when the cache has it: `--no-cache` (= all) every
    /// layer of the root file system and the file systems; downloaded
    /// packages are still reused. `--no-cache=filesystems` only the file
    /// systems.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    pub no_cache: Option<Rebuild>,
    /// Cache of root file systems and downloaded packages (default:
    /// /var/cache/pi-lab as root, else ~/.cache/pi-lab).
    #[arg(long, env = "PI_LAB_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use this node-agent binary (aarch64, static) instead of building it.
    #[arg(long, env = "PI_LAB_AGENT")]
    pub agent: Option<PathBuf>,
    /// Print a JSON summary on stdout; stderr keeps one line per step
    /// instead of the progress display.
    #[arg(long)]
    pub json: bool,
}

/// Everything that can stop a build. Each says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("profile {path}: {message}")]
    Profile { path: PathBuf, message: String },
    #[error("missing prerequisite: {what}\n  fix: {fix}")]
    Prerequisite { what: String, fix: String },
    #[error("{step}: {message}")]
    Step { step: &'static str, message: String },
    /// The cause is part of the message, not a separate source, so
    /// `{:#}` does not print it twice.
    #[error("{context}: {cause}{hint}")]
    Io { context: String, cause: std::io::Error, hint: String },
    #[error("interrupted (Ctrl-C): removed the partial outputs, nothing is left mounted")]
    Interrupted,
}

impl ImageError {
    /// An I/O error with what was being done; a full disk gets a hint.
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Self {
        let hint = match cause.raw_os_error() {
            Some(28) => " (the disk is full: free space or choose another --out)".to_string(),
            Some(27) => " (file size limit reached: see `ulimit -f`)".to_string(),
            _ => String::new(),
        };
        ImageError::Io { context: context.into(), cause, hint }
    }
}

/// The JSON summary (`--json`) and the facts the benchmark reads.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub image: PathBuf,
    pub compressed: PathBuf,
    pub bmap: PathBuf,
    pub manifest: PathBuf,
    pub sha256sums: PathBuf,
    pub image_size: u64,
    pub compressed_size: u64,
    pub mapped_size: u64,
    pub image_sha256: String,
    /// Key of the last layer (the whole root file system).
    pub rootfs_key: String,
    /// True when every layer came from the cache.
    pub rootfs_cached: bool,
    pub layers: Vec<rootfs::Built>,
    pub filesystems_key: String,
    pub filesystems_cached: bool,
    pub seconds: f64,
    pub steps: Vec<progress::StepRecord>,
}

pub fn run(cmd: &ImageCommand) -> Result<ExitCode, ImageError> {
    match cmd {
        ImageCommand::Build(args) => {
            let summary = build(args)?;
            if args.json {
                let text = serde_json::to_string_pretty(&summary)
                    .map_err(|e| ImageError::Step { step: "summary", message: e.to_string() })?;
                println!("{text}");
            } else {
                println!(
                    "built {} ({} MiB, {} MiB mapped, {} MiB compressed) in {:.0}s",
                    summary.image.display(),
                    summary.image_size >> 20,
                    summary.mapped_size >> 20,
                    summary.compressed_size >> 20,
                    summary.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Packages { profile, json } => {
            let profile = Profile::read(profile)?;
            let layers = rootfs::plan(&profile);
            if *json {
                let list: Vec<_> = layers
                    .iter()
                    .map(|l| serde_json::json!({"name": l.name, "key": l.key, "packages": l.packages}))
                    .collect();
                let text = serde_json::to_string_pretty(&list)
                    .map_err(|e| ImageError::Step { step: "packages", message: e.to_string() })?;
                println!("{text}");
            } else {
                for layer in &layers {
                    for p in &layer.packages {
                        println!("{} {p}", layer.name);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The project folder: the profile lives in its `images/`.
fn project_root(profile: &Path) -> PathBuf {
    let abs = std::path::absolute(profile).unwrap_or_else(|_| profile.to_path_buf());
    abs.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The cache folder, and the guard of a private one made for this build
/// alone when there is no home to keep one in: a fixed name in the shared
/// temporary directory could be planted in advance by another user.
fn cache_dir(given: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>), ImageError> {
    if let Some(dir) = given.map(Path::to_path_buf).or_else(default_cache_dir) {
        return Ok((dir, None));
    }
    let tmp = outputs::private_dir(&std::env::temp_dir(), "pi-lab-cache-")?;
    Ok((tmp.path().to_path_buf(), Some(tmp)))
}

fn default_cache_dir() -> Option<PathBuf> {
    if prereqs::is_root() {
        return Some(PathBuf::from("/var/cache/pi-lab"));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|dir| dir.join("pi-lab"))
}

pub fn build(args: &BuildArgs) -> Result<Summary, ImageError> {
    let started = Instant::now();
    let cancel = progress::Cancel::install()?;
    let profile = Profile::read(&args.profile)?;
    let root = project_root(&args.profile);
    let (cache, one_off_cache) = cache_dir(args.cache_dir.as_deref())?;
    let mut steps = progress::Steps::new(
        if args.json { progress::Show::Lines } else { progress::Show::Bars },
        cancel.clone(),
    )?;
    if one_off_cache.is_some() {
        steps.note(&format!(
            "no HOME or XDG_CACHE_HOME: layers are cached in {} for this build only (--cache-dir keeps them)",
            cache.display()
        ));
    }

    let notes = steps.run("prerequisites", |_| {
        prereqs::check(&profile.profile.rootfs.architecture, args.agent.is_none())
    })?;
    for n in notes {
        steps.note(&n);
    }
    if !crate::programs::on_path("depmod") {
        steps.note("no depmod on this host (apt-get install kmod): the kernel's module index is made under emulation (slower)");
    }
    if !rootfs::eatmydata_available() {
        steps.note(
            "no eatmydata for dpkg (mmdebstrap's hook or dpkg-architecture from dpkg-dev is missing): layers build slower",
        );
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| ImageError::io(format!("creating --out {}", args.out.display()), e))?;
    let work = outputs::WorkDir::new(&args.out, &profile.profile.name)?;

    let agent = steps.run("node-agent (aarch64-unknown-linux-musl)", |s| {
        agent::provide(args.agent.as_deref(), &root, s)
    })?;
    let rebuild_layers = args.no_cache == Some(Rebuild::All);
    let mut layers: Vec<rootfs::Built> = Vec::new();
    for layer in rootfs::plan(&profile) {
        let built = steps.run(&layer.title, |s| {
            rootfs::provide(&layer, layers.last(), &profile, &cache, rebuild_layers, s)
        })?;
        layers.push(built);
    }
    let rootfs = layers.last().cloned().ok_or_else(|| ImageError::Step {
        step: "root file system",
        message: "the profile makes no layers".into(),
    })?;
    let fs = steps.run("file systems (ext4 RASPIROOT, FAT32 RASPIFIRM)", |s| {
        filesystems::provide(&rootfs, &profile, &cache, args.no_cache.is_some(), work.path(), s)
    })?;
    let overlays = root.join("overlays");
    let top = work.path().join("top");
    let staged = steps.run("overlays, node-agent, first boot", |_| {
        top::stage(&overlays, &profile.profile.overlays, &agent.path, &profile, &fs.index, &top)
    })?;
    let img = work.file(".img");
    steps.run("assemble (MBR, file systems, overlays)", |s| {
        assemble::image(&fs, &top, &staged, &profile, &img, work.path(), s)
    })?;
    let packed = steps.run("block map, sha256 and zstd (one pass)", |s| {
        pack::pack(&img, &work.file(".img.zst"), &s.cancel)
    })?;
    let inputs = outputs::Inputs {
        profile: &profile,
        agent_sha256: agent.sha256.clone(),
        rootfs_key: rootfs.key.clone(),
        rootfs_sha256: rootfs.sha256.clone(),
        layers: &layers,
        filesystems_key: fs.key.clone(),
        overlays: overlay::hashes(&overlays, &profile.profile.overlays)?,
    };
    steps.run("manifest and SHA256SUMS", |_| {
        let bmap = outputs::write_hashed(&work.file(".img.bmap"), packed.bmap.as_bytes())?;
        let manifest = outputs::manifest(&work, &inputs, &fs.index.packages)?;
        outputs::sha256sums(
            &work,
            &[packed.image_sha256.clone(), packed.zst_sha256.clone(), bmap, manifest],
        )
    })?;
    let finals = steps.run("move outputs into place", |_| {
        outputs::sync(&work)?;
        work.commit(&args.out)
    })?;
    Ok(Summary {
        image: finals.image,
        compressed: finals.compressed,
        bmap: finals.bmap,
        manifest: finals.manifest,
        sha256sums: finals.sums,
        image_size: profile.image_size,
        compressed_size: packed.zst_size,
        mapped_size: packed.mapped_bytes,
        image_sha256: packed.image_sha256,
        rootfs_key: rootfs.key.clone(),
        rootfs_cached: layers.iter().all(|l| l.cached),
        filesystems_key: fs.key.clone(),
        filesystems_cached: fs.cached,
        layers,
        seconds: started.elapsed().as_secs_f64(),
        steps: steps.records(),
    })
}
