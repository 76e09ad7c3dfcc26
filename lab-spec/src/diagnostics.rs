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
}

impl Diagnostic {
    pub fn error(span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span: span.into(),
            message: message.into(),
            help: None,
        }
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
        }
    }

    /// One diagnostic rendered with its source line and caret.
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = String::new();
        let file = &self.source.file_name;
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &d.span {
            Some(span) => {
                let (line, column) = self.source.line_col(span.start);
                out.push_str(&format!("{file}:{line}:{column}: {level}: {}\n", d.message));
                let text = self.source.line_text(span.start);
                let gutter = line.to_string().len();
                out.push_str(&format!("{:gutter$} |\n", ""));
                out.push_str(&format!("{line} | {text}\n"));
                out.push_str(&format!("{:gutter$} | {}\n", "", caret(text, column, span, self)));
            }
            None => out.push_str(&format!("{file}: {level}: {}\n", d.message)),
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        out
    }
}

/// Spaces up to the column, then one `^` per character of the span that
/// lies on this line.
fn caret(line_text: &str, column: usize, span: &Span, diags: &Diagnostics) -> String {
    let pad: String =
        line_text.chars().take(column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    let on_line = diags
        .source
        .slice(span)
        .map(|s| s.split('\n').next().unwrap_or("").chars().count())
        .unwrap_or(1);
    let room = line_text.chars().count().saturating_sub(column - 1);
    let width = on_line.min(room).max(1);
    format!("{pad}{}", "^".repeat(width))
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{}", self.render(d))?;
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        match (errors, warnings) {
            (0, 0) => Ok(()),
            (0, w) => write!(f, "{}: {}", self.source.file_name, plural(w, "warning")),
            (e, 0) => write!(f, "{}: {}", self.source.file_name, plural(e, "error")),
            (e, w) => write!(
                f,
                "{}: {}, {}",
                self.source.file_name,
                plural(e, "error"),
                plural(w, "warning")
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
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // One edit per three characters, rounded up: `leafs` finds `leaves`.
    let limit = word.chars().count().div_ceil(3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `a, b, c` for a help line.
pub fn list(items: &[&str]) -> String {
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("rol", &["role", "asn"]), Some("role"));
        assert_eq!(did_you_mean("colectors", &["collectors"]), Some("collectors"));
        assert_eq!(did_you_mean("leafs", &["name", "leaves"]), Some("leaves"));
        assert_eq!(did_you_mean("banana", &["role", "asn"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
