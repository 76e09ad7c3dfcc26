//! Files that must survive a power cut: after the rename that puts a new
//! file in place, its directory is synced too (issue 14, item 5). Checked
//! on the real binaries' system calls with strace: node-agent saving its
//! last-good config, and pi-lab writing a lab token (its one atomic writer).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{bin, prerequisites};

const TRACE: &str = "trace=open,openat,rename,renameat,renameat2,fsync,fdatasync";

/// In an `strace -f` log: once `target` is renamed into place, the same
/// thread opens the target's directory and fsyncs that descriptor.
fn directory_synced_after_rename(log: &str, target: &Path) -> Result<(), String> {
    let target = format!("\"{}\"", target.display());
    let dir = format!("\"{}\"", target_dir(&target));
    // strace pads the pid column: "8034  openat(...)" with a 4-digit pid.
    let lines: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(pid, call)| (pid, call.trim_start()))
        .collect();
    let renamed = lines
        .iter()
        .position(|(_, call)| {
            call.starts_with("rename") && call.contains(&target) && call.ends_with("= 0")
        })
        .ok_or_else(|| {
            format!("{target} was never renamed into place:\n{}", calls_on(log, &dir))
        })?;
    let (pid, _) = lines[renamed];
    let mut dir_fd = None;
    for (p, call) in &lines[renamed + 1..] {
        if *p != pid {
            continue;
        }
        if call.starts_with("open") && call.contains(&dir) {
            dir_fd = call.rsplit("= ").next().map(str::to_string);
        } else if let Some(fd) = &dir_fd
            && call.starts_with(&format!("fsync({fd})"))
            && call.ends_with("= 0")
        {
            return Ok(());
        }
    }
    Err(format!(
        "the directory {dir} was not synced after the rename of {target}:\n{}",
        calls_on(log, &dir)
    ))
}

/// The calls that name `dir` (quoted) or a file in it, and every fsync.
fn calls_on(log: &str, dir: &str) -> String {
    let inside = dir.trim_end_matches('"');
    log.lines()
        .filter(|l| l.contains(inside) || l.contains("fsync("))
        .collect::<Vec<_>>()
        .join("\n")
}

fn target_dir(quoted_target: &str) -> String {
    let path = quoted_target.trim_matches('"');
    Path::new(path).parent().map(|d| d.display().to_string()).unwrap_or_default()
}

fn strace(log: &Path) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-s", "4096", "-e", TRACE, "-o"]).arg(log);
    cmd
}

#[test]
fn pi_lab_syncs_the_directory_of_a_file_it_replaces() {
    if !prerequisites("pi_lab_syncs_the_directory", false, &["strace"]) {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("e2e-durable-pi-lab-").tempdir().expect("temp dir");
    let dir = tmp.path();
    let log = dir.join("strace.log");
    let lab = crate::common::workspace().join("examples/two-router.toml");
    let out = strace(&log)
        .arg(bin("pi-lab"))
        .args(["lab", "render"])
        .arg(&lab)
        .arg("r1")
        .env("PI_LAB_STATE_DIR", dir.join("state"))
        .env_remove("PI_LAB_TOKEN")
        .output()
        .expect("run strace");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log_text = std::fs::read_to_string(&log).expect("strace log");
    let token = dir.join("state/two-router/token");
    assert!(token.exists(), "pi-lab made no token file");
    directory_synced_after_rename(&log_text, &token).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn node_agent_syncs_the_directory_of_last_good() {
    if !prerequisites("node_agent_syncs_the_directory", true, &["strace", "ip"]) {
        return;
    }
    let ns = format!("e2e-durable-{}", std::process::id());
    let tmp = tempfile::Builder::new().prefix(&format!("{ns}-")).tempdir().expect("temp dir");
    let dir = tmp.path();
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt0p"]);
    ip(&["-n", &ns, "link", "set", "mgmt0p", "up"]);
    let config = dir.join("node.toml");
    let mut node = lab_spec::fixtures::bare("d1", "10.255.9.2/30");
    node.management.interface = Some("mgmt0".into());
    // Any free port: nothing talks to this agent.
    node.health.listen = "127.0.0.1:0".parse().expect("address");
    std::fs::write(&config, node.to_toml().expect("render")).expect("config");
    let log = dir.join("strace.log");
    let state = dir.join("state");
    let mut agent = strace(&log)
        .args(["ip", "netns", "exec", &ns])
        .arg(bin("node-agent"))
        .args(["run", "--no-frr", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run strace");
    let last_good = state.join("last-good.toml");
    let until = Instant::now() + Duration::from_secs(20);
    while !last_good.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the writer finish its calls after the rename, then stop the
    // agent itself: strace ends with its last tracee.
    std::thread::sleep(Duration::from_millis(500));
    let pids = Command::new("ip").args(["netns", "pids", &ns]).output().expect("ip netns pids");
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    let until = Instant::now() + Duration::from_secs(10);
    while agent.try_wait().ok().flatten().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(last_good.exists(), "node-agent saved no last-good config");
    let log_text = std::fs::read_to_string(&log).expect("strace log");
    directory_synced_after_rename(&log_text, &last_good).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn strace_lines_are_read_whatever_the_pid_column_width() {
    let target = Path::new("/s/d/f");
    for pid in ["8034 ", "123456"] {
        let log = format!(
            "{pid} rename(\"/s/d/f.tmp\", \"/s/d/f\") = 0\n\
             {pid} openat(AT_FDCWD, \"/s/d\", O_RDONLY|O_CLOEXEC) = 4\n\
             {pid} fsync(4)                          = 0\n"
        );
        assert_eq!(directory_synced_after_rename(&log, target), Ok(()), "{log}");
    }
    let unsynced = "8034  rename(\"/s/d/f.tmp\", \"/s/d/f\") = 0\n";
    assert!(directory_synced_after_rename(unsynced, target).is_err());
}
