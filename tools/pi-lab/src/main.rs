use std::process::ExitCode;

use clap::CommandFactory;
use pi_lab::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = pi_lab::lab_arg::parse();
    init_logging(cli.verbose);
    match dispatch(&cli.command, cli.verbose > 0) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", pi_lab::error_chain(err.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: &Command, verbose: bool) -> anyhow::Result<ExitCode> {
    Ok(match command {
        Command::Lab(cmd) => pi_lab::lab::run(cmd, verbose)?,
        Command::Image(cmd) => pi_lab::image::run(cmd)?,
        Command::Flash(args) => pi_lab::flash::run(args)?,
        Command::Provision(args) => pi_lab::provision::run(args)?,
        Command::Status(args) => pi_lab::status::run(args)?,
        Command::Validate(args) => pi_lab::validate::run(args)?,
        Command::Inventory(args) => pi_lab::inventory::run(args)?,
        Command::Capture(args) => pi_lab::capture::run(args)?,
        Command::Sflow(cmd) => pi_lab::sflow_watch::run(cmd)?,
        Command::Dashboard(args) => pi_lab::dashboard::run(args)?,
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "pi-lab", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
