//! The condition parser: recursive descent from a condition string to an [`Expr`] tree.
//!
//! The parser mirrors libsinsp's grammar, including its whitespace rules (`a and(b)` is valid,
//! `a andb` is not, word operators need a following blank) and its escape rules for quoted
//! strings (with the `"\ "` quirk). Every node carries the byte offset of its token in the
//! parsed text so that errors can point into the rules file.

use super::ast::{Expr, Modifier, Op, Operand, ParseError, Rhs, Transformer, Value};

/// Maximum nesting of parentheses, `not` and transformers (libsinsp's loader uses 1000).
pub(crate) const MAX_DEPTH: usize = 1000;

/// Names of transformers Falco has that TaskSentry does not implement.
const UNSUPPORTED_TRANSFORMERS: &[&str] = &["join", "concat", "getopt"];

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\x08' | b'\r' | b'\n')
}

fn is_bare_char(b: u8) -> bool {
    !(is_blank(b) || matches!(b, b'(' | b')' | b'"' | b'\'' | b'=' | b','))
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, ParseError>;

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_blanks();
    if p.pos >= p.bytes.len() {
        return Err(p.err_at(p.pos, "empty condition"));
    }
    let expr = p.parse_or()?;
    p.skip_blanks();
    if p.pos < p.bytes.len() {
        let token = p.token_preview(p.pos);
        return Err(p.err_at(
            p.pos,
            &format!(
                "unexpected token '{token}' after a complete expression, expecting 'or', 'and'"
            ),
        ));
    }
    Ok(expr)
}

impl<'a> Parser<'a> {
    fn err_at(&self, offset: usize, message: &str) -> ParseError {
        ParseError {
            offset,
            message: message.to_string(),
        }
    }

    fn token_preview(&self, at: usize) -> String {
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let rest = &self.text[at..];
        let end = rest
            .char_indices()
            .find(|(i, c)| *i > 0 && (c.is_whitespace() || *c == '(' || *c == ')'))
            .map_or(rest.len(), |(i, _)| i);
        rest[..end].chars().take(40).collect()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        self.bytes[self.pos..].starts_with(s.as_bytes())
    }

