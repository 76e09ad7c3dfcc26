//! `pi-lab lab ...`: check, plan and render lab files, and run them as a
//! virtual fleet.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use lab_spec::alloc::displaced_name;
use lab_spec::diagnostics::list;
use lab_spec::{Diagnostic, Diagnostics, NodeConfig};
use serde::Serialize;

use crate::lab_file::{LabFile, LabFileError};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Validate a lab file; exit 0 when valid, 1 when not.
    #[command(after_help = "Every problem is reported at once, as FILE:LINE:COLUMN with a hint.

Examples:
  pi-lab lab check examples/fabric.toml
  pi-lab lab check --json lab.toml | jq '.[] | .message'")]
    Check(CheckArgs),
    /// Show the address plan: nodes, links and VXLAN segments.
    #[command(
        after_help = "Addresses are allocated by name, so the same file always gives the same
plan, and adding a node keeps everyone else's addresses (warnings name the
few that had to move off their home slot).

Examples:
  pi-lab lab plan examples/fabric.toml
  pi-lab lab plan --json examples/fabric.toml | jq '.nodes.leaf1.loopback'"
    )]
    Plan(PlanArgs),
    /// Show one node's NodeConfig as its SD card gets it (or its frr.conf).
    #[command(
        after_help = "The NodeConfig TOML is exactly what `pi-lab flash` writes to the node's
card and `pi-lab provision` sends its agent, including the SHA-256 of the
lab token (from PI_LAB_TOKEN or the lab's state directory).

Examples:
  pi-lab lab render examples/fabric.toml leaf1 > leaf1.toml
  pi-lab flash out/pi3b-trixie.img.zst --to /dev/sdb --node-config leaf1.toml
  pi-lab lab render --frr examples/fabric.toml leaf1
  pi-lab lab render --json examples/two-router.toml r1 | jq .config.bgp"
    )]
    Render(RenderArgs),
    /// Write a netlab topology (YAML) as the equivalent lab file.
    Import(crate::import::ImportArgs),
    /// Draw the lab: topology or BGP sessions, as dot, SVG, D2 or JSON.
    Graph(crate::graph::GraphArgs),
    /// Run the lab as a virtual fleet in network namespaces, or on emulated boards.
    Up(crate::lab_up::UpArgs),
    /// Tear down a lab started with `lab up` (virtual fleet or emulated boards).
    Down(crate::lab_up::DownArgs),
    /// Save every node's running FRR config and its hand changes (NODE/frr.conf, NODE/hand.conf).
    Save(crate::save::SaveArgs),
    /// A shell, vtysh or a command on a node of a running lab; --all: on every node.
    Connect(crate::connect::ConnectArgs),
    /// Cut a lab link by hand (admin down, kept down), or mend it.
    Link(crate::link::LinkArgs),
    /// Delay, jitter, loss or a rate limit on a lab port (netem); --clear removes it.
    Impair(crate::impair::ImpairArgs),
    /// Print what the managed switch of a lab on boards must carry.
    #[command(after_help = "A Pi 3B has one Ethernet port: each board's switch port carries the
management network untagged (native VLAN) and the board's lab links as tagged
802.1Q VLANs (`eth0.101` on the board is VLAN 101 on the switch). Configure
the ports as trunk/hybrid ports with exactly these VLANs allowed. Emulated
boards (`lab up --boards emulated`) are wired the same way.

Examples:
  pi-lab lab switch examples/boards.toml
  pi-lab lab switch --json lab.toml | jq '.ports[] | {board, tagged}'")]
    Switch(SwitchArgs),
    /// Show or attach to an emulated board's serial console.
    #[command(
        after_help = "Without --follow, on a terminal: attach to the console (type to log in;
Ctrl-] leaves). Otherwise print the console log so far (--follow: and keep
printing). The log lives in the lab's state directory for as long as the lab
is up.

