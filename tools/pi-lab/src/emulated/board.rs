//! One emulated board while the lab comes up: its phases and their times.

use super::*;

/// One board while the lab comes up.
#[derive(Debug, Clone, Serialize)]
pub struct BoardState {
    pub node: String,
    pub role: String,
    pub management: String,
    pub mac: String,
    pub pid: u32,
    pub phase: Phase,
    /// Seconds from the emulator's start to each phase reached.
    pub seconds: BTreeMap<Phase, f64>,
    /// What the agent last said is wrong, when not healthy.
    pub waiting: String,
    /// The emulator's resident memory, MiB.
    pub emulator_rss_mib: Option<u64>,
    /// Times the board was powered off and on again (see [`Cycle`]);
    /// phases count from the last power-on.
    pub power_cycles: u32,
    /// Why it was last powered on again.
    pub last_cycle: Option<Cycle>,
    #[serde(skip)]
    pub(super) started: Option<Instant>,
    /// The console's length when last read, and when it last grew.
    #[serde(skip)]
    pub(super) console_seen: (usize, Option<Instant>),
    /// How to power the board on (again).
    #[serde(skip)]
    pub(super) spec: qemu::Board,
}

impl BoardState {
    /// A board just powered on as `pid`.
    pub(super) fn new(config: &NodeConfig, pid: u32, spec: qemu::Board) -> BoardState {
        BoardState {
            node: config.hostname.clone(),
            role: config.role.to_string(),
            management: config.management.address.to_string(),
            mac: spec.mac.clone(),
            pid,
            phase: Phase::PoweredOn,
            seconds: BTreeMap::new(),
            waiting: String::new(),
            emulator_rss_mib: None,
            power_cycles: 0,
            last_cycle: None,
            started: Some(Instant::now()),
            console_seen: (0, None),
            spec,
        }
    }

    pub(super) fn reach(&mut self, phase: Phase) {
        if phase <= self.phase {
            return;
        }
        let at = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        for p in Phase::ALL.into_iter().filter(|p| *p > self.phase && *p <= phase) {
            self.seconds.insert(p, at);
        }
        self.phase = phase;
    }
}
