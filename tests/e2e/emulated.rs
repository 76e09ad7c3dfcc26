//! Emulated boards: the whole board path in one piece. The image built by
//! the image tests is written to one card per node (flash's code path),
//! each card boots in `qemu-system-aarch64 -M raspi3b` with its one NIC on
//! a bridge that plays the managed switch, and then only the commands users
//! run on real boards drive the lab: provision, status, validate, down.
//!
//! The lab: a board per core. examples/two-leaf-boards.toml on 2 or 3
//! cores (two leaves, eBGP over VLAN 101 on eth0, a static VXLAN segment
//! with their irb addresses); examples/boards.toml from 4 cores (the same
//! leaves, and two hosts in the segment, each on an access VLAN).
//!
//! Every emulator of the suite runs in the one test here, the image's own
//! boot checks (image.rs) included: see `emulated_boards`.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{bin, prerequisites, take_down_labs, workspace};
use crate::emulator::emulator_turn;

const TOOLS: &[&str] =
    &["qemu-system-aarch64", "nft", "ssh", "ssh-keygen", "mmdebstrap", "mcopy", "mtype", "mdir"];

/// Every emulator of the suite, one after another in one test that holds
/// the emulator turn throughout: the image booting from a card and from a
/// USB drive, then the labs of boards. An emulated Pi 3B keeps a core busy,
/// so two at once make both miss their deadlines; and as one test they
/// occupy one test thread, while the other runs everything else instead of
/// waiting for its turn.
#[test]
fn emulated_boards() {
    if !prerequisites("emulated_boards", true, TOOLS) {
        return;
    }
    // Waited for before the turn: the turn is for running emulators.
    let image = crate::image::built().img();
    let _turn = emulator_turn("emulated_boards");
    crate::image::image_boots_in_qemu_raspi3b();
    crate::image::image_boots_from_a_usb_drive_in_qemu_raspi3b();
    boards_ctrl_c_takes_the_lab_down(&image);
    boards_run_the_lab_end_to_end(&image);
    zero_touch_boards_are_found_and_provisioned(&image);
}

/// The lab the end-to-end run brings up: no more boards than the machine
/// has cores (an emulated Pi 3B keeps one busy). Two leaves still prove the
/// board path: eBGP over eth0.101, a ping across the VXLAN segment between
/// their IRB addresses, sFlow from each board, status, a clean down. With
/// four cores or more, the four-board lab adds hosts on access VLANs.
struct BoardLab {
    name: &'static str,
    file: &'static str,
    nodes: &'static [&'static str],
}

fn board_lab() -> BoardLab {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores >= 4 {
        BoardLab {
            name: "boards",
            file: "examples/boards.toml",
            nodes: &["leaf1", "leaf2", "h1", "h2"],
        }
    } else {
        BoardLab {
            name: "two-leaf-boards",
            file: "examples/two-leaf-boards.toml",
            nodes: &["leaf1", "leaf2"],
        }
    }
}

/// `pi-lab lab up FILE --boards emulated --json` on `image`, plus `extra`.
fn boards_up(state: &Path, file: &str, image: &Path, extra: &[&str]) -> Output {
    let image = image.to_str().unwrap();
    let mut args = vec!["lab", "up", file, "--boards", "emulated", "--json"];
    args.extend(["--timeout", UP_TIMEOUT, "--image", image]);
    args.extend(extra);
    pi_lab(state, &args)
}

/// `lab up --timeout`: the default (900 s) holds on a quiet machine; CI
/// runs other tests beside the boards.
const UP_TIMEOUT: &str = "1500";

/// `validate --deadline` for the boards, for the same reason.
const VALIDATE_DEADLINE: &str = "180s";

