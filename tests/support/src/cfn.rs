//! CloudFormation templates for the packaging tests: a YAML reader that keeps the short-form
//! intrinsic function tags (`!Ref`, `!Sub`, ...) and lines ([`parse`]), and an evaluator that
//! resolves a template's values for given parameters ([`Template::resolver`]): `Ref`, `Sub`,
//! `GetAtt` (the attributes the templates use), `If` with conditions, `ImportValue`, `Join`
//! and `AWS::NoValue`, into JSON values the tests compare with what the code produces.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A YAML node that keeps tags (`!Ref`, `!GetAtt`, `!Sub`, ...) and lines.
#[derive(Debug, Clone)]
pub enum Node {
    Scalar {
        value: String,
        tag: Option<String>,
        line: usize,
    },
    Seq {
        items: Vec<Node>,
        tag: Option<String>,
        line: usize,
    },
    Map {
        entries: Vec<(String, Node)>,
        tag: Option<String>,
        line: usize,
    },
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map { entries, .. } => entries,
            _ => &[],
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }
    pub fn tag(&self) -> Option<&str> {
        match self {
            Node::Scalar { tag, .. } | Node::Seq { tag, .. } | Node::Map { tag, .. } => {
                tag.as_deref()
            }
        }
    }
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar { line, .. } | Node::Seq { line, .. } | Node::Map { line, .. } => *line,
        }
    }
}

enum Frame {
    Seq(Vec<Node>, Option<String>, usize),
    Map(Vec<(String, Node)>, Option<String>, usize, Option<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<String>,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, _, _, pending)) => match pending.take() {
                None => match node {
                    Node::Scalar { value, .. } => *pending = Some(value),
                    other => {
                        self.error = Some(format!("line {}: non-scalar mapping key", other.line()))
                    }
                },
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

fn tag_name(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    tag.map(|t| {
        if t.handle == "!" {
            t.suffix
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    })
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, _, _, tag) => self.push(Node::Scalar {
                value,
                tag: tag_name(tag),
                line,
            }),
            Event::SequenceStart(_, tag) => {
                self.stack.push(Frame::Seq(Vec::new(), tag_name(tag), line))
            }
            Event::MappingStart(_, tag) => {
                self.stack
                    .push(Frame::Map(Vec::new(), tag_name(tag), line, None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(items, tag, line)) => Node::Seq { items, tag, line },
                    Some(Frame::Map(entries, tag, line, _)) => Node::Map { entries, tag, line },
                    None => return,
                };
                self.push(node);
            }
            Event::Alias(_) => {
                self.error = Some(format!("line {line}: aliases are not used in templates"))
            }
            _ => {}
        }
    }
}

pub fn parse(text: &str) -> Result<Node, String> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| e.to_string())?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    builder.root.ok_or_else(|| "empty template".to_owned())
}

/// A parsed template.
pub struct Template {
    /// The root mapping.
    pub root: Node,
}

/// Values for the pseudo parameters (`AWS::Region`...), in the test's chosen account.
#[derive(Debug, Clone)]
pub struct Pseudo {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub stack_name: String,
}

impl Default for Pseudo {
    fn default() -> Pseudo {
        Pseudo {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "111122223333".into(),
            stack_name: "tasksentry-test".into(),
        }
    }
}

impl Template {
    pub fn load(text: &str) -> Result<Template, String> {
        Ok(Template { root: parse(text)? })
    }

    pub fn section(&self, name: &str) -> &[(String, Node)] {
        self.root.get(name).map(Node::entries).unwrap_or_default()
    }

