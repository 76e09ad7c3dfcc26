//! A port's impairment: Linux's netem qdisc (delay, jitter, loss, and a
//! rate through netem's own `rate` option), its values checked before any
//! node sees them, and the `tc` command that sets it. One place for the
//! ranges and units: `pi-lab lab impair`, the lab file's `tc` on a link
//! (checked at `lab check`) and node-agent (which applies the lab file's
//! through NodeConfig) all read values here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest delay (and jitter) pi-lab sets: beyond a minute every
/// protocol in the lab times out, which is no impairment but a cut.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetemError {
    #[error("jitter varies the delay: give a delay too")]
    JitterWithoutDelay,
    #[error("nothing to set: give a delay, a loss or a rate")]
    Nothing,
    #[error("{0}")]
    Value(String),
}

/// netem's settings for one port; at least one is set. In a NodeConfig
/// and a health report it is written as tc writes it: `{ delay = "20ms",
/// jitter = "5ms", loss = "1%", rate = "10mbit" }`, checked when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NetemText", into = "NetemText")]
pub struct Netem {
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Percent of packets dropped, 0 to 100.
    pub loss: Option<f64>,
    /// Bits per second, above 0.
    pub rate: Option<u64>,
}

impl Netem {
    /// Settings from values already checked one by one
    /// ([`parse_delay`], [`parse_loss`], [`parse_rate`]).
    pub fn new(
        delay: Option<Duration>,
        jitter: Option<Duration>,
        loss: Option<f64>,
        rate: Option<u64>,
    ) -> Result<Netem, NetemError> {
        if jitter.is_some() && delay.is_none() {
            return Err(NetemError::JitterWithoutDelay);
        }
        if delay.is_none() && loss.is_none() && rate.is_none() {
            return Err(NetemError::Nothing);
        }
        Ok(Netem { delay, jitter, loss, rate })
    }

    /// netem's options, as `tc` takes them.
    #[must_use]
    fn options(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(delay) = self.delay {
            out.extend(["delay".to_string(), time(delay)]);
            out.extend(self.jitter.map(time));
        }
        if let Some(loss) = self.loss {
            out.extend(["loss".to_string(), format!("{loss}%")]);
        }
        if let Some(rate) = self.rate {
            out.extend(["rate".to_string(), rate_text(rate)]);
        }
        out
    }

    /// `tc qdisc replace dev PORT root netem ...`: one command whether or
    /// not the port had a qdisc.
    pub fn tc_replace(&self, port: &str) -> Vec<String> {
        let mut argv: Vec<String> =
            ["tc", "qdisc", "replace", "dev", port, "root", "netem"].map(String::from).to_vec();
        argv.extend(self.options());
        argv
    }
}

// Every value is finite (the parsers refuse NaN and infinities), so
// equality on the loss is total; NodeConfig, which carries a Netem, is Eq.
impl Eq for Netem {}

/// [`Netem`] as written in a NodeConfig or a lab file's `tc` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetemText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

impl TryFrom<NetemText> for Netem {
    type Error = NetemError;

