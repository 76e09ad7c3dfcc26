//! The status LED: one blink pattern per agent state, on any embedded-hal
//! `OutputPin` — the on-board ACT LED through the sysfs LED class, an
//! external LED on a GPIO pin through rppal (feature `gpio`), or a recording
//! pin in tests.
//!
//! | state        | pattern                                  |
//! |--------------|------------------------------------------|
//! | booting      | even 2 Hz blink                          |
//! | waiting      | double blink every second (unprovisioned)|
//! | applying     | fast 8 Hz flicker                        |
//! | healthy      | short heartbeat blip every 3 s           |
//! | degraded     | slow 0.5 Hz blink                        |
//! | failed       | three quick flashes, then a pause        |

mod sysfs;

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, OutputPin};

pub use sysfs::SysfsLed;

/// What the LED tells someone standing at the rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedState {
    Booting,
    /// Unprovisioned, announcing itself.
    Waiting,
    Applying,
    Healthy,
    Degraded,
    Failed,
}

/// One step of a pattern: the LED on or off for some milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub on: bool,
    pub ms: u32,
}

const fn on(ms: u32) -> Step {
    Step { on: true, ms }
}

const fn off(ms: u32) -> Step {
    Step { on: false, ms }
}

impl LedState {
    pub const ALL: [LedState; 6] = [
        LedState::Booting,
        LedState::Waiting,
        LedState::Applying,
        LedState::Healthy,
        LedState::Degraded,
        LedState::Failed,
    ];

    /// One cycle of the pattern; it repeats while the state lasts.
    pub fn pattern(self) -> &'static [Step] {
        const BOOTING: &[Step] = &[on(250), off(250)];
        const WAITING: &[Step] = &[on(100), off(100), on(100), off(700)];
        const APPLYING: &[Step] = &[on(60), off(60)];
        const HEALTHY: &[Step] = &[on(100), off(2900)];
        const DEGRADED: &[Step] = &[on(1000), off(1000)];
        const FAILED: &[Step] = &[on(150), off(150), on(150), off(150), on(150), off(1250)];
        match self {
            LedState::Booting => BOOTING,
            LedState::Waiting => WAITING,
            LedState::Applying => APPLYING,
            LedState::Healthy => HEALTHY,
            LedState::Degraded => DEGRADED,
            LedState::Failed => FAILED,
        }
    }
}

/// Play one cycle of `pattern` on `pin`, waiting with `wait` between steps.
/// `wait` returns false to cut the cycle short (the state changed).
pub fn play<P: OutputPin>(
    pin: &mut P,
    pattern: &[Step],
    mut wait: impl FnMut(Duration) -> bool,
) -> Result<(), P::Error> {
    for step in pattern {
        if step.on {
            pin.set_high()?;
        } else {
            pin.set_low()?;
        }
        if !wait(Duration::from_millis(u64::from(step.ms))) {
            break;
        }
    }
    Ok(())
}

