//! YAML reading with positions: a small node tree built from `yaml-rust2`'s marked event
//! stream, and the mapping from a byte offset inside a scalar's value back to the byte offset
//! in the file (so condition errors point into the file).
//!
//! `yaml-rust2` is used because it is maintained, pure Rust, and reports a marker (byte index,
//! line, column) for every event and every scan error, which is all the loader needs.

use yaml_rust2::parser::{Event as YEvent, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Maximum number of nodes built from one file (aliases are expanded by copy; this bounds the
/// "billion laughs" blow-up).
const MAX_NODES: usize = 2_000_000;

/// The style of a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Plain.
    Plain,
    /// `'...'`.
    Single,
    /// `"..."`.
    Double,
    /// `|`.
    Literal,
    /// `>`.
    Folded,
}

/// A YAML node with the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// What the node is.
    pub(crate) kind: Kind,
    /// Byte offset of the node's first character in the file.
    pub(crate) offset: usize,
}

/// Node kinds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A scalar (null is a plain `~`, `null` or empty scalar).
    Scalar(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// Whether the node is a YAML null.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, Style::Plain) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    /// Looks a key up in a mapping (first occurrence).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the node kind for messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(..) if self.is_null() => "null",
            Kind::Scalar(..) => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone)]
pub(crate) struct YamlError {
    /// Byte offset.
    pub(crate) offset: usize,
    /// Message from the scanner.
    pub(crate) message: String,
}

enum Frame {
    Seq(Vec<Node>, usize, usize),
    Map(Vec<(Node, Node)>, Option<Node>, usize, usize),
}

struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Option<Node>>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    too_big: bool,
    text_len: usize,
    doc_start: usize,
    chars: CharToByte,
}

fn count(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(..) => 1,
        Kind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}

impl Builder {
    fn push_node(&mut self, node: Node) {
        self.nodes += 1;
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _, _)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            None => self.docs.push(Some(node)),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: YEvent, mark: Marker) {
        if self.too_big {
            return;
        }
        let offset = self.chars.get(mark.index()).min(self.text_len);
        match ev {
            YEvent::Scalar(value, style, anchor, _) => {
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted => Style::Single,
                    TScalarStyle::DoubleQuoted => Style::Double,
                    TScalarStyle::Literal => Style::Literal,
                    TScalarStyle::Folded => Style::Folded,
                };
                let node = Node {
                    kind: Kind::Scalar(value, style),
                    offset,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_node(node);
            }
            YEvent::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(Vec::new(), anchor, offset))
            }
            YEvent::MappingStart(anchor, _) => {
                self.stack
                    .push(Frame::Map(Vec::new(), None, anchor, offset))
            }
            YEvent::SequenceEnd | YEvent::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(items, anchor, off)) => (
                        Node {
                            kind: Kind::Seq(items),
                            offset: off,
                        },
                        anchor,
                    ),
                    Some(Frame::Map(entries, _, anchor, off)) => {
                        // Block mappings are marked after their first key: use the key.
                        let off = entries.first().map_or(off, |(k, _)| k.offset.min(off));
                        (
                            Node {
                                kind: Kind::Map(entries),
                                offset: off,
                            },
                            anchor,
                        )
                    }
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_node(node);
            }
            YEvent::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => {
                        let mut n = n.clone();
                        n.offset = offset;
                        n
                    }
                    None => Node {
                        kind: Kind::Scalar(String::new(), Style::Plain),
                        offset,
                    },
                };
                self.nodes += count(&node);
                if self.nodes > MAX_NODES {
                    self.too_big = true;
                    return;
                }
                self.push_node(node);
            }
            // An empty document produces no node; record it as null.
            YEvent::DocumentEnd if self.stack.is_empty() && self.docs.len() == self.doc_start => {
                self.docs.push(None);
            }
            YEvent::DocumentStart => {
                self.doc_start = self.docs.len();
            }
            _ => {}
        }
        if self.nodes > MAX_NODES {
            self.too_big = true;
        }
    }
}

