//! The controller's time, as it travels to the agents: the HTTP `Date`
//! header (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) of every
//! `PUT /v1/config`. A Pi 3B has no real-time clock and a lab network
//! rarely has an NTP server, so a board can take its time from there.

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Seconds since the Unix epoch as an IMF-fixdate.
pub fn format(unix: u64) -> String {
    let days = unix / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let t = unix % 86_400;
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[usize::from(month) - 1],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// An IMF-fixdate back to seconds since the Unix epoch; `None` for
/// anything else (the obsolete RFC 850 and asctime forms included).
pub fn parse(text: &str) -> Option<u64> {
    let mut f = text.split_whitespace();
    let weekday = f.next()?.strip_suffix(',')?;
    let day: u16 = f.next()?.parse().ok()?;
    let month_name = f.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year: i64 = f.next()?.parse().ok()?;
    let mut hms = f.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if f.next()? != "GMT" || f.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month as u16 + 1, day);
    let unix = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    // The weekday must agree with the date, as a check on the whole.
    (DAYS[(days.rem_euclid(7)) as usize] == weekday).then_some(unix)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u16, u16) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// (year, month, day) to days since 1970-01-01, the inverse of
/// [`civil_from_days`].
fn days_from_civil(year: i64, month: u16, day: u16) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_reads_and_writes() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        for t in [0, 951_782_400, 1_735_689_600, 1_795_000_123, 4_102_444_799] {
            assert_eq!(parse(&format(t)), Some(t), "{}", format(t));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
