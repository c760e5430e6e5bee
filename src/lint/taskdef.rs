//! Checks of the task definition itself: secrets in plain sight, container hardening, roles.

use super::input::{InputError, TaskDef, is_intrinsic, text_of, type_error};
use super::tree::{Node, Pos, Value};
use super::{
    ECS_ADDED_CAPABILITIES, ECS_COMMAND_SECRET, ECS_ENV_SECRET, ECS_HOST_NETWORK, ECS_HOST_PID,
    ECS_MUTABLE_IMAGE, ECS_NO_INIT, ECS_NO_LOGGING, ECS_NO_MEMORY_LIMIT, ECS_NO_TASK_ROLE,
    ECS_PRIVILEGED, ECS_ROOT_USER, ECS_SAME_ROLES, ECS_SECRET_NOT_SECURE, ECS_WRITABLE_ROOT,
    Finding,
};
use crate::alert::redact::Redactor;

/// The kinds a field may have.
#[derive(Clone, Copy)]
enum Want {
    Str,
    Bool,
    Int,
    Obj,
    /// An array of strings.
    Strs,
    /// An array of objects.
    Objs,
}

impl Want {
    fn accepts(self, node: &Node) -> bool {
        if is_intrinsic(node) {
            return true;
        }
        match self {
            Want::Str => matches!(node.value, Value::String(_)),
            Want::Bool => node.as_bool().is_some(),
            Want::Int => node.as_i64().is_some(),
            Want::Obj => node.as_object().is_some(),
            Want::Strs => node.as_array().is_some_and(|items| {
                items
                    .iter()
                    .all(|i| i.as_str().is_some() || is_intrinsic(i))
            }),
            Want::Objs => node
                .as_array()
                .is_some_and(|items| items.iter().all(|i| i.as_object().is_some())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Want::Str => "a string",
            Want::Bool => "a boolean",
            Want::Int => "an integer",
            Want::Obj => "an object",
            Want::Strs => "an array of strings",
            Want::Objs => "an array of objects",
        }
    }
}

const TASK_FIELDS: &[(&str, Want)] = &[
    ("family", Want::Str),
    ("containerDefinitions", Want::Objs),
    ("pidMode", Want::Str),
    ("networkMode", Want::Str),
    ("taskRoleArn", Want::Str),
    ("executionRoleArn", Want::Str),
    ("requiresCompatibilities", Want::Strs),
];

const CONTAINER_FIELDS: &[(&str, Want)] = &[
    ("name", Want::Str),
    ("image", Want::Str),
    ("essential", Want::Bool),
    ("user", Want::Str),
    ("readonlyRootFilesystem", Want::Bool),
    ("privileged", Want::Bool),
    ("environment", Want::Objs),
    ("secrets", Want::Objs),
    ("command", Want::Strs),
    ("entryPoint", Want::Strs),
    ("linuxParameters", Want::Obj),
    ("logConfiguration", Want::Obj),
    ("memory", Want::Int),
    ("memoryReservation", Want::Int),
    ("stopTimeout", Want::Int),
    ("dependsOn", Want::Objs),
    ("restartPolicy", Want::Obj),
];

fn validate_fields(path: &str, node: &Node, fields: &[(&str, Want)]) -> Result<(), InputError> {
    for (field, want) in fields {
        if let Some(value) = node.get(field) {
            if !want.accepts(value) {
                return Err(type_error(path, value, field, want.name()));
            }
        }
    }
    Ok(())
}

/// Checks the types of every field the checks read, so that a wrong type is an error that
/// names the field and its position, not a finding missed in silence.
pub fn validate(path: &str, td: &Node) -> Result<(), InputError> {
    validate_fields(path, td, TASK_FIELDS)?;
    let Some(containers) = td.get("containerDefinitions") else {
        return Ok(());
    };
    for container in containers.as_array().unwrap_or_default() {
        validate_fields(path, container, CONTAINER_FIELDS)?;
        for (list, fields) in [
            (
                "environment",
                &[("name", Want::Str), ("value", Want::Str)][..],
            ),
            (
                "secrets",
                &[("name", Want::Str), ("valueFrom", Want::Str)][..],
            ),
            (
                "dependsOn",
                &[("containerName", Want::Str), ("condition", Want::Str)][..],
            ),
        ] {
            for item in container
                .get(list)
                .and_then(Node::as_array)
                .unwrap_or_default()
            {
                validate_fields(path, item, fields)?;
            }
        }
        if let Some(linux) = container.get("linuxParameters") {
            validate_fields(
                path,
                linux,
                &[
                    ("capabilities", Want::Obj),
                    ("initProcessEnabled", Want::Bool),
                ],
            )?;
            if let Some(caps) = linux.get("capabilities") {
                validate_fields(path, caps, &[("add", Want::Strs), ("drop", Want::Strs)])?;
            }
        }
    }
    Ok(())
}

/// A container definition and what the checks ask of it.
pub struct Container<'a> {
    /// The container object.
    pub node: &'a Node,
    /// Its name (empty if missing).
    pub name: String,
    /// Where findings about the container as a whole point: its `name` key, else its start.
    pub anchor: Pos,
}

