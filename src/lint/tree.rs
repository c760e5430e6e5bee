//! A document tree that keeps the line and column of every value and key, and the JSON reader
//! that builds it.
//!
//! `serde_json` drops positions, and findings must point at the key that is wrong, so the
//! reader is written here: strict JSON (RFC 8259), a bounded nesting depth (so neither the
//! reader nor dropping the tree can exhaust the stack), and errors that say where. It is fuzzed
//! (`fuzz/fuzz_targets/lint_input.rs`).

use std::fmt;

/// The deepest nesting of arrays and objects a document may have. Task definitions, policies
/// and templates nest fewer than 15 levels; this leaves room and keeps recursion shallow.
pub const MAX_DEPTH: usize = 128;

/// A position in a text: 1-based line and 1-based column in characters (Unicode scalar values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

impl Pos {
    /// The start of a text.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub value: Value,
    /// Where it starts.
    pub pos: Pos,
}

/// An object member: its key (and the key's position) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The key.
    pub key: String,
    /// Where the key starts (its opening quote in JSON).
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// The kinds of values. Numbers keep their text: only small integers are ever compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, members in document order.
    Object(Vec<Member>),
}

impl Node {
    /// The member named `key`, also accepted with its first letter upper-cased (CloudFormation
    /// spells the task definition's `pidMode` as `PidMode`). The last one wins, as in AWS.
    pub fn member(&self, key: &str) -> Option<&Member> {
        let Value::Object(members) = &self.value else {
            return None;
        };
        members.iter().rev().find(|m| same_key(&m.key, key))
    }

    /// The value of [`Node::member`].
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.member(key).map(|m| &m.value)
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean (also the strings `"true"`/`"false"`, as CloudFormation allows).
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// An integer (also a string holding one: `"memory": "1024"`).
    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Number(n) | Value::String(n) => n.trim().parse().ok(),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of an object.
    pub fn as_object(&self) -> Option<&[Member]> {
        match &self.value {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// A short name of the kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// Moves this node and everything below it to `pos` (a document decoded from a string is
    /// located at that string).
    pub fn relocate(&mut self, pos: Pos) {
        self.pos = pos;
        match &mut self.value {
            Value::Array(items) => items.iter_mut().for_each(|n| n.relocate(pos)),
            Value::Object(members) => members.iter_mut().for_each(|m| {
                m.key_pos = pos;
                m.value.relocate(pos);
            }),
            _ => {}
        }
    }
}

/// Whether a document key names `key`: equal, or equal but for an upper-case first letter.
fn same_key(found: &str, key: &str) -> bool {
    if found == key {
        return true;
    }
    let (mut a, mut b) = (found.chars(), key.chars());
    match (a.next(), b.next()) {
        (Some(x), Some(y)) => x == y.to_ascii_uppercase() && a.as_str() == b.as_str(),
        _ => false,
    }
}

/// Why a text is not a usable document, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    /// Where reading stopped.
    pub pos: Pos,
    /// What was wrong.
    pub message: String,
}

/// Reads a JSON text (a leading byte-order mark is allowed).
pub fn parse_json(text: &str) -> Result<Node, SyntaxError> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
        line_start: 0,
        text,
        column_cache: std::cell::Cell::new((0, 0)),
    };
    if text.starts_with('\u{feff}') {
        reader.at = 3;
        reader.line_start = 3;
    }
    reader.skip_blanks();
    let node = reader.value(0)?;
    reader.skip_blanks();
    if reader.at < reader.bytes.len() {
        return Err(reader.error("unexpected text after the end of the document"));
    }
    Ok(node)
}

struct Reader<'t> {
    bytes: &'t [u8],
    text: &'t str,
    at: usize,
    line: u32,
    line_start: usize,
    column_cache: std::cell::Cell<(usize, usize)>,
}

