//! The fleet's plumbing in the root namespace, through iproute2.
//!
//! This is the one place where pi-lab shells out to `ip`. `ip netns add`
//! does more than a netlink call (it creates and bind-mounts
//! `/run/netns/NAME`, which `ip netns exec`, FRR and every tool that follows
//! rely on), the plumbing runs once per `lab up`, and every command's exit
//! status is checked and reported with the command and its stderr. The
//! agent, which changes state all the time, talks netlink itself.

use std::process::Command;

use nix::errno::Errno;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum IpError {
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    /// The command failed for a reason its stderr names (see [`errno_in`]).
    #[error("`{command}` failed: {stderr}")]
    Os { command: String, errno: Errno, stderr: String },
    /// The command failed in words that name no errno.
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("`{command}` printed JSON that does not parse: {source}")]
    Json { command: String, source: serde_json::Error },
}

impl IpError {
    /// Why the command failed, when its stderr says.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            IpError::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The object was already there.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// The object was already gone: fine when tearing down.
    pub fn is_missing(&self) -> bool {
        matches!(self.errno(), Some(Errno::ENODEV | Errno::ENOENT))
    }
}

/// The errno behind a failed command's stderr (in the C locale): the
/// first line that names one. Most lines end in libc's text for it
/// (`RTNETLINK answers: File exists`, `Cannot open network namespace "x":
/// No such file or directory`); the rest are iproute2's own words or the
/// kernel's extended ack (`Error: ipv4: Address already assigned.`), which
/// name no errno and are looked up in [`WORDED`].
pub(crate) fn errno_in(stderr: &str) -> Option<Errno> {
    stderr.lines().map(str::trim).filter(|l| !l.is_empty()).find_map(|line| {
        let last = line.rsplit_once(": ").map_or(line, |(_, text)| text);
        strerror_errno(last).or_else(|| worded_errno(line))
    })
}

/// The errno whose libc text `text` is.
fn strerror_errno(text: &str) -> Option<Errno> {
    // 133 (EHWPOISON) is Linux's last errno.
    (1..=133).find(|&n| strerror(n) == text).map(Errno::from_raw)
}

/// libc's text for errno `n`, as `std::io::Error` has it.
fn strerror(n: i32) -> String {
    let full = std::io::Error::from_raw_os_error(n).to_string();
    match full.strip_suffix(&format!(" (os error {n})")) {
        Some(text) => text.to_string(),
        None => full,
    }
}

/// Messages without libc's text, as iproute2 prints them after `Error: `
/// (its check of an argument, or the kernel's extended ack), and the
/// errno behind each; only those pi-lab's commands meet.
const WORDED: &[(&str, Errno)] = &[
    // `ip link set dev X master NOSUCH` (iproute2 looks the name up).
    ("Device does not exist", Errno::ENODEV),
    // A second `ip addr add` of one IPv4 address.
    ("ipv4: Address already assigned", Errno::EEXIST),
    ("Unknown device type", Errno::EOPNOTSUPP),
    ("Attribute failed policy validation", Errno::EINVAL),
];

fn worded_errno(line: &str) -> Option<Errno> {
    // iproute2 looks device names up before asking the kernel.
    let no_device = line.starts_with("Cannot find device \"")
        || (line.starts_with("Device \"") && line.ends_with("\" does not exist."));
    if no_device {
        return Some(Errno::ENODEV);
    }
    let message = line.strip_prefix("Error: ")?;
    // `Error: argument "br9" is wrong: Device does not exist`
    let message = message
        .strip_prefix("argument ")
        .and_then(|m| m.split_once(" is wrong: "))
        .map_or(message, |(_, why)| why);
    let message = message.trim_end_matches('.');
    WORDED.iter().find(|(words, _)| *words == message).map(|(_, errno)| *errno)
}

