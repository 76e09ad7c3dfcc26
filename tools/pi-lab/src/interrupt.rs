//! Ctrl-C for every long command (`image build`, `flash`, `lab up`): one
//! process-wide flag that SIGINT and SIGTERM set. Nothing is killed from a
//! signal handler; the work checks the flag at safe points and stops
//! cleanly, undoing what it must (image: temporary files; flash: every card
//! reported as it was left; lab up: what it made so far).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};

/// The command was interrupted (Ctrl-C or SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A handle on an interrupt flag: the process-wide one from
/// [`Interrupt::install`], or one of its own ([`Interrupt::never`]).
#[derive(Debug, Clone)]
pub struct Interrupt(Arc<AtomicBool>);

fn global() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

impl Interrupt {
    /// Catch SIGINT and SIGTERM from now on (the handlers go in once per
    /// process). SIGXFSZ is caught too and otherwise ignored: under a file
    /// size limit the write then fails with EFBIG and is cleaned up, where
    /// the default action would kill pi-lab in the middle of a file.
    pub fn install() -> io::Result<Interrupt> {
        static INSTALLED: Mutex<bool> = Mutex::new(false);
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if !*installed {
            for signal in [SIGINT, SIGTERM] {
                signal_hook::flag::register(signal, Arc::clone(global()))?;
            }
            signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
            *installed = true;
        }
        Ok(Interrupt(Arc::clone(global())))
    }

    /// A flag no signal sets (unit tests, library callers).
    pub fn never() -> Interrupt {
        Interrupt(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Interrupted)` once the flag is set: `interrupt.check()?`.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_set() { Err(Interrupted) } else { Ok(()) }
    }

    /// Set the flag as a signal would.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether Ctrl-C or SIGTERM arrived since [`Interrupt::install`], for code
/// that holds no handle (flash's per-card threads).
pub fn requested() -> bool {
    global().load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real signals are sent in the end-to-end tests (flash, image build,
    // lab up): raising one here would stop other tests of this process.
    #[test]
    fn handles_share_the_process_flag_and_own_flags_are_separate() {
        let interrupt = Interrupt::install().unwrap();
        let again = Interrupt::install().unwrap();
        assert!(Arc::ptr_eq(&interrupt.0, &again.0), "installed once, one flag");
        assert!(!Arc::ptr_eq(&interrupt.0, &Interrupt::never().0));
    }

    #[test]
    fn a_flag_of_its_own_is_set_by_hand() {
        let own = Interrupt::never();
        own.set();
        assert_eq!(own.check(), Err(Interrupted));
    }
}
