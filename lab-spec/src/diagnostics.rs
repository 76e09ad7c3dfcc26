//! Errors and warnings about a lab file, reported the way rustc does:
//! `file:line:column: error: what`, the source line with carets under the
//! spot, and a `help:` line saying what would be right.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

/// Byte range into the lab file's text.
pub type Span = Range<usize>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the lab file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where in the file; `None` when the problem has no single place.
    pub span: Option<Span>,
    pub message: String,
    /// What would be right.
    pub help: Option<String>,
    /// The kind of finding, for findings a reader may want to group or
    /// filter (e.g. [`crate::alloc::DISPLACED`]).
    pub code: Option<&'static str>,
}

impl Diagnostic {
    pub fn error(span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span: span.into(),
            message: message.into(),
            help: None,
            code: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn warning(span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(span, message) }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The text of a lab file and the name to report it under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub file_name: String,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(file_name: &str, text: &str) -> Self {
        Source { file_name: file_name.to_string(), text: Arc::from(text) }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The whole line holding `offset`, without its newline.
    fn line_text(&self, offset: usize) -> &str {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[offset..].find('\n').map_or(self.text.len(), |i| offset + i);
        self.text[start..end].trim_end_matches('\r')
    }

    /// The source text under a span, if the span is valid.
    pub fn slice(&self, span: &Span) -> Option<&str> {
        self.text.get(span.clone())
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Every finding about one lab file, sorted by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub source: Source,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(source: Source) -> Self {
        Diagnostics { source, items: Vec::new() }
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, more: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(more);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Warning)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sort by position (unplaced ones first), then drop exact repeats.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.span.as_ref().map(|s| (s.start, s.end));
            key(a).cmp(&key(b)).then_with(|| a.message.cmp(&b.message))
        });
        self.items.dedup();
    }

    /// The findings with line and column, for `--json`.
    pub fn located(&self) -> Vec<Located> {
        self.items.iter().map(|d| self.locate(d)).collect()
    }

    fn locate(&self, d: &Diagnostic) -> Located {
        let (line, column) = match &d.span {
            Some(span) => {
                let (l, c) = self.source.line_col(span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Located {
            file: self.source.file_name.clone(),
            line,
            column,
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            code: d.code,
        }
    }

    /// One diagnostic rendered with its source line and caret. What comes
    /// from the file is shown escaped and cut to size, so that no file can
    /// hide text from the reader or flood the terminal.
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = String::new();
        let file = escaped(&self.source.file_name);
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let message = for_terminal(&d.message);
        match &d.span {
            Some(span) => {
                let (line, column) = self.source.line_col(span.start);
                out.push_str(&format!("{file}:{line}:{column}: {level}: {message}\n"));
                let on_line = self
                    .source
                    .slice(span)
                    .map_or(1, |s| s.split('\n').next().unwrap_or("").chars().count());
                let (text, caret) = snippet(self.source.line_text(span.start), column, on_line);
                let gutter = line.to_string().len();
                out.push_str(&format!("{:gutter$} |\n", ""));
                out.push_str(&format!("{line} | {text}\n"));
                out.push_str(&format!("{:gutter$} | {caret}\n", ""));
            }
            None => out.push_str(&format!("{file}: {level}: {message}\n")),
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("  = help: {}\n", for_terminal(help)));
        }
        out
    }
}

/// Source lines longer than this many characters are cut around the caret.
const MAX_LINE: usize = 120;
/// Characters kept before the caret in a cut line.
const BEFORE_CARET: usize = 40;
/// Messages longer than this many characters lose their middle.
const MAX_MESSAGE: usize = 300;
/// Diagnostics rendered as text; `--json` (`located`) still has them all.
pub const MAX_SHOWN: usize = 50;

/// The source line (cut to `MAX_LINE` around the caret, escaped) and the
/// caret line under it: spaces (tabs where the line has tabs) up to the
/// column, then one `^` per character of the span on this line.
fn snippet(line: &str, column: usize, width: usize) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let at = (column - 1).min(chars.len());
    let start = at.saturating_sub(BEFORE_CARET).min(chars.len().saturating_sub(MAX_LINE));
    let end = (start + MAX_LINE).min(chars.len());
    let (mut text, mut pad, mut carets) = (String::new(), String::new(), 0);
    if start > 0 {
        text.push('…');
        pad.push(' ');
    }
    for (i, c) in chars.iter().enumerate().take(end).skip(start) {
        let shown = if *c == '\t' { "\t".to_string() } else { escaped_char(*c) };
        if i < at {
            pad.push_str(&if *c == '\t' {
                "\t".to_string()
            } else {
                " ".repeat(shown.chars().count())
            });
        } else if i < at + width {
            carets += shown.chars().count();
        }
        text.push_str(&shown);
    }
    if end < chars.len() {
        text.push('…');
    }
    (text, format!("{pad}{}", "^".repeat(carets.max(1))))
}

/// Text that may come from a file, made safe to print: control and
/// invisible characters escaped, and each line longer than `MAX_MESSAGE`
/// characters cut in the middle.
pub fn for_terminal(text: &str) -> String {
    for_terminal_within(text, MAX_MESSAGE)
}

/// [`for_terminal`] with lines cut beyond `max` characters: a command's
/// own error, which names many things, may be longer than a diagnostic.
pub fn for_terminal_within(text: &str, max: usize) -> String {
    let lines: Vec<String> = text.split('\n').map(|l| shortened(&escaped(l), max)).collect();
    lines.join("\n")
}