    /// The resources of one type: (logical id, resource).
    pub fn resources_of(&self, kind: &str) -> Vec<(&str, &Node)> {
        self.section("Resources")
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Node::as_str) == Some(kind))
            .map(|(name, r)| (name.as_str(), r))
            .collect()
    }

    pub fn resource(&self, name: &str) -> Option<&Node> {
        self.root.get("Resources")?.get(name)
    }

    /// A parameter's default.
    pub fn default_of(&self, parameter: &str) -> Option<String> {
        self.root
            .get("Parameters")?
            .get(parameter)?
            .get("Default")?
            .as_str()
            .map(str::to_owned)
    }

    /// A resolver for these parameter values (the others take their defaults; a parameter
    /// without a default or value is an error).
    pub fn resolver(&self, values: &[(&str, &str)], pseudo: &Pseudo) -> Result<Resolver, String> {
        let mut refs = BTreeMap::new();
        refs.insert("AWS::Partition".to_owned(), pseudo.partition.clone());
        refs.insert("AWS::Region".to_owned(), pseudo.region.clone());
        refs.insert("AWS::AccountId".to_owned(), pseudo.account.clone());
        refs.insert("AWS::StackName".to_owned(), pseudo.stack_name.clone());
        refs.insert("AWS::URLSuffix".to_owned(), "amazonaws.com".to_owned());
        for (name, parameter) in self.section("Parameters") {
            let given = values
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| (*v).to_owned());
            let value = given
                .or_else(|| {
                    parameter
                        .get("Default")
                        .and_then(Node::as_str)
                        .map(str::to_owned)
                })
                .ok_or_else(|| format!("parameter {name} has no value and no default"))?;
            refs.insert(name.clone(), value);
        }
        for (key, _) in values {
            if self
                .root
                .get("Parameters")
                .and_then(|p| p.get(key))
                .is_none()
            {
                return Err(format!("unknown parameter {key}"));
            }
        }
        let mut resolver = Resolver {
            refs,
            getatts: BTreeMap::new(),
            conditions: BTreeMap::new(),
        };
        // Conditions may use earlier ones.
        for (name, condition) in self.section("Conditions") {
            let value = resolver.condition(condition)?;
            resolver.conditions.insert(name.clone(), value);
        }
        // What Ref and GetAtt give for the resources the templates use.
        for (name, resource) in self.section("Resources") {
            let kind = resource.get("Type").and_then(Node::as_str).unwrap_or("");
            let properties = resource.get("Properties");
            let resolved = |key: &str| -> Result<Option<String>, String> {
                match properties.and_then(|p| p.get(key)) {
                    Some(node) => Ok(resolver.resolve(node)?.as_str().map(str::to_owned)),
                    None => Ok(None),
                }
            };
            let (reference, attributes): (String, Vec<(&str, String)>) = match kind {
                "AWS::Logs::LogGroup" => {
                    let group = resolved("LogGroupName")?.unwrap_or_else(|| name.clone());
                    let arn = format!(
                        "arn:{}:logs:{}:{}:log-group:{group}:*",
                        pseudo.partition, pseudo.region, pseudo.account
                    );
                    (group, vec![("Arn", arn)])
                }
                "AWS::KMS::Key" => {
                    let arn = format!(
                        "arn:{}:kms:{}:{}:key/{name}",
                        pseudo.partition, pseudo.region, pseudo.account
                    );
                    (name.clone(), vec![("Arn", arn), ("KeyId", name.clone())])
                }
                "AWS::SNS::Topic" => {
                    let arn = format!(
                        "arn:{}:sns:{}:{}:{name}",
                        pseudo.partition, pseudo.region, pseudo.account
                    );
                    (arn.clone(), vec![("TopicArn", arn)])
                }
                _ => (format!("ref:{name}"), vec![("Arn", format!("arn:{name}"))]),
            };
            resolver.refs.insert(name.clone(), reference);
            for (attribute, value) in attributes {
                resolver
                    .getatts
                    .insert(format!("{name}.{attribute}"), value);
            }
        }
        Ok(resolver)
    }
}

/// Resolves template values for one set of parameters.
pub struct Resolver {
    /// What `Ref` gives: parameters, pseudo parameters, resources.
    pub refs: BTreeMap<String, String>,
    /// What `GetAtt Resource.Attribute` gives.
    pub getatts: BTreeMap<String, String>,
    /// The conditions' values.
    pub conditions: BTreeMap<String, bool>,
}

