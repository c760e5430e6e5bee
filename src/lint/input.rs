//! What the files are: task definitions (as `aws ecs describe-task-definition` prints them, with
//! or without the `taskDefinition` wrapper, or as `register-task-definition` takes them), IAM
//! policies (plain, or as `aws iam get-policy-version` / `get-role-policy` print them, the
//! document possibly URL-encoded) and CloudFormation templates (JSON or YAML), and how they
//! belong together. Then [`lint`] runs every check.

use std::fmt;

use super::tree::{Member, Node, Pos, SyntaxError, Value, parse_json};
use super::{Finding, policy, sidecar, sort_findings, taskdef};

/// The largest file `lint` reads. Task definitions are at most 64 KiB, inline role policies
/// 10 KiB and templates 1 MB; anything much larger is not one of them.
pub const MAX_INPUT_BYTES: usize = 8 << 20;

/// What a file was given as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A positional file: a task definition, a CloudFormation template or a policy, recognised
    /// by its content.
    Document,
    /// `--task-role-policy`: a policy of the task role of every task definition given.
    TaskRolePolicy,
    /// `--execution-role-policy`: a policy of the execution role.
    ExecutionRolePolicy,
}

/// A file to lint: its path as given (used in every finding) and its bytes.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The path as the user wrote it.
    pub path: String,
    /// The content; at most [`MAX_INPUT_BYTES`] are read.
    pub bytes: Vec<u8>,
    /// How it was given.
    pub role: Role,
}

/// A file that cannot be linted, and where reading it stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file.
    pub path: String,
    /// Where.
    pub pos: Pos,
    /// Why.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.pos, self.message)
    }
}

impl InputError {
    fn at(path: &str, pos: Pos, message: impl Into<String>) -> InputError {
        InputError {
            path: path.to_owned(),
            pos,
            message: message.into(),
        }
    }
}

/// A task definition to check, with the policies of its roles when they are known.
#[derive(Debug, Clone)]
pub struct TaskDef {
    /// The file.
    pub file: String,
    /// The task definition object (API field names; CloudFormation's `Properties`).
    pub node: Node,
    /// The CloudFormation logical id, for templates.
    pub logical_id: Option<String>,
    /// Policies of the task role, when given (`None`: unknown, so not checked).
    pub task_role_policies: Option<Vec<PolicyDoc>>,
    /// Policies of the execution role, when given.
    pub execution_role_policies: Option<Vec<PolicyDoc>>,
}

/// A policy document.
#[derive(Debug, Clone)]
pub struct PolicyDoc {
    /// The file.
    pub file: String,
    /// A name for messages (`--task-role-policy`, or the template's role and policy name).
    pub name: String,
    /// The document (`{"Version": ..., "Statement": ...}`).
    pub node: Node,
}

/// Reads a file's text: UTF-8, at most [`MAX_INPUT_BYTES`], JSON unless it is YAML (by its
/// name, or because it does not start like JSON).
pub fn parse_file(path: &str, bytes: &[u8]) -> Result<Node, InputError> {
    let limit = bytes.len().min(MAX_INPUT_BYTES);
    let text = match std::str::from_utf8(&bytes[..limit]) {
        Ok(text) => text,
        // A character cut by the size limit is not an encoding error.
        Err(error) if bytes.len() > MAX_INPUT_BYTES && error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(error) => {
            let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
            return Err(InputError::at(
                path,
                end_pos(valid),
                "not UTF-8 text (task definitions, policies and templates are JSON or YAML)",
            ));
        }
    };
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(InputError::at(
            path,
            end_pos(text),
            format!(
                "file larger than {} MiB ({} bytes): not a task definition, policy or template",
                MAX_INPUT_BYTES >> 20,
                bytes.len()
            ),
        ));
    }
    let lower = path.to_ascii_lowercase();
    let yaml_by_name = lower.ends_with(".yaml") || lower.ends_with(".yml");
    let looks_json = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with(['{', '[']);
    let result = if yaml_by_name || !looks_json && !text.trim().is_empty() {
        super::yaml::parse_yaml(text)
    } else {
        parse_json(text)
    };
    result.map_err(|SyntaxError { pos, message }| InputError::at(path, pos, message))
}

/// The position just after `text`.
fn end_pos(text: &str) -> Pos {
    let line = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let last = text.rsplit('\n').next().unwrap_or_default();
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
    }
}

/// Whether a node is a CloudFormation intrinsic function (`{"Ref": ...}`, `{"Fn::Sub": ...}`),
/// whose value is only known at deployment.
pub fn is_intrinsic(node: &Node) -> bool {
    matches!(node.as_object(), Some([m]) if m.key == "Ref" || m.key.starts_with("Fn::") || m.key == "Condition")
}

