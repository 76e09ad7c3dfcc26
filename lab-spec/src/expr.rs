//! The small expression a `show` test holds against FRR's JSON: where
//! netlab runs Python over the parsed output, pi-lab takes one expression
//! of paths, comparisons, `and`, `or` and `not`.
//!
//! ```text
//! ipv4Unicast.peers["10.0.0.1"].state == "Established"
//! len(neighbors) >= 2 and routes["10.0.0.2/32"][0].protocol == "ospf"
//! vni.10010 exists            (a bare path: present and not empty/false/0)
//! numVnis > 1 or not ipv4Unicast
//! ```
//!
//! A path is keys separated by dots (`a.b`, numbers index arrays: `a.0`)
//! or in brackets (`a["10.0.0.1/32"]`, `a[0]`); `len(path)` counts an
//! array's or object's entries or a string's characters; `contains`
//! tests an array element, an object key or a substring.

use std::fmt;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    /// A bare operand: true when it is there and not null, false, 0, "" or
    /// empty.
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Vec<Key>),
    Len(Vec<Key>),
    Literal(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Name(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

/// What is wrong with an expression, and where (byte offset in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

/// Parse an expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = lex(text)?;
    let mut p = Parser { tokens, pos: 0, end: text.len() };
    let expr = p.or()?;
    match p.peek() {
        None => Ok(expr),
        Some((at, t)) => Err(ExprError { at, message: format!("unexpected {}", t.describe()) }),
    }
}

impl Expr {
    /// Evaluate against a JSON document.
    pub fn eval(&self, doc: &Value) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(doc) || b.eval(doc),
            Expr::And(a, b) => a.eval(doc) && b.eval(doc),
            Expr::Not(e) => !e.eval(doc),
            Expr::Truthy(o) => o.value(doc).is_some_and(|v| truthy(&v)),
            Expr::Compare(a, op, b) => match (a.value(doc), b.value(doc)) {
                (Some(x), Some(y)) => compare(&x, *op, &y),
                // A missing path equals nothing, and differs from everything.
                (x, y) => *op == Op::Ne && x != y,
            },
        }
    }

    /// What the operands found, for a failure message: `path = value`.
    pub fn explain(&self, doc: &Value) -> String {
        let mut parts = Vec::new();
        self.collect(doc, &mut parts);
        parts.join(", ")
    }

    fn collect(&self, doc: &Value, out: &mut Vec<String>) {
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                a.collect(doc, out);
                b.collect(doc, out);
            }
            Expr::Not(e) => e.collect(doc, out),
            Expr::Truthy(o) => o.describe(doc, out),
            Expr::Compare(a, _, b) => {
                a.describe(doc, out);
                b.describe(doc, out);
            }
        }
    }
}

impl Operand {
    fn value(&self, doc: &Value) -> Option<Value> {
        match self {
            Operand::Literal(v) => Some(v.clone()),
            Operand::Path(keys) => lookup(doc, keys).cloned(),
            Operand::Len(keys) => {
                let n = match lookup(doc, keys)? {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return None,
                };
                Some(Value::from(n))
            }
        }
    }

