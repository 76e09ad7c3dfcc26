//! What the kernel says about the host, read one way for everyone: the
//! /proc files the health report and the sFlow host counters both use,
//! filesystem space, `uname` and the clock tick. Parsers take the file's
//! text, so tests feed them fixtures; unknown or garbled values are `None`.

use std::path::Path;

/// A `/proc/meminfo` field (`MemTotal`, `MemAvailable`, ...) in bytes; the
/// file says kB.
pub fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
}

/// A `/proc/vmstat` counter (`pgpgin`, `pswpout`, ...).
pub fn vmstat(vmstat: &str, key: &str) -> Option<u64> {
    vmstat.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `/proc/loadavg`: `0.50 0.25 0.10 2/345 6789`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    /// 1, 5 and 15 minutes.
    pub averages: [f64; 3],
    /// Tasks runnable now and in total; 0 when the file does not say.
    pub running: u32,
    pub total: u32,
}

/// `None` unless the three averages are numbers.
pub fn loadavg(text: &str) -> Option<LoadAvg> {
    let mut fields = text.split_whitespace();
    let mut average = || fields.next()?.parse::<f64>().ok();
    let averages = [average()?, average()?, average()?];
    let (running, total) = fields
        .next()
        .and_then(|v| v.split_once('/'))
        .map(|(r, t)| (r.parse().unwrap_or(0), t.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    Some(LoadAvg { averages, running, total })
}

/// `/proc/uptime`: seconds since boot.
pub fn uptime_seconds(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Size and available space, in bytes, of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some((stat.f_blocks.saturating_mul(stat.f_frsize), stat.f_bavail.saturating_mul(stat.f_frsize)))
}

/// `uname -n`, `uname -r`, `uname -m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub nodename: String,
    pub release: String,
    pub machine: String,
}

pub fn uname() -> Uname {
    let u = rustix::system::uname();
    let text = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    Uname { nodename: text(u.nodename()), release: text(u.release()), machine: text(u.machine()) }
}

/// Clock ticks per second, the unit of /proc/stat's CPU times.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_or_read_unknown() {
        let meminfo = "MemTotal:  1000 kB\nMemTotalX: 9 kB\nMemAvailable: lots\n";
        assert_eq!(meminfo_bytes(meminfo, "MemTotal"), Some(1_024_000));
        assert_eq!(meminfo_bytes(meminfo, "MemAvailable"), None);
        assert_eq!(meminfo_bytes(meminfo, "MemFree"), None);
        assert_eq!(vmstat("pgpgin 11\npgpgout 22\n", "pgpgout"), Some(22));
        let load = loadavg("0.50 0.25 0.10 2/345 6789\n").unwrap_or_default();
        assert_eq!((load.averages, load.running, load.total), ([0.5, 0.25, 0.1], 2, 345));
        assert_eq!(loadavg("x y z"), None);
        assert_eq!(uptime_seconds("1234.56 100.0\n"), Some(1234.56));
        assert_eq!(uptime_seconds(""), None);
    }

    #[test]
    fn this_host_answers() {
        let u = uname();
        assert!(!u.release.is_empty() && !u.machine.is_empty(), "{u:?}");
        assert!(clock_ticks_per_second() >= 1);
        let (total, available) = disk_space(Path::new("/")).unwrap_or_default();
        assert!(total > 0 && available <= total);
    }
}
