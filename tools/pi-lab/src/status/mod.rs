//! `pi-lab status`: the health of every node of a lab, from each agent's
//! `GET /v1/health`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use lab_spec::{HealthReport, NodeConfig};
use serde::Serialize;

use crate::fleet_client::{ClientError, FleetClient};
use crate::lab_file::{CompiledLab, LabFileError};
use crate::table::Table;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab status examples/fabric.toml
  pi-lab status lab.toml --json | jq '.[] | select(.healthy | not)'
  pi-lab status lab.toml --watch 5

Exit status: 0 when every node is reachable and healthy, 1 when not, 2 when
the lab file cannot be used.")]
pub struct StatusArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// Only these nodes (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Print JSON (one object per node, with the full health report).
    #[arg(long)]
    pub json: bool,
    /// Refresh this often until interrupted: 2, 2s, 500ms [default: 2s].
    #[arg(long, value_name = "EVERY", num_args = 0..=1, default_missing_value = "2s",
          value_parser = lab_spec::duration::parse_positive)]
    pub watch: Option<Duration>,
    /// How long to wait for each agent: 5, 5s, 1m30s, 500ms.
    #[arg(long, default_value = "5s", value_parser = lab_spec::duration::parse_positive, env = "PI_LAB_TIMEOUT")]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
}

/// One node's line of the status.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub api: SocketAddr,
    pub reachable: bool,
    /// Reachable, healthy by its own account and running the lab's config.
    pub healthy: bool,
    pub problems: Vec<String>,
    /// `hand-changed, N lines` when FRR runs lines typed by hand (which
    /// `provision` overwrites only with `--force`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// Those lines, `+`/`-` with their sections.
    pub hand_changes: Vec<String>,
    /// Each port with netem: `eth1: delay 20ms`, `eth1: delay 50ms (by
    /// hand; lab file: delay 20ms)`, `eth1: NOT APPLIED: delay 20ms`.
    pub impairments: Vec<String>,
    pub report: Option<HealthReport>,
}

pub fn run(args: &StatusArgs) -> Result<ExitCode, StatusError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    let fleet = FleetClient::open(&lab, args.timeout);
    let configs = fleet.select(&args.nodes)?;
    loop {
        let statuses = collect(&fleet, &configs);
        let all_ok = statuses.iter().all(|s| s.healthy);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&statuses).unwrap_or_default());
        } else {
            if args.watch.is_some() {
                print!("\x1b[2J\x1b[H");
                println!("lab {} on {} — {}", fleet.lab, fleet.runs_on, args.lab.file.display());
            }
            print!("{}", render(&statuses));
        }
        match args.watch {
            Some(every) => std::thread::sleep(every),
            None => return Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) }),
        }
    }
}

/// Ask every agent at once and judge each answer.
pub fn collect(fleet: &FleetClient, configs: &[&NodeConfig]) -> Vec<NodeStatus> {
    fleet
        .health_all(configs)
        .into_iter()
        .zip(configs)
        .map(|(r, c)| judge(c, fleet.api(c), r))
        .collect()
}

/// A node is fine when it answers, calls itself healthy and runs the config
/// the lab compiles to now.
pub fn judge(
    config: &NodeConfig,
    api: SocketAddr,
    answer: Result<HealthReport, ClientError>,
) -> NodeStatus {
    let node = config.hostname.clone();
    match answer {
        Err(e) => NodeStatus {
            node,
            api,
            reachable: !e.is_unreachable(),
            healthy: false,
            problems: vec![e.to_string()],
            drift: None,
            hand_changes: Vec::new(),
            impairments: Vec::new(),
            report: None,
        },
        Ok(report) => {
            let mut problems = report.problems.clone();
            match report.reconcile.config_version.as_deref() {
                None => problems.push("not provisioned (run pi-lab provision)".into()),
                Some(v) if v != config.version => problems.push(format!(
                    "runs config {v}, the lab compiles to {} (run pi-lab provision)",
                    config.version
                )),
                Some(_) => {}
            }
            problems.extend(lab_spec::health::missing_port_hint(
                &config.hostname,
                &report.reconcile.missing_ports,
            ));
            if !report.healthy && problems.is_empty() {
                problems.push("the agent reports itself unhealthy".into());
            }
            NodeStatus {
                node,
                api,
                reachable: true,
                healthy: report.healthy && problems.is_empty(),
                problems,
                drift: drift(&report.frr_hand_changes),
                hand_changes: report.frr_hand_changes.clone(),
                impairments: report
                    .impairments
                    .iter()
                    .map(|i| format!("{}: {}", i.port, i.summary()))
                    .collect(),
                report: Some(report),
            }
        }
    }
}

/// `hand-changed, N lines`, or `None` without hand changes.
pub fn drift(hand_changes: &[String]) -> Option<String> {
    match hand_changes.len() {
        0 => None,
        1 => Some("hand-changed, 1 line".into()),
        n => Some(format!("hand-changed, {n} lines")),
    }
}

