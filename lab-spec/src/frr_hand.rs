//! Hand changes: what a person typed into FRR (vtysh) on top of the config
//! pi-lab generated, and how they are carried into the next `frr.conf`.
//!
//! FRR shows a loaded config in its own words (defaults left out, a
//! `hostname` per daemon, `frr version 8.4.4`), so the generated text is
//! not compared with the running config directly. The agent compares the
//! running config with the *baseline*: what `show running-config` printed
//! right after the generated config alone was loaded. Both are FRR's words,
//! so what differs was changed by hand.
//!
//! Lines are compared with the sections they sit in (by FRR's indentation):
//! `network 10.9.0.0/24` under `address-family ipv4 unicast` under
//! `router bgp 100`. A section that only appears (or goes) along with its
//! lines is shown by its lines, with the section as context.
//!
//! This module reads and writes the two texts hand changes take: the
//! one-line form in health reports (`+router bgp 100 > network ...`) and
//! FRR config lines (`hand.conf`, the tail of `frr.conf`).

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Separates the sections of a hand change's one-line form.
pub const CONTEXT_SEPARATOR: &str = " > ";

/// The comment that starts the hand changes appended to `frr.conf`.
pub const HAND_HEADER: &str =
    "! Hand changes (vtysh), kept by node-agent; `pi-lab lab save` collects them.";

/// One line added or removed by hand, in the sections it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandChange {
    /// Added by hand (else removed by hand).
    pub added: bool,
    /// The enclosing sections, outermost first: `router bgp 100`,
    /// `address-family ipv4 unicast`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// The line itself, without indentation.
    pub line: String,
}

/// `+router bgp 100 > address-family ipv4 unicast > network 10.9.0.0/24`.
impl fmt::Display for HandChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.added { "+" } else { "-" })?;
        for section in &self.context {
            write!(f, "{section}{CONTEXT_SEPARATOR}")?;
        }
        f.write_str(&self.line)
    }
}

/// Reads the one-line form back (a line holding `" > "` itself is read as
/// sections; its change is then not found in a config, which errs on the
/// side of keeping it).
impl std::str::FromStr for HandChange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let added = match s.chars().next() {
            Some('+') => true,
            Some('-') => false,
            _ => return Err(format!("{s:?} is no hand change: it starts with + or -")),
        };
        let mut parts: Vec<String> = s[1..].split(CONTEXT_SEPARATOR).map(str::to_string).collect();
        let line = parts.pop().unwrap_or_default();
        Ok(HandChange { added, context: parts, line })
    }
}

/// `GET /v1/frr/running`: FRR's running config and the hand changes in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrrRunning {
    pub node: String,
    /// `show running-config`, as FRR printed it.
    pub running: String,
    /// Each hand change in its one-line form.
    pub hand_changes: Vec<String>,
    /// The hand changes as FRR config lines: what `frr = """..."""` of the
    /// node in the lab file takes to make them part of the lab.
    pub hand_conf: String,
}

/// One command of a config text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Command<'a> {
    /// Enclosing sections, outermost first.
    context: Vec<&'a str>,
    text: &'a str,
    /// Its line (0-based) and, for a section, one past its last line
    /// (its `exit` included).
    first: usize,
    end: usize,
    /// A section header with commands inside.
    has_children: bool,
}

impl Command<'_> {
    fn key(&self) -> (Vec<&str>, &str) {
        (self.context.clone(), self.text)
    }
}

/// Lines that close a section.
fn closes_section(text: &str) -> bool {
    matches!(text, "exit" | "end" | "quit") || text.starts_with("exit-")
}

/// Lines that say nothing about the configuration: comments, FRR's banner,
/// its version and defaults profile (fixed when the daemons start).
fn is_noise(text: &str) -> bool {
    text.is_empty()
        || text.starts_with('!')
        || text.starts_with("frr version")
        || text.starts_with("frr defaults")
        || text == "Building configuration..."
        || text == "Current configuration:"
}

/// The commands of a config text, with their sections, by indentation.
fn commands(text: &str) -> Vec<Command<'_>> {
    let mut out: Vec<Command> = Vec::new();
    // (indent, index into `out`) of the open sections.
    let mut open: Vec<(usize, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if is_noise(body) {
            continue;
        }
        if closes_section(body) {
            close_section(&mut out, &mut open, body, indent, i);
            continue;
        }
        while open.last().is_some_and(|(d, _)| *d >= indent) {
            open.pop();
        }
        for (_, idx) in &open {
            out[*idx].end = i + 1;
            out[*idx].has_children = true;
        }
        let context = open.iter().map(|(_, idx)| out[*idx].text).collect();
        open.push((indent, out.len()));
        out.push(Command { context, text: body, first: i, end: i + 1, has_children: false });
    }
    out
}

