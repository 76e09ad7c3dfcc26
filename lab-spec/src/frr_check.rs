//! FRR's own check of a node's `frr.conf` (`vtysh --dryrun -f FILE`), read
//! back into findings about the node's `frr` lines in the lab file.
//!
//! vtysh's dry run parses every line with FRR's command tree, sections
//! included, without daemons; each line it refuses is one line of output
//! (FRR 8.4 and 10.x alike):
//!
//! ```text
//! line 35: % Unknown command[25]:  neighbor 10.1.140.25 descripton typo
//! ```
//!
//! (the number in brackets is vtysh's CLI node, not a column).

use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnostic;
use crate::lab::Lab;

/// One line FRR refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Its line in the checked text, from 1.
    pub line: usize,
    /// FRR's reason: `unknown command`, `ambiguous command`, ...
    pub message: String,
}

/// What `POST /v1/frr/check` answers: the lines of the text FRR refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrrCheck {
    pub refused: Vec<Refused>,
}

/// The refused lines in vtysh's dry-run output (stdout and stderr).
pub fn parse_dryrun(output: &str) -> Vec<Refused> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("line ")?;
            let (number, why) = rest.split_once(':')?;
            Some(Refused { line: number.trim().parse().ok()?, message: reason(why) })
        })
        .collect()
}

/// `% Unknown command[25]: text` -> `unknown command`.
fn reason(raw: &str) -> String {
    let raw = raw.trim().trim_start_matches('%').trim();
    let head = raw.split(['[', ':']).next().unwrap_or(raw).trim();
    if head.is_empty() { raw.to_string() } else { head.to_lowercase() }
}

/// Findings at the lab file's `frr` lines of `node`, from what FRR refused
/// in its rendered config. A refused line outside them (the generated
/// part: a bug in pi-lab) is reported at the node.
pub fn diagnostics(lab: &Lab, node: &str, rendered: &str, refused: &[Refused]) -> Vec<Diagnostic> {
    let Some(n) = lab.nodes.get(node) else { return Vec::new() };
    let start = crate::frr::lab_lines_start(rendered);
    let value = n.frr.as_deref().unwrap_or_default();
    refused
        .iter()
        .map(|r| {
            let text = rendered.lines().nth(r.line.saturating_sub(1)).unwrap_or_default().trim();
            let own = start
                .and_then(|s| r.line.saturating_sub(1).checked_sub(s))
                .filter(|k| *k < value.lines().count());
            match (own, &n.spans.frr) {
                (Some(k), Some(span)) => Diagnostic::error(
                    crate::parse::string_line_span(&lab.source.text, span, value, k),
                    format!("FRR refuses this line of [nodes.{node}] frr: {} `{text}`", r.message),
                )
                .help(
                    "vtysh --dryrun rejected it; try it in vtysh (`?` lists what fits). \
                     A line runs in the section it follows: open one first, e.g. `router bgp ASN`",
                ),
                _ => Diagnostic::error(
                    n.spans.name.clone(),
                    format!(
                        "FRR refuses line {} of {node}'s generated frr.conf: {} `{text}`",
                        r.line, r.message
                    ),
                )
                .help("this is pi-lab's mistake, not yours: please report it"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtysh_dry_run_output_is_read() {
        let out = "% Can't open configuration file /tmp/x/vtysh.conf due to 'No such file or directory'.\n\
                   line 35: % Unknown command[25]:  neighbor 10.1.140.25 descripton typo\n\
                   line 42: % Command incomplete[4]: router\n\
                   line 7: % Ambiguous command[4]: i\n";
        assert_eq!(
            parse_dryrun(out),
            [
                Refused { line: 35, message: "unknown command".into() },
                Refused { line: 42, message: "command incomplete".into() },
                Refused { line: 7, message: "ambiguous command".into() },
            ]
        );
        assert!(parse_dryrun("").is_empty());
    }

    #[test]
    fn refused_lines_are_placed_in_the_lab_file() {
        let text = "name = \"t\"\n\n[nodes.r1]\nrole = \"router\"\nasn = 100\nfrr = \"\"\"\nrouter bgp 100\n  netwrk 10.9.0.0/24\nexit\n\"\"\"\n\n[nodes.r2]\nrole = \"router\"\nasn = 200\n\n[[links]]\na = \"r1:eth1\"\nb = \"r2:eth1\"\n";
        let lab = crate::parse(text, "t.toml").unwrap();
        let plan = crate::Plan::new(&lab).unwrap();
        let configs = crate::compile::compile(&lab, &plan, "t");
        let rendered = crate::frr::render(&configs["r1"]);
        let bad = rendered.lines().position(|l| l.contains("netwrk")).unwrap() + 1;
        let generated = rendered.lines().position(|l| l.starts_with("router bgp")).unwrap() + 1;
        let refused = [
            Refused { line: bad, message: "unknown command".into() },
            Refused { line: generated, message: "unknown command".into() },
        ];
        let mut diags = crate::Diagnostics::new(lab.source.clone());
        diags.extend(diagnostics(&lab, "r1", &rendered, &refused));
        let located = diags.located();
        assert_eq!((located[0].line, located[0].column), (Some(8), Some(3)), "{located:?}");
        assert!(located[0].message.contains("unknown command `netwrk 10.9.0.0/24`"), "{located:?}");
        assert_eq!(located[1].line, Some(3), "the generated part: at the node");
    }
}
