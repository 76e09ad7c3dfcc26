//! Working in a running lab, on a virtual fleet: `pi-lab lab connect`
//! (exit codes, `--all`), `pi-lab capture` (one pcapng that tshark reads,
//! an interface per port, no tcpdump left behind), `pi-lab lab link`
//! (validate names the cut BGP session, and passes again once mended),
//! `pi-lab lab impair` (this host's kernel has no netem: refused, nothing
//! changed), and the refusals, each checked against the kernel's state.
//!
//! The lab is `t9inlab`; the management subnet 192.168.220.0/24 is this
//! test's own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{LabFiles, prerequisites, said};

const LAB: &str = "t9inlab";

/// Two leaves under eBGP on leaf1:eth1 -- leaf2:eth1, a host on each, the
/// hosts in one static-flooding segment.
const LAB_FILE: &str = r#"
name = "t9inlab"

[management]
subnet = "192.168.220.0/24"
controller = "192.168.220.1"

[nodes.leaf1]
role = "leaf"
asn = 65001

[nodes.leaf2]
role = "leaf"
asn = 65002

[nodes.h1]
role = "host"

[nodes.h2]
role = "host"

[[links]]
a = "leaf1:eth1"
b = "leaf2:eth1"

[[links]]
a = "h1:eth1"
b = "leaf1:eth2"

[[links]]
a = "h2:eth1"
b = "leaf2:eth2"

[[segments]]
name = "blue"
vni = 10010
flooding = "static"
leaves = ["leaf1", "leaf2"]
access = ["leaf1:eth2", "leaf2:eth2"]
"#;

/// The lab's files, and the fleet torn down however the test ends.
struct Fleet {
    lab: LabFiles,
}

impl Fleet {
    fn new() -> Self {
        Fleet { lab: LabFiles::new(LAB, "t9-in-the-lab-", LAB_FILE) }
    }

    /// A command in `node`'s namespace, straight through `ip netns exec`:
    /// what the kernel says, not what pi-lab says.
    fn ns(&self, node: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{LAB}-{node}")])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(out.status.success(), "{node}: {args:?}:\n{}", said(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -j link show dev PORT` of `node`.
    fn link(&self, node: &str, port: &str) -> serde_json::Value {
        let text = self.ns(node, &["ip", "-j", "link", "show", "dev", port]);
        let links: serde_json::Value = serde_json::from_str(&text).expect("ip JSON");
        links[0].clone()
    }

    fn flags(&self, node: &str, port: &str) -> Vec<String> {
        let link = self.link(node, port);
        let flags = link["flags"].as_array().expect("flags");
        flags.iter().map(|f| f.as_str().unwrap_or_default().to_string()).collect()
    }

    /// The IPv4 address of `node`'s `port`.
    fn address(&self, node: &str, port: &str) -> String {
        let text = self.ns(node, &["ip", "-4", "-o", "addr", "show", "dev", port]);
        let cidr = text.split_whitespace().nth(3).expect("an address").to_string();
        cidr.split('/').next().expect("address").to_string()
    }

    /// How many BGP sessions the leaves' agents report Established.
    fn sessions_established(&self) -> usize {
        let out = self.pi_lab(&["status", "--json", "--node", "leaf1", "--node", "leaf2"]);
        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        nodes
            .iter()
            .flat_map(|n| n["report"]["bgp"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["established"] == true)
            .count()
    }

    /// The processes in `node`'s namespace named `name`.
    fn processes(&self, node: &str, name: &str) -> Vec<String> {
        let pids = Command::new("ip")
            .args(["netns", "pids", &format!("{LAB}-{node}")])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == name)
            })
            .map(str::to_string)
            .collect()
    }
}

