//! The management API over real TCP on loopback, against a test backend.
#![allow(clippy::unwrap_used)]

mod api;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::*;
use lab_spec::node_config::Auth;
use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};
use node_agent::health::{Backend, ServerConfig};

#[test]
fn health_is_the_backends_report() {
    let r = provisioned();
    let answer = get(r.addr(), "/v1/health", None);
    assert_eq!(answer.status, 200);
    assert!(answer.head.contains("Content-Type: application/json"));
    let report: HealthReport = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(report, r.backend.health());
}

#[test]
fn metrics_parse_with_an_independent_parser() {
    let r = provisioned();
    let answer = get(r.addr(), "/metrics", None);
    assert_eq!(answer.status, 200);
    assert!(answer.head.contains("text/plain; version=0.0.4"), "{}", answer.head);
    let lines = answer.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();

    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no sample {name} {label:?} in\n{}", answer.body));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        }
    };
    let report = r.backend.health();
    assert_eq!(value("pilab_soc_temperature_celsius", None), 51.5);
    assert_eq!(value("pilab_under_voltage", None), 0.0);
    assert_eq!(value("pilab_uptime_seconds", None), report.system.uptime_seconds as f64);
    assert_eq!(value("pilab_load_average", Some(("period", "5m"))), 0.25);
    assert_eq!(value("pilab_memory_available_bytes", None), 700_000_000.0);
    assert_eq!(value("pilab_bgp_neighbor_established", Some(("neighbor", "10.1.0.0"))), 1.0);
    assert_eq!(value("pilab_bgp_neighbor_established", Some(("neighbor", "10.1.0.2"))), 0.0);
    // Quotes in labels are escaped (promtool_accepts_the_metrics checks the syntax).
    assert!(answer.body.contains(r#"description="spine \"2\"",state="Active""#), "{}", answer.body);
    assert_eq!(value("pilab_bgp_neighbor_prefixes_received", Some(("neighbor", "10.1.0.0"))), 7.0);
    assert_eq!(value("pilab_bgp_neighbors_established", None), 1.0);
    assert_eq!(value("pilab_vxlan_vni_ok", Some(("vni", "10010"))), 1.0);
    assert_eq!(value("pilab_vxlan_remote_vteps", Some(("vni", "10010"))), 1.0);
    assert_eq!(value("pilab_sflow_datagrams_sent_total", None), 123.0);
    assert_eq!(value("pilab_sflow_send_errors_total", None), 2.0);
    assert_eq!(value("pilab_sflow_samples_sent_total", Some(("kind", "counter"))), 456.0);
    assert_eq!(value("pilab_reconcile_errors_total", None), 3.0);
    assert_eq!(value("pilab_reconcile_last_duration_seconds", None), 0.042);
    assert_eq!(value("pilab_healthy", None), 0.0);
    // Unknown facts are absent, not zero.
    assert!(!answer.body.contains("pilab_throttled "), "{}", answer.body);

    // Conventions: every family has HELP and TYPE, counters end in _total.
    for line in answer.body.lines().filter(|l| l.starts_with("# TYPE")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields[2].starts_with("pilab_"), "{line}");
        assert!(answer.body.contains(&format!("# HELP {} ", fields[2])), "{line} has no HELP");
        if fields[3] == "counter" {
            assert!(fields[2].ends_with("_total"), "{line}");
        }
    }
    // The second scrape counts the first.
    let again = get(r.addr(), "/metrics", None);
    assert!(again.body.contains("pilab_http_requests_total{code=\"200\"} 1"), "{}", again.body);
}

#[test]
fn promtool_accepts_the_metrics() {
    let Ok(output) = std::process::Command::new("promtool").arg("--version").output() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("promtool missing; run scripts/setup.sh");
        }
        eprintln!("SKIP promtool_accepts_the_metrics: promtool missing; run scripts/setup.sh");
        return;
    };
    assert!(output.status.success());
    let r = provisioned();
    let body = get(r.addr(), "/metrics", None).body;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{body}");
}

#[test]
fn missing_or_wrong_token_is_refused_and_nothing_changes() {
    let r = provisioned();
    let before = r.backend.current_version();
    let new = node_config("leaf9", TOKEN).to_toml().unwrap();
    for token in [None, Some("wrong"), Some("t5-lab-toke"), Some("")] {
        let answer = put(r.addr(), token, "application/toml", &new);
        assert_eq!(answer.status, 401, "token {token:?}: {}", answer.body);
        assert!(answer.head.contains("WWW-Authenticate: Bearer"), "{}", answer.head);
        let get_answer = get(r.addr(), "/v1/config", token);
        assert_eq!(get_answer.status, 401);
    }
    assert_eq!(r.backend.applied().len(), 0);
    assert_eq!(r.backend.current_version(), before);
}

