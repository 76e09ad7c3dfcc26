//! The `pi-lab sflow watch` collector on arbitrary datagrams: decoding and
//! the table state and the metrics must never panic, whatever arrives on
//! UDP 6343.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pi_lab::sflow_watch::{decode, metrics, view};

fuzz_target!(|data: &[u8]| {
    let mut w = view::Watch::default();
    let now = std::time::Instant::now();
    // Each input is a stream of datagrams, each behind a 2-byte big-endian
    // length, so one run also exercises state carried between datagrams.
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (datagram, tail) = rest[2..].split_at(len);
        match decode::decode(datagram) {
            Ok(d) => w.ingest(d, now),
            Err(why) => w.bad(why),
        }
        rest = tail;
    }
    w.tick(now);
    let snap = w.snapshot(10, now);
    let _ = view::render(&snap, "fuzz");
    let _ = view::json_lines(&snap);
    let _ = metrics::render(&snap);
});
