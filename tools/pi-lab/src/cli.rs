//! The command line: one subcommand per module.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pi-lab",
    version,
    about = "Build, flash, provision and validate a Raspberry Pi network lab",
    after_help = "Examples:
  pi-lab lab check examples/fabric.toml
  pi-lab lab up examples/fabric.toml          # run the lab as a virtual fleet
  pi-lab image build --out out/
  pi-lab flash out/pi-lab.img.zst --to /dev/sdb --lab lab.toml --node leaf1
  pi-lab provision lab.toml && pi-lab validate lab.toml
  pi-lab lab connect lab.toml leaf1 --vtysh   # a node's FRR shell
  pi-lab capture lab.toml leaf1:eth1 -w - | wireshark -k -i -"
)]
pub struct Cli {
    /// More output: -v info logs and every lab warning on its own, -vv
    /// debug, -vvv trace. Also RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, plan and render lab files; run them as a virtual fleet.
    #[command(subcommand)]
    Lab(crate::lab::LabCommand),
    /// Build the fleet's Debian image.
    #[command(subcommand)]
    Image(crate::image::ImageCommand),
    /// Write an image to SD cards, each with its own identity.
    Flash(crate::flash::FlashArgs),
    /// Push each node's config to the running boards.
    Provision(crate::provision::ProvisionArgs),
    /// Show the health of every node of a lab.
    Status(crate::status::StatusArgs),
    /// Check that the lab works: BGP, VXLAN, reachability, sFlow.
    Validate(crate::validate::ValidateArgs),
    /// Export the lab as an Ansible inventory or Prometheus targets.
    Inventory(crate::inventory::InventoryArgs),
    /// Capture packets of lab ports into one pcapng (an interface per NODE:PORT).
    Capture(crate::capture::CaptureArgs),
    /// Watch what the fleet sends over sFlow.
    #[command(subcommand)]
    Sflow(crate::sflow_watch::SflowCommand),
    /// See the lab live in a browser: topology, health, sessions, sFlow rates.
    Dashboard(crate::dashboard::DashboardArgs),
    /// Print shell completions, e.g. `pi-lab completions bash > /etc/bash_completion.d/pi-lab`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