#[test]
fn a_good_config_applies_as_toml_or_json() {
    let r = provisioned();
    let toml = node_config("leaf2", TOKEN).to_toml().unwrap();
    let answer = put(r.addr(), Some(TOKEN), "application/toml", &toml);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        ConfigAnswer::from_http(answer.status, &answer.body),
        Ok(ConfigAnswer::Applied { version: node_config("leaf2", TOKEN).version, changes: 5 })
    );

    // The new config carries a new token: the old one stops working.
    let next = node_config("leaf3", "rotated");
    let answer =
        put(r.addr(), Some(TOKEN), "application/json", &serde_json::to_string(&next).unwrap());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(get(r.addr(), "/v1/config", Some(TOKEN)).status, 401);
    let current = get(r.addr(), "/v1/config", Some("rotated"));
    assert_eq!(current.status, 200);
    let current: NodeConfig = serde_json::from_str(&current.body).unwrap();
    assert_eq!(current, next);
}

#[test]
fn malformed_configs_get_400_with_reasons() {
    let r = provisioned();
    let cases = [
        ("application/toml", "schema = 1\nhostname = [".to_string()),
        ("application/json", "{\"schema\": 1}".to_string()),
        ("application/toml", node_config("bad_name!", TOKEN).to_toml().unwrap()),
    ];
    for (content_type, body) in &cases {
        let answer = put(r.addr(), Some(TOKEN), content_type, body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        let reasons = answer.json()["reasons"].as_array().cloned().unwrap_or_default();
        assert!(!reasons.is_empty(), "{}", answer.body);
    }
    let hostname = put(r.addr(), Some(TOKEN), "application/toml", &cases[2].1);
    assert!(hostname.body.contains("hostname \\\"bad_name!\\\""), "{}", hostname.body);
    // Schema from the future.
    let mut future = node_config("leaf1", TOKEN);
    future.schema = 2;
    let answer =
        put(r.addr(), Some(TOKEN), "application/json", &serde_json::to_string(&future).unwrap());
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("schema is 2"), "{}", answer.body);
    // Someone else's board.
    let mut other = node_config("leaf1", TOKEN);
    other.identity.serial = Some("deadbeef".into());
    let answer =
        put(r.addr(), Some(TOKEN), "application/json", &serde_json::to_string(&other).unwrap());
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("deadbeef"), "{}", answer.body);
    // Not a config at all.
    let answer = put(r.addr(), Some(TOKEN), "image/png", "x");
    assert_eq!(answer.status, 415);
    assert_eq!(r.backend.applied().len(), 0, "nothing reached the backend");
}

#[test]
fn every_apply_outcome_is_its_own_typed_answer() {
    let r = provisioned();
    let before = r.backend.current_version().unwrap();
    let body = node_config("leaf5", TOKEN).to_toml().unwrap();
    let failures = [
        ConfigAnswer::RolledBack {
            error: "applying failed: FRR rejected frr.conf: line 12: unknown command".into(),
            rolled_back_to: before.clone(),
        },
        ConfigAnswer::NoPreviousConfig { error: "applying failed: frr: exit 1".into() },
        ConfigAnswer::RollbackFailed {
            error: "applying failed: frr: exit 1".into(),
            rolled_back_to: before.clone(),
            rollback_error: "link eth4: No such device".into(),
        },
        ConfigAnswer::NotApplied { error: "the agent is not running".into() },
        ConfigAnswer::Invalid { reasons: vec!["VNI 0 is out of range".into()] },
    ];
    for expected in failures {
        r.backend.fail_next(expected.clone());
        let answer = put(r.addr(), Some(TOKEN), "application/toml", &body);
        assert_eq!(answer.status, expected.status(), "{}", answer.body);
        assert_eq!(ConfigAnswer::from_http(answer.status, &answer.body), Ok(expected));
    }
    assert_eq!(r.backend.current_version().as_ref(), Some(&before));
}

#[test]
fn oversized_bodies_get_413_before_they_are_read() {
    let r = start(Some(node_config("leaf1", TOKEN)), |c| c.limits.max_body = 1024);
    let big = "x".repeat(4096);
    let answer = put(r.addr(), Some(TOKEN), "application/toml", &big);
    assert_eq!(answer.status, 413, "{}", answer.body);
    // Announced as huge but never sent: refused at once, not after a wait.
    let started = Instant::now();
    let answer = send(
        r.addr(),
        format!("PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 999999999\r\n\r\n").as_bytes(),
    );
    assert_eq!(answer.status, 413);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.backend.applied().len(), 0);
}