    /// Whether a keyword is at the cursor, followed by a blank or `(`.
    fn keyword_at(&self, kw: &str) -> bool {
        self.starts_with(kw)
            && self
                .bytes
                .get(self.pos + kw.len())
                .is_some_and(|&b| is_blank(b) || b == b'(')
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(self.pos, "expression nested too deeply"));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> PResult<Expr> {
        self.enter()?;
        let mut items = vec![self.parse_and()?];
        loop {
            self.skip_blanks();
            if self.keyword_at("or") {
                self.pos += 2;
                self.skip_blanks();
                items.push(self.parse_and()?);
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> PResult<Expr> {
        let mut items = vec![self.parse_not()?];
        loop {
            self.skip_blanks();
            if self.keyword_at("and") {
                self.pos += 3;
                self.skip_blanks();
                items.push(self.parse_not()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn parse_not(&mut self) -> PResult<Expr> {
        let mut negations = 0usize;
        loop {
            if self.starts_with("not") {
                match self.bytes.get(self.pos + 3) {
                    Some(&b) if is_blank(b) => {
                        self.pos += 3;
                        self.skip_blanks();
                        negations += 1;
                        continue;
                    }
                    Some(b'(') => {
                        self.pos += 3;
                        negations += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            break;
        }
        if negations > MAX_DEPTH {
            return Err(self.err_at(self.pos, "expression nested too deeply"));
        }
        let check = self.parse_check()?;
        Ok(if negations % 2 == 1 {
            Expr::Not(Box::new(check))
        } else {
            check
        })
    }

    fn parse_check(&mut self) -> PResult<Expr> {
        let start = self.pos;
        match self.peek() {
            None => {
                return Err(self.err_at(start, "unexpected end of condition, expecting a check"));
            }
            Some(b'(') => {
                self.pos += 1;
                self.skip_blanks();
                let inner = self.parse_or()?;
                self.skip_blanks();
                if self.peek() != Some(b')') {
                    return Err(match self.peek() {
                        None => self.err_at(start, "unclosed parenthesis: missing ')'"),
                        Some(_) => {
                            let t = self.token_preview(self.pos);
                            self.err_at(
                                self.pos,
                                &format!("unexpected token '{t}', expecting ')', 'or', 'and'"),
                            )
                        }
                    });
                }
                self.pos += 1;
                return Ok(inner);
            }
            _ => {}
        }
        let Some(name) = self.read_name() else {
            let t = self.token_preview(start);
            return Err(self.err_at(
                start,
                &format!("unexpected token '{t}', expecting a field, a macro or '('"),
            ));
        };
        if self.peek() == Some(b'(') && !name.contains('.') {
            let lhs = self.parse_transformer(name, start)?;
            return self.parse_rest_of_check(lhs);
        }
        if !name.contains('.') {
            if Transformer::from_name(name).is_some() {
                return Err(self.err_at(
                    start,
                    &format!("transformer '{name}' must be followed by '('"),
                ));
            }
            return Ok(Expr::Macro {
                name: name.to_string(),
                offset: start,
            });
        }
        let arg = self.read_field_arg()?;
        let lhs = Operand {
            field: name.to_string(),
            arg,
            transformers: Vec::new(),
            offset: start,
        };
        self.parse_rest_of_check(lhs)
    }

    /// Reads `[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)*`.
    fn read_name(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let b = self.bytes;
        let mut i = self.pos;
        loop {
            if !b.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
                if i == start {
                    return None;
                }
                // A trailing dot is not part of the name.
                i -= 1;
                break;
            }
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                i += 1;
            }
            if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
                i += 1;
                continue;
            }
            break;
        }
        self.pos = i;
        Some(&self.text[start..i])
    }

    fn read_field_arg(&mut self) -> PResult<Option<String>> {
        if self.peek() != Some(b'[') {
            return Ok(None);
        }
        let open = self.pos;
        self.pos += 1;
        let arg = match self.peek() {
            Some(b'"') | Some(b'\'') => self.read_quoted()?.text,
            _ => {
                let s = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !(is_blank(c) || matches!(c, b'[' | b']' | b'"' | b'\'')))
                {
                    self.pos += 1;
                }
                if self.pos == s {
                    return Err(self.err_at(open, "empty field argument"));
                }
                self.text[s..self.pos].to_string()
            }
        };
        if self.peek() != Some(b']') {
            return Err(self.err_at(open, "unclosed field argument: missing ']'"));
        }
        self.pos += 1;
        Ok(Some(arg))
    }

    fn parse_transformer(&mut self, name: &str, start: usize) -> PResult<Operand> {
        self.enter()?;
        let Some(tr) = Transformer::from_name(name) else {
            if UNSUPPORTED_TRANSFORMERS.contains(&name) {
                return Err(self.err_at(
                    start,
                    &format!("transformer '{name}' is not supported by TaskSentry"),
                ));
            }
            return Err(self.err_at(start, &format!("unknown transformer '{name}'")));
        };
        self.pos += 1; // '('
        self.skip_blanks();
        let inner_start = self.pos;
        let Some(inner) = self.read_name() else {
            return Err(self.err_at(inner_start, &format!("expecting a field inside {name}()")));
        };
        let mut operand = if self.peek() == Some(b'(') && !inner.contains('.') {
            self.parse_transformer(inner, inner_start)?
        } else if inner.contains('.') {
            let arg = self.read_field_arg()?;
            Operand {
                field: inner.to_string(),
                arg,
                transformers: Vec::new(),
                offset: inner_start,
            }
        } else {
            return Err(self.err_at(
                inner_start,
                &format!("expecting a field inside {name}(), found '{inner}'"),
            ));
        };
        self.skip_blanks();
        if self.peek() != Some(b')') {
            return Err(self.err_at(start, &format!("unclosed transformer {name}(: missing ')'")));
        }
        self.pos += 1;
        if self.peek() == Some(b'[') {
            return Err(self.err_at(
                self.pos,
                &format!("transformer {name}() does not take an argument"),
            ));
        }
        operand.transformers.push(tr);
        self.depth -= 1;
        Ok(operand)
    }

    fn parse_rest_of_check(&mut self, lhs: Operand) -> PResult<Expr> {
        let after_field = self.pos;
        self.skip_blanks();
        let op_offset = self.pos;
        let (op, word) = self.read_operator().ok_or_else(|| {
            if self.pos >= self.bytes.len() {
                self.err_at(
                    after_field,
                    &format!("missing operator after '{}'", lhs.field),
                )
            } else {
                let t = self.token_preview(op_offset);
                self.err_at(
                    op_offset,
                    &format!("unknown operator '{t}' after '{}'", lhs.field),
                )
            }
        })?;
        if op == Op::Exists {
            match self.peek() {
                None | Some(b')') => {}
                Some(b) if is_blank(b) => {}
                Some(_) => {
                    return Err(self.err_at(op_offset, "'exists' must be followed by a blank"));
                }
            }
            return Ok(Expr::Check {
                lhs,
                op,
                op_offset,
                modifier: None,
                rhs: Rhs::None,
            });
        }
        if word {
            match self.peek() {
                Some(b) if is_blank(b) => {}
                Some(b'(') if op.is_list() => {}
                _ => {
                    return Err(self.err_at(
                        op_offset,
                        &format!("operator '{}' must be followed by a blank", op.as_str()),
                    ));
                }
            }
        }
        self.skip_blanks();
        // Modifiers.
        if !op.is_list() && !op.is_numeric() {
            for (kw, m) in [
                ("oneof", Modifier::OneOf),
                ("anyof", Modifier::AnyOf),
                ("allof", Modifier::AllOf),
            ] {
                if self.keyword_at(kw) {
                    self.pos += kw.len();
                    self.skip_blanks();
                    let list = self.parse_list()?;
                    return Ok(Expr::Check {
                        lhs,
                        op,
                        op_offset,
                        modifier: Some(m),
                        rhs: Rhs::List(list),
                    });
                }
            }
        }
        if let Some(field) = self.try_rhs_field()? {
            if matches!(op, Op::Pmatch | Op::Regex) {
                return Err(self.err_at(
                    field.offset,
                    &format!("'{}' does not accept a field on the right", op.as_str()),
                ));
            }
            return Ok(Expr::Check {
                lhs,
                op,
                op_offset,
                modifier: None,
                rhs: Rhs::Field(field),
            });
        }
        let rhs = if op.is_list() {
            Rhs::List(self.parse_list()?)
        } else if op.is_numeric() {
            let start = self.pos;
            let n = self.read_number().ok_or_else(|| {
                self.err_at(
                    start,
                    &format!("operator '{}' expects a number", op.as_str()),
                )
            })?;
            Rhs::Value(Value {
                text: n,
                offset: start,
            })
        } else {
            Rhs::Value(self.read_str_value()?)
        };
        Ok(Expr::Check {
            lhs,
            op,
            op_offset,
            modifier: None,
            rhs,
        })
    }

    fn read_operator(&mut self) -> Option<(Op, bool)> {
        for sym in ["==", "!=", "<=", ">=", "=", "<", ">"] {
            if self.starts_with(sym) {
                self.pos += sym.len();
                return Op::from_token(sym).map(|op| (op, false));
            }
        }
        let start = self.pos;
        let mut end = start;
        while self.bytes.get(end).is_some_and(|c| c.is_ascii_lowercase()) {
            end += 1;
        }
        let op = Op::from_token(&self.text[start..end])?;
        self.pos = end;
        Some((op, true))
    }

    fn try_rhs_field(&mut self) -> PResult<Option<Operand>> {
        let save = self.pos;
        let Some(name) = self.read_name() else {
            return Ok(None);
        };
        if self.peek() != Some(b'(') {
            self.pos = save;
            return Ok(None);
        }
        if name == "val" {
            self.pos += 1;
            self.skip_blanks();
            let fstart = self.pos;
            let Some(field) = self.read_name().filter(|f| f.contains('.')) else {
                return Err(self.err_at(fstart, "val() expects a field"));
            };
            let arg = self.read_field_arg()?;
            self.skip_blanks();
            if self.peek() != Some(b')') {
                return Err(self.err_at(save, "unclosed val(: missing ')'"));
            }
            self.pos += 1;
            return Ok(Some(Operand {
                field: field.to_string(),
                arg,
                transformers: Vec::new(),
                offset: fstart,
            }));
        }
        if Transformer::from_name(name).is_some() || UNSUPPORTED_TRANSFORMERS.contains(&name) {
            return self.parse_transformer(name, save).map(Some);
        }
        self.pos = save;
        Ok(None)
    }

    fn parse_list(&mut self) -> PResult<Vec<Value>> {
        let open = self.pos;
        if self.peek() != Some(b'(') {
            let t = self.token_preview(open);
            return Err(self.err_at(open, &format!("expecting a list '(...)', found '{t}'")));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_blanks();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_blanks();
            items.push(self.read_str_value()?);
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return Err(self.err_at(open, "unclosed list: missing ')'")),
                Some(_) => {
                    let t = self.token_preview(self.pos);
                    return Err(self.err_at(
                        self.pos,
                        &format!("unexpected token '{t}' in list, expecting ',' or ')'"),
                    ));
                }
            }
        }
    }

    fn read_str_value(&mut self) -> PResult<Value> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => self.read_quoted(),
            Some(b) if is_bare_char(b) => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_char) {
                    self.pos += 1;
                }
                Ok(Value {
                    text: self.text[start..self.pos].to_string(),
                    offset: start,
                })
            }
            None => Err(self.err_at(self.pos, "unexpected end of condition, expecting a value")),
            Some(_) => {
                let t = self.token_preview(self.pos);
                Err(self.err_at(
                    self.pos,
                    &format!("unexpected token '{t}', expecting a value"),
                ))
            }
        }
    }

    fn read_number(&mut self) -> Option<String> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            let mut j = i + 2;
            while b.get(j).is_some_and(u8::is_ascii_hexdigit) {
                j += 1;
            }
            if j > i + 2 {
                self.pos = j;
                return Some(self.text[start..j].to_string());
            }
            return None;
        }
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E'))
            && matches!(b.get(i + 1), Some(b'+' | b'-'))
            && b.get(i + 2).is_some_and(u8::is_ascii_digit)
        {
            i += 2;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if b.get(i).is_some_and(|&c| is_bare_char(c)) {
            return None;
        }
        self.pos = i;
        Some(self.text[start..i].to_string())
    }

