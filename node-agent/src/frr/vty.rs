//! Asking one FRR daemon a `show` command on its vty socket
//! (`/var/run/frr[/NAME]/DAEMON.vty`), the way vtysh itself does: the
//! command and a NUL byte go out; the output comes back, followed by three
//! NUL bytes and the command's status (0: success).
//!
//! Why not vtysh: every vtysh run loads FRR's libraries and connects to
//! every daemon before it asks anything, tens of milliseconds of CPU. A
//! 256-node virtual fleet asking every few seconds drowned in them. One
//! question on a socket costs the daemon well under a millisecond.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest answer read (a spine's `show bgp neighbors json` with hundreds
/// of peers is a few MiB).
pub const MAX_ANSWER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum VtyError {
    #[error("cannot reach FRR's {daemon} at {path}: {source}")]
    Connect { daemon: String, path: PathBuf, source: std::io::Error },
    #[error("FRR's {daemon} did not answer `{command}` within {timeout:?}")]
    Timeout { daemon: String, command: String, timeout: Duration },
    #[error("FRR's {daemon} closed the connection during `{command}`")]
    Closed { daemon: String, command: String },
    #[error("talking to FRR's {daemon}: {source}")]
    Io { daemon: String, source: std::io::Error },
    #[error("FRR's {daemon} answered `{command}` with more than {MAX_ANSWER} bytes")]
    TooLong { daemon: String, command: String },
    #[error("FRR's {daemon} refused `{command}` (status {status}): {output}")]
    Refused { daemon: String, command: String, status: u8, output: String },
}

impl VtyError {
    /// The daemon's socket is not there: it does not run (or this FRR keeps
    /// its sockets elsewhere).
    pub fn no_socket(&self) -> bool {
        matches!(self, VtyError::Connect { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::NotFound))
    }
}

/// One connection to one daemon; every question shares one deadline.
#[derive(Debug)]
pub struct Vty {
    daemon: String,
    stream: UnixStream,
    timeout: Duration,
    deadline: Instant,
}

impl Vty {
    /// Connect to `daemon` in `run_dir`, in the enable node (where `show
    /// running-config` lives); the whole conversation gets `timeout`.
    pub fn connect(run_dir: &Path, daemon: &str, timeout: Duration) -> Result<Vty, VtyError> {
        let path = socket(run_dir, daemon);
        let stream = UnixStream::connect(&path).map_err(|source| VtyError::Connect {
            daemon: daemon.into(),
            path: path.clone(),
            source,
        })?;
        let mut vty =
            Vty { daemon: daemon.into(), stream, timeout, deadline: Instant::now() + timeout };
        vty.ask("enable")?;
        Ok(vty)
    }

    /// The output of `command`.
    pub fn ask(&mut self, command: &str) -> Result<String, VtyError> {
        let io = |source| VtyError::Io { daemon: self.daemon.clone(), source };
        let mut line = Vec::with_capacity(command.len() + 1);
        line.extend_from_slice(command.as_bytes());
        line.push(0);
        self.stream.set_write_timeout(Some(self.left(command)?)).map_err(io)?;
        self.stream.write_all(&line).map_err(|e| self.failed(command, e))?;
        let mut answer = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            self.stream.set_read_timeout(Some(self.left(command)?)).map_err(io)?;
            let n = self.stream.read(&mut chunk).map_err(|e| self.failed(command, e))?;
            if n == 0 {
                return Err(VtyError::Closed {
                    daemon: self.daemon.clone(),
                    command: command.into(),
                });
            }
            answer.extend_from_slice(&chunk[..n]);
            if let Some(status) = finished(&answer) {
                answer.truncate(answer.len() - 4);
                return self.verdict(command, status, answer);
            }
            if answer.len() > MAX_ANSWER {
                return Err(VtyError::TooLong {
                    daemon: self.daemon.clone(),
                    command: command.into(),
                });
            }
        }
    }

    fn verdict(&self, command: &str, status: u8, answer: Vec<u8>) -> Result<String, VtyError> {
        let output = String::from_utf8_lossy(&answer).into_owned();
        if status == 0 {
            return Ok(output);
        }
        Err(VtyError::Refused {
            daemon: self.daemon.clone(),
            command: command.into(),
            status,
            output: output.trim().to_string(),
        })
    }

    /// Time left before the deadline, as an error once there is none.
    fn left(&self, command: &str) -> Result<Duration, VtyError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(command));
        }
        Ok(left)
    }

    fn failed(&self, command: &str, e: std::io::Error) -> VtyError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                self.timed_out(command)
            }
            _ => VtyError::Io { daemon: self.daemon.clone(), source: e },
        }
    }

    fn timed_out(&self, command: &str) -> VtyError {
        VtyError::Timeout {
            daemon: self.daemon.clone(),
            command: command.into(),
            timeout: self.timeout,
        }
    }
}