/// `exit` (at line `i`) closes the innermost section open at its indent,
/// and is part of it and of the sections around it; `end` closes all.
fn close_section(
    out: &mut [Command],
    open: &mut Vec<(usize, usize)>,
    body: &str,
    indent: usize,
    i: usize,
) {
    if body == "end" {
        open.clear();
        return;
    }
    while open.last().is_some_and(|(d, _)| *d > indent) {
        open.pop();
    }
    for (_, idx) in open.iter() {
        out[*idx].end = i + 1;
    }
    open.pop();
}

/// What was changed by hand: `running` compared with `baseline` (FRR's
/// running config right after the generated config alone was loaded).
/// Removals come first, so that the lines read back in order (`lab save`)
/// replace a value rather than remove the new one.
pub fn diff(baseline: &str, running: &str) -> Vec<HandChange> {
    let before = commands(baseline);
    let after = commands(running);
    let before_keys: HashSet<_> = before.iter().map(Command::key).collect();
    let after_keys: HashSet<_> = after.iter().map(Command::key).collect();
    let change = |c: &Command, added| HandChange {
        added,
        context: c.context.iter().map(|s| s.to_string()).collect(),
        line: c.text.to_string(),
    };
    // A section's header is implied by the lines inside it.
    let removed = before
        .iter()
        .filter(|c| !c.has_children && !after_keys.contains(&c.key()))
        .map(|c| change(c, false));
    let added = after
        .iter()
        .filter(|c| !c.has_children && !before_keys.contains(&c.key()))
        .map(|c| change(c, true));
    removed.chain(added).collect()
}

/// Whether `config` (a generated frr.conf, the lab file's lines included)
/// already says what `change` did: it has the added line, or no longer has
/// the removed one, in the same sections. Then applying it loses nothing.
pub fn carried(config: &str, change: &HandChange) -> bool {
    let has = commands(config)
        .iter()
        .any(|c| c.text == change.line && c.context.iter().eq(change.context.iter()));
    has == change.added
}

/// Lines added by hand that `running` still shows though `generated` (just
/// loaded alone) lacks them, as the removals that take them out: a reload
/// may say it is done before FRR let go of what it removes. A baseline
/// holding them would hide them from every later comparison.
pub fn lingering(running: &str, generated: &str, hand: &[HandChange]) -> Vec<HandChange> {
    hand.iter()
        .filter(|c| c.added && carried(running, c) && !carried(generated, c))
        .map(|c| HandChange { added: false, ..c.clone() })
        .collect()
}

