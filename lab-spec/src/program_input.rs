//! Running a program with text on its standard input (`nft -f -`,
//! `dot -Tsvg`), the one way both binaries do it.

use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

/// Run `cmd` with `input` on its stdin and wait for it, capturing stdout
/// and stderr. The input is written from its own thread, so a program
/// that answers before it has read everything (a large SVG from a large
/// graph) cannot block on a full pipe while we block on its stdin. A
/// program that cannot be started is the spawn error, with its kind
/// (`NotFound`: not installed).
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> io::Result<Output> {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdin = child.stdin.take();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || match stdin {
        // Dropping stdin at the end closes it: the program sees EOF.
        Some(mut stdin) => stdin.write_all(&input),
        None => Ok(()),
    });
    let output = child.wait_with_output()?;
    match writer.join() {
        // A program that exits without reading all of it broke the pipe;
        // its exit status and stderr say why.
        Ok(Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_reaches_the_program_and_its_output_comes_back() {
        let big = "x".repeat(1 << 20);
        let out = run_with_input(&mut Command::new("cat"), big.as_bytes()).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), big.len(), "1 MiB through cat without a deadlock");
    }

    #[test]
    fn a_failing_program_reports_its_status_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read line; echo \"no: $line\" >&2; exit 3"]);
        let out = run_with_input(&mut cmd, b"bad input\n").unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "no: bad input\n");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let err = run_with_input(&mut Command::new("/nonexistent/program"), b"").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