    fn describe(&self, doc: &Value, out: &mut Vec<String>) {
        let shown = |v: Option<Value>| v.map_or("missing".to_string(), |v| short(&v));
        match self {
            Operand::Literal(_) => {}
            Operand::Path(keys) => {
                out.push(format!("{} = {}", path_text(keys), shown(self.value(doc))))
            }
            Operand::Len(keys) => {
                out.push(format!("len({}) = {}", path_text(keys), shown(self.value(doc))))
            }
        }
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

fn path_text(keys: &[Key]) -> String {
    let mut out = String::new();
    for k in keys {
        match k {
            Key::Name(n)
                if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(n);
            }
            Key::Name(n) => out.push_str(&format!("[{}]", Value::from(n.as_str()))),
            Key::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn lookup<'v>(doc: &'v Value, keys: &[Key]) -> Option<&'v Value> {
    keys.iter().try_fold(doc, |v, k| match (k, v) {
        (Key::Name(n), Value::Object(o)) => o.get(n),
        (Key::Index(i), Value::Array(a)) => a.get(*i),
        (Key::Index(i), Value::Object(o)) => o.get(&i.to_string()),
        (Key::Name(n), Value::Array(a)) => n.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    if op == Op::Contains {
        return match (a, b) {
            (Value::Array(items), x) => items.contains(x),
            (Value::Object(o), Value::String(k)) => o.contains_key(k),
            (Value::String(s), Value::String(t)) => s.contains(t.as_str()),
            _ => false,
        };
    }
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().zip(y.as_f64()).and_then(|(x, y)| x.partial_cmp(&y))
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        Op::Eq => ordering.map_or(a == b, |o| o.is_eq()),
        Op::Ne => ordering.map_or(a != b, |o| o.is_ne()),
        Op::Lt => ordering.is_some_and(|o| o.is_lt()),
        Op::Le => ordering.is_some_and(|o| o.is_le()),
        Op::Gt => ordering.is_some_and(|o| o.is_gt()),
        Op::Ge => ordering.is_some_and(|o| o.is_ge()),
        Op::Contains => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64, String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Op(Op),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("\"{s}\""),
            Token::Str(s) => format!("string {}", Value::from(s.as_str())),
            Token::Num(_, s) => format!("number {s}"),
            Token::Dot => "'.'".into(),
            Token::LBracket => "'['".into(),
            Token::RBracket => "']'".into(),
            Token::LParen => "'('".into(),
            Token::RParen => "')'".into(),
            Token::Op(_) => "an operator".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ExprError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while let Some(&(at, c)) = chars.get(i) {
        let next = chars.get(i + 1).map(|x| x.1);
        let two = |t: Token| (t, 2);
        let (token, width) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '.' => (Token::Dot, 1),
            '[' => (Token::LBracket, 1),
            ']' => (Token::RBracket, 1),
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            '=' if next == Some('=') => two(Token::Op(Op::Eq)),
            '!' if next == Some('=') => two(Token::Op(Op::Ne)),
            '<' if next == Some('=') => two(Token::Op(Op::Le)),
            '>' if next == Some('=') => two(Token::Op(Op::Ge)),
            '<' => (Token::Op(Op::Lt), 1),
            '>' => (Token::Op(Op::Gt), 1),
            '"' | '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(ExprError {
                                at,
                                message: "string without its closing quote".into(),
                            });
                        }
                        Some(&(_, q)) if q == c => break,
                        Some(&(_, '\\')) => {
                            if let Some(&(_, e)) = chars.get(j + 1) {
                                s.push(e);
                            }
                            j += 2;
                            continue;
                        }
                        Some(&(_, x)) => s.push(x),
                    }
                    j += 1;
                }
                out.push((at, Token::Str(s)));
                i = j + 1;
                continue;
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut j = i + 1;
                while chars.get(j).is_some_and(|x| {
                    x.1.is_ascii_digit()
                        || (x.1 == '.' && chars.get(j + 1).is_some_and(|y| y.1.is_ascii_digit()))
                }) {
                    j += 1;
                }
                let end = chars.get(j).map_or(text.len(), |x| x.0);
                let raw = &text[at..end];
                let n = raw
                    .parse::<f64>()
                    .map_err(|_| ExprError { at, message: format!("{raw} is not a number") })?;
                out.push((at, Token::Num(n, raw.to_string())));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|x| x.1.is_alphanumeric() || x.1 == '_' || x.1 == '-')
                {
                    j += 1;
                }
                let end = chars.get(j).map_or(text.len(), |x| x.0);
                out.push((at, Token::Ident(text[at..end].to_string())));
                i = j;
                continue;
            }
            other => {
                return Err(ExprError { at, message: format!("unexpected character '{other}'") });
            }
        };
        out.push((at, token));
        i += width;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.pos).map(|(at, t)| (*at, t))
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some((_, Token::Ident(s))) if s == w)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |p| p.0)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError { at: self.here(), message: message.into() })
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while self.word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.not()?;
        while self.word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if matches!(self.peek(), Some((_, Token::LParen))) {
            self.pos += 1;
            let e = self.or()?;
            if !matches!(self.peek(), Some((_, Token::RParen))) {
                return self.error("expected ')'");
            }
            self.pos += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let left = self.operand()?;
        let op = match self.peek() {
            Some((_, Token::Op(op))) => *op,
            Some((_, Token::Ident(w))) if w == "contains" => Op::Contains,
            Some((_, Token::Ident(w))) if w == "exists" => {
                self.pos += 1;
                return Ok(Expr::Truthy(left));
            }
            _ => return Ok(Expr::Truthy(left)),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let Some((_, token)) = self.peek() else { return self.error("expected a path or a value") };
        let token = token.clone();
        self.pos += 1;
        match token {
            Token::Str(s) => Ok(Operand::Literal(Value::from(s))),
            Token::Num(n, raw) => Ok(Operand::Literal(if raw.contains('.') {
                Value::from(n)
            } else {
                raw.parse::<i64>().map_or(Value::from(n), Value::from)
            })),
            Token::Ident(w) if w == "true" || w == "false" => {
                Ok(Operand::Literal(Value::from(w == "true")))
            }
            Token::Ident(w) if w == "null" => Ok(Operand::Literal(Value::Null)),
            Token::Ident(w) if w == "len" && matches!(self.peek(), Some((_, Token::LParen))) => {
                self.pos += 1;
                let Some((_, Token::Ident(first))) = self.peek().map(|(a, t)| (a, t.clone()))
                else {
                    return self.error("len() takes a path");
                };
                self.pos += 1;
                let keys = self.path(first)?;
                if !matches!(self.peek(), Some((_, Token::RParen))) {
                    return self.error("expected ')' after len's path");
                }
                self.pos += 1;
                Ok(Operand::Len(keys))
            }
            Token::Ident(first) => Ok(Operand::Path(self.path(first)?)),
            Token::LBracket => {
                self.pos -= 1;
                Ok(Operand::Path(self.path_rest(Vec::new())?))
            }
            other => {
                self.pos -= 1;
                self.error(format!("expected a path or a value, found {}", other.describe()))
            }
        }
    }

    fn path(&mut self, first: String) -> Result<Vec<Key>, ExprError> {
        let first = if first == "$" { Vec::new() } else { vec![name_or_index(&first)] };
        self.path_rest(first)
    }

    fn path_rest(&mut self, mut keys: Vec<Key>) -> Result<Vec<Key>, ExprError> {
        loop {
            match self.peek().map(|(a, t)| (a, t.clone())) {
                Some((_, Token::Dot)) => {
                    self.pos += 1;
                    match self.peek().map(|(a, t)| (a, t.clone())) {
                        Some((_, Token::Ident(n))) => keys.push(Key::Name(n)),
                        Some((_, Token::Num(_, raw))) => keys.push(name_or_index(&raw)),
                        _ => return self.error("expected a key after '.'"),
                    }
                    self.pos += 1;
                }
                Some((_, Token::LBracket)) => {
                    self.pos += 1;
                    match self.peek().map(|(a, t)| (a, t.clone())) {
                        Some((_, Token::Str(s))) => keys.push(Key::Name(s)),
                        Some((_, Token::Num(_, raw))) => match raw.parse::<usize>() {
                            Ok(i) => keys.push(Key::Index(i)),
                            Err(_) => return self.error(format!("{raw} is not an index")),
                        },
                        _ => return self.error("expected \"key\" or an index inside [ ]"),
                    }
                    self.pos += 1;
                    if !matches!(self.peek(), Some((_, Token::RBracket))) {
                        return self.error("expected ']'");
                    }
                    self.pos += 1;
                }
                _ => return Ok(keys),
            }
        }
    }
}

