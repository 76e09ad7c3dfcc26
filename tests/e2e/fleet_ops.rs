//! Fleet operations on a virtual fleet: `pi-lab provision`, `status`,
//! `validate` and `inventory` against real agents, FRR and namespaces; the
//! management API refusing what it must refuse.
//!
//! Lab names start with `t5`; the management subnet 192.168.205.0/24 and
//! the sFlow collector port 16343 are this test's own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{LabFiles, prerequisites, said};

const LAB: &str = "t5ops";

/// spine1 between two leaves; h1 and h2 in a static-flooding segment and in
/// an EVPN segment.
const LAB_FILE: &str = r#"
name = "t5ops"

[management]
subnet = "192.168.205.0/24"
controller = "192.168.205.1"

[sflow]
collectors = ["192.168.205.1:16343"]
polling_interval = 5
sampling_rate = 0

[nodes.spine1]
role = "spine"
asn = 65000

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
a = "spine1:eth1"
b = "leaf1:eth1"

[[links]]
a = "spine1:eth2"
b = "leaf2:eth1"

[[links]]
a = "h1:eth1"
b = "leaf1:eth2"

[[links]]
a = "h2:eth1"
b = "leaf2:eth2"

[[links]]
a = "h1:eth2"
b = "leaf1:eth3"

[[links]]
a = "h2:eth2"
b = "leaf2:eth3"

[[segments]]
name = "blue"
vni = 10010
flooding = "static"
leaves = ["leaf1", "leaf2"]
access = ["leaf1:eth2", "leaf2:eth2"]

[[segments]]
name = "green"
vni = 10020
flooding = "evpn"
leaves = ["leaf1", "leaf2"]
access = ["leaf1:eth3", "leaf2:eth3"]
"#;

/// The lab's files, and the fleet torn down however the test ends.
struct Fleet {
    lab: LabFiles,
}

