//! Condition text with positions, and Falco's textual list substitution on it: a list name in
//! a condition is replaced by its items before the condition is parsed, and every byte keeps
//! the position it came from in the rules file.

/// Quotes a list item or exception value that contains a space (as Falco's loader does).
pub(crate) fn quote_item(item: &str) -> String {
    if item.contains(' ') && !item.starts_with('"') && !item.starts_with('\'') {
        format!("\"{item}\"")
    } else {
        item.to_string()
    }
}

/// A text with, for each byte, the location it came from (an opaque `u64` chosen by the
/// caller), so positions survive textual rewriting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosText {
    /// The text.
    pub text: String,
    /// One location per byte of `text`, plus one for the end.
    pub locs: Vec<u64>,
}

impl PosText {
    /// A text whose every byte maps to the same location.
    pub fn synthetic(text: &str, loc: u64) -> PosText {
        PosText {
            text: text.to_string(),
            locs: vec![loc; text.len() + 1],
        }
    }

    /// A text with explicit locations (`locs.len()` must be `text.len() + 1`; it is fixed up
    /// otherwise).
    pub(crate) fn with_locs(text: String, mut locs: Vec<u64>) -> PosText {
        let last = locs.last().copied().unwrap_or(0);
        locs.resize(text.len() + 1, last);
        PosText { text, locs }
    }

    /// Appends another text.
    pub(crate) fn push(&mut self, other: &PosText) {
        self.locs.pop();
        self.text.push_str(&other.text);
        self.locs.extend_from_slice(&other.locs);
    }

    /// Appends synthetic text mapped to `loc`.
    pub(crate) fn push_str(&mut self, s: &str, loc: u64) {
        let end = self.locs.pop().unwrap_or(loc);
        self.text.push_str(s);
        self.locs.extend(std::iter::repeat_n(loc, s.len()));
        self.locs.push(end);
    }

    /// Appends `more` after a space mapped to `at`: how an append joins a condition or an
    /// output to the text before it.
    pub(crate) fn append_clause(&mut self, more: &PosText, at: u64) {
        self.push_str(" ", at);
        self.push(more);
    }

    /// The location of a byte offset.
    pub(crate) fn loc(&self, offset: usize) -> u64 {
        self.locs
            .get(offset)
            .or(self.locs.last())
            .copied()
            .unwrap_or(0)
    }
}

/// Replaces every delimited occurrence of `name` by the list items, exactly as Falco's
/// `resolve_list` does before a condition is parsed. Returns whether the name occurred.
pub fn substitute_list(cond: &mut PosText, name: &str, items: &[String]) -> bool {
    const BLANKS: &[u8] = b" \t\n\r";
    const DELIMS: &[u8] = b" \t\n\r(),=";
    if name.is_empty() {
        return false;
    }
    let mut used = false;
    let mut start_search = 0usize;
    loop {
        while start_search < cond.text.len() && !cond.text.is_char_boundary(start_search) {
            start_search += 1;
        }
        let Some(found) = cond.text.get(start_search..).and_then(|t| t.find(name)) else {
            break;
        };
        let mut start = start_search + found;
        let mut end = start + name.len();
        let b = cond.text.as_bytes();
        let left_ok = start == 0 || DELIMS.contains(&b[start - 1]);
        let right_ok = end >= b.len() || DELIMS.contains(&b[end]);
        if !(left_ok && right_ok) {
            start_search = start + 1;
            continue;
        }
        let loc = cond.loc(start);
        while start > 0 && BLANKS.contains(&b[start - 1]) {
            start -= 1;
        }
        while end < b.len() && BLANKS.contains(&b[end]) {
            end += 1;
        }
        let sub = items
            .iter()
            .map(|i| quote_item(i))
            .collect::<Vec<_>>()
            .join(", ");
        if sub.is_empty() {
            if start > 0 && b[start - 1] == b',' {
                start -= 1;
            } else if end < b.len() && b[end] == b',' {
                end += 1;
            }
        }
        let mut out = PosText {
            text: String::new(),
            locs: Vec::new(),
        };
        out.text.push_str(&cond.text[..start]);
        out.locs.extend_from_slice(&cond.locs[..start]);
        if start > 0 {
            out.text.push(' ');
            out.locs.push(loc);
        }
        out.text.push_str(&sub);
        out.text.push(' ');
        out.locs.extend(std::iter::repeat_n(loc, sub.len() + 1));
        let next = out.text.len();
        out.text.push_str(&cond.text[end..]);
        out.locs.extend_from_slice(&cond.locs[end..]);
        *cond = out;
        used = true;
        // Falco resumes the search one past the end of the substitution.
        start_search = next;
        if start_search >= cond.text.len() {
            break;
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_golden() {
        let mut t = PosText::synthetic(
            "proc.name in (shell_binaries, \"my tool\") and not proc.pname in (empty_list)",
            0,
        );
        substitute_list(&mut t, "shell_binaries", &["sh".into(), "bash".into()]);
        substitute_list(&mut t, "empty_list", &[]);
        assert_eq!(
            t.text,
            "proc.name in ( sh, bash , \"my tool\") and not proc.pname in (  )"
        );
        assert_eq!(t.locs.len(), t.text.len() + 1);
    }
}
