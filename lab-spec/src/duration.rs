//! Durations as every command takes them: `90` (seconds), `90s`, `1.5s`,
//! `1m30s`, `500ms`, `250us`, `2h`. One parser, so `--timeout`,
//! `--deadline`, `--duration` and `PI_LAB_TIMEOUT` read alike everywhere.

use std::time::Duration;

const UNITS: &[(&str, f64)] = &[("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];

/// A duration: a bare number is seconds; otherwise numbers each followed
/// by a unit (us, ms, s, m, h), added up.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let wrong = || format!("{text:?} is not a duration; write e.g. 90, 90s, 1m30s or 500ms");
    if trimmed.is_empty() || trimmed.starts_with('-') {
        return Err(wrong());
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return from_seconds(seconds, text);
    }
    let mut seconds = 0.0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let at = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(at);
        let end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, next) = tail.split_at(end);
        let value: f64 = number.parse().map_err(|_| wrong())?;
        let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!("unknown unit {unit:?} in {text:?}; use us, ms, s, m or h"));
        };
        seconds += value * scale;
        rest = next;
    }
    from_seconds(seconds, text)
}

/// [`parse`], refusing zero: for waits and intervals.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let duration = parse(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be longer than 0"));
    }
    Ok(duration)
}

fn from_seconds(seconds: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_to_the_same_time() {
        let s = Duration::from_secs;
        assert_eq!(parse("90"), Ok(s(90)));
        assert_eq!(parse("90s"), Ok(s(90)));
        assert_eq!(parse("1m30s"), Ok(s(90)));
        assert_eq!(parse(" 1m30s "), Ok(s(90)));
        assert_eq!(parse("1.5m"), Ok(s(90)));
        assert_eq!(parse("2h"), Ok(s(7200)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        assert!(parse("soon").unwrap_err().contains("e.g. 90, 90s, 1m30s"));
        assert!(parse("5d").unwrap_err().contains("unknown unit \"d\""));
        assert!(parse("-5s").is_err());
        assert!(parse("").is_err());
        assert!(parse("1..2s").is_err());
        assert!(parse("1e400").is_err());
        assert!(parse_positive("0s").unwrap_err().contains("longer than 0"));
        assert_eq!(parse_positive("2"), Ok(Duration::from_secs(2)));
    }
}