/// Text with control and invisible characters written as escapes
/// (`\0`, `\u{200b}`), the way Rust's `{:?}` writes them; quotes and
/// backslashes stay as they are.
pub fn escaped(text: &str) -> String {
    text.chars().map(escaped_char).collect()
}

fn escaped_char(c: char) -> String {
    // Hangul fillers print as blanks but are not whitespace.
    let blank = matches!(c, '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}');
    match c {
        '"' | '\'' | '\\' => c.to_string(),
        _ if blank => format!("\\u{{{:x}}}", u32::from(c)),
        _ => c.escape_debug().to_string(),
    }
}

/// A message cut in the middle when it is longer than `MAX_MESSAGE`: a
/// hostile file can make a key or a value as long as it likes.
fn shortened(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let keep = max * 2 / 3;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(count - (max - keep - 1)).collect();
    format!("{head}…{tail}")
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.items.iter().take(MAX_SHOWN) {
            writeln!(f, "{}", self.render(d))?;
        }
        if let Some(hidden) = self.items.len().checked_sub(MAX_SHOWN).filter(|n| *n > 0) {
            writeln!(
                f,
                "... and {hidden} more not shown here (`pi-lab lab check --json` lists every one)\n"
            )?;
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        match (errors, warnings) {
            (0, 0) => Ok(()),
            (0, w) => write!(f, "{}: {}", self.source.file_name, count(w, "warning")),
            (e, 0) => write!(f, "{}: {}", self.source.file_name, count(e, "error")),
            (e, w) => write!(
                f,
                "{}: {}, {}",
                self.source.file_name,
                count(e, "error"),
                count(w, "warning")
            ),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Serialize for Diagnostics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.located().serialize(serializer)
    }
}

/// A diagnostic with its file, line and column resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // One edit per three characters, rounded up: `leafs` finds `leaves`.
    let word: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    let limit = word.len().div_ceil(3).max(1);
    let mut best: Option<(usize, &str)> = None;
    let mut row = Vec::new();
    for candidate in candidates {
        let bound = best.map_or(limit, |(d, _)| d.min(limit));
        if let Some(d) = distance_within(&word, candidate, bound, &mut row)
            && best.is_none_or(|b| (d, *candidate) < b)
        {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over characters, ignoring case.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    distance_within(&a, b, usize::MAX, &mut Vec::new()).unwrap_or(usize::MAX)
}

/// The edit distance between `a` and `b` (lower-cased) if it is at most
/// `limit`. Gives up as soon as a whole row is over the limit, so that a
/// file with thousands of names costs little to check.
fn distance_within(a: &[char], b: &str, limit: usize, row: &mut Vec<usize>) -> Option<usize> {
    let b_len = b.chars().count();
    if a.len().abs_diff(b_len) > limit {
        return None;
    }
    row.clear();
    row.extend(0..=a.len());
    for (j, cb) in b.chars().flat_map(char::to_lowercase).enumerate() {
        let mut diagonal = row[0];
        row[0] = j + 1;
        let mut smallest = row[0];
        for (i, ca) in a.iter().enumerate() {
            let above = row[i + 1];
            row[i + 1] = (diagonal + usize::from(*ca != cb)).min(row[i] + 1).min(above + 1);
            diagonal = above;
            smallest = smallest.min(row[i + 1]);
        }
        if smallest > limit {
            return None;
        }
    }
    row.last().copied().filter(|d| *d <= limit)
}

/// Names listed in a help line; more are counted, not listed.
const MAX_LISTED: usize = 10;

/// `a, b, c` for a help line; a long list ends in `and N more`.
pub fn list(items: &[&str]) -> String {
    let shown = items[..items.len().min(MAX_LISTED)].join(", ");
    match items.len().checked_sub(MAX_LISTED) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

/// `1 loopback`, `2 loopbacks`, `3 management addresses`.
pub fn count(n: usize, what: &str) -> String {
    match (n, what.ends_with('s')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        (_, false) => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "link"), "1 link");
        assert_eq!(count(0, "segment"), "0 segments");
        assert_eq!(count(3, "management address"), "3 management addresses");
    }

    #[test]
    fn line_and_column_count_characters() {
        let s = Source::new("x.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(s.line_col(10), (2, 4));
    }

    #[test]
    fn render_shows_line_and_caret() {
        let mut d = Diagnostics::new(Source::new("lab.toml", "name = \"x\"\nrol = 1\n"));
        d.push(Diagnostic::error(11..14, "unknown key \"rol\"").help("did you mean \"role\"?"));
        let text = d.to_string();
        assert!(text.starts_with("lab.toml:2:1: error: unknown key \"rol\"\n"), "{text}");
        assert!(text.contains("2 | rol = 1\n  | ^^^\n"), "{text}");
        assert!(text.contains("= help: did you mean \"role\"?"), "{text}");
    }

    #[test]
    fn long_lists_are_counted_not_listed() {
        assert_eq!(list(&["a", "b"]), "a, b");
        let many: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(list(&many), "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 15 more");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("rol", &["role", "asn"]), Some("role"));
        assert_eq!(did_you_mean("colectors", &["collectors"]), Some("collectors"));
        assert_eq!(did_you_mean("leafs", &["name", "leaves"]), Some("leaves"));
        assert_eq!(did_you_mean("banana", &["role", "asn"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
