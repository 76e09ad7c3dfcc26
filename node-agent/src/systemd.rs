//! sd_notify(3) by hand: one datagram to `$NOTIFY_SOCKET`, no libsystemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Send `state` (e.g. `READY=1`) to systemd. False when not run by systemd
/// with `Type=notify` or when the socket is gone; that is not an error.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(sock) = UnixDatagram::unbound() else { return false };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract socket: '@' stands for the leading NUL byte.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    sent.is_ok()
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec`, if systemd asked
/// this process for it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_listening_socket() {
        let dir = std::env::temp_dir().join(format!("t3a-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this test owns NOTIFY_SOCKET; no other test reads it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1"));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
