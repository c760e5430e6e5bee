//! CloudFormation templates in YAML, read into the same positioned tree as JSON, with
//! `yaml-rust2`'s marked events (the YAML parser the crate already links). The short forms of
//! intrinsic functions become their JSON forms: `!Ref X` is `{"Ref": "X"}`, `!Sub s` is
//! `{"Fn::Sub": s}`, `!GetAtt A.B` is `{"Fn::GetAtt": "A.B"}`.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::tree::{MAX_DEPTH, Member, Node, Pos, SyntaxError, Value};

/// Reads the first document of a YAML text. Aliases are refused (templates do not use them,
/// and expanding them is the "billion laughs" risk).
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let end = end_of(text);
    let mut builder = Builder {
        end,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    let loaded = parser.load(&mut builder, false);
    // The builder's own error (depth, alias) comes first: the parser may fail later on the
    // same input (an unclosed `[[[...`), which would hide the reason.
    if let Some(error) = builder.error {
        return Err(SyntaxError {
            pos: within(end, error.pos),
            ..error
        });
    }
    if let Err(error) = loaded {
        return Err(SyntaxError {
            pos: within(end, pos(error.marker())),
            message: error.info().to_owned(),
        });
    }
    builder.root.ok_or(SyntaxError {
        pos: Pos::START,
        message: "empty YAML document".into(),
    })
}

/// The end of a text: its last line (as YAML counts lines: `\n`, `\r\n` or a lone `\r`) and
/// the column after its last character.
fn end_of(text: &str) -> Pos {
    let bytes = text.as_bytes();
    let mut line = 1u32;
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            line = line.saturating_add(1);
            line_start = i + 1;
        }
    }
    let last = text.get(line_start..).unwrap_or_default();
    Pos {
        line,
        column: u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
    }
}

/// The scanner marks what it finds at the end of a text (an error, an empty value) on the line
/// after the last one (it reads an implicit line break there): such a position becomes the end.
fn within(end: Pos, at: Pos) -> Pos {
    if at.line > end.line { end } else { at }
}

fn pos(marker: &Marker) -> Pos {
    Pos {
        line: u32::try_from(marker.line()).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        tag: Option<Tag>,
    },
    Map {
        members: Vec<Member>,
        key: Option<(String, Pos)>,
        pos: Pos,
        tag: Option<Tag>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    end: Pos,
}

impl Builder {
    fn fail(&mut self, at: Pos, message: &str) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos: at,
                message: message.to_owned(),
            });
        }
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { members, key, .. }) => match key.take() {
                Some((key, key_pos)) => members.push(Member {
                    key,
                    key_pos,
                    value: node,
                }),
                None => match node.value {
                    Value::String(text) => *key = Some((text, node.pos)),
                    Value::Number(text) => *key = Some((text, node.pos)),
                    Value::Bool(b) => *key = Some((b.to_string(), node.pos)),
                    Value::Null => *key = Some(("null".into(), node.pos)),
                    _ => self.fail(node.pos, "a mapping key must be a scalar"),
                },
            },
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }
}

/// The JSON form of a tagged node: CloudFormation's short intrinsic functions.
fn tagged(tag: Option<Tag>, node: Node) -> Node {
    let Some(tag) = tag else { return node };
    if tag.handle != "!" {
        return node;
    }
    let name = if tag.suffix == "Ref" || tag.suffix == "Condition" {
        tag.suffix.clone()
    } else {
        format!("Fn::{}", tag.suffix)
    };
    let pos = node.pos;
    Node {
        value: Value::Object(vec![Member {
            key: name,
            key_pos: pos,
            value: node,
        }]),
        pos,
    }
}

fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if text.parse::<f64>().is_ok() && !text.starts_with(['.', '+']) => Value::Number(text),
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = within(self.end, pos(&marker));
        match event {
            Event::Scalar(text, style, _, tag) => {
                let node = Node {
                    value: scalar(text, style),
                    pos: at,
                };
                self.push(tagged(tag, node));
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_seq = matches!(event, Event::SequenceStart(..));
                let (Event::SequenceStart(_, tag) | Event::MappingStart(_, tag)) = event else {
                    return;
                };
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(
                        at,
                        &format!("nesting deeper than {MAX_DEPTH} sequences and mappings"),
                    );
                    return;
                }
                self.stack.push(if is_seq {
                    Frame::Seq {
                        items: Vec::new(),
                        pos: at,
                        tag,
                    }
                } else {
                    Frame::Map {
                        members: Vec::new(),
                        key: None,
                        pos: at,
                        tag,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { items, pos, tag }) => tagged(
                        tag,
                        Node {
                            value: Value::Array(items),
                            pos,
                        },
                    ),
                    Some(Frame::Map {
                        members, pos, tag, ..
                    }) => {
                        // Block mappings are marked after their first key: use the key.
                        let pos = members.first().map_or(pos, |m| m.key_pos.min(pos));
                        tagged(
                            tag,
                            Node {
                                value: Value::Object(members),
                                pos,
                            },
                        )
                    }
                    None => return,
                };
                self.push(node);
            }
            Event::Alias(_) => self.fail(at, "YAML aliases are not supported in templates"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_intrinsics_become_their_json_forms() {
        let text = "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Arn: !GetAtt Role.Arn\n    Name: !Sub \"x-${AWS::Region}\"\n    Count: 3\n    On: true\n";
        let node = parse_yaml(text).expect("valid");
        let role = node
            .get("Resources")
            .and_then(|r| r.get("Role"))
            .expect("role");
        let arn = role.get("Arn").expect("arn");
        assert_eq!(
            arn.get("Fn::GetAtt").and_then(Node::as_str),
            Some("Role.Arn")
        );
        assert_eq!(
            role.member("Type").expect("type").key_pos,
            Pos { line: 3, column: 5 }
        );
        assert_eq!(role.get("Count").and_then(Node::as_i64), Some(3));
        assert_eq!(role.get("On").and_then(Node::as_bool), Some(true));
        assert_eq!(
            role.get("Name")
                .and_then(|n| n.get("Fn::Sub"))
                .and_then(Node::as_str),
            Some("x-${AWS::Region}")
        );
    }

    #[test]
    fn errors_and_depth_are_reported_with_positions() {
        let error = parse_yaml("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert!(error.pos.line >= 1, "{error}");
        let deep = "[".repeat(100_000);
        let error = parse_yaml(&deep).expect_err("too deep");
        // Ours (nesting) or the scanner's own limit (recursion), whichever comes first.
        assert!(
            error.message.contains("nesting") || error.message.contains("recursion"),
            "{error}"
        );
        assert_eq!(error.pos.line, 1);
        // A value or an error at the end of the text is on its last line, not the one after.
        let node = parse_yaml("\n\n!").expect("a tagged null");
        assert_eq!(node.pos, Pos { line: 3, column: 2 });
        let error = parse_yaml("{\n{\n  \"family\": \"fixture\",\nyVerquisr").expect_err("flow");
        assert_eq!(
            error.pos,
            Pos {
                line: 4,
                column: 10
            },
            "{error}"
        );
        let error = parse_yaml("a: &x 1\nb: *x\n").expect_err("alias");
        assert_eq!(error.pos, Pos { line: 2, column: 4 });
    }
}
