use clap::Parser;
use node_agent::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { .. } | Command::Apply { .. } => {
            anyhow::bail!("not built yet")
        }
    }
}
