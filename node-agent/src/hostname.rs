//! The board's hostname follows its config: the kernel's, `/etc/hostname`
//! and the `127.0.1.1` line of `/etc/hosts` (Debian's convention), so the
//! prompt, the journal and DHCP name the node. At boot the card's identity
//! sets it before the agent runs; this keeps it right when a new config
//! arrives over the API (a board provisioned by discovery, a renamed node).
//!
//! Only on a board (`node-agent run --board`, set by the image's
//! unit): in the virtual fleet every agent shares the host's hostname.

use std::fs;
use std::path::Path;

use crate::state::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    #[error("cannot set the hostname to {name:?}: {source}")]
    Set { name: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// What must change for `name`, given the kernel's hostname and the two
/// files as they are. Pure, so it is tested without touching the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub kernel: bool,
    pub etc_hostname: Option<String>,
    pub etc_hosts: Option<String>,
}

pub fn plan(name: &str, kernel: &str, etc_hostname: &str, etc_hosts: &str) -> Plan {
    let wanted_line = format!("127.0.1.1\t{name}");
    let hosts_ok = etc_hosts.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some("127.0.1.1") && f.next() == Some(name) && f.next().is_none()
    });
    let hosts = (!hosts_ok).then(|| {
        let mut out: String = etc_hosts
            .lines()
            .filter(|l| l.split_whitespace().next() != Some("127.0.1.1"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(&wanted_line);
        out.push('\n');
        out
    });
    Plan {
        kernel: kernel != name,
        etc_hostname: (etc_hostname.trim() != name).then(|| format!("{name}\n")),
        etc_hosts: hosts,
    }
}

/// Make the hostname `name`; returns the changes made, as shell commands.
pub fn reconcile(name: &str, etc: &Path) -> Result<Vec<String>, HostnameError> {
    let kernel = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let read = |f: &str| fs::read_to_string(etc.join(f)).unwrap_or_default();
    let plan = plan(name, &kernel, &read("hostname"), &read("hosts"));
    let mut done = Vec::new();
    for (file, text) in [("hostname", &plan.etc_hostname), ("hosts", &plan.etc_hosts)] {
        if let Some(text) = text {
            let path = etc.join(file);
            write_atomic(&path, text.as_bytes()).map_err(|source| HostnameError::Write {
                path: path.display().to_string(),
                source,
            })?;
            done.push(format!("write {}", path.display()));
        }
    }
    if plan.kernel {
        rustix::system::sethostname(name.as_bytes())
            .map_err(|e| HostnameError::Set { name: name.to_string(), source: e.into() })?;
        done.push(format!("hostname {name}"));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_differs_is_changed() {
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tpi-lab\n::1\tlocalhost\n";
        let p = plan("r1", "pi-lab", "pi-lab\n", hosts);
        assert!(p.kernel);
        assert_eq!(p.etc_hostname.as_deref(), Some("r1\n"));
        assert_eq!(
            p.etc_hosts.as_deref(),
            Some("127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tr1\n")
        );
        let done = plan("r1", "r1", "r1\n", "127.0.0.1 localhost\n127.0.1.1 r1\n");
        assert_eq!(done, Plan::default());
    }
}
