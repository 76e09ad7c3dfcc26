//! The board's wall clock, from the controller. A Pi 3B has no real-time
//! clock and a lab network rarely has an NTP server, so after a boot the
//! time can be days or years off, and so are log and sFlow timestamps.
//! Every authenticated `PUT /v1/config` carries the controller's time (the
//! HTTP `Date` header); the agent takes it when no NTP server keeps the
//! clock (systemd-timesyncd has not synchronised) and the clock is off by
//! more than a few seconds. Ages in reports never depend on it: they come
//! from the monotonic clock.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// systemd-timesyncd's mark of a clock synchronised over NTP.
pub const NTP_SYNCHRONIZED: &str = "/run/systemd/timesync/synchronized";

/// How far off the clock may be before it is set (the `Date` header has
/// one-second resolution and the request takes its time).
pub const TOLERANCE_SECONDS: u64 = 3;

/// The time to set, if any: the controller's, when NTP does not keep the
/// clock and `local` is off by more than the tolerance.
pub fn decide(controller: u64, local: u64, ntp_synchronized: bool) -> Option<u64> {
    (!ntp_synchronized && controller.abs_diff(local) > TOLERANCE_SECONDS).then_some(controller)
}

/// The controller's `Date` header (RFC 9110 IMF-fixdate, as pi-lab sends
/// it) in seconds since the Unix epoch.
fn controller_time(date: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(date).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Follow the controller's `Date` header; what was done, for the log.
pub fn follow_controller(date: &str) -> Option<String> {
    let controller = controller_time(date)?;
    let local = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let set = decide(controller, local, Path::new(NTP_SYNCHRONIZED).exists())?;
    let ts = rustix::time::Timespec { tv_sec: i64::try_from(set).ok()?, tv_nsec: 0 };
    match rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts) {
        Ok(()) => Some(format!(
            "clock set from the controller: {date} (was {} s off)",
            set.abs_diff(local)
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set the clock from the controller's time");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_header_reads_as_the_controller_writes_it() {
        assert_eq!(controller_time("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(controller_time(&httpdate::fmt_http_date(now)), Some(secs));
        for bad in
            ["", "yesterday", "Mon, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT"]
        {
            assert_eq!(controller_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_clock_follows_the_controller_only_without_ntp_and_when_off() {
        let controller = 1_795_000_000;
        assert_eq!(decide(controller, 1_735_689_600, false), Some(controller));
        assert_eq!(decide(controller, controller + 2, false), None, "within tolerance");
        assert_eq!(decide(controller, 1_735_689_600, true), None, "NTP keeps the clock");
    }
}
