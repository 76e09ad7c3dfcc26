//! `pi-lab image build`: one Debian 13 arm64 image for the whole fleet.
//!
//! The steps, each named in the progress display:
//! prerequisites -> agent (cargo, aarch64 musl) -> rootfs (mmdebstrap, cached
//! by a hash of what makes it) -> unpack a copy -> overlays -> first boot ->
//! assemble (FAT32 + ext4 + MBR, no loop devices, no mounts) -> bmap ->
//! compress -> manifest and SHA256SUMS -> rename into place.

pub mod agent;
pub mod assemble;
pub mod bmap;
pub mod firstboot;
pub mod outputs;
pub mod overlay;
pub mod prereqs;
pub mod profile;
pub mod progress;
pub mod rootfs;

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

Outputs in --out: NAME.img, NAME.img.zst, NAME.img.bmap, NAME.manifest,
SHA256SUMS. Needs root (mmdebstrap, file ownership in the root file system).")]
    Build(BuildArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Image profile (TOML).
    #[arg(long, env = "PI_LAB_PROFILE", default_value = "images/pi3b-trixie.toml")]
    pub profile: PathBuf,
    /// Where the outputs go (created if missing).
    #[arg(long, env = "PI_LAB_OUT", default_value = "out")]
    pub out: PathBuf,
    /// Rebuild the root file system even when the cache has it (downloaded
    /// packages are still reused).
    #[arg(long)]
    pub no_cache: bool,
    /// Cache of root file systems and downloaded packages (default:
    /// /var/cache/pi-lab as root, else ~/.cache/pi-lab).
    #[arg(long, env = "PI_LAB_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use this node-agent binary (aarch64, static) instead of building it.
    #[arg(long, env = "PI_LAB_AGENT")]
    pub agent: Option<PathBuf>,
    /// Print a JSON summary on stdout instead of the progress display.
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
    #[error("{context}: {source}{hint}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error("interrupted (Ctrl-C): removed the partial outputs, nothing is left mounted")]
    Interrupted,
}

impl ImageError {
    /// An I/O error with what was being done; a full disk gets a hint.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let hint = match source.raw_os_error() {
            Some(28) => " (the disk is full: free space or choose another --out)".to_string(),
            Some(27) => " (file size limit reached: see `ulimit -f`)".to_string(),
            _ => String::new(),
        };
        ImageError::Io { context: context.into(), source, hint }
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
    pub rootfs_key: String,
    pub rootfs_cached: bool,
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
    }
}

/// The project folder: the profile lives in its `images/`.
fn project_root(profile: &Path) -> PathBuf {
    let abs = std::path::absolute(profile).unwrap_or_else(|_| profile.to_path_buf());
    abs.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn default_cache_dir() -> PathBuf {
    if prereqs::is_root() {
        return PathBuf::from("/var/cache/pi-lab");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("pi-lab")
}

pub fn build(args: &BuildArgs) -> Result<Summary, ImageError> {
    let started = Instant::now();
    let cancel = progress::Cancel::install()?;
    let profile = Profile::read(&args.profile)?;
    let root = project_root(&args.profile);
    let cache = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut steps = progress::Steps::new(!args.json, cancel.clone())?;

    let notes = steps.run("prerequisites", |_| {
        prereqs::check(&profile.profile.rootfs.architecture, args.agent.is_none())
    })?;
    for n in notes {
        steps.note(&n);
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| ImageError::io(format!("creating --out {}", args.out.display()), e))?;
    let work = outputs::WorkDir::new(&args.out, &profile.profile.name)?;

    let agent = steps.run("node-agent (aarch64-unknown-linux-musl)", |s| {
        agent::provide(args.agent.as_deref(), &root, s)
    })?;
    let rootfs = steps.run("root file system (mmdebstrap)", |s| {
        rootfs::provide(&profile, &cache, args.no_cache, s)
    })?;
    let tree = work.path().join("rootfs");
    steps
        .run("unpack a copy of the root file system", |s| rootfs::unpack(&rootfs.tar, &tree, s))?;
    let overlays = root.join("overlays");
    steps.run("overlays", |_| overlay::apply(&overlays, &profile.profile.overlays, &tree))?;
    let packages = steps.run("first boot, agent and units", |_| {
        firstboot::prepare(&tree, &profile, &agent.path)?;
        overlay::clamp_mtimes(&tree, profile.epoch())?;
        outputs::packages(&tree)
    })?;
    let img = work.file(".img");
    steps.run("assemble (MBR, FAT32 RASPIFIRM, ext4 RASPIROOT)", |s| {
        assemble::image(&tree, &profile, &img, work.path(), s)
    })?;
    let bmap = steps.run("block map", |s| bmap::write(&img, &work.file(".img.bmap"), &s.cancel))?;
    steps.run("compress (zstd)", |s| outputs::compress(&img, &work.file(".img.zst"), s))?;
    let inputs = outputs::Inputs {
        profile: &profile,
        agent_sha256: agent.sha256.clone(),
        rootfs_key: rootfs.key.clone(),
        rootfs_sha256: rootfs.sha256.clone(),
        overlays: overlay::hashes(&overlays, &profile.profile.overlays)?,
    };
    let image_sha256 = steps.run("manifest and SHA256SUMS", |s| {
        outputs::manifest(&work, &inputs, &packages)?;
        outputs::sha256sums(&work, &s.cancel)
    })?;
    let finals = steps.run("move outputs into place", |_| work.commit(&args.out))?;
    Ok(Summary {
        image: finals.image,
        compressed: finals.compressed,
        bmap: finals.bmap,
        manifest: finals.manifest,
        sha256sums: finals.sums,
        image_size: profile.image_size,
        compressed_size: finals.compressed_size,
        mapped_size: bmap.mapped_bytes,
        image_sha256,
        rootfs_key: rootfs.key.clone(),
        rootfs_cached: rootfs.cached,
        seconds: started.elapsed().as_secs_f64(),
        steps: steps.records(),
    })
}
