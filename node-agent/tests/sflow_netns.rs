//! The exporter in network namespaces of its own: a veth pair between an
//! "agent" namespace and a "peer" namespace, and a collector socket on the
//! agent's loopback whose datagrams tshark reads afterwards. Checks that interface counters agree
//! with the kernel's within one polling interval, that tshark's sFlow
//! dissector reads the same datagrams as sflow-parser, that flow samples
//! appear under traffic with sampling on, and that they stop (and the
//! nftables table goes, other tables untouched) when sampling is set to 0,
//! and that two collectors receive the same datagrams.
//!
//! Needs root, `ip`, `nft`, `tshark`, `text2pcap`, `ping`. Namespaces: `t4-ag-PID`,
//! `t4-pr-PID`, removed even when the test fails.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::prerequisites;
use lab_spec::node_config::Sflow;
use node_agent::sflow::{Exporter, HostInfo};
use sflow_parser::models::{CounterData, FlowData, SampleData};

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair `lab1`, removed on drop.
struct Lab {
    agent: String,
    peer: String,
}

impl Lab {
    fn new() -> Self {
        let pid = std::process::id();
        let lab = Lab { agent: format!("t4-ag-{pid}"), peer: format!("t4-pr-{pid}") };
        for ns in [&lab.agent, &lab.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // No IPv6 neighbour discovery chatter on the counters.
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        sh(&[
            "ip", "-n", &lab.agent, "link", "add", "lab1", "type", "veth", "peer", "name", "lab1",
            "netns", &lab.peer,
        ]);
        sh(&["ip", "-n", &lab.agent, "addr", "add", "10.44.0.1/24", "dev", "lab1"]);
        sh(&["ip", "-n", &lab.peer, "addr", "add", "10.44.0.2/24", "dev", "lab1"]);
        sh(&["ip", "-n", &lab.agent, "link", "set", "lab1", "up"]);
        sh(&["ip", "-n", &lab.peer, "link", "set", "lab1", "up"]);
        lab
    }

    fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        sh(&full)
    }

    fn counter(&self, name: &str) -> u64 {
        let path = format!("/sys/class/net/lab1/statistics/{name}");
        self.exec(&self.agent, &["cat", &path]).trim().parse().expect("counter value")
    }

    fn tables(&self) -> String {
        self.exec(&self.agent, &["nft", "list", "tables"])
    }