    /// Reads a quoted string starting at the cursor and processes escapes.
    fn read_quoted(&mut self) -> PResult<Value> {
        let start = self.pos;
        let quote = self.bytes[start];
        let mut i = start + 1;
        // The end is the first matching quote not preceded by a backslash (libsinsp's rule).
        loop {
            match self.bytes.get(i) {
                None => {
                    return Err(self.err_at(start, "unclosed quoted string: missing closing quote"));
                }
                Some(&c) if c == quote && self.bytes[i - 1] != b'\\' => break,
                Some(_) => i += 1,
            }
        }
        let raw = &self.text[start + 1..i];
        let text = unescape(raw, quote, start + 1)?;
        self.pos = i + 1;
        Ok(Value {
            text,
            offset: start,
        })
    }
}

/// Processes the escapes of a quoted string body, as libsinsp does.
fn unescape(raw: &str, quote: u8, base: usize) -> PResult<String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let b = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&next) = b.get(i + 1) else {
            return Err(ParseError {
                offset: base + i,
                message: "dangling backslash at the end of a quoted string".into(),
            });
        };
        let produced = match next {
            b'\\' => b'\\',
            b'"' if quote == b'"' => b'"',
            b'\'' if quote == b'\'' => b'\'',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'/' => b'/',
            // Quirk kept for compatibility: backslash-space yields a lone backslash.
            b' ' => b'\\',
            b'x' => {
                let hex = raw
                    .get(i + 2..i + 4)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                    return Err(ParseError {
                        offset: base + i,
                        message: "invalid \\x escape: expecting two hex digits".into(),
                    });
                };
                if byte == 0 {
                    return Err(ParseError {
                        offset: base + i,
                        message: "NUL byte not allowed in strings".into(),
                    });
                }
                out.push(byte);
                i += 4;
                continue;
            }
            _ => {
                let shown: String = raw[i + 1..]
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default();
                return Err(ParseError {
                    offset: base + i,
                    message: format!("invalid escape sequence '\\{shown}'"),
                });
            }
        };
        out.push(produced);
        i += 2;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn whitespace_rules() {
        assert!(parse("a and(b)").is_ok());
        assert!(parse("a andb").is_err());
        assert!(parse("fd.name startswith\"/x\"").is_err());
        assert!(parse("proc.name=bash").is_ok());
        assert!(parse("not(a)").is_ok());
        assert!(matches!(p("not not a"), Expr::Macro { .. }));
        assert!(matches!(p("not not not a"), Expr::Not(_)));
    }
}
