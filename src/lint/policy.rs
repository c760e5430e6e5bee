//! Checks of IAM policy documents: wildcards, privilege-escalation paths, `NotAction` /
//! `NotResource` allows, sensitive actions without conditions, and the execution role's reach
//! into secrets the task definition does not name.
//!
//! The escalation paths are those of Rhino Security Labs' research ("AWS IAM Privilege
//! Escalation – Methods and Mitigation", and `aws_escalate.py` in their Security-Research
//! repository), plus the ECS paths a task role is most likely to hold: passing a role to a
//! task TaskSentry cannot see (`ecs:RunTask` with a `taskRoleArn` override, a new task
//! definition behind a service).

use super::input::{InputError, PolicyDoc, TaskDef, is_intrinsic, text_of, type_error};
use super::taskdef::containers;
use super::tree::{Member, Node, Pos};
use super::{
    Finding, IAM_ASSUME_ANY_ROLE, IAM_EXECUTION_ROLE_EXTRA_SECRETS, IAM_FULL_ADMIN,
    IAM_NOT_ACTION_ALLOW, IAM_PRIVILEGE_ESCALATION, IAM_RESOURCE_STAR,
    IAM_SENSITIVE_WITHOUT_CONDITION, IAM_SERVICE_WILDCARD, IAM_TRUST_CONFUSED_DEPUTY,
};

/// Privilege-escalation paths: a name and the actions that together make it.
pub const ESCALATIONS: &[(&str, &[&str])] = &[
    ("CreateNewPolicyVersion", &["iam:CreatePolicyVersion"]),
    (
        "SetExistingDefaultPolicyVersion",
        &["iam:SetDefaultPolicyVersion"],
    ),
    (
        "CreateEC2WithExistingIP",
        &["iam:PassRole", "ec2:RunInstances"],
    ),
    ("CreateAccessKey", &["iam:CreateAccessKey"]),
    ("CreateLoginProfile", &["iam:CreateLoginProfile"]),
    ("UpdateLoginProfile", &["iam:UpdateLoginProfile"]),
    ("AttachUserPolicy", &["iam:AttachUserPolicy"]),
    ("AttachGroupPolicy", &["iam:AttachGroupPolicy"]),
    (
        "AttachRolePolicy",
        &["iam:AttachRolePolicy", "sts:AssumeRole"],
    ),
    ("PutUserPolicy", &["iam:PutUserPolicy"]),
    ("PutGroupPolicy", &["iam:PutGroupPolicy"]),
    ("PutRolePolicy", &["iam:PutRolePolicy", "sts:AssumeRole"]),
    ("AddUserToGroup", &["iam:AddUserToGroup"]),
    (
        "UpdateRolePolicyToAssumeIt",
        &["iam:UpdateAssumeRolePolicy", "sts:AssumeRole"],
    ),
    (
        "PassExistingRoleToNewLambdaThenInvoke",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:InvokeFunction",
        ],
    ),
    (
        "PassExistingRoleToNewLambdaThenTriggerWithNewDynamo",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping",
            "dynamodb:CreateTable",
            "dynamodb:PutItem",
        ],
    ),
    (
        "PassExistingRoleToNewLambdaThenTriggerWithExistingDynamo",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping",
        ],
    ),
    (
        "PassExistingRoleToNewGlueDevEndpoint",
        &["iam:PassRole", "glue:CreateDevEndpoint"],
    ),
    ("UpdateExistingGlueDevEndpoint", &["glue:UpdateDevEndpoint"]),
    (
        "PassExistingRoleToCloudFormation",
        &["iam:PassRole", "cloudformation:CreateStack"],
    ),
    (
        "PassExistingRoleToNewDataPipeline",
        &["iam:PassRole", "datapipeline:CreatePipeline"],
    ),
    (
        "EditExistingLambdaFunctionWithRole",
        &["lambda:UpdateFunctionCode"],
    ),
    (
        "PassExistingRoleToEcsRunTask",
        &["iam:PassRole", "ecs:RunTask"],
    ),
    (
        "PassExistingRoleToEcsStartTask",
        &["iam:PassRole", "ecs:StartTask"],
    ),
    (
        "PassExistingRoleToNewTaskDefinitionOfAService",
        &[
            "iam:PassRole",
            "ecs:RegisterTaskDefinition",
            "ecs:UpdateService",
        ],
    ),
    (
        "PassExistingRoleToNewEcsService",
        &[
            "iam:PassRole",
            "ecs:RegisterTaskDefinition",
            "ecs:CreateService",
        ],
    ),
];