/// Parses a YAML stream into its documents (`None` for an empty document).
///
/// `yaml-rust2` rejects a flow collection whose closing bracket sits at the indentation of the
/// mapping key that holds it (`items: [` ... `  ]`, common in Falco's files, accepted by
/// libyaml and yaml-cpp). Indentation inside a flow collection carries no meaning, so when the
/// scanner reports "invalid indentation" exactly at a `]` or `}` that starts its line, the
/// bracket is shifted right by one space in a working copy and the parse is retried; node
/// offsets are mapped back to the original text.
pub(crate) fn parse(text: &str) -> Result<Vec<Option<Node>>, YamlError> {
    let mut work = text.to_string();
    // Insertion points, in working-copy coordinates, ascending.
    let mut inserts: Vec<usize> = Vec::new();
    let to_orig =
        |inserts: &[usize], off: usize| off - inserts.iter().filter(|&&i| i < off).count();
    loop {
        match parse_once(&work) {
            Ok(mut docs) => {
                if !inserts.is_empty() {
                    for doc in docs.iter_mut().flatten() {
                        remap(doc, &|o| to_orig(&inserts, o));
                    }
                }
                return Ok(docs);
            }
            Err(e) => {
                let at = e.offset;
                let fixable = e.message == "invalid indentation"
                    && inserts.len() < 10_000
                    && matches!(work.as_bytes().get(at), Some(b']' | b'}'))
                    && {
                        let line_start = work[..at].rfind('\n').map_or(0, |i| i + 1);
                        work[line_start..at].bytes().all(|b| b == b' ')
                    };
                if !fixable {
                    let offset = to_orig(&inserts, at).min(text.len());
                    return Err(refine_tab_error(
                        text,
                        YamlError {
                            offset,
                            message: e.message,
                        },
                    ));
                }
                work.insert(at, ' ');
                for i in inserts.iter_mut() {
                    if *i >= at {
                        *i += 1;
                    }
                }
                inserts.push(at);
                inserts.sort_unstable();
            }
        }
    }
}

/// The scanner reports a tab used for indentation at the start of the token it was scanning;
/// point at the tab itself instead, with a clearer message.
fn refine_tab_error(text: &str, e: YamlError) -> YamlError {
    if !e.message.contains("tab") {
        return e;
    }
    let mut from = e.offset.min(text.len());
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut line_start = text[..from].rfind('\n').map_or(0, |i| i + 1);
    for line in text[line_start..].split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(tab) = line[..indent].find('\t') {
            return YamlError {
                offset: line_start + tab,
                message: "a tab character is used for indentation; YAML allows only spaces".into(),
            };
        }
        line_start += line.len();
    }
    e
}

fn remap(node: &mut Node, f: &dyn Fn(usize) -> usize) {
    node.offset = f(node.offset);
    match &mut node.kind {
        Kind::Scalar(..) => {}
        Kind::Seq(items) => items.iter_mut().for_each(|n| remap(n, f)),
        Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            remap(k, f);
            remap(v, f);
        }),
    }
}

/// Maps the scanner's character indices to byte offsets.
struct CharToByte(Option<Vec<usize>>);

impl CharToByte {
    fn new(text: &str) -> CharToByte {
        if text.is_ascii() {
            return CharToByte(None);
        }
        let mut table: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        table.push(text.len());
        CharToByte(Some(table))
    }

    fn get(&self, index: usize) -> usize {
        match &self.0 {
            None => index,
            Some(t) => t
                .get(index)
                .copied()
                .unwrap_or_else(|| t.last().copied().unwrap_or(0)),
        }
    }
}

fn parse_once(text: &str) -> Result<Vec<Option<Node>>, YamlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: std::collections::HashMap::new(),
        nodes: 0,
        too_big: false,
        text_len: text.len(),
        doc_start: 0,
        chars: CharToByte::new(text),
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(YamlError {
            offset: e.marker().index().min(text.len()),
            message: e.info().to_string(),
        });
    }
    if builder.too_big {
        return Err(YamlError {
            offset: 0,
            message: "document too large (alias expansion limit reached)".into(),
        });
    }
    Ok(builder.docs)
}

