//! Transformers (`tolower(...)`, `b64(...)`, ...): what each does to an extracted value, for
//! conditions and outputs alike.

use std::borrow::Cow;

use super::extract::{Val, basename};
use crate::rules::syntax::ast::Transformer;

/// Applies transformers to a value; `None` when one fails (e.g. invalid base64).
pub(crate) fn apply_transformers<'a>(v: Val<'a>, transformers: &[Transformer]) -> Option<Val<'a>> {
    let mut v = v;
    for t in transformers {
        v = match (t, v) {
            (Transformer::ToLower, Val::Str(s)) => Val::Str(Cow::Owned(s.to_ascii_lowercase())),
            (Transformer::ToUpper, Val::Str(s)) => Val::Str(Cow::Owned(s.to_ascii_uppercase())),
            (Transformer::Basename, Val::Str(s)) => Val::Str(Cow::Owned(basename(&s).to_string())),
            (Transformer::B64, Val::Str(s)) => Val::Str(Cow::Owned(b64_decode(&s)?)),
            (Transformer::Len, Val::Str(s)) => {
                Val::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX))
            }
            _ => return None,
        };
    }
    Some(v)
}

/// Decodes standard base64 (with or without padding); `None` when invalid.
pub(crate) fn b64_decode(text: &str) -> Option<String> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in trimmed.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(b64_decode("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(b64_decode("aGVsbG8").as_deref(), Some("hello"));
        assert_eq!(b64_decode("a$"), None);
    }
}