/// Actions that accept only `"Resource": "*"` (no resource-level permissions), for which `*`
/// is not a finding. Besides these, `Describe*` and `List*` calls (metadata reads).
const STAR_ONLY: &[&str] = &[
    "ecr:getauthorizationtoken",
    "sts:getcalleridentity",
    "cloudwatch:putmetricdata",
    "xray:puttracesegments",
    "xray:puttelemetryrecords",
    "xray:getsamplingrules",
    "xray:getsamplingtargets",
    "ssmmessages:createcontrolchannel",
    "ssmmessages:createdatachannel",
    "ssmmessages:opencontrolchannel",
    "ssmmessages:opendatachannel",
    "logs:describeloggroups",
];

/// Sensitive actions and the condition key that should restrict them.
const SENSITIVE: &[(&str, &str)] = &[
    ("iam:PassRole", "iam:PassedToService"),
    ("kms:CreateGrant", "kms:GrantIsForAWSResource"),
];

/// Calls that read secrets and parameters (what the execution role uses for `secrets`).
const SECRET_READS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "ssm:GetParameters",
    "ssm:GetParameter",
    "ssm:GetParametersByPath",
];

/// Matches IAM's patterns: `*` any run, `?` one character, and a CloudFormation `${...}`
/// substitution any run (its value is only known at deployment).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // Tokens: literal chars, '*' (star) and '?' (one).
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("${") {
            if let Some(end) = rest.find('}') {
                tokens.push(None);
                rest = &rest[end + 1..];
                continue;
            }
        }
        tokens.push(match c {
            '*' => None,
            '?' => Some(None),
            c => Some(Some(c)),
        });
        rest = &rest[c.len_utf8()..];
    }
    let text: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with one backtrack point (linear in practice).
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Some(None)) => {
                t += 1;
                p += 1;
            }
            Some(Some(Some(c))) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(None) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(Option::is_none)
}

/// The six fields of an ARN (the last keeps its colons), not splitting inside a CloudFormation
/// `${...}` substitution (`${AWS::Region}`).
pub fn arn_fields(arn: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let bytes = arn.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 && fields.len() < 5 => {
                fields.push(&arn[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&arn[start..]);
    fields
}

fn action_matches(pattern: &str, action: &str) -> bool {
    glob_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// One statement, read.
struct Statement<'a> {
    allow: bool,
    /// `Action` or `NotAction` patterns.
    actions: Vec<String>,
    action_key: Option<&'a Member>,
    not_action: bool,
    /// `Resource` or `NotResource` patterns (`None`: neither, as in trust policies).
    resources: Option<Vec<String>>,
    resource_key: Option<&'a Member>,
    not_resource: bool,
    condition: Option<&'a Node>,
    principal: bool,
    principal_key: Option<&'a Member>,
    pos: Pos,
}

impl Statement<'_> {
    fn grants(&self, action: &str) -> bool {
        let listed = self.actions.iter().any(|p| action_matches(p, action));
        listed != self.not_action
    }

    /// Whether a resource of the statement could be one `action` acts on: `*`, `NotResource`,
    /// or an ARN of the action's service (a role's for `sts:AssumeRole`).
    fn could_apply_to(&self, action: &str) -> bool {
        let service = action
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let service = if service == "sts" {
            "iam".to_owned()
        } else {
            service
        };
        match &self.resources {
            None => true,
            Some(_) if self.not_resource => true,
            Some(list) => list.iter().any(|r| {
                r == "*"
                    || arn_fields(r)
                        .get(2)
                        .is_some_and(|s| glob_match(&s.to_ascii_lowercase(), &service))
            }),
        }
    }

    fn on_any_resource(&self) -> bool {
        !self.not_resource
            && self
                .resources
                .as_ref()
                .is_none_or(|r| r.iter().any(|r| r == "*"))
    }

    fn resource_pos(&self) -> Pos {
        self.resource_key
            .or(self.action_key)
            .map_or(self.pos, |m| m.key_pos)
    }

    fn action_pos(&self) -> Pos {
        self.action_key.map_or(self.pos, |m| m.key_pos)
    }
}

fn strings(node: &Node) -> Vec<String> {
    match node.as_array() {
        Some(items) => items.iter().filter_map(text_of).collect(),
        None => text_of(node).into_iter().collect(),
    }
}

fn statements(doc: &Node) -> Vec<Statement<'_>> {
    let Some(statement) = doc.get("Statement") else {
        return Vec::new();
    };
    let list: Vec<&Node> = match statement.as_array() {
        Some(items) => items.iter().collect(),
        None => vec![statement],
    };
    list.into_iter()
        .map(|s| {
            let action = s.member("Action").or_else(|| s.member("NotAction"));
            let resource = s.member("Resource").or_else(|| s.member("NotResource"));
            Statement {
                allow: s.get("Effect").and_then(Node::as_str) == Some("Allow"),
                actions: action.map(|m| strings(&m.value)).unwrap_or_default(),
                not_action: action.is_some_and(|m| m.key == "NotAction"),
                action_key: action,
                resources: resource.map(|m| strings(&m.value)),
                not_resource: resource.is_some_and(|m| m.key == "NotResource"),
                resource_key: resource,
                condition: s.get("Condition"),
                principal: s.get("Principal").is_some() || s.get("NotPrincipal").is_some(),
                principal_key: s.member("Principal"),
                pos: s.pos,
            }
        })
        .collect()
}

