//! Prometheus text exposition (format 0.0.4) of a node's health.
//!
//! Every metric is prefixed `pilab_`; counters end in `_total`, durations in
//! `_seconds`, sizes in `_bytes`. Unknown board facts (not a Pi) are left
//! out rather than reported as zero, so a dashboard shows "no data", not a
//! cold SoC.

use lab_spec::HealthReport;
use lab_spec::prometheus::Family;

use super::{FrrTalk, HttpCounters, ReconcileStats};

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Render everything the agent knows as Prometheus text.
pub fn render(
    report: &HealthReport,
    stats: &ReconcileStats,
    frr: Option<FrrTalk>,
    http: &HttpCounters,
) -> String {
    let mut out = String::with_capacity(4096);
    for family in agent(report)
        .into_iter()
        .chain(board(report))
        .chain(system(report))
        .chain(bgp(report))
        .chain(igp(report))
        .chain(vxlan(report))
        .chain(sflow(report))
        .chain(reconcile(report, stats))
        .chain(frr.map(frr_talk).unwrap_or_default())
        .chain(http_requests(http))
    {
        family.write(&mut out);
    }
    out
}

fn agent(r: &HealthReport) -> Vec<Family<'_>> {
    let info = vec![
        ("version", r.agent_version.clone()),
        ("node", r.node.clone().unwrap_or_default()),
        ("lab", r.lab.clone().unwrap_or_default()),
        ("role", r.role.map(|x| x.to_string()).unwrap_or_default()),
    ];
    vec![
        Family::gauge("pilab_agent_info", "Agent version and the node it runs as (always 1).")
            .with(info, 1.0),
        Family::gauge("pilab_provisioned", "1 when the agent has a config, 0 while it waits.")
            .with(Vec::new(), flag(r.node.is_some())),
        Family::gauge(
            "pilab_healthy",
            "1 when every neighbour is up, every VNI ok and the last reconcile passed.",
        )
        .with(Vec::new(), flag(r.healthy)),
    ]
}

fn board(r: &HealthReport) -> Vec<Family<'_>> {
    let b = &r.board;
    let mut info = Family::gauge("pilab_board_info", "Board model and serial number (always 1).");
    if b.model.is_some() || b.serial.is_some() {
        info = info.with(
            vec![
                ("model", b.model.clone().unwrap_or_default()),
                ("serial", b.serial.clone().unwrap_or_default()),
                ("mac", b.mac.clone().unwrap_or_default()),
            ],
            1.0,
        );
    }
    vec![
        info,
        Family::gauge("pilab_soc_temperature_celsius", "SoC temperature from thermal zone 0.")
            .with_opt(b.soc_temperature_celsius),
        Family::gauge(
            "pilab_under_voltage",
            "1 while the supply is below 4.63 V (rpi_volt hwmon alarm).",
        )
        .with_opt(b.under_voltage.map(flag)),
        Family::gauge("pilab_throttled", "1 while the firmware throttles the CPU.")
            .with_opt(b.throttled.map(flag)),
    ]
}

fn system(r: &HealthReport) -> Vec<Family<'_>> {
    let s = &r.system;
    let load = |period: &str, v: f64| (vec![("period", period.to_string())], v);
    let mut load_family = Family::gauge("pilab_load_average", "System load average.");
    for (labels, v) in [load("1m", s.load[0]), load("5m", s.load[1]), load("15m", s.load[2])] {
        load_family = load_family.with(labels, v);
    }
    vec![
        Family::gauge("pilab_uptime_seconds", "Seconds since the board booted.")
            .with(Vec::new(), s.uptime_seconds as f64),
        load_family,
        Family::gauge("pilab_memory_total_bytes", "Total memory.")
            .with(Vec::new(), s.memory_total_bytes as f64),
        Family::gauge("pilab_memory_available_bytes", "Memory available for new work.")
            .with(Vec::new(), s.memory_available_bytes as f64),
        Family::gauge("pilab_disk_total_bytes", "Size of the root filesystem.")
            .with(Vec::new(), s.disk_total_bytes as f64),
        Family::gauge("pilab_disk_available_bytes", "Free space on the root filesystem.")
            .with(Vec::new(), s.disk_available_bytes as f64),
    ]
}