    fn try_from(t: NetemText) -> Result<Netem, NetemError> {
        fn value<T>(
            text: Option<String>,
            parse: fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, NetemError> {
            text.as_deref().map(parse).transpose().map_err(NetemError::Value)
        }
        Netem::new(
            value(t.delay, parse_delay)?,
            value(t.jitter, parse_delay)?,
            value(t.loss, parse_loss)?,
            value(t.rate, parse_rate)?,
        )
    }
}

impl From<Netem> for NetemText {
    fn from(n: Netem) -> NetemText {
        NetemText {
            delay: n.delay.map(time),
            jitter: n.jitter.map(time),
            loss: n.loss.map(|l| format!("{l}%")),
            rate: n.rate.map(rate_text),
        }
    }
}

impl Netem {
    /// The netem settings in one line of `tc qdisc show dev PORT root`
    /// (`qdisc netem 8001: root refcnt 2 limit 1000 delay 20ms  5ms loss
    /// 1% rate 10Mbit seed ...`); `None` when the root qdisc is not netem.
    /// A netem with none of the four (all 0) reads as no setting at all.
    pub fn from_tc_show(shown: &str) -> Option<Option<Netem>> {
        let line = shown.lines().find(|l| l.starts_with("qdisc netem "))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str, i: usize| {
            words.iter().position(|w| *w == key).and_then(|at| words.get(at + i)).copied()
        };
        let delay = after("delay", 1).and_then(|t| parse_delay(t).ok());
        let jitter = delay.and(after("delay", 2)).and_then(|t| parse_delay(t).ok());
        let loss = after("loss", 1).and_then(|t| parse_loss(t).ok());
        let rate = after("rate", 1).and_then(|t| parse_rate(t).ok());
        Some(Netem::new(delay, jitter, loss, rate).ok())
    }
}

impl fmt::Display for Netem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(delay) = self.delay {
            parts.push(format!("delay {}", time(delay)));
        }
        if let Some(jitter) = self.jitter {
            parts.push(format!("jitter {}", time(jitter)));
        }
        if let Some(loss) = self.loss {
            parts.push(format!("loss {loss}%"));
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {}", rate_text(rate)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// `20ms`, `1.5ms`, `250us`, `1s`, `0`: from 0 to [`MAX_DELAY`], in whole
/// microseconds (tc's resolution). Forms as [`crate::duration::parse`],
/// but a unit is required: a bare 20 means milliseconds to tc users.
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    not_negative(text)?;
    if text.trim().parse::<f64>().is_ok_and(|v| v != 0.0) {
        return Err(format!("{text:?} needs a unit: write e.g. 20ms, 500us or 1s"));
    }
    let delay = crate::duration::parse(text)?;
    if delay > MAX_DELAY {
        return Err(format!("{text} is longer than the longest delay, 60s"));
    }
    Ok(Duration::from_micros((delay.as_secs_f64() * 1e6).round() as u64))
}

/// `1%`, `0.5%`, `1`: percent of packets lost, 0 to 100.
pub fn parse_loss(text: &str) -> Result<f64, String> {
    not_negative(text)?;
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    let loss = parse_number(number, text)?;
    if loss > 100.0 {
        return Err(format!("{text} is more than 100%: loss is a percentage of packets"));
    }
    Ok(loss)
}

/// `10mbit`, `512kbit`, `1gbit`, `64000bit`: bits per second, above 0
/// (tc's SI units; its `mbps` would be bytes, so it is refused).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    not_negative(text)?;
    let (number, unit) = split_unit(text);
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "" => return Err(format!("{text:?} needs a unit: write e.g. 10mbit, 512kbit or 1gbit")),
        u if u.ends_with("bps") => {
            return Err(format!(
                "{text:?}: tc's {u} means bytes per second; write the rate in bits, e.g. 10mbit"
            ));
        }
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use bit, kbit, mbit or gbit")),
    };
    let value = parse_number(number, text)?;
    let bits = (value * scale as f64).round();
    if bits < 1.0 {
        return Err(format!("rate {text} must be above 0"));
    }
    if bits > u64::MAX as f64 {
        return Err(format!("rate {text} is too large"));
    }
    Ok(bits as u64)
}

fn not_negative(text: &str) -> Result<(), String> {
    if text.trim().starts_with('-') { Err(format!("{text} is negative")) } else { Ok(()) }
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text.split_at(at)
}

/// A finite, non-negative decimal number.
fn parse_number(number: &str, text: &str) -> Result<f64, String> {
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number here")),
    }
}

/// A time as tc writes it: whole milliseconds as `ms`, else `us`.
fn time(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1000) { format!("{}ms", micros / 1000) } else { format!("{micros}us") }
}

