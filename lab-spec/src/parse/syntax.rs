//! Mistakes in the file's text itself, in the user's words: bytes that are
//! not UTF-8, TOML syntax errors placed in their key and table, and keys or
//! tables written twice.

use super::Reader;
use crate::diagnostics::{Diagnostic, Diagnostics, Source, Span};

pub(crate) fn not_utf8(bytes: &[u8], err: &std::str::Utf8Error, file_name: &str) -> Diagnostics {
    // The lossy text is the same as the file up to the first bad byte, so
    // offsets (and lines and columns) before it agree; the bad byte itself
    // shows as U+FFFD, three bytes long.
    let text = String::from_utf8_lossy(bytes);
    let at = err.valid_up_to();
    let bad = bytes.get(at).copied().unwrap_or_default();
    let mut diags = Diagnostics::new(Source::new(file_name, &text));
    diags.push(
        Diagnostic::error(
            at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
            format!("byte 0x{bad:02x} is not UTF-8"),
        )
        .help("a lab file is UTF-8 text; convert it, e.g. iconv -f latin1 -t utf-8 lab.toml"),
    );
    diags
}

impl Reader {
    /// Turn the TOML parser's errors into ours: each says which key or
    /// table it is in, and a node (table) written twice is named clearly.
    pub(super) fn toml_errors(&mut self, errors: &[toml::de::Error], source: &Source) {
        let text: &str = &source.text;
        let line_start =
            |at: usize| text.get(..at).and_then(|b| b.rfind('\n')).map_or(0, |i| i + 1);
        let is_duplicate = |err: &toml::de::Error| err.message() == "duplicate key";
        // The parser recovers from a syntax error by guessing; a "duplicate
        // key" on the same line is one of its guesses, not the user's.
        let broken_lines: std::collections::HashSet<usize> = errors
            .iter()
            .filter(|e| !is_duplicate(e))
            .map(|e| line_start(e.span().unwrap_or(0..0).start))
            .collect();
        let headers = table_headers(text);
        let mut duplicate_section: Option<usize> = None;
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            let line_start = line_start(span.start);
            let line = text.get(line_start..).and_then(|l| l.lines().next()).unwrap_or("");
            if !is_duplicate(err) {
                let place = syntax_error_place(line, span.start - line_start, &headers, line_start);
                let mut d =
                    Diagnostic::error(span, format!("invalid TOML {place}: {}", err.message()));
                if err.message().contains("must be quoted") {
                    d = d.help("put text in double quotes (role = \"router\"); numbers, true and false stay bare (asn = 65001)");
                }
                self.diags.push(d);
                continue;
            }
            if broken_lines.contains(&line_start) {
                continue;
            }
            let line = line.trim_start();
            let key = source.slice(&span).unwrap_or("").to_string();
            if line.starts_with('[') {
                duplicate_section = Some(line_start);
                self.duplicate_table(span, &key, line);
                continue;
            }
            // Keys inside a table that is itself a duplicate are noise.
            if duplicate_section
                .is_some_and(|s| text.get(s..line_start).is_some_and(|t| !t.contains("\n[")))
            {
                continue;
            }
            self.error(
                span,
                format!("key {key} is written twice in the same table"),
                "keep one of them",
            );
        }
    }

    fn duplicate_table(&mut self, span: Span, key: &str, header: &str) {
        let name = key.trim_matches(['"', '\'']);
        if header.starts_with("[nodes.") {
            self.error(
                span,
                format!("node \"{name}\" is defined twice"),
                "every [nodes.NAME] table needs its own name; rename or merge one of them",
            );
        } else {
            self.error(
                span,
                format!("table {header} is defined twice"),
                "merge the two tables into one",
            );
        }
    }
}

/// Offsets and texts (`[nodes.r1]`, `[[links]]`) of the table headers in
/// a TOML text, in order: read once, so that any number of errors can be
/// placed in their table.
fn table_headers(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed.split('#').next().unwrap_or(trimmed).trim_end();
            out.push((offset, header));
        }
        offset += line.len();
    }
    out
}

/// Where on its line a TOML syntax error is, in the user's words: `in the
/// value of "asn" in [nodes.r1]`, `in a table header`, `in [nodes.r1]`.
fn syntax_error_place(line: &str, column: usize, headers: &[(usize, &str)], at: usize) -> String {
    if line.trim_start().starts_with('[') {
        return "in a table header".to_string();
    }
    let table = match headers.partition_point(|(offset, _)| *offset <= at) {
        0 => "the lab file",
        i => headers[i - 1].1,
    };
    let key = line.get(..column).and_then(|before| before.split_once('=')).map(|(k, _)| k.trim());
    match key {
        Some(key) if !key.is_empty() && !key.contains('#') => {
            format!("in the value of \"{}\" in {table}", key.trim_matches(['"', '\'']))
        }
        _ => format!("in {table}"),
    }
}
