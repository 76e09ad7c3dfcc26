//! Zero-touch: listen for unprovisioned agents announcing themselves and
//! match them to lab nodes by board serial number or MAC.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lab_spec::NodeConfig;
use lab_spec::announce::{Announcement, same_serial};

/// An announcement and who sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub from: IpAddr,
    pub announcement: Announcement,
}

impl Heard {
    /// Where its API answers: the datagram's source beats what it claims.
    pub fn api(&self) -> SocketAddr {
        SocketAddr::new(self.from, self.announcement.api_port)
    }
}

/// Listen on `port` (0.0.0.0) for `window`; the last announcement per board.
pub fn listen(port: u16, window: Duration) -> io::Result<Vec<Heard>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    collect(&socket, window)
}

fn collect(socket: &UdpSocket, window: Duration) -> io::Result<Vec<Heard>> {
    let deadline = Instant::now() + window;
    let mut heard: BTreeMap<String, Heard> = BTreeMap::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    {
        socket.set_read_timeout(Some(left))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                break;
            }
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<Announcement>(&buf[..n]) {
            Ok(announcement) => {
                let key = format!(
                    "{}|{}",
                    announcement.serial.as_deref().unwrap_or(""),
                    announcement.mac.as_deref().unwrap_or("")
                );
                heard.insert(key, Heard { from: from.ip(), announcement });
            }
            Err(e) => tracing::debug!(%from, "not an announcement: {e}"),
        }
    }
    Ok(heard.into_values().collect())
}

/// Which heard board is which node: by serial, else by MAC.
pub fn match_boards<'a>(
    configs: &[&'a NodeConfig],
    heard: &[Heard],
) -> BTreeMap<String, (&'a NodeConfig, Heard)> {
    let mut matched = BTreeMap::new();
    for config in configs {
        let id = &config.identity;
        let found = heard.iter().find(|h| {
            let a = &h.announcement;
            let by_serial =
                matches!((&id.serial, &a.serial), (Some(x), Some(y)) if same_serial(x, y));
            let by_mac =
                matches!((&id.mac, &a.mac), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y));
            by_serial || by_mac
        });
        if let Some(h) = found {
            matched.insert(config.hostname.clone(), (*config, h.clone()));
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_client::tests::node;

    fn announcement(serial: Option<&str>, mac: Option<&str>) -> Announcement {
        Announcement {
            schema: 1,
            serial: serial.map(str::to_string),
            mac: mac.map(str::to_string),
            model: None,
            hostname: "raspberrypi".into(),
            address: Some(Ipv4Addr::new(192, 168, 200, 99)),
            api_port: 9180,
            agent_version: "0.1.0".into(),
            provisioned: false,
        }
    }

    #[test]
    fn announcements_are_collected_per_board() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for a in [
            announcement(Some("00000000a1b2c3d4"), None),
            announcement(Some("00000000a1b2c3d4"), None),
            announcement(None, Some("b8:27:eb:00:00:02")),
        ] {
            sender.send_to(&serde_json::to_vec(&a).unwrap(), addr).unwrap();
        }
        sender.send_to(b"not json", addr).unwrap();
        let heard = collect(&socket, Duration::from_millis(300)).unwrap();
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(heard.iter().all(|h| h.api() == "127.0.0.1:9180".parse().unwrap()));
    }

    #[test]
    fn boards_match_by_serial_or_mac() {
        let mut by_serial = node("leaf1", "leaf", 65001, 11, None);
        by_serial.identity.serial = Some("A1B2C3D4".into());
        let mut by_mac = node("leaf2", "leaf", 65002, 12, None);
        by_mac.identity.mac = Some("b8:27:eb:00:00:02".into());
        let mut nobody = node("leaf3", "leaf", 65003, 13, None);
        nobody.identity.serial = Some("ffff".into());
        let heard = vec![
            Heard {
                from: [192, 168, 200, 50].into(),
                announcement: announcement(Some("00000000a1b2c3d4"), None),
            },
            Heard {
                from: [192, 168, 200, 51].into(),
                announcement: announcement(None, Some("B8:27:EB:00:00:02")),
            },
        ];
        let matched = match_boards(&[&by_serial, &by_mac, &nobody], &heard);
        assert_eq!(matched.len(), 2);
        assert_eq!(matched[&by_serial.hostname].1.from, IpAddr::from([192, 168, 200, 50]));
        assert_eq!(matched[&by_mac.hostname].1.from, IpAddr::from([192, 168, 200, 51]));
    }
}
