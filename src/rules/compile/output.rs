//! Output templates: `%field` tokens (with widths and transformers) compiled once, rendered
//! per match into the text and the typed `output_fields`.

use super::{Issue, resolve_operand};
use crate::event::Event;
use crate::rules::eval::Lhs;
use crate::rules::fields::{self, FieldRef, FieldType, Val, apply_transformers};
use crate::rules::syntax::diag::Loc;
use crate::rules::syntax::text::PosText;
use crate::rules::syntax::{self, Expr};

/// One piece of an output template.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Literal text.
    Text(String),
    /// A field token.
    Field {
        /// The token as written (the `output_fields` key), `None` for transformer tokens.
        key: Option<String>,
        /// Inner field key for transformer tokens (Falco reports the inner field).
        inner_key: Option<String>,
        /// What to extract.
        lhs: Lhs,
        /// Fixed width, if given.
        width: Option<usize>,
    },
    /// A Falco field TaskSentry does not provide: always `<NA>`/null.
    Unprovided {
        /// The token as written.
        key: String,
        /// Fixed width, if given.
        width: Option<usize>,
    },
}

/// A compiled output template.
#[derive(Debug, Default)]
pub(crate) struct OutputTemplate {
    /// The pieces, in order.
    pub(crate) segments: Vec<Segment>,
}

fn read_field_name(b: &[u8], mut i: usize) -> usize {
    loop {
        if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            return i;
        }
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
            continue;
        }
        return i;
    }
}

/// Finds the end of a token starting at `i` (a field with optional `[arg]`, or a transformer
/// call), returning `None` when nothing valid starts there.
fn token_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > 32 {
        return None;
    }
    let name_end = read_field_name(b, i);
    if name_end == i {
        return None;
    }
    let name = std::str::from_utf8(&b[i..name_end]).ok()?;
    if !name.contains('.') {
        if b.get(name_end) != Some(&b'(') {
            return None;
        }
        let inner = token_end(b, name_end + 1, depth + 1)?;
        return if b.get(inner) == Some(&b')') {
            Some(inner + 1)
        } else {
            None
        };
    }
    if b.get(name_end) == Some(&b'[')
        && let Some(close) = b[name_end..].iter().position(|c| *c == b']')
    {
        return Some(name_end + close + 1);
    }
    Some(name_end)
}

/// Compiles an output template. `warnings` collects (loc, message) for unprovided fields.
pub(crate) fn compile_output(
    text: &PosText,
    warnings: &mut Vec<(Loc, String)>,
) -> Result<OutputTemplate, Issue> {
    let s = text.text.as_str();
    let b = s.as_bytes();
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = s[i..].find('%').map_or(s.len(), |k| i + k);
            literal.push_str(&s[i..next]);
            i = next;
            continue;
        }
        let pct = i;
        let mut j = i + 1;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let width = if j > i + 1 {
            s[i + 1..j].parse::<usize>().ok()
        } else {
            None
        };
        let Some(end) = token_end(b, j, 0) else {
            return Err(Issue::Error(
                text.loc(pct),
                format!("invalid formatting token '{}'", preview(&s[pct..])),
            ));
        };
        let token = &s[j..end];
        if token == "container.info" {
            warnings.push((
                text.loc(pct),
                "%container.info is deprecated and is replaced by an empty string".into(),
            ));
            i = end;
            continue;
        }
        // Parse the token with the condition parser's operand rules.
        let probe = format!("{token} exists");
        let parsed = syntax::parse(&probe);
        let operand = match parsed {
            Ok(Expr::Check { lhs, .. }) => lhs,
            _ => {
                return Err(Issue::Error(
                    text.loc(pct),
                    format!("invalid formatting token '%{token}'"),
                ));
            }
        };
        let sub = PosText::synthetic(&probe, text.loc(j));
        if !literal.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut literal)));
        }
        match resolve_operand(&operand, &sub) {
            Ok(lhs) => {
                let (key, inner_key) = if operand.transformers.is_empty() {
                    (Some(token.to_string()), None)
                } else {
                    let inner = match &operand.arg {
                        Some(a) => format!("{}[{a}]", operand.field),
                        None => operand.field.clone(),
                    };
                    (None, Some(inner))
                };
                segments.push(Segment::Field {
                    key,
                    inner_key,
                    lhs,
                    width,
                });
            }
            Err(Issue::Field(_, name, msg)) if fields::is_unprovided(&name) => {
                warnings.push((text.loc(j), format!("{msg}; it renders as <NA>")));
                segments.push(Segment::Unprovided {
                    key: token.to_string(),
                    width,
                });
            }
            Err(Issue::Field(_, name, msg)) => return Err(Issue::Field(text.loc(j), name, msg)),
            Err(Issue::Error(_, msg)) => return Err(Issue::Error(text.loc(j), msg)),
        }
        i = end;
    }
    if !literal.is_empty() {
        segments.push(Segment::Text(literal));
    }
    Ok(OutputTemplate { segments })
}

fn preview(s: &str) -> String {
    s.chars()
        .take_while(|c| !c.is_whitespace())
        .take(30)
        .collect()
}

fn pad(text: &mut String, value: &str, width: Option<usize>) {
    match width {
        None => text.push_str(value),
        Some(w) => {
            let n = value.chars().count();
            if n >= w {
                text.extend(value.chars().take(w));
            } else {
                text.push_str(value);
                text.extend(std::iter::repeat_n(' ', w - n));
            }
        }
    }
}

impl OutputTemplate {
    /// Renders the template: the text and the typed output fields (plus `evt.time`).
    pub(crate) fn render(
        &self,
        ev: &Event,
    ) -> (String, serde_json::Map<String, serde_json::Value>) {
        let mut text = String::new();
        let mut map = serde_json::Map::new();
        map.insert(
            "evt.time".into(),
            serde_json::Value::from(ev.evt.time.as_nanos()),
        );
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => text.push_str(t),
                Segment::Unprovided { key, width } => {
                    pad(&mut text, "<NA>", *width);
                    map.insert(key.clone(), serde_json::Value::Null);
                }
                Segment::Field {
                    key,
                    inner_key,
                    lhs,
                    width,
                } => {
                    let raw = fields::extract_for_output(&lhs.field, ev);
                    let value = match raw {
                        Some(v) if !lhs.transformers.is_empty() => {
                            if let Some(k) = inner_key {
                                map.insert(k.clone(), v.to_json());
                            }
                            apply_transformers(v, &lhs.transformers)
                        }
                        Some(v) => Some(v),
                        None => {
                            if let Some(k) = inner_key {
                                map.insert(k.clone(), serde_json::Value::Null);
                            }
                            None
                        }
                    };
                    let rendered = match &value {
                        Some(v) => render_text(&lhs.field, v),
                        None => "<NA>".to_string(),
                    };
                    pad(&mut text, &rendered, *width);
                    if let Some(k) = key {
                        map.insert(
                            k.clone(),
                            value.map_or(serde_json::Value::Null, |v| v.to_json()),
                        );
                    }
                }
            }
        }
        (text.trim().to_string(), map)
    }
}

fn render_text(field: &FieldRef, v: &Val<'_>) -> String {
    match (field.ty, v) {
        (FieldType::AbsTime, Val::Int(n)) => {
            crate::event::Timestamp(u64::try_from(*n).unwrap_or(0)).to_string()
        }
        _ => v.to_text(),
    }
}
