//! FRR per node namespace, each instance in its own pathspace: config in
//! `/etc/frr/{netns}/`, sockets and pid files in `/var/run/frr/{netns}/`,
//! `vtysh -N {netns}` to talk to it.
//!
//! FRR is started the way Debian starts it, just per pathspace:
//! `ip netns exec NS /usr/lib/frr/frrinit.sh start NS` runs watchfrr, which
//! starts zebra, staticd and the node's routing daemons (bgpd, ospfd,
//! isisd: what its NodeConfig needs) with `-N NS` and restarts them if they
//! die. FRR starts with no `frr.conf`; the agent writes it and loads it
//! (and owns it from then on, so an FRR restarted later boots from it).

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FrrError {
    #[error("cannot write FRR config {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("FRR did not start in namespace {netns}: {message}")]
    Start { netns: String, message: String },
    #[error("FRR did not stop in namespace {netns}: {message}")]
    Stop { netns: String, message: String },
}

pub fn config_dir(netns: &str) -> PathBuf {
    Path::new("/etc/frr").join(netns)
}

pub fn run_dir(netns: &str) -> PathBuf {
    Path::new("/var/run/frr").join(netns)
}

/// What Debian's `/etc/frr/daemons` says, trimmed to what a pathspace
/// needs; `lab_spec::frr::daemons` switches the node's routing daemons on.
const DAEMONS: &str = "\
# Written by pi-lab for one node of a virtual fleet.
zebra=yes
staticd=yes
vtysh_enable=yes
zebra_options=\"-A 127.0.0.1 -s 90000000\"
bgpd_options=\"-A 127.0.0.1\"
ospfd_options=\"-A 127.0.0.1\"
isisd_options=\"-A 127.0.0.1\"
staticd_options=\"-A 127.0.0.1\"
";

/// Write `/etc/frr/{netns}/` (daemons, vtysh.conf) owned by frr: the
/// daemons the node's config needs.
pub fn write_pathspace(netns: &str, config: &lab_spec::NodeConfig) -> Result<(), FrrError> {
    let dir = config_dir(netns);
    // No frr.conf: FRR boots empty and the agent's first pass loads the
    // config, once. With a file, watchfrr's own `vtysh -b` and the agent's
    // reload both loaded it, at the same time, on every node.
    let files = [
        ("daemons", lab_spec::frr::daemons(DAEMONS, config)),
        ("vtysh.conf", "service integrated-vtysh-config\n".to_string()),
    ];
    fs::create_dir_all(&dir).map_err(|source| FrrError::Write { path: dir.clone(), source })?;
    let owner = frr_owner();
    for (name, text) in files {
        let path = dir.join(name);
        lab_spec::replace_file::replace(
            &path,
            text.as_bytes(),
            lab_spec::replace_file::Access::Set { mode: 0o640, owner },
        )
        .map_err(|source| FrrError::Write { path: path.clone(), source })?;
    }
    if let Some((uid, gid)) = owner {
        chown(&dir, Some(uid), Some(gid))
            .map_err(|source| FrrError::Write { path: dir.clone(), source })?;
    }
    Ok(())
}

/// uid and gid of the `frr` user, if there is one.
fn frr_owner() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("frr:"))?;
    let mut fields = line.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Start watchfrr and the daemons inside the namespace, with the node's
/// own hostname (a private UTS namespace, so the host's name is untouched).
pub fn start(netns: &str, hostname: &str) -> Result<(), FrrError> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "unshare", "--uts", "--", "sh", "-c"])
        .arg("hostname \"$0\" && exec /usr/lib/frr/frrinit.sh start \"$1\"")
        .args([hostname, netns])
        .output()
        .map_err(|e| FrrError::Start { netns: netns.into(), message: e.to_string() })?;
    if !out.status.success() {
        let message = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return Err(FrrError::Start { netns: netns.into(), message });
    }
    Ok(())
}

/// [`start`], then wait until each of `daemons` runs (its pid alive, its
/// vty socket there): frrinit returns once watchfrr runs, and watchfrr
/// starts the daemons after that. One that is not up `within` is an
/// error naming it, not a node whose sessions never come.
pub fn start_and_wait(
    netns: &str,
    hostname: &str,
    daemons: &[&str],
    within: Duration,
) -> Result<(), FrrError> {
    start(netns, hostname)?;
    let deadline = Instant::now() + within;
    loop {
        let missing: Vec<&str> = daemons.iter().copied().filter(|d| !runs(netns, d)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let message = format!(
                "{} not running {} s after `frrinit.sh start`",
                missing.join(", "),
                within.as_secs()
            );
            return Err(FrrError::Start { netns: netns.into(), message });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `daemon` of the pathspace runs and listens on its vty socket.
fn runs(netns: &str, daemon: &str) -> bool {
    let dir = run_dir(netns);
    let pid = fs::read_to_string(dir.join(format!("{daemon}.pid"))).unwrap_or_default();
    pid.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
        && dir.join(format!("{daemon}.vty")).exists()
}

/// Stop watchfrr and the daemons of the namespace's pathspace.
pub fn stop(netns: &str) -> Result<(), FrrError> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "/usr/lib/frr/frrinit.sh", "stop", netns])
        .output()
        .map_err(|e| FrrError::Stop { netns: netns.into(), message: e.to_string() })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(FrrError::Stop { netns: netns.into(), message });
    }
    Ok(())
}

/// Whether the pathspace's zebra runs (every routing daemon needs it).
pub fn running(netns: &str) -> bool {
    let pid = fs::read_to_string(run_dir(netns).join("zebra.pid")).unwrap_or_default();
    pid.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}
