//! Helpers for the tests of pi-lab's local HTTP server, shared with the
//! end-to-end tests (`tests/e2e` includes this file by path).
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// `promtool check metrics` accepts `text`: no error, no lint finding.
/// Without promtool the check is skipped with a message, except under
/// `CI=true`, where that fails.
pub fn promtool_accepts(text: &str) {
    let found = Command::new("sh").args(["-c", "command -v promtool"]).output();
    if !found.is_ok_and(|o| o.status.success()) {
        let ci = std::env::var("CI").as_deref() == Ok("true");
        assert!(!ci, "promtool is missing; run scripts/setup.sh");
        eprintln!("SKIP promtool check: promtool is missing; run scripts/setup.sh");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}

/// Where `pi-lab dashboard` serves, from the line it prints first:
/// "dashboard for lab NAME (...) at http://ADDR/ — ...".
pub fn dashboard_address(first_line: &str) -> SocketAddr {
    first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
}
