//! `pi-lab lab import`: a netlab topology written out as the equivalent
//! lab file. Every `lab` command also reads the topology directly; import
//! is for people who want to go on in TOML.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lab_spec::{Diagnostics, Plan};

#[derive(Debug, clap::Args)]
#[command(after_help = "What pi-lab cannot build (a module such as mpls, a key such as vrfs) is an
error at FILE:LINE:COLUMN naming it; netlab's runtime settings (provider,
defaults.*, node images) are ignored, and said so once. Nothing is written
unless the converted lab is valid.

Examples:
  pi-lab lab import topology.yml                 # writes topology.toml
  pi-lab lab import topology.yml -o lab.toml
  pi-lab lab import topology.yml -o - | less
  sudo pi-lab lab up topology.yml                # or run the topology as it is")]
pub struct ImportArgs {
    /// The netlab topology (YAML).
    #[arg(value_name = "TOPOLOGY")]
    pub file: PathBuf,
    /// Where to write the lab file; `-` for stdout [default: TOPOLOGY with .toml].
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} exists; pass --force to replace it, or -o another file")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn run(args: &ImportArgs) -> Result<ExitCode, ImportError> {
    let path = &args.file;
    let text = std::fs::read_to_string(path)
        .map_err(|source| ImportError::Read { path: path.clone(), source })?;
    let name = path.display().to_string();
    let import =
        match lab_spec::netlab::convert(&text, &name, &lab_spec::netlab::default_name(path)) {
            Ok(import) => import,
            Err(diags) => return Ok(invalid(&diags)),
        };
    if !import.notes.is_empty() {
        eprintln!("{}", import.notes);
    }
    let out = args.out.clone().unwrap_or_else(|| path.with_extension("toml"));
    let shown = out.display().to_string();
    // The written file must be a valid lab: check it as `lab check` would.
    let checked = lab_spec::parse(&import.toml, &shown).and_then(|lab| Plan::new(&lab));
    if let Err(diags) = checked {
        return Ok(invalid(&diags));
    }
    if out == Path::new("-") {
        print!("{}", import.toml);
        return Ok(ExitCode::SUCCESS);
    }
    if out.exists() && !args.force {
        return Err(ImportError::Exists { path: out });
    }
    lab_spec::replace_file::replace(
        &out,
        import.toml.as_bytes(),
        lab_spec::replace_file::Access::mode(0o644),
    )
    .map_err(|source| ImportError::Write { path: out.clone(), source })?;
    eprintln!("wrote {shown}: lab {} from {name}", import.name);
    Ok(ExitCode::SUCCESS)
}

fn invalid(diags: &Diagnostics) -> ExitCode {
    eprintln!("{diags}");
    ExitCode::from(1)
}
