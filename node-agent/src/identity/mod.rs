//! How an unprovisioned node makes itself known.
//!
//! Which config a node starts with is the run loop's business (`agent`):
//! the systemd unit passes `/boot/firmware/pi-lab/node.toml` (written by
//! `pi-lab flash`), and a newer persisted last-good config (a later `PUT
//! /v1/config`) wins over it. With neither, the node waits for `pi-lab
//! provision` and announces itself (serial number, MAC, address, agent
//! version) as JSON over UDP, port 9181, to the broadcast address and to
//! the controller named in `/boot/firmware/pi-lab/controller` (one
//! `ADDRESS[:PORT]` per line).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lab_spec::announce::{ANNOUNCE_PORT, ANNOUNCE_SCHEMA, Announcement};
use lab_spec::health::Board;

/// Where the agent looks for its identity.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `pi-lab/` on the FAT partition: `node.toml`, `controller`,
    /// `bootstrap.sha256`.
    pub boot_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths { boot_dir: PathBuf::from("/boot/firmware/pi-lab") }
    }
}

/// Where announcements go: the limited broadcast address, and every
/// controller listed in `BOOT_DIR/controller`.
pub fn announce_targets(paths: &Paths) -> Vec<SocketAddr> {
    let mut targets = vec![SocketAddr::from((Ipv4Addr::BROADCAST, ANNOUNCE_PORT))];
    let file = paths.boot_dir.join("controller");
    if let Ok(text) = fs::read_to_string(&file) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            match parse_target(line) {
                Some(addr) => targets.push(addr),
                None => tracing::warn!(
                    "{}: {line:?} is not ADDRESS or ADDRESS:PORT; ignored",
                    file.display()
                ),
            }
        }
    }
    targets
}

fn parse_target(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, ANNOUNCE_PORT)))
}

/// What this board says about itself.
pub fn announcement(
    board: &Board,
    hostname: &str,
    api_port: u16,
    provisioned: bool,
) -> Announcement {
    Announcement {
        schema: ANNOUNCE_SCHEMA,
        serial: board.serial.clone(),
        mac: board.mac.clone(),
        model: board.model.clone(),
        hostname: hostname.to_string(),
        address: None,
        api_port,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        provisioned,
    }
}

/// The local address the kernel would send from towards `target`.
fn local_address_towards(target: SocketAddr) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.set_broadcast(true).ok()?;
    socket.connect(target).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// Announces the board every `interval` from a background thread until
/// dropped (the node got its config).
#[derive(Debug)]
pub struct Announcer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Announcer {
    pub fn start<F>(targets: Vec<SocketAddr>, interval: Duration, make: F) -> io::Result<Self>
    where
        F: Fn() -> Announcement + Send + 'static,
    {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_broadcast(true)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let inner = Arc::clone(&stop);
        let thread = thread::Builder::new().name("announce".into()).spawn(move || {
            let mut failing = vec![false; targets.len()];
            loop {
                for (target, failing) in targets.iter().zip(failing.iter_mut()) {
                    send_one(&socket, *target, &make, failing);
                }
                let (lock, cvar) = &*inner;
                let Ok(stopped) = lock.lock() else { return };
                match cvar.wait_timeout_while(stopped, interval, |s| !*s) {
                    Ok((s, _)) if !*s => {}
                    _ => return,
                }
            }
        })?;
        Ok(Announcer { stop, thread: Some(thread) })
    }
}

/// Send one announcement; a target that fails is logged when it starts
/// failing, not every interval.
fn send_one(
    socket: &UdpSocket,
    target: SocketAddr,
    make: &dyn Fn() -> Announcement,
    failing: &mut bool,
) {
    let mut message = make();
    message.address = message.address.or_else(|| local_address_towards(target));
    let result = serde_json::to_vec(&message)
        .map_err(io::Error::other)
        .and_then(|bytes| socket.send_to(&bytes, target));
    match result {
        Ok(_) => *failing = false,
        Err(e) if !*failing => {
            *failing = true;
            tracing::info!("announcing to {target}: {e}; will keep trying");
        }
        Err(_) => {}
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
            cvar.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    struct Dirs(Paths, PathBuf);

    impl Dirs {
        fn new(name: &str) -> Self {
            let root = tempfile::Builder::new().prefix(&format!("t5-identity-{name}-")).tempdir();
            let root = root.unwrap().keep();
            let paths = Paths { boot_dir: root.join("boot") };
            fs::create_dir_all(&paths.boot_dir).unwrap();
            Dirs(paths, root)
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.1);
        }
    }

    #[test]
    fn controller_file_adds_targets() {
        let d = Dirs::new("targets");
        assert_eq!(announce_targets(&d.0), vec!["255.255.255.255:9181".parse().unwrap()]);
        fs::write(
            d.0.boot_dir.join("controller"),
            "# pi-lab\n192.168.200.1\n10.9.9.9:7000\nnonsense\n",
        )
        .unwrap();
        let targets = announce_targets(&d.0);
        assert_eq!(
            targets[1..],
            ["192.168.200.1:9181".parse().unwrap(), "10.9.9.9:7000".parse().unwrap()]
        );
    }

    #[test]
    fn announcer_sends_json_until_dropped() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target = listener.local_addr().unwrap();
        let board = Board {
            serial: Some("00000000a1b2c3d4".into()),
            mac: Some("b8:27:eb:12:34:56".into()),
            ..Board::default()
        };
        let announcer = Announcer::start(vec![target], Duration::from_millis(50), move || {
            announcement(&board, "raspberrypi", 9180, false)
        })
        .unwrap();
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            let (n, _) = listener.recv_from(&mut buf).unwrap();
            let got: Announcement = serde_json::from_slice(&buf[..n]).unwrap();
            assert_eq!(got.serial.as_deref(), Some("00000000a1b2c3d4"));
            assert_eq!(got.mac.as_deref(), Some("b8:27:eb:12:34:56"));
            assert_eq!(got.address, Some(Ipv4Addr::LOCALHOST));
            assert_eq!((got.api_port, got.provisioned), (9180, false));
        }
        let stopped = Instant::now();
        drop(announcer);
        assert!(stopped.elapsed() < Duration::from_secs(1), "drop must not wait an interval");
        // Drain what was in flight, then silence.
        listener.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        while listener.recv_from(&mut buf).is_ok() {}
        assert!(listener.recv_from(&mut buf).is_err());
    }
}
