//! A snapshot as text: the live table (interfaces, then the top flows) and
//! the `--json` lines.

use std::fmt::Write as _;

use super::Snapshot;
use crate::table::Table;

fn rate(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// The live table, as text. Interfaces read `node:name`; when the lab is
/// known, PEER is the other end of the lab link.
pub fn render(s: &Snapshot, listen: &str) -> String {
    let mut out = String::new();
    let sum = &s.summary;
    let _ = writeln!(
        out,
        "sFlow on {listen}: {} datagrams from {} agents, {} lost, skipped: {} truncated, {} malformed, {} oversized\n",
        sum.datagrams,
        sum.agents,
        sum.lost,
        sum.skipped.truncated,
        sum.skipped.malformed,
        sum.skipped.oversized
    );
    let with_peer = s.interfaces.iter().any(|r| r.peer.is_some());
    let interfaces = s.interfaces.iter().map(|r| {
        let (ib, ob, ip, op) = match &r.rates {
            Some(x) => (rate(x.in_bps), rate(x.out_bps), rate(x.in_pps), rate(x.out_pps)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let mut row = vec![r.label()];
        if with_peer {
            row.push(r.peer.clone().unwrap_or_else(|| "-".into()));
        }
        row.extend([
            r.agent.to_string(),
            r.if_index.to_string(),
            if r.oper_up { "up" } else { "down" }.to_string(),
            ib,
            ob,
            ip,
            op,
            format!("{}/{}", r.in_errors, r.out_errors),
            format!("{}/{}", r.in_discards, r.out_discards),
        ]);
        row
    });
    let mut header = vec!["INTERFACE"];
    if with_peer {
        header.push("PEER");
    }
    header.extend([
        "AGENT",
        "IFINDEX",
        "UP",
        "IN bit/s",
        "OUT bit/s",
        "IN pkt/s",
        "OUT pkt/s",
        "ERRS in/out",
        "DISC in/out",
    ]);
    let first_number = header.len() - 8;
    let numbers: Vec<usize> =
        std::iter::once(first_number).chain(first_number + 2..header.len()).collect();
    let interfaces = Table::new(header).right(&numbers).with_rows(interfaces);
    let _ = write!(out, "{interfaces}");
    let port =
        |ip: &str, p: Option<u16>| p.map(|p| format!("{ip}:{p}")).unwrap_or_else(|| ip.to_string());
    let flows = s.flows.iter().map(|f| {
        [
            format!("{}:{}", f.node, f.input),
            port(&f.key.src, f.key.src_port),
            port(&f.key.dst, f.key.dst_port),
            f.key.proto.clone(),
            rate(f.bps),
            rate(f.pps),
        ]
    });
    let flows = Table::new(["SEEN ON", "SOURCE", "DESTINATION", "PROTO", "bit/s", "pkt/s"])
        .right(&[4, 5])
        .with_rows(flows);
    let _ = write!(out, "\nTOP SAMPLED FLOWS (estimated)\n{flows}");
    out
}

/// The snapshot as JSON lines: a summary, one per interface, one per flow.
pub fn json_lines(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut line = |v: serde_json::Result<String>| {
        if let Ok(l) = v {
            out.push_str(&l);
            out.push('\n');
        }
    };
    line(serde_json::to_string(&s.summary));
    for r in &s.interfaces {
        line(serde_json::to_string(r));
    }
    for f in &s.flows {
        line(serde_json::to_string(f));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Instant;

    use super::*;
    use crate::sflow_watch::decode::{Bad, Datagram, Sample};
    use crate::sflow_watch::lab_links::LabLinks;
    use crate::sflow_watch::view::Watch;
    // The datagrams the watch's own tests feed it.
    use crate::sflow_watch::view::tests::{dg, ifs, named};

    /// Cells of a table line: text separated by two or more spaces, with
    /// the columns where each starts and ends.
    fn cells(line: &str) -> Vec<(usize, usize, &str)> {
        let mut out = Vec::new();
        let mut rest = line;
        let mut at = 0;
        while !rest.is_empty() {
            let start = rest.len() - rest.trim_start().len();
            let text = &rest[start..];
            let len = text.find("  ").unwrap_or(text.len());
            out.push((at + start, at + start + len, &text[..len]));
            at += start + len;
            rest = &text[len..];
        }
        out
    }

    /// Every header sits over its column: the same start (text) or the
    /// same end (numbers) in the header and in each row.
    fn assert_lines_up(table: &str) {
        let mut lines = table.lines();
        let header = cells(lines.next().expect("header"));
        for line in lines {
            let row = cells(line);
            assert_eq!(row.len(), header.len(), "{table}");
            for (h, c) in header.iter().zip(&row) {
                assert!(h.0 == c.0 || h.1 == c.1, "{:?} is not over {:?}:\n{table}", h.2, c.2);
            }
        }
    }

    #[test]
    fn table_shows_interfaces_by_name_rates_and_skips() {
        let mut w = Watch::default();
        let now = Instant::now();
        w.ingest(dg(1, 1_000, vec![Sample::Host { hostname: "spine1".into() }, ifs(0, 0)]), now);
        w.ingest(dg(2, 2_000, vec![ifs(125_000_000, 1_000), named(4, "eth2", 0)]), now);
        w.bad(Bad::Truncated);
        w.bad(Bad::Oversized);
        let text = render(&w.snapshot(5, now), "0.0.0.0:6343");
        assert!(
            text.contains(
                "2 datagrams from 1 agents, 0 lost, skipped: 1 truncated, 0 malformed, 1 oversized"
            ),
            "{text}"
        );
        let table = text.split("\n\n").nth(1).expect("interface table");
        let table = &table[..table.find("\nTOP").unwrap_or(table.len())];
        assert!(table.starts_with("INTERFACE    AGENT"), "{table}");
        assert_lines_up(table);
        let row = text.lines().find(|l| l.starts_with("spine1:#3")).expect("row for ifIndex 3");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[..6], ["spine1:#3", "10.0.0.1", "3", "down", "1.00G", "0"], "{row}");
        assert_eq!(cols[6], "1.0k", "{row}");
        assert!(text.lines().any(|l| l.starts_with("spine1:eth2  10.0.0.1")), "{text}");
    }

    #[test]
    fn the_lab_names_nodes_and_link_ends() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fabric.toml");
        let lab = crate::lab_file::LabFile::load(std::path::Path::new(path)).expect("fabric");
        let leaf1 = IpAddr::V4(lab.plan.nodes["leaf1"].sflow_agent());
        let mut w = Watch::for_lab(LabLinks::new(&lab.plan));
        let now = Instant::now();
        // The hostname the agent sends does not matter: the lab knows it.
        let samples = vec![
            Sample::Host { hostname: "localhost".into() },
            named(5, "eth1", 1000),
            named(6, "eth3", 0),
            named(7, "mgmt0", 0),
        ];
        w.ingest(Datagram { agent: leaf1, sub_agent: 0, sequence: 1, uptime_ms: 0, samples }, now);
        w.ingest(dg(1, 0, vec![named(2, "eth9", 0)]), now);
        let s = w.snapshot(5, now);
        let peers: Vec<(String, Option<&str>)> =
            s.interfaces.iter().map(|r| (r.label(), r.peer.as_deref())).collect();
        assert_eq!(
            peers,
            [
                ("10.0.0.1:eth9".to_string(), None),
                ("leaf1:eth1".to_string(), Some("spine1:eth1")),
                ("leaf1:eth3".to_string(), Some("h1:eth1")),
                ("leaf1:mgmt0".to_string(), None),
            ]
        );
        let text = render(&s, "0.0.0.0:6343");
        let table = text.split("\n\n").nth(1).expect("interface table");
        let table = &table[..table.find("\nTOP").unwrap_or(table.len())];
        assert!(table.starts_with("INTERFACE      PEER         AGENT"), "{table}");
        assert_lines_up(table);
    }
}
