//! The Prometheus text exposition format (version 0.0.4), written the
//! same way by the agent's `/metrics` and pi-lab's sFlow metrics: HELP and
//! TYPE once per family, label values escaped, no family without samples.

use std::fmt::Write;

pub type Labels<'a> = Vec<(&'a str, String)>;

/// One metric family: HELP and TYPE once, then its samples.
#[derive(Debug, Clone)]
pub struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(Labels<'a>, f64)>,
}

impl<'a> Family<'a> {
    /// A family of `kind` (`gauge`, `counter`).
    pub fn new(name: &'a str, kind: &'a str, help: &'a str) -> Self {
        Family { name, kind, help, samples: Vec::new() }
    }

    pub fn gauge(name: &'a str, help: &'a str) -> Self {
        Family::new(name, "gauge", help)
    }

    pub fn counter(name: &'a str, help: &'a str) -> Self {
        Family::new(name, "counter", help)
    }

    pub fn with(mut self, labels: Labels<'a>, value: f64) -> Self {
        self.samples.push((labels, value));
        self
    }

    pub fn with_opt(self, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.with(Vec::new(), v),
            None => self,
        }
    }

    /// HELP, TYPE and one line per sample; nothing without samples.
    pub fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            write_labels(out, labels);
            out.push(' ');
            write_value(out, *value);
            out.push('\n');
        }
    }
}

fn write_labels(out: &mut String, labels: &Labels<'_>) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_help_type_and_its_samples() {
        let mut out = String::new();
        Family::counter("x_total", "Some things.")
            .with(vec![("node", "le\"af\\1\n".into()), ("port", "eth1".into())], 3.0)
            .with(Vec::new(), 0.25)
            .with(Vec::new(), f64::NAN)
            .with(Vec::new(), f64::NEG_INFINITY)
            .write(&mut out);
        Family::gauge("empty", "Not written.").with_opt(None).write(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Some things.\n# TYPE x_total counter\n\
             x_total{node=\"le\\\"af\\\\1\\n\",port=\"eth1\"} 3\n\
             x_total 0.25\nx_total NaN\nx_total -Inf\n"
        );
    }

    #[test]
    fn values_and_labels_are_written_as_the_format_wants() {
        let mut out = String::new();
        write_value(&mut out, 3.0);
        out.push(' ');
        write_value(&mut out, 0.25);
        out.push(' ');
        write_value(&mut out, f64::NAN);
        assert_eq!(out, "3 0.25 NaN");
        let mut out = String::new();
        write_labels(&mut out, &vec![("a", "x\"y\\z\nw".to_string()), ("b", String::new())]);
        assert_eq!(out, r#"{a="x\"y\\z\nw",b=""}"#);
    }

    #[test]
    fn a_family_without_samples_writes_nothing() {
        let mut out = String::new();
        Family::gauge("pilab_x", "x").with_opt(None).write(&mut out);
        assert!(out.is_empty());
        Family::counter("pilab_y_total", "y.").with(Vec::new(), 2.0).write(&mut out);
        assert_eq!(out, "# HELP pilab_y_total y.\n# TYPE pilab_y_total counter\npilab_y_total 2\n");
    }
}
