//! A netlab topology as a YAML tree whose every key and value knows its
//! byte range in the file, read with saphyr (YAML 1.2, spans on every node,
//! duplicate keys refused).
//!
//! netlab writes nested keys with dots (`bgp.as: 65000`, `defaults.device:
//! eos`, `vlan.access: red` on a link) wherever a dictionary is expected;
//! [`load`] expands them, so `bgp.as: 1` and `bgp: {as: 1}` read the same.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::diagnostics::Span;

/// One YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// A key of a mapping (as text) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Map(_) => "a dictionary",
            Value::Seq(_) => "a list",
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "nothing",
        }
    }

    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(e) => Some(e),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// Scalars as text: what netlab takes as a name or address.
    pub fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Where a YAML error is, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub span: Span,
    pub message: String,
}

/// Parse `text` (one YAML document) into a tree of [`Node`]s with byte
/// spans, dotted keys expanded.
pub fn load(text: &str) -> Result<Node, YamlError> {
    let offsets = CharOffsets::new(text);
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let at = offsets.byte(e.marker().index());
        YamlError { span: at..at, message: format!("invalid YAML: {}", e.info()) }
    })?;
    match docs.len() {
        0 => Ok(Node { span: 0..0, value: Value::Map(Vec::new()) }),
        1 => convert(&docs[0], &offsets),
        _ => Err(YamlError {
            span: 0..0,
            message: "the file holds several YAML documents; a netlab topology is one".into(),
        }),
    }
}

/// saphyr counts characters; diagnostics count bytes.
struct CharOffsets(Vec<usize>);

impl CharOffsets {
    fn new(text: &str) -> Self {
        let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        v.push(text.len());
        CharOffsets(v)
    }

    fn byte(&self, char_index: usize) -> usize {
        self.0.get(char_index).copied().unwrap_or_else(|| self.0.last().copied().unwrap_or(0))
    }
}

fn convert(node: &MarkedYaml, offsets: &CharOffsets) -> Result<Node, YamlError> {
    let span = offsets.byte(node.span.start.index())..offsets.byte(node.span.end.index());
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Sequence(items) => {
            Value::Seq(items.iter().map(|i| convert(i, offsets)).collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(map) => {
            let mut entries: Vec<Entry> = Vec::new();
            for (k, v) in map {
                let key = convert(k, offsets)?;
                let Some(name) = key.text() else {
                    let message = format!("a key must be a name, not {}", key.type_name());
                    return Err(YamlError { span: key.span, message });
                };
                insert(&mut entries, &name, key.span, convert(v, offsets)?)?;
            }
            Value::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(inner, offsets),
        YamlData::Representation(text, _, _) => Value::Str(text.to_string()),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(YamlError {
                span,
                message: "YAML anchors, aliases and bad values are not read here".into(),
            });
        }
    };
    Ok(Node { span, value })
}

fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Int(*i),
        Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
        Scalar::String(s) => Value::Str(s.to_string()),
    }
}

/// Insert `key: value`, expanding `a.b.c` into nested maps and merging
/// into a map that is already there.
fn insert(
    entries: &mut Vec<Entry>,
    key: &str,
    key_span: Span,
    value: Node,
) -> Result<(), YamlError> {
    let (head, rest) = match key.split_once('.') {
        Some((head, rest)) if !head.is_empty() && !rest.is_empty() => (head, Some(rest)),
        _ => (key, None),
    };
    let head_span = key_span.start..key_span.start + head.len().min(key_span.len());
    let value = match rest {
        None => value,
        Some(rest) => {
            let rest_span = (head_span.end + 1).min(key_span.end)..key_span.end;
            let mut inner = Vec::new();
            let span = value.span.clone();
            insert(&mut inner, rest, rest_span, value)?;
            Node { span: key_span.start..span.end, value: Value::Map(inner) }
        }
    };
    match entries.iter_mut().find(|e| e.key == head) {
        None => {
            entries.push(Entry { key: head.to_string(), key_span: head_span, value });
            Ok(())
        }
        Some(existing) => match (&mut existing.value.value, value.value) {
            (Value::Map(old), Value::Map(new)) => {
                for e in new {
                    insert(old, &e.key, e.key_span, e.value)?;
                }
                Ok(())
            }
            _ => Err(YamlError {
                span: key_span,
                message: format!("key {key} is given twice (once with dots, once without?)"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_expand_and_merge_with_spans() {
        let text = "bgp.as: 65000\nbgp:\n  rr_list: [s1]\nnodes: [r1, \"r2\"]\n";
        let doc = load(text).unwrap();
        let bgp = doc.get("bgp").unwrap();
        assert_eq!(&text[bgp.key_span.clone()], "bgp");
        let asn = bgp.value.get("as").unwrap();
        assert_eq!(asn.value.value, Value::Int(65000));
        assert_eq!(&text[asn.key_span.clone()], "as");
        assert_eq!(&text[asn.value.span.clone()], "65000");
        assert!(bgp.value.get("rr_list").is_some());
        let nodes = &doc.get("nodes").unwrap().value;
        let Value::Seq(items) = &nodes.value else { panic!() };
        assert_eq!(&text[items[1].span.clone()], "\"r2\"");
    }

    #[test]
    fn errors_have_positions_and_duplicates_are_refused() {
        let err = load("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicated key"), "{err:?}");
        assert_eq!(err.span.start, 5);
        let err = load("a: [1,\nb: 2").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err:?}");
        let err = load("bgp.as: 1\nbgp: 2\n").unwrap_err();
        assert!(err.message.contains("given twice"), "{err:?}");
    }

    #[test]
    fn spans_count_bytes_after_wide_characters() {
        let text = "# é\nname: lab\n";
        let doc = load(text).unwrap();
        let name = doc.get("name").unwrap();
        assert_eq!(&text[name.value.span.clone()], "lab");
    }
}
