//! `lab console`: an emulated board's serial console, live (attached to
//! its socket) or as the log it keeps.

use std::fs;
use std::process::ExitCode;

use clap::Args;

use super::UpError;
use crate::interrupt::Interrupt;
use crate::lab_host::names;

#[derive(Debug, Args)]
// FILE may be left out before NODE (with --name or PI_LAB_FILE).
#[command(allow_missing_positional = true)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabNameArg,
    /// The node whose console to show.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Print the log and keep printing what the board prints (no input).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `lab console`: an emulated board's serial console.
pub fn console(args: &ConsoleArgs) -> Result<ExitCode, UpError> {
    let name = super::lab_name(&args.lab)?;
    names::check_node(&args.node)?;
    let layout = crate::emulated::Layout::new(&crate::lab_host::dir(&name));
    let log = layout.console_log(&args.node);
    if !log.is_file() {
        let boards: Vec<String> = fs::read_dir(&layout.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("console.log").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let known = if boards.is_empty() {
            format!("lab {name} runs no emulated boards (`pi-lab lab up FILE --boards emulated`)")
        } else {
            format!("its boards are {}", boards.join(", "))
        };
        return Err(UpError::Console(format!("no console for {:?}: {known}", args.node)));
    }
    let socket = layout.console_socket(&args.node);
    let interactive = !args.follow && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let result = if interactive && socket.exists() {
        eprintln!("attached to {}'s console; Ctrl-] leaves", args.node);
        crate::emulated::console::attach(&socket)
    } else {
        let stop = Interrupt::install().unwrap_or_else(|_| Interrupt::never());
        crate::emulated::console::follow(&log, args.follow, &|| stop.is_set())
    };
    result.map_err(|e| UpError::Console(format!("{}: {e}", log.display())))?;
    Ok(ExitCode::SUCCESS)
}
