//! The lab a command works on, taken the same way by every command: a
//! positional FILE right after the subcommand, or `PI_LAB_FILE` when the
//! command line leaves it out; `lab down` and `lab console` also take
//! `--name` instead.
//!
//! clap fills a positional from its `env` only when no value is left for
//! it, so `PI_LAB_FILE=lab.toml pi-lab lab render leaf1` would read `leaf1`
//! as the file. [`parse`] settles that once for every command: when the
//! command line does not parse (or names no file) and `PI_LAB_FILE` is
//! set, the file from the environment is put where FILE goes.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The id of the lab file argument, in every command that takes one.
pub const ID: &str = "lab_file";
/// The environment variable that names the lab file.
pub const ENV: &str = "PI_LAB_FILE";

/// The lab file, positional.
#[derive(Debug, Clone, clap::Args)]
pub struct LabFileArg {
    /// The lab file.
    #[arg(id = ID, value_name = "FILE", env = ENV)]
    pub file: PathBuf,
}

/// The lab file, or its name with --name (when only the name is needed).
#[derive(Debug, Clone, clap::Args)]
pub struct LabNameArg {
    /// The lab file (only its `name` is read).
    #[arg(id = ID, value_name = "FILE", env = ENV, required_unless_present = "name")]
    pub file: Option<PathBuf>,
    /// The lab's name, instead of a file (wins over PI_LAB_FILE).
    #[arg(long)]
    pub name: Option<String>,
}

/// The command line of this process as [`Cli`]; exits on a usage error,
/// as clap's `parse` does.
pub fn parse() -> Cli {
    let env_file = std::env::var_os(ENV);
    parse_from(std::env::args_os().collect(), env_file.as_deref()).unwrap_or_else(|e| e.exit())
}

/// Parses the command line as [`Cli`], with the lab file from `env_file`
/// (`PI_LAB_FILE`) where the command line leaves it out.
pub fn parse_from(args: Vec<OsString>, env_file: Option<&OsStr>) -> Result<Cli, clap::Error> {
    let command = Cli::command();
    let given = command.clone().try_get_matches_from(&args);
    let Some(env_file) = env_file.filter(|f| !f.is_empty()) else {
        return given.and_then(|m| Cli::from_arg_matches(&m));
    };
    if let Ok(matches) = &given
        && !names_missing_file(matches)
    {
        return Cli::from_arg_matches(matches);
    }
    let Some(at) = where_file_goes(&command, &args) else {
        return given.and_then(|m| Cli::from_arg_matches(&m));
    };
    let mut with_file = args.clone();
    with_file.insert(at, env_file.to_owned());
    match command.try_get_matches_from(with_file) {
        Ok(matches) => Cli::from_arg_matches(&matches),
        Err(e) => given.map_err(|_| e).and_then(|m| Cli::from_arg_matches(&m)),
    }
}

/// The lab file, as the command line gave it, does not exist: it was
/// probably the next argument (a node, a port) with the file left out.
fn names_missing_file(matches: &ArgMatches) -> bool {
    let leaf = leaf(matches);
    let takes_lab = leaf.ids().any(|id| id.as_str() == ID);
    takes_lab
        && leaf.value_source(ID) == Some(ValueSource::CommandLine)
        && leaf.get_one::<PathBuf>(ID).is_some_and(|file| !file.exists())
}

fn leaf(matches: &ArgMatches) -> &ArgMatches {
    match matches.subcommand() {
        Some((_, sub)) => leaf(sub),
        None => matches,
    }
}

/// Where FILE goes in `args`: at the first positional after the
/// (innermost) subcommand, if that subcommand takes a lab file.
fn where_file_goes(command: &clap::Command, args: &[OsString]) -> Option<usize> {
    let mut current = command;
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if let Some(sub) = current.find_subcommand(arg) {
            current = sub;
        } else if arg == "--" || !arg.starts_with('-') {
            break;
        } else if takes_value(current, arg) {
            i += 1;
        }
        i += 1;
    }
    current.get_arguments().any(|a| a.get_id() == ID).then_some(i)
}