fn bgp(r: &HealthReport) -> Vec<Family<'_>> {
    let mut established = Family::gauge(
        "pilab_bgp_neighbor_established",
        "1 when the BGP session is Established; the state label is FRR's state name.",
    );
    let mut uptime =
        Family::gauge("pilab_bgp_neighbor_uptime_seconds", "Time the session has been up.");
    let mut prefixes = Family::gauge(
        "pilab_bgp_neighbor_prefixes_received",
        "Prefixes received from the neighbour.",
    );
    for n in &r.bgp {
        let labels = || {
            vec![
                ("neighbor", n.address.to_string()),
                ("remote_as", n.remote_asn.to_string()),
                ("description", n.description.clone()),
            ]
        };
        let mut with_state = labels();
        with_state.push(("state", n.state.clone()));
        established = established.with(with_state, flag(n.established));
        if let Some(up) = n.uptime_seconds {
            uptime = uptime.with(labels(), up as f64);
        }
        if let Some(p) = n.prefixes_received {
            prefixes = prefixes.with(labels(), p as f64);
        }
    }
    let up = r.bgp.iter().filter(|n| n.established).count();
    vec![
        established,
        uptime,
        prefixes,
        Family::gauge("pilab_bgp_neighbors", "Configured BGP neighbours.")
            .with(Vec::new(), r.bgp.len() as f64),
        Family::gauge("pilab_bgp_neighbors_established", "BGP neighbours in state Established.")
            .with(Vec::new(), up as f64),
    ]
}

/// One gauge per expected OSPF neighbour or IS-IS adjacency, labelled with
/// the protocol, and how many are up.
fn igp(r: &HealthReport) -> Vec<Family<'_>> {
    let mut up = Family::gauge(
        "pilab_igp_adjacency_up",
        "1 when the OSPF neighbour is Full or the IS-IS adjacency is Up; the state label is FRR's.",
    );
    let mut counts = Family::gauge("pilab_igp_adjacencies", "Expected IGP adjacencies.");
    let mut counts_up = Family::gauge("pilab_igp_adjacencies_up", "IGP adjacencies that are up.");
    for (protocol, list) in [("ospf", &r.ospf), ("isis", &r.isis), ("ospf6", &r.ospf6)] {
        for a in list.iter() {
            let labels = vec![
                ("protocol", protocol.to_string()),
                ("interface", a.interface.clone()),
                ("neighbor", a.router_id.to_string()),
                ("description", a.description.clone()),
                ("state", a.state.clone()),
            ];
            up = up.with(labels, flag(a.up));
        }
        if !list.is_empty() {
            let n = list.iter().filter(|a| a.up).count();
            counts = counts.with(vec![("protocol", protocol.to_string())], list.len() as f64);
            counts_up = counts_up.with(vec![("protocol", protocol.to_string())], n as f64);
        }
    }
    vec![up, counts, counts_up]
}

fn vxlan(r: &HealthReport) -> Vec<Family<'_>> {
    let mut ok = Family::gauge(
        "pilab_vxlan_vni_ok",
        "1 when the VNI's device is up and its flood list is as expected.",
    );
    let mut up = Family::gauge("pilab_vxlan_device_up", "1 when the VXLAN device is up.");
    let mut remote =
        Family::gauge("pilab_vxlan_remote_vteps", "Remote VTEPs in the kernel's flood list.");
    let mut expected = Family::gauge(
        "pilab_vxlan_expected_vteps",
        "Remote VTEPs the config asks for (static flooding).",
    );
    for v in &r.vxlan {
        let labels = || {
            vec![
                ("vni", v.vni.to_string()),
                ("device", v.device.clone()),
                ("flooding", v.flooding.clone()),
            ]
        };
        ok = ok.with(labels(), flag(v.ok));
        up = up.with(labels(), flag(v.device_up));
        remote = remote.with(labels(), v.remote_vteps.len() as f64);
        if v.flooding == "static" {
            expected = expected.with(labels(), v.expected_vteps.len() as f64);
        }
    }
    vec![ok, up, remote, expected]
}

