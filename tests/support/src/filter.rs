//! An evaluator of CloudWatch Logs filter patterns (metric filters, subscription filters,
//! FilterLogEvents), for testing the patterns the documentation and the CloudFormation template
//! give against real alert lines.
//!
//! moto cannot do it: its `FilterLogEvents` (moto 5.2.1, `moto/logs/utils.py`,
//! `EventMessageFilter`) only understands single terms and quoted phrases, and treats any other
//! pattern, JSON ones included, as "match everything".
//!
//! What is implemented is what the CloudWatch Logs User Guide, "Filter and Pattern Syntax"
//! (`awsdocs/amazon-cloudwatch-logs-user-guide`, `doc_source/FilterAndPatternSyntax.md`, commit
//! `1487b9496d8366bf7039a1efbeeb3a0702b42c50`; the current page is
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>)
//! defines:
//!
//! - **JSON patterns** `{ SELECTOR OP VALUE }`. A selector starts with `$`, then `.name`
//!   members (letters, digits, `-`, `_`) and `[N]` array indexes (`$.users[0].id`,
//!   `$.coordinates[0][1]`). Strings compare with `=` and `!=`, in double quotes or bare (a bare
//!   string has only letters, digits, `.`, `-`, `_` and `*`, as the guide's `123.123.*`), and a
//!   `*` at the start and/or end is a wildcard (`*Event`, `Event*`; `Ev*ent` is literal). Numbers compare
//!   with `= != < > <= >=` (signs, decimals, `e` exponents). `IS NULL`, `IS TRUE`, `IS FALSE`,
//!   `NOT EXISTS`. `&&` and `||` with parentheses, precedence `()` > `&&` > `||`. A selector that
//!   points at an object or an array matches neither `=` nor `!=`; an index into something that
//!   is not an array, or a member of something that is not an object, selects nothing.
//!   `{ $.latency = * }` matches any value of `latency` (the guide's metric-value example).
//! - **Term patterns**: the empty pattern matches every event; `TERM`s (a bare word or a quoted
//!   phrase) must all appear, case-sensitively, anywhere in the message; `-TERM` excludes;
//!   `?TERM ?TERM` matches when any of them appears.
//!
//! Where the guide says nothing, the evaluator does not guess: the outcome is
//! [`Outcome::Undefined`] (for instance `!=` on a member that is absent, a comparison with
//! `null` or a boolean, `*` against a boolean, or `<` against a string), and `&&`/`||` follow
//! three-valued logic (`false && undefined` is `false`, `true || undefined` is `true`), so a
//! test can require that a documented pattern's result never depends on undocumented behaviour.
//! Space-delimited (`[a, b]`) and regular-expression (`%…%`) patterns are refused as
//! unsupported.

use serde_json::Value;

/// The result of a pattern on one log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pattern matches.
    Match,
    /// It does not.
    NoMatch,
    /// The user guide does not say (the reason).
    Undefined(String),
}

impl Outcome {
    fn from_bool(b: bool) -> Outcome {
        if b { Outcome::Match } else { Outcome::NoMatch }
    }

    /// `Some(matched)` when defined.
    pub fn defined(&self) -> Option<bool> {
        match self {
            Outcome::Match => Some(true),
            Outcome::NoMatch => Some(false),
            Outcome::Undefined(_) => None,
        }
    }

    fn and(self, other: impl FnOnce() -> Outcome) -> Outcome {
        match self {
            Outcome::NoMatch => Outcome::NoMatch,
            Outcome::Match => other(),
            Outcome::Undefined(why) => match other() {
                Outcome::NoMatch => Outcome::NoMatch,
                _ => Outcome::Undefined(why),
            },
        }
    }

    fn or(self, other: impl FnOnce() -> Outcome) -> Outcome {
        match self {
            Outcome::Match => Outcome::Match,
            Outcome::NoMatch => other(),
            Outcome::Undefined(why) => match other() {
                Outcome::Match => Outcome::Match,
                _ => Outcome::Undefined(why),
            },
        }
    }
}

/// One step of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Member(String),
    /// `[n]`
    Index(usize),
}

/// The operators of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A literal on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number as written (its text) and value.
    Number(String, f64),
    /// A string, quoted or bare; `*` wildcards at its ends.
    Text(String),
}

/// A JSON pattern's expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `$.x OP value`
    Compare(Vec<Step>, Op, Literal),
    /// `$.x IS NULL`
    IsNull(Vec<Step>),
    /// `$.x IS TRUE` / `IS FALSE`
    IsBool(Vec<Step>, bool),
    /// `$.x NOT EXISTS`
    NotExists(Vec<Step>),
}