impl Reader<'_> {
    fn pos(&self) -> Pos {
        self.pos_at(self.at)
    }

    /// Columns are counted in characters from the last position asked for on the same line,
    /// so a one-line (minified) document costs linear time, not quadratic.
    fn pos_at(&self, at: usize) -> Pos {
        let (mut from, mut column) = self.column_cache.get();
        if from < self.line_start || from > at {
            (from, column) = (self.line_start.min(at), 0);
        }
        column += self
            .text
            .get(from..at)
            .map_or(at - from, |s| s.chars().count());
        self.column_cache.set((at, column));
        Pos {
            line: self.line,
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: self.pos(),
            message: message.into(),
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    self.line = self.line.saturating_add(1);
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        let value = match self.bytes.get(self.at) {
            None => return Err(self.error("unexpected end of the document: a value is missing")),
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(_) => {
                let found = self.text.get(self.at..).and_then(|s| s.chars().next());
                return Err(self.error(format!(
                    "expected a value, found {}",
                    found.map_or_else(
                        || "a byte".to_owned(),
                        |c| format!("`{}`", c.escape_default())
                    )
                )));
            }
        };
        Ok(Node { value, pos })
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "nesting deeper than {MAX_DEPTH} arrays and objects"
            )));
        }
        Ok(depth + 1)
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut members = Vec::new();
        self.skip_blanks();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_blanks();
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(self.error(if self.at >= self.bytes.len() {
                    "unexpected end of the document inside an object".to_owned()
                } else {
                    "expected a key (a string in double quotes)".to_owned()
                }));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_blanks();
            if self.bytes.get(self.at) != Some(&b':') {
                return Err(self.error(format!("expected `:` after the key \"{key}\"")));
            }
            self.at += 1;
            self.skip_blanks();
            let value = self.value(depth)?;
            members.push(Member {
                key,
                key_pos,
                value,
            });
            self.skip_blanks();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("unexpected end of the document inside an object")),
                Some(_) => return Err(self.error("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut items = Vec::new();
        self.skip_blanks();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_blanks();
            items.push(self.value(depth)?);
            self.skip_blanks();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("unexpected end of the document inside an array")),
                Some(_) => return Err(self.error("expected `,` or `]` in an array")),
            }
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error(format!("expected `{word}`")))
        }
    }

    fn number(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        let digits = |r: &mut Reader<'_>| {
            let from = r.at;
            while matches!(r.bytes.get(r.at), Some(b'0'..=b'9')) {
                r.at += 1;
            }
            r.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        let n = digits(self);
        if n == 0 {
            return Err(self.error("expected a digit"));
        }
        if n > 1 && self.bytes.get(int_start) == Some(&b'0') {
            return Err(SyntaxError {
                pos: self.pos_at(int_start),
                message: "a number may not start with 0".into(),
            });
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.error("expected a digit after `.`"));
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(self.text.get(start..self.at).unwrap_or_default().to_owned())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = self
                .bytes
                .get(self.at)
                .and_then(|b| char::from(*b).to_digit(16))
                .ok_or_else(|| self.error("expected 4 hexadecimal digits after `\\u`"))?;
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos();
        self.at += 1;
        let mut out = String::new();
        loop {
            let run_start = self.at;
            while let Some(&b) = self.bytes.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(self.text.get(run_start..self.at).unwrap_or_default());
            match self.bytes.get(self.at) {
                None => {
                    return Err(SyntaxError {
                        pos: open,
                        message: "string not closed before the end of the document".into(),
                    });
                }
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escape = self.bytes.get(self.at).copied();
                    self.at += 1;
                    match escape {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high)
                                && self.bytes.get(self.at) == Some(&b'\\')
                                && self.bytes.get(self.at + 1) == Some(&b'u')
                            {
                                self.at += 2;
                                let low = self.hex4()?;
                                if (0xDC00..0xE000).contains(&low) {
                                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                                } else {
                                    0xFFFD
                                }
                            } else {
                                high
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.at -= 2;
                            return Err(self.error("invalid escape in a string"));
                        }
                    }
                }
                Some(_) => {
                    return Err(
                        self.error("control character in a string (write line breaks as \\n)")
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_keep_their_positions() {
        let text = "{\n  \"a\": [1, \"é\", {\"b\": true}],\n  \"c\": null\n}";
        let node = parse_json(text).expect("valid");
        let a = node.member("a").expect("a");
        assert_eq!(a.key_pos, Pos { line: 2, column: 3 });
        let items = a.value.as_array().expect("array");
        assert_eq!(
            items[1].pos,
            Pos {
                line: 2,
                column: 12
            }
        );
        let b = items[2].member("b").expect("b");
        // Columns count characters: `é` is one.
        assert_eq!(
            b.key_pos,
            Pos {
                line: 2,
                column: 18
            }
        );
        assert_eq!(node.member("c").expect("c").key_pos.line, 3);
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            (
                "{\"a\": 1",
                Pos { line: 1, column: 8 },
                "end of the document",
            ),
            (
                "{\"a\": 1,\n \"b\" 2}",
                Pos { line: 2, column: 6 },
                "expected `:`",
            ),
            ("[1, 2,]", Pos { line: 1, column: 7 }, "expected a value"),
            ("{\"a\": \"x", Pos { line: 1, column: 7 }, "not closed"),
            ("[01]", Pos { line: 1, column: 2 }, "start with 0"),
            ("{} x", Pos { line: 1, column: 4 }, "after the end"),
            ("", Pos { line: 1, column: 1 }, "value is missing"),
            ("\"a\\q\"", Pos { line: 1, column: 3 }, "invalid escape"),
        ];
        for (text, pos, needle) in cases {
            let error = parse_json(text).expect_err(text);
            assert_eq!(error.pos, pos, "{text}: {error}");
            assert!(error.message.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn nesting_is_bounded_without_exhausting_the_stack() {
        let deep = "[".repeat(100_000);
        let error = parse_json(&deep).expect_err("too deep");
        assert_eq!(
            error.pos,
            Pos {
                line: 1,
                column: MAX_DEPTH as u32 + 1
            }
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        parse_json(&ok).expect("at the limit");
    }

    #[test]
    fn escapes_and_surrogates_decode() {
        let node = parse_json(r#""a\n\u00e9\ud83d\ude00\/""#).expect("valid");
        assert_eq!(node.as_str(), Some("a\né😀/"));
    }

    #[test]
    fn capitalised_keys_match_camel_case_lookups() {
        let node = parse_json(r#"{"PidMode": "task", "pidmode": "x"}"#).expect("valid");
        assert_eq!(node.get("pidMode").and_then(Node::as_str), Some("task"));
        assert!(node.get("PidMode").is_some());
        assert!(node.get("mode").is_none());
    }
}
