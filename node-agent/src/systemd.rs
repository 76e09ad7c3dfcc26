//! sd_notify(3) by hand: one datagram to `$NOTIFY_SOCKET`, no libsystemd;
//! and the watchdog.
//!
//! The watchdog pings (`WATCHDOG=1`) come from a thread of their own, so a
//! pass waiting on FRR (each vtysh call may take up to a minute) does not
//! get a healthy agent killed. They stop when the agent stops showing signs
//! of life: the run loop calls [`alive`] on every turn, and so does every
//! wait that is bounded by a timeout (an FRR command). A loop stuck for a
//! whole `WatchdogSec` gets no pings and systemd restarts it.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Send `state` (e.g. `READY=1`) to systemd. False when not run by systemd
/// with `Type=notify` or when the socket is gone; that is not an error.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(sock) = UnixDatagram::unbound() else { return false };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract socket: '@' stands for the leading NUL byte.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    sent.is_ok()
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec`, if systemd asked
/// this process for it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}

/// Milliseconds since the first call, the clock of [`alive`].
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// When the agent last showed a sign of life.
static LAST_ALIVE_MS: AtomicU64 = AtomicU64::new(0);

/// A sign of life: the agent is turning its loop, or waiting on something
/// with a timeout.
pub fn alive() {
    LAST_ALIVE_MS.store(now_ms(), Ordering::Relaxed);
}

/// The thread that pings systemd's watchdog; stops when dropped.
#[derive(Debug)]
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Ping every `interval` (half of `WatchdogSec`) as long as the agent
    /// was alive within the last `2 * interval`. `None` when systemd asked
    /// for no watchdog.
    pub fn start() -> Option<Watchdog> {
        let interval = watchdog_interval()?;
        alive();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let limit = u64::try_from((2 * interval).as_millis()).unwrap_or(u64::MAX);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    let silent = now_ms().saturating_sub(LAST_ALIVE_MS.load(Ordering::Relaxed));
                    if silent <= limit {
                        notify("WATCHDOG=1");
                    } else {
                        tracing::error!(
                            silent_ms = silent,
                            "the run loop is stuck; no watchdog ping"
                        );
                    }
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|e| tracing::error!("no watchdog thread: {e}"))
            .ok()?;
        Some(Watchdog { stop, thread: Some(thread) })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this test owns NOTIFY_SOCKET; no other test reads it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1"));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }
}
