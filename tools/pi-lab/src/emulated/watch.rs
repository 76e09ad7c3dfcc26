//! Watching the boards come up, and powering one on again when it lost its
//! NIC, crashed, went quiet or read back a corrupt card.

use super::*;

/// How often a board is powered on again, for whatever reasons.
pub(super) const MAX_POWER_CYCLES: u32 = 3;

/// A board that has not answered at its management address this long
/// after power-on, and whose console has said nothing for [`QUIET_FOR`],
/// is powered on again: on a 2-core host boards answer after 50-150 s,
/// and one stuck for good would hold `lab up` to its whole timeout. A
/// slow board still prints as systemd starts its units.
pub(super) const STUCK_AFTER: Duration = Duration::from_secs(600);
pub(super) const QUIET_FOR: Duration = Duration::from_secs(120);

/// Why a board is powered on again; all but a lost NIC write its card
/// again first, since a board that went wrong may have written it wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// It booted without its NIC.
    NoNic,
    /// Its root file system read back corrupt.
    BadCard,
    /// Its kernel oopsed or panicked.
    Crashed,
    /// It did not answer within [`STUCK_AFTER`], its console quiet.
    Stuck,
}

impl Serialize for Cycle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Cycle {
    fn name(self) -> &'static str {
        match self {
            Cycle::NoNic => "no-nic",
            Cycle::BadCard => "bad-card",
            Cycle::Crashed => "crashed",
            Cycle::Stuck => "stuck",
        }
    }

    fn writes_card(self) -> bool {
        self != Cycle::NoNic
    }

    /// What went wrong, and why it likely did, for the error past the limit.
    fn what(self) -> (String, &'static str) {
        let (what, cause) = match self {
            Cycle::NoNic => (
                "came up without its network port",
                "qemu's emulated USB did not enumerate the board's NIC; a busy host makes this \
                 likelier",
            ),
            Cycle::BadCard => (
                "read its root file system back corrupt",
                "each time from a card written again; a busy host makes qemu's emulated SD card \
                 likelier to fail",
            ),
            Cycle::Crashed => (
                "crashed in its kernel (oops or panic)",
                "each time from a card written again; the console shows the kernel's report",
            ),
            Cycle::Stuck => {
                let what = format!(
                    "did not answer at its management address within {} s, its console quiet \
                     for {} s,",
                    STUCK_AFTER.as_secs(),
                    QUIET_FOR.as_secs()
                );
                let cause =
                    "each time from a card written again; the console shows how far it came";
                return (what, cause);
            }
        };
        (what.to_string(), cause)
    }
}

/// Power `board` off and on again, its old console kept beside the new;
/// `write_card` runs in between when `why` asks for it.
pub(super) fn power_cycle(
    program: &Path,
    board: &mut BoardState,
    layout: &Layout,
    journal: &mut Journal,
    why: Cycle,
    write_card: impl FnOnce() -> Result<(), EmulatedError>,
) -> Result<(), EmulatedError> {
    let log = layout.console_log(&board.node);
    if board.power_cycles >= MAX_POWER_CYCLES {
        let (what, cause) = why.what();
        let (node, cycles) = (board.node.clone(), board.power_cycles + 1);
        return Err(EmulatedError::PowerCycles { node, what, cycles, cause, log });
    }
    crate::lab_host::teardown::stop_processes(&[board.pid]);
    board.power_cycles += 1;
    board.last_cycle = Some(why);
    let kept = log.with_file_name(format!("console-{}-{}.log", why.name(), board.power_cycles));
    fs::rename(&log, &kept).map_err(|source| EmulatedError::Write { path: kept, source })?;
    if why.writes_card() {
        write_card()?;
    }
    board.pid = power_on(program, &board.spec, layout, &board.node, journal)?;
    board.phase = Phase::PoweredOn;
    board.seconds.clear();
    board.started = Some(Instant::now());
    board.console_seen = (0, None);
    Ok(())
}

/// What following the boards needs besides the boards themselves.
pub(super) struct Watch<'a> {
    pub(super) p: &'a Prepared,
    pub(super) layout: &'a Layout,
    pub(super) journal: &'a mut Journal,
    pub(super) target: Phase,
    pub(super) timeout: Duration,
    /// To write a board's card again.
    pub(super) cards: (&'a UpOptions, &'a crate::secrets::SshKey),
}