/// A term of a term pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The text to find.
    pub text: String,
    /// `-TERM`
    pub exclude: bool,
    /// `?TERM`
    pub any: bool,
}

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The empty pattern: every event.
    All,
    /// `{ ... }`
    Json(Expr),
    /// Terms.
    Terms(Vec<Term>),
}

/// Parses a filter pattern.
pub fn parse(pattern: &str) -> Result<Pattern, String> {
    let text = pattern.trim();
    if text.is_empty() {
        return Ok(Pattern::All);
    }
    if let Some(inner) = text.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("a JSON pattern must end with `}}`: {pattern}"))?;
        let tokens = tokenize(inner)?;
        let mut parser = Parser { tokens, pos: 0 };
        let expr = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(format!(
                "unexpected {:?} in {pattern}",
                parser.tokens[parser.pos]
            ));
        }
        return Ok(Pattern::Json(expr));
    }
    if text.starts_with('[') || text.starts_with('%') {
        return Err(format!(
            "space-delimited and regex patterns are not supported: {pattern}"
        ));
    }
    parse_terms(text).map(Pattern::Terms)
}

/// Whether `pattern` matches `message` (see [`Outcome`]).
pub fn evaluate(pattern: &Pattern, message: &str) -> Outcome {
    match pattern {
        Pattern::All => Outcome::Match,
        Pattern::Json(expr) => match serde_json::from_str::<Value>(message) {
            Ok(value) => eval(expr, &value),
            // A JSON pattern never matches a message that is not JSON.
            Err(_) => Outcome::NoMatch,
        },
        Pattern::Terms(terms) => {
            let found = |t: &Term| message.contains(&t.text);
            let excluded = terms.iter().filter(|t| t.exclude).any(found);
            let any: Vec<&Term> = terms.iter().filter(|t| t.any).collect();
            let all: Vec<&Term> = terms.iter().filter(|t| !t.any && !t.exclude).collect();
            if !any.is_empty() && !all.is_empty() {
                return Outcome::Undefined("`?TERM` mixed with plain terms".into());
            }
            let included = if any.is_empty() {
                all.iter().all(|t| found(t))
            } else {
                any.iter().any(|t| found(t))
            };
            Outcome::from_bool(included && !excluded)
        }
    }
}