/// A lab state directory of its own, so nothing mixes with the user's.
fn state(test: &str) -> PathBuf {
    let dir = workspace().join("target/pi-lab-emulated-test").join(test);
    // A killed run's boards may still be up: down them, then start clean.
    take_down_labs(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pi_lab(state: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin("pi-lab"))
        .current_dir(workspace())
        .env("PI_LAB_STATE_DIR", state)
        .env_remove("PI_LAB_TOKEN")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ pi-lab {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// Takes the lab down when the test ends, however it ends.
struct Down<'a> {
    state: &'a Path,
    lab: &'a str,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = pi_lab(self.state, &["lab", "down", "--name", self.lab]);
    }
}

/// What `lab down` must leave: no emulator, tap, bridge, switch rules or
/// card of the lab.
fn assert_nothing_left(state: &Path, lab: &str) {
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let state_text = state.display().to_string();
    let qemus: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains("qemu-system-aarch64") && l.contains(&state_text))
        .collect();
    assert!(qemus.is_empty(), "emulators left running: {qemus:?}");
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let ours: Vec<&str> = links.lines().filter(|l| l.starts_with(&format!("{lab}-"))).collect();
    assert!(ours.is_empty(), "taps or bridge left: {ours:?}");
    let nft = Command::new("nft").args(["list", "tables"]).output().unwrap();
    let nft = String::from_utf8_lossy(&nft.stdout);
    assert!(!nft.contains(&format!("pi_lab_{lab}")), "switch rules left: {nft}");
    let fleet = state.join(lab).join("fleet");
    assert!(!fleet.exists(), "{} (cards, consoles, journal) left", fleet.display());
}

