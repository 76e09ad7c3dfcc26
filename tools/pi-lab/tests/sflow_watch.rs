//! `pi-lab sflow watch` as users run it: datagrams from the node-agent
//! encoder give rates and top flows; truncated, oversized, malformed and
//! random datagrams are counted and skipped, and the collector keeps going;
//! with the lab, interfaces are named after their node and link; with
//! `--prometheus`, the same figures are served as metrics.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use node_agent::sflow::datagram::{CounterSample, DataSource, FlowSample, HOST_SOURCE, Packer};
use node_agent::sflow::records::{
    CounterRecord, HostDescr, IfCounters, InterfaceRecords, MachineType, OS_LINUX, SampledHeader,
};
use serde_json::Value;

mod common;
use common::promtool_accepts;

const AGENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A UDP echo request 10.1.0.2:5000 -> 10.1.0.1:53 in an Ethernet frame.
fn udp_frame() -> Vec<u8> {
    let mut h = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    h.extend_from_slice(&[
        0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 1, 0, 1,
    ]);
    h.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0x05, 0xc8, 0, 0]);
    h
}

/// Two polls 2 s apart (agent uptime) plus one flow datagram, from `agent`
/// whose ifIndex 3 is eth1.
fn datagrams_from(agent: IpAddr) -> Vec<Vec<u8>> {
    let mut packer = Packer::new(agent, 0);
    let poll = |seq: u32, octets: u64, packets: u32| {
        let ifc = IfCounters {
            if_index: 3,
            if_type: 6,
            if_status: 3,
            if_in_octets: octets,
            if_in_ucast_pkts: packets,
            if_out_octets: octets / 2,
            if_in_errors: 4,
            ..IfCounters::default()
        };
        let host = CounterRecord::HostDescr(HostDescr {
            hostname: "leaf1".into(),
            uuid: [0; 16],
            machine_type: MachineType::Arm,
            os_name: OS_LINUX,
            os_release: "6.12".into(),
        });
        let records = InterfaceRecords { counters: ifc, name: "eth1".into() }.records();
        vec![
            CounterSample { sequence: seq, source: DataSource::interface(3), records }.encode(),
            CounterSample { sequence: seq, source: HOST_SOURCE, records: vec![host] }.encode(),
        ]
    };
    let flow = FlowSample {
        sequence: 1,
        source: DataSource::interface(3),
        sampling_rate: 100,
        sample_pool: 100,
        drops: 0,
        input: 3,
        output: 0,
        header: SampledHeader {
            header_protocol: 1,
            frame_length: 1518,
            stripped: 4,
            header: udp_frame(),
        },
    };
    let mut out = packer.pack(&poll(1, 1_000_000, 1000), 10_000).expect("fits");
    out.extend(packer.pack(&[flow.encode()], 11_000).expect("fits"));
    out.extend(packer.pack(&poll(2, 1_250_000, 1500), 12_000).expect("fits"));
    out
}

fn valid_datagrams() -> Vec<Vec<u8>> {
    datagrams_from(AGENT)
}

