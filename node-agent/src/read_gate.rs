//! One routing read at a time: however many callers (health polls,
//! `status`, the dashboard, the run loop) want FRR's state at once, one of
//! them reads and the others wait for that read and use its result. On a
//! virtual fleet, where every node shares one host, a read also holds one
//! of the host's read slots ([`HostSlots`]), so the fleet as a whole never
//! runs more reads at once than the host has cores.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

/// The per-node gate.
#[derive(Debug, Default)]
pub struct ReadGate {
    busy: Mutex<bool>,
    done: Condvar,
    /// Reads running right now, and the most ever seen at once: a witness
    /// for tests and `/metrics` that the gate holds.
    running: AtomicUsize,
    most: AtomicUsize,
}

/// What a caller of [`ReadGate::read_or_wait`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// It ran the read.
    Read,
    /// Another caller's read finished meanwhile; its result is there.
    Shared,
    /// Another caller's read was still running after `patience`.
    GaveUp,
}

impl ReadGate {
    /// Run `read`, unless another caller's read runs now: then wait for
    /// that one, for at most `patience`.
    pub fn read_or_wait(&self, patience: Duration, read: impl FnOnce()) -> Turn {
        let Ok(mut busy) = self.busy.lock() else { return Turn::GaveUp };
        if *busy {
            let deadline = Instant::now() + patience;
            while *busy {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Turn::GaveUp;
                }
                busy = match self.done.wait_timeout(busy, left) {
                    Ok((guard, _)) => guard,
                    Err(_) => return Turn::GaveUp,
                };
            }
            return Turn::Shared;
        }
        *busy = true;
        drop(busy);
        let _open = Reopen(self);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        read();
        self.running.fetch_sub(1, Ordering::SeqCst);
        Turn::Read
    }

    /// The most reads that ever ran at once (1 while the gate holds).
    pub fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// Opens the gate again when the read ends, also when it panicked.
struct Reopen<'a>(&'a ReadGate);

impl Drop for Reopen<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.0.busy.lock() {
            *busy = false;
        }
        self.0.done.notify_all();
    }
}

/// The host's read slots: a directory of lock files (`slot-0`, `slot-1`,
/// ...) that every agent of a virtual fleet shares. A read holds one with
/// `flock`, so a slot is free again when its holder ends, however it ends.
#[derive(Debug, Clone)]
pub struct HostSlots {
    files: Vec<PathBuf>,
}

/// A held slot; released when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] File);

/// How often a caller that found every slot taken looks again.
const RETRY: Duration = Duration::from_millis(3);

impl HostSlots {
    /// The slots in `dir`; none there means no limit.
    pub fn open(dir: &Path) -> std::io::Result<HostSlots> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("slot-"))
            })
            .collect();
        files.sort();
        Ok(HostSlots { files })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A free slot, waiting for one for at most `patience`; `None` when
    /// none came free (or the slots cannot be opened).
    pub fn take(&self, patience: Duration) -> Option<Slot> {
        let deadline = Instant::now() + patience;
        // Callers start at different slots, so they rarely collide.
        let start = std::process::id() as usize;
        loop {
            for i in 0..self.files.len() {
                let path = &self.files[(start + i) % self.files.len()];
                let Ok(file) = File::open(path) else { return None };
                if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                    return Some(Slot(file));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(RETRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn many_callers_at_once_make_one_read() {
        let gate = Arc::new(ReadGate::default());
        let reads = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(32));
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let (gate, reads, barrier) = (gate.clone(), reads.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    gate.read_or_wait(Duration::from_secs(10), || {
                        reads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(300));
                    })
                })
            })
            .collect();
        let turns: Vec<Turn> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "{turns:?}");
        assert_eq!(turns.iter().filter(|t| **t == Turn::Read).count(), 1);
        assert_eq!(turns.iter().filter(|t| **t == Turn::Shared).count(), 31);
        assert_eq!(gate.most_at_once(), 1);
        // The gate is open again: the next caller reads itself.
        assert_eq!(gate.read_or_wait(Duration::ZERO, || {}), Turn::Read);
    }

    #[test]
    fn a_caller_out_of_patience_gives_up_and_a_panicking_read_reopens_the_gate() {
        let gate = Arc::new(ReadGate::default());
        let slow = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.read_or_wait(Duration::ZERO, || std::thread::sleep(Duration::from_millis(500)))
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(gate.read_or_wait(Duration::from_millis(50), || {}), Turn::GaveUp);
        assert_eq!(slow.join().unwrap(), Turn::Read);
        let panicked = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.read_or_wait(Duration::ZERO, || panic!("FRR gone")))
        };
        assert!(panicked.join().is_err());
        assert_eq!(gate.read_or_wait(Duration::ZERO, || {}), Turn::Read);
    }

    #[test]
    fn host_slots_bound_reads_across_holders() {
        let dir = tempfile::tempdir().unwrap();
        // As `pi-lab lab up` makes them (fleet/agent.rs): empty files.
        for i in 0..2 {
            std::fs::write(dir.path().join(format!("slot-{i}")), b"").unwrap();
        }
        let slots = HostSlots::open(dir.path()).unwrap();
        assert_eq!(slots.len(), 2);
        let first = slots.take(Duration::ZERO).expect("a free slot");
        let second = slots.take(Duration::ZERO).expect("the other slot");
        let started = Instant::now();
        assert!(slots.take(Duration::from_millis(50)).is_none(), "a third holder while two hold");
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(first);
        assert!(slots.take(Duration::ZERO).is_some(), "free again once released");
        drop(second);
    }
}
