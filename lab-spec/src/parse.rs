//! Reading a lab file: TOML with spans, walked by hand so that every
//! problem is reported at once with its line and column, not just the first
//! one serde would stop at.
//!
//! Here: the entry points, the walk over the top level and [`string_line_span`];
//! the rest is read by the modules below, one part of the file each.

use std::ops::RangeInclusive;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostics::{Diagnostic, Diagnostics, Source, Span};
use crate::lab::Lab;

mod fields;
mod lab_tests;
mod links;
mod nodes;
mod sections;
mod syntax;
mod tc;
mod values;

pub(crate) use syntax::not_utf8;
pub use values::{collector, interface_ok, isis_area};
pub(crate) use values::{name_ok, role};

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &[
    "name",
    "management",
    "pools",
    "underlay",
    "bgp",
    "sflow",
    "nodes",
    "links",
    "segments",
    "validate",
];

/// Largest valid 4-byte ASN (4294967295 is reserved, RFC 7300).
pub const ASN_RANGE: RangeInclusive<i128> = 1..=4_294_967_294;
/// VXLAN network identifiers are 24 bits; 0 is not used.
pub const VNI_RANGE: RangeInclusive<i128> = 1..=16_777_215;

/// Parse the text of a lab file and check it. `file_name` is only used in
/// messages.
pub fn parse(text: &str, file_name: &str) -> Result<Lab, Diagnostics> {
    let source = Source::new(file_name, text);
    let mut reader =
        Reader { diags: Diagnostics::new(source.clone()), left_out_access: Vec::new() };
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        reader.toml_errors(&errors, &source);
        reader.diags.sort();
        return Err(reader.diags);
    }
    let lab = reader.lab(doc.get_ref(), source);
    let mut diags = std::mem::take(&mut reader.diags);
    if let Some(lab) = &lab {
        // Nodes with errors of their own are left out of `lab`; references
        // to them are not reported again as unknown.
        let left_out = crate::validate::LeftOut {
            nodes: declared_nodes(doc.get_ref()),
            access_ports: std::mem::take(&mut reader.left_out_access),
        };
        crate::validate::check(lab, &left_out, &mut diags);
    }
    diags.sort();
    match lab {
        Some(lab) if !diags.has_errors() => Ok(lab),
        _ => Err(diags),
    }
}

/// Parse the bytes of a lab file: text that is not UTF-8 is reported at
/// its first bad byte, like any other mistake in the file.
pub fn parse_bytes(bytes: &[u8], file_name: &str) -> Result<Lab, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file_name),
        Err(err) => Err(not_utf8(bytes, &err, file_name)),
    }
}

/// The span of line `line` (0-based) of a string's `value` as written in
/// `text` at `span` (quotes included): from its first non-blank character
/// to its end. The string itself when its lines are not the file's lines
/// one for one (escaped newlines, a line-ending backslash).
pub fn string_line_span(text: &str, span: &Span, value: &str, line: usize) -> Span {
    let whole = span.clone();
    let Some(raw) = text.get(span.clone()) else { return whole };
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
    let mut start = span.start + quote;
    let inner = raw.get(quote..raw.len().saturating_sub(quote)).unwrap_or("");
    // TOML drops a newline right after the opening quotes.
    let inner = match inner.strip_prefix("\r\n").or_else(|| inner.strip_prefix('\n')) {
        Some(rest) if quote == 3 => {
            start += inner.len() - rest.len();
            rest
        }
        _ => inner,
    };
    if inner.lines().count() != value.lines().count() || inner.contains("\\\n") {
        return whole;
    }
    let mut offset = start;
    for (i, written) in inner.split('\n').enumerate() {
        if i == line {
            let from = offset + written.len() - written.trim_start().len();
            let to = offset + written.trim_end().len();
            return if to > from { from..to } else { from..from + 1 };
        }
        offset += written.len() + 1;
    }
    whole
}

struct Reader {
    diags: Diagnostics,
    /// Access ports of segments left out because of their own errors.
    left_out_access: Vec<(String, String)>,
}

/// A field read from a table: its value and where it was written.
type Field<T> = Option<(T, Span)>;

impl Reader {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message).help(help));
    }

    fn lab(&mut self, doc: &Table, source: Source) -> Option<Lab> {
        self.keys(doc, TOP_KEYS, "the lab file");
        let top = 0..0;
        let name = self.converted(doc, "name", "the lab file", |s| name_ok(s, "lab name"));
        let name = self.required(
            name,
            doc,
            "name",
            "the lab file",
            &top,
            "start the file with name = \"my-lab\"",
        );
        let management = self.management(doc);
        let pools = self.pools(doc, &management);
        let underlay = self.underlay(doc);
        let bgp = self.bgp(doc);
        let sflow = self.sflow(doc, &management);
        let nodes = self.nodes(doc);
        let links = self.links(doc);
        let segments = self.segments(doc);
        let tests = self.tests(doc);
        Some(Lab {
            name: name?.0,
            management,
            pools,
            underlay,
            bgp,
            sflow,
            nodes,
            links,
            segments,
            tests,
            source,
            notes: Diagnostics::default(),
        })
    }
}

fn declared_nodes(doc: &Table) -> Vec<String> {
    match doc.get("nodes").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}