/// The status table, and under it the problems of unhealthy nodes and the
/// lines changed by hand.
pub fn render(statuses: &[NodeStatus]) -> String {
    let headers = [
        "NODE",
        "ADDRESS",
        "REACHABLE",
        "UPTIME",
        "TEMP",
        "THROTTLED",
        "IGP",
        "BGP",
        "VNIS",
        "SFLOW",
        "LAST RECONCILE",
        "HEALTHY",
        "DRIFT",
        "TC",
    ];
    let mut out = Table::new(headers).with_rows(statuses.iter().map(row)).to_string();
    for s in statuses.iter().filter(|s| !s.problems.is_empty()) {
        for problem in &s.problems {
            out.push_str(&format!("{}: {problem}\n", s.node));
        }
    }
    for s in statuses {
        for line in &s.hand_changes {
            out.push_str(&format!("{} by hand: {line}\n", s.node));
        }
    }
    for s in statuses {
        for line in &s.impairments {
            out.push_str(&format!("{} tc {line}\n", s.node));
        }
    }
    out
}

/// The TC cell: `-`, `eth1` (as the lab file), `2 ports, 1 by hand`,
/// `1 NOT APPLIED`.
fn tc_cell(r: &HealthReport) -> String {
    use lab_spec::health::ImpairmentState;
    let count = |state| r.impairments.iter().filter(|i| i.state == state).count();
    let ports: Vec<&str> = r.impairments.iter().map(|i| i.port.as_str()).collect();
    let mut cell = match ports.as_slice() {
        [] => return "-".into(),
        [one] => (*one).to_string(),
        many => format!("{} ports", many.len()),
    };
    for (state, word) in
        [(ImpairmentState::ByHand, "by hand"), (ImpairmentState::NotApplied, "NOT APPLIED")]
    {
        match count(state) {
            0 => {}
            _ if ports.len() == 1 => cell = format!("{cell} {word}"),
            n => cell = format!("{cell}, {n} {word}"),
        }
    }
    cell
}

fn row(s: &NodeStatus) -> Vec<String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut cells = vec![s.node.clone(), s.api.ip().to_string(), yes_no(s.reachable)];
    let Some(r) = &s.report else {
        cells.extend(std::iter::repeat_n("-".to_string(), 8));
        cells.push(yes_no(false));
        cells.extend(["-".into(), "-".into()]);
        return cells;
    };
    let temp = r.board.soc_temperature_celsius.map_or("unknown".into(), |t| format!("{t:.1}°C"));
    let throttled = match (r.board.throttled, r.board.under_voltage) {
        (_, Some(true)) => "UNDER-VOLTAGE".to_string(),
        (Some(t), _) => yes_no(t),
        (None, _) => "unknown".into(),
    };
    let bgp_up = r.bgp.iter().filter(|n| n.established).count();
    let igp = igp_cell(r);
    let vnis_ok = r.vxlan.iter().filter(|v| v.ok).count();
    let sflow = if !r.sflow.enabled {
        "off".to_string()
    } else if r.sflow.datagrams_sent > 0 {
        format!("yes ({})", r.sflow.datagrams_sent)
    } else {
        "no".into()
    };
    // The board says how long ago, by its own monotonic clock: its wall
    // clock may be years off (no real-time clock, often no NTP in a lab).
    let reconcile = match r.reconcile.last_run_age_seconds {
        None => "never".to_string(),
        Some(age) => {
            format!("{} {} ago", if r.reconcile.ok { "ok" } else { "FAILED" }, duration(age))
        }
    };
    cells.extend([
        duration(r.system.uptime_seconds),
        temp,
        throttled,
        igp,
        bgp_cell(bgp_up, r),
        format!("{vnis_ok}/{}", r.vxlan.len()),
        sflow,
        reconcile,
        yes_no(s.healthy),
        s.drift.clone().unwrap_or_else(|| "-".into()),
        tc_cell(r),
    ]);
    cells
}

/// `2/2` sessions Established; `2/2 unnumbered` when they all run on
/// interfaces, `2/2 (1 unnumbered)` when some do.
fn bgp_cell(up: usize, r: &HealthReport) -> String {
    let on_interfaces = r.bgp.iter().filter(|n| n.interface.is_some()).count();
    match on_interfaces {
        0 => format!("{up}/{}", r.bgp.len()),
        n if n == r.bgp.len() => format!("{up}/{n} unnumbered"),
        n => format!("{up}/{} ({n} unnumbered)", r.bgp.len()),
    }
}

/// `ospf 2/2` (Full neighbours) or `isis 2/2` (Up adjacencies), with
/// `, ospf6 2/2` for OSPFv3 beside OSPF; `-` without an IGP underlay.
fn igp_cell(r: &HealthReport) -> String {
    let count = |list: &[lab_spec::health::IgpAdjacencyState]| {
        format!("{}/{}", list.iter().filter(|a| a.up).count(), list.len())
    };
    let mut cell = match (r.ospf.is_empty(), r.isis.is_empty()) {
        (false, _) => format!("ospf {}", count(&r.ospf)),
        (true, false) => format!("isis {}", count(&r.isis)),
        (true, true) => return "-".into(),
    };
    if !r.ospf6.is_empty() {
        cell.push_str(&format!(", ospf6 {}", count(&r.ospf6)));
    }
    cell
}

