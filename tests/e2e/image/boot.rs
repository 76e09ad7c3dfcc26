//! The image booted as a Pi 3B in `qemu-system-aarch64 -M raspi3b` (the
//! machine line is `lab up`'s own, `emulated::qemu::machine`): from its SD
//! card and from a USB drive, up to sshd's banner and the agent's health.
//! Steps of the emulated test, which holds the emulator turn.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{built, fat, run, target_dir};
use crate::common::workspace;

/// Boots the image as a Pi 3B in qemu and waits for sshd's banner and
/// node-agent's `GET /v1/health` through forwarded ports. The serial console
/// log is kept under target/ when it fails. A step of the emulated test,
/// which holds the emulator turn.
pub(crate) fn image_boots_in_qemu_raspi3b() {
    eprintln!("=== image_boots_in_qemu_raspi3b");
    let (files, img) = board_disk("boot", "sd.img");
    let b = built();
    let attempts = env_secs("PI_LAB_BOOT_ATTEMPTS", 2);
    for attempt in 1..=attempts {
        match boot_once(&files, &img, attempt == attempts) {
            BootResult::Up => return,
            BootResult::NoNic if attempt < attempts => {
                eprintln!(
                    "attempt {attempt}: qemu's USB emulation did not enumerate usb-net (loaded host); booting again"
                );
                run(Command::new("cp").arg("--sparse=always").arg(b.img()).arg(&img));
            }
            BootResult::NoNic => {
                panic!("qemu's USB emulation never enumerated usb-net; serial log kept")
            }
        }
    }
}

/// The same image on a USB drive and no SD card: the initramfs (a module
/// list, not MODULES=most) must find RASPIROOT on the USB disk, and the
/// board boots to its login prompt. The command line is the card's own:
/// the listed USB drivers are loaded before the initramfs looks for the
/// root, and it waits up to 30 s for the drive (`rootdelay` would make it
/// sleep that long first, whatever happens). A step of the emulated test.
pub(crate) fn image_boots_from_a_usb_drive_in_qemu_raspi3b() {
    eprintln!("=== image_boots_from_a_usb_drive_in_qemu_raspi3b");
    let (files, img) = board_disk("boot-usb", "usb.img");
    let attempts = env_secs("PI_LAB_BOOT_ATTEMPTS", 2);
    for attempt in 1..=attempts {
        if usb_boot_once(&files, &img, attempt == attempts) {
            return;
        }
        eprintln!(
            "attempt {attempt}: qemu's USB emulation never showed the guest the drive (loaded host); booting again"
        );
    }
}

/// One boot from the USB drive. False when qemu's emulated DWC2 never
/// presented the drive (it happens on a loaded host, as with usb-net) and
/// this is not the last attempt; any other failure panics.
fn usb_boot_once(files: &BootFiles, img: &Path, last: bool) -> bool {
    let serial = files.dir.join("serial.log");
    let _ = std::fs::remove_file(&serial);
    let qemu = raspi3b(files, &files.cmdline, &serial)
        .arg("-drive")
        .arg(format!("if=none,id=stick,format=raw,file={}", img.display()))
        .args(["-device", "usb-storage,drive=stick"])
        .spawn()
        .expect("start qemu-system-aarch64");
    let (mut vm, deadline, started) = Vm::watch(qemu, &serial);
    let mut root_at = None;
    let mut no_drive = false;
    let login = wait_for(deadline, || {
        let log = serial_text(&serial);
        if root_at.is_none() && root_mounted_from(&log, "sd") {
            root_at = Some(started.elapsed().as_secs_f64());
        }
        if log.contains("Gave up waiting for root") && !log.contains("USB Mass Storage device") {
            no_drive = true;
            return Some(());
        }
        (root_at.is_some() && login_prompt(&log)).then_some(())
    });
    if no_drive && !last {
        vm.ok = true; // not a failure of the image: keep no log
        return false;
    }
    let log = serial_text(&serial);
    assert!(!root_mounted_from(&log, "mmcblk"), "the root came from an SD card, yet qemu had none");
    let at = root_at.unwrap_or_else(|| {
        panic!("the root file system was never mounted from the USB drive within {deadline:?}")
    });
    assert!(
        login.is_some(),
        "mounted the root from USB after {at:.0}s, but no login prompt within {deadline:?}; the console ended with:\n{}",
        console_tail(&log)
    );
    assert!(
        log.contains("pi-lab: mounted /dev/sda1 on /boot/firmware"),
        "the initramfs did not mount the USB drive's firmware partition"
    );
    eprintln!(
        "root file system mounted from the USB drive after {at:.0}s, login prompt after {:.0}s",
        started.elapsed().as_secs_f64()
    );
    vm.ok = true;
    true
}