    fn flood(&self, count: u32) {
        self.exec(&self.peer, &["ping", "-q", "-f", "-c", &count.to_string(), "10.44.0.1"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.agent, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`; threads
/// `f` starts stay in it.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        // SAFETY: setns on a valid namespace descriptor, affecting only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// The collector: a UDP socket that keeps every datagram it received, so
/// tshark can later read exactly those bytes.
struct Collector {
    sock: UdpSocket,
    seen: Vec<Vec<u8>>,
}

impl Collector {
    fn bind(addr: &str) -> Self {
        let sock = UdpSocket::bind(addr).expect("collector socket");
        sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        Collector { sock, seen: Vec::new() }
    }

    fn collect(&mut self, for_how_long: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + for_how_long;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                assert!(n <= 1400, "datagram of {n} bytes");
                out.push(buf[..n].to_vec());
            }
        }
        self.seen.extend(out.iter().cloned());
        out
    }
}

/// Wireshark's own tools read `datagrams`: text2pcap wraps each in UDP to
/// port 6343 and tshark prints `fields`. A live capture would be a second
/// witness that can drop packets on a loaded machine (CI saw 281 of 311
/// flow samples); this one sees exactly what the collector got.
fn tshark_fields(datagrams: &[Vec<u8>], fields: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hex, pcap) = (dir.path().join("datagrams.txt"), dir.path().join("datagrams.pcap"));
    let mut text = String::new();
    for d in datagrams {
        for (i, chunk) in d.chunks(16).enumerate() {
            let bytes: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            text.push_str(&format!("{:06x} {}\n", i * 16, bytes.join(" ")));
        }
    }
    std::fs::write(&hex, text).expect("write hex dump");
    let (hex, pcap) = (hex.to_string_lossy(), pcap.to_string_lossy());
    sh(&["text2pcap", "-q", "-4", "10.44.0.1,127.0.0.1", "-u", "50000,6343", &hex, &pcap]);
    let mut args = vec!["tshark", "-r", &pcap, "-d", "udp.port==6343,sflow", "-T", "fields"];
    args.extend(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        args.extend(["-e", f]);
    }
    let out = sh(&args);
    assert_eq!(out.lines().count(), datagrams.len(), "tshark read every datagram");
    out
}

#[derive(Debug, Default)]
struct Decoded {
    /// (datagram sequence, ifInOctets, ifOutOctets) of lab1 counter samples.
    lab1_counters: Vec<(u32, u64, u64)>,
    /// The port name (0:1005) that came with each lab1 counter sample.
    lab1_names: Vec<String>,
    flow_samples: usize,
    /// Flow samples whose header is Ethernet + IPv4 ICMP arriving on lab1.
    icmp_on_lab1: usize,
    host_samples: usize,
}

fn decode(datagrams: &[Vec<u8>], lab1: u32, rate: u32) -> Decoded {
    let mut d = Decoded::default();
    for bytes in datagrams {
        let dg = sflow_parser::parse_datagram(bytes).expect("sflow-parser decodes every datagram");
        for s in &dg.samples {
            match &s.sample_data {
                SampleData::CountersSampleExpanded(c) => {
                    if (c.source_id.source_id_type, c.source_id.source_id_index) == (0, lab1) {
                        // As hsflowd: the counters, then the port name.
                        assert_eq!(c.counters.len(), 2, "{c:?}");
                        if let CounterData::OpenFlowPortName(p) = &c.counters[1].counter_data {
                            d.lab1_names.push(p.port_name.clone());
                        }
                    }
                    for r in &c.counters {
                        match &r.counter_data {
                            CounterData::GenericInterface(g) if g.if_index == lab1 => {
                                d.lab1_counters.push((
                                    dg.sequence_number,
                                    g.if_in_octets,
                                    g.if_out_octets,
                                ));
                            }
                            CounterData::HostDescription(_) => d.host_samples += 1,
                            _ => {}
                        }
                    }
                }
                SampleData::FlowSample(f) => {
                    d.flow_samples += 1;
                    assert_eq!(f.sampling_rate, rate);
                    if let FlowData::SampledHeader(h) = &f.flow_records[0].flow_data {
                        let icmp = h.header.len() > 23
                            && h.header[12..14] == [0x08, 0x00]
                            && h.header[23] == 1;
                        if icmp && f.input.value() == lab1 && h.frame_length == 14 + 84 + 4 {
                            d.icmp_on_lab1 += 1;
                        }
                    }
                }
                other => panic!("unexpected sample {other:?}"),
            }
        }
    }
    d
}

#[test]
fn exporter_in_a_network_namespace_agrees_with_the_kernel_and_tshark() {
    if !prerequisites(
        "exporter_in_a_network_namespace",
        &["ip", "nft", "tshark", "text2pcap", "ping"],
    ) {
        return;
    }
    let lab = Lab::new();
    // A table someone else owns: the exporter must leave it alone.
    lab.exec(&lab.agent, &["nft", "add", "table", "inet", "t4_foreign"]);
    let lab1: u32 = lab
        .exec(&lab.agent, &["cat", "/sys/class/net/lab1/ifindex"])
        .trim()
        .parse()
        .expect("ifindex");

    let mut cfg = Sflow {
        collectors: vec!["127.0.0.1:6343".parse().expect("addr")],
        polling_interval: 1,
        sampling_rate: 10,
        agent_address: IpAddr::V4(Ipv4Addr::new(10, 44, 0, 1)),
        interfaces: vec!["lab1".into()],
    };
    let start_cfg = cfg.clone();
    let (mut sock, handle) = in_netns(&lab.agent, move || {
        let sock = Collector::bind("127.0.0.1:6343");
        let handle = Exporter::start(&start_cfg, HostInfo::detect()).expect("exporter starts");
        (sock, handle)
    });
    assert!(lab.tables().contains("table netdev node_agent_sflow"), "{}", lab.tables());
    // A second exporter cannot take the NFLOG group, and says why.
    let second = cfg.clone();
    let err =
        in_netns(&lab.agent, move || Exporter::start(&second, HostInfo::detect()).map(|_| ()))
            .expect_err("the NFLOG group is taken");
    assert!(err.to_string().contains("another program such as hsflowd"), "{err}");

    // Sampling on: 3000 echo requests in, about 300 sampled.
    lab.flood(3000);
    let d = decode(&sock.collect(Duration::from_millis(2500)), lab1, 10);
    assert!(
        (120..=600).contains(&d.flow_samples),
        "{} flow samples for 3000 packets at 1-in-10",
        d.flow_samples
    );
    assert!(
        d.icmp_on_lab1 * 10 >= d.flow_samples * 9,
        "{} of {} samples are the pings",
        d.icmp_on_lab1,
        d.flow_samples
    );
    assert!(d.host_samples >= 2, "host samples every interval");

    // Counters vs the kernel, within one polling interval.
    let before = (lab.counter("rx_bytes"), lab.counter("tx_bytes"));
    std::thread::sleep(Duration::from_millis(1200));
    sock.collect(Duration::from_millis(10));
    let fresh = loop {
        let d = decode(&sock.collect(Duration::from_millis(300)), lab1, 10);
        if let Some(c) = d.lab1_counters.first() {
            break *c;
        }
    };
    let after = (lab.counter("rx_bytes"), lab.counter("tx_bytes"));
    assert!(
        before.0 <= fresh.1 && fresh.1 <= after.0,
        "ifInOctets {} not in kernel [{}, {}]",
        fresh.1,
        before.0,
        after.0
    );
    assert!(
        before.1 <= fresh.2 && fresh.2 <= after.1,
        "ifOutOctets {} not in kernel [{}, {}]",
        fresh.2,
        before.1,
        after.1
    );
    assert!(fresh.1 > 3000 * 98, "the flood is counted: {}", fresh.1);
    assert!(!d.lab1_names.is_empty(), "no port name with lab1's counters");
    assert!(d.lab1_names.iter().all(|n| n == "lab1"), "port names {:?}", d.lab1_names);

    // Sampling off: the table goes, flow samples stop, counters go on.
    cfg.sampling_rate = 0;
    handle.reconfigure(&cfg).expect("reconfigure");
    let tables = lab.tables();
    assert!(!tables.contains("node_agent_sflow"), "{tables}");
    assert!(tables.contains("t4_foreign"), "{tables}");
    sock.collect(Duration::from_millis(500));
    lab.flood(3000);
    let off = decode(&sock.collect(Duration::from_millis(2000)), lab1, 0);
    assert_eq!(off.flow_samples, 0);
    assert!(!off.lab1_counters.is_empty(), "counter samples go on with sampling off");

    // Two collectors get the same datagram stream.
    let mut sock2 = in_netns(&lab.agent, || Collector::bind("127.0.0.1:6344"));
    cfg.collectors.push("127.0.0.1:6344".parse().expect("addr"));
    handle.reconfigure(&cfg).expect("reconfigure");
    sock.collect(Duration::from_millis(50));
    let other = std::thread::spawn(move || sock2.collect(Duration::from_millis(2500)));
    let first = sock.collect(Duration::from_millis(2500));
    let second = other.join().expect("collector thread");
    let seqs = |d: &[Vec<u8>]| -> Vec<u32> {
        d.iter()
            .map(|b| sflow_parser::parse_datagram(b).expect("decodes").sequence_number)
            .collect()
    };
    let (a, b) = (seqs(&first), seqs(&second));
    assert!(a.len() >= 2, "{a:?}");
    // The two windows open and close a little apart (more so on a loaded
    // machine): where they overlap, both collectors got the same datagrams.
    let inside =
        |s: &u32, d: &[u32]| d.first().is_some_and(|f| s >= f) && d.last().is_some_and(|l| s <= l);
    assert!(
        a.iter().any(|s| b.contains(s))
            && b.iter().filter(|s| inside(s, &a)).all(|s| a.contains(s))
            && a.iter().filter(|s| inside(s, &b)).all(|s| b.contains(s)),
        "{a:?} vs {b:?}"
    );
    assert!(a.windows(2).all(|w| w[1] == w[0] + 1), "datagram sequence without gaps: {a:?}");

    let stats = handle.stats();
    assert!(
        stats.flow_samples_sent >= d.flow_samples as u64 && stats.counter_samples_sent > 0,
        "{stats:?}"
    );
    assert_eq!(stats.send_errors, 0);
    handle.stop();
    assert!(lab.tables().contains("t4_foreign"));

    // tshark reads the same datagrams: every interface counter sample and
    // flow sample sflow-parser saw (host structures are unknown to
    // Wireshark 4.0's dissector; the Rust decoders check those). It does
    // not know the port name either, but skips it by its length: the
    // datagrams with interface samples are not malformed.
    let fields = tshark_fields(
        &sock.seen,
        &[
            "sflow_245.sequence_number",
            "sflow_245.ifindex",
            "sflow_245.ifinoct",
            "sflow.flow_sample.input_interface",
            "sflow_245.counters_record_format",
            "_ws.malformed",
        ],
    );
    let mut tshark_flows = 0;
    let mut tshark_counters = Vec::new();
    let mut tshark_port_names = 0;
    for line in fields.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let seq: u32 = cols[0].parse().expect("sequence");
        let idx: Vec<&str> = cols
            .get(1)
            .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let oct: Vec<&str> = cols
            .get(2)
            .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        for (i, o) in idx.iter().zip(&oct) {
            if i.parse::<u32>() == Ok(lab1) {
                tshark_counters.push((seq, o.parse::<u64>().expect("octets")));
            }
        }
        tshark_flows +=
            cols.get(3).map(|c| c.split(',').filter(|s| !s.is_empty()).count()).unwrap_or(0);
        if !idx.is_empty() {
            assert_eq!(cols.get(5).copied().unwrap_or(""), "", "tshark: malformed {line:?}");
            let formats = cols.get(4).copied().unwrap_or("");
            tshark_port_names += formats.split(',').filter(|f| *f == "1005").count();
        }
    }
    let all = decode(&sock.seen, lab1, 10);
    assert_eq!(
        tshark_port_names,
        all.lab1_names.len(),
        "port name records: tshark against sflow-parser"
    );
    assert_eq!(tshark_flows, all.flow_samples, "flow samples: tshark against sflow-parser");
    assert!(
        tshark_counters.contains(&(fresh.0, fresh.1)),
        "tshark saw {tshark_counters:?}, not {fresh:?}"
    );
}
