//! One emulated board: `qemu-system-aarch64 -M raspi3b` booting its card.
//!
//! The Pi 3B's firmware cannot run in qemu, so the kernel, initrd, device
//! tree and command line come from the card's FAT partition (what the
//! firmware would load) and are handed to qemu directly. The board's one
//! Ethernet port is qemu's usb-net on a tap of the lab's switch. With a MAC
//! in the Raspberry Pi OUI (not locally administered) the guest's
//! cdc_ether driver names it `eth0`, as a real Pi 3B names its port.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The program, and the Debian package that has it.
pub const PROGRAM: &str = "qemu-system-aarch64";
pub const PACKAGE: &str = "qemu-system-arm";

/// Guest memory of a Pi 3B; qemu's raspi3b accepts nothing else.
pub const BOARD_MEMORY: u64 = 1 << 30;

/// qemu's cache of translated guest code, MiB.
pub const TB_CACHE_MIB: u64 = 256;

/// What qemu needs to start one board.
#[derive(Debug, Clone)]
pub struct Board {
    pub card: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub dtb: PathBuf,
    pub cmdline: String,
    pub mac: String,
    pub tap: String,
    /// Serial console: a socket to attach to, and a log of everything.
    pub console_socket: PathBuf,
    pub console_log: PathBuf,
}

/// The machine and how it boots, with no disk, NIC or console yet: what
/// every emulated Pi 3B shares (`lab up`'s boards and the image's own boot
/// tests). The kernel, initrd, device tree and command line are the ones
/// the firmware would load from the card.
pub fn machine(kernel: &Path, initrd: &Path, dtb: &Path, cmdline: &str) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    for s in ["-M", "raspi3b", "-m", "1G", "-display", "none", "-monitor", "none", "-nodefaults"] {
        a.push(s.into());
    }
    // qemu's translated-code cache defaults to 1 GiB per emulator; a
    // quarter of that keeps a board's host memory near its own 1 GiB.
    // One host thread for the board's four cores (thread=single): with a
    // thread per core (qemu's default) the idle cores' spin loops crowd
    // out the one that boots; the kernel's first line came after 23 s
    // instead of 2 s on a 2-core host.
    a.push("-accel".into());
    a.push(format!("tcg,thread=single,tb-size={TB_CACHE_MIB}").into());
    for (k, v) in [("-kernel", kernel), ("-initrd", initrd), ("-dtb", dtb)] {
        a.push(k.into());
        a.push(v.as_os_str().to_owned());
    }
    a.push("-append".into());
    a.push(cmdline.into());
    a
}

/// The qemu command line for `board`. No user-mode networking at all: the
/// only NIC is a tap on the lab's own bridge, which has no uplink.
pub fn args(board: &Board) -> Vec<OsString> {
    let mut a = machine(&board.kernel, &board.initrd, &board.dtb, &board.cmdline);
    let mut kv = |k: &str, v: OsString| {
        a.push(k.into());
        a.push(v);
    };
    // The card is thrown away by `lab down`: guest flushes need not reach
    // the disk, which keeps journald and apt from stalling the boot.
    kv("-drive", join("if=sd,format=raw,cache=unsafe,file=", &board.card));
    kv("-device", format!("usb-net,netdev=lab0,mac={}", board.mac).into());
    kv("-netdev", format!("tap,id=lab0,ifname={},script=no,downscript=no", board.tap).into());
    let mut console = OsString::from("socket,id=console,server=on,wait=off,path=");
    console.push(&board.console_socket);
    console.push(",logfile=");
    console.push(&board.console_log);
    console.push(",logappend=on");
    kv("-chardev", console);
    // The PL011 (ttyAMA0) serves Bluetooth on a Pi 3B; the console is the
    // mini UART (ttyS1), qemu's second serial port.
    kv("-serial", "null".into());
    kv("-serial", "chardev:console".into());
    a
}

fn join(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path);
    s
}

/// `qemu-system-aarch64` on PATH.
pub fn find() -> Option<PathBuf> {
    crate::programs::find(PROGRAM)
}

/// The board's MAC: the lab's `mac` for the node, else one derived from
/// lab and node names in the Raspberry Pi Foundation's OUI (b8:27:eb), so
/// the same lab always gives the same MACs.
pub fn mac_for(lab: &str, node: &str, given: Option<&str>) -> String {
    if let Some(mac) = given {
        return mac.to_ascii_lowercase();
    }
    let h = lab_spec::alloc::fnv1a(&format!("{lab}/{node}"));
    let [.., x, y, z] = h.to_be_bytes();
    format!("b8:27:eb:{x:02x}:{y:02x}:{z:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Board {
        Board {
            card: "/s/leaf1/card.img".into(),
            kernel: "/s/boot/vmlinuz".into(),
            initrd: "/s/boot/initrd.img".into(),
            dtb: "/s/boot/bcm2837-rpi-3-b.dtb".into(),
            cmdline: "console=ttyS1,115200 root=LABEL=RASPIROOT".into(),
            mac: "b8:27:eb:01:02:03".into(),
            tap: "fab-t0".into(),
            console_socket: "/s/leaf1/console.sock".into(),
            console_log: "/s/leaf1/console.log".into(),
        }
    }

    #[test]
    fn the_command_line_boots_the_card_on_a_tap_with_no_user_networking() {
        let args: Vec<String> =
            args(&board()).into_iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let line = args.join(" ");
        assert!(line.starts_with("-M raspi3b -m 1G"), "{line}");
        assert!(line.contains("-drive if=sd,format=raw,cache=unsafe,file=/s/leaf1/card.img"));
        assert!(line.contains("-device usb-net,netdev=lab0,mac=b8:27:eb:01:02:03"));
        assert!(line.contains("-netdev tap,id=lab0,ifname=fab-t0,script=no,downscript=no"));
        assert!(!line.contains("user,") && !line.contains("hostfwd"), "{line}");
        assert!(line.contains("-serial null -serial chardev:console"));
        assert!(line.contains("logfile=/s/leaf1/console.log"));
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "console=ttyS1,115200 root=LABEL=RASPIROOT");
    }

    #[test]
    fn macs_are_stable_universal_and_in_the_pi_oui() {
        let a = mac_for("fabric", "leaf1", None);
        assert_eq!(a, mac_for("fabric", "leaf1", None));
        assert_ne!(a, mac_for("fabric", "leaf2", None));
        assert_ne!(a, mac_for("other", "leaf1", None));
        assert!(a.starts_with("b8:27:eb:"), "{a}");
        // 0xb8: bit 1 clear, not locally administered: cdc_ether names it ethN.
        assert_eq!(mac_for("x", "y", Some("B8:27:EB:00:00:01")), "b8:27:eb:00:00:01");
    }
}