impl<'a> Container<'a> {
    fn new(node: &'a Node) -> Container<'a> {
        let name = node.get("name").and_then(text_of).unwrap_or_default();
        let anchor = node.member("name").map_or(node.pos, |m| m.key_pos);
        Container { node, name, anchor }
    }

    /// The `environment` entries: name, the entry's `value` key position, value.
    pub fn environment(&self) -> Vec<(String, Pos, String)> {
        self.node
            .get("environment")
            .and_then(Node::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| {
                let name = entry.get("name").and_then(text_of)?;
                let value = entry.member("value")?;
                Some((name, value.key_pos, text_of(&value.value)?))
            })
            .collect()
    }

    /// The value of one environment variable, and where it is.
    pub fn env(&self, name: &str) -> Option<(String, Pos)> {
        self.environment()
            .into_iter()
            .rev()
            .find(|(n, ..)| n == name)
            .map(|(_, pos, value)| (value, pos))
    }

    /// Whether this is the TaskSentry sidecar: named `tasksentry`, an image whose repository
    /// name contains `tasksentry`, or `TASKSENTRY_*` settings in its environment.
    pub fn is_sidecar(&self) -> bool {
        let image = self.node.get("image").and_then(text_of).unwrap_or_default();
        let repository = image
            .split(['@', ':'])
            .next()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        self.name.eq_ignore_ascii_case("tasksentry")
            || repository.to_ascii_lowercase().contains("tasksentry")
            || self
                .environment()
                .iter()
                .any(|(name, ..)| name.starts_with("TASKSENTRY_"))
    }

    /// `linuxParameters.capabilities.add` or `.drop`, upper-cased without `CAP_`, and where
    /// the list is.
    pub fn capabilities(&self, which: &str) -> Option<(Vec<String>, Pos)> {
        let caps = self.node.get("linuxParameters")?.get("capabilities")?;
        let member = caps.member(which)?;
        let list = member
            .value
            .as_array()
            .unwrap_or_default()
            .iter()
            .filter_map(Node::as_str)
            .map(|c| {
                c.trim()
                    .to_ascii_uppercase()
                    .trim_start_matches("CAP_")
                    .to_owned()
            })
            .collect();
        Some((list, member.key_pos))
    }

    /// A field's key position, or the container's anchor.
    pub fn at(&self, field: &str) -> Pos {
        self.node.member(field).map_or(self.anchor, |m| m.key_pos)
    }
}

/// The containers of a task definition.
pub fn containers(td: &Node) -> Vec<Container<'_>> {
    td.get("containerDefinitions")
        .and_then(Node::as_array)
        .unwrap_or_default()
        .iter()
        .map(Container::new)
        .collect()
}