/// A command that exited non-zero, typed by the errno its stderr names.
fn failed(command: String, stderr: String) -> IpError {
    match errno_in(&stderr) {
        Some(errno) => IpError::Os { command, errno, stderr },
        None => IpError::Failed { command, stderr },
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
    // The C locale: the errno is read back from strerror's text, which is
    // localized.
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| IpError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(failed(command, stderr));
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
        Err(e) if e.is_exists() => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What iproute2 6.1.0 (and nft) printed on stderr, LC_ALL=C on Linux
    /// 6.18: each command, its stderr as it was, then `=` and the errno
    /// read from it (`-` for none).
    const SEEN: &str = r#"
$ ip link del nosuchdev
Cannot find device "nosuchdev"
= ENODEV
$ ip link show dev nosuchdev
Device "nosuchdev" does not exist.
= ENODEV
$ ip link set dev lo master nosuchbr
Error: argument "nosuchbr" is wrong: Device does not exist

= ENODEV
$ ip -n nosuchns link show
Cannot open network namespace "nosuchns": No such file or directory
= ENOENT
$ ip netns del nosuchns
Cannot remove namespace file "/run/netns/nosuchns": No such file or directory
= ENOENT
$ ip netns exec piipcap sysctl -qw net.ipv4.nosuch=1
sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory
= ENOENT
$ ip link add lo type dummy
RTNETLINK answers: File exists
= EEXIST
$ ip netns add piipcap  # twice
Cannot create namespace file "/run/netns/piipcap": File exists
= EEXIST
$ ip addr add 10.9.0.1/24 dev br0  # twice
Error: ipv4: Address already assigned.
= EEXIST
$ ip tuntap add dev tap0 mode tap  # twice
ioctl(TUNSETIFF): Device or resource busy
= EBUSY
$ ip link set dev tap0 master va  # a veth
RTNETLINK answers: Operation not supported
= EOPNOTSUPP
$ ip link add x type nosuchkind
Error: Unknown device type.
= EOPNOTSUPP
$ ip link add thisnameiswaytoolongforlinux type dummy
Error: Attribute failed policy validation.
= EINVAL
$ ip link add dz type dummy  # not root
RTNETLINK answers: Operation not permitted
= EPERM
$ ip netns add zz  # not root
mount --make-shared /run/netns failed: Operation not permitted
= EPERM
$ ip link add va type veth peer name vb netns nosuchns
Error: argument "nosuchns" is wrong: Invalid "netns" value

= -
$ nft delete table bridge nosuchtable
Error: Could not process rule: No such file or directory
delete table bridge nosuchtable
                    ^^^^^^^^^^^
= ENOENT
"#;

    #[test]
    fn stderr_names_its_errno() {
        let mut seen = 0;
        for case in SEEN.split("\n$ ").skip(1) {
            let (command, rest) = case.split_once('\n').expect("a command line");
            let (stderr, want) = rest.rsplit_once("= ").expect("an = line");
            let got = errno_in(stderr).map_or("-".to_string(), |e| format!("{e:?}"));
            assert_eq!(got, want.trim(), "{command}: {stderr:?}");
            seen += 1;
        }
        assert_eq!(seen, 17);
    }

    #[test]
    fn errors_say_gone_or_already_there() {
        let error = |stderr: &str| failed("ip ...".to_string(), stderr.to_string());
        for gone in [
            "Cannot find device \"nosuchdev\"",
            "Device \"nosuchdev\" does not exist.",
            "Cannot remove namespace file \"/run/netns/nosuchns\": No such file or directory",
            "RTNETLINK answers: No such device",
        ] {
            let e = error(gone);
            assert!(e.is_missing() && !e.is_exists(), "{e}");
        }
        for there in ["RTNETLINK answers: File exists", "Error: ipv4: Address already assigned."] {
            let e = error(there);
            assert!(e.is_exists() && !e.is_missing(), "{e}");
        }
        let e = error("RTNETLINK answers: Operation not permitted");
        assert!(!e.is_exists() && !e.is_missing());
        // The message is the command's, typed or not.
        assert_eq!(e.to_string(), "`ip ...` failed: RTNETLINK answers: Operation not permitted");
        assert!(matches!(error("Error: something new."), IpError::Failed { .. }));
    }

    #[test]
    fn this_hosts_ip_says_missing_in_words_we_read() {
        match ip(&["link", "show", "dev", "pilab-nosuch0"]) {
            Err(IpError::Spawn { .. }) => {} // no iproute2 here
            Err(e) => assert!(e.is_missing(), "{e:?}"),
            Ok(shown) => panic!("pilab-nosuch0 exists: {shown}"),
        }
    }

    #[test]
    fn strerror_is_libcs_text() {
        assert_eq!(strerror(17), "File exists");
        assert_eq!(strerror_errno("No such device"), Some(Errno::ENODEV));
        assert_eq!(strerror_errno("File exists (os error 17)"), None);
    }
}
