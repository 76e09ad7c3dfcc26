//! The root namespace's sysctls that `lab up` raises for a fleet (see
//! `fleet::neighbour_tables`) and `lab down` puts back.

use std::path::{Path, PathBuf};

/// `net/ipv4/neigh/default/gc_thresh3` -> its file under /proc/sys.
pub fn path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key)
}

/// A sysctl's value, if it reads as a number.
pub fn read(key: &str) -> Option<u64> {
    std::fs::read_to_string(path(key)).ok()?.trim().parse().ok()
}

pub fn write(key: &str, value: u64) -> std::io::Result<()> {
    std::fs::write(path(key), value.to_string())
}

/// Put `key` back to `was`, unless it no longer reads `set` (someone, a
/// lab started later say, changed it since).
pub fn restore(key: &str, was: u64, set: u64) -> Result<(), String> {
    if read(key) != Some(set) {
        return Ok(());
    }
    write(key, was).map_err(|e| format!("cannot put {key} back to {was}: {e}"))
}