impl Fleet {
    fn new() -> Self {
        Fleet { lab: LabFiles::new(LAB, "t5-fleet-ops-", LAB_FILE) }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("state").join(LAB).join("token"))
            .expect("lab token file")
            .trim()
            .to_string()
    }

    /// Each node's API address, from `pi-lab inventory --format prometheus`.
    fn apis(&self) -> Vec<(String, SocketAddr)> {
        let out = self.pi_lab(&["inventory", "--format", "prometheus"]);
        assert!(out.status.success(), "{}", said(&out));
        let groups: serde_json::Value = serde_json::from_slice(&out.stdout).expect("file_sd JSON");
        groups
            .as_array()
            .expect("array")
            .iter()
            .map(|g| {
                let node = g["labels"]["node"].as_str().expect("node label").to_string();
                let addr = g["targets"][0].as_str().expect("target").parse().expect("addr");
                (node, addr)
            })
            .collect()
    }

    fn api(&self, node: &str) -> SocketAddr {
        self.apis().into_iter().find(|(n, _)| n == node).expect("node in inventory").1
    }

    fn ns(&self, node: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{LAB}-{node}")])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

crate::common::lab_files_inside!(Fleet);

/// One raw HTTP request; (status, body).
fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn put_config(addr: SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    http(
        addr,
        &format!(
            "PUT /v1/config HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn health(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = http(addr, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("health JSON")
}

fn running_version(addr: SocketAddr) -> String {
    health(addr)["reconcile"]["config_version"].as_str().unwrap_or("").to_string()
}

fn current_config(addr: SocketAddr, token: &str) -> serde_json::Value {
    let (status, body) = http(
        addr,
        &format!("GET /v1/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("config JSON")
}

#[test]
fn fleet_operations_on_a_virtual_fleet() {
    if !prerequisites("fleet_operations_on_a_virtual_fleet", true, &["ip", "vtysh", "ping", "nft"])
    {
        return;
    }
    let mut fleet = Fleet::new();
    fleet.up();

    provisioning_works_and_everything_is_healthy(&fleet);
    refusals_change_nothing(&fleet);
    a_config_frr_rejects_is_rolled_back(&fleet);
    validate_names_a_cut_link(&fleet);
    a_dead_node_is_reported_and_the_others_succeed(&fleet);
}

fn provisioning_works_and_everything_is_healthy(fleet: &Fleet) {
    let out = fleet.pi_lab(&["provision", "--timeout", "90"]);
    assert!(out.status.success(), "provision:\n{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 of 5 nodes provisioned"), "{text}");

    // At once: the agents must not report what FRR said a pass ago.
    let out = fleet.pi_lab(&["status", "--json"]);
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let nodes = nodes.as_array().expect("array");
    let unhealthy: Vec<String> = nodes
        .iter()
        .filter(|n| n["healthy"] != true)
        .map(|n| format!("{}: {}", n["node"], n["problems"]))
        .collect();
    assert!(
        out.status.success() && unhealthy.is_empty(),
        "status exit {:?}, unhealthy: {unhealthy:#?}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(nodes.len(), 5);
    let table = fleet.pi_lab(&["status"]);
    assert!(table.status.success(), "{}", said(&table));
    assert!(String::from_utf8_lossy(&table.stdout).contains("leaf1"));

    let out = fleet.pi_lab(&["validate", "--deadline", "90s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "validate:\n{}", said(&out));
    assert!(text.contains(" 0 failed"), "{text}");
    for expected in [
        "leaf1 -> spine1",
        "VNI 10010 (blue, static)",
        "VNI 10020 (green, evpn) floods to 10.0.0.",
        "blue: h1 -> h2:eth1",
        "green: h1 -> h2:eth2",
        "exports sFlow",
    ] {
        assert!(text.contains(expected), "no check {expected:?} in\n{text}");
    }
}

fn refusals_change_nothing(fleet: &Fleet) {
    let addr = fleet.api("leaf1");
    let token = fleet.token();
    let before = running_version(addr);
    let mut config = current_config(addr, &token);
    config["hostname"] = "leaf1-renamed".into();
    config["version"] = "".into();
    let body = config.to_string();

    let (status, answer) = put_config(addr, None, &body);
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = put_config(addr, Some("not-the-lab-token"), &body);
    assert_eq!(status, 401, "{answer}");
    // Oversized: refused before the body is read.
    let big = format!(
        "PUT /v1/config HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000000\r\n\r\n"
    );
    assert_eq!(http(addr, &big).0, 413);
    // Malformed.
    let (status, answer) = put_config(addr, Some(&token), "{\"schema\": 1");
    assert_eq!(status, 400, "{answer}");

    assert_eq!(running_version(addr), before, "a refused request changed the config");
    assert_eq!(current_config(addr, &token)["hostname"], "leaf1");
}

fn a_config_frr_rejects_is_rolled_back(fleet: &Fleet) {
    let addr = fleet.api("leaf1");
    let token = fleet.token();
    let before = running_version(addr);
    let mut config = current_config(addr, &token);
    // FRR refuses to peer with its own address ("Can not configure the
    // local system as neighbor"); the NodeConfig itself is well-formed.
    let own = config["interfaces"][0]["address"].as_str().expect("eth1 address");
    let own = own.split('/').next().expect("address").to_string();
    config["bgp"]["neighbors"][0]["address"] = own.into();
    config["version"] = "".into();
    let (status, answer) = put_config(addr, Some(&token), &config.to_string());
    assert_eq!(status, 409, "FRR's refusal must roll back: {answer}");
    match lab_spec::ConfigAnswer::from_http(status, &answer) {
        Ok(lab_spec::ConfigAnswer::RolledBack { error, rolled_back_to }) => {
            assert_eq!(rolled_back_to, before, "{answer}");
            assert!(error.contains("frr"), "{answer}");
        }
        other => panic!("not a rollback: {other:?}"),
    }
    assert_eq!(running_version(addr), before);
    // Still healthy once the sessions are back (they may flap during the try).
    let out = fleet.pi_lab(&["validate", "--deadline", "60s", "--no-sflow"]);
    assert!(out.status.success(), "after rollback:\n{}", said(&out));
}

/// The cable between leaf1 and spine1 stops carrying anything. (Setting
/// the port down with `ip link` is no cut: the agent sets it up again
/// within a second; `pi-lab lab link` holds it down, see in_the_lab.rs.)
fn validate_names_a_cut_link(fleet: &Fleet) {
    let nft = |script: &str| {
        let out = fleet.ns("leaf1", &["nft", script]);
        assert!(out.status.success(), "nft {script}: {}", said(&out));
    };
    nft("add table inet t5cut; \
         add chain inet t5cut in { type filter hook input priority 0; }; \
         add chain inet t5cut out { type filter hook output priority 0; }; \
         add rule inet t5cut in iifname eth1 drop; \
         add rule inet t5cut out oifname eth1 drop");
    // The session goes down when its hold time (9 s) runs out.
    let addr = fleet.api("leaf1");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while health(addr)["bgp"].as_array().is_some_and(|n| n.iter().all(|n| n["established"] == true))
    {
        assert!(std::time::Instant::now() < deadline, "the cut did not bring BGP down");
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = fleet.pi_lab(&["validate", "--deadline", "10s", "--no-sflow"]);
    nft("delete table inet t5cut");
    assert_eq!(out.status.code(), Some(1), "validate with a cut link:\n{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed checks:"), "{text}");
    assert!(text.contains("bgp leaf1 -> spine1"), "the broken session is not named:\n{text}");
    assert!(text.contains("reachability blue: h1 -> h2"), "{text}");
    for line in text.lines().filter(|l| l.contains("leaf2 -> spine1")) {
        assert!(line.starts_with("PASS"), "an intact session failed: {line}\n{text}");
    }
}

fn a_dead_node_is_reported_and_the_others_succeed(fleet: &Fleet) {
    let pids =
        Command::new("ip").args(["netns", "pids", &format!("{LAB}-h2")]).output().expect("pids");
    let mut killed = 0;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "node-agent" {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "no node-agent in {LAB}-h2");
    let out = fleet.pi_lab(&["provision", "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(1), "provision with a dead node:\n{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 of 5 nodes provisioned"), "{text}");
    let h2 = text.lines().find(|l| l.starts_with("h2 ")).unwrap_or_default();
    assert!(h2.contains("UNREACHABLE"), "{text}");
}