fn name_or_index(text: &str) -> Key {
    text.parse::<usize>().map_or_else(|_| Key::Name(text.to_string()), Key::Index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::json!({
            "ipv4Unicast": {"peers": {"10.0.0.1": {"state": "Established", "pfxRcd": 3}}},
            "routes": {"10.0.0.2/32": [{"protocol": "ospf", "metric": 20}]},
            "neighbors": ["a", "b"],
            "empty": {},
            "vni": {"10010": {"type": "L2"}}
        })
    }

    fn holds(text: &str) -> bool {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).eval(&doc())
    }

    #[test]
    fn paths_comparisons_and_logic() {
        assert!(holds(r#"ipv4Unicast.peers["10.0.0.1"].state == "Established""#));
        assert!(holds(r#"ipv4Unicast.peers['10.0.0.1'].pfxRcd >= 3"#));
        assert!(!holds(r#"ipv4Unicast.peers["10.0.0.9"].state == "Established""#));
        assert!(holds(r#"ipv4Unicast.peers["10.0.0.9"].state != "Established""#));
        assert!(holds(r#"routes["10.0.0.2/32"][0].protocol == "ospf" and len(neighbors) == 2"#));
        assert!(holds("routes[\"10.0.0.2/32\"].0.metric < 21"));
        assert!(holds("vni.10010 exists and not empty"));
        assert!(holds("neighbors contains \"b\" or false"));
        assert!(holds("vni contains '10010'"));
        assert!(holds("(len(neighbors) > 5 or len(empty) == 0) and true"));
        assert!(!holds("missing"));
    }

    #[test]
    fn mistakes_say_where() {
        let e = parse("a.b == ").unwrap_err();
        assert_eq!(e.at, 7);
        assert!(e.message.contains("expected a path or a value"), "{e}");
        let e = parse("a[\"x\" == 1").unwrap_err();
        assert!(e.message.contains("expected ']'"), "{e}");
        let e = parse("a == 'open").unwrap_err();
        assert!(e.message.contains("closing quote"), "{e}");
        assert!(parse("a == 1 b").unwrap_err().message.contains("unexpected"));
    }

    #[test]
    fn failures_explain_what_was_found() {
        let e = parse(r#"ipv4Unicast.peers["10.0.0.1"].state == "Active" and len(neighbors) > 3"#)
            .unwrap();
        assert_eq!(
            e.explain(&doc()),
            r#"ipv4Unicast.peers["10.0.0.1"].state = "Established", len(neighbors) = 2"#
        );
    }
}
