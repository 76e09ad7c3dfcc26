//! 1,000 idle or slow connections must neither keep `GET /v1/health` from
//! answering nor cost threads or more than a few MiB (issue 14, item 1).
//! Alone in its own test binary, so the RSS and thread counts are the
//! server's.
#![allow(clippy::unwrap_used)]

mod api;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api::*;
use node_agent::health::raise_open_files_limit;

const SLOW: usize = 1000;

/// `VmRSS` and `Threads` of this process.
fn rss_kib_and_threads() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("Threads:"))
}

#[test]
fn health_answers_at_once_while_a_thousand_slow_connections_are_open() {
    // Both ends of every connection live in this process.
    let needed = 2 * SLOW as u64 + 200;
    let limit = raise_open_files_limit(needed);
    assert!(limit >= needed, "needs {needed} open files, the hard limit allows {limit}");
    let r = provisioned();
    // Warm up: the first answer allocates what every answer needs.
    assert_eq!(get(r.addr(), "/v1/health", None).status, 200);
    let (rss_before, threads_before) = rss_kib_and_threads();

    // Half send nothing, half send half a request line and wait.
    let mut held = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut s = TcpStream::connect(r.addr()).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /v1/health HT").unwrap();
        }
        held.push(s);
    }
    // A request after all of them: the server has accepted them by now.
    assert_eq!(get(r.addr(), "/v1/health", None).status, 200);
    let (rss_after, threads_after) = rss_kib_and_threads();

    let mut times = Vec::new();
    for _ in 0..25 {
        let started = Instant::now();
        let answer = get(r.addr(), "/v1/health", None);
        times.push(started.elapsed());
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    times.sort();
    let median = times[times.len() / 2];
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!(
        "{SLOW} slow connections: /v1/health median {median:?}, max {:?}; RSS {rss_before} -> {rss_after} KiB (+{grew}); threads {threads_before} -> {threads_after}",
        times[times.len() - 1]
    );
    assert!(median <= Duration::from_millis(100), "/v1/health took {median:?} (median)");
    assert_eq!(threads_after, threads_before, "idle connections hold threads");
    assert!(grew < 4 * 1024, "RSS grew by {grew} KiB for {SLOW} idle connections");

    // They were held, not dropped: a slow one may still finish its request,
    for s in held.iter_mut().skip(1).step_by(2).take(10) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"TP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_answer(s).status, 200);
    }
    // and an idle one is still open (no answer, no close) until its deadline.
    let idle = &mut held[0];
    idle.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let e = idle.read(&mut byte).expect_err("an idle connection was answered or closed");
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
}
