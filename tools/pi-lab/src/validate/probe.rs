//! Looking at the data plane from outside the agents: pings between hosts
//! and sFlow datagrams arriving at the collector. No agent endpoint runs
//! commands, so pings run where pi-lab can reach the hosts itself (see
//! [`Runner`]): inside the virtual fleet's namespaces, or over SSH on boards
//! (`--ssh`).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::checks::{Check, Kind, Ping, Verdict};
use crate::runner::{Runner, UNREACHABLE};

/// A ping from a segment member, wherever the lab runs (see [`Runner`]).
/// Three echoes, and one reply is enough: the first may be lost while ARP
/// crosses the segment, which takes a while on a busy board.
pub fn ping(runner: Option<&dyn Runner>, p: &Ping) -> Check {
    let argv = argv(p);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let Some(runner) = runner else { return skip(p, UNREACHABLE.to_string()) };
    let (ok, detail) = match runner.run(&p.from_node, &argv) {
        Ok(out) => {
            let summary = out.stdout.lines().find(|l| l.contains("packet")).unwrap_or("").trim();
            let detail =
                if out.success { summary.to_string() } else { format!("no reply: {summary}") };
            (out.success, format!("{detail} {}", out.stderr.trim()).trim().to_string())
        }
        Err(e) => (false, e.to_string()),
    };
    Check {
        kind: Kind::Reachability,
        node: p.from_node.clone(),
        name: p.name(),
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        detail,
        recovery: None,
    }
}

/// `ping`'s command line. `-I` with the sender's segment address: from a
/// leaf the echo must leave its bridge address, whatever else the leaf has.
fn argv(p: &Ping) -> [String; 11] {
    let (source, address) = (p.source.to_string(), p.address.to_string());
    ["ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", "-I", &source, &address].map(String::from)
}

fn skip(p: &Ping, detail: String) -> Check {
    let node = p.from_node.clone();
    Check {
        kind: Kind::Reachability,
        node,
        name: p.name(),
        verdict: Verdict::Skip,
        detail,
        recovery: None,
    }
}

/// Counts sFlow datagrams per agent address on the collector port while it
/// lives.
#[derive(Debug)]
pub struct SflowListener {
    heard: Arc<Mutex<BTreeMap<IpAddr, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SflowListener {
    /// Listens at the lab's collector address, so validate runs of labs
    /// on other management networks do not take each other's port; on
    /// any address when this host does not have that one.
    pub fn start(collector: SocketAddr) -> io::Result<Self> {
        let socket = match UdpSocket::bind(collector) {
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, collector.port()))?
            }
            other => other?,
        };
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let heard = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (Arc::clone(&heard), Arc::clone(&stop));
        let thread = thread::Builder::new().name("sflow-listen".into()).spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, _)) = socket.recv_from(&mut buf)
                    && let Some(agent) = agent_address(&buf[..n])
                    && let Ok(mut map) = h.lock()
                {
                    *map.entry(agent).or_insert(0) += 1;
                }
            }
        })?;
        Ok(SflowListener { heard, stop, thread: Some(thread) })
    }

    pub fn heard(&self) -> BTreeMap<IpAddr, u64> {
        self.heard.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for SflowListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The agent address of an sFlow v5 datagram: version 5, then the address
/// type (1 IPv4, 2 IPv6) and the address.
pub fn agent_address(datagram: &[u8]) -> Option<IpAddr> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(datagram.get(i..i + 4)?.try_into().ok()?))
    };
    if word(0)? != 5 {
        return None;
    }
    match word(4)? {
        1 => Some(IpAddr::V4(Ipv4Addr::from(word(8)?))),
        2 => {
            let bytes: [u8; 16] = datagram.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(agent: [u8; 4]) -> Vec<u8> {
        let mut d = vec![0, 0, 0, 5, 0, 0, 0, 1];
        d.extend_from_slice(&agent);
        d.extend_from_slice(&[0; 16]);
        d
    }

    #[test]
    fn agent_addresses_come_from_the_header() {
        assert_eq!(agent_address(&datagram([10, 0, 0, 11])), Some(IpAddr::from([10, 0, 0, 11])));
        assert_eq!(agent_address(&[0, 0, 0, 4, 0, 0, 0, 1, 1, 2, 3, 4]), None, "sFlow v4");
        assert_eq!(agent_address(&[0, 0, 0, 5, 0, 0, 0, 1, 1]), None, "truncated");
    }

    #[test]
    fn listener_counts_datagrams_per_agent() {
        // An ephemeral port: bind, note it, release, listen there.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listener = SflowListener::start(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        // Another lab's collector on the same port, at another address.
        let other = UdpSocket::bind(("127.0.0.2", port));
        assert!(other.is_ok(), "the listener took the port on every address");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for agent in [[10, 0, 0, 11], [10, 0, 0, 11], [10, 0, 0, 12]] {
            sender.send_to(&datagram(agent), ("127.0.0.1", port)).unwrap();
        }
        sender.send_to(b"junk", ("127.0.0.1", port)).unwrap();
        let mut heard = BTreeMap::new();
        for _ in 0..50 {
            heard = listener.heard();
            if heard.values().sum::<u64>() == 3 {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(heard.get(&IpAddr::from([10, 0, 0, 11])), Some(&2));
        assert_eq!(heard.get(&IpAddr::from([10, 0, 0, 12])), Some(&1));
    }

    #[test]
    fn a_collector_address_this_host_lacks_is_listened_for_on_every_address() {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // TEST-NET-1: never an address of this host.
        let listener = SflowListener::start(SocketAddr::from(([192, 0, 2, 1], port)));
        assert!(listener.is_ok(), "{listener:?}");
    }

    #[test]
    fn without_fleet_or_ssh_pings_are_skipped() {
        let fleet = crate::fleet_client::tests::two_node_client();
        let p = Ping {
            segment: "blue".into(),
            from_node: "t5-nohost".into(),
            source: Ipv4Addr::new(172, 16, 10, 1).into(),
            to: "h2:eth1".into(),
            address: Ipv4Addr::new(172, 16, 10, 2).into(),
        };
        assert_eq!(argv(&p).join(" "), "ping -c 3 -i 0.2 -W 2 -q -I 172.16.10.1 172.16.10.2");
        let runner = crate::runner::choose(&fleet, None);
        assert!(runner.is_none());
        let check = ping(runner.as_deref(), &p);
        assert_eq!(check.verdict, Verdict::Skip);
        assert!(check.detail.contains("--ssh"), "{}", check.detail);
    }
}
