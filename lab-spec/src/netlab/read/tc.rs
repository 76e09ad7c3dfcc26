//! netlab's `tc` (link impairment) on a link or one node's interface,
//! turned into pi-lab's `tc` table. netlab's units: delay and jitter in
//! milliseconds when bare (`10`, or `10ms`, `1s`), loss in percent, rate in
//! kbps. `corrupt`, `duplicate` and `reorder` are netem features pi-lab
//! does not set: refused with their position, never dropped.

use super::Reader;
use crate::impairment::{self, NetemText};
use crate::netlab::yaml::{Node, Value};

const TC_KEYS: &[&str] = &["delay", "jitter", "loss", "rate"];

impl Reader<'_> {
    /// A `tc` dictionary as pi-lab writes it (`{ delay = "10ms" }`).
    pub(super) fn tc(&mut self, node: &Node, place: &str) -> Option<String> {
        if !self.keys(node, TC_KEYS, place) {
            return None;
        }
        let mut text = NetemText::default();
        let mut ok = true;
        for (key, unit, parse) in [
            ("delay", "ms", check_delay as fn(&str) -> Result<(), String>),
            ("jitter", "ms", check_delay),
            ("loss", "%", check_loss),
            ("rate", "kbit", check_rate),
        ] {
            let Some(e) = node.get(key) else { continue };
            let written = match &e.value.value {
                Value::Int(i) => format!("{i}{unit}"),
                Value::Float(f) => format!("{f}{unit}"),
                Value::Str(s) if s.trim().parse::<f64>().is_ok() => format!("{}{unit}", s.trim()),
                Value::Str(s) => s.clone(),
                _ => {
                    let found = e.value.type_name();
                    self.error(
                        e.value.span.clone(),
                        format!("{place}.{key} must be a number, found {found}"),
                        format!("write {key}: N ({})", netlab_unit(key)),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Err(why) = parse(&written) {
                self.error(
                    e.value.span.clone(),
                    format!("{place}.{key}: {why}"),
                    format!("write {key}: N ({})", netlab_unit(key)),
                );
                ok = false;
                continue;
            }
            let slot = match key {
                "delay" => &mut text.delay,
                "jitter" => &mut text.jitter,
                "loss" => &mut text.loss,
                _ => &mut text.rate,
            };
            *slot = Some(written);
        }
        ok.then(|| toml_inline(&text))
    }
}

fn netlab_unit(key: &str) -> &'static str {
    match key {
        "delay" | "jitter" => "milliseconds, or 10ms, 1s; at most 60s",
        "loss" => "percent, 0 to 100",
        _ => "kbps, above 0",
    }
}

fn check_delay(t: &str) -> Result<(), String> {
    impairment::parse_delay(t).map(drop)
}

fn check_loss(t: &str) -> Result<(), String> {
    impairment::parse_loss(t).map(drop)
}

fn check_rate(t: &str) -> Result<(), String> {
    impairment::parse_rate(t).map(drop)
}

/// `{ delay = "10ms", loss = "1%" }`; values need no escaping (checked).
fn toml_inline(t: &NetemText) -> String {
    let pairs = [("delay", &t.delay), ("jitter", &t.jitter), ("loss", &t.loss), ("rate", &t.rate)];
    let set: Vec<String> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = \"{v}\"")))
        .collect();
    format!("{{ {} }}", set.join(", "))
}

#[cfg(test)]
mod tests {
    use crate::netlab::convert;

    const TOPOLOGY: &str = "module: [ ospf ]\nnodes: [ r1, r2 ]\nlinks:\n";

    fn converted(links: &str) -> Result<String, Vec<String>> {
        let text = format!("{TOPOLOGY}{links}");
        match convert(&text, "topology.yml", "t") {
            Ok(import) => Ok(import.toml),
            Err(d) => Err(d
                .located()
                .into_iter()
                .map(|l| {
                    format!("{}:{}: {}", l.line.unwrap_or(0), l.column.unwrap_or(0), l.message)
                })
                .collect()),
        }
    }

    #[test]
    fn netlab_tc_becomes_the_lab_files_tc_in_pi_labs_units() {
        let toml = converted(concat!(
            "- r1:\n",
            "  r2:\n",
            "    tc: { loss: 5 }\n",
            "  tc: { delay: 10, jitter: 2.5, loss: 0.5, rate: 10000 }\n",
        ))
        .unwrap();
        let link_tc =
            "tc = { delay = \"10ms\", jitter = \"2.5ms\", loss = \"0.5%\", rate = \"10000kbit\" }";
        assert!(toml.contains(link_tc), "{toml}");
        assert!(toml.contains("tc_b = { loss = \"5%\" }"), "{toml}");
        let lab = crate::parse(&toml, "converted.toml").unwrap();
        assert_eq!(
            lab.tc_of("r1", "eth1").unwrap().to_string(),
            "delay 10ms, jitter 2500us, loss 0.5%, rate 10mbit"
        );
        assert_eq!(lab.tc_of("r2", "eth1").unwrap().loss, Some(5.0));
        let strings = converted("- r1-r2\n- r1:\n  r2:\n  tc: { delay: 1s }\n").unwrap();
        assert!(strings.contains("tc = { delay = \"1s\" }"), "{strings}");
    }

    #[test]
    fn what_pi_lab_cannot_set_is_an_error_where_it_is_written() {
        let errors = converted("- r1:\n  r2:\n  tc: { delay: 90000, corrupt: 1 }\n").unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with("6:16: links[0].tc.delay: 90000ms is longer")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("6:23: links[0].tc.corrupt is not supported")),
            "{errors:?}"
        );
    }
}
