//! The event loop: one thread waiting on epoll for the listener, the
//! connections and the workers' replies; it routes each request (answering
//! quick ones at once), keeps the deadlines, and stops gently.

use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};

use super::Shared;
use super::connection::{Conn, LINGER, State, Step, linger, read_request, write_answer};
use super::workers::{Job, Queues, Reply};
use crate::health::http::{ReadError, Request, Response};
use crate::health::routes;
use admission::{ACCEPT_RETRY, connection_cap};

pub(super) mod admission;

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;

pub(super) struct EventLoop {
    epoll: OwnedFd,
    listener: Option<TcpListener>,
    wake: Arc<OwnedFd>,
    /// Connections by slot; a slot's epoll token is its index.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    max_connections: usize,
    next_id: u64,
    /// Request bytes held over all connections.
    buffered: usize,
    queues: Queues,
    replies: Receiver<Reply>,
    shared: Arc<Shared>,
    accept_paused_until: Option<Instant>,
    /// No connection's deadline is before this.
    next_deadline: Option<Instant>,
    /// One read buffer for every connection.
    scratch: Vec<u8>,
}

impl EventLoop {
    pub(super) fn new(
        listener: TcpListener,
        wake: Arc<OwnedFd>,
        queues: Queues,
        replies: Receiver<Reply>,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        epoll::add(&epoll, &listener, epoll::EventData::new_u64(LISTENER), flags)?;
        epoll::add(&epoll, &*wake, epoll::EventData::new_u64(WAKER), flags)?;
        let max_connections = connection_cap(shared.config.max_connections);
        if max_connections < shared.config.max_connections {
            tracing::warn!(
                max_connections,
                "the open-files limit caps the management API's connections"
            );
        }
        Ok(EventLoop {
            epoll,
            listener: Some(listener),
            wake,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_connections,
            next_id: 0,
            buffered: 0,
            queues,
            replies,
            shared,
            accept_paused_until: None,
            next_deadline: None,
            scratch: vec![0; 16 * 1024],
        })
    }