/// Checks the shape of a policy document, so that a wrong type is an input error with its
/// position, not a silently skipped statement.
pub fn validate(path: &str, doc: &Node) -> Result<(), InputError> {
    if doc.as_object().is_none() {
        return Err(type_error(path, doc, "PolicyDocument", "an object"));
    }
    let Some(statement) = doc.get("Statement") else {
        return Err(InputError {
            path: path.to_owned(),
            pos: doc.pos,
            message: "policy document without `Statement`".into(),
        });
    };
    let list: Vec<&Node> = match statement.as_array() {
        Some(items) => items.iter().collect(),
        None => vec![statement],
    };
    for s in list {
        if s.as_object().is_none() {
            return Err(type_error(
                path,
                s,
                "Statement",
                "an object or an array of objects",
            ));
        }
        match s.get("Effect") {
            Some(e) if matches!(e.as_str(), Some("Allow" | "Deny")) => {}
            Some(e) if is_intrinsic(e) => {}
            Some(e) => return Err(type_error(path, e, "Effect", "\"Allow\" or \"Deny\"")),
            None => {
                return Err(InputError {
                    path: path.to_owned(),
                    pos: s.pos,
                    message: "statement without `Effect`".into(),
                });
            }
        }
        for key in ["Action", "NotAction", "Resource", "NotResource"] {
            if let Some(value) = s.get(key) {
                let ok = is_intrinsic(value)
                    || value.as_str().is_some()
                    || value.as_array().is_some_and(|items| {
                        items
                            .iter()
                            .all(|i| i.as_str().is_some() || is_intrinsic(i))
                    });
                if !ok {
                    return Err(type_error(
                        path,
                        value,
                        key,
                        "a string or an array of strings",
                    ));
                }
            }
        }
        if let Some(condition) = s.get("Condition") {
            if condition.as_object().is_none() && !is_intrinsic(condition) {
                return Err(type_error(path, condition, "Condition", "an object"));
            }
        }
    }
    Ok(())
}

/// Whether the document allows `action` on a resource `resource` accepts, and no
/// unconditional `Deny` takes it back.
pub fn allows(doc: &Node, action: &str, resource: &dyn Fn(&str) -> bool) -> bool {
    let statements = statements(doc);
    let on = |s: &Statement<'_>| match &s.resources {
        None => true,
        Some(list) => list.iter().any(|r| resource(r)) != s.not_resource,
    };
    let allowed = statements
        .iter()
        .any(|s| s.allow && !s.principal && s.grants(action) && on(s));
    let denied = statements
        .iter()
        .any(|s| !s.allow && s.condition.is_none() && s.grants(action) && on(s));
    allowed && !denied
}

/// Whether the document allows `action` at all, and the first statement that does.
fn granting<'s>(statements: &'s [Statement<'s>], action: &str) -> Option<&'s Statement<'s>> {
    let denied = statements
        .iter()
        .any(|s| !s.allow && s.condition.is_none() && s.on_any_resource() && s.grants(action));
    if denied {
        return None;
    }
    statements
        .iter()
        .find(|s| s.allow && !s.principal && s.grants(action) && s.could_apply_to(action))
}

/// Whether a pattern names an action, not just every action of the service.
fn names_specifically(pattern: &str) -> bool {
    !(pattern == "*" || pattern.ends_with(":*"))
}

