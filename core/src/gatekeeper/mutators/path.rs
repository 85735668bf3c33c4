//! A mutator's `location` (and its `pathTests` subpaths): Gatekeeper's path
//! syntax, parsed the way `pkg/mutation/path/parser` parses it.
//!
//! A path is a dot-separated list of field names, each optionally followed by
//! one list selector: `spec.containers[name: foo].image`. A field name is
//! letters, digits, `_` and `-` (not starting with a digit), or any text in
//! single or double quotes (`\` escapes the next character). A list selector
//! is `[keyField: value]`, where the value is a name, a quoted string, an
//! unsigned integer, or `*` (every element).

use std::fmt;

/// The value a keyed-list selector picks an element by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// A string (a name or a quoted string).
    Str(String),
    /// An unsigned integer written without quotes: it matches a number.
    Int(i64),
}

impl KeyValue {
    /// The value as the JSON an element's key field must equal.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Str(s) => serde_json::Value::String(s.clone()),
            Self::Int(i) => serde_json::Value::from(*i),
        }
    }

    /// Whether a list element's key field holds this value (Go's interface
    /// equality: a string equals a string, an integer an integer).
    pub fn matches(&self, v: &serde_json::Value) -> bool {
        match (self, v) {
            (Self::Str(s), serde_json::Value::String(t)) => s == t,
            (Self::Int(i), serde_json::Value::Number(n)) => n.as_i64() == Some(*i),
            _ => false,
        }
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// A field of an object.
    Field(String),
    /// The elements of a list whose `key` field equals `value`; every
    /// element when `value` is `None` (the `*` glob).
    List {
        /// The key field.
        key: String,
        /// The value, or `None` for `*`.
        value: Option<KeyValue>,
    },
}

impl Node {
    /// Whether this is a list selector.
    pub fn is_list(&self) -> bool {
        matches!(self, Self::List { .. })
    }

    /// Whether this is a `[key: *]` selector.
    pub fn is_glob(&self) -> bool {
        matches!(self, Self::List { value: None, .. })
    }
}

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path {
    /// The steps, outermost first.
    pub nodes: Vec<Node>,
}

impl Path {
    /// Whether `self` is a prefix of `other`, step by step.
    pub fn is_prefix_of(&self, other: &Path) -> bool {
        self.nodes.len() <= other.nodes.len()
            && self.nodes.iter().zip(&other.nodes).all(|(a, b)| a == b)
    }

    /// Whether the path starts at `metadata`.
    pub fn starts_at_metadata(&self) -> bool {
        matches!(self.nodes.first(), Some(Node::Field(f)) if f == "metadata")
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) || !s.chars().all(is_ident_char)
}

fn quoted(s: &str) -> String {
    if needs_quotes(s) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(&quoted(name))?;
                }
                Node::List { key, value } => {
                    let value = match value {
                        None => "*".to_string(),
                        Some(KeyValue::Str(s)) => quoted(s),
                        Some(KeyValue::Int(n)) => n.to_string(),
                    };
                    write!(f, "[{}: {value}]", quoted(key))?;
                }
            }
        }
        Ok(())
    }
}

/// A location that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position} of {input:?}")]
pub struct PathError {
    /// The text.
    pub input: String,
    /// 0-based byte offset of the offending token.
    pub position: usize,
    /// What was expected.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Int(String),
    Dot,
    Open,
    Close,
    Colon,
    Glob,
    End,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn describe(t: &Token) -> String {
    match t {
        Token::Ident(s) => format!("{s:?}"),
        Token::Int(s) => s.clone(),
        Token::Dot => "'.'".to_string(),
        Token::Open => "'['".to_string(),
        Token::Close => "']'".to_string(),
        Token::Colon => "':'".to_string(),
        Token::Glob => "'*'".to_string(),
        Token::End => "the end".to_string(),
    }
}

fn tokens(input: &str) -> Result<Vec<(usize, Token)>, PathError> {
    let err = |position: usize, message: &str| PathError {
        input: input.to_string(),
        position,
        message: message.to_string(),
    };
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                chars.next();
            }
            '.' | '[' | ']' | ':' | '*' => {
                chars.next();
                out.push((
                    at,
                    match c {
                        '.' => Token::Dot,
                        '[' => Token::Open,
                        ']' => Token::Close,
                        ':' => Token::Colon,
                        _ => Token::Glob,
                    },
                ));
            }
            '"' | '\'' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    if d == '\\' {
                        if let Some((_, e)) = chars.next() {
                            text.push(e);
                        }
                        continue;
                    }
                    text.push(d);
                }
                if !closed {
                    return Err(err(at, "unterminated string"));
                }
                out.push((at, Token::Ident(text)));
            }
            c if c.is_ascii_digit() => {
                let mut text = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    text.push(d);
                    chars.next();
                }
                out.push((at, Token::Int(text)));
            }
            c if is_ident_char(c) => {
                let mut text = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if !is_ident_char(d) {
                        break;
                    }
                    text.push(d);
                    chars.next();
                }
                out.push((at, Token::Ident(text)));
            }
            other => return Err(err(at, &format!("invalid character {other:?}"))),
        }
    }
    out.push((input.len(), Token::End));
    Ok(out)
}

