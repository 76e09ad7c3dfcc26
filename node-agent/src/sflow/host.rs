//! Host structures from /proc, /etc and statvfs (read through
//! [`crate::sysinfo`]): what a node says about itself in host_descr,
//! host_cpu, host_memory and host_disk_io.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::records::{HostCpu, HostDescr, HostDiskIo, HostMemory, MachineType, OS_LINUX};
use crate::sysinfo;

/// Who the node is. `detect()` fills it from the running system; the agent
/// may override the hostname with the one in its NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    /// /etc/machine-id as a binary UUID; zeros when unknown.
    pub uuid: [u8; 16],
    /// `uname -m`.
    pub machine: String,
    /// `uname -r`.
    pub os_release: String,
}

impl HostInfo {
    pub fn detect() -> Self {
        let uts = sysinfo::uname();
        let machine_id = fs::read_to_string("/etc/machine-id").unwrap_or_default();
        HostInfo {
            hostname: uts.nodename,
            uuid: parse_machine_id(&machine_id).unwrap_or([0; 16]),
            machine: uts.machine,
            os_release: uts.release,
        }
    }

    pub fn descr(&self) -> HostDescr {
        HostDescr {
            hostname: self.hostname.clone(),
            uuid: self.uuid,
            machine_type: MachineType::from_uname(&self.machine),
            os_name: OS_LINUX,
            os_release: self.os_release.clone(),
        }
    }
}

/// `/etc/machine-id` is 32 hex digits; sFlow wants the 16 bytes.
pub fn parse_machine_id(text: &str) -> Option<[u8; 16]> {
    let hex = text.trim();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// host_cpu from /proc/loadavg, /proc/stat, /proc/uptime and the CPU speed.
pub fn read_cpu() -> HostCpu {
    let mut cpu = parse_cpu(
        &read("/proc/loadavg"),
        &read("/proc/stat"),
        &read("/proc/uptime"),
        sysinfo::clock_ticks_per_second(),
    );
    cpu.cpu_speed = cpu_mhz(&read("/proc/cpuinfo"))
        .or_else(|| {
            let khz = read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
            khz.trim().parse::<u64>().ok().map(|k| (k / 1000) as u32)
        })
        .unwrap_or(0);
    cpu
}

pub fn parse_cpu(loadavg: &str, stat: &str, uptime: &str, clock_hz: u64) -> HostCpu {
    let mut cpu = HostCpu::default();
    let load = sysinfo::loadavg(loadavg).unwrap_or_default();
    [cpu.load_one, cpu.load_five, cpu.load_fifteen] = load.averages.map(|a| a as f32);
    (cpu.proc_run, cpu.proc_total) = (load.running, load.total);
    let ms = |ticks: u64| (ticks.saturating_mul(1000) / clock_hz) as u32;
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let nums: Vec<u64> = f.map(|v| v.parse().unwrap_or(0)).collect();
        let n = |i: usize| nums.get(i).copied().unwrap_or(0);
        match key {
            "cpu" => {
                cpu.cpu_user = ms(n(0));
                cpu.cpu_nice = ms(n(1));
                cpu.cpu_system = ms(n(2));
                cpu.cpu_idle = ms(n(3));
                cpu.cpu_wio = ms(n(4));
                cpu.cpu_intr = ms(n(5));
                cpu.cpu_sintr = ms(n(6));
                cpu.cpu_steal = ms(n(7));
                cpu.cpu_guest = ms(n(8));
                cpu.cpu_guest_nice = ms(n(9));
            }
            k if k.starts_with("cpu") => cpu.cpu_num += 1,
            "intr" => cpu.interrupts = n(0) as u32,
            "ctxt" => cpu.contexts = n(0) as u32,
            _ => {}
        }
    }
    cpu.uptime = sysinfo::uptime_seconds(uptime).unwrap_or(0.0) as u32;
    cpu
}

/// "cpu MHz : 1200.000" (x86); ARM kernels do not print it.
fn cpu_mhz(cpuinfo: &str) -> Option<u32> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "cpu MHz").then(|| v.trim().parse::<f64>().ok().map(|m| m as u32)).flatten()
    })
}

/// host_memory from /proc/meminfo (kB) and /proc/vmstat (pages).
pub fn read_memory() -> HostMemory {
    parse_memory(&read("/proc/meminfo"), &read("/proc/vmstat"))
}

pub fn parse_memory(meminfo: &str, vmstat: &str) -> HostMemory {
    let bytes = |key: &str| sysinfo::meminfo_bytes(meminfo, key).unwrap_or(0);
    let pages = |key: &str| sysinfo::vmstat(vmstat, key).unwrap_or(0) as u32;
    HostMemory {
        mem_total: bytes("MemTotal"),
        mem_free: bytes("MemFree"),
        mem_shared: bytes("Shmem"),
        mem_buffers: bytes("Buffers"),
        mem_cached: bytes("Cached"),
        swap_total: bytes("SwapTotal"),
        swap_free: bytes("SwapFree"),
        page_in: pages("pgpgin"),
        page_out: pages("pgpgout"),
        swap_in: pages("pswpin"),
        swap_out: pages("pswpout"),
    }
}