/// Runs the policy checks on one document.
pub fn check(doc: &PolicyDoc, out: &mut Vec<Finding>) {
    let file = doc.file.as_str();
    let statements = statements(&doc.node);
    let name = &doc.name;
    for s in statements.iter().filter(|s| s.allow) {
        if s.not_action || s.not_resource {
            let key = if s.not_action {
                s.action_key
            } else {
                s.resource_key
            };
            out.push(Finding::new(
                &IAM_NOT_ACTION_ALLOW,
                file,
                key.map_or(s.pos, |m| m.key_pos),
                format!(
                    "{name}: `Allow` with `{}`",
                    if s.not_action {
                        "NotAction"
                    } else {
                        "NotResource"
                    }
                ),
            ));
        }
        if s.not_action {
            continue;
        }
        if s.actions.iter().any(|a| a == "*" || a == "*:*") {
            out.push(Finding::new(
                &IAM_FULL_ADMIN,
                file,
                s.action_pos(),
                format!("{name}: `Action: \"*\"` allows every action"),
            ));
        }
        let service_wide: Vec<&str> = s
            .actions
            .iter()
            .filter(|a| a.ends_with(":*") && a.as_str() != "*:*")
            .map(String::as_str)
            .collect();
        if !service_wide.is_empty() {
            out.push(Finding::new(
                &IAM_SERVICE_WILDCARD,
                file,
                s.action_pos(),
                format!(
                    "{name}: {} allows every action of the service",
                    service_wide.join(", ")
                ),
            ));
        }
        if !s.principal && s.on_any_resource() && s.resource_key.is_some() {
            let restrictable: Vec<&str> = s
                .actions
                .iter()
                .filter(|a| {
                    let lower = a.to_ascii_lowercase();
                    let verb = lower.split_once(':').map_or("", |(_, v)| v);
                    !(STAR_ONLY.contains(&lower.as_str())
                        || verb.starts_with("describe")
                        || verb.starts_with("list"))
                })
                .map(String::as_str)
                .collect();
            if !restrictable.is_empty() {
                out.push(Finding::new(
                    &IAM_RESOURCE_STAR,
                    file,
                    s.resource_pos(),
                    format!("{name}: `Resource: \"*\"` for {}", restrictable.join(", ")),
                ));
            }
            if s.grants("sts:AssumeRole") {
                out.push(Finding::new(
                    &IAM_ASSUME_ANY_ROLE,
                    file,
                    s.resource_pos(),
                    format!("{name}: `sts:AssumeRole` on any role"),
                ));
            }
        }
        if s.condition.is_none() && !s.principal {
            for (action, key) in SENSITIVE {
                if s.actions
                    .iter()
                    .any(|p| names_specifically(p) && action_matches(p, action))
                {
                    out.push(Finding::new(
                        &IAM_SENSITIVE_WITHOUT_CONDITION,
                        file,
                        s.action_pos(),
                        format!("{name}: `{action}` without a `Condition` (e.g. on `{key}`)"),
                    ));
                }
            }
        }
    }
    for s in statements.iter().filter(|s| s.allow) {
        let Some(principal) = s.principal_key else {
            continue;
        };
        let ecs_tasks = principal
            .value
            .get("Service")
            .map(strings)
            .unwrap_or_default()
            .iter()
            .any(|service| service.starts_with("ecs-tasks."));
        let assume = s.actions.is_empty() || s.grants("sts:AssumeRole");
        if ecs_tasks && assume && !has_source_condition(s.condition) {
            out.push(Finding::new(
                &IAM_TRUST_CONFUSED_DEPUTY,
                file,
                principal.key_pos,
                format!("{name}: `ecs-tasks.amazonaws.com` may assume the role without an `aws:SourceAccount` or `aws:SourceArn` condition"),
            ));
        }
    }
    let paths: Vec<(String, &Statement<'_>)> = ESCALATIONS
        .iter()
        .filter_map(|(method, actions)| {
            let grants: Vec<_> = actions
                .iter()
                .map(|a| granting(&statements, a))
                .collect::<Option<_>>()?;
            grants
                .first()
                .map(|s| (format!("{method} ({})", actions.join(" + ")), *s))
        })
        .collect();
    if let Some((_, first)) = paths.first() {
        let names: Vec<&str> = paths.iter().map(|(m, _)| m.as_str()).collect();
        out.push(Finding::new(
            &IAM_PRIVILEGE_ESCALATION,
            file,
            first.action_pos(),
            format!(
                "{name}: privilege escalation possible by {}",
                names.join("; ")
            ),
        ));
    }
}

/// Whether a condition block tests `aws:SourceAccount` or `aws:SourceArn` (any operator).
fn has_source_condition(condition: Option<&Node>) -> bool {
    condition
        .and_then(Node::as_object)
        .unwrap_or_default()
        .iter()
        .filter_map(|operator| operator.value.as_object())
        .flatten()
        .any(|key| {
            key.key.eq_ignore_ascii_case("aws:SourceAccount")
                || key.key.eq_ignore_ascii_case("aws:SourceArn")
        })
}

/// The secrets and parameters a task definition names (`secrets[].valueFrom`, private
/// registry credentials), Secrets Manager ARNs without a JSON key or version suffix.
fn named_secrets(td: &Node) -> Vec<String> {
    let mut named = Vec::new();
    for c in containers(td) {
        for entry in c
            .node
            .get("secrets")
            .and_then(Node::as_array)
            .unwrap_or_default()
        {
            if let Some(value) = entry.get("valueFrom").and_then(text_of) {
                named.push(value);
            }
        }
        if let Some(value) = c
            .node
            .get("repositoryCredentials")
            .and_then(|r| r.get("credentialsParameter"))
            .and_then(text_of)
        {
            named.push(value);
        }
    }
    named
        .into_iter()
        .map(|v| {
            if v.starts_with("arn:") && v.contains(":secretsmanager:") {
                v.split(':').take(7).collect::<Vec<_>>().join(":")
            } else {
                v
            }
        })
        .collect()
}

/// Whether a policy resource reaches only named secrets.
fn covers_only_named(resource: &str, named: &[String]) -> bool {
    let base = ["-??????", "-*", "*"]
        .iter()
        .find_map(|s| resource.strip_suffix(s))
        .unwrap_or(resource);
    if base.contains(['*', '?']) {
        return false;
    }
    named.iter().any(|n| {
        let without_suffix = match n.rsplit_once('-') {
            Some((head, tail)) if tail.len() == 6 && n.contains(":secret:") => head,
            _ => n.as_str(),
        };
        if n.starts_with("arn:") {
            base == n || base == without_suffix
        } else {
            // An SSM parameter named without an ARN (same account and region).
            base.ends_with(&format!(":parameter/{}", n.trim_start_matches('/')))
        }
    })
}

/// TS-IAM-008: what the execution role may read beyond the task definition's `secrets`.
pub fn check_execution_role_secrets(td: &TaskDef, out: &mut Vec<Finding>) {
    let Some(policies) = &td.execution_role_policies else {
        return;
    };
    let named = named_secrets(&td.node);
    for doc in policies {
        for s in statements(&doc.node).iter().filter(|s| s.allow) {
            let reads: Vec<&str> = SECRET_READS
                .iter()
                .copied()
                .filter(|a| s.grants(a))
                .collect();
            if reads.is_empty() {
                continue;
            }
            let beyond: Vec<String> = match (&s.resources, s.not_resource) {
                (Some(list), false) => list
                    .iter()
                    .filter(|r| !covers_only_named(r, &named))
                    .cloned()
                    .collect(),
                _ => vec!["every resource".to_owned()],
            };
            if !beyond.is_empty() {
                out.push(Finding::new(
                    &IAM_EXECUTION_ROLE_EXTRA_SECRETS,
                    &doc.file,
                    s.resource_pos(),
                    format!(
                        "{}: {} on {} beyond the {} secret(s) the task definition names",
                        doc.name,
                        reads.join(", "),
                        beyond.join(", "),
                        named.len()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::tree::parse_json;

    #[test]
    fn globs_follow_iam() {
        assert!(glob_match("s3:get*", "s3:getobject"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("arn:${AWS::Partition}:logs:*", "arn:aws:logs:x"));
        assert!(!glob_match("s3:Get*", "s3:PutObject"));
        assert!(glob_match("*a*b*c", "xxaybzzc"));
    }

    #[test]
    fn allow_deny_and_not_action() {
        let doc = parse_json(
            r#"{"Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
                {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:sqs:*"}
            ]}"#,
        )
        .expect("valid");
        let any = |_: &str| true;
        assert!(allows(&doc, "s3:GetObject", &any));
        assert!(!allows(&doc, "s3:DeleteObject", &any));
        assert!(allows(&doc, "sqs:SendMessage", &|r| r.starts_with("arn:aws:sqs")));
        assert!(!allows(&doc, "iam:PassRole", &|r| r.starts_with("arn:aws:sqs")));
    }

    #[test]
    fn named_secrets_cover_their_suffixed_arns() {
        let named = vec![
            "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf".to_owned(),
            "/orders/api-key".to_owned(),
        ];
        assert!(covers_only_named(
            "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf",
            &named
        ));
        assert!(covers_only_named(
            "arn:aws:secretsmanager:eu-west-1:1:secret:db-??????",
            &named
        ));
        assert!(covers_only_named(
            "arn:aws:ssm:eu-west-1:1:parameter/orders/api-key",
            &named
        ));
        assert!(!covers_only_named("*", &named));
        assert!(!covers_only_named(
            "arn:aws:secretsmanager:eu-west-1:1:secret:*",
            &named
        ));
    }
}