/// Parses `pattern` and evaluates it on `message`.
pub fn matches(pattern: &str, message: &str) -> Result<Outcome, String> {
    Ok(evaluate(&parse(pattern)?, message))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Op(Op),
    Selector(Vec<Step>),
    Word(String),
    Quoted(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Op(Op::Eq));
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let op = match (c, next) {
                    ('<', Some('=')) => Op::Le,
                    ('>', Some('=')) => Op::Ge,
                    ('<', _) => Op::Lt,
                    _ => Op::Gt,
                };
                i += if matches!(op, Op::Le | Op::Ge) { 2 } else { 1 };
                tokens.push(Token::Op(op));
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string in {text}")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = chars
                                .get(i + 1)
                                .ok_or_else(|| format!("dangling `\\` in {text}"))?;
                            value.push(*escaped);
                            i += 2;
                        }
                        Some(other) => {
                            value.push(*other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            '$' => {
                i += 1;
                let mut steps = Vec::new();
                loop {
                    match chars.get(i) {
                        Some('.') => {
                            let start = i + 1;
                            let mut end = start;
                            while chars.get(end).is_some_and(|c| {
                                c.is_ascii_alphanumeric() || *c == '-' || *c == '_'
                            }) {
                                end += 1;
                            }
                            if end == start {
                                return Err(format!("empty member name in a selector of {text}"));
                            }
                            steps.push(Step::Member(chars[start..end].iter().collect()));
                            i = end;
                        }
                        Some('[') => {
                            let start = i + 1;
                            let mut end = start;
                            while chars.get(end).is_some_and(char::is_ascii_digit) {
                                end += 1;
                            }
                            if end == start || chars.get(end) != Some(&']') {
                                return Err(format!("bad array index in a selector of {text}"));
                            }
                            let digits: String = chars[start..end].iter().collect();
                            let index = digits.parse().map_err(|e| format!("{e}"))?;
                            if steps.is_empty() {
                                return Err(format!(
                                    "an array index must follow a property: {text}"
                                ));
                            }
                            steps.push(Step::Index(index));
                            i = end + 1;
                        }
                        _ => break,
                    }
                }
                if steps.is_empty() {
                    return Err(format!("a selector needs at least one member: {text}"));
                }
                tokens.push(Token::Selector(steps));
            }
            _ => {
                let start = i;
                let ends_word = |i: usize| {
                    let Some(&c) = chars.get(i) else {
                        return true;
                    };
                    let next = chars.get(i + 1).copied();
                    c.is_whitespace()
                        || matches!(c, '(' | ')' | '"' | '=' | '<' | '>')
                        || (c == '&' && next == Some('&'))
                        || (c == '|' && next == Some('|'))
                        || (c == '!' && next == Some('='))
                };
                while !ends_word(i) {
                    i += 1;
                }
                if i == start {
                    return Err(format!("unexpected `{c}` in {text}"));
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    other => Err(format!("expected `)`, found {other:?}")),
                }
            }
            Some(Token::Selector(steps)) => self.condition(steps),
            other => Err(format!("expected a selector or `(`, found {other:?}")),
        }
    }

    fn word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(word)) => {
                let word = word.clone();
                self.pos += 1;
                Some(word)
            }
            _ => None,
        }
    }

    fn condition(&mut self, steps: Vec<Step>) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Op(op)) => {
                let literal = match self.next() {
                    Some(Token::Quoted(text)) => Literal::Text(text),
                    Some(Token::Word(word)) => match parse_number(&word) {
                        Some(n) => Literal::Number(word, n),
                        None if word.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '-' | '_')
                        }) =>
                        {
                            Literal::Text(word)
                        }
                        // "Strings that have unicode and other characters such as '@', '$',
                        // '\' etc. must be enclosed in double quotes."
                        None => return Err(format!("`{word}` must be quoted")),
                    },
                    other => return Err(format!("expected a value, found {other:?}")),
                };
                if !matches!(op, Op::Eq | Op::Ne) && !matches!(literal, Literal::Number(..)) {
                    return Err(format!("`{op:?}` needs a number, found {literal:?}"));
                }
                Ok(Expr::Compare(steps, op, literal))
            }
            Some(Token::Word(word)) if word == "IS" => match self.word().as_deref() {
                Some("NULL") => Ok(Expr::IsNull(steps)),
                Some("TRUE") => Ok(Expr::IsBool(steps, true)),
                Some("FALSE") => Ok(Expr::IsBool(steps, false)),
                other => Err(format!(
                    "expected NULL, TRUE or FALSE after IS, found {other:?}"
                )),
            },
            Some(Token::Word(word)) if word == "NOT" => match self.word().as_deref() {
                Some("EXISTS") => Ok(Expr::NotExists(steps)),
                other => Err(format!("expected EXISTS after NOT, found {other:?}")),
            },
            other => Err(format!("expected an operator, found {other:?}")),
        }
    }
}

/// A number as the guide defines it: an optional sign, digits, an optional decimal part, an
/// optional `e` exponent with an optional sign.
fn parse_number(word: &str) -> Option<f64> {
    let b = word.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    (i == b.len()).then(|| word.parse().ok()).flatten()
}

