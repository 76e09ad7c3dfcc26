//! Admission: accepting connections within the limits. The open-files
//! limit caps how many are held; when every slot is taken, a finished or
//! the oldest unfinished connection makes room, else the newcomer gets 503.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustix::event::epoll;

use super::EventLoop;
use crate::health::HttpCounters;
use crate::health::http::{RequestReader, Response};
use crate::health::server::connection::{Conn, State};

/// File descriptors kept for the rest of the agent (netlink, FRR's pipes,
/// sFlow, files) when the open-files limit caps the connections.
const RESERVED_FDS: u64 = 64;

/// Raise this process's soft open-files limit towards `wanted` (never above
/// the hard limit); returns the soft limit now in force. systemd starts
/// services with a soft limit of 1024, too few for the connections the API
/// promises to hold.
pub fn raise_open_files_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let current = now.current.unwrap_or(u64::MAX);
    let target = now.maximum.map_or(wanted, |hard| hard.min(wanted));
    if current >= target {
        return current;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: now.maximum }) {
        Ok(()) => target,
        Err(_) => current,
    }
}

/// Connections the server may hold under the open-files limit.
pub(super) fn connection_cap(wanted: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let allowed = soft.map_or(u64::MAX, |s| s.saturating_sub(RESERVED_FDS).max(16));
    wanted.min(usize::try_from(allowed).unwrap_or(usize::MAX)).max(1)
}

/// After running out of file descriptors, try accepting again this soon.
pub(super) const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl EventLoop {
    pub(super) fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE): the connection
                    // waits in the backlog; an edge-triggered listener will
                    // not say so again, so come back on a timer.
                    tracing::warn!("accepting a connection: {e}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.open >= self.max_connections && !self.make_room() {
            refuse_at_once(stream, &self.shared.counters);
            return;
        }
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        if let Err(e) =
            epoll::add(&self.epoll, &stream, epoll::EventData::new_u64(slot as u64), flags)
        {
            tracing::warn!("watching a connection: {e}");
            self.free.push(slot);
            return;
        }
        self.next_id += 1;
        let deadline = Instant::now() + self.shared.config.limits.deadline;
        self.conns[slot] = Some(Conn {
            stream,
            id: self.next_id,
            peer: Some(peer),
            deadline,
            state: State::Reading(RequestReader::new(self.shared.config.limits)),
            counted: 0,
        });
        self.open += 1;
        self.note_deadline(deadline);
        // Bytes may have arrived with the connection.
        self.ready(slot);
    }

    /// Every slot is taken: close a connection that is done, else the one
    /// that has been sending its request the longest. False if every
    /// connection is waiting for or receiving an answer.
    fn make_room(&mut self) -> bool {
        let done = self
            .conns
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| matches!(c.state, State::Lingering { .. })));
        let oldest = || {
            self.conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| matches!(c.state, State::Reading(_)))
                .min_by_key(|(_, c)| c.deadline)
                .map(|(i, _)| i)
        };
        let Some(slot) = done.or_else(oldest) else { return false };
        if let Some(conn) = &mut self.conns[slot]
            && matches!(conn.state, State::Reading(_))
        {
            tracing::debug!(peer = ?conn.peer, "full: dropping the oldest unfinished request");
            let _ = conn.stream.write(&full_answer().to_bytes());
            self.shared.counters.count(503);
        }
        self.close(slot);
        true
    }
}

fn full_answer() -> Response {
    Response::error(503, "too many connections; try again shortly").with_header("Retry-After", "1")
}

/// No slot can be freed: say so and close (the answer is small enough for
/// the socket's buffer).
fn refuse_at_once(mut stream: TcpStream, counters: &HttpCounters) {
    let _ = stream.set_nonblocking(true);
    counters.count(503);
    let _ = stream.write(&full_answer().to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}
