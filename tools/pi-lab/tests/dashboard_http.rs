//! `pi-lab dashboard`'s server as a client sees it, without a running lab
//! (no root needed): the page and its assets come from pi-lab and name
//! nothing elsewhere; the state, events, node details and metrics answer;
//! nodes nobody answers for are unreachable; unknown paths get 404, an
//! oversized request 431, writes 405; and the server goes on serving with
//! 500 idle connections held open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{dashboard_address, promtool_accepts};

/// A two-router lab whose agents would listen on loopback addresses where
/// nothing listens (and no request leaves the machine).
const LAB: &str = r#"
name = "t12h"
[management]
subnet = "127.77.0.0/24"
controller = "127.77.0.1"
[nodes.r1]
role = "router"
asn = 100
[nodes.r2]
role = "router"
asn = 200
[[links]]
a = "r1:eth1"
b = "r2:eth1"
"#;

struct Server {
    child: Child,
    addr: SocketAddr,
    /// The lab file and state; removed after `drop` has stopped the child.
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        // Tests run in threads of one process: each server its own directory.
        let tmp = tempfile::Builder::new().prefix("pi-lab-t12h-").tempdir().expect("temp dir");
        let dir = tmp.path();
        let file = dir.join("t12h.toml");
        std::fs::write(&file, LAB).expect("lab file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pi-lab"))
            .args(["dashboard", "--listen", "127.0.0.1:0", "--sflow", "127.0.0.1:0"])
            .args(["--timeout", "0.5"])
            .arg(&file)
            .env("PI_LAB_STATE_DIR", dir.join("state"))
            .env_remove("PI_LAB_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pi-lab dashboard");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("first line");
        Server { child, addr: dashboard_address(&line), _dir: tmp }
    }

    /// Sends `request` on a new connection; (status, head, body).
    fn send(&self, request: &[u8]) -> (u16, String, String) {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = s.write_all(request);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        self.send(request.as_bytes())
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_state_and_metrics_come_from_pi_lab_alone() {
    let server = Server::start();
    let (status, head, page) = server.get("/");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    for asset in ["/app.js", "/style.css"] {
        assert!(page.contains(&format!("\"{asset}\"")), "the page does not load {asset}");
        let (status, _, body) = server.get(asset);
        assert_eq!(status, 200, "{asset}");
        // Nothing from the network: no URL of another host to load from.
        for outside in ["src=\"http", "href=\"http", "url(http", "@import", "fetch(\"http"] {
            assert!(!body.contains(outside) && !page.contains(outside), "{asset}: {outside}");
        }
    }

    let (status, _, topology) = server.get("/api/topology");
    assert_eq!(status, 200);
    let topology: serde_json::Value = serde_json::from_str(&topology).expect("JSON");
    assert_eq!(topology["tiers"], serde_json::json!([["r1", "r2"]]));
    assert_eq!(topology["links"][0]["id"], "r1:eth1|r2:eth1");

    // Nobody listens on 127.77.0.0/24: both routers are unreachable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, state) = server.get("/api/state");
        let state: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        let nodes = &state["live"]["nodes"];
        if nodes["r1"]["condition"] == "unreachable" && nodes["r2"]["condition"] == "unreachable" {
            break;
        }
        assert!(Instant::now() < deadline, "not unreachable after 10 s: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _, r1) = server.get("/api/nodes/r1");
    assert_eq!(status, 200);
    assert!(r1.contains("\"condition\":\"unreachable\""), "{r1}");

    // Events: the current state at once.
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\n\n") || !seen.contains("event: state") {
        let n = s.read(&mut buf).expect("an event within 5 s");
        assert!(n > 0, "events closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");

    let (status, head, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(metrics.contains("pi_lab_sflow_datagrams_total 0\n"), "{metrics}");
    promtool_accepts(&metrics);
}

#[test]
fn bad_requests_get_4xx_and_idle_connections_do_not_stop_it() {
    let server = Server::start();
    for path in ["/nope", "/api/nodes/r9", "/api/nodes/", "/app.js/x", "/../etc/passwd"] {
        assert_eq!(server.get(path).0, 404, "{path}");
    }
    let mut big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100_000));
    big.extend_from_slice(b"\r\n\r\n");
    let (status, head, _) = server.send(&big);
    assert_eq!(status, 431, "{head}");
    let long = format!("GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(70_000));
    let (status, head, _) = server.send(long.as_bytes());
    assert!((400..500).contains(&status), "a 70 kB path: {head}");
    let put = b"PUT /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (status, head, _) = server.send(put);
    assert_eq!(status, 405, "{head}");
    let (status, head, _) =
        server.send(b"GET / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 421, "{head}");
    let (status, head, _) = server.send(b"\x16\x03\x01\x02\x00 not http\r\n\r\n");
    assert_eq!(status, 400, "{head}");

    // 500 idle connections: some silent, some halfway through a request.
    let rss_before = server.rss_kib();
    let idle: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).expect("an idle connection");
            if i % 2 == 0 {
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    for path in ["/", "/api/state", "/metrics"] {
        assert_eq!(server.get(path).0, 200, "{path} with 500 idle connections");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "slow: {:?}", started.elapsed());
    let rss = server.rss_kib();
    eprintln!("RSS {rss_before} KiB, with 500 idle connections {rss} KiB");
    assert!(rss < 30 * 1024, "RSS {rss} KiB with 500 idle connections");
    drop(idle);
    assert_eq!(server.get("/").0, 200);
}
