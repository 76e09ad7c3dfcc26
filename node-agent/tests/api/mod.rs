//! A management API server on loopback in front of a [`MemoryBackend`],
//! and a raw HTTP client for it: what the API tests share.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lab_spec::fixtures;
use lab_spec::health::{BgpNeighborState, Board, ReconcileState, SflowState, System, VniState};
use lab_spec::node_config::Auth;
use lab_spec::{HealthReport, NodeConfig};
use node_agent::health::memory::MemoryBackend;
use node_agent::health::{Backend, ReconcileStats, Server, ServerConfig};

pub const TOKEN: &str = "t5-lab-token";

/// The report every test agent serves (identity filled in from its config).
pub fn template() -> HealthReport {
    let board = Board {
        model: Some("Raspberry Pi 3 Model B Rev 1.2".into()),
        serial: Some("00000000a1b2c3d4".into()),
        mac: Some("b8:27:eb:12:34:56".into()),
        soc_temperature_celsius: Some(51.5),
        under_voltage: Some(false),
        throttled: None,
    };
    HealthReport {
        schema: 1,
        node: None,
        lab: None,
        role: None,
        agent_version: "0.1.0".into(),
        board,
        system: System {
            hostname: "leaf1".into(),
            uptime_seconds: 4242,
            load: [0.5, 0.25, 0.125],
            memory_total_bytes: 967_221_248,
            memory_available_bytes: 700_000_000,
            disk_total_bytes: 30_000_000_000,
            disk_available_bytes: 20_000_000_000,
        },
        bgp: vec![
            BgpNeighborState {
                address: Ipv4Addr::new(10, 1, 0, 0),
                remote_asn: 65000,
                description: "spine1".into(),
                state: "Established".into(),
                established: true,
                uptime_seconds: Some(300),
                prefixes_received: Some(7),
                interface: None,
            },
            BgpNeighborState {
                address: Ipv4Addr::new(10, 1, 0, 2),
                remote_asn: 65000,
                description: "spine \"2\"".into(),
                state: "Active".into(),
                established: false,
                uptime_seconds: None,
                prefixes_received: None,
                interface: None,
            },
        ],
        ospf: vec![],
        isis: vec![],
        ospf6: vec![],
        vxlan: vec![VniState {
            vni: 10010,
            device: "vxlan10010".into(),
            device_up: true,
            bridge: "br10010".into(),
            flooding: "static".into(),
            remote_vteps: vec![Ipv4Addr::new(10, 0, 0, 3)],
            expected_vteps: vec![Ipv4Addr::new(10, 0, 0, 3)],
            ok: true,
        }],
        sflow: SflowState {
            enabled: true,
            collectors: vec!["192.168.200.1:6343".into()],
            datagrams_sent: 123,
            counter_samples_sent: 456,
            flow_samples_sent: 0,
            send_errors: 2,
            sampling_rate: 0,
            sampling_interfaces: Vec::new(),
        },
        reconcile: ReconcileState {
            config_version: None,
            last_run_age_seconds: Some(3),
            missing_ports: Vec::new(),
            ok: true,
            changes: 0,
            passes: 17,
            errors: vec![],
        },
        frr_hand_changes: Vec::new(),
        impairments: Vec::new(),
        healthy: false,
        problems: vec!["neighbour 10.1.0.2 (spine \"2\") is Active".into()],
    }
}

pub fn backend(config: Option<NodeConfig>) -> Arc<MemoryBackend> {
    let stats = ReconcileStats {
        passes_total: 17,
        errors_total: 3,
        last_success_unix: Some(1_700_000_000),
        last_duration_seconds: Some(0.042),
    };
    Arc::new(MemoryBackend::new(config, template(), stats))
}

/// A leaf of lab `t5` with no links, exporting sFlow counters of eth1
/// to the controller, that takes `token`.
pub fn node_config(hostname: &str, token: &str) -> NodeConfig {
    let mut cfg = fixtures::bare(hostname, "192.168.200.11/24");
    cfg.lab = "t5".into();
    cfg.role = lab_spec::Role::Leaf;
    cfg.identity.serial = Some("a1b2c3d4".into());
    cfg.sflow.collectors = vec![fixtures::to_controller(&cfg)];
    cfg.sflow.agent_address = fixtures::addr("10.0.0.1");
    cfg.sflow.interfaces = vec!["eth1".into()];
    cfg.auth = Auth::from_token(token);
    cfg.with_version()
}

pub struct Running {
    pub server: Option<Server>,
    pub backend: Arc<MemoryBackend>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }
}

pub fn start(config: Option<NodeConfig>, tweak: impl FnOnce(&mut ServerConfig)) -> Running {
    let backend = backend(config);
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.bootstrap_files = vec![PathBuf::from("/nonexistent/t5/bootstrap.sha256")];
    tweak(&mut cfg);
    let server = Server::start(cfg, backend.clone() as Arc<dyn Backend>).unwrap();
    Running { server: Some(server), backend }
}

pub fn provisioned() -> Running {
    start(Some(node_config("leaf1", TOKEN)), |_| {})
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub fn send(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(raw).unwrap();
    read_answer(&mut stream)
}

pub fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Answer { status, head: head.to_string(), body: body.to_string() }
}

pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    send(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())
}

pub fn put(addr: SocketAddr, token: Option<&str>, content_type: &str, body: &str) -> Answer {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let raw = format!(
        "PUT /v1/config HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send(addr, raw.as_bytes())
}
