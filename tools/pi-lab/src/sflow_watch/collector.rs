//! The sFlow collector: one UDP socket whose datagrams are decoded and fed
//! to a [`Watch`]. `sflow watch`, its metrics and the dashboard all receive
//! through it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::WatchError;
use super::decode;
use super::view::Watch;

/// How long one [`Collector::receive`] waits for a datagram.
const WAIT: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Collector {
    sock: UdpSocket,
    listen: String,
    buf: Vec<u8>,
}

impl Collector {
    /// Listens for sFlow on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Collector, WatchError> {
        let sock = UdpSocket::bind(addr).map_err(|source| WatchError::Bind { addr, source })?;
        let listen = sock.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.to_string());
        sock.set_read_timeout(Some(WAIT)).map_err(WatchError::Receive)?;
        tracing::info!("listening for sFlow on {listen}");
        // Bigger than any UDP payload: nothing is cut short by the kernel.
        Ok(Collector { sock, listen, buf: vec![0u8; 65_536] })
    }

    /// The address it listens on, as text (with the port the kernel chose
    /// for port 0).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// Waits up to 100 ms for one datagram and hands it to `watch`
    /// (decoded, or counted as skipped). False when none came.
    pub fn receive(&mut self, watch: &Mutex<Watch>) -> Result<bool, WatchError> {
        let n = match self.sock.recv(&mut self.buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(WatchError::Receive(e)),
        };
        // Decode before taking the lock: readers wait only for the update.
        let decoded = decode::decode(&self.buf[..n]);
        let mut watch = lock(watch);
        match decoded {
            Ok(d) => watch.ingest(d, Instant::now()),
            Err(why) => {
                tracing::debug!("skipped a {n}-byte datagram: {why:?}");
                watch.bad(why);
            }
        }
        Ok(true)
    }
}

/// A poisoned lock only means a thread panicked while it held it; the
/// counters (or health answers) in it are still worth showing.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