fn sflow(r: &HealthReport) -> Vec<Family<'_>> {
    let s = &r.sflow;
    let n = |v: u64| v as f64;
    vec![
        Family::gauge("pilab_sflow_enabled", "1 when sFlow export is on.")
            .with(Vec::new(), flag(s.enabled)),
        Family::gauge("pilab_sflow_collectors", "Configured sFlow collectors.")
            .with(Vec::new(), s.collectors.len() as f64),
        Family::gauge("pilab_sflow_sampling_rate", "Packet sampling 1-in-N (0: off).")
            .with(Vec::new(), f64::from(s.sampling_rate)),
        Family::counter("pilab_sflow_datagrams_sent_total", "sFlow datagrams sent.")
            .with(Vec::new(), n(s.datagrams_sent)),
        Family::counter(
            "pilab_sflow_samples_sent_total",
            "sFlow samples sent, by kind (counter or flow).",
        )
        .with(vec![("kind", "counter".to_string())], n(s.counter_samples_sent))
        .with(vec![("kind", "flow".to_string())], n(s.flow_samples_sent)),
        Family::counter("pilab_sflow_send_errors_total", "sFlow datagrams that could not be sent.")
            .with(Vec::new(), n(s.send_errors)),
    ]
}

fn reconcile<'a>(r: &'a HealthReport, stats: &ReconcileStats) -> Vec<Family<'a>> {
    let mut version =
        Family::gauge("pilab_config_info", "Version of the config being applied (always 1).");
    if let Some(v) = &r.reconcile.config_version {
        version = version.with(vec![("version", v.clone())], 1.0);
    }
    vec![
        version,
        Family::counter("pilab_reconcile_passes_total", "Reconcile passes run.")
            .with(Vec::new(), stats.passes_total as f64),
        Family::counter("pilab_reconcile_errors_total", "Errors met by reconcile passes.")
            .with(Vec::new(), stats.errors_total as f64),
        Family::gauge("pilab_reconcile_ok", "1 when the last reconcile pass succeeded.")
            .with(Vec::new(), flag(r.reconcile.ok)),
        Family::gauge("pilab_reconcile_last_changes", "Changes made by the last reconcile pass.")
            .with(Vec::new(), f64::from(r.reconcile.changes)),
        Family::gauge(
            "pilab_reconcile_last_success_timestamp_seconds",
            "Unix time of the last successful reconcile pass.",
        )
        .with_opt(stats.last_success_unix.map(|t| t as f64)),
        Family::gauge(
            "pilab_reconcile_last_duration_seconds",
            "Duration of the last reconcile pass.",
        )
        .with_opt(stats.last_duration_seconds),
    ]
}

/// What watching this node costs FRR: how often vtysh and frr-reload.py
/// ran, and how often a daemon was asked on its vty socket.
fn frr_talk(frr: FrrTalk) -> Vec<Family<'static>> {
    let c = frr.calls;
    let mut runs = Family::counter(
        "pilab_frr_programs_total",
        "FRR programs the agent ran: vtysh, frr-reload.py (which runs vtysh itself).",
    );
    for (program, n) in [("vtysh", c.vtysh), ("frr-reload", c.reloads)] {
        runs = runs.with(vec![("program", program.to_string())], n as f64);
    }
    vec![
        runs,
        Family::counter(
            "pilab_frr_vty_questions_total",
            "show commands asked on a daemon's vty socket (no vtysh).",
        )
        .with(Vec::new(), c.vty as f64),
        Family::gauge(
            "pilab_frr_routing_reads_at_once_max",
            "The most routing reads that ran at once on this node (1: one at a time).",
        )
        .with(Vec::new(), frr.reads_at_once as f64),
    ]
}

fn http_requests(http: &HttpCounters) -> Vec<Family<'static>> {
    let mut family =
        Family::counter("pilab_http_requests_total", "Requests answered by the management API.");
    for (code, count) in http.snapshot() {
        family = family.with(vec![("code", code.to_string())], count as f64);
    }
    vec![family]
}
