//! The workers: configs to apply and reports that must read FRR first,
//! handed over by the loop, answered on a thread of their own and sent
//! back to the loop (woken through its eventfd) to be written.

use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use super::Shared;
use crate::health::http::{Request, Response};
use crate::health::routes;

/// Reports waiting for the refresh worker; beyond that, the loop answers
/// with the state it has.
pub(super) const REFRESH_QUEUE: usize = 64;

/// A request for a worker, and the answer it sends back.
pub(super) struct Job {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) request: Box<Request>,
    /// Call `Backend::refresh` before answering.
    pub(super) refresh: bool,
}

/// Where the loop sends work; `None` once it stops.
pub(super) struct Queues {
    pub(super) configs: Option<SyncSender<Job>>,
    pub(super) refreshes: Option<SyncSender<Job>>,
}

pub(super) struct Reply {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) response: Response,
}

pub(super) fn wake(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

pub(super) fn worker(
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