fn select<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut current = value;
    for step in steps {
        current = match (step, current) {
            (Step::Member(name), Value::Object(map)) => map.get(name)?,
            (Step::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

/// String equality with the guide's wildcards: `*` at the start and/or the end.
fn text_matches(value: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (leading, rest) = match pattern.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (trailing, core) = match rest.strip_suffix('*') {
        Some(core) => (true, core),
        None => (false, rest),
    };
    match (leading, trailing) {
        (true, true) => value.contains(core),
        (true, false) => value.ends_with(core),
        (false, true) => value.starts_with(core),
        (false, false) => value == core,
    }
}

fn eval(expr: &Expr, root: &Value) -> Outcome {
    match expr {
        Expr::Or(a, b) => eval(a, root).or(|| eval(b, root)),
        Expr::And(a, b) => eval(a, root).and(|| eval(b, root)),
        Expr::IsNull(steps) => Outcome::from_bool(select(root, steps).is_some_and(Value::is_null)),
        Expr::IsBool(steps, want) => {
            Outcome::from_bool(select(root, steps).and_then(Value::as_bool) == Some(*want))
        }
        Expr::NotExists(steps) => Outcome::from_bool(select(root, steps).is_none()),
        Expr::Compare(steps, op, literal) => compare(select(root, steps), *op, literal),
    }
}

fn compare(value: Option<&Value>, op: Op, literal: &Literal) -> Outcome {
    let undefined = |why: &str| Outcome::Undefined(format!("{why} ({op:?} {literal:?})"));
    let value = match value {
        Some(value) => value,
        None if op == Op::Ne => return undefined("`!=` on a member that is absent"),
        None => return Outcome::NoMatch,
    };
    match value {
        Value::Object(_) | Value::Array(_) => Outcome::NoMatch,
        Value::Null => undefined("a comparison with a null member"),
        Value::Bool(_) => undefined("a comparison with a boolean member"),
        Value::String(text) => match (op, literal) {
            (Op::Eq, Literal::Text(p)) => Outcome::from_bool(text_matches(text, p)),
            (Op::Ne, Literal::Text(p)) => Outcome::from_bool(!text_matches(text, p)),
            // The guide's `recipientAccountId is 123456789012`: a bare number against a string
            // member compares the text.
            (Op::Eq, Literal::Number(word, _)) => Outcome::from_bool(text == word),
            (Op::Ne, Literal::Number(word, _)) => Outcome::from_bool(text != word),
            _ => undefined("an ordering comparison with a string member"),
        },
        Value::Number(number) => {
            let Some(n) = number.as_f64() else {
                return undefined("a number out of range");
            };
            match literal {
                Literal::Text(p) if p == "*" && op == Op::Eq => Outcome::Match,
                Literal::Text(_) => undefined("a string against a number member"),
                Literal::Number(_, m) => Outcome::from_bool(match op {
                    Op::Eq => n == *m,
                    Op::Ne => n != *m,
                    Op::Lt => n < *m,
                    Op::Gt => n > *m,
                    Op::Le => n <= *m,
                    Op::Ge => n >= *m,
                }),
            }
        }
    }
}

fn parse_terms(text: &str) -> Result<Vec<Term>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut terms = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut exclude = false;
        let mut any = false;
        if chars[i] == '-' {
            exclude = true;
            i += 1;
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
        } else if chars[i] == '?' {
            any = true;
            i += 1;
        }
        let text = if chars.get(i) == Some(&'"') {
            let start = i + 1;
            let end = start
                + chars[start..]
                    .iter()
                    .position(|c| *c == '"')
                    .ok_or_else(|| format!("unterminated phrase in {text}"))?;
            i = end + 1;
            chars[start..end].iter().collect::<String>()
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if !word.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!(
                    "a term with characters other than letters, digits and `_` must be quoted: {word}"
                ));
            }
            word
        };
        if text.is_empty() {
            return Err(format!("empty term in {text}"));
        }
        terms.push(Term { text, exclude, any });
    }
    Ok(terms)
}

/// Where a documented pattern was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The pattern, as a reader would type it.
    pub pattern: String,
    /// `file:line`.
    pub at: String,
}

/// Every filter pattern in a Markdown document: `--filter-pattern '…'` arguments, and inline
/// code spans that are JSON patterns (`` `{ $.… }` ``; `\|` in a table row is a `|`).
pub fn patterns_in_markdown(file: &str, text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let mut rest = line;
        while let Some(start) = rest.find("--filter-pattern ") {
            let after = &rest[start + "--filter-pattern ".len()..];
            let (pattern, tail) = shell_word(after);
            found.push(Found {
                pattern,
                at: at.clone(),
            });
            rest = tail;
        }
        let mut spans = line.split('`');
        // Odd pieces are inside code spans.
        spans.next();
        for (i, span) in spans.enumerate() {
            // In a table row, `\|` is how a `|` is written inside a code span.
            let span = span.replace("\\|", "|");
            if i % 2 == 0 && is_json_pattern(&span) {
                found.push(Found {
                    pattern: span,
                    at: at.clone(),
                });
            }
        }
    }
    found
}

/// Every `FilterPattern:` of a CloudFormation template (YAML).
pub fn patterns_in_template(file: &str, text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("FilterPattern:") {
            continue;
        }
        let docs = yaml_rust2::YamlLoader::load_from_str(trimmed)
            .unwrap_or_else(|e| panic!("{file}:{}: {e}", n + 1));
        let pattern = docs[0]["FilterPattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}:{}: FilterPattern is not a one-line string", n + 1))
            .to_owned();
        found.push(Found {
            pattern,
            at: format!("{file}:{}", n + 1),
        });
    }
    found
}

fn is_json_pattern(span: &str) -> bool {
    let trimmed = span.trim();
    trimmed.ends_with('}')
        && trimmed
            .strip_prefix('{')
            .is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('$' | '(')))
}

/// One shell word at the start of `text` (single quotes, double quotes or bare), and the rest.
fn shell_word(text: &str) -> (String, &str) {
    let text = text.trim_start();
    match text.chars().next() {
        Some(q @ ('\'' | '"')) => match text[1..].find(q) {
            Some(end) => (text[1..=end].to_owned(), &text[end + 2..]),
            None => (text[1..].to_owned(), ""),
        },
        _ => {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            (text[..end].to_owned(), &text[end..])
        }
    }
}