#[test]
fn slow_and_broken_requests_time_out_or_get_4xx() {
    let r = start(Some(node_config("leaf1", TOKEN)), |c| {
        c.limits.deadline = Duration::from_millis(500)
    });
    let before = r.backend.current_version();
    let body = node_config("leaf7", TOKEN).to_toml().unwrap();

    // A body that trickles in stops at the deadline with 408.
    let mut stream = TcpStream::connect(r.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/toml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    for chunk in body.as_bytes().chunks(16).take(3) {
        let _ = stream.write_all(chunk);
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head that never ends.
    let mut stream = TcpStream::connect(r.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(read_answer(&mut stream).status, 408);

    // Garbage, chunked bodies and missing lengths.
    assert_eq!(send(r.addr(), b"\x00\x01garbage\r\n\r\n").status, 400);
    let chunked = format!(
        "PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    assert_eq!(send(r.addr(), chunked.as_bytes()).status, 501);
    let no_length = format!("PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    assert_eq!(send(r.addr(), no_length.as_bytes()).status, 411);
    // A body shorter than announced, then the client gives up.
    let short = format!(
        "PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\nschema"
    );
    let mut stream = TcpStream::connect(r.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(short.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_answer(&mut stream).status, 400);

    assert_eq!(r.backend.applied().len(), 0);
    assert_eq!(r.backend.current_version(), before);
    // And the server still answers.
    assert_eq!(get(r.addr(), "/v1/health", None).status, 200);
}

#[test]
fn a_full_server_drops_its_oldest_unfinished_request_for_a_new_one() {
    let r = start(Some(node_config("leaf1", TOKEN)), |c| c.max_connections = 2);
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(r.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /v1/health HTTP/1.1\r\n").unwrap();
        holders.push(s);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both slots hold half a request; a newcomer still gets its answer...
    assert_eq!(get(r.addr(), "/v1/health", None).status, 200);
    // ...because the oldest was told to go away,
    assert_eq!(read_answer(&mut holders[0]).status, 503);
    // while the younger one may still finish its request.
    holders[1].write_all(b"Host: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut holders[1]).status, 200);
}

#[test]
fn health_answers_while_a_config_applies_and_excess_configs_get_503() {
    let r = start(Some(node_config("leaf1", TOKEN)), |c| {
        c.workers = 1;
        c.queue = 0;
    });
    r.backend.slow_applies(Duration::from_millis(1500));
    let body = node_config("leaf2", TOKEN).to_toml().unwrap();
    let addr = r.addr();
    let first = std::thread::spawn({
        let body = body.clone();
        move || put(addr, Some(TOKEN), "application/toml", &body).status
    });
    std::thread::sleep(Duration::from_millis(300));
    // The worker is applying: health is answered meanwhile, not after it.
    let started = Instant::now();
    assert_eq!(get(addr, "/v1/health", None).status, 200);
    assert!(started.elapsed() < Duration::from_millis(1000), "health waited for the apply");
    // A second config finds no free worker and no queue.
    let answer = put(addr, Some(TOKEN), "application/toml", &body);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.head.contains("Retry-After"));
    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(r.backend.applied().len(), 1);
}

/// A report whose routing state is too old waits for one refresh on the
/// refresh worker: the loop answers other requests meanwhile, every report
/// waiting gets the refreshed state, and they cost one refresh together.
#[test]
fn a_stale_report_waits_for_one_refresh_while_the_loop_answers() {
    let r = provisioned();
    let mut fresh = template();
    for n in &mut fresh.bgp {
        n.state = "Established".into();
        n.established = true;
    }
    fresh.healthy = true;
    fresh.problems.clear();
    r.backend.stale_until_refreshed(fresh.clone());
    let addr = r.addr();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waiting: Vec<_> = ["/v1/health", "/metrics", "/v1/health"]
        .into_iter()
        .map(|path| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let answer = get(addr, path, None);
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (path, answer)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.backend.refresh_started() {
        assert!(Instant::now() < deadline, "no refresh started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The refresh is held: the loop still answers, the reports still wait.
    assert_eq!(get(addr, "/v1/config", None).status, 401);
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 0, "a report did not wait");
    r.backend.release_refresh();
    for handle in waiting {
        let (path, answer) = handle.join().unwrap();
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        if path == "/metrics" {
            assert!(answer.body.contains("pilab_bgp_neighbors_established 2"), "{}", answer.body);
        } else {
            let report: HealthReport = serde_json::from_str(&answer.body).unwrap();
            assert!(report.healthy && report.bgp.iter().all(|n| n.established), "{report:?}");
        }
    }
    assert_eq!(r.backend.refreshes(), 1);
    // Fresh now: answered at once, without another refresh.
    assert_eq!(get(addr, "/v1/health", None).status, 200);
    assert_eq!(r.backend.refreshes(), 1);
}

#[test]
fn unknown_paths_and_methods() {
    let r = provisioned();
    assert_eq!(get(r.addr(), "/v1/exec?cmd=reboot", None).status, 404);
    let answer = send(r.addr(), b"DELETE /v1/config HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 405);
    assert!(answer.head.contains("Allow: GET, PUT"), "{}", answer.head);
    assert_eq!(send(r.addr(), b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status, 405);
}

#[test]
fn unprovisioned_node_needs_the_bootstrap_token() {
    // No bootstrap file: refused with a message saying what to do.
    let r = start(None, |_| {});
    let body = node_config("leaf1", TOKEN).to_toml().unwrap();
    let answer = put(r.addr(), Some(TOKEN), "application/toml", &body);
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("bootstrap.sha256"), "{}", answer.body);
    assert_eq!(r.backend.applied().len(), 0);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("bootstrap.sha256");
    std::fs::write(&file, format!("{}\n", Auth::from_token("boot-token").token_sha256)).unwrap();
    let r = start(None, |c| c.bootstrap_files = vec![file.clone()]);
    assert_eq!(get(r.addr(), "/v1/config", Some("boot-token")).status, 404);
    assert_eq!(put(r.addr(), Some(TOKEN), "application/toml", &body).status, 401);
    let answer = put(r.addr(), Some("boot-token"), "application/toml", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    // From now on the config's token counts, the bootstrap token no longer.
    assert_eq!(get(r.addr(), "/v1/config", Some("boot-token")).status, 401);
    assert_eq!(get(r.addr(), "/v1/config", Some(TOKEN)).status, 200);
}

#[test]
fn shutdown_releases_the_port() {
    let mut r = provisioned();
    let addr = r.addr();
    r.server.take().unwrap().shutdown();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

#[test]
fn plane_announces_until_provisioned_then_moves_the_api() {
    use node_agent::health::{Plane, PlaneOptions};
    use node_agent::identity::Paths;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    let controller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    controller.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::fs::write(dir.join("boot/controller"), controller.local_addr().unwrap().to_string())
        .unwrap();
    let bootstrap = dir.join("bootstrap.sha256");
    std::fs::write(&bootstrap, Auth::from_token("boot").token_sha256).unwrap();

    let backend = backend(None);
    // Unprovisioned on the wildcard address, then the same port on one address.
    let port = free_port("0.0.0.0");
    let mut server = ServerConfig::new(format!("0.0.0.0:{port}").parse().unwrap());
    server.bootstrap_files = vec![bootstrap];
    let options = PlaneOptions {
        server,
        paths: Paths { boot_dir: dir.join("boot") },
        announce: true,
        announce_interval: Duration::from_millis(100),
        tick: Duration::from_millis(100),
        ..PlaneOptions::default()
    };
    let plane = Plane::start(backend.clone() as Arc<dyn Backend>, options).unwrap();
    let first: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(plane.listening().map(|a| a.port()), Some(port));

    // Unprovisioned: it announces itself, naming its API port.
    let mut buf = [0u8; 2048];
    let (n, _) = controller.recv_from(&mut buf).unwrap();
    let heard: lab_spec::announce::Announcement = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(heard.serial.as_deref(), Some("00000000a1b2c3d4"));
    assert_eq!(heard.api_port, first.port());
    assert!(!heard.provisioned);

    // Provisioned through the bootstrap token with a config on another address.
    let mut config = node_config("leaf1", TOKEN);
    let moved: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    config.health.listen = moved;
    let answer = put(
        first,
        Some("boot"),
        "application/json",
        &serde_json::to_string(&config.with_version()).unwrap(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);

    let deadline = Instant::now() + Duration::from_secs(5);
    while plane.listening() != Some(moved) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(plane.listening(), Some(moved));
    assert_eq!(get(moved, "/v1/health", None).status, 200);
    assert!(
        TcpStream::connect_timeout(&first, Duration::from_millis(300)).is_err(),
        "old address still open"
    );

    // Announcements stop.
    std::thread::sleep(Duration::from_millis(300));
    controller.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while controller.recv_from(&mut buf).is_ok() {}
    controller.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(controller.recv_from(&mut buf).is_err(), "still announcing after provisioning");
    drop(plane);
}