    pub(super) fn run(&mut self, stop: &AtomicBool) {
        let mut events = Vec::with_capacity(256);
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            if stopping && self.listener.is_some() {
                self.begin_stop();
            }
            if stopping && self.open == 0 {
                break;
            }
            let timeout = self.timeout().map(|d| Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            events.clear();
            if let Err(e) = epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) && e != rustix::io::Errno::INTR
            {
                tracing::error!("health API event loop: {e}");
                thread::sleep(ACCEPT_RETRY);
            }
            for event in &events {
                match event.data.u64() {
                    LISTENER => self.accept_all(),
                    WAKER => self.take_replies(),
                    token => self.ready(usize::try_from(token).unwrap_or(usize::MAX)),
                }
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept_all();
            }
            if self.next_deadline.is_some_and(|t| t <= now) {
                self.expire(now);
            }
        }
        // Workers end when their job channels close.
        self.queues = Queues { configs: None, refreshes: None };
    }

    /// Until the next deadline or accept retry.
    fn timeout(&self) -> Option<Duration> {
        let next = match (self.next_deadline, self.accept_paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        // Rounded up: waking a hair early would only spin.
        Some(next.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
    }

    /// Close the listener (the port is free at once) and the connections
    /// whose request has not arrived; answers under way are finished.
    fn begin_stop(&mut self) {
        self.listener = None;
        for slot in 0..self.conns.len() {
            if self.conns[slot].as_ref().is_some_and(|c| matches!(c.state, State::Reading(_))) {
                self.close(slot);
            }
        }
    }

    fn take_replies(&mut self) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut counter[..]);
        while let Ok(reply) = self.replies.try_recv() {
            let waiting = self
                .conns
                .get(reply.slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.id == reply.id && matches!(c.state, State::Working));
            if waiting {
                self.respond(reply.slot, reply.response);
            }
        }
    }

    /// The socket of `slot` is readable or writable (or both, or closed).
    fn ready(&mut self, slot: usize) {
        let budget = self.shared.config.max_buffered;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        let others = self.buffered - conn.counted;
        let step = match &mut conn.state {
            State::Reading(reader) => {
                let step = read_request(&mut conn.stream, reader, &mut self.scratch, |n| {
                    others + n <= budget
                });
                let now_held = if matches!(step, Step::Keep) { reader.buffered() } else { 0 };
                self.buffered = others + now_held;
                conn.counted = now_held;
                step
            }
            State::Working => Step::Keep,
            State::Writing { out, sent } => write_answer(&mut conn.stream, out, sent),
            State::Lingering { drained } => linger(&mut conn.stream, drained, &mut self.scratch),
        };
        self.step(slot, step);
    }

    fn step(&mut self, slot: usize, step: Step) {
        match step {
            Step::Keep => {}
            Step::Close => self.close(slot),
            Step::Respond(response) => self.respond(slot, response),
            Step::Request(request) => self.dispatch(slot, request),
            Step::Linger => {
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
                conn.state = State::Lingering { drained: 0 };
                conn.deadline = Instant::now() + LINGER;
                let deadline = conn.deadline;
                self.note_deadline(deadline);
                self.ready(slot);
            }
        }
    }

    /// Quick requests are answered here; configs and reports that must
    /// read FRR first go to a worker.
    fn dispatch(&mut self, slot: usize, request: Request) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        tracing::debug!(peer = ?conn.peer, method = %request.method, path = %request.path, "request");
        let work = routes::work(&request, self.shared.backend.as_ref());
        let queue = match work {
            routes::Work::Now => None,
            routes::Work::Refresh | routes::Work::Frr => self.queues.refreshes.as_ref(),
            routes::Work::Apply => self.queues.configs.as_ref(),
        };
        let request = match queue {
            None => request,
            Some(queue) => {
                let refresh = work == routes::Work::Refresh;
                let job = Job { slot, id: conn.id, request: Box::new(request), refresh };
                match queue.try_send(job) {
                    Ok(()) => {
                        conn.state = State::Working;
                        // A worker's time is bounded by the pass or the refresh.
                        conn.deadline = far_future();
                        return;
                    }
                    Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => *job.request,
                }
            }
        };
        let response = match work {
            // Nothing to wait for, or the refresh queue is full: the state
            // the agent has is the answer.
            routes::Work::Now | routes::Work::Refresh => {
                routes::handle(&request, &self.shared.context())
            }
            routes::Work::Apply if self.queues.configs.is_some() => {
                Response::error(503, "configs are being applied; try again shortly")
                    .with_header("Retry-After", "1")
            }
            routes::Work::Apply => {
                Response::error(503, "the API is shutting down").with_header("Retry-After", "1")
            }
            // Never in the loop: asking FRR takes time.
            routes::Work::Frr => {
                Response::error(503, "FRR is being asked already; try again shortly")
                    .with_header("Retry-After", "1")
            }
        };
        self.respond(slot, response);
    }

    fn respond(&mut self, slot: usize, response: Response) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        self.shared.counters.count(response.status);
        conn.state = State::Writing { out: response.to_bytes(), sent: 0 };
        conn.deadline = Instant::now() + self.shared.config.write_timeout;
        self.buffered -= conn.counted;
        conn.counted = 0;
        let deadline = conn.deadline;
        self.note_deadline(deadline);
        self.ready(slot);
    }

    fn close(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::take) else { return };
        let _ = epoll::delete(&self.epoll, &conn.stream);
        self.buffered -= conn.counted;
        self.open -= 1;
        self.free.push(slot);
    }

    fn note_deadline(&mut self, deadline: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Deadlines that passed: a request that did not arrive gets 408, an
    /// answer not taken or a linger over closes the connection.
    fn expire(&mut self, now: Instant) {
        let deadline = self.shared.config.limits.deadline;
        self.next_deadline = None;
        for slot in 0..self.conns.len() {
            let Some(conn) = &mut self.conns[slot] else { continue };
            if conn.deadline > now {
                let d = conn.deadline;
                self.note_deadline(d);
                continue;
            }
            match conn.state {
                State::Reading(_) => {
                    let e = ReadError::Timeout(deadline);
                    tracing::debug!(peer = ?conn.peer, "refused request: {e}");
                    self.respond(slot, Response::error(408, &e.to_string()));
                }
                State::Working => conn.deadline = far_future(),
                State::Writing { .. } | State::Lingering { .. } => self.close(slot),
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}