/// The marker `AWS::NoValue` resolves to (removed from lists and maps).
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl Resolver {
    pub fn condition(&self, node: &Node) -> Result<bool, String> {
        let value = self.resolve(node)?;
        match value {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!(
                "line {}: not a condition: {other}",
                node.line() + 1
            )),
        }
    }

    fn substitute(
        &self,
        template: &str,
        extra: &BTreeMap<String, Value>,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or("unclosed ${ in Sub")?;
            let variable = &after[..end];
            rest = &after[end + 1..];
            if let Some(literal) = variable.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = if let Some(value) = extra.get(variable) {
                value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string())
            } else if let Some(value) = self.refs.get(variable) {
                value.clone()
            } else if let Some(value) = self.getatts.get(variable) {
                value.clone()
            } else {
                return Err(format!("Sub variable {variable} does not resolve"));
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        Ok(out)
    }

    fn function(&self, name: &str, argument: &Node) -> Result<Value, String> {
        let line = argument.line() + 1;
        match name {
            "Ref" => {
                let target = argument
                    .as_str()
                    .ok_or(format!("line {line}: Ref needs a name"))?;
                if target == "AWS::NoValue" {
                    return Ok(json!(NO_VALUE));
                }
                self.refs
                    .get(target)
                    .map(|v| json!(v))
                    .ok_or(format!("line {line}: Ref to unknown {target}"))
            }
            "GetAtt" => {
                let target = match argument {
                    Node::Scalar { value, .. } => value.clone(),
                    Node::Seq { items, .. } => items
                        .iter()
                        .filter_map(Node::as_str)
                        .collect::<Vec<_>>()
                        .join("."),
                    _ => return Err(format!("line {line}: bad GetAtt")),
                };
                self.getatts.get(&target).map(|v| json!(v)).ok_or(format!(
                    "line {line}: GetAtt {target} unknown to the test resolver"
                ))
            }
            "Sub" => match argument {
                Node::Scalar { value, .. } => Ok(json!(self.substitute(value, &BTreeMap::new())?)),
                Node::Seq { items, .. } => {
                    let template = items
                        .first()
                        .and_then(Node::as_str)
                        .ok_or(format!("line {line}: Sub needs a template"))?;
                    let mut extra = BTreeMap::new();
                    if let Some(vars) = items.get(1) {
                        for (key, value) in vars.entries() {
                            extra.insert(key.clone(), self.resolve(value)?);
                        }
                    }
                    Ok(json!(self.substitute(template, &extra)?))
                }
                _ => Err(format!("line {line}: bad Sub")),
            },
            "If" => {
                let items = match argument {
                    Node::Seq { items, .. } if items.len() == 3 => items,
                    _ => return Err(format!("line {line}: If needs [condition, then, else]")),
                };
                let condition = items[0]
                    .as_str()
                    .ok_or(format!("line {line}: If condition"))?;
                let value = *self
                    .conditions
                    .get(condition)
                    .ok_or(format!("line {line}: unknown condition {condition}"))?;
                self.resolve(&items[if value { 1 } else { 2 }])
            }
            "Condition" => {
                let condition = argument.as_str().ok_or(format!("line {line}: Condition"))?;
                self.conditions
                    .get(condition)
                    .map(|v| json!(v))
                    .ok_or(format!("line {line}: unknown condition {condition}"))
            }
            "Equals" => {
                let items = match argument {
                    Node::Seq { items, .. } if items.len() == 2 => items,
                    _ => return Err(format!("line {line}: Equals needs two values")),
                };
                let a = self.resolve(&items[0])?;
                let b = self.resolve(&items[1])?;
                let text = |v: &Value| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                };
                Ok(json!(text(&a) == text(&b)))
            }
            "Not" | "And" | "Or" => {
                let items = match argument {
                    Node::Seq { items, .. } => items,
                    _ => return Err(format!("line {line}: {name} needs a list")),
                };
                let values = items
                    .iter()
                    .map(|i| self.condition(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!(match name {
                    "Not" => !values.first().copied().unwrap_or(false),
                    "And" => values.iter().all(|v| *v),
                    _ => values.iter().any(|v| *v),
                }))
            }
            "Join" => {
                let items = match argument {
                    Node::Seq { items, .. } if items.len() == 2 => items,
                    _ => return Err(format!("line {line}: Join needs [delimiter, list]")),
                };
                let delimiter = items[0].as_str().unwrap_or("");
                let list = self.resolve(&items[1])?;
                let parts: Vec<String> = list
                    .as_array()
                    .ok_or(format!("line {line}: Join of a non-list"))?
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect();
                Ok(json!(parts.join(delimiter)))
            }
            "ImportValue" => {
                let export = self.resolve(argument)?;
                Ok(json!({ "ImportValue": export }))
            }
            other => Err(format!(
                "line {line}: the test resolver does not know !{other}"
            )),
        }
    }

    /// The node's value with every intrinsic function evaluated. Scalars stay strings (YAML
    /// numbers included); `AWS::NoValue` entries are dropped.
    pub fn resolve(&self, node: &Node) -> Result<Value, String> {
        if let Some(tag) = node.tag() {
            let bare = match node {
                Node::Scalar { value, line, .. } => Node::Scalar {
                    value: value.clone(),
                    tag: None,
                    line: *line,
                },
                Node::Seq { items, line, .. } => Node::Seq {
                    items: items.clone(),
                    tag: None,
                    line: *line,
                },
                Node::Map { entries, line, .. } => Node::Map {
                    entries: entries.clone(),
                    tag: None,
                    line: *line,
                },
            };
            return self.function(tag, &bare);
        }
        match node {
            Node::Scalar { value, .. } => Ok(json!(value)),
            Node::Seq { items, .. } => {
                let mut out = Vec::new();
                for item in items {
                    let value = self.resolve(item)?;
                    if value != json!(NO_VALUE) {
                        out.push(value);
                    }
                }
                Ok(Value::Array(out))
            }
            Node::Map { entries, .. } => {
                if let [(key, argument)] = entries.as_slice() {
                    if key == "Ref" {
                        return self.function("Ref", argument);
                    }
                    if let Some(name) = key.strip_prefix("Fn::") {
                        return self.function(name, argument);
                    }
                }
                let mut out = serde_json::Map::new();
                for (key, value) in entries {
                    let value = self.resolve(value)?;
                    if value != json!(NO_VALUE) {
                        out.insert(key.clone(), value);
                    }
                }
                Ok(Value::Object(out))
            }
        }
    }
}
