//! The listener: one event-loop thread, a worker for configs and one for
//! reports that must read FRR first.
//!
//! The loop (epoll through rustix, which the agent already links) accepts,
//! reads each connection's request as its bytes arrive, answers at once
//! what is quick (health, metrics, `GET /v1/config`) and writes every
//! answer, never blocking on a client: an idle or slow connection costs a
//! slot and the bytes it sent, not a thread. `PUT /v1/config`, which takes
//! as long as a reconcile pass, goes to a config worker. A health report or
//! scrape whose routing state is too old (`Backend::stale`) goes to the
//! refresh worker, which reads FRR once for all the requests waiting; when
//! that queue is full the loop answers with the state it has. Answers come
//! back to the loop to be written.
//!
//! Bounds, so a flood cannot take memory from FRR nor the API from its
//! owner:
//! - one deadline per request (`limits.deadline`), then 408;
//! - at most `max_connections` open; when full, the oldest connection still
//!   sending its request makes room for the newcomer;
//! - at most `max_buffered` bytes of requests held over all connections;
//! - at most `queue` configs waiting for a worker; beyond that, 503.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};

use super::auth::BOOTSTRAP_FILES;
use super::http::{CONTINUE, Limits, Progress, ReadError, Request, RequestReader, Response};
use super::routes::{self, Context};
use super::{Backend, HttpCounters};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on: the management address, or `0.0.0.0:9180`
    /// while unprovisioned.
    pub listen: SocketAddr,
    /// Threads applying configs; the agent applies one at a time anyway.
    pub workers: usize,
    /// Configs waiting for a worker; beyond that, 503.
    pub queue: usize,
    /// Connections open at once (fewer if the open-files limit is lower).
    pub max_connections: usize,
    /// Request bytes held over all connections; beyond that, 503.
    pub max_buffered: usize,
    pub limits: Limits,
    /// Time a client may take to read the answer.
    pub write_timeout: Duration,
    /// Where an unprovisioned node finds the bootstrap token's hash.
    pub bootstrap_files: Vec<PathBuf>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            workers: 1,
            queue: 4,
            max_connections: 1024,
            max_buffered: 4 << 20,
            limits: Limits::default(),
            write_timeout: Duration::from_secs(10),
            bootstrap_files: BOOTSTRAP_FILES.iter().map(PathBuf::from).collect(),
        }
    }
}

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
fn connection_cap(wanted: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let allowed = soft.map_or(u64::MAX, |s| s.saturating_sub(RESERVED_FDS).max(16));
    wanted.min(usize::try_from(allowed).unwrap_or(usize::MAX)).max(1)
}

/// A running API server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
}

/// What the loop and the workers share.
struct Shared {
    backend: Arc<dyn Backend>,
    config: ServerConfig,
    counters: HttpCounters,
}

impl Shared {
    fn context(&self) -> Context<'_> {
        Context {
            backend: self.backend.as_ref(),
            bootstrap_files: &self.config.bootstrap_files,
            counters: &self.counters,
        }
    }
}

/// Reports waiting for the refresh worker; beyond that, the loop answers
/// with the state it has.
const REFRESH_QUEUE: usize = 64;

/// A request for a worker, and the answer it sends back.
struct Job {
    slot: usize,
    id: u64,
    request: Box<Request>,
    /// Call `Backend::refresh` before answering.
    refresh: bool,
}

/// Where the loop sends work; `None` once it stops.
struct Queues {
    configs: Option<SyncSender<Job>>,
    refreshes: Option<SyncSender<Job>>,
}

struct Reply {
    slot: usize,
    id: u64,
    response: Response,
}