/// Runs the task-definition checks.
pub fn check(td: &TaskDef, out: &mut Vec<Finding>) {
    let file = td.file.as_str();
    let node = &td.node;
    let redactor = Redactor::builtin();
    let containers = containers(node);
    let task_memory = node.get("memory").is_some();
    for c in &containers {
        let sidecar = c.is_sidecar();
        let who = format!("container `{}`", c.name);
        check_secrets(file, c, &redactor, out);
        if !sidecar {
            let user = c.node.get("user").and_then(text_of);
            let root = match user.as_deref() {
                None => true,
                Some(u) => {
                    let uid = u.split(':').next().unwrap_or_default().trim();
                    uid == "0" || uid.eq_ignore_ascii_case("root")
                }
            };
            if root {
                out.push(Finding::new(
                    &ECS_ROOT_USER,
                    file,
                    c.at("user"),
                    match user {
                        Some(u) => format!("{who} runs as `{u}` (root)"),
                        None => format!("{who} has no `user`: it runs as the image's user, root unless the image says otherwise"),
                    },
                ));
            }
        }
        if c.node.get("readonlyRootFilesystem").and_then(Node::as_bool) != Some(true) {
            out.push(Finding::new(
                &ECS_WRITABLE_ROOT,
                file,
                c.at("readonlyRootFilesystem"),
                format!("{who} has a writable root filesystem"),
            ));
        }
        if let Some((added, pos)) = c.capabilities("add") {
            let extra: Vec<_> = added
                .iter()
                .filter(|cap| !sidecar || cap.as_str() != "SYS_PTRACE")
                .cloned()
                .collect();
            if !extra.is_empty() {
                out.push(Finding::new(
                    &ECS_ADDED_CAPABILITIES,
                    file,
                    pos,
                    format!(
                        "{who}{} adds {}",
                        if sidecar { " (the sidecar)" } else { "" },
                        extra.join(", ")
                    ),
                ));
            }
        }
        if c.node.get("privileged").and_then(Node::as_bool) == Some(true) {
            out.push(Finding::new(
                &ECS_PRIVILEGED,
                file,
                c.at("privileged"),
                format!("{who} is privileged"),
            ));
        }
        if c.node.get("logConfiguration").is_none() {
            out.push(Finding::new(
                &ECS_NO_LOGGING,
                file,
                c.anchor,
                format!("{who} has no `logConfiguration`"),
            ));
        }
        if !task_memory && c.node.get("memory").is_none() {
            out.push(Finding::new(
                &ECS_NO_MEMORY_LIMIT,
                file,
                c.anchor,
                format!("{who} has no `memory` limit and the task none either"),
            ));
        }
        let init = c
            .node
            .get("linuxParameters")
            .and_then(|l| l.get("initProcessEnabled"))
            .and_then(Node::as_bool);
        if !sidecar && init != Some(true) {
            out.push(Finding::new(
                &ECS_NO_INIT,
                file,
                c.node
                    .get("linuxParameters")
                    .and_then(|l| l.member("initProcessEnabled"))
                    .map_or(c.anchor, |m| m.key_pos),
                format!("{who} has no init process (`initProcessEnabled`)"),
            ));
        }
        if let Some(image) = c.node.get("image").filter(|i| !is_intrinsic(i)) {
            let text = image.as_str().unwrap_or_default();
            if !text.contains("@sha256:") {
                out.push(Finding::new(
                    &ECS_MUTABLE_IMAGE,
                    file,
                    c.at("image"),
                    format!("{who} uses image `{text}` by tag, not by digest"),
                ));
            }
        }
    }
    for (field, check, bad) in [
        ("pidMode", &ECS_HOST_PID, "host"),
        ("networkMode", &ECS_HOST_NETWORK, "host"),
    ] {
        if let Some(member) = node.member(field) {
            if member.value.as_str() == Some(bad) {
                out.push(Finding::new(
                    check,
                    file,
                    member.key_pos,
                    format!("`{field}` is `{bad}`"),
                ));
            }
        }
    }
    let task_role = node.member("taskRoleArn");
    let execution_role = node.member("executionRoleArn");
    if let (Some(task), Some(exec)) = (task_role, execution_role) {
        if let (Some(a), Some(b)) = (text_of(&task.value), text_of(&exec.value)) {
            if a == b {
                out.push(Finding::new(
                    &ECS_SAME_ROLES,
                    file,
                    task.key_pos,
                    format!("the task role is the execution role ({a})"),
                ));
            }
        }
    }
    if task_role.is_none() {
        for c in containers.iter().filter(|c| !c.is_sidecar()) {
            if let Some((name, pos, _)) = c.environment().into_iter().find(|(name, _, value)| {
                value.contains(".amazonaws.com")
                    || value.starts_with("arn:aws")
                    || name == "AWS_REGION"
                    || name == "AWS_DEFAULT_REGION"
            }) {
                out.push(Finding::new(
                    &ECS_NO_TASK_ROLE,
                    file,
                    pos,
                    format!(
                        "container `{}` calls AWS (`{name}`) but the task has no `taskRoleArn`",
                        c.name
                    ),
                ));
            }
        }
    }
}

