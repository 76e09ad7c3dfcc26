//! Typed fields of TOML tables, each with where it was written: unknown
//! keys, wrong types, ranges, required keys and arrays, reported at their
//! place.

use std::ops::RangeInclusive;

use toml::de::DeValue;

use super::{Field, Reader, Table, Value};
use crate::diagnostics::{Span, did_you_mean, list};

impl Reader {
    /// Report keys that are not in `allowed`, with a did-you-mean.
    pub(super) fn keys(&mut self, table: &Table, allowed: &[&str], place: &str) {
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let help = match did_you_mean(name, allowed) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None if place == "[pools]" && name == "management" => {
                    "the management pool is [management] subnet".to_string()
                }
                None => format!("expected one of: {}", list(allowed)),
            };
            self.error(key.span(), format!("unknown key \"{name}\" in {place}"), help);
        }
    }

    pub(super) fn wrong_type(&mut self, value: &Value, key: &str, place: &str, expected: &str) {
        let found = value.get_ref().type_str();
        self.error(
            value.span(),
            format!("\"{key}\" in {place} must be {expected}, found {found}"),
            format!("write {key} as {expected}"),
        );
    }

    pub(super) fn table<'t, 'i>(
        &mut self,
        value: &'t Value<'i>,
        key: &str,
        place: &str,
    ) -> Option<&'t Table<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(value, key, place, "a table");
                None
            }
        }
    }

    /// A top-level `[key]` table (empty when absent), its keys checked.
    pub(super) fn section<'t, 'i>(
        &mut self,
        doc: &'t Table<'i>,
        key: &str,
        allowed: &[&str],
        empty: &'t Table<'i>,
    ) -> &'t Table<'i> {
        let t = doc.get(key).and_then(|v| self.table(v, key, "the lab file")).unwrap_or(empty);
        self.keys(t, allowed, &format!("[{key}]"));
        t
    }

    pub(super) fn string(&mut self, t: &Table, key: &str, place: &str) -> Field<String> {
        let value = t.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(value, key, place, "a string");
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        range: RangeInclusive<i128>,
    ) -> Field<i128> {
        let value = t.get(key)?;
        let number = match value.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(value, key, place, "an integer");
                return None;
            }
        };
        match number {
            Some(n) if range.contains(&n) => Some((n, value.span())),
            _ => {
                let shown = value.get_ref().as_integer().map(|i| i.to_string()).unwrap_or_default();
                self.error(
                    value.span(),
                    format!("{key} {shown} is out of range"),
                    format!("{key} must be between {} and {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, t: &Table, key: &str, place: &str) -> Field<bool> {
        let value = t.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some((*b, value.span())),
            _ => {
                self.wrong_type(value, key, place, "true or false");
                None
            }
        }
    }

    /// A string field turned into `T` by `convert`, which says what is
    /// wrong and what would be right.
    pub(super) fn converted<T>(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        convert: impl Fn(&str) -> Result<T, (String, String)>,
    ) -> Field<T> {
        let (text, span) = self.string(t, key, place)?;
        match convert(&text) {
            Ok(v) => Some((v, span)),
            Err((message, help)) => {
                self.error(span, message, help);
                None
            }
        }
    }

    /// Report a missing key (one present with a wrong value was reported
    /// already).
    pub(super) fn required<T>(
        &mut self,
        field: Field<T>,
        t: &Table,
        key: &str,
        place: &str,
        at: &Span,
        help: &str,
    ) -> Field<T> {
        if !t.contains_key(key) {
            self.error(at.clone(), format!("missing \"{key}\" in {place}"), help);
        }
        field
    }

    /// An array of strings, each with its span.
    pub(super) fn strings(&mut self, value: &Value, key: &str, place: &str) -> Vec<(String, Span)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, key, place, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(item, key, place, "an array of strings"),
            }
        }
        out
    }

    /// Elements of an array of tables such as `[[links]]`.
    pub(super) fn array_of_tables<'t, 'i>(
        &mut self,
        doc: &'t Table<'i>,
        key: &str,
    ) -> Vec<(&'t Table<'i>, Span)> {
        let Some(value) = doc.get(key) else { return Vec::new() };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, key, "the lab file", &format!("an array of tables ([[{key}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                _ => self.wrong_type(
                    item,
                    key,
                    "the lab file",
                    &format!("an array of tables ([[{key}]])"),
                ),
            }
        }
        out
    }
}

pub(super) fn split<T>(field: Field<T>, default: T) -> (T, Option<Span>) {
    match field {
        Some((v, span)) => (v, Some(span)),
        None => (default, None),
    }
}
