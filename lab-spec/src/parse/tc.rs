//! Reading a link's impairments, netlab's `tc` attribute:
//!
//! ```toml
//! [[links]]
//! a = "leaf1:eth1"
//! b = "spine1:eth1"
//! tc = { delay = "20ms", jitter = "5ms", loss = "1%", rate = "10mbit" }
//! tc_b = { loss = "5%" }   # one end only, over the link's own
//! ```
//!
//! netem acts on what a port sends, so `tc` goes on both ends (netlab's
//! advice: set it on the link, the same both ways); `tc_a` and `tc_b` set
//! or override keys for one end. Values and ranges are
//! [`crate::impairment`]'s, the same as `pi-lab lab impair`'s.

use std::time::Duration;

use toml::de::DeValue;

use super::{Reader, Table, Value};
use crate::diagnostics::Span;
use crate::impairment::{self, Netem, NetemError};

pub(super) const TC_KEYS: &[&str] = &["delay", "jitter", "loss", "rate"];

/// One end's settings, each with where it was written.
#[derive(Default)]
struct Settings {
    delay: Option<(Duration, Span)>,
    jitter: Option<(Duration, Span)>,
    loss: Option<(f64, Span)>,
    rate: Option<(u64, Span)>,
    /// A value was refused (and reported): no more errors about the whole.
    refused: bool,
}

impl Settings {
    /// `other`'s keys over this one's.
    fn under(&self, other: &Settings) -> Settings {
        Settings {
            delay: other.delay.clone().or_else(|| self.delay.clone()),
            jitter: other.jitter.clone().or_else(|| self.jitter.clone()),
            loss: other.loss.clone().or_else(|| self.loss.clone()),
            rate: other.rate.clone().or_else(|| self.rate.clone()),
            refused: self.refused || other.refused,
        }
    }
}

impl Reader {
    /// The impairment of each end of a `[[links]]` table, `(a, b)`.
    pub(super) fn link_tc(&mut self, t: &Table) -> (Option<Netem>, Option<Netem>) {
        let both = self.tc_table(t, "tc");
        let (a, b) = (self.tc_table(t, "tc_a"), self.tc_table(t, "tc_b"));
        let end = |reader: &mut Reader, own: &Option<(Settings, Span)>| {
            let (merged, at) = match (&both, own) {
                (None, None) => return None,
                (Some((link, at)), None) => (link.under(&Settings::default()), at.clone()),
                (None, Some((own, at))) => (Settings::default().under(own), at.clone()),
                (Some((link, _)), Some((own, at))) => (link.under(own), at.clone()),
            };
            reader.netem(merged, at)
        };
        (end(self, &a), end(self, &b))
    }

    fn tc_table(&mut self, t: &Table, key: &str) -> Option<(Settings, Span)> {
        let value = t.get(key)?;
        let place = format!("{key} of [[links]]");
        let table = self.table(value, key, "[[links]]")?;
        self.keys(table, TC_KEYS, &place);
        let mut settings = Settings {
            delay: self.tc_value(table, "delay", &place, impairment::parse_delay, DELAY_HELP),
            jitter: self.tc_value(table, "jitter", &place, impairment::parse_delay, DELAY_HELP),
            loss: self.tc_value(table, "loss", &place, impairment::parse_loss, LOSS_HELP),
            rate: self.tc_value(table, "rate", &place, impairment::parse_rate, RATE_HELP),
            refused: false,
        };
        let read = [settings.delay.is_some(), settings.jitter.is_some()]
            .into_iter()
            .chain([settings.loss.is_some(), settings.rate.is_some()])
            .filter(|r| *r)
            .count();
        settings.refused = read < TC_KEYS.iter().filter(|k| table.contains_key(**k)).count();
        Some((settings, value.span()))
    }

    /// One value, a string with its unit (a loss may be a bare number).
    fn tc_value<T>(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        parse: fn(&str) -> Result<T, String>,
        help: &str,
    ) -> Option<(T, Span)> {
        let value: &Value = t.get(key)?;
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) if key == "loss" => i.as_str().to_string(),
            DeValue::Float(f) if key == "loss" => f.as_str().to_string(),
            _ => {
                self.wrong_type(value, key, place, "a string with its unit");
                return None;
            }
        };
        match parse(&text) {
            Ok(v) => Some((v, value.span())),
            Err(message) => {
                self.error(value.span(), format!("{key} in {place}: {message}"), help);
                None
            }
        }
    }

    fn netem(&mut self, s: Settings, at: Span) -> Option<Netem> {
        if s.refused {
            return None;
        }
        fn value<T: Copy>(f: &Option<(T, Span)>) -> Option<T> {
            f.as_ref().map(|(v, _)| *v)
        }
        match Netem::new(value(&s.delay), value(&s.jitter), value(&s.loss), value(&s.rate)) {
            Ok(netem) => Some(netem),
            Err(NetemError::JitterWithoutDelay) => {
                let at = s.jitter.map_or(at, |j| j.1);
                self.error(at, "jitter without a delay: netem varies the delay", DELAY_FOR_JITTER);
                None
            }
            Err(NetemError::Nothing) => {
                self.error(at, "an impairment that sets nothing", NOTHING_HELP);
                None
            }
            // Every value was checked already (and reported) one by one.
            Err(NetemError::Value(_)) => None,
        }
    }
}