/// For a boot test: the shared image copied to `target/pi-lab-image-test/
/// SUB/DISK` (qemu writes to it), and its boot files beside it.
fn board_disk(sub: &str, disk: &str) -> (BootFiles, PathBuf) {
    let b = built();
    let dir = target_dir(&format!("pi-lab-image-test/{sub}"));
    let img = dir.join(disk);
    run(Command::new("cp").arg("--sparse=always").arg(b.img()).arg(&img));
    (BootFiles::from_image(&b.img(), &dir), img)
}

/// Kernel, initrd, device tree and command line, copied out of the image's
/// firmware partition (qemu boots them directly; it has no Pi boot ROM).
struct BootFiles {
    dir: PathBuf,
    kernel: String,
    initrd: String,
    cmdline: String,
}

impl BootFiles {
    fn from_image(img: &Path, dir: &Path) -> Self {
        let listing = run(Command::new("mdir").arg("-i").arg(fat(img)).arg("-b").arg("::"));
        let find = |prefix: &str| {
            listing
                .lines()
                .map(|l| l.trim_start_matches("::/").to_string())
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix}* not in the firmware partition"))
        };
        let (kernel, initrd) = (find("vmlinuz-"), find("initrd.img-"));
        for f in [kernel.as_str(), initrd.as_str(), "bcm2837-rpi-3-b.dtb"] {
            run(Command::new("mcopy")
                .arg("-o")
                .arg("-i")
                .arg(fat(img))
                .arg(format!("::{f}"))
                .arg(dir.join(f)));
        }
        let cmdline = run(Command::new("mtype").arg("-i").arg(fat(img)).arg("::cmdline.txt"));
        Self { dir: dir.to_path_buf(), kernel, initrd, cmdline: cmdline.trim().to_string() }
    }
}