/// Whether a `secrets` `valueFrom` is a reference to a secret store: a Secrets Manager or SSM
/// ARN, or an SSM parameter name (same account and region).
fn secret_reference_problem(value: &str, redactor: &Redactor) -> Option<String> {
    // An ARN is a reference (the detectors would read `secretsmanager:...` as a secret).
    if !value.starts_with("arn:") {
        if let Some(kind) = redactor.find_secret(value) {
            return Some(format!("holds a credential itself ({kind})"));
        }
    }
    let parameter = if let Some(rest) = value.strip_prefix("arn:") {
        let fields: Vec<_> = rest.splitn(5, ':').collect();
        match fields.get(1).copied() {
            Some("secretsmanager") => return None,
            Some("ssm") => fields
                .get(4)
                .and_then(|r| r.strip_prefix("parameter"))
                .unwrap_or_default()
                .to_owned(),
            Some(other) => return Some(format!("is an ARN of `{other}`, not a secret store")),
            None => return Some("is not a valid ARN".into()),
        }
    } else {
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        {
            return Some("is neither an ARN nor an SSM parameter name".into());
        }
        value.to_owned()
    };
    let name = format!("/{}", parameter.trim_start_matches('/'));
    name.starts_with("/aws/service/")
        .then(|| "is an AWS public parameter (type String, never a SecureString)".to_owned())
}

fn check_secrets(file: &str, c: &Container<'_>, redactor: &Redactor, out: &mut Vec<Finding>) {
    for (name, pos, value) in c.environment() {
        // A reference (an ARN) is not a credential, whatever the variable is called (and
        // the detectors would read `arn:aws:secretsmanager:...` as `secret...: value`).
        if value.starts_with("arn:") {
            continue;
        }
        if let Some(kind) = redactor.find_secret(&format!("{name}={value}")) {
            out.push(Finding::new(
                &ECS_ENV_SECRET,
                file,
                pos,
                format!(
                    "container `{}`: environment variable `{name}` holds a credential ({kind})",
                    c.name
                ),
            ));
        }
    }
    for entry in c
        .node
        .get("secrets")
        .and_then(Node::as_array)
        .unwrap_or_default()
    {
        let Some(member) = entry.member("valueFrom") else {
            continue;
        };
        let Some(value) = member.value.as_str() else {
            continue;
        };
        if let Some(problem) = secret_reference_problem(value, redactor) {
            let name = entry.get("name").and_then(text_of).unwrap_or_default();
            out.push(Finding::new(
                &ECS_SECRET_NOT_SECURE,
                file,
                member.key_pos,
                format!(
                    "container `{}`: secret `{name}`: `valueFrom` {problem}",
                    c.name
                ),
            ));
        }
    }
    let mut argv = Vec::new();
    let mut positions = Vec::new();
    for field in ["entryPoint", "command"] {
        if let Some(member) = c.node.member(field) {
            for item in member.value.as_array().unwrap_or_default() {
                if let Some(text) = item.as_str() {
                    argv.push(text.to_owned());
                    positions.push((field, item.pos, member.key_pos));
                }
            }
        }
    }
    if let Some((index, kind)) = redactor.find_secret_in_argv(&argv) {
        let (field, pos) = match index.and_then(|i| positions.get(i)) {
            Some((field, item, _)) => (*field, *item),
            None => positions
                .first()
                .map_or(("command", c.anchor), |(f, _, key)| (*f, *key)),
        };
        out.push(Finding::new(
            &ECS_COMMAND_SECRET,
            file,
            pos,
            format!("container `{}`: a credential ({kind}) in `{field}`", c.name),
        ));
    }
}