/// `arg` is an option whose value is the next argument (`-w FILE`, not
/// `-w=FILE` or `--json`).
fn takes_value(command: &clap::Command, arg: &str) -> bool {
    if arg.contains('=') {
        return false;
    }
    let option = command.get_arguments().find(|a| match arg.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => arg.len() == 2 && a.get_short().is_some_and(|s| arg.ends_with(s)),
    });
    option.is_some_and(|a| a.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::lab::LabCommand;

    /// Every command that takes a lab, without its file.
    const WITHOUT_FILE: &[&[&str]] = &[
        &["status"],
        &["validate"],
        &["provision"],
        &["dashboard"],
        &["inventory"],
        &["capture", "leaf1:eth1"],
        &["capture", "leaf1:eth1", "leaf2:eth1", "-w", "-"],
        &["lab", "check"],
        &["lab", "plan"],
        &["lab", "render", "leaf1"],
        &["lab", "graph"],
        &["lab", "up"],
        &["lab", "down"],
        &["lab", "save"],
        &["lab", "connect", "leaf1", "--vtysh"],
        &["lab", "connect", "--all", "--", "uptime"],
        &["lab", "link", "leaf1:eth1", "down"],
        &["lab", "impair", "leaf1:eth1", "--delay", "20ms"],
        &["lab", "switch"],
        &["lab", "console", "leaf1"],
        &["lab", "console", "--follow", "leaf1"],
    ];

    fn parse(args: &[&str], env: Option<&str>) -> Result<Cli, clap::Error> {
        let args = std::iter::once("pi-lab").chain(args.iter().copied()).map(OsString::from);
        parse_from(args.collect(), env.map(OsStr::new))
    }

    /// The lab file each command got, by its own field.
    fn file_of(cli: &Cli) -> Option<PathBuf> {
        Some(match &cli.command {
            Command::Status(a) => a.lab.file.clone(),
            Command::Validate(a) => a.lab.file.clone(),
            Command::Provision(a) => a.lab.file.clone(),
            Command::Dashboard(a) => a.lab.file.clone(),
            Command::Inventory(a) => a.lab.file.clone(),
            Command::Capture(a) => a.lab.file.clone(),
            Command::Lab(cmd) => match cmd {
                LabCommand::Check(a) => a.lab.file.clone(),
                LabCommand::Plan(a) => a.lab.file.clone(),
                LabCommand::Render(a) => a.lab.file.clone(),
                LabCommand::Graph(a) => a.lab.file.clone(),
                LabCommand::Up(a) => a.lab.file.clone(),
                LabCommand::Down(a) => a.lab.file.clone()?,
                LabCommand::Save(a) => a.lab.file.clone(),
                LabCommand::Connect(a) => a.lab.file.clone(),
                LabCommand::Link(a) => a.lab.file.clone(),
                LabCommand::Impair(a) => a.lab.file.clone(),
                LabCommand::Switch(a) => a.lab.file.clone(),
                LabCommand::Console(a) => a.lab.file.clone()?,
                LabCommand::Import(_) => return None,
            },
            _ => return None,
        })
    }

    #[test]
    fn every_command_that_takes_a_lab_takes_it_from_pi_lab_file() {
        for args in WITHOUT_FILE {
            let cli = parse(args, Some("from-env.toml"))
                .unwrap_or_else(|e| panic!("{args:?} with PI_LAB_FILE: {e}"));
            assert_eq!(file_of(&cli), Some("from-env.toml".into()), "{args:?}");
        }
    }

    #[test]
    fn the_list_names_every_command_that_takes_a_lab() {
        fn takes_lab(path: String, cmd: &clap::Command, out: &mut Vec<String>) {
            if cmd.get_arguments().any(|a| a.get_id() == ID) {
                out.push(path.clone());
            }
            for sub in cmd.get_subcommands() {
                takes_lab(format!("{path} {}", sub.get_name()).trim().into(), sub, out);
            }
        }
        let mut all = Vec::new();
        takes_lab(String::new(), &Cli::command(), &mut all);
        for path in all {
            let listed = WITHOUT_FILE.iter().any(|args| args.join(" ").starts_with(&path));
            assert!(listed, "`{path}` takes a lab file but is not tested with PI_LAB_FILE");
        }
    }

    #[test]
    fn a_file_on_the_command_line_wins_over_pi_lab_file() {
        let here = env!("CARGO_MANIFEST_DIR");
        let cli = parse(&["lab", "render", here, "leaf1"], Some("from-env.toml")).unwrap();
        assert_eq!(file_of(&cli), Some(here.into()));
        let cli = parse(&["status", here], Some("from-env.toml")).unwrap();
        assert_eq!(file_of(&cli), Some(here.into()));
    }

    #[test]
    fn name_wins_over_pi_lab_file() {
        let cli = parse(&["lab", "down", "--name", "fabric"], Some("from-env.toml")).unwrap();
        let Command::Lab(LabCommand::Down(args)) = cli.command else { panic!() };
        assert_eq!(args.lab.name.as_deref(), Some("fabric"));
        let cli = parse(&["lab", "console", "--name", "boards", "leaf1"], None).unwrap();
        let Command::Lab(LabCommand::Console(args)) = cli.command else { panic!() };
        assert_eq!((args.lab.name.as_deref(), args.node.as_str()), (Some("boards"), "leaf1"));
    }
}
