//! A board's serial console: kept as a file under the lab's state
//! directory, read for boot phases, and followed or attached to by
//! `pi-lab lab console NODE`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How far a board's boot has come, from its console and its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The emulator runs; nothing on the console yet.
    PoweredOn,
    /// The kernel prints.
    Kernel,
    /// systemd (PID 1 of the root file system) runs.
    Systemd,
    /// node-agent answers `GET /v1/health` at the management address.
    AgentUp,
    /// The agent finished a pass of the lab's config for this node.
    Provisioned,
    /// The agent reports the node healthy (sessions up, VNIs ok).
    Healthy,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::PoweredOn,
        Phase::Kernel,
        Phase::Systemd,
        Phase::AgentUp,
        Phase::Provisioned,
        Phase::Healthy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::PoweredOn => "power",
            Phase::Kernel => "kernel",
            Phase::Systemd => "systemd",
            Phase::AgentUp => "agent up",
            Phase::Provisioned => "provisioned",
            Phase::Healthy => "healthy",
        }
    }
}

/// The boot phase the console text shows (the agent's phases are learnt
/// over the network, not here).
pub fn phase_of(log: &str) -> Phase {
    // The root file system's systemd greets with its version and the
    // distribution; the initramfs runs no systemd on Debian.
    let systemd = ["systemd[1]: ", "Welcome to Debian", "systemd 25"];
    if systemd.iter().any(|m| log.contains(m)) {
        Phase::Systemd
    } else if log.contains("Booting Linux") || log.contains("Linux version") {
        Phase::Kernel
    } else {
        Phase::PoweredOn
    }
}

/// The board booted without its NIC: qemu's emulated USB host (dwc2)
/// sometimes fails to enumerate the board's USB network device when the
/// host is busy, the kernel gives up, and the board comes up without
/// `eth0`. (A real Pi 3B's LAN9514 is soldered on and does not do this.)
pub fn nic_lost(log: &str) -> bool {
    if log.contains("register 'cdc_ether'") {
        return false;
    }
    log.contains("unable to enumerate USB device")
        || (log.contains("attempt power cycle") && phase_of(log) == Phase::Systemd)
}

/// The board's root file system reads back corrupt (the kernel logs an
/// ext4 error). Seen once on an emulated board on a busy host: a write to
/// the card file landed 12 bytes late, so the superblock and every block
/// after it read back wrong. The card is written again.
pub fn card_corrupted(log: &str) -> bool {
    log.contains("EXT4-fs error")
}

/// The board's kernel oopsed or panicked: whatever it was doing (on a
/// busy host, the emulated SD host's driver once) may never finish, and
/// the board would sit there until `lab up` gives up.
pub fn kernel_crashed(log: &str) -> bool {
    log.contains("Internal error: Oops") || log.contains("Kernel panic - not syncing")
}

/// The last `lines` lines of a console log, control characters (colour
/// codes, cursor moves) made visible rather than sent to the terminal.
pub fn tail(path: &Path, lines: usize) -> String {
    crate::image::progress::tail(path, lines)
        .lines()
        .map(|l| format!("  | {}\n", visible(l)))
        .collect()
}

fn visible(line: &str) -> String {
    line.chars()
        .filter(|c| *c != '\r')
        .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
        .collect()
}

/// Print the log, then (with `follow`) what the board prints next, until
/// Ctrl-C.
pub fn follow(path: &Path, follow: bool, stop: &dyn Fn() -> bool) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut out = io::stdout().lock();
    let mut buf = [0u8; 8192];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            out.flush()?;
            continue;
        }
        if !follow || stop() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Attach the terminal to the board's console socket: what is typed goes
/// to the board, what it prints comes back. Ctrl-] detaches (as telnet).
pub fn attach(socket: &Path) -> io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let mut from_board = stream.try_clone()?;
    let _raw = RawTerminal::enter()?;
    let printer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = io::stdout();
        while let Ok(n) = from_board.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut to_board = stream;
    let mut input = io::stdin().lock();
    let mut buf = [0u8; 256];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(at) = buf[..n].iter().position(|b| *b == 0x1d) {
            to_board.write_all(&buf[..at])?;
            break;
        }
        to_board.write_all(&buf[..n])?;
    }
    let _ = to_board.shutdown(std::net::Shutdown::Both);
    let _ = printer.join();
    Ok(())
}

/// The terminal in raw mode while attached; restored when dropped.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> io::Result<RawTerminal> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_console() {
        assert_eq!(phase_of(""), Phase::PoweredOn);
        let kernel = "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\n";
        assert_eq!(phase_of(kernel), Phase::Kernel);
        let systemd = format!(
            "{kernel}[   40.1] systemd[1]: systemd 257.9-1~deb13u1 running in system mode\n"
        );
        assert_eq!(phase_of(&systemd), Phase::Systemd);
        assert!(Phase::Provisioned > Phase::AgentUp && Phase::AgentUp > Phase::Systemd);
    }

    #[test]
    fn a_nic_the_kernel_gave_up_on_is_lost_and_a_registered_one_is_not() {
        let kernel = "[    0.0] Booting Linux on physical CPU 0x0\n";
        let gave_up = "[   53.3] usb usb1-port1: attempt power cycle\n";
        let systemd = "[  150.0] systemd[1]: systemd 257.13 running in system mode\n";
        let nic =
            "[   73.6] cdc_ether 1-1.1:1.0 eth0: register 'cdc_ether' at usb-3f980000.usb-1.1\n";
        // Still in the initramfs: the power cycle may yet bring it.
        assert!(!nic_lost(&format!("{kernel}{gave_up}")));
        assert!(nic_lost(&format!("{kernel}{gave_up}{systemd}")));
        assert!(!nic_lost(&format!("{kernel}{gave_up}{nic}{systemd}")));
        assert!(nic_lost("usb usb1-port1: unable to enumerate USB device\n"));
        assert!(!nic_lost(&format!("{kernel}{nic}{systemd}")));
    }

    #[test]
    fn the_tail_shows_the_last_lines_without_raw_control_characters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("console.log");
        std::fs::write(&log, "one\r\ntwo\r\n\x1b[0;32m  OK  \x1b[0m three\r\n").unwrap();
        let t = tail(&log, 2);
        assert_eq!(t, "  | two\n  | \u{fffd}[0;32m  OK  \u{fffd}[0m three\n");
        assert_eq!(tail(&dir.join("absent"), 5), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