/// A node's own FRR `lines` (the lab file's) against its `generated`
/// text: a `no X` where the generated text has `X` in the same sections
/// leaves `X` out of it (the `no` line stays, as a comment, so line
/// numbers hold); a line `X` where it has `no X` leaves that out. Without
/// this, frr-reload, which takes a file as a set of lines, would apply both
/// and the generated one would win. Sections are read by indentation, as
/// `lab save` writes them.
pub fn fold_into(generated: &str, lines: &str) -> (String, String) {
    let ours = commands(generated);
    let theirs = commands(lines);
    let mut dropped = vec![false; generated.lines().count()];
    let mut commented = vec![false; lines.lines().count()];
    for line in &theirs {
        let (wanted, comment) = match line.text.strip_prefix("no ") {
            Some(positive) => (positive.to_string(), true),
            None => (format!("no {}", line.text), false),
        };
        let found = ours.iter().find(|c| c.text == wanted && c.context == line.context);
        if let Some(c) = found {
            dropped[c.first..c.end].iter_mut().for_each(|d| *d = true);
            commented[line.first] |= comment;
        }
    }
    let keep = |text: &str, drop: &[bool], comment: &[bool]| -> String {
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            if drop.get(i) == Some(&true) {
                continue;
            }
            if comment.get(i) == Some(&true) {
                out.push_str("! done above: ");
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    };
    (keep(generated, &dropped, &[]), keep(lines, &[], &commented))
}

/// The hand changes as FRR config lines, section by section: what was
/// added as it is, what was removed as `no ...`. Empty without changes.
pub fn render(changes: &[HandChange]) -> String {
    let mut out = String::new();
    let mut open: Vec<&str> = Vec::new();
    for change in grouped(changes) {
        let shared =
            open.iter().zip(&change.context).take_while(|(a, b)| **a == b.as_str()).count();
        while open.len() > shared {
            close(&mut out, &mut open);
        }
        for section in &change.context[shared..] {
            out.push_str(&" ".repeat(open.len()));
            out.push_str(section);
            out.push('\n');
            open.push(section);
        }
        out.push_str(&" ".repeat(open.len()));
        out.push_str(&command_for(change));
        out.push('\n');
    }
    while !open.is_empty() {
        close(&mut out, &mut open);
    }
    out
}

/// Changes in the order given, those of one top-level section together.
fn grouped(changes: &[HandChange]) -> Vec<&HandChange> {
    let mut tops: Vec<Option<&str>> = Vec::new();
    for c in changes {
        let top = c.context.first().map(String::as_str);
        if top.is_some() && !tops.contains(&top) || top.is_none() && !tops.contains(&None) {
            tops.push(top);
        }
    }
    let mut out = Vec::with_capacity(changes.len());
    for top in tops {
        out.extend(changes.iter().filter(|c| c.context.first().map(String::as_str) == top));
    }
    out
}

/// The command that makes `change` happen.
fn command_for(change: &HandChange) -> String {
    match (change.added, change.line.strip_prefix("no ")) {
        (true, _) => change.line.clone(),
        (false, Some(positive)) => positive.to_string(),
        (false, None) => format!("no {}", change.line),
    }
}

fn close(out: &mut String, open: &mut Vec<&str>) {
    let Some(section) = open.pop() else { return };
    let exit = if section.starts_with("address-family") {
        "exit-address-family"
    } else if section.starts_with("vni ") {
        "exit-vni"
    } else if section.starts_with("vrf ") {
        "exit-vrf"
    } else {
        "exit"
    };
    out.push_str(&" ".repeat(open.len()));
    out.push_str(exit);
    out.push('\n');
}

/// `generated` with the hand changes kept: lines removed by hand are left
/// out of it, and what it still lacks (added lines, removals it has no line
/// for) follows under [`HAND_HEADER`], before `end`. Both `vtysh -b` (FRR
/// booting from it) and `frr-reload.py` (which merges a section written
/// twice) read it as one config.
pub fn apply(generated: &str, changes: &[HandChange]) -> String {
    if changes.is_empty() {
        return generated.to_string();
    }
    let commands = commands(generated);
    let mut dropped = vec![false; generated.lines().count()];
    let mut rest = Vec::new();
    for change in changes {
        let found = (!change.added)
            .then(|| {
                commands
                    .iter()
                    .find(|c| c.text == change.line && c.context.iter().eq(change.context.iter()))
            })
            .flatten();
        match found {
            Some(c) => dropped[c.first..c.end].iter_mut().for_each(|d| *d = true),
            None => rest.push(change.clone()),
        }
    }
    let lines: Vec<&str> = generated.lines().collect();
    let end = lines.iter().rposition(|l| l.trim_end() == "end").unwrap_or(lines.len());
    let mut out = String::new();
    for (line, _) in lines[..end].iter().zip(&dropped).filter(|(_, d)| !**d) {
        out.push_str(line);
        out.push('\n');
    }
    if !rest.is_empty() {
        out.push_str(HAND_HEADER);
        out.push('\n');
        out.push_str(&render(&rest));
        out.push_str("!\n");
    }
    for line in &lines[end..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_line_still_running_after_the_generated_config_loaded_lingers() {
        let hand = diff(BASELINE, RUNNING);
        let route = hand.iter().find(|c| c.line == "ip route 10.99.0.0/24 Null0").unwrap();
        // The reload has not let the route go yet: it lingers, and taking
        // it out of the running config gives a baseline without it.
        let lingering = lingering(RUNNING, GENERATED, std::slice::from_ref(route));
        assert_eq!(lingering.len(), 1);
        assert!(!lingering[0].added && lingering[0].line == route.line);
        let settled = apply(RUNNING, &lingering);
        assert!(!settled.contains("ip route 10.99.0.0/24"), "{settled}");
        assert_eq!(diff(&settled, RUNNING), vec![route.clone()]);
        // Gone from FRR, or said by the generated config: nothing lingers.
        assert!(super::lingering(BASELINE, GENERATED, &hand).is_empty());
        let says_it = format!("{GENERATED}ip route 10.99.0.0/24 Null0\n");
        assert!(super::lingering(RUNNING, &says_it, std::slice::from_ref(route)).is_empty());
    }

    /// What `vtysh -N two-router-r1 -c 'show running-config'` printed with
    /// FRR 8.4.4 right after node-agent loaded r1's generated config.
    const BASELINE: &str = "\
Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults datacenter
hostname r1
log syslog informational
hostname vm
service integrated-vtysh-config
!
interface eth1
 description to r2:eth1
exit
!
router bgp 100
 bgp router-id 10.0.0.75
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor PEERS peer-group
 neighbor PEERS timers connect 5
 neighbor 10.1.140.25 remote-as 200
 neighbor 10.1.140.25 peer-group PEERS
 neighbor 10.1.140.25 description r2
 !
 address-family ipv4 unicast
  network 10.0.0.75/32
  neighbor PEERS activate
  maximum-paths 8
 exit-address-family
exit
!
end
";

    /// The same after, in vtysh: a static route, a neighbour description,
    /// a `network` statement, and `no description` on eth1. FRR 8.4.6's
    /// banner differs; that is no hand change.
    const RUNNING: &str = "\
Building configuration...

Current configuration:
!
frr version 8.4.6
frr defaults datacenter
hostname r1
log syslog informational
hostname vm
service integrated-vtysh-config
!
ip route 10.99.0.0/24 Null0
!
router bgp 100
 bgp router-id 10.0.0.75
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor PEERS peer-group
 neighbor PEERS timers connect 5
 neighbor 10.1.140.25 remote-as 200
 neighbor 10.1.140.25 peer-group PEERS
 neighbor 10.1.140.25 description hand-made
 !
 address-family ipv4 unicast
  network 10.0.0.75/32
  network 10.99.0.0/24
  neighbor PEERS activate
  maximum-paths 8
 exit-address-family
exit
!
end
";

    /// The generated frr.conf of r1 (lab_spec::frr::render).
    const GENERATED: &str = "\
! r1 (router) in lab two-router: written by node-agent from config 1.
frr version 8.4
frr defaults datacenter
hostname r1
log syslog informational
service integrated-vtysh-config
ip forwarding
!
interface eth1
 description to r2:eth1
exit
!
router bgp 100
 bgp router-id 10.0.0.75
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 timers bgp 3 9
 neighbor PEERS peer-group
 neighbor PEERS timers connect 5
 neighbor 10.1.140.25 remote-as 200
 neighbor 10.1.140.25 peer-group PEERS
 neighbor 10.1.140.25 description r2
 !
 address-family ipv4 unicast
  network 10.0.0.75/32
  neighbor PEERS activate
  maximum-paths 8
 exit-address-family
exit
!
end
";

    fn lines(changes: &[HandChange]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_same_config_has_no_hand_changes() {
        assert!(diff(BASELINE, BASELINE).is_empty());
        // Banner, version, defaults and `!` lines are no configuration.
        let noisy: String = BASELINE
            .replace("frr version 8.4.4", "frr version 10.3")
            .lines()
            .filter(|l| l.trim() != "!")
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(diff(BASELINE, &noisy).is_empty(), "{:?}", diff(BASELINE, &noisy));
    }

    #[test]
    fn hand_changes_are_named_with_their_sections() {
        assert_eq!(
            lines(&diff(BASELINE, RUNNING)),
            [
                "-interface eth1 > description to r2:eth1",
                "-router bgp 100 > neighbor 10.1.140.25 description r2",
                "+ip route 10.99.0.0/24 Null0",
                "+router bgp 100 > neighbor 10.1.140.25 description hand-made",
                "+router bgp 100 > address-family ipv4 unicast > network 10.99.0.0/24",
            ]
        );
    }

    #[test]
    fn a_new_section_is_shown_by_its_lines() {
        let running = BASELINE.replace(
            "end\n",
            "router ospf\n ospf router-id 10.0.0.75\nexit\n!\ninterface eth2\n description spare\nexit\n!\nend\n",
        );
        assert_eq!(
            lines(&diff(BASELINE, &running)),
            ["+router ospf > ospf router-id 10.0.0.75", "+interface eth2 > description spare"]
        );
    }

    #[test]
    fn hand_changes_render_as_config_lines() {
        let conf = render(&diff(BASELINE, RUNNING));
        assert_eq!(
            conf,
            "\
interface eth1
 no description to r2:eth1
exit
router bgp 100
 no neighbor 10.1.140.25 description r2
 neighbor 10.1.140.25 description hand-made
 address-family ipv4 unicast
  network 10.99.0.0/24
 exit-address-family
exit
ip route 10.99.0.0/24 Null0
"
        );
        let undo = HandChange { added: false, context: vec![], line: "no ip forwarding".into() };
        assert_eq!(render(&[undo]), "ip forwarding\n");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn the_kept_config_is_the_generated_one_with_the_hand_changes() {
        let kept = apply(GENERATED, &diff(BASELINE, RUNNING));
        // Removed lines are left out where the generated text has them.
        assert!(!kept.contains("description r2\n"), "{kept}");
        assert!(!kept.contains("description to r2:eth1"), "{kept}");
        assert!(kept.contains("interface eth1\nexit\n"), "{kept}");
        assert!(kept.ends_with(&format!(
            " exit-address-family\nexit\n!\n{HAND_HEADER}\nip route 10.99.0.0/24 Null0\nrouter bgp 100\n \
             neighbor 10.1.140.25 description hand-made\n address-family ipv4 unicast\n  network 10.99.0.0/24\n \
             exit-address-family\nexit\n!\nend\n"
        )), "{kept}");
        assert_eq!(apply(GENERATED, &[]), GENERATED);
        // A removal the generated text has no line for is said as `no`.
        let gone = HandChange { added: false, context: vec![], line: "hostname vm".into() };
        assert!(
            apply(GENERATED, &[gone]).contains(&format!("{HAND_HEADER}\nno hostname vm\n!\nend\n"))
        );
    }

    #[test]
    fn a_section_taken_out_whole_is_dropped_from_the_generated_text() {
        let commands = commands(GENERATED);
        let eth1 = commands.iter().find(|c| c.text == "interface eth1").unwrap();
        assert!(eth1.has_children);
        assert_eq!(GENERATED.lines().nth(eth1.end - 1), Some("exit"));
        let af = commands.iter().find(|c| c.text == "address-family ipv4 unicast").unwrap();
        assert_eq!(af.context, ["router bgp 100"]);
        assert_eq!(GENERATED.lines().nth(af.end - 1), Some(" exit-address-family"));
        let maximum = commands.iter().find(|c| c.text == "maximum-paths 8").unwrap();
        assert_eq!(maximum.context, ["router bgp 100", "address-family ipv4 unicast"]);
    }

    #[test]
    fn a_config_that_says_what_was_done_by_hand_carries_it() {
        let changes = diff(BASELINE, RUNNING);
        assert!(changes.iter().all(|c| !carried(GENERATED, c)));
        // `lab save`'s hand.conf as the node's `frr` lines, as
        // `frr::render` puts them after the generated ones.
        let (ours, theirs) = fold_into(&GENERATED.replace("end\n", ""), &render(&changes));
        let with_lines = format!("{ours}{theirs}end\n");
        assert!(changes.iter().all(|c| carried(&with_lines, c)), "{with_lines}");
    }

    #[test]
    fn the_lab_files_no_lines_take_generated_lines_out() {
        let generated = GENERATED.replace("end\n", "");
        let lines = render(&diff(BASELINE, RUNNING));
        let (ours, theirs) = fold_into(&generated, &lines);
        assert!(
            !ours.contains("description r2\n") && !ours.contains("description to r2:eth1"),
            "{ours}"
        );
        assert!(ours.contains("interface eth1\nexit\n"), "{ours}");
        assert!(
            theirs.contains("\n! done above:  no neighbor 10.1.140.25 description r2\n"),
            "{theirs}"
        );
        assert_eq!(theirs.lines().count(), lines.lines().count());
        // A line where the generated text has its `no` wins over it.
        let (ours, _) = fold_into(&generated, "router bgp 100\n bgp ebgp-requires-policy\nexit\n");
        assert!(!ours.contains("no bgp ebgp-requires-policy"), "{ours}");
        // Nothing to fold: both as they were.
        let (ours, theirs) = fold_into(&generated, "ip route 10.9.0.0/24 Null0\n");
        assert_eq!(
            (ours.as_str(), theirs.as_str()),
            (generated.as_str(), "ip route 10.9.0.0/24 Null0\n")
        );
    }

    #[test]
    fn the_one_line_form_reads_back() {
        for change in diff(BASELINE, RUNNING) {
            assert_eq!(change.to_string().parse::<HandChange>(), Ok(change));
        }
        assert!("ip route".parse::<HandChange>().is_err());
    }

    #[test]
    fn the_one_line_form_reads_back_in_json() {
        let change = &diff(BASELINE, RUNNING)[4];
        let json = serde_json::to_string(change).unwrap();
        assert_eq!(serde_json::from_str::<HandChange>(&json).unwrap(), *change);
    }
}
