//! A long-running process on a node (a capture), and how to end it there
//! too: in a namespace the child is the process itself and a signal ends
//! it; over SSH the child is the ssh client, and closing its stdin ends
//! the command on the board (see `ssh::ends_with_stdin`).

use std::io;
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug)]
pub struct Remote {
    pub node: String,
    child: Child,
    ends_by: EndsBy,
    status: Option<ExitStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndsBy {
    /// SIGTERM to the child, which is the process.
    Signal,
    /// EOF on the child's stdin: the remote side kills the process.
    HangUp,
}

/// How long a process may take to end once asked, before it is killed.
const GRACE: Duration = Duration::from_secs(5);

impl Remote {
    pub(super) fn signalled(node: &str, child: Child) -> Remote {
        Remote { node: node.to_string(), child, ends_by: EndsBy::Signal, status: None }
    }

    pub(super) fn hung_up(node: &str, child: Child) -> Remote {
        Remote { node: node.to_string(), child, ends_by: EndsBy::HangUp, status: None }
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The process's status if it has ended.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// End the process on its node, asking first and killing after
    /// [`GRACE`]; its status.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        match self.ends_by {
            EndsBy::Signal => self.terminate(),
            EndsBy::HangUp => drop(self.child.stdin.take()),
        }
        if let Some(status) = self.wait_for(GRACE)? {
            return Ok(status);
        }
        if self.ends_by == EndsBy::HangUp {
            // The board does not answer: end the local client at least.
            self.terminate();
            if let Some(status) = self.wait_for(GRACE)? {
                return Ok(status);
            }
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    fn terminate(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // Already gone is fine: try_wait reaps it next.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    fn wait_for(&mut self, grace: Duration) -> io::Result<Option<ExitStatus>> {
        let until = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// Whatever ends the capture (an error, a panic unwinding), the process
/// on the node ends with it.
impl Drop for Remote {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(node = %self.node, "cannot stop a process on the node: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn a_signalled_process_stops_at_once_and_a_dropped_one_too() {
        let child = Command::new("sleep").arg("60").stdin(Stdio::null()).spawn().unwrap();
        let mut remote = Remote::signalled("leaf1", child);
        let started = Instant::now();
        assert!(!remote.stop().unwrap().success());
        assert!(started.elapsed() < GRACE);
        assert!(remote.stop().is_ok(), "stopping twice is fine");

        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        drop(Remote::signalled("leaf1", child));
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_hung_up_process_stops_when_its_stdin_closes() {
        let child = Command::new("sh")
            .args(["-c", "cat >/dev/null; exit 0"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut remote = Remote::hung_up("leaf1", child);
        assert!(remote.stop().unwrap().success(), "ended by EOF, not by a signal");
    }
}