/// host_disk_io: I/O summed over whole disks in /proc/diskstats, space over
/// the block-device filesystems in /proc/mounts.
pub fn read_disk_io() -> HostDiskIo {
    let disks: HashSet<String> = fs::read_dir("/sys/block")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let mut io = parse_diskstats(&read("/proc/diskstats"), &disks);
    let (total, free, max_used) = filesystem_space(&read("/proc/mounts"));
    io.disk_total = total;
    io.disk_free = free;
    io.part_max_used = max_used;
    io
}

/// Sums the whole disks named in `disks` (not partitions, not loop/ram).
pub fn parse_diskstats(text: &str, disks: &HashSet<String>) -> HostDiskIo {
    let mut io = HostDiskIo::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = f.get(2) else { continue };
        if !disks.contains(*name) || name.starts_with("loop") || name.starts_with("ram") {
            continue;
        }
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        io.reads = io.reads.wrapping_add(n(3) as u32);
        io.bytes_read += n(5) * 512;
        io.read_time = io.read_time.wrapping_add(n(6) as u32);
        io.writes = io.writes.wrapping_add(n(7) as u32);
        io.bytes_written += n(9) * 512;
        io.write_time = io.write_time.wrapping_add(n(10) as u32);
    }
    io
}

/// (total bytes, free bytes, fullest partition in percent × 100).
fn filesystem_space(mounts: &str) -> (u64, u64, i32) {
    let mut seen = HashSet::new();
    let (mut total, mut free, mut max_used) = (0u64, 0u64, 0i32);
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(dir)) = (f.next(), f.next()) else { continue };
        if !dev.starts_with("/dev/") || !seen.insert(dev.to_string()) {
            continue;
        }
        if let Some((t, fr)) = sysinfo::disk_space(Path::new(&dir.replace("\\040", " "))) {
            total += t;
            free += fr;
            if let Some(used) = (t.saturating_sub(fr) * 10_000).checked_div(t) {
                max_used = max_used.max(used as i32);
            }
        }
    }
    (total, free, max_used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_id_becomes_a_uuid() {
        let id = parse_machine_id("0123456789abcdef0123456789abcdef\n").expect("valid id");
        assert_eq!(id[0], 0x01);
        assert_eq!(id[15], 0xef);
        assert_eq!(parse_machine_id("xyz"), None);
    }

    #[test]
    fn cpu_from_proc_text() {
        let stat = "cpu  100 2 30 400 5 6 7 8 0 0\ncpu0 50 1 15 200 2 3 3 4 0 0\ncpu1 50 1 15 200 3 3 4 4 0 0\nintr 12345 0 0\nctxt 999\n";
        let c = parse_cpu("0.50 0.25 0.10 2/345 6789\n", stat, "1234.56 100.0\n", 100);
        assert_eq!((c.load_one, c.load_five, c.load_fifteen), (0.5, 0.25, 0.1));
        assert_eq!((c.proc_run, c.proc_total, c.cpu_num, c.uptime), (2, 345, 2, 1234));
        assert_eq!((c.cpu_user, c.cpu_idle, c.cpu_steal), (1000, 4000, 80));
        assert_eq!((c.interrupts, c.contexts), (12345, 999));
    }

    #[test]
    fn memory_from_proc_text() {
        let m = parse_memory(
            "MemTotal:  1000 kB\nMemFree: 200 kB\nBuffers: 10 kB\nCached: 300 kB\nSwapCached: 7 kB\nShmem: 5 kB\n",
            "pgpgin 11\npgpgout 22\npswpin 3\npswpout 4\n",
        );
        assert_eq!((m.mem_total, m.mem_free, m.mem_cached), (1_024_000, 204_800, 307_200));
        assert_eq!((m.mem_shared, m.page_in, m.swap_out), (5120, 11, 4));
    }

    #[test]
    fn diskstats_count_whole_disks_only() {
        let text = "   8       0 sda 10 0 80 5 20 0 160 7 0 0 0\n   8       1 sda1 9 0 72 4 19 0 150 6 0 0 0\n   7       0 loop0 1 0 8 1 0 0 0 0 0 0 0\n";
        let disks: HashSet<String> = ["sda".to_string(), "loop0".to_string()].into();
        let io = parse_diskstats(text, &disks);
        assert_eq!(
            (io.reads, io.bytes_read, io.writes, io.bytes_written),
            (10, 80 * 512, 20, 160 * 512)
        );
    }

    #[test]
    fn detects_this_host() {
        let h = HostInfo::detect();
        assert!(!h.os_release.is_empty());
        assert!(read_memory().mem_total > 0);
        assert!(read_cpu().cpu_num >= 1);
    }
}
