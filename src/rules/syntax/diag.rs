//! Diagnostics: errors and warnings with a file position and a caret excerpt.
//!
//! Positions travel through the loader as a packed `u64` ([`Loc`]: file index and byte offset);
//! they are turned into 1-based line and column (in characters) only when a diagnostic is
//! created, from the file text the caller passed in.

use std::fmt;

/// A packed source location: file index in the high 32 bits, byte offset in the low 32.
pub(crate) type Loc = u64;

/// Packs a location.
pub(crate) fn loc(file: usize, offset: usize) -> Loc {
    ((file as u64) << 32) | (offset.min(u32::MAX as usize) as u64)
}

/// Unpacks a location.
pub(crate) fn unpack(l: Loc) -> (usize, usize) {
    ((l >> 32) as usize, (l & 0xffff_ffff) as usize)
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The load fails.
    Error,
    /// Worth knowing; the load goes on.
    Warning,
}

/// One error or warning, with its position in a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name as given in [`RuleSource::name`](crate::rules::RuleSource::name).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The rule, macro or list concerned (`rule 'x'`, `macro 'y'`, `list 'z'`).
    pub item: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The source line the position is on (without its line break).
    pub excerpt: String,
}

impl Diagnostic {
    /// Builds a diagnostic for a byte offset of `text`.
    pub(crate) fn at(
        severity: Severity,
        file: &str,
        text: &str,
        offset: usize,
        item: Option<String>,
        message: String,
    ) -> Diagnostic {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line = text[..line_start].bytes().filter(|b| *b == b'\n').count() + 1;
        let column = text[line_start..offset].chars().count() + 1;
        Diagnostic {
            severity,
            file: file.to_string(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            item,
            message,
            excerpt: text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
        }
    }

    /// `file:line:col`.
    pub(crate) fn position(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {sev}: ", self.file, self.line, self.column)?;
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        writeln!(f, "{}", self.message)?;
        // Tabs in the excerpt are shown as single spaces so that the caret lines up.
        let shown: String = self
            .excerpt
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        writeln!(f, "  {shown}")?;
        let pad = (self.column as usize).saturating_sub(1);
        write!(f, "  {}^", " ".repeat(pad))
    }
}