crate::common::lab_files_inside!(Fleet);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn working_in_a_virtual_fleet_lab() {
    let needs = ["ip", "vtysh", "ping", "tcpdump", "tshark", "tc"];
    if !prerequisites("working_in_a_virtual_fleet_lab", true, &needs) {
        return;
    }
    let mut fleet = Fleet::new();
    fleet.up();
    let out = fleet.pi_lab(&["validate", "--deadline", "90s", "--no-sflow"]);
    assert!(out.status.success(), "the lab does not work to begin with:\n{}", said(&out));

    connect_brings_the_exit_code_back(&fleet);
    connect_all_runs_on_every_node(&fleet);
    capture_holds_both_ports_in_one_file(&fleet);
    capture_stops_after_count_packets(&fleet);
    refusals_run_and_change_nothing(&fleet);
    impair_on_this_host(&fleet);
    a_link_held_down_fails_bgp_until_it_is_up(&fleet);
}

fn connect_brings_the_exit_code_back(fleet: &Fleet) {
    let out =
        fleet.pi_lab(&["lab", "connect", "h1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", said(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    // It runs inside the node: h1's own address on its eth1.
    let out = fleet
        .pi_lab(&["lab", "connect", "h1", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth1"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(stdout(&out).contains(&fleet.address("h1", "eth1")), "{}", said(&out));

    let out = fleet
        .pi_lab(&["lab", "connect", "leaf1", "--vtysh", "--", "show", "bgp", "summary", "json"]);
    assert!(out.status.success(), "{}", said(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("vtysh JSON");
    assert_eq!(summary["ipv4Unicast"]["as"], 65001, "{summary}");

    // A login shell, fed from a pipe: it knows its node, and its exit
    // code comes back too.
    let mut shell = fleet.command(&["lab", "connect", "h2"]);
    let mut child = shell.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo \"$PI_LAB_NODE $(hostname)\"; exit 3\n")
        .expect("write");
    let out = child.wait_with_output().expect("shell");
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert_eq!(stdout(&out), "h2 h2\n");
}

fn connect_all_runs_on_every_node(fleet: &Fleet) {
    let nodes = ["h1", "h2", "leaf1", "leaf2"];
    let out = fleet.pi_lab(&[
        "lab", "connect", "--all", "--", "ip", "-4", "-o", "addr", "show", "dev", "mgmt0",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let text = stdout(&out);
    for node in nodes {
        let line = text.lines().find(|l| l.starts_with(&format!("{node}: "))).unwrap_or_default();
        assert!(
            line.contains(&format!("inet {}/", fleet.address(node, "mgmt0"))),
            "{node}:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), 4, "{text}");

    // Only the leaves have an eth2: the hosts fail, and so does pi-lab.
    let out = fleet
        .pi_lab(&["lab", "connect", "--all", "--json", "--", "ip", "link", "show", "dev", "eth2"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let runs = runs.as_array().expect("array");
    let names: Vec<&str> = runs.iter().map(|r| r["node"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, nodes);
    for run in runs {
        let leaf = run["node"].as_str().is_some_and(|n| n.starts_with("leaf"));
        assert_eq!(run["exit_code"] == 0, leaf, "{run}");
        assert_eq!(run["stdout"].as_str().unwrap_or_default().contains("eth2"), leaf, "{run}");
        assert_eq!(run["stderr"].as_str().unwrap_or_default().is_empty(), leaf, "{run}");
    }
}

/// A capture started, run until `ready` is said on stderr; then `during`,
/// then Ctrl-C. The pcapng and what pi-lab said.
fn capture_while(fleet: &Fleet, args: &[&str], during: impl FnOnce()) -> (Output, String) {
    let mut child = fleet
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capture");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut said_first = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        said_first.push_str(&line);
        said_first.push('\n');
        if line.starts_with("capturing on") || line.starts_with("error") {
            break;
        }
    }
    assert!(said_first.contains("capturing on"), "the capture did not start:\n{said_first}");
    during();
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().expect("capture");
    (out, format!("{said_first}{}", rest.join("\n")))
}

fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-r".to_string(), file.display().to_string(), "-T".into(), "fields".into()];
    for f in fields {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark");
    assert!(out.status.success(), "tshark cannot read {}:\n{}", file.display(), said(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

fn capture_holds_both_ports_in_one_file(fleet: &Fleet) {
    let file = fleet.dir.join("ping.pcapng");
    let path = file.display().to_string();
    let h2 = fleet.address("h2", "eth1");
    let args = ["capture", "h1:eth1", "h2:eth1", "-w", &path, "--filter", "icmp"];
    let (out, said_) = capture_while(fleet, &args, || {
        let ping = fleet.pi_lab(&[
            "lab", "connect", "h1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "2", &h2,
        ]);
        assert!(ping.status.success(), "h1 cannot ping h2:\n{}", said(&ping));
        std::thread::sleep(Duration::from_millis(500));
    });
    assert!(out.status.success(), "capture: exit {:?}\n{said_}", out.status.code());

    // Every echo and reply crossed both ends of the segment.
    let seen = tshark_fields(&file, &["frame.interface_name", "icmp.type"]);
    let count = |want: &str| seen.iter().filter(|l| *l == want).count();
    for kind in ["8", "0"] {
        let (h1, h2) = (count(&format!("h1:eth1\t{kind}")), count(&format!("h2:eth1\t{kind}")));
        assert!(
            h1 >= 1 && h1 == h2,
            "ICMP type {kind}: {h1} on h1, {h2} on h2:\n{}",
            seen.join("\n")
        );
    }
    let (h1, h2) =
        (count("h1:eth1\t8") + count("h1:eth1\t0"), count("h2:eth1\t8") + count("h2:eth1\t0"));
    assert_eq!(seen.len(), h1 + h2, "only ICMP passes the filter:\n{}", seen.join("\n"));
    let summary = format!("captured {} packets (h1:eth1 {h1}, h2:eth1 {h2})", h1 + h2);
    assert!(said_.contains(&summary), "{summary:?} not in\n{said_}");
    for node in ["h1", "h2"] {
        assert!(fleet.processes(node, "tcpdump").is_empty(), "a tcpdump is left on {node}");
    }
}

fn capture_stops_after_count_packets(fleet: &Fleet) {
    // BGP keepalives cross leaf1:eth1 every 3 s; two are enough.
    let started = Instant::now();
    let out = fleet
        .command(&[
            "capture",
            "leaf1:eth1",
            "leaf2:eth1",
            "--count",
            "2",
            "--filter",
            "tcp port 179",
            "-w",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("capture");
    assert!(out.status.success(), "{}", said(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "--count did not end it");
    let file = fleet.dir.join("count.pcapng");
    std::fs::write(&file, &out.stdout).expect("write pcapng");
    let seen = tshark_fields(&file, &["frame.interface_name", "tcp.port"]);
    assert_eq!(seen.len(), 2, "{}", seen.join("\n"));
    assert!(seen.iter().all(|l| l.starts_with("leaf") && l.contains("179")), "{seen:?}");
    for node in ["leaf1", "leaf2"] {
        assert!(fleet.processes(node, "tcpdump").is_empty(), "a tcpdump is left on {node}");
    }
}

fn refusals_run_and_change_nothing(fleet: &Fleet) {
    let marker = fleet.dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let out = fleet.pi_lab(&["lab", "connect", "leaf9", "--", "sh", "-c", &touch]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(stderr(&out).contains("h1, h2, leaf1, leaf2"), "{}", said(&out));
    assert!(!marker.exists(), "the command ran for an unknown node");

    let links_before = [fleet.link("leaf1", "eth1"), fleet.link("leaf1", "mgmt0")];
    for port in ["leaf1:eth7", "leaf1:mgmt0"] {
        let out = fleet.pi_lab(&["lab", "link", port, "down"]);
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        assert!(stderr(&out).contains("leaf1's link ports are: eth1, eth2"), "{}", said(&out));
    }
    let links_after = [fleet.link("leaf1", "eth1"), fleet.link("leaf1", "mgmt0")];
    assert_eq!(links_before, links_after, "a refused `link down` changed a link");

    let out = fleet.pi_lab(&["capture", "h1:eth9", "-w", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(stderr(&out).contains("h1 has no interface eth9"), "{}", said(&out));
    assert!(out.stdout.is_empty(), "nothing is captured");

    let qdisc = fleet.ns("leaf1", &["tc", "qdisc", "show", "dev", "eth1"]);
    for (bad, says) in [
        (&["--delay", "61s"][..], "longer than the longest delay, 60s"),
        (&["--delay=-1ms"], "negative"),
        (&["--loss", "101%"], "more than 100%"),
        (&["--rate", "0bit"], "above 0"),
        (&["--rate", "10mbps"], "bytes per second"),
        (&["--jitter", "5ms"], "--delay"),
    ] {
        let mut args = vec!["lab", "impair", "leaf1:eth1"];
        args.extend(bad);
        let out = fleet.pi_lab(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", said(&out));
        assert!(stderr(&out).contains(says), "{bad:?}: {}", said(&out));
    }
    let out = fleet.pi_lab(&["lab", "impair", "h1:eth9", "--delay", "5ms"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(stderr(&out).contains("h1's link ports are: eth1"), "{}", said(&out));
    assert_eq!(fleet.ns("leaf1", &["tc", "qdisc", "show", "dev", "eth1"]), qdisc);
}

/// Whether this host's kernel can give netem (as the command judges it).
fn host_has_netem() -> bool {
    Path::new("/sys/module/sch_netem").exists()
        || Command::new("modprobe")
            .args(["-n", "-q", "sch_netem"])
            .status()
            .is_ok_and(|s| s.success())
}

fn impair_on_this_host(fleet: &Fleet) {
    let qdisc = || fleet.ns("leaf1", &["tc", "qdisc", "show", "dev", "eth1", "root"]);
    let before = qdisc();
    let out = fleet.pi_lab(&["lab", "impair", "leaf1:eth1", "--delay", "20ms", "--loss", "1%"]);
    if host_has_netem() {
        // Not the machines this was written on; check the real thing.
        assert!(out.status.success(), "{}", said(&out));
        let set = qdisc();
        assert!(
            set.contains("netem") && set.contains("delay 20ms") && set.contains("loss 1%"),
            "{set}"
        );
        let out = fleet.pi_lab(&["lab", "impair", "leaf1:eth1", "--clear"]);
        assert!(out.status.success(), "{}", said(&out));
        assert!(!qdisc().contains("netem"), "{}", qdisc());
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(stderr(&out).contains("no sch_netem module"), "{}", said(&out));
    assert!(stderr(&out).contains("nothing was changed"), "{}", said(&out));
    assert_eq!(qdisc(), before, "a refused impairment changed the qdisc");
    let out = fleet.pi_lab(&["lab", "impair", "leaf1:eth1", "--clear"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(stdout(&out).contains("had no impairment"), "{}", said(&out));
}

fn a_link_held_down_fails_bgp_until_it_is_up(fleet: &Fleet) {
    assert_eq!(fleet.sessions_established(), 2, "leaf1 and leaf2 peer before the cut");
    let cut = Instant::now();
    let out = fleet.pi_lab(&["lab", "link", "leaf1:eth1", "down"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(stdout(&out).contains("leaf2:eth1 lost its carrier"), "{}", said(&out));
    assert!(!fleet.flags("leaf1", "eth1").contains(&"UP".to_string()), "leaf1:eth1 is not down");
    assert!(
        fleet.flags("leaf2", "eth1").contains(&"NO-CARRIER".to_string()),
        "leaf2 still has carrier"
    );

    // validate counts a check that passed once as passed: wait until both
    // agents have seen the session go, as they report it.
    let deadline = Instant::now() + Duration::from_secs(40);
    while fleet.sessions_established() > 0 {
        assert!(Instant::now() < deadline, "the agents still report the session up");
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = fleet.pi_lab(&["validate", "--deadline", "10s", "--no-sflow"]);
    assert_eq!(out.status.code(), Some(1), "validate with a cut link:\n{}", said(&out));
    let text = stdout(&out);
    let failed = text.split("failed checks:").nth(1).unwrap_or_default();
    assert!(failed.contains("bgp leaf1 -> leaf2"), "the cut session is not named:\n{text}");
    assert!(failed.contains("bgp leaf2 -> leaf1"), "{text}");

    // The agent reconciles every 10 s and on every link change: after
    // more than one pass the port must still be down.
    let pass = Duration::from_secs(12);
    std::thread::sleep(pass.saturating_sub(cut.elapsed()));
    assert!(!fleet.flags("leaf1", "eth1").contains(&"UP".to_string()), "the agent brought it up");
    assert_eq!(fleet.link("leaf1", "eth1")["ifalias"], "held down");

    let out = fleet.pi_lab(&["lab", "link", "leaf1:eth1", "up"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(fleet.flags("leaf1", "eth1").contains(&"UP".to_string()));
    assert!(fleet.link("leaf1", "eth1").get("ifalias").is_none(), "the mark stayed");
    let out = fleet.pi_lab(&["validate", "--deadline", "90s", "--no-sflow"]);
    assert!(out.status.success(), "validate once the link is up:\n{}", said(&out));
    assert!(stdout(&out).contains(" 0 failed"), "{}", said(&out));
}

/// The lab above, renamed `t9tc` on its own management subnet, with the
/// leaves' link impaired in the lab file (`tc`, both ends).
fn impaired_lab_file() -> String {
    LAB_FILE.replace("t9inlab", "t9tc").replace("192.168.220.", "192.168.221.").replace(
        "b = \"leaf2:eth1\"\n",
        "b = \"leaf2:eth1\"\ntc = { delay = \"20ms\", loss = \"1%\" }\n",
    )
}

/// A lab file that impairs a link: `lab check` takes it; `lab up` on this
/// host's kernel (no netem) refuses before it starts anything, naming
/// sch_netem and the impaired ends. A kernel with netem runs the lab and
/// `status` shows each end's impairment as the lab file's.
#[test]
fn a_lab_file_that_impairs_needs_netem_on_the_virtual_fleet() {
    let test = "a_lab_file_that_impairs_needs_netem_on_the_virtual_fleet";
    if !prerequisites(test, true, &["ip", "vtysh", "tc"]) {
        return;
    }
    let mut lab = LabFiles::new("t9tc", "t9-tc-", &impaired_lab_file());
    let out = lab.pi_lab(&["lab", "check"]);
    assert!(out.status.success(), "{}", said(&out));
    let out = lab.pi_lab(&["lab", "up", "--timeout", "180"]);
    if host_has_netem() {
        lab.up = true;
        assert!(out.status.success(), "{}", said(&out));
        let status = lab.pi_lab(&["status", "--json", "--node", "leaf1"]);
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        let shown = json[0]["impairments"][0].as_str().unwrap_or_default().to_string();
        assert_eq!(shown, "eth1: delay 20ms, loss 1%", "{}", said(&status));
        return;
    }
    assert!(!out.status.success(), "{}", said(&out));
    let err = stderr(&out);
    assert!(err.contains("no sch_netem module"), "{}", said(&out));
    assert!(err.contains("leaf1:eth1 (delay 20ms, loss 1%), leaf2:eth1 (delay 20ms"), "{err}");
    assert!(err.contains("nothing was started"), "{err}");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().expect("ip netns");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout).into_owned();
    assert!(!namespaces.contains("t9tc-"), "a refused lab made namespaces:\n{namespaces}");
    let state = lab.dir.join("state");
    let left: Vec<_> = std::fs::read_dir(&state).expect("state dir").flatten().collect();
    assert!(left.is_empty(), "a refused lab left state behind: {left:?}");
}