/// A rate in the largest SI unit that divides it.
fn rate_text(bits: u64) -> String {
    for (unit, scale) in [("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)] {
        if bits.is_multiple_of(scale) {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

/// The kernel module netem lives in, for messages about a kernel without it.
pub const MODULE: &str = "sch_netem";

/// `tc`'s words for a qdisc kind the kernel does not know.
pub fn kind_unknown(stderr: &str) -> bool {
    stderr.contains("qdisc kind is unknown") || stderr.contains("Unknown qdisc")
}

/// Whether `tc qdisc show dev PORT root` shows a netem qdisc.
pub fn is_netem(shown: &str) -> bool {
    shown.lines().any(|l| l.starts_with("qdisc netem "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_in_range() {
        assert_eq!(parse_delay("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_delay("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_delay("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_delay("60s"), Ok(MAX_DELAY));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("61s").unwrap_err().contains("60s"));
        assert!(parse_delay("20").unwrap_err().contains("needs a unit"));
        assert!(parse_delay("20d").unwrap_err().contains("unknown unit"));
        assert!(parse_delay("20h").unwrap_err().contains("60s"));
        assert!(parse_delay("-5ms").unwrap_err().contains("negative"));
        assert!(parse_delay("ms").is_err());
    }

    #[test]
    fn loss_is_a_percentage() {
        assert_eq!(parse_loss("1%"), Ok(1.0));
        assert_eq!(parse_loss("0.5"), Ok(0.5));
        assert_eq!(parse_loss("100%"), Ok(100.0));
        assert!(parse_loss("101%").unwrap_err().contains("100%"));
        assert!(parse_loss("-1%").unwrap_err().contains("negative"));
        assert!(parse_loss("lots").is_err());
    }

    #[test]
    fn rates_are_bits_above_zero() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("512kbit"), Ok(512_000));
        assert_eq!(parse_rate("1.5Mbit"), Ok(1_500_000));
        assert!(parse_rate("0mbit").unwrap_err().contains("above 0"));
        assert!(parse_rate("10mbps").unwrap_err().contains("bytes per second"));
        assert!(parse_rate("10").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn the_tc_command_carries_every_setting() {
        let netem = Netem::new(
            Some(Duration::from_millis(20)),
            Some(Duration::from_micros(5500)),
            Some(1.0),
            Some(10_000_000),
        )
        .unwrap();
        assert_eq!(
            netem.tc_replace("eth1").join(" "),
            "tc qdisc replace dev eth1 root netem delay 20ms 5500us loss 1% rate 10mbit"
        );
        assert_eq!(netem.to_string(), "delay 20ms, jitter 5500us, loss 1%, rate 10mbit");
        let loss = Netem::new(None, None, Some(0.5), None).unwrap();
        assert_eq!(
            loss.tc_replace("eth2").join(" "),
            "tc qdisc replace dev eth2 root netem loss 0.5%"
        );
        assert_eq!(rate_text(64_500), "64500bit");
    }

    #[test]
    fn settings_that_make_no_sense_are_refused() {
        let jitter = Netem::new(None, Some(Duration::from_millis(5)), Some(1.0), None);
        assert_eq!(jitter, Err(NetemError::JitterWithoutDelay));
        assert_eq!(Netem::new(None, None, None, None), Err(NetemError::Nothing));
    }

    #[test]
    fn written_as_tc_writes_it_and_read_back_checked() {
        let netem = Netem::new(Some(Duration::from_millis(20)), None, Some(0.5), None).unwrap();
        let json = serde_json::to_string(&netem).unwrap();
        assert_eq!(json, r#"{"delay":"20ms","loss":"0.5%"}"#);
        assert_eq!(serde_json::from_str::<Netem>(&json).unwrap(), netem);
        let bad = serde_json::from_str::<Netem>(r#"{"loss":"150%"}"#).unwrap_err();
        assert!(bad.to_string().contains("100%"), "{bad}");
        let jitter = serde_json::from_str::<Netem>(r#"{"jitter":"5ms"}"#).unwrap_err();
        assert!(jitter.to_string().contains("give a delay"), "{jitter}");
    }

    #[test]
    fn the_running_netem_is_read_from_tc() {
        let shown = "qdisc netem 8001: root refcnt 2 limit 1000 delay 20ms  5ms loss 1% rate 10Mbit seed 42\n";
        let netem = Netem::from_tc_show(shown).unwrap().unwrap();
        assert_eq!(netem.to_string(), "delay 20ms, jitter 5ms, loss 1%, rate 10mbit");
        let plain = Netem::from_tc_show("qdisc netem 8002: root refcnt 2 limit 1000\n");
        assert_eq!(plain, Some(None));
        assert_eq!(Netem::from_tc_show("qdisc noqueue 0: root refcnt 2\n"), None);
        let half =
            Netem::from_tc_show("qdisc netem 1: root refcnt 2 limit 1000 delay 1.5ms").unwrap();
        assert_eq!(half.unwrap().delay, Some(Duration::from_micros(1500)));
    }

    #[test]
    fn tc_output_is_read() {
        assert!(is_netem("qdisc netem 8001: root refcnt 2 limit 1000 delay 20ms\n"));
        assert!(!is_netem("qdisc noqueue 0: root refcnt 2\n"));
        assert!(kind_unknown("Error: Specified qdisc kind is unknown.\n"));
    }
}