/// xorshift64*: reproducible noise without a crate.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn watch_shows_rates_and_flows_and_survives_bad_datagrams() {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_pi-lab"))
        .args(["sflow", "watch", "--json", "--refresh", "0.5", "--duration", "6", "--top", "3"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pi-lab");
    std::thread::sleep(Duration::from_millis(700));
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let dest = format!("127.0.0.1:{port}");
    let send = |d: &[u8]| {
        tx.send_to(d, &dest).expect("send");
        std::thread::sleep(Duration::from_micros(200));
    };

    let valid = valid_datagrams();
    for d in &valid {
        send(d);
    }
    // Let a snapshot of the clean state be printed before the noise.
    std::thread::sleep(Duration::from_millis(1200));
    // Every proper prefix of every valid datagram is truncated.
    let mut truncated = 0;
    for d in &valid {
        for k in (0..d.len()).step_by(3) {
            send(&d[..k]);
            truncated += 1;
        }
    }
    send(&vec![0u8; 10_000]);
    // Random bytes behind a v5 header, and bit flips in valid datagrams:
    // they may decode, be truncated or malformed, but each is counted once.
    let mut noise = Noise(0x5eed_1234_abcd_0001);
    let mut random = 0;
    for i in 0..2000 {
        let mut d = valid[i % valid.len()].clone();
        if i % 2 == 0 {
            let len = 4 + (noise.next() % 600) as usize;
            d = (0..len).map(|_| noise.next() as u8).collect();
            d[..4].copy_from_slice(&[0, 0, 0, 5]);
        } else {
            for _ in 0..1 + noise.next() % 4 {
                let at = (noise.next() as usize) % d.len();
                d[at] ^= 1 << (noise.next() % 8);
            }
        }
        send(&d);
        random += 1;
    }
    let out = child.wait_with_output().expect("pi-lab runs");
    assert!(out.status.success(), "pi-lab failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();

    let summary = lines.iter().rev().find(|v| v["type"] == "summary").expect("summary line");
    let skipped = &summary["skipped"];
    let counted = summary["datagrams"].as_u64().unwrap_or(0)
        + skipped["truncated"].as_u64().unwrap_or(0)
        + skipped["malformed"].as_u64().unwrap_or(0)
        + skipped["oversized"].as_u64().unwrap_or(0);
    assert_eq!(counted, (valid.len() + truncated + 1 + random) as u64, "{summary}");
    assert_eq!(skipped["oversized"], 1);
    assert!(skipped["truncated"].as_u64().unwrap_or(0) >= truncated as u64, "{summary}");
    assert!(skipped["malformed"].as_u64().unwrap_or(0) > 0, "{summary}");

    // The valid datagrams: rates over 2 s of agent uptime, the top flow.
    let iface = lines
        .iter()
        .find(|v| {
            v["type"] == "interface"
                && v["node"] == "leaf1"
                && v["if_index"] == 3
                && !v["rates"].is_null()
        })
        .expect("interface line with rates for leaf1");
    assert_eq!(iface["ifname"], "eth1");
    assert_eq!(iface["rates"]["in_bps"], 250_000.0 * 8.0 / 2.0);
    assert_eq!(iface["rates"]["in_pps"], 250.0);
    assert_eq!(iface["in_errors"], 4);
    let flow =
        lines.iter().find(|v| v["type"] == "flow" && v["src"] == "10.1.0.2").expect("flow line");
    assert_eq!((flow["dst"].as_str(), flow["proto"].as_str()), (Some("10.1.0.1"), Some("udp")));
    assert_eq!((flow["src_port"].as_u64(), flow["dst_port"].as_u64()), (Some(5000), Some(53)));
    assert_eq!(flow["input"], "eth1");
}

/// `GET path` on a local server; the body of a 200 answer.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{answer}");
    body.to_string()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn watch_names_lab_links_and_serves_metrics() {
    let fabric = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fabric.toml");
    let lab = pi_lab::lab_file::LabFile::load(std::path::Path::new(fabric)).expect("fabric");
    let leaf1 = IpAddr::V4(lab.plan.nodes["leaf1"].sflow_agent());
    let (port, http) = (free_port(), free_tcp_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pi-lab"))
        .args(["sflow", "watch", "--refresh", "0.5", "--duration", "4", "--lab", fabric])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--prometheus", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pi-lab");
    std::thread::sleep(Duration::from_millis(700));
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    for d in datagrams_from(leaf1) {
        tx.send_to(&d, ("127.0.0.1", port)).expect("send");
    }
    std::thread::sleep(Duration::from_millis(300));
    let metrics = get(http, "/metrics");
    let labels = format!("agent=\"{leaf1}\",node=\"leaf1\",ifname=\"eth1\"");
    for want in [
        format!("pi_lab_sflow_interface_in_octets_total{{{labels}}} 1250000\n"),
        format!("pi_lab_sflow_interface_out_octets_total{{{labels}}} 625000\n"),
        format!("pi_lab_sflow_interface_in_packets_total{{{labels}}} 1500\n"),
        format!("pi_lab_sflow_interface_in_errors_total{{{labels}}} 4\n"),
        "pi_lab_sflow_datagrams_total 3\n".to_string(),
    ] {
        assert!(metrics.contains(&want), "no {want:?} in\n{metrics}");
    }
    assert!(
        metrics.lines().any(|l| l.starts_with("pi_lab_sflow_flow_bytes_per_second{")
            && l.contains(
                "src=\"10.1.0.2\",dst=\"10.1.0.1\",proto=\"udp\",src_port=\"5000\",dst_port=\"53\""
            )),
        "{metrics}"
    );
    promtool_accepts(&metrics);

    let out = child.wait_with_output().expect("pi-lab runs");
    assert!(out.status.success(), "pi-lab failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("leaf1:eth1") && l.contains(" up "))
        .expect("an interface row for leaf1:eth1");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..4], ["leaf1:eth1", "spine1:eth1", &leaf1.to_string(), "3"], "{text}");
}

#[test]
fn watch_explains_a_port_in_use() {
    let busy = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr");
    let out = Command::new(env!("CARGO_BIN_EXE_pi-lab"))
        .args(["sflow", "watch", "--duration", "1", "--listen", &addr.to_string()])
        .output()
        .expect("run pi-lab");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen for sFlow on {addr}")), "{err}");
}
