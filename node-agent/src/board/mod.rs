//! Facts about the board and the system, from sysfs, procfs and the device
//! tree.
//!
//! Every reader takes a root directory (`/` on a board) so tests can point
//! it at a fake tree. A fact the kernel does not expose reads `None`
//! ("unknown"); the first read says once in the log which facts are unknown,
//! and nothing else complains: on a laptop or in the virtual fleet that is
//! normal.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use lab_spec::health::{Board, System};

use crate::sysinfo;

/// Reads board and system facts below `root`.
#[derive(Debug)]
pub struct BoardReader {
    root: PathBuf,
    /// Management interface; `None`: the first physical Ethernet port.
    management_interface: Option<String>,
    said_unknown: Once,
}

impl BoardReader {
    pub fn new(root: impl Into<PathBuf>, management_interface: Option<String>) -> Self {
        BoardReader { root: root.into(), management_interface, said_unknown: Once::new() }
    }

    /// The real machine.
    pub fn system_root(management_interface: Option<String>) -> Self {
        BoardReader::new("/", management_interface)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Hardware facts.
    pub fn board(&self) -> Board {
        let throttle = self.firmware_throttle_bits();
        let board = Board {
            model: self.device_tree("model"),
            serial: self.device_tree("serial-number"),
            mac: self.management_mac(),
            soc_temperature_celsius: self.soc_temperature(),
            under_voltage: self.under_voltage_alarm().or(throttle.map(|b| b & 0x1 != 0)),
            // Bits 1-3: frequency capped, throttled now, soft temperature limit.
            throttled: throttle.map(|b| b & 0xe != 0),
        };
        self.say_unknown_once(&board);
        board
    }

    /// Operating-system facts.
    pub fn system(&self) -> System {
        let (memory_total_bytes, memory_available_bytes) = self.memory().unwrap_or((0, 0));
        let (disk_total_bytes, disk_available_bytes) =
            sysinfo::disk_space(&self.root).unwrap_or((0, 0));
        System {
            hostname: read_trimmed(&self.path("proc/sys/kernel/hostname")).unwrap_or_default(),
            uptime_seconds: self.uptime().unwrap_or(0),
            load: self.load().unwrap_or([0.0; 3]),
            memory_total_bytes,
            memory_available_bytes,
            disk_total_bytes,
            disk_available_bytes,
        }
    }

    fn say_unknown_once(&self, board: &Board) {
        self.said_unknown.call_once(|| {
            let unknown: Vec<&str> = [
                ("model", board.model.is_none()),
                ("serial number", board.serial.is_none()),
                ("MAC", board.mac.is_none()),
                ("SoC temperature", board.soc_temperature_celsius.is_none()),
                ("under-voltage", board.under_voltage.is_none()),
                ("throttling", board.throttled.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect();
            if !unknown.is_empty() {
                tracing::info!(
                    "board facts unknown here (not a Raspberry Pi, or the kernel does not expose them): {}",
                    unknown.join(", ")
                );
            }
        });
    }

    /// A device-tree property, from procfs or sysfs; strings end in NUL.
    fn device_tree(&self, property: &str) -> Option<String> {
        ["proc/device-tree", "sys/firmware/devicetree/base"].iter().find_map(|base| {
            let bytes = fs::read(self.path(base).join(property)).ok()?;
            let text = String::from_utf8_lossy(&bytes).trim_matches(['\0', ' ', '\n']).to_string();
            (!text.is_empty()).then_some(text)
        })
    }

    /// Thermal zone 0 in millidegrees.
    fn soc_temperature(&self) -> Option<f64> {
        let milli: i64 =
            read_trimmed(&self.path("sys/class/thermal/thermal_zone0/temp"))?.parse().ok()?;
        Some(milli as f64 / 1000.0)
    }

    /// The `rpi_volt` hwmon device of Debian's kernel raises `in0_lcrit_alarm`
    /// while the supply is too low.
    fn under_voltage_alarm(&self) -> Option<bool> {
        let entries = fs::read_dir(self.path("sys/class/hwmon")).ok()?;
        entries.flatten().find_map(|entry| {
            let dir = entry.path();
            if read_trimmed(&dir.join("name")).as_deref() != Some("rpi_volt") {
                return None;
            }
            Some(read_trimmed(&dir.join("in0_lcrit_alarm"))? != "0")
        })
    }

    /// The firmware's throttle bits, where the kernel exposes them (the
    /// Raspberry Pi kernel's `get_throttled`; Debian's does not).
    fn firmware_throttle_bits(&self) -> Option<u32> {
        let text = read_trimmed(&self.path("sys/devices/platform/soc/soc:firmware/get_throttled"))?;
        u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
    }

    fn management_mac(&self) -> Option<String> {
        let net = self.path("sys/class/net");
        let interface = match &self.management_interface {
            Some(name) => name.clone(),
            None => first_ethernet_port(&net)?,
        };
        let mac = read_trimmed(&net.join(interface).join("address"))?.to_ascii_lowercase();
        (mac != "00:00:00:00:00:00").then_some(mac)
    }

    /// `MemTotal` and `MemAvailable` in bytes.
    fn memory(&self) -> Option<(u64, u64)> {
        let text = fs::read_to_string(self.path("proc/meminfo")).ok()?;
        Some((
            sysinfo::meminfo_bytes(&text, "MemTotal")?,
            sysinfo::meminfo_bytes(&text, "MemAvailable")?,
        ))
    }

    fn uptime(&self) -> Option<u64> {
        let text = fs::read_to_string(self.path("proc/uptime")).ok()?;
        Some(sysinfo::uptime_seconds(&text)? as u64)
    }

    fn load(&self) -> Option<[f64; 3]> {
        let text = fs::read_to_string(self.path("proc/loadavg")).ok()?;
        Some(sysinfo::loadavg(&text)?.averages)
    }
}

/// The first Ethernet port that is real hardware (has a `device` link), by
/// name: `eth0` on a Pi 3B, `usb0` under the emulator.
fn first_ethernet_port(net: &Path) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(net)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let dir = net.join(name);
            read_trimmed(&dir.join("type")).as_deref() == Some("1") && dir.join("device").exists()
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Self {
            let dir = tempfile::Builder::new().prefix(&format!("t5-board-{name}-")).tempdir();
            Tree(dir.unwrap().keep())
        }

        fn file(&self, rel: &str, contents: &[u8]) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A Pi 3B as Debian's kernel shows it.
    fn pi_tree(name: &str) -> Tree {
        let t = Tree::new(name);
        t.file("proc/device-tree/model", b"Raspberry Pi 3 Model B Rev 1.2\0");
        t.file("proc/device-tree/serial-number", b"00000000a1b2c3d4\0");
        t.file("sys/class/thermal/thermal_zone0/temp", b"48312\n");
        t.file("sys/class/hwmon/hwmon0/name", b"cpu_thermal\n");
        t.file("sys/class/hwmon/hwmon1/name", b"rpi_volt\n");
        t.file("sys/class/hwmon/hwmon1/in0_lcrit_alarm", b"1\n");
        t.file("sys/class/net/eth0/type", b"1\n");
        t.file("sys/class/net/eth0/address", b"B8:27:EB:12:34:56\n");
        t.file("sys/class/net/eth0/device/uevent", b"");
        t.file("sys/class/net/br0/type", b"1\n");
        t.file("sys/class/net/br0/address", b"02:00:00:00:00:01\n");
        t.file("proc/meminfo", b"MemTotal:         944552 kB\nMemFree:          500000 kB\nMemAvailable:     700000 kB\n");
        t.file("proc/uptime", b"12345.67 40000.00\n");
        t.file("proc/loadavg", b"0.52 0.31 0.20 1/123 4567\n");
        t.file("proc/sys/kernel/hostname", b"leaf1\n");
        t
    }

    #[test]
    fn pi_facts_come_from_the_tree() {
        let t = pi_tree("pi");
        let reader = BoardReader::new(&t.0, None);
        let board = reader.board();
        assert_eq!(board.model.as_deref(), Some("Raspberry Pi 3 Model B Rev 1.2"));
        assert_eq!(board.serial.as_deref(), Some("00000000a1b2c3d4"));
        assert_eq!(board.mac.as_deref(), Some("b8:27:eb:12:34:56"));
        assert_eq!(board.soc_temperature_celsius, Some(48.312));
        assert_eq!(board.under_voltage, Some(true));
        assert_eq!(board.throttled, None, "Debian's kernel has no get_throttled");

        let system = reader.system();
        assert_eq!(system.hostname, "leaf1");
        assert_eq!(system.uptime_seconds, 12345);
        assert_eq!(system.load, [0.52, 0.31, 0.20]);
        assert_eq!(system.memory_total_bytes, 944552 * 1024);
        assert_eq!(system.memory_available_bytes, 700000 * 1024);
        assert!(
            system.disk_total_bytes > 0 && system.disk_available_bytes <= system.disk_total_bytes
        );
    }

    #[test]
    fn firmware_throttle_bits_fill_in_when_present() {
        let t = pi_tree("throttle");
        fs::remove_dir_all(t.0.join("sys/class/hwmon")).unwrap();
        t.file("sys/devices/platform/soc/soc:firmware/get_throttled", b"0x50005\n");
        let board = BoardReader::new(&t.0, Some("eth0".into())).board();
        assert_eq!(board.under_voltage, Some(true));
        assert_eq!(board.throttled, Some(true));
        t.file("sys/devices/platform/soc/soc:firmware/get_throttled", b"0x50000\n");
        let board = BoardReader::new(&t.0, None).board();
        assert_eq!((board.under_voltage, board.throttled), (Some(false), Some(false)));
    }

    #[test]
    fn sysfs_device_tree_is_the_fallback() {
        let t = Tree::new("dt-sysfs");
        t.file("sys/firmware/devicetree/base/model", b"Raspberry Pi 3 Model B Rev 1.2\0");
        let board = BoardReader::new(&t.0, None).board();
        assert_eq!(board.model.as_deref(), Some("Raspberry Pi 3 Model B Rev 1.2"));
    }

    #[test]
    fn off_a_pi_everything_reads_unknown() {
        let t = Tree::new("empty");
        let reader = BoardReader::new(&t.0, Some("eth0".into()));
        assert_eq!(reader.board(), Board::default());
        let system = reader.system();
        assert_eq!(system.uptime_seconds, 0);
        assert_eq!(system.memory_total_bytes, 0);
        assert_eq!(system.hostname, "");
        // Reading again neither panics nor changes anything.
        assert_eq!(reader.board(), Board::default());
    }

    #[test]
    fn garbage_in_sysfs_reads_unknown() {
        let t = Tree::new("garbage");
        t.file("sys/class/thermal/thermal_zone0/temp", b"hot\n");
        t.file("proc/loadavg", b"x y z\n");
        t.file("proc/meminfo", b"MemTotal: lots\n");
        let reader = BoardReader::new(&t.0, None);
        assert_eq!(reader.board().soc_temperature_celsius, None);
        assert_eq!(reader.system().load, [0.0; 3]);
        assert_eq!(reader.system().memory_total_bytes, 0);
    }

    #[test]
    fn the_real_machine_does_not_crash() {
        let reader = BoardReader::system_root(None);
        let system = reader.system();
        assert!(system.memory_total_bytes > 0);
        assert!(system.uptime_seconds > 0);
        let _ = reader.board();
    }
}