/// Parses a location or subpath.
pub fn parse(input: &str) -> Result<Path, PathError> {
    let toks = tokens(input)?;
    let err = |i: usize, message: String| PathError {
        input: input.to_string(),
        position: toks.get(i).map(|t| t.0).unwrap_or(input.len()),
        message,
    };
    let token = |i: usize| toks.get(i).map(|t| &t.1).unwrap_or(&Token::End);
    let mut path = Path::default();
    let mut i = 0;
    while let Token::Ident(name) = token(i) {
        path.nodes.push(Node::Field(name.clone()));
        i += 1;
        if token(i) == &Token::Open {
            let Token::Ident(key) = token(i + 1) else {
                return Err(err(
                    i + 1,
                    format!(
                        "expected keyField in listSpec, got {}",
                        describe(token(i + 1))
                    ),
                ));
            };
            if token(i + 2) != &Token::Colon {
                return Err(err(
                    i + 2,
                    format!(
                        "expected ':' following keyField {key}, got {}",
                        describe(token(i + 2))
                    ),
                ));
            }
            let value = match token(i + 3) {
                Token::Glob => None,
                Token::Ident(v) => Some(KeyValue::Str(v.clone())),
                Token::Int(digits) => {
                    Some(KeyValue::Int(digits.parse::<i64>().map_err(|_| {
                        err(i + 3, format!("overflow in integer string: {digits}"))
                    })?))
                }
                other => {
                    return Err(err(
                        i + 3,
                        format!(
                            "expected key value or glob in listSpec, got {}",
                            describe(other)
                        ),
                    ))
                }
            };
            if token(i + 4) != &Token::Close {
                return Err(err(
                    i + 4,
                    format!(
                        "expected ']' following listSpec, got {}",
                        describe(token(i + 4))
                    ),
                ));
            }
            path.nodes.push(Node::List {
                key: key.clone(),
                value,
            });
            i += 5;
        }
        match token(i) {
            Token::Dot if token(i + 1) == &Token::End => {
                return Err(err(i, "trailing separator".to_string()))
            }
            Token::Dot => i += 1,
            Token::End => {}
            other => {
                return Err(err(
                    i,
                    format!("expected '.' or the end, got {}", describe(other)),
                ))
            }
        }
    }
    if token(i) != &Token::End {
        return Err(err(
            i,
            format!("expected a field name, got {}", describe(token(i))),
        ));
    }
    if path.nodes.is_empty() {
        return Err(err(0, "empty location".to_string()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn field(s: &str) -> Node {
        Node::Field(s.to_string())
    }

    #[test]
    fn parses_fields_and_list_selectors() {
        let p = parse("spec.containers[name: foo].securityContext").unwrap();
        assert_eq!(
            p.nodes,
            vec![
                field("spec"),
                field("containers"),
                Node::List {
                    key: "name".into(),
                    value: Some(KeyValue::Str("foo".into()))
                },
                field("securityContext"),
            ]
        );
        assert_eq!(p.to_string(), "spec.containers[name: foo].securityContext");
    }

    #[test]
    fn globs_integers_and_quoted_names() {
        let p = parse("spec.containers[name:*].ports[containerPort: 80].x").unwrap();
        assert!(p.nodes[2].is_glob());
        assert_eq!(
            p.nodes[4],
            Node::List {
                key: "containerPort".into(),
                value: Some(KeyValue::Int(80))
            }
        );
        let p = parse(r#"metadata.annotations."example.com/owner""#).unwrap();
        assert_eq!(p.nodes[2], field("example.com/owner"));
        let p = parse(r#"a['it\'s']"#);
        assert!(p.is_err(), "a list selector needs key: value");
        let p = parse(r#"a[name: 'it\'s a "b"']"#).unwrap();
        assert_eq!(
            p.nodes[1],
            Node::List {
                key: "name".into(),
                value: Some(KeyValue::Str("it's a \"b\"".into()))
            }
        );
    }

    #[test]
    fn refuses_what_gatekeeper_refuses() {
        for bad in [
            "",
            "spec.",
            ".spec",
            "spec..x",
            "spec.containers[name]",
            "spec.containers[name:]",
            "spec.containers[:foo]",
            "spec.containers[name:foo",
            "spec.containers[name:foo][name:bar]",
            "spec.containers[name:foo]x",
            "spec.\"unterminated",
            "spec.1abc",
            "spec/containers",
            "spec.containers[name: 99999999999999999999]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn prefixes_compare_step_by_step() {
        let long = parse("spec.containers[name:foo].image").unwrap();
        assert!(parse("spec.containers[name:foo]")
            .unwrap()
            .is_prefix_of(&long));
        assert!(!parse("spec.containers[name:bar]")
            .unwrap()
            .is_prefix_of(&long));
        assert!(!parse("spec.containers").unwrap().nodes[1].is_list());
    }
}