/// Drives a pin from a background thread; `set` changes the pattern at
/// once, not at the end of the current cycle.
#[derive(Debug)]
pub struct Blinker {
    shared: Arc<(Mutex<Control>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Control {
    state: LedState,
    /// Bumped on every change so a waiting step notices.
    generation: u64,
    stop: bool,
}

impl Blinker {
    pub fn start<P>(mut pin: P, state: LedState) -> Self
    where
        P: OutputPin + Send + 'static,
    {
        let shared =
            Arc::new((Mutex::new(Control { state, generation: 0, stop: false }), Condvar::new()));
        let inner = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("status-led".into())
            .spawn(move || blink_loop(&mut pin, &inner))
            .ok();
        if thread.is_none() {
            tracing::warn!("cannot start the status LED thread; the LED stays as it is");
        }
        Blinker { shared, thread }
    }

    pub fn set(&self, state: LedState) {
        let (lock, cvar) = &*self.shared;
        if let Ok(mut control) = lock.lock()
            && control.state != state
        {
            control.state = state;
            control.generation += 1;
            cvar.notify_all();
        }
    }

    pub fn state(&self) -> Option<LedState> {
        self.shared.0.lock().ok().map(|c| c.state)
    }
}

impl Drop for Blinker {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.shared;
        if let Ok(mut control) = lock.lock() {
            control.stop = true;
            cvar.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn blink_loop<P: OutputPin>(pin: &mut P, shared: &(Mutex<Control>, Condvar)) {
    let (lock, cvar) = shared;
    let mut said_error = false;
    loop {
        let (state, generation) = match lock.lock() {
            Ok(c) if c.stop => break,
            Ok(c) => (c.state, c.generation),
            Err(_) => break,
        };
        // Wait out one step; false when the state changed or we must stop.
        let wait = |d: Duration| {
            let deadline = Instant::now() + d;
            let Ok(mut control) = lock.lock() else { return false };
            loop {
                if control.stop || control.generation != generation {
                    return false;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return true;
                }
                match cvar.wait_timeout(control, left) {
                    Ok((c, _)) => control = c,
                    Err(_) => return false,
                }
            }
        };
        if let Err(e) = play(pin, state.pattern(), wait)
            && !std::mem::replace(&mut said_error, true)
        {
            tracing::warn!("status LED: {e:?}; carrying on without it");
        }
    }
    let _ = pin.set_low();
}

/// A pin that remembers every level it was set to, and when.
#[derive(Debug, Clone, Default)]
pub struct RecordingPin {
    pub log: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl RecordingPin {
    pub fn levels(&self) -> Vec<bool> {
        self.log.lock().map(|l| l.iter().map(|(_, on)| *on).collect()).unwrap_or_default()
    }

    pub fn entries(&self) -> Vec<(Instant, bool)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, on: bool) {
        if let Ok(mut log) = self.log.lock() {
            log.push((Instant::now(), on));
        }
    }
}

impl ErrorType for RecordingPin {
    type Error = std::convert::Infallible;
}

impl OutputPin for RecordingPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.push(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.push(true);
        Ok(())
    }
}

/// An external LED on BCM pin `bcm`, through rppal.
#[cfg(feature = "gpio")]
pub fn gpio_pin(bcm: u8) -> Result<rppal::gpio::OutputPin, rppal::gpio::Error> {
    Ok(rppal::gpio::Gpio::new()?.get(bcm)?.into_output_low())
}

/// Start the LED the config asks for; `None` when there is none or it
/// cannot be driven here (said once in the log).
pub fn from_config(led: &lab_spec::node_config::Led, state: LedState) -> Option<Blinker> {
    use lab_spec::node_config::Led;
    match led {
        Led::None => None,
        Led::Sysfs { name } => match SysfsLed::open(std::path::Path::new("/"), name) {
            Ok(pin) => Some(Blinker::start(pin, state)),
            Err(e) => {
                tracing::info!("status LED {name}: {e}; running without it");
                None
            }
        },
        #[cfg(feature = "gpio")]
        Led::Gpio { pin } => match gpio_pin(*pin) {
            Ok(pin) => Some(Blinker::start(pin, state)),
            Err(e) => {
                tracing::info!("status LED on GPIO {pin}: {e}; running without it");
                None
            }
        },
        #[cfg(not(feature = "gpio"))]
        Led::Gpio { pin } => {
            tracing::info!(
                "status LED on GPIO {pin}: this agent was built without the `gpio` feature; running without it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Play `cycles` cycles with a fake clock: (level, ms) per step.
    fn record(state: LedState, cycles: usize) -> Vec<(bool, u32)> {
        let mut pin = RecordingPin::default();
        let mut waits = Vec::new();
        for _ in 0..cycles {
            play(&mut pin, state.pattern(), |d| {
                waits.push(d.as_millis() as u32);
                true
            })
            .unwrap();
        }
        pin.levels().into_iter().zip(waits).collect()
    }

    #[test]
    fn each_state_plays_its_pattern() {
        assert_eq!(
            record(LedState::Booting, 2),
            vec![(true, 250), (false, 250), (true, 250), (false, 250)]
        );
        assert_eq!(record(LedState::Healthy, 1), vec![(true, 100), (false, 2900)]);
        let failed = record(LedState::Failed, 1);
        assert_eq!(failed.iter().filter(|(on, _)| *on).count(), 3, "three flashes: {failed:?}");
        assert_eq!(failed.last(), Some(&(false, 1250)));
    }

    #[test]
    fn patterns_are_distinct_and_blink() {
        for (i, a) in LedState::ALL.iter().enumerate() {
            let p = a.pattern();
            assert!(p.iter().any(|s| s.on) && p.iter().any(|s| !s.on), "{a:?} must blink");
            assert!(!p.last().unwrap().on, "{a:?} must end dark so cycles are countable");
            for b in &LedState::ALL[i + 1..] {
                assert_ne!(p, b.pattern(), "{a:?} and {b:?} look the same");
            }
        }
    }

    #[test]
    fn a_cut_wait_stops_the_cycle() {
        let mut pin = RecordingPin::default();
        play(&mut pin, LedState::Failed.pattern(), |_| false).unwrap();
        assert_eq!(pin.levels(), vec![true]);
    }

    #[test]
    fn blinker_switches_pattern_at_once() {
        let pin = RecordingPin::default();
        let blinker = Blinker::start(pin.clone(), LedState::Applying);
        thread::sleep(Duration::from_millis(400));
        let applying = pin.levels().len();
        // 60 ms steps: about 6 in 400 ms; allow a loaded machine half of that.
        assert!(applying >= 3, "only {applying} steps while applying");

        let before = Instant::now();
        blinker.set(LedState::Degraded);
        thread::sleep(Duration::from_millis(300));
        let after: Vec<(Instant, bool)> =
            pin.entries().into_iter().filter(|(t, _)| *t >= before).collect();
        // Degraded starts with 1 s on: one step (high) within the 300 ms, at
        // once; at most one late Applying step may race the switch.
        let (at, on) = *after.last().expect("the LED changed after the switch");
        assert!(on, "{after:?}");
        assert!(at - before < Duration::from_millis(100), "switched late: {after:?}");
        assert!(after.len() <= 2, "{after:?}");
        assert_eq!(blinker.state(), Some(LedState::Degraded));
        drop(blinker);
        assert_eq!(pin.levels().last(), Some(&false), "the LED is left off on stop");
    }
}