fn boards_run_the_lab_end_to_end(image: &Path) {
    let BoardLab { name: lab, file, nodes: names } = board_lab();
    eprintln!("=== boards_run_the_lab_end_to_end: {file}, {} boards", names.len());
    let state = state("e2e");
    let _down = Down { state: &state, lab };

    let up = boards_up(&state, file, image, &[]);
    assert!(up.status.success(), "lab up --boards emulated failed");
    let up = json(&up);
    assert_eq!(up["boards"], "emulated");
    let nodes = up["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), names.len(), "{nodes:?}");
    for n in nodes {
        assert_eq!(n["phase"], "healthy", "{n}");
        let mac = n["mac"].as_str().unwrap();
        assert!(mac.starts_with("b8:27:eb:"), "{n}");
    }

    // The commands users run on real boards.
    let provision = pi_lab(&state, &["provision", file, "--json"]);
    assert!(provision.status.success(), "provision failed");
    let status = pi_lab(&state, &["status", file, "--json"]);
    assert!(status.status.success(), "status says a board is unhealthy");
    let status = json(&status);
    for node in status.as_array().unwrap() {
        let name = node["node"].as_str().unwrap();
        let report = &node["report"];
        assert_eq!(node["healthy"], true, "{node}");
        // The board took the hostname from its card, not the image's.
        assert_eq!(report["system"]["hostname"], name, "{node}");
        // Ages come from the board's monotonic clock: a pass a few seconds
        // ago, never "227 days ago".
        let age = report["reconcile"]["last_run_age_seconds"].as_u64().unwrap();
        assert!(age < 120, "{name}: last pass {age} s ago");
    }
    let leaf1 = status.as_array().unwrap().iter().find(|n| n["node"] == "leaf1").unwrap();
    let bgp = leaf1["report"]["bgp"].as_array().unwrap();
    assert_eq!(bgp.len(), 1, "{bgp:?}");
    assert_eq!(bgp[0]["state"], "Established");

    // Each attempt pings over SSH on emulated boards (seconds each); CI
    // runs other tests beside them, so give validate more than its 60 s.
    let validate = pi_lab(&state, &["validate", file, "--json", "--deadline", VALIDATE_DEADLINE]);
    assert!(validate.status.success(), "validate failed");
    let report = json(&validate);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["skipped"], 0, "pings go over SSH with the lab's key: {report}");
    let passed = |kind: &str| -> Vec<String> {
        let checks = report["checks"].as_array().unwrap().iter();
        checks
            .filter(|c| c["kind"] == kind && c["verdict"] == "pass")
            .map(|c| c["node"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for kind in ["bgp", "vxlan", "reachability"] {
        assert!(!passed(kind).is_empty(), "validate passed no {kind} check: {report}");
    }
    let exporting = passed("sflow");
    for name in names {
        assert!(exporting.iter().any(|n| n == name), "no sFlow arrived from {name}: {report}");
    }

    // BGP runs over the 802.1Q sub-interface the agent made on eth0.
    let key = state.join(lab).join("ssh/id_ed25519");
    let known = state.join(lab).join("ssh/known_hosts");
    let mgmt = node_address(&state, file, "leaf1");
    let vlan = ssh(&key, &known, &mgmt, "ip -d link show eth0.101");
    assert!(vlan.contains("vlan protocol 802.1Q id 101"), "{vlan}");
    assert!(vlan.contains("@eth0"), "{vlan}");

    // FRR is not part of the boot (Debian's package enables it; the image's
    // drop-in keeps it out until the agent asks): the agent started it on
    // the leaves, and on the hosts it never ran.
    let frr = ssh(&key, &known, &mgmt, "systemctl is-active frr || true");
    assert_eq!(frr.trim(), "active", "the agent started FRR on leaf1");
    if names.contains(&"h1") {
        let h1 = node_address(&state, file, "h1");
        let frr = ssh(&key, &known, &h1, "systemctl is-active frr || true");
        assert_eq!(frr.trim(), "inactive", "hosts run no routing stack");
    }

    working_in_the_lab(&state, file, names);

    let down = pi_lab(&state, &["lab", "down", file]);
    assert!(down.status.success(), "lab down failed");
    assert_nothing_left(&state, lab);
}

/// The commands for working inside a lab, on boards (over SSH with the
/// lab's key): connect (exit codes, `--all`), a capture from two boards, a
/// 20 ms delay on the VLAN link seen in ping times (the boards' Debian
/// kernel has netem), and a route typed into leaf1's vtysh that is still
/// there after leaf1 reboots.
fn working_in_the_lab(state: &Path, file: &str, names: &[&str]) {
    let connect = |node: &str, command: &[&str]| {
        let mut args = vec!["lab", "connect", file, node, "--"];
        args.extend(command);
        pi_lab(state, &args)
    };
    let out = connect("leaf1", &["sh", "-c", "ip -br link show eth0.101; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "connect passes the command's exit code on");
    assert!(String::from_utf8_lossy(&out.stdout).contains("eth0.101"));
    let all = pi_lab(state, &["lab", "connect", file, "--all", "--", "hostname"]);
    assert!(all.status.success(), "connect --all");
    let said = String::from_utf8_lossy(&all.stdout);
    for name in names {
        assert!(said.lines().any(|l| l == format!("{name}: {name}")), "{name}:\n{said}");
    }

    let leaf2 = port_address(state, file, "leaf2", "eth0.101");
    board_capture_holds_the_pings(state, file, &leaf2);

    let fastest = |out: Output| -> f64 {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rtt = text.lines().find_map(|l| l.split_once("rtt min/avg/max/mdev = "));
        let min = rtt.and_then(|(_, v)| v.split('/').next()?.parse().ok());
        min.unwrap_or_else(|| panic!("no ping times in:\n{text}"))
    };
    let ping = ["ping", "-c", "10", "-i", "0.2", "-W", "3", leaf2.as_str()];
    let impair = pi_lab(state, &["lab", "impair", file, "leaf1:eth0.101", "--delay", "20ms"]);
    assert!(impair.status.success(), "lab impair on a board");
    let delayed = fastest(connect("leaf1", &ping));
    let clear = pi_lab(state, &["lab", "impair", file, "leaf1:eth0.101", "--clear"]);
    assert!(clear.status.success(), "lab impair --clear on a board");
    let plain = fastest(connect("leaf1", &ping));
    eprintln!("leaf1 -> leaf2 fastest ping: {delayed} ms with 20 ms delay, {plain} ms without");
    assert!(delayed >= 20.0, "a 20 ms delay, yet a ping took {delayed} ms");
    assert!(plain < 20.0, "the delay is cleared, yet no ping was under 20 ms ({plain} ms)");

    // The same delay written in the lab file: provision hands it to
    // leaf1's agent, which applies it and says so in status.
    let text = std::fs::read_to_string(workspace().join(file)).unwrap();
    let link = "b = \"leaf2:eth0.101\"\n";
    assert!(text.contains(link), "{file} has no leaf1 -- leaf2 link on VLAN 101");
    let with_tc = state.join("with-tc.toml");
    std::fs::write(
        &with_tc,
        text.replacen(link, &format!("{link}tc_a = {{ delay = \"20ms\" }}\n"), 1),
    )
    .unwrap();
    let with_tc = with_tc.to_str().unwrap();
    let impairments = |lab: &str| {
        let status = json(&pi_lab(state, &["status", lab, "--json", "--node", "leaf1"]));
        status[0]["impairments"].clone()
    };
    assert!(pi_lab(state, &["provision", with_tc]).status.success(), "provision with tc");
    until(60, "status shows no lab-file delay on leaf1", &|| {
        impairments(with_tc)[0] == "eth0.101: delay 20ms"
    });
    let in_file = fastest(connect("leaf1", &ping));
    assert!(in_file >= 20.0, "the lab file's 20 ms delay, yet a ping took {in_file} ms");
    assert!(pi_lab(state, &["provision", file]).status.success(), "provision without tc");
    until(60, "status still shows a delay on leaf1", &|| {
        impairments(file) == serde_json::json!([])
    });
    let after = fastest(connect("leaf1", &ping));
    eprintln!("with the lab file's delay: {in_file} ms; after it went: {after} ms");
    assert!(after < 20.0, "the lab file's delay is gone, yet no ping was under 20 ms");

    hand_change_survives_a_reboot(state, file, &connect);
}

/// Waits until `ok`, checking every 5 s; fails saying `what` after `secs`.
fn until(secs: u64, what: &str, ok: &dyn Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{what} after {secs} s");
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
}

/// `NODE:PORT`'s address in the lab, without its prefix length.
fn port_address(state: &Path, file: &str, node: &str, port: &str) -> String {
    let v = json(&pi_lab(state, &["lab", "render", "--json", file, node]));
    let ifaces = v["config"]["interfaces"].as_array().unwrap();
    let iface = ifaces.iter().find(|i| i["name"] == port).unwrap();
    iface["address"].as_str().unwrap().split('/').next().unwrap().to_string()
}

/// `pi-lab capture` on both ends of the VLAN link while leaf1 pings leaf2:
/// tcpdump runs on each board over SSH, the pcapng names both ports.
fn board_capture_holds_the_pings(state: &Path, file: &str, leaf2: &str) {
    let pcap = state.join("boards.pcapng");
    let pcap_arg = pcap.to_str().unwrap();
    let mut capture = Command::new(bin("pi-lab"))
        .current_dir(workspace())
        .env("PI_LAB_STATE_DIR", state)
        .env_remove("PI_LAB_TOKEN")
        .args(["capture", file, "leaf1:eth0.101", "leaf2:eth0.101", "--filter", "icmp"])
        .args(["--count", "6", "-w", pcap_arg])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump starts over SSH on each board (seconds on an emulated one):
    // ping until the capture has its packets.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while capture.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        pi_lab(
            state,
            &["lab", "connect", file, "leaf1", "--", "ping", "-c", "5", "-i", "0.5", leaf2],
        );
    }
    if capture.try_wait().unwrap().is_none() {
        let _ = capture.kill();
    }
    let out = capture.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture from boards:\n{said}");
    let tshark = Command::new("tshark")
        .args(["-r", pcap_arg, "-T", "fields", "-e", "frame.interface_name", "-e", "icmp.type"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&tshark.stdout).into_owned();
    assert!(tshark.status.success(), "tshark cannot read the capture");
    assert_eq!(seen.lines().count(), 6, "{seen}");
    for port in ["leaf1:eth0.101", "leaf2:eth0.101"] {
        assert!(seen.lines().any(|l| l.starts_with(&format!("{port}\t"))), "{port}:\n{seen}");
    }
}

/// A static route typed into leaf1's vtysh: status shows leaf1 as hand-
/// changed, and after leaf1 reboots (its agent starts again and applies
/// its config), the route is still in FRR's running config.
fn hand_change_survives_a_reboot(
    state: &Path,
    file: &str,
    connect: &dyn Fn(&str, &[&str]) -> Output,
) {
    const ROUTE: &str = "ip route 10.99.0.0/24 Null0";
    let typed = connect("leaf1", &["vtysh", "-c", "configure terminal", "-c", ROUTE]);
    assert!(typed.status.success(), "vtysh on leaf1");
    let drift = || {
        let status = json(&pi_lab(state, &["status", file, "--json"]));
        let leaf1 = status.as_array().unwrap().iter().find(|n| n["node"] == "leaf1").cloned();
        leaf1.map(|n| n["drift"].clone()).unwrap_or_default()
    };
    let hand_changed = |d: &serde_json::Value| d.as_str().is_some_and(|d| d.starts_with("hand-"));
    until(120, "status shows no hand change on leaf1", &|| hand_changed(&drift()));

    let boot_id = || {
        let out = connect("leaf1", &["cat", "/proc/sys/kernel/random/boot_id"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let before = boot_id().expect("leaf1's boot id");
    // The SSH session may end with the reboot; what counts is the new boot.
    connect("leaf1", &["systemctl", "reboot"]);
    until(900, "leaf1 did not boot again", &|| boot_id().is_some_and(|id| id != before));
    until_healthy(state, file, 600);
    let running = connect("leaf1", &["vtysh", "-c", "show running-config"]);
    let running = String::from_utf8_lossy(&running.stdout).into_owned();
    assert!(running.contains(ROUTE), "the route typed by hand is gone after a reboot:\n{running}");
    until(120, "status no longer shows leaf1's hand change", &|| hand_changed(&drift()));
}

/// `status --json` until it exits 0, or its last answer after `secs`.
fn until_healthy(state: &Path, file: &str, secs: u64) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let status = pi_lab(state, &["status", file, "--json"]);
        if status.status.success() || std::time::Instant::now() >= deadline {
            assert!(status.status.success(), "not healthy {secs} s after provisioning");
            return status;
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
}

fn node_address(state: &Path, file: &str, node: &str) -> String {
    let out = pi_lab(state, &["lab", "render", "--json", file, node]);
    let v = json(&out);
    let addr = v["config"]["management"]["address"].as_str().unwrap();
    addr.split('/').next().unwrap().to_string()
}

/// `command` on `host` as root. An emulated board under load can take
/// longer than a real one to send sshd's banner, so connecting is given a
/// minute and three tries (ssh exits 255 when it could not connect).
fn ssh(key: &Path, known: &Path, host: &str, command: &str) -> String {
    let run = || {
        Command::new("ssh")
            .args(["-i", key.to_str().unwrap(), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", &format!("UserKnownHostsFile={}", known.display())])
            .args(["-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=60"])
            .arg(format!("root@{host}"))
            .arg(command)
            .output()
            .unwrap()
    };
    let mut out = run();
    for _ in 1..3 {
        if out.status.code() != Some(255) {
            break;
        }
        out = run();
    }
    assert!(out.status.success(), "ssh {host} {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bad input is refused before anything is made, with what would be right.
#[test]
fn emulated_boards_refuse_what_cannot_run() {
    let tools = ["nft", "qemu-system-aarch64"];
    if !prerequisites("emulated_boards_refuse_what_cannot_run", true, &tools) {
        return;
    }
    let state = state("refusals");
    let dir = state.join("labs");
    std::fs::create_dir_all(&dir).unwrap();
    let refused = |file: &str, image: &Path| {
        let out = pi_lab(
            &state,
            &["lab", "up", file, "--boards", "emulated", "--image", image.to_str().unwrap()],
        );
        assert!(!out.status.success(), "lab up {file} was not refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // No image: the error names the command that makes one.
    let err = refused("examples/boards.toml", Path::new("/nonexistent.img"));
    assert!(err.contains("/nonexistent.img") && err.contains("pi-lab image build"), "{err}");
    assert!(!state.join("boards/fleet").exists(), "a refused up left its journal");

    // A lab port a one-port board cannot have.
    let usb = dir.join("usb.toml");
    let text = std::fs::read_to_string(workspace().join("examples/two-router.toml")).unwrap();
    std::fs::write(&usb, text.replace("name = \"two-router\"", "name = \"usb\"")).unwrap();
    let fake_image = dir.join("image.img");
    std::fs::write(&fake_image, b"not an image").unwrap();
    let err = refused(usb.to_str().unwrap(), &fake_image);
    assert!(err.contains("r1:eth1: an emulated Pi 3B has one Ethernet port, eth0"), "{err}");
    assert!(err.contains("r1:eth0.101"), "{err}");

    // qemu missing: the error names the Debian package.
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(bin("pi-lab"))
        .current_dir(workspace())
        .env("PI_LAB_STATE_DIR", &state)
        .env("PATH", format!("{}:/usr/sbin:/sbin", empty.display()))
        .args(["lab", "up", "examples/boards.toml", "--boards", "emulated"])
        .args(["--image", fake_image.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("qemu-system-arm"), "{err}");

    // More boards than memory (200 need about 280 GiB): refused with how
    // many would fit.
    let mut big = String::from("name = \"big\"\n[management]\nsubnet = \"192.168.211.0/24\"\n");
    for i in 0..200 {
        big.push_str(&format!("[nodes.h{i}]\nrole = \"host\"\n"));
    }
    let big_file = dir.join("big.toml");
    std::fs::write(&big_file, big).unwrap();
    let err = refused(big_file.to_str().unwrap(), &fake_image);
    assert!(err.contains("200 emulated boards need about") && err.contains("would fit"), "{err}");
    assert!(!state.join("big/fleet").exists(), "a refused up left its journal");
}

/// Zero-touch: cards of the lab but of no node. The boards come up
/// unprovisioned, get their management address over DHCP (a reservation
/// for their MAC), announce themselves, and `provision --discover` matches
/// them to nodes and gives them their configs; then they take their
/// hostnames and their time from the controller.
fn zero_touch_boards_are_found_and_provisioned(image: &Path) {
    eprintln!("=== zero_touch_boards_are_found_and_provisioned");
    let state = state("zero-touch");
    let lab = "two-router-boards";
    let file = "examples/two-router-boards.toml";
    let _down = Down { state: &state, lab };

    let up = boards_up(&state, file, image, &["--zero-touch"]);
    assert!(up.status.success(), "lab up --zero-touch failed");
    let up = json(&up);
    assert_eq!(up["zero_touch"], true);
    for n in up["nodes"].as_array().unwrap() {
        assert_eq!(
            n["phase"], "agent_up",
            "an unprovisioned board answers but runs no config: {n}"
        );
    }
    let status = pi_lab(&state, &["status", file]);
    assert!(!status.status.success(), "unprovisioned boards are not healthy");
    assert!(String::from_utf8_lossy(&status.stdout).contains("not provisioned"));

    let provision = pi_lab(&state, &["provision", file, "--discover", "60", "--json"]);
    assert!(provision.status.success(), "provision --discover failed");
    // Provisioned boards start FRR now: healthy once their sessions are up.
    let status = until_healthy(&state, file, 600);
    for node in json(&status).as_array().unwrap() {
        let name = node["node"].as_str().unwrap();
        // Named by its config now, not by the image.
        assert_eq!(node["report"]["system"]["hostname"], name, "{node}");
        assert_eq!(node["report"]["bgp"][0]["state"], "Established", "{node}");
    }
    let down = pi_lab(&state, &["lab", "down", file]);
    assert!(down.status.success(), "lab down failed");
    assert_nothing_left(&state, lab);
}

/// Ctrl-C while the boards boot: `lab up` stops every emulator and takes
/// the lab down (exit 130), and the consoles are kept for a look.
fn boards_ctrl_c_takes_the_lab_down(image: &Path) {
    eprintln!("=== boards_ctrl_c_takes_the_lab_down");
    let state = state("ctrl-c");
    // The two-router lab under a name and subnet of its own: the other
    // tests may run it at the same time.
    let lab = "ctrl-c";
    let text = std::fs::read_to_string(workspace().join("examples/two-router-boards.toml"))
        .unwrap()
        .replace("name = \"two-router-boards\"", "name = \"ctrl-c\"")
        .replace("192.168.212.", "192.168.213.");
    let lab_file = state.join("ctrl-c.toml");
    std::fs::write(&lab_file, text).unwrap();
    let file = lab_file.to_str().unwrap();
    let _down = Down { state: &state, lab };
    let child = Command::new(bin("pi-lab"))
        .current_dir(workspace())
        .env("PI_LAB_STATE_DIR", &state)
        .args(["lab", "up", file, "--boards", "emulated", "--image", image.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once both emulators run (their consoles exist).
    let boards = state.join(lab).join("fleet/boards");
    let started = std::time::Instant::now();
    while !["r1", "r2"].iter().all(|n| boards.join(n).join("console.log").exists()) {
        assert!(started.elapsed().as_secs() < 300, "the boards never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(state.join(lab).join("failed-up/r1-console.log").is_file(), "{err}");
    assert_nothing_left(&state, lab);
}
