//! The listener and its bounded pool of worker threads.
//!
//! One thread accepts; a fixed number of workers serve one connection each.
//! When every worker is busy and the small queue is full, the acceptor
//! answers 503 at once instead of queueing without bound: a scrape storm
//! must not take memory from FRR.

use std::io::{self, Read};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::auth::BOOTSTRAP_FILES;
use super::http::{self, Limits, Response};
use super::routes::{self, Context};
use super::{Backend, HttpCounters};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on: the management address, or `0.0.0.0:9180`
    /// while unprovisioned.
    pub listen: SocketAddr,
    /// Connections served at the same time.
    pub workers: usize,
    /// Accepted connections waiting for a worker; beyond that, 503.
    pub queue: usize,
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
            workers: 4,
            queue: 8,
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
    threads: Vec<JoinHandle<()>>,
}

/// What every worker shares.
struct Shared {
    backend: Arc<dyn Backend>,
    config: ServerConfig,
    counters: HttpCounters,
}

impl Server {
    /// Bind and start serving in background threads.
    pub fn start(config: ServerConfig, backend: Arc<dyn Backend>) -> io::Result<Server> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<TcpStream>(config.queue);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared { backend, config, counters: HttpCounters::default() });
        let mut threads = Vec::with_capacity(shared.config.workers + 1);
        for i in 0..shared.config.workers.max(1) {
            let (rx, shared) = (Arc::clone(&rx), Arc::clone(&shared));
            threads.push(
                thread::Builder::new()
                    .name(format!("health-worker-{i}"))
                    .spawn(move || worker(&rx, &shared))?,
            );
        }
        let (stop2, shared2) = (Arc::clone(&stop), Arc::clone(&shared));
        threads.push(
            thread::Builder::new()
                .name("health-accept".into())
                .spawn(move || accept(&listener, &tx, &stop2, &shared2))?,
        );
        tracing::info!(%local_addr, "health API listening");
        Ok(Server { local_addr, stop, threads })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, let workers finish what they serve, and join them.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the acceptor out of accept() with a connection of our own.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
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

fn accept(listener: &TcpListener, tx: &SyncSender<TcpStream>, stop: &AtomicBool, shared: &Shared) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(stream)) => busy(stream, shared),
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}

/// Every worker is busy: say so rather than queue.
fn busy(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let response = Response::error(503, "too many connections; try again shortly")
        .with_header("Retry-After", "1");
    shared.counters.count(503);
    let _ = response.write_to(&mut stream);
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, shared: &Shared) {
    loop {
        // The lock is held only while waiting for the next connection.
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(stream) = next else { return };
        serve(stream, shared);
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_write_timeout(Some(shared.config.write_timeout));
    let response = match http::read_request(&mut stream, &shared.config.limits) {
        Ok(request) => {
            let ctx = Context {
                backend: shared.backend.as_ref(),
                bootstrap_files: &shared.config.bootstrap_files,
                counters: &shared.counters,
            };
            let response = routes::handle(&request, &ctx);
            tracing::debug!(?peer, method = %request.method, path = %request.path, status = response.status, "request");
            response
        }
        Err(e) => match e.status() {
            Some(status) => {
                tracing::debug!(?peer, status, "refused request: {e}");
                Response::error(status, &e.to_string())
            }
            None => return,
        },
    };
    shared.counters.count(response.status);
    if response.write_to(&mut stream).is_ok() {
        linger_close(stream);
    }
}

/// Close gently: a client still sending a body we refused would otherwise
/// get a reset instead of our answer.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 1 << 20 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