impl Server {
    /// Bind and start serving in background threads.
    pub fn start(config: ServerConfig, backend: Arc<dyn Backend>) -> io::Result<Server> {
        let listener = TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(config.queue);
        let (refreshes, refresh_rx) = mpsc::sync_channel::<Job>(REFRESH_QUEUE);
        let (reply_tx, replies) = mpsc::channel::<Reply>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let refresh_rx = Arc::new(Mutex::new(refresh_rx));
        let shared = Arc::new(Shared { backend, config, counters: HttpCounters::default() });
        let mut threads = Vec::with_capacity(shared.config.workers + 2);
        let names = (0..shared.config.workers.max(1)).map(|i| format!("health-worker-{i}"));
        let queues = names
            .map(|name| (name, &job_rx))
            .chain(std::iter::once(("health-refresh".to_string(), &refresh_rx)));
        for (name, queue) in queues {
            let (queue, reply_tx) = (Arc::clone(queue), reply_tx.clone());
            let (wake, shared) = (Arc::clone(&wake), Arc::clone(&shared));
            threads.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || worker(&queue, &reply_tx, &wake, &shared))?,
            );
        }
        let queues = Queues { configs: Some(jobs), refreshes: Some(refreshes) };
        let mut event_loop = EventLoop::new(listener, Arc::clone(&wake), queues, replies, shared)?;
        let stop2 = Arc::clone(&stop);
        threads.push(
            thread::Builder::new()
                .name("health-loop".into())
                .spawn(move || event_loop.run(&stop2))?,
        );
        tracing::info!(%local_addr, "health API listening");
        Ok(Server { local_addr, stop, wake, threads })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, finish the answers under way, and join the threads.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        wake(&self.wake);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn wake(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

fn worker(
    jobs: &Mutex<Receiver<Job>>,
    replies: &Sender<Reply>,
    wake_fd: &OwnedFd,
    shared: &Shared,
) {
    loop {
        // The lock is held only while waiting for the next job.
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        if job.refresh {
            shared.backend.refresh();
        }
        let response = routes::handle(&job.request, &shared.context());
        if replies.send(Reply { slot: job.slot, id: job.id, response }).is_err() {
            return;
        }
        wake(wake_fd);
    }
}

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
/// Time a client gets to take our answer and close after it, before we do.
const LINGER: Duration = Duration::from_millis(500);
/// Bytes read and thrown away while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// After running out of file descriptors, try accepting again this soon.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

struct Conn {
    stream: TcpStream,
    /// Tells a worker's late answer from the slot's next connection.
    id: u64,
    peer: Option<SocketAddr>,
    deadline: Instant,
    state: State,
    /// This connection's bytes in the loop's `buffered`.
    counted: usize,
}

enum State {
    /// Reading the request.
    Reading(RequestReader),
    /// A worker has the request.
    Working,
    /// Writing the answer.
    Writing { out: Vec<u8>, sent: usize },
    /// Answer sent and our side shut: reading what the client still sends
    /// until it closes, so it gets our answer rather than a reset.
    Lingering { drained: usize },
}

/// What a connection needs next.
enum Step {
    Keep,
    Close,
    Request(Request),
    Respond(Response),
    /// The answer is out: linger.
    Linger,
}

struct EventLoop {
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
    fn new(
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

    fn run(&mut self, stop: &AtomicBool) {
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

    fn accept_all(&mut self) {
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

/// One whole exchange over a stream that never makes us wait (its reads
/// return bytes or end): the loop's reading, routing and answering, in one
/// call. The fuzz target drives the API through it. Returns the status
/// answered, `None` when the client left without a request.
pub fn exchange(
    stream: &mut (impl Read + Write),
    backend: &dyn Backend,
    config: &ServerConfig,
) -> io::Result<Option<u16>> {
    let counters = HttpCounters::default();
    let ctx = Context { backend, bootstrap_files: &config.bootstrap_files, counters: &counters };
    let mut reader = RequestReader::new(config.limits);
    let mut scratch = vec![0; 16 * 1024];
    let response =
        match read_request(stream, &mut reader, &mut scratch, |n| n <= config.max_buffered) {
            // Only a stream that makes us wait says "keep"; see above.
            Step::Keep | Step::Linger => return Err(ErrorKind::WouldBlock.into()),
            Step::Close => return Ok(None),
            Step::Respond(response) => response,
            Step::Request(request) => routes::handle(&request, &ctx),
        };
    stream.write_all(&response.to_bytes())?;
    Ok(Some(response.status))
}

/// Read what the client sent so far into its request. `room(n)`: may `n`
/// more bytes be held?
fn read_request(
    stream: &mut (impl Read + Write),
    reader: &mut RequestReader,
    scratch: &mut [u8],
    room: impl Fn(usize) -> bool,
) -> Step {
    loop {
        let want = reader.wants().min(scratch.len());
        let n = match stream.read(&mut scratch[..want]) {
            Ok(0) => return refusal(reader.closed()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return refusal(ReadError::Io(e)),
        };
        if !room(reader.buffered() + n) {
            return Step::Respond(
                Response::error(503, "too many requests under way; try again shortly")
                    .with_header("Retry-After", "1"),
            );
        }
        match reader.feed(&scratch[..n]) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::SendContinue) => {
                // Nothing else was written yet: the socket's buffer takes it.
                if stream.write(CONTINUE).ok() != Some(CONTINUE.len()) {
                    return Step::Close;
                }
            }
            Ok(Progress::Done(request)) => return Step::Request(request),
            Err(e) => return refusal(e),
        }
    }
}

/// Every read error is an answer with its status, except a vanished client.
fn refusal(e: ReadError) -> Step {
    match e.status() {
        Some(status) => {
            tracing::debug!(status, "refused request: {e}");
            Step::Respond(Response::error(status, &e.to_string()))
        }
        None => Step::Close,
    }
}

fn write_answer(stream: &mut TcpStream, out: &[u8], sent: &mut usize) -> Step {
    while *sent < out.len() {
        match stream.write(&out[*sent..]) {
            Ok(0) => return Step::Close,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
    // Close gently: a client still sending a body we refused would otherwise
    // get a reset instead of our answer.
    if stream.shutdown(Shutdown::Write).is_err() {
        return Step::Close;
    }
    Step::Linger
}

fn linger(stream: &mut TcpStream, drained: &mut usize, scratch: &mut [u8]) -> Step {
    loop {
        match stream.read(scratch) {
            Ok(0) => return Step::Close,
            Ok(n) => {
                *drained += n;
                if *drained >= LINGER_BYTES {
                    return Step::Close;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}