impl Watch<'_> {
    /// Follow every board until all reach the target phase: console for the
    /// boot phases, the agent's `/v1/health` for the rest.
    pub(super) fn run(
        &mut self,
        boards: &mut [BoardState],
        progress: &mut Progress,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), EmulatedError> {
        let client = crate::agent_client::AgentClient::new(Duration::from_secs(3));
        let started = Instant::now();
        loop {
            if stop() {
                return Err(EmulatedError::Interrupted);
            }
            for ((board, config), line) in
                boards.iter_mut().zip(&self.p.configs).zip(&mut progress.lines)
            {
                // One read of the console per board and turn, until healthy.
                let log = if board.phase < Phase::Healthy {
                    let log = fs::read(self.layout.console_log(&board.node)).unwrap_or_default();
                    String::from_utf8_lossy(&log).into_owned()
                } else {
                    String::new()
                };
                // A board powered on again has a new console: look next turn.
                if !self.check(board, config, &log)? {
                    look(board, config, &log, &client);
                }
                for phase in Phase::ALL[1..].iter().filter(|ph| **ph <= board.phase) {
                    line.done(*phase as usize - 1);
                }
                line.note(&note(board));
            }
            if boards.iter().all(|b| b.phase >= self.target) {
                for line in &mut progress.lines {
                    line.finish();
                }
                return Ok(());
            }
            if started.elapsed() >= self.timeout {
                return Err(timed_out(boards, self.layout, self.timeout));
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    }

    /// The emulator still runs and the board, not yet healthy, is in no
    /// [`trouble`] (`log`: its console). Else it is powered on again and
    /// the answer is true.
    fn check(
        &mut self,
        board: &mut BoardState,
        config: &NodeConfig,
        log: &str,
    ) -> Result<bool, EmulatedError> {
        if !process_alive(board.pid) {
            let log = self.layout.qemu_log(&board.node);
            let tail =
                console::tail(&log, 10) + &console::tail(&self.layout.console_log(&board.node), 20);
            return Err(EmulatedError::Died { node: board.node.clone(), log, tail });
        }
        if board.phase >= Phase::Healthy {
            return Ok(false);
        }
        if log.len() != board.console_seen.0 {
            board.console_seen = (log.len(), Some(Instant::now()));
        }
        let up = board.started.map_or(Duration::ZERO, |s| s.elapsed());
        let quiet = board.console_seen.1.map_or(up, |t| t.elapsed());
        let Some(why) = trouble(board, log, up, quiet) else { return Ok(false) };
        tracing::warn!(node = %board.node, why = why.name(), "powering the board on again");
        let ((opts, key), layout) = (self.cards, self.layout);
        let write_card = || cards(std::slice::from_ref(config), opts, layout, key);
        power_cycle(&self.p.qemu, board, layout, self.journal, why, write_card)?;
        Ok(true)
    }
}

/// Why a booting board (`log`: its console, `quiet` since it last grew;
/// `up`: time since power-on) must be powered on again, if it must.
pub(super) fn trouble(
    board: &BoardState,
    log: &str,
    up: Duration,
    quiet: Duration,
) -> Option<Cycle> {
    let stuck = board.phase < Phase::AgentUp && up >= STUCK_AFTER && quiet >= QUIET_FOR;
    if board.phase == Phase::Systemd && console::nic_lost(log) {
        Some(Cycle::NoNic)
    } else if console::card_corrupted(log) {
        Some(Cycle::BadCard)
    } else if console::kernel_crashed(log) {
        Some(Cycle::Crashed)
    } else if stuck {
        Some(Cycle::Stuck)
    } else {
        None
    }
}

/// The progress line's note: time since power-on, power cycles, and what
/// the agent still waits for.
pub(super) fn note(board: &BoardState) -> String {
    let mut note = format!("{} s", board.started.map_or(0, |s| s.elapsed().as_secs()));
    if board.power_cycles > 0 {
        let why = board.last_cycle.map_or("", Cycle::name);
        note += &format!(", power-cycled {}x (last: {why})", board.power_cycles);
    }
    if board.phase >= Phase::Provisioned && !board.waiting.is_empty() {
        note += &format!(", {}", board.waiting);
    }
    note
}

/// One look at one board: its console, then its agent.
pub(super) fn look(
    board: &mut BoardState,
    config: &NodeConfig,
    log: &str,
    client: &crate::agent_client::AgentClient,
) {
    if board.phase < Phase::Systemd {
        board.reach(console::phase_of(log));
    }
    if board.phase < Phase::Systemd {
        return;
    }
    let Ok(report) = client.health(config.health.listen) else { return };
    board.reach(Phase::AgentUp);
    let r = &report.reconcile;
    if r.config_version.as_deref() == Some(config.version.as_str()) && r.passes > 0 {
        board.reach(Phase::Provisioned);
    }
    board.waiting = report.problems.join("; ");
    if board.phase >= Phase::Provisioned && report.healthy {
        board.reach(Phase::Healthy);
    }
}

/// The error for boards that did not make it in time: not booted (the
/// lab goes down) or booted but not healthy (it stays up for a look).
pub(super) fn timed_out(
    boards: &[BoardState],
    layout: &Layout,
    timeout: Duration,
) -> EmulatedError {
    if let Some(b) = boards.iter().find(|b| b.phase < Phase::AgentUp) {
        let log = layout.console_log(&b.node);
        return EmulatedError::Boot {
            node: b.node.clone(),
            seconds: timeout.as_secs(),
            phase: b.phase.label(),
            tail: console::tail(&log, 25),
            log,
        };
    }
    let waiting: Vec<String> = boards
        .iter()
        .filter(|b| b.phase < Phase::Healthy)
        .map(|b| format!("{}: {} ({})", b.node, b.phase.label(), b.waiting))
        .collect();
    EmulatedError::NotHealthy { seconds: timeout.as_secs(), waiting: waiting.join("; ") }
}

impl EmulatedError {
    /// Whether the lab must be taken down (it cannot be of use), or stays
    /// up for a look.
    pub fn takes_lab_down(&self) -> bool {
        !matches!(self, EmulatedError::NotHealthy { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulated::prepare::tests::config;

    /// A board description for tests (nothing is started from it).
    fn spec(dir: &Path) -> qemu::Board {
        let layout = Layout::new(dir);
        qemu::Board {
            card: layout.card("r1"),
            kernel: "k".into(),
            initrd: "i".into(),
            dtb: "d".into(),
            cmdline: String::new(),
            mac: String::new(),
            tap: String::new(),
            console_socket: dir.join("s"),
            console_log: layout.console_log("r1"),
        }
    }

    #[test]
    fn phases_are_timed_once_and_in_order() {
        let mut b = BoardState::new(&config("r1", &[]), 0, spec(Path::new("/nonexistent")));
        b.reach(Phase::Systemd);
        b.reach(Phase::Kernel);
        b.reach(Phase::Systemd);
        let phases: Vec<Phase> = b.seconds.keys().copied().collect();
        assert_eq!(phases, vec![Phase::Kernel, Phase::Systemd]);
    }

    /// A board r1 in a fresh directory, its "emulator" a real process to
    /// stop (pid 0 would be this test's own process group).
    fn cycling(
        name: &str,
    ) -> (tempfile::TempDir, Layout, Journal, std::process::Child, BoardState) {
        let tmp = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir().unwrap();
        let dir = tmp.path();
        let layout = Layout::new(dir);
        fs::create_dir_all(layout.node("r1")).unwrap();
        let journal = Journal::create(&dir.join("journal.jsonl")).unwrap();
        let old = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let b = BoardState::new(&config("r1", &[]), old.id(), spec(dir));
        (tmp, layout, journal, old, b)
    }

    #[test]
    fn a_board_whose_card_reads_back_corrupt_gets_its_card_written_again() {
        let (_dir, layout, mut journal, mut old, mut b) = cycling("pi-lab-bad-card");
        let log = "[  133.683312] EXT4-fs error (device mmcblk0p2): ext4_lookup:1821: inode #4936";
        assert!(console::card_corrupted(log));
        assert!(!console::card_corrupted("EXT4-fs (mmcblk0p2): mounted filesystem"));
        let program = Path::new("/bin/true");
        let mut written = 0;
        for cycle in 1..=MAX_POWER_CYCLES {
            fs::write(layout.console_log("r1"), log).unwrap();
            let again = || {
                written += 1;
                Ok(())
            };
            power_cycle(program, &mut b, &layout, &mut journal, Cycle::BadCard, again).unwrap();
            let kept = layout.node("r1").join(format!("console-bad-card-{cycle}.log"));
            assert_eq!(fs::read_to_string(kept).unwrap(), log);
        }
        assert_eq!(written, MAX_POWER_CYCLES, "the card was not written before each power-on");
        old.wait().unwrap();
        let err = power_cycle(program, &mut b, &layout, &mut journal, Cycle::BadCard, || Ok(()))
            .unwrap_err();
        assert!(
            err.to_string().contains("r1 read its root file system back corrupt 4 times"),
            "{err}"
        );
    }

    #[test]
    fn a_board_without_its_nic_is_powered_on_again_a_few_times_then_refused() {
        let (dir, layout, mut journal, mut old, mut b) = cycling("pi-lab-power-cycle");
        b.reach(Phase::Systemd);
        // `true` stands in for qemu: only the bookkeeping is under test.
        let program = Path::new("/bin/true");
        for cycle in 1..=MAX_POWER_CYCLES {
            fs::write(layout.console_log("r1"), format!("boot {cycle}")).unwrap();
            let card = || panic!("a lost NIC needs no new card");
            power_cycle(program, &mut b, &layout, &mut journal, Cycle::NoNic, card).unwrap();
            assert_eq!((b.power_cycles, b.phase), (cycle, Phase::PoweredOn));
            assert!(b.seconds.is_empty());
            let kept = layout.node("r1").join(format!("console-no-nic-{cycle}.log"));
            assert_eq!(fs::read_to_string(kept).unwrap(), format!("boot {cycle}"));
        }
        assert!(!process_alive(old.id()), "the old emulator was not stopped");
        old.wait().unwrap();
        let journaled = crate::lab_host::journal::read(&dir.path().join("journal.jsonl")).unwrap();
        assert_eq!(journaled.len(), MAX_POWER_CYCLES as usize, "{journaled:?}");
        let err = power_cycle(program, &mut b, &layout, &mut journal, Cycle::NoNic, || Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("r1 came up without its network port 4 times"), "{err}");
    }

    #[test]
    fn a_board_that_crashed_or_is_stuck_before_it_answers_is_powered_on_again() {
        let mut b = BoardState::new(&config("r1", &[]), 0, spec(Path::new("/nonexistent")));
        b.reach(Phase::Systemd);
        let oops = "[  131.11] Internal error: Oops: 0000000096000005 [#1] SMP\n\
                    [  131.12] Call trace:\n[  131.12]  bcm2835_finish_data+0x3c/0xd8 [bcm2835]";
        let (booting, long) = (Duration::from_secs(30), STUCK_AFTER + Duration::from_secs(1));
        let fine = "[   10.04] systemd[1]: systemd 257 running";
        assert_eq!(trouble(&b, oops, booting, booting), Some(Cycle::Crashed));
        assert_eq!(trouble(&b, fine, booting, booting), None);
        assert_eq!(trouble(&b, fine, long, QUIET_FOR), Some(Cycle::Stuck));
        // Slow, but its console still grows: not stuck.
        assert_eq!(trouble(&b, fine, long, QUIET_FOR / 2), None);
        // Once the agent answers, what remains is the agent's to report.
        b.reach(Phase::AgentUp);
        assert_eq!(trouble(&b, fine, long, long), None);
        assert!(Cycle::Stuck.writes_card() && Cycle::Crashed.writes_card());
        b.power_cycles = 1;
        b.last_cycle = Some(Cycle::Crashed);
        assert!(note(&b).contains("power-cycled 1x (last: crashed)"), "{}", note(&b));
        assert_eq!(serde_json::to_value(&b).unwrap()["last_cycle"], "crashed");
    }
}
