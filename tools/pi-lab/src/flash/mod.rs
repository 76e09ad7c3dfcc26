//! `pi-lab flash`: write an image to SD cards, verified, each with its own identity.
//!
//! One decompression stream feeds every card in parallel ([`write`]); only
//! mapped blocks are written ([`crate::bmap`]), each range checked against
//! its checksum as it streams, with direct I/O ([`target`]), the
//! partition table last. Then each card is read back ([`verify`]) and gets
//! its node's identity in the FAT partition ([`identity`]). [`safety`]
//! decides which disks may be touched at all.

pub mod identity;
pub mod report;
pub mod safety;
pub mod source;
pub mod target;
pub mod verify;
pub mod write;

use std::io::{BufRead, IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use lab_spec::NodeConfig;

use crate::lab_file::CompiledLab;
use crate::table::Table;

use self::identity::Identity;
use self::report::{Bars, FlashReport, TargetReport};
use self::safety::{DiskFacts, FactSource, Overrides, SysFacts};
use self::source::Source;
use self::target::{Target, TargetKind};
use self::write::{Msg, Plan, Stage};
use crate::bmap::{self, Bmap};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab flash --list
  pi-lab flash out/pi-lab.img.zst --to /dev/sdb --lab lab.toml --node leaf1
  pi-lab flash out/pi-lab.img.zst --to /dev/sdb /dev/sdc /dev/sdd --lab lab.toml --nodes leaf1,leaf2,spine1
  pi-lab flash out/pi-lab.img --to card.img --node-config leaf1.toml --no-verify
  pi-lab flash out/pi-lab.img.zst --to /dev/sdb /dev/sdc --lab lab.toml --zero-touch
      # cards for any board of the lab; then: pi-lab provision lab.toml --discover 120

A .bmap beside the image (IMAGE.bmap, or the name without .zst/.xz/.gz plus
.bmap) is used automatically. Exit status: 0 all cards done, 1 some card
failed (see the table), 2 nothing was written (bad input or refused).")]
pub struct FlashArgs {
    /// The image: .img, .img.zst, .img.xz or .img.gz.
    #[arg(required_unless_present = "list")]
    pub image: Option<PathBuf>,
    /// Cards to write (block devices or regular files), all at once.
    #[arg(long = "to", value_name = "TARGET", num_args = 1.., required_unless_present = "list")]
    pub to: Vec<PathBuf>,
    /// Block map of the image (default: found beside the image).
    #[arg(long, value_name = "FILE")]
    pub bmap: Option<PathBuf>,
    /// Skip reading the cards back.
    #[arg(long)]
    pub no_verify: bool,
    /// Lab file whose nodes give the cards their identities (env
    /// PI_LAB_FILE, as for every command that takes a lab).
    #[arg(long, value_name = "FILE", env = "PI_LAB_FILE")]
    pub lab: Option<PathBuf>,
    /// Node of --lab for the one target.
    #[arg(long, value_name = "NAME", requires = "lab", conflicts_with = "nodes")]
    pub node: Option<String>,
    /// Nodes of --lab, one per target, in the order of --to.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', requires = "lab")]
    pub nodes: Vec<String>,
    /// Cards of the lab, not of a node: each carries only the lab's
    /// bootstrap (token hash, controller, SSH keys); a board booting one
    /// waits until `pi-lab provision --discover` matches it to a node.
    #[arg(long, requires = "lab", conflicts_with_all = ["node", "nodes"])]
    pub zero_touch: bool,
    /// A NodeConfig TOML file per target, in the order of --to (instead of --lab).
    #[arg(long = "node-config", value_name = "FILE", conflicts_with = "lab")]
    pub node_config: Vec<PathBuf>,
    /// SSH public keys for the cards (default: ~/.ssh/*.pub).
    #[arg(long, value_name = "FILE")]
    pub authorized_keys: Option<PathBuf>,
    /// Do not ask before writing block devices.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// List disks that could be cards, and exit.
    #[arg(long)]
    pub list: bool,
    /// Print the result (or the --list) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a disk although some of its partitions are mounted.
    #[arg(long)]
    pub allow_mounted: bool,
    /// Write the disk that holds this system (/, /usr, /boot, swap…).
    #[arg(long)]
    pub allow_system_disk: bool,
    /// Write a disk the kernel does not call removable.
    #[arg(long)]
    pub allow_non_removable: bool,
    /// Write a disk larger than 256 GB.
    #[arg(long)]
    pub allow_large_disk: bool,
    /// Write a disk smaller than the image when all mapped data fits.
    #[arg(long)]
    pub allow_short_target: bool,
}

impl FlashArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            mounted: self.allow_mounted,
            system_disk: self.allow_system_disk,
            non_removable: self.allow_non_removable,
            large_disk: self.allow_large_disk,
            short_target: self.allow_short_target,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Bmap(#[from] bmap::BmapError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Target(#[from] target::TargetError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("refusing to write, nothing was written:\n{0}")]
    Refused(String),
    #[error(transparent)]
    LabFile(#[from] crate::lab_file::LabFileError),
    #[error("cannot print: {0}")]
    Output(#[from] std::io::Error),
}

/// Set by Ctrl-C ([`crate::interrupt`]): the stream stops, every card is
/// reported as it was left and partial files are removed.
pub(crate) fn interrupted() -> bool {
    crate::interrupt::requested()
}

pub fn run(args: &FlashArgs) -> Result<ExitCode, FlashError> {
    if args.list {
        return list(&SysFacts, args.json);
    }
    if let Err(e) = crate::interrupt::Interrupt::install() {
        tracing::warn!("cannot catch Ctrl-C ({e}): an interrupted run may leave partial files");
    }
    let image = args.image.as_deref().ok_or_else(|| FlashError::Usage("give an IMAGE".into()))?;
    let bmap = load_bmap(image, args.bmap.as_deref())?;
    let source = Source::open(image)?;
    let plan = plan(&source, bmap.as_ref())?;
    let identities = identities(args)?;
    check_targets(args, image, &plan, &SysFacts)?;
    let report = flash(
        image,
        bmap.as_ref(),
        source,
        &plan,
        &args.to,
        &identities,
        !args.no_verify,
        args.json,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if interrupted() {
        ExitCode::from(130)
    } else if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Write `image` to card files (regular files, made or replaced), each with
/// its own identity: the stream, bmap, verification and identity code of
/// `pi-lab flash`, for boards that boot card files (emulated boards).
pub fn write_card_files(
    image: &Path,
    cards: &[(PathBuf, Identity)],
    quiet: bool,
) -> Result<FlashReport, FlashError> {
    for (path, _) in cards {
        if target::kind_of(path)? != TargetKind::RegularFile {
            return Err(FlashError::Usage(format!(
                "{}: a card file must be a regular file",
                path.display()
            )));
        }
    }
    let bmap = load_bmap(image, None)?;
    let source = Source::open(image)?;
    let plan = plan(&source, bmap.as_ref())?;
    let targets: Vec<PathBuf> = cards.iter().map(|(p, _)| p.clone()).collect();
    let identities: Vec<Option<Identity>> = cards.iter().map(|(_, id)| Some(id.clone())).collect();
    flash(image, bmap.as_ref(), source, &plan, &targets, &identities, true, quiet)
}

/// A bmap and the file it came from.
struct BmapFile {
    path: PathBuf,
    bmap: Bmap,
}

fn load_bmap(image: &Path, given: Option<&Path>) -> Result<Option<BmapFile>, FlashError> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => match source::find_bmap(image) {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    tracing::info!("using bmap {}", path.display());
    let bmap = Bmap::load(&path)?;
    if !bmap.has_range_checksums() {
        tracing::warn!(
            "bmap {} has no range checksums: only reading the cards back checks what was written",
            path.display()
        );
    }
    Ok(Some(BmapFile { path, bmap }))
}

/// What to stream, and the up-front check that bmap and image belong together.
fn plan(source: &Source, bmap: Option<&BmapFile>) -> Result<Plan, FlashError> {
    match bmap {
        Some(BmapFile { path, bmap: b }) => {
            if let Some(raw) = source.raw_size
                && raw != b.image_size
            {
                return Err(FlashError::Usage(format!(
                    "the bmap {} is for an image of {} bytes but the image is {raw} bytes: \
                     it belongs to another image; give the right one with --bmap",
                    path.display(),
                    b.image_size
                )));
            }
            Ok(Plan::Mapped {
                ranges: b.byte_ranges(),
                image_size: b.image_size,
                checksum: b.checksum,
            })
        }
        None => Ok(Plan::Whole { size: source.raw_size }),
    }
}

/// One identity per target (or none at all).
fn identities(args: &FlashArgs) -> Result<Vec<Option<Identity>>, FlashError> {
    let configs: Vec<NodeConfig> = if !args.node_config.is_empty() {
        args.node_config.iter().map(|p| read_node_config(p)).collect::<Result<_, _>>()?
    } else if let (Some(lab), true) = (&args.lab, args.zero_touch) {
        // Every node of a lab shares its bootstrap; the first one gives it.
        let lab = CompiledLab::load(lab)?;
        let any = lab.configs.values().next().cloned().ok_or_else(|| {
            FlashError::Usage(format!("{}: the lab has no nodes", lab.path.display()))
        })?;
        vec![any; args.to.len()]
    } else if let Some(lab) = &args.lab {
        let names: Vec<String> =
            args.node.iter().cloned().chain(args.nodes.iter().cloned()).collect();
        if names.is_empty() {
            return Err(FlashError::Usage(
                "--lab needs --node NAME (one target), --nodes A,B,C (one per target) or \
             --zero-touch (cards of the lab for any board)"
                    .into(),
            ));
        }
        configs_from_lab(lab, &names)?
    } else {
        return Ok(vec![None; args.to.len()]);
    };
    if configs.len() != args.to.len() {
        return Err(FlashError::Usage(format!(
            "{} identities for {} targets: give exactly one node per --to target, in the same order",
            configs.len(),
            args.to.len()
        )));
    }
    let keys = identity::authorized_keys(args.authorized_keys.as_deref())?;
    if keys.trim().is_empty() {
        tracing::warn!("no SSH public keys (--authorized-keys or ~/.ssh/*.pub): cards get none");
    }
    Ok(configs
        .into_iter()
        .map(|config| {
            Some(Identity { config, authorized_keys: keys.clone(), zero_touch: args.zero_touch })
        })
        .collect())
}

fn read_node_config(path: &Path) -> Result<NodeConfig, FlashError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FlashError::Usage(format!("cannot read node config {}: {e}", path.display()))
    })?;
    let config = NodeConfig::from_toml(&text)
        .map_err(|e| FlashError::Usage(format!("{}: not a NodeConfig: {e}", path.display())))?;
    Ok(if config.version.is_empty() { config.with_version() } else { config })
}

/// NodeConfigs of `names` from the lab file, in the order given; only the
/// SHA-256 of the lab's token goes into them (and so onto the cards).
fn configs_from_lab(path: &Path, names: &[String]) -> Result<Vec<NodeConfig>, FlashError> {
    let lab = CompiledLab::load(path)?;
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .map(|name| {
            if !seen.insert(name) {
                return Err(FlashError::Usage(format!(
                    "node {name} is given twice: two cards would claim the same identity"
                )));
            }
            Ok(lab.config(name)?.clone())
        })
        .collect()
}

/// Every refusal for every target, before anything is opened for writing.
fn check_targets(
    args: &FlashArgs,
    image: &Path,
    plan: &Plan,
    facts: &dyn FactSource,
) -> Result<(), FlashError> {
    let mut problems = Vec::new();
    let mut devices: Vec<DiskFacts> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf()));
    let mapped_end = match plan {
        Plan::Mapped { ranges, .. } => ranges.last().map_or(0, |r| r.end),
        Plan::Whole { size } => size.unwrap_or(0),
    };
    for path in &args.to {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if !seen.insert(real) {
            problems.push(format!("  {}: given twice, or it is the image itself", path.display()));
            continue;
        }
        match target::kind_of(path) {
            Ok(TargetKind::BlockDevice) => match facts.facts(path) {
                Ok(f) => {
                    for refusal in
                        safety::check(&f, plan.image_size(), mapped_end, args.overrides())
                    {
                        let fix = match refusal.override_flag() {
                            Some(flag) => format!(" (to write it anyway: {flag})"),
                            None => String::new(),
                        };
                        problems.push(format!("  {}: {refusal}{fix}", f.describe()));
                    }
                    devices.push(f);
                }
                Err(e) => problems.push(format!("  {e}")),
            },
            Ok(TargetKind::RegularFile) => {}
            // Reported per target when it is opened; the others go on.
            Err(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(FlashError::Refused(problems.join("\n")));
    }
    if !devices.is_empty() && !args.yes {
        confirm(&devices)?;
    }
    Ok(())
}

/// Ask on the terminal, naming every device; without a terminal, refuse.
fn confirm(devices: &[DiskFacts]) -> Result<(), FlashError> {
    let names: Vec<String> = devices.iter().map(DiskFacts::describe).collect();
    if !std::io::stdin().is_terminal() {
        return Err(FlashError::Refused(format!(
            "  {}: no terminal to confirm on; pass --yes to write without asking",
            names.join(", ")
        )));
    }
    let mut err = std::io::stderr();
    writeln!(err, "Everything on these disks will be overwritten:")?;
    for name in &names {
        writeln!(err, "  {name}")?;
    }
    write!(err, "Type 'yes' to continue: ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(FlashError::Refused("  not confirmed".into()));
    }
    Ok(())
}

/// Open every target, stream the image to all of them, verify, identify.
#[allow(clippy::too_many_arguments)]
fn flash(
    image: &Path,
    bmap: Option<&BmapFile>,
    mut source: Source,
    plan: &Plan,
    targets: &[PathBuf],
    identities: &[Option<Identity>],
    verify: bool,
    quiet: bool,
) -> Result<FlashReport, FlashError> {
    let bars = Bars::new(quiet || !std::io::stderr().is_terminal());
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    for (i, path) in targets.iter().enumerate() {
        let mut report = TargetReport::new(path.clone());
        report.node = identities[i].as_ref().and_then(Identity::node).map(str::to_string);
        match Target::open(path, plan.image_size()) {
            Ok(t) => {
                report.kind = Some(t.kind);
                jobs.push((i, t, report));
            }
            Err(e) => failed.push((i, report.finish(Err(e.to_string())))),
        }
    }
    let mut outs = Vec::new();
    let mut image_error = None;
    let mut done: Vec<(usize, TargetReport)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(i, t, report)| {
                let (tx, rx) = sync_channel(write::QUEUE);
                outs.push(Some(tx));
                let bar = bars.add(&path_label(&t.path), plan.bytes());
                let id = identities[i].as_ref();
                s.spawn(move || (i, run_target(t, rx, report, verify, id, &bar)))
            })
            .collect();
        if let Err(e) = write::feed(&mut source, plan, &mut outs) {
            image_error = Some(e.to_string());
        }
        drop(outs);
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    done.extend(failed);
    done.sort_by_key(|(i, _)| *i);
    Ok(FlashReport {
        image: image.to_path_buf(),
        bmap: bmap.map(|b| b.path.clone()),
        image_size: plan.image_size(),
        mapped_bytes: plan.bytes(),
        image_error,
        targets: done.into_iter().map(|(_, r)| r).collect(),
    })
}

fn path_label(path: &Path) -> String {
    path.display().to_string()
}

/// Write, verify and identify one card; every outcome lands in the report.
fn run_target(
    mut target: Target,
    rx: Receiver<Msg>,
    mut report: TargetReport,
    verify: bool,
    identity: Option<&Identity>,
    bar: &indicatif::ProgressBar,
) -> TargetReport {
    let result = (|| -> Result<(), String> {
        let started = Instant::now();
        let mut written = 0u64;
        let hashes = write::write_target(&mut target, rx, &mut report.stage, |n| {
            written += n;
            bar.inc(n);
        });
        report.bytes_written = written;
        report.write_seconds = started.elapsed().as_secs_f64();
        let hashes = hashes.map_err(|e| e.to_string())?;
        if verify {
            bar.set_message("verify");
            bar.set_position(0);
            bar.set_length(hashes.iter().map(|h| h.end - h.start).sum());
            let started = Instant::now();
            verify::verify(&mut target, &hashes, |n| bar.inc(n)).map_err(|e| e.to_string())?;
            report.verify_seconds = started.elapsed().as_secs_f64();
            report.verified = true;
            report.stage = Stage::Verified;
        }
        if let Some(id) = identity {
            bar.set_message("identity");
            target.set_direct(false).map_err(|e| format!("cannot switch off direct I/O: {e}"))?;
            let size = match target.kind {
                TargetKind::BlockDevice => target.size,
                TargetKind::RegularFile => target.file().metadata().map(|m| m.len()).unwrap_or(0),
            };
            report.identity_files =
                identity::write(target.file(), size, id).map_err(|e| e.to_string())?;
            report.stage = Stage::Identified;
        }
        target.commit().map_err(|e| e.to_string())
    })();
    match &result {
        Ok(()) => bar.finish_with_message("done"),
        Err(_) => bar.abandon_with_message("FAILED"),
    }
    report.finish(result)
}

/// `--list`: every disk, candidates first.
fn list(facts: &dyn FactSource, json: bool) -> Result<ExitCode, FlashError> {
    let mut disks = facts.list();
    disks.sort_by_key(|d| !d.is_candidate());
    if json {
        let rows: Vec<serde_json::Value> = disks
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["candidate"] = d.is_candidate().into();
                v["system"] = (!d.system_mounts().is_empty()).into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table =
        Table::new(["DEVICE", "MODEL", "SIZE", "REMOVABLE", "TRAN", "MOUNTED", "NOTE"]).right(&[2]);
    for d in &disks {
        let mounts: Vec<String> =
            d.mounts.iter().map(|m| format!("{} on {}", m.device, m.mountpoint)).collect();
        table.row([
            d.path.display().to_string(),
            if d.model.is_empty() { "-".into() } else { d.model.clone() },
            safety::human_bytes(d.size),
            if d.removable { "yes" } else { "no" }.into(),
            d.transport.clone(),
            if mounts.is_empty() { "-".into() } else { mounts.join(", ") },
            if d.is_candidate() { "" } else { "not a card: needs --allow-… to write" }.into(),
        ]);
    }
    print!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// A private scratch folder for unit tests (tempfile), removed when dropped.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestDir(tempfile::TempDir);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new().prefix(&format!("pi-lab-{name}-")).tempdir();
        TestDir(dir.expect("create test folder"))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}
