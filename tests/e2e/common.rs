//! Shared helpers for the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path to a workspace binary (`pi-lab`, `node-agent`), built on demand.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/NAME
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--bin", name])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// Where a test leaves files worth a look (screenshots):
/// `target/e2e-artifacts/NAME/`, made empty.
pub fn artifacts(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-HASH -> target/
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let dir = target.join("e2e-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifact directory");
    dir
}

/// True when the test may run; false (after saying why) when it must be
/// skipped. Under `CI=true` a missing prerequisite is a failure, not a skip.
pub fn prerequisites(test: &str, needs_root: bool, commands: &[&str]) -> bool {
    let mut missing = Vec::new();
    if needs_root && !is_root() {
        missing.push("root".to_string());
    }
    for cmd in commands {
        if !has_command(cmd) {
            missing.push(format!("command `{cmd}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}; run scripts/setup.sh as root", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIP {msg}");
    false
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

pub fn has_command(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
