//! The management plane as one running thing: the API server on the right
//! address, announcements while unprovisioned, and the status LED.
//!
//! A supervisor thread looks at the backend once a second:
//! - the API listens on the config's `health.listen`, or on `0.0.0.0:9180`
//!   while unprovisioned; when the config moves it, the server is started
//!   on the new address (retrying until the address exists) and the old one
//!   stopped;
//! - while unprovisioned the board announces itself (see `identity`);
//! - the LED shows waiting, healthy, degraded or failed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lab_spec::HealthReport;
use lab_spec::node_config::{DEFAULT_HEALTH_PORT, Led};

use super::{Backend, Server, ServerConfig};
use crate::identity::{self, Announcer, Paths};
use crate::led::{self, Blinker, LedState};

/// Where an unprovisioned agent listens.
pub const UNPROVISIONED_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_HEALTH_PORT);

#[derive(Debug, Clone)]
pub struct PlaneOptions {
    /// Template for every server started (its `listen` is replaced).
    pub server: ServerConfig,
    /// Boot partition and state directory (announce targets).
    pub paths: Paths,
    /// Announce while unprovisioned.
    pub announce: bool,
    pub announce_interval: Duration,
    /// How often the supervisor looks.
    pub tick: Duration,
    /// The LED; share it with the apply path to show "applying".
    pub led: Arc<StatusLed>,
}

impl Default for PlaneOptions {
    fn default() -> Self {
        PlaneOptions {
            server: ServerConfig::new(UNPROVISIONED_LISTEN),
            paths: Paths::default(),
            announce: true,
            announce_interval: Duration::from_secs(5),
            tick: Duration::from_secs(1),
            led: Arc::new(StatusLed::default()),
        }
    }
}

/// The LED shared between the supervisor and whoever applies configs.
#[derive(Debug, Default)]
pub struct StatusLed(Mutex<Option<(Led, Option<Blinker>)>>);

impl StatusLed {
    /// Show `state` (no-op without an LED).
    pub fn set(&self, state: LedState) {
        if let Ok(guard) = self.0.lock()
            && let Some((_, Some(blinker))) = guard.as_ref()
        {
            blinker.set(state);
        }
    }

    /// Drive the LED the config names, replacing the previous one. An LED
    /// that cannot be driven is remembered too, so it is reported once.
    fn follow(&self, wanted: &Led, state: LedState) {
        let Ok(mut guard) = self.0.lock() else { return };
        if guard.as_ref().map(|(led, _)| led) == Some(wanted) {
            return;
        }
        *guard = None; // stops the old blinker first
        *guard = Some((wanted.clone(), led::from_config(wanted, state)));
    }
}

/// What the LED should say about a report.
pub fn led_state(report: &HealthReport) -> LedState {
    if report.node.is_none() {
        LedState::Waiting
    } else if !report.reconcile.ok {
        LedState::Failed
    } else if report.healthy {
        LedState::Healthy
    } else {
        LedState::Degraded
    }
}

/// The running management plane; stops when dropped.
#[derive(Debug)]
pub struct Plane {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    led: Arc<StatusLed>,
    listening: Arc<Mutex<Option<SocketAddr>>>,
}

impl Plane {
    pub fn start(backend: Arc<dyn Backend>, options: PlaneOptions) -> std::io::Result<Plane> {
        let stop = Arc::new(AtomicBool::new(false));
        let led = Arc::clone(&options.led);
        let listening = Arc::new(Mutex::new(None));
        let mut supervisor = Supervisor {
            backend,
            options,
            server: None,
            announcer: None,
            led: Arc::clone(&led),
            listening: Arc::clone(&listening),
            said_bind_error: None,
        };
        // The first round runs here, so the API is up when start returns.
        supervisor.round();
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new().name("health-plane".into()).spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                thread::sleep(supervisor.options.tick);
                supervisor.round();
            }
        })?;
        Ok(Plane { stop, thread: Some(thread), led, listening })
    }

    /// For the apply path: show "applying" until the next round.
    pub fn led(&self) -> Arc<StatusLed> {
        Arc::clone(&self.led)
    }

    /// Where the API listens now (the port is real even if 0 was asked).
    pub fn listening(&self) -> Option<SocketAddr> {
        self.listening.lock().ok().and_then(|l| *l)
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Supervisor {
    backend: Arc<dyn Backend>,
    options: PlaneOptions,
    server: Option<(SocketAddr, Server)>,
    announcer: Option<Announcer>,
    led: Arc<StatusLed>,
    listening: Arc<Mutex<Option<SocketAddr>>>,
    /// The address whose bind failure was logged (once per address).
    said_bind_error: Option<SocketAddr>,
}

impl Supervisor {
    fn round(&mut self) {
        let config = self.backend.current_config();
        let wanted = config.as_ref().map_or(self.options.server.listen, |c| c.health.listen);
        self.follow_listen(wanted);
        let report = self.backend.health();
        self.follow_announce(config.is_none(), &report);
        let led = config.as_ref().map(|c| c.led.clone()).unwrap_or_default();
        self.led.follow(&led, led_state(&report));
        self.led.set(led_state(&report));
    }

    fn follow_listen(&mut self, wanted: SocketAddr) {
        if self.server.as_ref().is_some_and(|(addr, _)| *addr == wanted) {
            return;
        }
        let mut config = self.options.server.clone();
        config.listen = wanted;
        let mut started = Server::start(config.clone(), Arc::clone(&self.backend));
        // 0.0.0.0:9180 and ADDRESS:9180 cannot both listen: hand the port over.
        if let Err(e) = &started
            && e.kind() == std::io::ErrorKind::AddrInUse
            && let Some((old, previous)) = self.server.take()
        {
            previous.shutdown();
            started = Server::start(config, Arc::clone(&self.backend));
            if started.is_err() {
                let mut back = self.options.server.clone();
                back.listen = old;
                self.server = Server::start(back, Arc::clone(&self.backend)).ok().map(|s| (old, s));
            }
        }
        match started {
            Ok(server) => {
                if let Ok(mut l) = self.listening.lock() {
                    *l = Some(server.local_addr());
                }
                // The old server goes after the new one is up.
                if let Some((old, previous)) = self.server.replace((wanted, server)) {
                    tracing::info!(%old, new = %wanted, "health API moved");
                    previous.shutdown();
                }
                self.said_bind_error = None;
            }
            Err(e) => {
                if self.said_bind_error != Some(wanted) {
                    tracing::warn!(%wanted, "cannot listen yet ({e}); retrying every tick");
                    self.said_bind_error = Some(wanted);
                }
            }
        }
    }

    fn follow_announce(&mut self, unprovisioned: bool, report: &HealthReport) {
        if !unprovisioned || !self.options.announce {
            self.announcer = None;
            return;
        }
        if self.announcer.is_some() {
            return;
        }
        let targets = identity::announce_targets(&self.options.paths);
        let board = report.board.clone();
        let hostname = report.system.hostname.clone();
        let port =
            self.listening.lock().ok().and_then(|l| *l).map_or(DEFAULT_HEALTH_PORT, |a| a.port());
        let make = move || identity::announcement(&board, &hostname, port, false);
        match Announcer::start(targets, self.options.announce_interval, make) {
            Ok(a) => self.announcer = Some(a),
            Err(e) => tracing::warn!("cannot announce this board: {e}"),
        }
    }
}
