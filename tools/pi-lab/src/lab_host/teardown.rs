//! `lab down`: undo everything the journal says `lab up` made, newest
//! first. Missing objects are fine (down is idempotent and must work after
//! `up` crashed anywhere); other failures are collected, the rest goes on,
//! and the journal is kept so a second `down` can finish the job.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::ip;
use super::journal::{Entry, JournalError};

/// Remove what `entries` describe; the problems that remain, if any.
pub fn undo(entries: &[Entry]) -> Vec<String> {
    // A namespace is known by its inode: processes still entering it (an
    // `ip netns exec` cut off by a crashed `up`) are found by it even after
    // its name is gone.
    let namespaces: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Netns { name } => netns_inode(name),
            _ => None,
        })
        .collect();
    // Processes first, all namespaces at once, so nothing holds a namespace
    // or re-adds what is being removed. SIGTERM lets FRR and the agents
    // exit cleanly; watchfrr goes in the same round, so it restarts nothing.
    stop_all(entries, &namespaces);
    let mut problems = Vec::new();
    for entry in entries.iter().rev() {
        if let Err(problem) = remove(entry) {
            problems.push(problem);
        }
    }
    stop_all(entries, &namespaces);
    problems
}

/// Stop every process of the lab; look again after each round, since a
/// start script cut off by a crashed `up` may still be forking daemons.
fn stop_all(entries: &[Entry], namespaces: &[u64]) {
    for _round in 0..10 {
        let pids = processes(entries, namespaces);
        if pids.is_empty() {
            return;
        }
        stop_processes(&pids);
    }
}

fn netns_inode(name: &str) -> Option<u64> {
    fs::metadata(Path::new("/run/netns").join(name)).ok().map(|m| m.ino())
}

/// Every live process in one of `namespaces` (by inode), and those the
/// journal names.
fn processes(entries: &[Entry], namespaces: &[u64]) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| namespaces.contains(&m.ino()))
        })
        .collect();
    for entry in entries {
        if let Entry::Process { pid, what, .. } = entry
            && is_running(*pid, what)
        {
            pids.push(*pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|p| i32::try_from(*p).is_ok_and(|p| alive(Pid::from_raw(p))));
    pids
}

fn remove(entry: &Entry) -> Result<(), String> {
    let ok_if_missing = |r: Result<(), ip::IpError>| match r {
        Err(e) if !e.is_missing() => Err(e.to_string()),
        _ => Ok(()),
    };
    match entry {
        Entry::Netns { name } if ip::netns_exists(name) => ok_if_missing(ip::netns_del(name)),
        Entry::RootLink { name } if ip::link_exists(None, name) => {
            ok_if_missing(ip::link_del(None, name))
        }
        Entry::NftTable { family, name } => nft_delete(family, name),
        Entry::Sysctl { key, was, set } => super::sysctl::restore(key, *was, *set),
        Entry::Tree { path } => remove_path(path, true),
        Entry::Path { path } => remove_path(path, false),
        _ => Ok(()),
    }
}

/// Remove a file, or a directory (`tree`: with everything in it; else only
/// when empty, so nobody else's files go with it).
fn remove_path(path: &Path, tree: bool) -> Result<(), String> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() && tree => fs::remove_dir_all(path),
        Ok(meta) if meta.is_dir() => match fs::remove_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                tracing::info!(path = %path.display(), "kept: not empty");
                Ok(())
            }
            other => other,
        },
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// SIGTERM, up to 5 s to exit, then SIGKILL.
pub(crate) fn stop_processes(pids: &[u32]) {
    let pids: Vec<Pid> =
        pids.iter().filter_map(|p| i32::try_from(*p).ok()).map(Pid::from_raw).collect();
    for pid in &pids {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        tracing::warn!(%pid, "did not stop on SIGTERM; killing");
        let _ = kill(*pid, Signal::SIGKILL);
    }
}

/// Running and not a zombie.
fn alive(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name in parentheses.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

/// Running and not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| alive(Pid::from_raw(p)))
}

/// `pid` still runs the program we started (pids get reused).
fn is_running(pid: u32, what: &str) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    process_alive(pid) && String::from_utf8_lossy(&cmdline).contains(what)
}

/// `nft delete table FAMILY NAME`; a table that is gone is fine.
fn nft_delete(family: &str, table: &str) -> Result<(), String> {
    // The C locale: "missing" is read back from strerror's text, which is
    // localized.
    let out = Command::new("nft")
        .args(["delete", "table", family, table])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || ip::errno_in(&stderr) == Some(Errno::ENOENT) {
        Ok(())
    } else {
        Err(format!("nft delete table {family} {table}: {}", stderr.trim()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("lab down left things behind:\n  {}", .0.join("\n  "))]
    Leftovers(Vec<String>),
}

/// Undo lab `name`'s journal: everything `lab up` made on this host.
pub fn tear_down(name: &str) -> Result<(), TeardownError> {
    let journal = super::journal_path(name);
    let entries = super::journal::read(&journal)?;
    // Directories holding the journal go last, once all else is gone: if
    // something is left, the journal stays for the next `down`.
    let (outer, inner): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| holds(e, &journal));
    let mut problems = undo(&inner);
    if !problems.is_empty() {
        // Something may still have been settling (a process exiting, a
        // device going with its peer): one more try before giving up.
        tracing::info!(?problems, "lab down: trying once more");
        sleep(Duration::from_secs(1));
        problems = undo(&inner);
    }
    if !problems.is_empty() {
        return Err(TeardownError::Leftovers(problems));
    }
    let dir = super::dir(name);
    fs::remove_dir_all(&dir)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|e| {
            TeardownError::Leftovers(vec![format!("cannot remove {}: {e}", dir.display())])
        })?;
    let problems = undo(&outer);
    if !problems.is_empty() {
        return Err(TeardownError::Leftovers(problems));
    }
    Ok(())
}

/// A path entry that is `file` or one of its parent directories.
fn holds(entry: &Entry, file: &Path) -> bool {
    match entry {
        Entry::Path { path } | Entry::Tree { path } => file.starts_with(path),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_but_shared_directories_stay_when_not_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let tree = dir.join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/file"), "x").unwrap();
        let problems = undo(&[
            Entry::Path { path: dir.clone() },
            Entry::Tree { path: tree.clone() },
            Entry::Path { path: dir.join("never-made") },
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!dir.exists(), "the empty directory made by up is removed");

        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("theirs"), "x").unwrap();
        assert!(undo(&[Entry::Path { path: dir.clone() }]).is_empty());
        assert!(dir.join("theirs").exists(), "someone else's file stays");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_child_is_stopped() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        stop_processes(&[child.id()]);
        let status = child.wait().unwrap();
        assert!(!status.success(), "sleep 60 ended by a signal, not by itself");
    }
}