/// Where `daemon`'s vty socket is.
pub fn socket(run_dir: &Path, daemon: &str) -> PathBuf {
    run_dir.join(format!("{daemon}.vty"))
}

/// The status byte, once `answer` ends with the end-of-answer mark.
fn finished(answer: &[u8]) -> Option<u8> {
    match answer {
        [.., 0, 0, 0, status] => Some(*status),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A daemon that answers each command from `answers` in turn, in
    /// pieces of `piece` bytes, as FRR's vty does.
    fn daemon(
        dir: &Path,
        answers: Vec<Vec<u8>>,
        piece: usize,
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(socket(dir, "bgpd")).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut heard = Vec::new();
            for answer in answers {
                let mut command = Vec::new();
                let mut byte = [0u8; 1];
                while conn.read_exact(&mut byte).is_ok() && byte[0] != 0 {
                    command.push(byte[0]);
                }
                heard.push(String::from_utf8(command).unwrap());
                for part in answer.chunks(piece) {
                    conn.write_all(part).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            heard
        })
    }

    fn answer(text: &str, status: u8) -> Vec<u8> {
        let mut a = text.as_bytes().to_vec();
        a.extend_from_slice(&[0, 0, 0, status]);
        a
    }

    #[test]
    fn an_answer_in_pieces_is_read_to_its_end_mark() {
        let dir = tempfile::tempdir().unwrap();
        let json = format!(
            "{{\"10.0.0.1\":{{\"bgpState\":\"Established\",\"pad\":\"{}\"}}}}",
            "x".repeat(5000)
        );
        let heard = daemon(dir.path(), vec![answer("", 0), answer(&json, 0)], 7);
        let mut vty = Vty::connect(dir.path(), "bgpd", Duration::from_secs(5)).unwrap();
        assert_eq!(vty.ask("show bgp vrf default neighbors json").unwrap(), json);
        drop(vty);
        assert_eq!(heard.join().unwrap(), ["enable", "show bgp vrf default neighbors json"]);
    }

    #[test]
    fn a_refused_command_says_what_the_daemon_said() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = "% [BGP] Unknown command: show nonsense\n";
        let _daemon = daemon(dir.path(), vec![answer("", 0), answer(refusal, 2)], 4096);
        let mut vty = Vty::connect(dir.path(), "bgpd", Duration::from_secs(5)).unwrap();
        let err = vty.ask("show nonsense").unwrap_err();
        assert!(matches!(err, VtyError::Refused { status: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("Unknown command: show nonsense"), "{err}");
    }

    #[test]
    fn a_silent_daemon_times_out_and_a_missing_one_has_no_socket() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Vty::connect(dir.path(), "ospfd", Duration::from_secs(1)).unwrap_err();
        assert!(missing.no_socket(), "{missing:?}");
        let _listener = UnixListener::bind(socket(dir.path(), "bgpd")).unwrap();
        let started = Instant::now();
        let err = Vty::connect(dir.path(), "bgpd", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, VtyError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn the_end_mark_is_three_nuls_and_a_status() {
        assert_eq!(finished(b"abc\0\0\0\0"), Some(0));
        assert_eq!(finished(b"\0\0\0\x02"), Some(2));
        assert_eq!(finished(b"abc\0\0"), None);
        assert_eq!(finished(b"abc"), None);
    }
}