/// `3d4h`, `2h5m`, `4m10s`, `42s`.
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_changed_node_says_so_and_stays_healthy() {
        let config = crate::fleet_client::tests::node("r1", "router", 100, 11, None).with_version();
        let mut report = crate::validate::checks::tests::report();
        report.reconcile.config_version = Some(config.version.clone());
        report.frr_hand_changes = vec![
            "+ip route 10.99.0.0/24 Null0".into(),
            "-router bgp 100 > network 10.0.0.11/32".into(),
        ];
        let status = judge(&config, config.health.listen, Ok(report));
        assert!(status.healthy, "{:?}", status.problems);
        assert_eq!(status.drift.as_deref(), Some("hand-changed, 2 lines"));
        let table = render(std::slice::from_ref(&status));
        assert!(table.lines().next().unwrap().ends_with("DRIFT                  TC"), "{table}");
        assert!(
            table.lines().nth(1).unwrap().ends_with("yes      hand-changed, 2 lines  -"),
            "{table}"
        );
        assert!(table.contains("r1 by hand: +ip route 10.99.0.0/24 Null0\n"), "{table}");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["drift"], "hand-changed, 2 lines");
        assert_eq!(json["hand_changes"][1], "-router bgp 100 > network 10.0.0.11/32");
        assert_eq!(drift(&["+x".into()]).as_deref(), Some("hand-changed, 1 line"));
        assert_eq!(drift(&[]), None);
    }

    #[test]
    fn unnumbered_sessions_and_ospfv3_show_in_their_cells() {
        let mut report = crate::validate::checks::tests::report();
        let adjacency: lab_spec::health::IgpAdjacencyState = serde_json::from_value(
            serde_json::json!({"interface": "eth1", "router_id": "10.0.0.1",
                "description": "spine1", "state": "Full", "up": true}),
        )
        .unwrap();
        report.ospf = vec![adjacency.clone()];
        report.ospf6 = vec![adjacency];
        assert_eq!(igp_cell(&report), "ospf 1/1, ospf6 1/1");
        let session = |interface: Option<&str>| {
            let json = serde_json::json!({"address": "10.0.0.1", "remote_asn": 65000,
                "description": "spine1", "state": "Established", "established": true,
                "uptime_seconds": 5, "prefixes_received": 1, "interface": interface});
            serde_json::from_value::<lab_spec::health::BgpNeighborState>(json).unwrap()
        };
        report.bgp = vec![session(Some("eth1")), session(Some("eth2"))];
        assert_eq!(bgp_cell(2, &report), "2/2 unnumbered");
        report.bgp.push(session(None));
        assert_eq!(bgp_cell(3, &report), "3/3 (2 unnumbered)");
        report.bgp.truncate(0);
        assert_eq!(bgp_cell(0, &report), "0/0");
    }

    #[test]
    fn impaired_ports_are_shown_with_what_differs_from_the_lab_file() {
        use lab_spec::health::{ImpairmentState, PortImpairment};
        use lab_spec::impairment::{Netem, parse_delay};
        let delay = |t: &str| Netem::new(Some(parse_delay(t).unwrap()), None, None, None).unwrap();
        let config = crate::fleet_client::tests::node("r1", "router", 100, 11, None).with_version();
        let mut report = crate::validate::checks::tests::report();
        report.reconcile.config_version = Some(config.version.clone());
        report.impairments = vec![
            PortImpairment {
                port: "eth1".into(),
                wanted: Some(delay("20ms")),
                running: Some(delay("20ms")),
                state: ImpairmentState::AsLabFile,
            },
            PortImpairment {
                port: "eth2".into(),
                wanted: Some(delay("20ms")),
                running: Some(delay("50ms")),
                state: ImpairmentState::ByHand,
            },
        ];
        let status = judge(&config, config.health.listen, Ok(report.clone()));
        assert!(status.healthy, "{:?}", status.problems);
        let table = render(std::slice::from_ref(&status));
        assert!(table.lines().nth(1).unwrap().ends_with("2 ports, 1 by hand"), "{table}");
        assert!(table.contains("r1 tc eth1: delay 20ms\n"), "{table}");
        assert!(
            table.contains("r1 tc eth2: delay 50ms (by hand; lab file: delay 20ms)\n"),
            "{table}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["impairments"][0], "eth1: delay 20ms");
        assert_eq!(json["report"]["impairments"][1]["state"], "by_hand");
        assert_eq!(json["report"]["impairments"][1]["wanted"]["delay"], "20ms");
        report.impairments.truncate(1);
        report.impairments[0].state = ImpairmentState::NotApplied;
        assert_eq!(tc_cell(&report), "eth1 NOT APPLIED");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(250), "4m10s");
        assert_eq!(duration(7500), "2h5m");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 5), "3d4h");
    }
}