const DELAY_HELP: &str = "write a time with its unit, from 0 to 60s: delay = \"20ms\" (us, ms, s)";
const LOSS_HELP: &str = "write a percentage from 0 to 100: loss = \"1%\"";
const RATE_HELP: &str =
    "write bits per second with their unit, above 0: rate = \"10mbit\" (bit, kbit, mbit, gbit)";
const DELAY_FOR_JITTER: &str = "add a delay, e.g. tc = { delay = \"20ms\", jitter = \"5ms\" }";
const NOTHING_HELP: &str = "give at least one of delay, loss or rate, or remove the table";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    const LAB: &str = r#"name = "t"
[nodes.r1]
role = "router"
asn = 65001
[nodes.r2]
role = "router"
asn = 65002
[[links]]
a = "r1:eth1"
b = "r2:eth1"
"#;

    fn lab(extra: &str) -> Result<crate::Lab, crate::Diagnostics> {
        crate::parse(&format!("{LAB}{extra}"), "lab.toml")
    }

    /// Each error as `line:column: message | help`.
    fn errors(extra: &str) -> Vec<String> {
        let diags = lab(extra).expect_err("must be refused");
        diags
            .located()
            .into_iter()
            .map(|d| {
                let at = format!("{}:{}", d.line.unwrap_or(0), d.column.unwrap_or(0));
                format!("{at}: {} | {}", d.message, d.help.unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn tc_on_the_link_impairs_both_ends_and_an_end_overrides_keys() {
        let lab = lab("tc = { delay = \"20ms\", jitter = \"5ms\", loss = 1 }\ntc_b = { loss = \"5%\", rate = \"10mbit\" }\n").unwrap();
        let a = lab.tc_of("r1", "eth1").unwrap();
        let b = lab.tc_of("r2", "eth1").unwrap();
        assert_eq!(a.to_string(), "delay 20ms, jitter 5ms, loss 1%");
        assert_eq!(b.to_string(), "delay 20ms, jitter 5ms, loss 5%, rate 10mbit");
        assert_eq!(lab.impairments().len(), 2);
        let one = self::lab("tc_a = { delay = \"1.5ms\" }\n").unwrap();
        assert_eq!(one.tc_of("r1", "eth1").unwrap().delay, Some(Duration::from_micros(1500)));
        assert_eq!(one.tc_of("r2", "eth1"), None);
    }

    #[test]
    fn the_node_configs_carry_each_ends_impairment() {
        let lab = lab("tc_b = { rate = \"512kbit\" }\n").unwrap();
        let plan = crate::Plan::new(&lab).unwrap();
        let configs = crate::compile::compile(&lab, &plan, "t");
        let r2 = configs["r2"].clone();
        let eth1 = r2.interfaces.iter().find(|i| i.name == "eth1").unwrap();
        assert_eq!(eth1.tc.as_ref().unwrap().rate, Some(512_000));
        let r1 = &configs["r1"];
        assert!(r1.interfaces.iter().all(|i| i.tc.is_none()));
        let toml = toml::to_string(&r2).unwrap();
        assert!(toml.contains("rate = \"512kbit\""), "{toml}");
        assert_eq!(toml::from_str::<crate::NodeConfig>(&toml).unwrap(), r2);
    }

    #[test]
    fn bad_values_are_refused_where_they_are_written() {
        let found = errors(concat!(
            "tc = { delay = \"90s\", loss = \"150%\", rate = \"0kbit\" }\n",
            "tc_a = { jitter = \"5ms\", rate = \"10mbps\", drop = 1 }\n",
        ));
        let expected = [
            "11:16: delay in tc of [[links]]: 90s is longer than the longest delay, 60s | write a time with its unit, from 0 to 60s: delay = \"20ms\" (us, ms, s)",
            "11:30: loss in tc of [[links]]: 150% is more than 100%: loss is a percentage of packets | write a percentage from 0 to 100: loss = \"1%\"",
            "11:45: rate in tc of [[links]]: rate 0kbit must be above 0 | write bits per second with their unit, above 0: rate = \"10mbit\" (bit, kbit, mbit, gbit)",
            "12:33: rate in tc_a of [[links]]: \"10mbps\": tc's mbps means bytes per second; write the rate in bits, e.g. 10mbit | write bits per second with their unit, above 0: rate = \"10mbit\" (bit, kbit, mbit, gbit)",
            "12:43: unknown key \"drop\" in tc_a of [[links]] | expected one of: delay, jitter, loss, rate",
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn jitter_needs_a_delay_on_the_same_end() {
        let found = errors("tc_a = { jitter = \"5ms\", loss = \"1%\" }\n");
        assert_eq!(
            found,
            [
                "11:19: jitter without a delay: netem varies the delay | add a delay, e.g. tc = { delay = \"20ms\", jitter = \"5ms\" }"
            ]
        );
        // The link's delay is under the end's jitter: fine.
        assert!(lab("tc = { delay = \"20ms\" }\ntc_a = { jitter = \"5ms\" }\n").is_ok());
    }

    #[test]
    fn an_empty_or_misshapen_tc_is_refused() {
        let found = errors("tc_b = {}\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("11:8: an impairment that sets nothing"), "{found:?}");
        let found = errors("tc = \"20ms\"\n");
        assert!(found[0].contains("must be a table"), "{found:?}");
        let found = errors("tc = { delay = 20 }\n");
        assert!(found[0].contains("a string with its unit"), "{found:?}");
    }
}
