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
//!
//! Here: the server's settings and its start and stop; the loop is in
//! `event_loop` (accepting in `event_loop::admission`), one connection's
//! reads and writes in `connection`, the workers in `workers`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::event::{EventfdFlags, eventfd};

use super::auth::BOOTSTRAP_FILES;
use super::http::Limits;
use super::routes::Context;
use super::{Backend, HttpCounters};
use event_loop::EventLoop;
use workers::{Job, Queues, REFRESH_QUEUE, Reply, wake, worker};

mod connection;
mod event_loop;
mod workers;

pub use connection::exchange;
pub use event_loop::admission::raise_open_files_limit;

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