/// `qemu-system-aarch64 -M raspi3b` with the boot files, the serial console
/// (the mini UART, ttyS1) logged to `serial`, and no disk or NIC yet.
fn raspi3b(files: &BootFiles, cmdline: &str, serial: &Path) -> Command {
    let mut qemu = Command::new(pi_lab::emulated::qemu::PROGRAM);
    // The machine exactly as `lab up` runs a board.
    qemu.args(pi_lab::emulated::qemu::machine(
        &files.dir.join(&files.kernel),
        &files.dir.join(&files.initrd),
        &files.dir.join("bcm2837-rpi-3-b.dtb"),
        cmdline,
    ))
    // The PL011 (ttyAMA0) first, the mini UART (ttyS1, the console) second.
    .args(["-serial", "null", "-serial"])
    .arg(format!("file:{}", serial.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    qemu
}

enum BootResult {
    Up,
    /// The guest booted but qemu's dwc2 never showed it the USB NIC.
    NoNic,
}

fn boot_once(files: &BootFiles, img: &Path, last: bool) -> BootResult {
    let (ssh_port, health_port) = (free_port(), free_port());
    let serial = files.dir.join("serial.log");
    let _ = std::fs::remove_file(&serial);
    let qemu = raspi3b(files, &files.cmdline, &serial)
        .arg("-drive")
        .arg(format!("if=sd,format=raw,file={}", img.display()))
        .args(["-device", "usb-net,netdev=n0", "-netdev"])
        .arg(format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{health_port}-:9180,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"))
        .spawn()
        .expect("start qemu-system-aarch64");
    let (mut vm, deadline, started) = Vm::watch(qemu, &serial);
    let mut no_nic = false;
    let mut root_at = None;
    let banner = wait_for(deadline, || {
        let log = serial_text(&serial);
        if root_at.is_none() && root_mounted_from(&log, "mmcblk") {
            root_at = Some(started.elapsed().as_secs_f64());
        }
        // usbnet logs "usb0: register 'cdc_ether' at ..." when it binds the
        // NIC (the driver's own "registered new interface driver" line
        // only says the initramfs loaded it).
        if login_prompt(&log) && !log.contains(": register '") {
            no_nic = true;
            return Some(String::new());
        }
        ssh_banner(ssh_port)
    });
    if no_nic {
        vm.ok = !last;
        return BootResult::NoNic;
    }
    assert!(banner.is_some(), "no SSH banner within {deadline:?}; serial log kept (see below)");
    let log = serial_text(&serial);
    assert!(
        log.contains("pi-lab: mounted /dev/mmcblk0p1 on /boot/firmware"),
        "the initramfs did not mount the card's firmware partition; serial log kept"
    );
    if let Some(t) = root_at {
        eprintln!("root file system mounted from SD after {t:.0}s");
    }
    eprintln!(
        "SSH answered after {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        banner.unwrap_or_default().trim()
    );
    let health = wait_for(Duration::from_secs(180), || http_get(health_port, "/v1/health"));
    let body = health.expect("node-agent's GET /v1/health did not answer");
    assert!(body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"), "{body}");
    let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(json.contains("\"schema\"") && json.contains("\"agent_version\""), "{json}");
    let flat = json.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("GET /v1/health answered: {}", flat.chars().take(300).collect::<String>());
    vm.ok = true;
    BootResult::Up
}

/// The serial console log so far. Not UTF-8 throughout: the mini UART
/// starts with a stray byte.
fn serial_text(serial: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default()).into_owned()
}

/// The console shows a login prompt. The kernel writes to the same console
/// as getty, and its messages may land in the middle of "pi-lab login:".
fn login_prompt(log: &str) -> bool {
    log.contains(" login:") || without_interrupting_kernel_lines(log).contains(" login:")
}

/// `log` without the kernel messages ("[   12.345678] ...\n") that begin
/// in the middle of another line.
fn without_interrupting_kernel_lines(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find('[') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        if !out.is_empty() && !out.ends_with('\n') && kernel_stamp(from) {
            rest = from.find('\n').map_or("", |end| &from[end + 1..]);
        } else {
            out.push('[');
            rest = &from[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `s` starts with a kernel time stamp: `[`, seconds, `.`, six digits, `]`.
fn kernel_stamp(s: &str) -> bool {
    let Some(end) = s.get(..20).unwrap_or(s).find(']') else { return false };
    let Some((secs, micros)) = s[1..end].trim_start().split_once('.') else { return false };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(secs) && micros.len() == 6 && digits(micros)
}

/// The last lines of a serial console, for a failure message.
fn console_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn a_login_prompt_cut_by_kernel_messages_is_still_seen() {
    let cut = "Debian GNU/Linux 13 pi-lab ttyS1\r\n\r\npi-lab lo[  170.124171] vc4_hdmi 3f902000.hdmi: deferred probe timeout\r\n[  170.135943] vc4_hdmi: probe failed\r\ngin: ";
    assert!(!cut.contains(" login:"));
    assert!(login_prompt(cut));
    // Kernel lines of their own stay.
    let own = "[    1.000000] EXT4-fs (sda2): mounted filesystem\n[x] not a stamp\n";
    assert_eq!(without_interrupting_kernel_lines(own), own);
    assert!(!login_prompt("pi-lab lo[  1.5] not a stamp\ngin:"));
}

/// The root file system has been mounted from a disk whose kernel name
/// starts with `disk` (`mmcblk`: the SD card, `sd`: a USB drive).
fn root_mounted_from(serial: &str, disk: &str) -> bool {
    let mark = format!("EXT4-fs ({disk}");
    serial.lines().any(|l| l.contains(&mark) && l.contains("mounted filesystem"))
}

struct Vm {
    child: Child,
    serial: PathBuf,
    ok: bool,
}

impl Vm {
    /// Holds a started emulator, and its boot deadline
    /// (`PI_LAB_BOOT_DEADLINE`, 900 s) from now.
    fn watch(child: Child, serial: &Path) -> (Vm, Duration, Instant) {
        let deadline = Duration::from_secs(env_secs("PI_LAB_BOOT_DEADLINE", 900));
        (Vm { child, serial: serial.to_path_buf(), ok: false }, deadline, Instant::now())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.ok {
            let which = self.serial.parent().and_then(Path::file_name).unwrap_or_default();
            let keep = workspace()
                .join(format!("target/pi-lab-image-{}-serial.log", which.to_string_lossy()));
            let _ = std::fs::copy(&self.serial, &keep);
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            eprintln!("qemu stderr: {err}\nserial console log kept at {}", keep.display());
        }
    }
}

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    None
}

/// The first line sshd sends (`SSH-2.0-OpenSSH_...`). slirp accepts the TCP
/// connection even when nothing listens inside, then closes it: only a
/// banner counts.
fn ssh_banner(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.starts_with("SSH-").then_some(text)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/").then_some(body)
}