/// Maps each byte of a scalar's value to a byte offset in the file. The mapping is exact for
/// plain, single- and double-quoted scalars and for block scalars; where YAML folds a line
/// break into a space (multi-line plain/quoted scalars and `>` blocks) the space maps to the
/// line break, and indentation of more-indented lines in `>` blocks may be matched
/// approximately (within the same line).
pub(crate) fn scalar_offsets(
    file: &str,
    node_offset: usize,
    style: Style,
    value: &str,
) -> Vec<usize> {
    let raw = file.as_bytes();
    let mut p = node_offset.min(raw.len());
    match style {
        Style::Single | Style::Double => p += 1,
        Style::Literal | Style::Folded => {
            // The scanner marks block scalars at their content; if the mark is on the header
            // (`|`, `>-`, `|2`, comments), skip that line.
            if matches!(raw.get(p), Some(b'|' | b'>')) {
                while p < raw.len() && raw[p] != b'\n' {
                    p += 1;
                }
                p += 1;
            }
        }
        Style::Plain => {}
    }
    let v = value.as_bytes();
    let mut out = Vec::with_capacity(v.len() + 1);
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        let char_len = utf8_len(c);
        loop {
            if p >= raw.len() {
                break;
            }
            let r = raw[p];
            if style == Style::Single && c == b'\'' && r == b'\'' && raw.get(p + 1) == Some(&b'\'')
            {
                out.push(p);
                p += 2;
                break;
            }
            if style == Style::Double && r == b'\\' {
                if raw.get(p + 1) == Some(&b'\n') || raw.get(p + 1) == Some(&b'\r') {
                    p += 2;
                    continue;
                }
                // One escape yields one character of the value.
                out.push(p);
                let esc_len = match raw.get(p + 1) {
                    Some(b'x') => 4,
                    Some(b'u') => 6,
                    Some(b'U') => 10,
                    _ => 2,
                };
                for _ in 1..char_len {
                    out.push(p);
                }
                p += esc_len;
                i += char_len;
                break;
            }
            if r == c {
                for k in 0..char_len {
                    out.push(p + k);
                }
                p += char_len;
                i += char_len;
                break;
            }
            if c == b' ' && (r == b'\n' || r == b'\r') {
                // A folded line break.
                out.push(p);
                p += 1;
                while p < raw.len() && matches!(raw[p], b' ' | b'\t' | b'\n' | b'\r') {
                    p += 1;
                }
                i += 1;
                break;
            }
            if matches!(r, b' ' | b'\t' | b'\n' | b'\r') {
                p += 1;
                continue;
            }
            // Out of sync (should not happen): map the rest to the current position.
            p = raw.len();
        }
        if p >= raw.len() && out.len() <= i {
            while out.len() < v.len() {
                out.push(raw.len().saturating_sub(1).max(node_offset.min(raw.len())));
            }
            break;
        }
        // Single-quote doubling consumed one value byte.
        if out.len() > i {
            i = out.len();
        }
    }
    out.truncate(v.len());
    while out.len() < v.len() {
        out.push(p.min(raw.len()));
    }
    out.push(p.min(raw.len()));
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Option<Node>> {
        parse(text).expect("yaml")
    }

    #[test]
    fn markers_are_byte_offsets() {
        let text = "- é: x\n- rule: \"a b\"\n";
        let d = docs(text);
        let Some(Some(Node {
            kind: Kind::Seq(items),
            ..
        })) = d.first()
        else {
            panic!("seq")
        };
        let Kind::Map(entries) = &items[1].kind else {
            panic!("map")
        };
        let value = &entries[0].1;
        assert_eq!(&text[value.offset..value.offset + 1], "\"");
    }

    #[test]
    fn offsets_for_each_style() {
        let text = "a: proc.name = x\nb: 'it''s x'\nc: \"a\\x41 b\"\nd: |\n  first\n  second\ne: >\n  one\n  two\n";
        let d = docs(text);
        let Some(Some(root)) = d.first() else {
            panic!()
        };
        for (key, probe) in [
            ("a", "x"),
            ("b", "x"),
            ("c", "b"),
            ("d", "second"),
            ("e", "two"),
        ] {
            let n = root.get(key).expect(key);
            let Kind::Scalar(v, style) = &n.kind else {
                panic!()
            };
            let offs = scalar_offsets(text, n.offset, *style, v);
            let at = v.rfind(probe).expect(probe);
            let file_at = offs[at];
            assert_eq!(&text[file_at..file_at + probe.len()], probe, "{key}");
        }
    }
}