Examples:
  sudo pi-lab lab console examples/boards.toml leaf1
  sudo pi-lab lab console --follow --name boards leaf1"
    )]
    Console(crate::lab_up::ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Print the switch plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Print the findings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// The node to render.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Print `{"node", "config", "frr_conf"}` as JSON instead of TOML.
    #[arg(long)]
    pub json: bool,
    /// Print the frr.conf the node's agent will write instead of the
    /// NodeConfig.
    #[arg(long, conflicts_with = "json")]
    pub frr: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LabCmdError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("cannot write output: {0}")]
    Output(String),
    #[error(transparent)]
    Fleet(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    FrrCheck(#[from] crate::frr_check::FrrCheckError),
    #[error(transparent)]
    Save(#[from] crate::save::SaveError),
    #[error(transparent)]
    Connect(#[from] crate::connect::ConnectError),
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    #[error(transparent)]
    Impair(#[from] crate::impair::ImpairError),
}

/// `verbose` (`-v`): show every warning on its own.
pub fn run(cmd: &LabCommand, verbose: bool) -> Result<ExitCode, LabCmdError> {
    match cmd {
        LabCommand::Check(args) => check(args, verbose),
        LabCommand::Plan(args) => plan(args, verbose),
        LabCommand::Render(args) => render(args),
        LabCommand::Import(args) => Ok(crate::import::run(args)?),
        LabCommand::Graph(args) => Ok(crate::graph::run(args)?),
        LabCommand::Up(args) => crate::lab_up::up(args).map_err(|e| LabCmdError::Fleet(e.into())),
        LabCommand::Down(args) => {
            crate::lab_up::down(args).map_err(|e| LabCmdError::Fleet(e.into()))
        }
        LabCommand::Connect(args) => Ok(crate::connect::run(args)?),
        LabCommand::Link(args) => Ok(crate::link::run(args)?),
        LabCommand::Impair(args) => Ok(crate::impair::run(args)?),
        LabCommand::Switch(args) => switch(args),
        LabCommand::Save(args) => Ok(crate::save::run(args)?),
        LabCommand::Console(args) => {
            crate::lab_up::console(args).map_err(|e| LabCmdError::Fleet(e.into()))
        }
    }
}

fn switch(args: &SwitchArgs) -> Result<ExitCode, LabCmdError> {
    let Some(file) = load(&args.lab.file)? else { return Ok(ExitCode::from(1)) };
    let lab = file.compile()?;
    let switch = crate::switch::for_lab(&lab);
    if args.json {
        print_json(&switch)?;
        return Ok(ExitCode::SUCCESS);
    }
    let management = &lab.lab.management;
    let mut out = format!(
        "switch of lab {}: {} ports, {} VLANs; management {} untagged (native VLAN), \
         controller {}\n\n{}",
        lab.name(),
        switch.ports.len(),
        switch.vlans.len(),
        management.subnet,
        management.controller,
        switch.port_table()
    );
    if !switch.vlans.is_empty() {
        out += &format!("\n{}", switch.vlan_table());
    }
    for d in &switch.direct {
        out += &format!(
            "\ncable {} directly to {} (whole ports, no VLAN from the lab file)\n",
            d.a, d.b
        );
    }
    print_text(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The lab file, or `None` after printing its findings (exit 1).
fn load(path: &Path) -> Result<Option<LabFile>, LabCmdError> {
    match LabFile::load(path) {
        Ok(file) => Ok(Some(file)),
        Err(LabFileError::Invalid(diags)) => {
            eprintln!("{diags}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn check(args: &CheckArgs, verbose: bool) -> Result<ExitCode, LabCmdError> {
    let file = match LabFile::load(&args.lab.file) {
        Ok(file) => file,
        Err(LabFileError::Invalid(diags)) => {
            if args.json {
                print_json(&diags)?;
            } else {
                eprintln!("{diags}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if !frr_lines_pass(&file, args.json)? {
        return Ok(ExitCode::from(1));
    }
    let lab = &file.lab;
    if args.json {
        print_json(file.warnings())?;
    } else {
        if !file.warnings().is_empty() {
            eprintln!("{}", warnings_text(file.warnings(), verbose));
        }
        let count = lab_spec::diagnostics::count;
        println!(
            "{}: lab {} is valid ({}, {}, {})",
            args.lab.file.display(),
            lab.name,
            count(lab.nodes.len(), "node"),
            count(lab.links.len(), "link"),
            count(lab.segments.len(), "segment")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The nodes' own FRR lines, checked by this host's FRR when it has one
/// (findings printed); without FRR, `provision` checks them.
fn frr_lines_pass(file: &LabFile, json: bool) -> Result<bool, LabCmdError> {
    // The token only goes into the configs' hash: none is made or read.
    let compiled = file.clone().compile_with(String::new());
    let configs: Vec<&NodeConfig> = compiled.configs.values().collect();
    let with_lines = crate::frr_check::nodes_with_lines(&configs);
    if with_lines.is_empty() {
        return Ok(true);
    }
    let Some(checked) = crate::frr_check::check_here(&file.lab, &with_lines)? else {
        let names: Vec<&str> = with_lines.iter().map(|c| c.hostname.as_str()).collect();
        eprintln!(
            "note: no FRR here (vtysh): the frr lines of {} are checked by `pi-lab provision` \
             on the nodes, before anything is applied",
            list(&names)
        );
        return Ok(true);
    };
    if !checked.diags.has_errors() {
        return Ok(true);
    }
    if json {
        print_json(&checked.diags)?;
    } else {
        eprintln!("{}", checked.diags);
    }
    Ok(false)
}

fn plan(args: &PlanArgs, verbose: bool) -> Result<ExitCode, LabCmdError> {
    let Some(LabFile { plan, .. }) = load(&args.lab.file)? else { return Ok(ExitCode::from(1)) };
    if args.json {
        print_json(&plan)?;
    } else {
        print_text(&crate::plan_table::render(&plan))?;
        if !plan.warnings.is_empty() {
            eprintln!("\n{}", warnings_text(&plan.warnings, verbose));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A valid lab's warnings for the terminal. Names displaced from their
/// home address are common in a big lab and say the same thing each: they
/// fold into one line, unless `verbose`.
fn warnings_text(warnings: &Diagnostics, verbose: bool) -> String {
    let (displaced, rest): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        warnings.items.iter().partition(|d| displaced_name(d).is_some());
    if verbose || displaced.is_empty() {
        return warnings.to_string();
    }
    let mut names: Vec<&str> = displaced.iter().filter_map(|d| displaced_name(d)).collect();
    names.sort_unstable();
    names.dedup();
    let file = &warnings.source.file_name;
    let count = match names.len() {
        1 => "1 name is".to_string(),
        n => format!("{n} names are"),
    };
    let line = format!(
        "{file}: warning: {count} not at their home address and may move when names around them change: {} (pin them with `id` or a fixed address; -v shows each)",
        list(&names)
    );
    if rest.is_empty() {
        return line;
    }
    let others =
        Diagnostics { source: warnings.source.clone(), items: rest.into_iter().cloned().collect() };
    format!("{others}\n{line}")
}

#[derive(Serialize)]
struct Rendered<'a> {
    node: &'a str,
    config: &'a NodeConfig,
    /// `None` for hosts, which run no routing stack.
    frr_conf: Option<String>,
}

fn render(args: &RenderArgs) -> Result<ExitCode, LabCmdError> {
    let Some(file) = load(&args.lab.file)? else { return Ok(ExitCode::from(1)) };
    if !file.lab.nodes.contains_key(&args.node) {
        return Err(file.unknown_node(&args.node).into());
    }
    let lab = file.compile()?;
    let config = lab.config(&args.node)?;
    let node = &config.hostname;
    let frr = frr_conf(config);
    if args.json {
        print_json(&Rendered { node, config, frr_conf: frr })?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.frr {
        print_text(frr.as_deref().unwrap_or("! hosts run no routing stack\n"))?;
    } else {
        // Byte for byte what flash writes to the card: `render > r1.toml`
        // is a valid `flash --node-config`.
        let toml = config.to_toml().map_err(|e| LabCmdError::Output(e.to_string()))?;
        print_text(&toml)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The frr.conf the node will get; hosts run no routing stack.
fn frr_conf(config: &NodeConfig) -> Option<String> {
    config.runs_frr().then(|| lab_spec::frr::render(config))
}

fn print_json(value: &impl Serialize) -> Result<(), LabCmdError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| LabCmdError::Output(e.to_string()))?;
    print_text(&format!("{text}\n"))
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_text(text: &str) -> Result<(), LabCmdError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(LabCmdError::Output(e.to_string())),
    }
}
