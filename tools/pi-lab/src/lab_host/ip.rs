//! The fleet's plumbing in the root namespace, through iproute2.
//!
//! This is the one place where pi-lab shells out to `ip`. `ip netns add`
//! does more than a netlink call (it creates and bind-mounts
//! `/run/netns/NAME`, which `ip netns exec`, FRR and every tool that follows
//! rely on), the plumbing runs once per `lab up`, and every command's exit
//! status is checked and reported with the command and its stderr. The
//! agent, which changes state all the time, talks netlink itself.

use std::process::Command;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum IpError {
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("`{command}` printed JSON that does not parse: {source}")]
    Json { command: String, source: serde_json::Error },
}

impl IpError {
    /// The object was already gone: fine when tearing down.
    pub fn is_missing(&self) -> bool {
        match self {
            IpError::Failed { stderr, .. } => {
                stderr.contains("Cannot find device")
                    || stderr.contains("No such file or directory")
                    || stderr.contains("does not exist")
            }
            _ => false,
        }
    }
}

/// Run `ip ARGS...`; its stdout on success, a typed error otherwise.
fn ip(args: &[&str]) -> Result<String, IpError> {
    run("ip", args)
}

/// Run a program and insist on exit status 0.
fn run(program: &str, args: &[&str]) -> Result<String, IpError> {
    let command = format!("{program} {}", args.join(" "));
    tracing::debug!(%command, "run");
    // The C locale: callers tell "already there" and "already gone" by
    // strerror's text, which is localized.
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| IpError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(IpError::Failed { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(args: &[&str]) -> Result<Value, IpError> {
    let text = ip(args)?;
    if text.trim().is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_str(&text)
        .map_err(|source| IpError::Json { command: format!("ip {}", args.join(" ")), source })
}

/// `ip [-n NS] ARGS`: the same command in the root namespace or in `ns`.
fn in_ns<'a>(ns: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = ns {
        all.extend(["-n", ns]);
    }
    all.extend_from_slice(args);
    all
}

pub fn netns_add(name: &str) -> Result<(), IpError> {
    ip(&["netns", "add", name]).map(drop)
}

pub fn netns_del(name: &str) -> Result<(), IpError> {
    ip(&["netns", "del", name]).map(drop)
}

pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Names of network namespaces starting with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let entries = std::fs::read_dir("/run/netns").into_iter().flatten().flatten();
    let mut found: Vec<String> = entries
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    found
}

pub fn link_up(ns: Option<&str>, dev: &str) -> Result<(), IpError> {
    ip(&in_ns(ns, &["link", "set", dev, "up"])).map(drop)
}

pub fn link_del(ns: Option<&str>, dev: &str) -> Result<(), IpError> {
    ip(&in_ns(ns, &["link", "del", dev])).map(drop)
}

pub fn link_exists(ns: Option<&str>, dev: &str) -> bool {
    ip(&in_ns(ns, &["link", "show", "dev", dev])).is_ok()
}

/// A veth pair whose ends are born in their namespaces with their final
/// names: nothing ever appears in the root namespace, so two labs with the
/// same interface names never collide.
pub fn veth_between(a_ns: &str, a: &str, b_ns: &str, b: &str) -> Result<(), IpError> {
    ip(&["link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns])
        .map(drop)
}

/// A veth pair from the root namespace (`root`) into `ns` (`inner`).
pub fn veth_from_root(root: &str, ns: &str, inner: &str) -> Result<(), IpError> {
    ip(&["link", "add", root, "type", "veth", "peer", "name", inner, "netns", ns]).map(drop)
}

/// A persistent tap device (an emulator's NIC on the host side).
pub fn tap_add(name: &str) -> Result<(), IpError> {
    ip(&["tuntap", "add", "dev", name, "mode", "tap"]).map(drop)
}

pub fn bridge_add(name: &str) -> Result<(), IpError> {
    ip(&["link", "add", name, "type", "bridge"]).map(drop)
}

pub fn set_master(dev: &str, master: &str) -> Result<(), IpError> {
    ip(&["link", "set", dev, "master", master]).map(drop)
}

/// A bridge port that learns no addresses.
pub fn no_learning(port: &str) -> Result<(), IpError> {
    ip(&["link", "set", "dev", port, "type", "bridge_slave", "learning", "off"]).map(drop)
}

/// Add an address; one that is already there is fine.
pub fn addr_add(ns: Option<&str>, dev: &str, cidr: &str) -> Result<(), IpError> {
    match ip(&in_ns(ns, &["addr", "add", cidr, "dev", dev])) {
        Err(IpError::Failed { stderr, .. }) if stderr.contains("File exists") => Ok(()),
        other => other.map(drop),
    }
}

/// `ip -j addr show` in `ns`.
pub fn addrs(ns: Option<&str>) -> Result<Value, IpError> {
    json(&in_ns(ns, &["-j", "addr", "show"]))
}

/// A sysctl inside a namespace (`net.ipv4.ip_forward=1`).
pub fn sysctl(ns: &str, setting: &str) -> Result<(), IpError> {
    ip(&["netns", "exec", ns, "sysctl", "-qw", setting]).map(drop)
}

/// Interface names holding `address` (no prefix) in `ns`.
pub fn holders_of(ns: Option<&str>, address: &str) -> Result<Vec<String>, IpError> {
    let addrs = addrs(ns)?;
    let mut found = Vec::new();
    for link in addrs.as_array().into_iter().flatten() {
        let has = link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"].as_str() == Some(address));
        if has && let Some(name) = link["ifname"].as_str() {
            found.push(name.to_string());
        }
    }
    Ok(found)
}