/// A string, or an intrinsic function rendered as text (`${Ref:X}`, the `Fn::Sub` template,
/// `${GetAtt:A.B}`), so that values can be compared and matched as patterns.
pub fn text_of(node: &Node) -> Option<String> {
    if let Some(s) = node.as_str() {
        return Some(s.to_owned());
    }
    if let Value::Number(n) | Value::String(n) = &node.value {
        return Some(n.clone());
    }
    let [m] = node.as_object()? else { return None };
    match m.key.as_str() {
        "Fn::Sub" => match &m.value.value {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => items.first().and_then(Node::as_str).map(str::to_owned),
            _ => None,
        },
        "Ref" => m.value.as_str().map(|s| format!("${{Ref:{s}}}")),
        "Fn::GetAtt" => match &m.value.value {
            Value::String(s) => Some(format!("${{GetAtt:{s}}}")),
            Value::Array(items) => {
                let parts: Vec<_> = items.iter().filter_map(Node::as_str).collect();
                Some(format!("${{GetAtt:{}}}", parts.join(".")))
            }
            _ => None,
        },
        other => Some(format!("${{{other}}}")),
    }
}

/// The CloudFormation resource a `Ref`/`GetAtt` value names.
fn referenced_resource(node: &Node) -> Option<String> {
    let [m] = node.as_object()? else { return None };
    match (m.key.as_str(), &m.value.value) {
        ("Ref", Value::String(s)) => Some(s.clone()),
        ("Fn::GetAtt", Value::String(s)) => s.split('.').next().map(str::to_owned),
        ("Fn::GetAtt", Value::Array(items)) => {
            items.first().and_then(Node::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+`, as `application/x-www-form-urlencoded` writes a space).
fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The policy document in a file: plain, `PolicyVersion.Document` (get-policy-version) or
/// `PolicyDocument` (get-role-policy), each possibly a URL-encoded JSON string (the IAM API
/// returns them so; the CLI decodes them). `None`: not a policy.
fn policy_document(path: &str, root: &Node) -> Result<Option<Node>, InputError> {
    let wrapped = root
        .get("PolicyVersion")
        .and_then(|v| v.get("Document"))
        .or_else(|| root.get("PolicyDocument"));
    let Some(document) = wrapped else {
        return Ok(root.member("Statement").is_some().then(|| root.clone()));
    };
    match &document.value {
        Value::Object(_) => Ok(Some(document.clone())),
        Value::String(encoded) => {
            let decoded = if encoded.trim_start().starts_with('{') {
                encoded.clone()
            } else {
                url_decode(encoded).ok_or_else(|| {
                    InputError::at(path, document.pos, "policy document: invalid URL encoding")
                })?
            };
            let mut node = parse_json(&decoded).map_err(|e| {
                InputError::at(
                    path,
                    document.pos,
                    format!("policy document (decoded) at {}: {}", e.pos, e.message),
                )
            })?;
            // Positions inside the decoded text mean nothing in the file: point at the string.
            node.relocate(document.pos);
            Ok(Some(node))
        }
        _ => Err(InputError::at(
            path,
            document.pos,
            format!(
                "the policy document must be an object or a string, not {}",
                document.kind_name()
            ),
        )),
    }
}

/// What a positional document is.
enum Kind {
    TaskDef(Node),
    Template(Node),
    Policy(Node),
}

fn classify(path: &str, root: &Node) -> Result<Kind, InputError> {
    if root.as_object().is_none() {
        return Err(InputError::at(
            path,
            root.pos,
            format!(
                "expected an object (a task definition, IAM policy or CloudFormation template), found {}",
                root.kind_name()
            ),
        ));
    }
    if let Some(inner) = root.get("taskDefinition") {
        if inner.as_object().is_none() {
            return Err(type_error(path, inner, "taskDefinition", "an object"));
        }
        return Ok(Kind::TaskDef(inner.clone()));
    }
    if root.member("containerDefinitions").is_some() {
        return Ok(Kind::TaskDef(root.clone()));
    }
    if root.member("Resources").is_some() || root.member("AWSTemplateFormatVersion").is_some() {
        return Ok(Kind::Template(root.clone()));
    }
    if let Some(document) = policy_document(path, root)? {
        return Ok(Kind::Policy(document));
    }
    Err(InputError::at(
        path,
        root.pos,
        "not a task definition (`containerDefinitions`), IAM policy (`Statement`) or CloudFormation template (`Resources`)",
    ))
}

/// An error for a value of the wrong type.
pub fn type_error(path: &str, node: &Node, what: &str, expected: &str) -> InputError {
    InputError::at(
        path,
        node.pos,
        format!("`{what}` must be {expected}, not {}", node.kind_name()),
    )
}

/// Everything found in the files, grouped.
#[derive(Debug, Default)]
pub struct Documents {
    /// Task definitions with their roles' policies.
    pub task_defs: Vec<TaskDef>,
    /// Policies given alone or found in templates (each checked once).
    pub policies: Vec<PolicyDoc>,
}

/// Reads and groups the files; every unusable file is an error.
pub fn read(files: &[InputFile]) -> Result<Documents, Vec<InputError>> {
    let mut errors = Vec::new();
    let mut docs = Documents::default();
    let mut task_role = Vec::new();
    let mut execution_role = Vec::new();
    for file in files {
        let result = parse_file(&file.path, &file.bytes).and_then(|root| {
            match file.role {
                Role::Document => match classify(&file.path, &root)? {
                    Kind::TaskDef(node) => {
                        taskdef::validate(&file.path, &node)?;
                        docs.task_defs.push(TaskDef {
                            file: file.path.clone(),
                            node,
                            logical_id: None,
                            task_role_policies: None,
                            execution_role_policies: None,
                        });
                    }
                    Kind::Policy(node) => {
                        policy::validate(&file.path, &node)?;
                        docs.policies.push(PolicyDoc {
                            file: file.path.clone(),
                            name: "policy".into(),
                            node,
                        });
                    }
                    Kind::Template(node) => template(&file.path, &node, &mut docs)?,
                },
                Role::TaskRolePolicy | Role::ExecutionRolePolicy => {
                    let node = policy_document(&file.path, &root)?.ok_or_else(|| {
                        InputError::at(
                            &file.path,
                            root.pos,
                            "not an IAM policy document (no `Statement`, `PolicyDocument` or `PolicyVersion.Document`)",
                        )
                    })?;
                    policy::validate(&file.path, &node)?;
                    let (list, name) = if file.role == Role::TaskRolePolicy {
                        (&mut task_role, "task role policy")
                    } else {
                        (&mut execution_role, "execution role policy")
                    };
                    list.push(PolicyDoc {
                        file: file.path.clone(),
                        name: format!("{name} {}", file.path),
                        node,
                    });
                }
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Role policies given on the command line belong to the task definitions given there.
    for td in docs
        .task_defs
        .iter_mut()
        .filter(|td| td.logical_id.is_none())
    {
        if !task_role.is_empty() {
            td.task_role_policies = Some(task_role.clone());
        }
        if !execution_role.is_empty() {
            td.execution_role_policies = Some(execution_role.clone());
        }
    }
    docs.policies.extend(task_role);
    docs.policies.extend(execution_role);
    Ok(docs)
}

/// The task definitions and policies of a CloudFormation template: `AWS::ECS::TaskDefinition`
/// resources, the trust policy and inline `Policies` of `AWS::IAM::Role`s and `AWS::IAM::Policy` /
/// `AWS::IAM::ManagedPolicy` documents, each linked to the task definitions whose
/// `TaskRoleArn` / `ExecutionRoleArn` name their role.
fn template(path: &str, root: &Node, docs: &mut Documents) -> Result<(), InputError> {
    let Some(resources) = root.get("Resources") else {
        return Ok(());
    };
    let Some(members) = resources.as_object() else {
        return Err(type_error(path, resources, "Resources", "an object"));
    };
    // Policies by the logical id of the role they belong to.
    let mut by_role: Vec<(String, PolicyDoc)> = Vec::new();
    let mut task_defs = Vec::new();
    for Member { key: id, value, .. } in members {
        let Some(kind) = value.get("Type").and_then(Node::as_str) else {
            continue;
        };
        let properties = value.get("Properties");
        match kind {
            "AWS::ECS::TaskDefinition" => {
                let Some(properties) = properties else {
                    continue;
                };
                if properties.as_object().is_none() {
                    return Err(type_error(path, properties, "Properties", "an object"));
                }
                taskdef::validate(path, properties)?;
                task_defs.push(TaskDef {
                    file: path.to_owned(),
                    node: properties.clone(),
                    logical_id: Some(id.clone()),
                    task_role_policies: None,
                    execution_role_policies: None,
                });
            }
            "AWS::IAM::Role" => {
                if let Some(trust) = properties
                    .and_then(|p| p.get("AssumeRolePolicyDocument"))
                    .filter(|t| !is_intrinsic(t))
                {
                    policy::validate(path, trust)?;
                    docs.policies.push(PolicyDoc {
                        file: path.to_owned(),
                        name: format!("{id} trust policy"),
                        node: trust.clone(),
                    });
                }
                let Some(list) = properties.and_then(|p| p.get("Policies")) else {
                    continue;
                };
                let Some(items) = list.as_array() else {
                    if is_intrinsic(list) {
                        continue;
                    }
                    return Err(type_error(path, list, "Policies", "an array"));
                };
                for item in items {
                    let Some(document) = item.get("PolicyDocument") else {
                        continue;
                    };
                    if is_intrinsic(document) {
                        continue;
                    }
                    policy::validate(path, document)?;
                    let name = item
                        .get("PolicyName")
                        .and_then(text_of)
                        .unwrap_or_else(|| "inline".into());
                    by_role.push((
                        id.clone(),
                        PolicyDoc {
                            file: path.to_owned(),
                            name: format!("{id} policy {name}"),
                            node: document.clone(),
                        },
                    ));
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                let Some(document) = properties.and_then(|p| p.get("PolicyDocument")) else {
                    continue;
                };
                if is_intrinsic(document) {
                    continue;
                }
                policy::validate(path, document)?;
                let doc = PolicyDoc {
                    file: path.to_owned(),
                    name: format!("policy {id}"),
                    node: document.clone(),
                };
                let roles: Vec<String> = properties
                    .and_then(|p| p.get("Roles"))
                    .and_then(Node::as_array)
                    .map(|roles| roles.iter().filter_map(referenced_resource).collect())
                    .unwrap_or_default();
                if roles.is_empty() {
                    docs.policies.push(doc);
                } else {
                    for role in roles {
                        by_role.push((role, doc.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    for td in &mut task_defs {
        let role_of = |field: &str| td.node.get(field).and_then(referenced_resource);
        let collect = |role: Option<String>| {
            role.map(|role| {
                by_role
                    .iter()
                    .filter(|(r, _)| *r == role)
                    .map(|(_, doc)| doc.clone())
                    .collect::<Vec<_>>()
            })
        };
        td.task_role_policies = collect(role_of("taskRoleArn"));
        td.execution_role_policies = collect(role_of("executionRoleArn"));
    }
    // Each policy is checked once, however many roles or task definitions use it.
    let mut seen = Vec::new();
    for (_, doc) in by_role {
        if !seen.contains(&doc.node.pos) {
            seen.push(doc.node.pos);
            docs.policies.push(doc);
        }
    }
    docs.task_defs.extend(task_defs);
    Ok(())
}

/// Lints the files: every task definition (with the sidecar checks), every policy, and the
/// execution roles' secrets against their task definitions. Findings come sorted by file and
/// position. Unusable files are errors, all of them reported.
pub fn lint(files: &[InputFile]) -> Result<Vec<Finding>, Vec<InputError>> {
    let docs = read(files)?;
    let mut findings = Vec::new();
    for td in &docs.task_defs {
        taskdef::check(td, &mut findings);
        sidecar::check(td, &mut findings);
        policy::check_execution_role_secrets(td, &mut findings);
    }
    for doc in &docs.policies {
        policy::check(doc, &mut findings);
    }
    sort_findings(&mut findings);
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Result<Kind, InputError> {
        let root = parse_file("f.json", text.as_bytes())?;
        classify("f.json", &root)
    }

    #[test]
    fn wrappers_are_recognised() {
        assert!(matches!(
            doc(r#"{"taskDefinition": {"containerDefinitions": []}}"#),
            Ok(Kind::TaskDef(_))
        ));
        assert!(matches!(
            doc(r#"{"containerDefinitions": []}"#),
            Ok(Kind::TaskDef(_))
        ));
        assert!(matches!(doc(r#"{"Resources": {}}"#), Ok(Kind::Template(_))));
        assert!(matches!(doc(r#"{"Statement": []}"#), Ok(Kind::Policy(_))));
        let encoded = r#"{"PolicyVersion": {"Document": "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"}}"#;
        let Ok(Kind::Policy(node)) = doc(encoded) else {
            panic!("an encoded policy version")
        };
        assert!(node.get("Statement").is_some());
        assert_eq!(
            node.pos,
            Pos {
                line: 1,
                column: 32
            }
        );
        assert!(matches!(
            doc(r#"{"RoleName": "r", "PolicyDocument": {"Statement": {}}}"#),
            Ok(Kind::Policy(_))
        ));
        let error = doc(r#"{"family": "x"}"#).err().expect("unknown");
        assert_eq!(error.pos, Pos::START);
        let error = doc("[]").err().expect("array");
        assert!(error.message.contains("expected an object"));
    }

    #[test]
    fn size_and_encoding_limits_are_errors_with_positions() {
        let error = parse_file("f.json", b"{\n  \"a\": \"\xff\"}").expect_err("latin-1");
        assert_eq!(error.pos, Pos { line: 2, column: 9 });
        let mut big = b"[".to_vec();
        big.resize(MAX_INPUT_BYTES + 10, b' ');
        let error = parse_file("f.json", &big).expect_err("too big");
        assert!(error.message.contains("larger than"), "{error}");
    }
}
