//! Checks of the TaskSentry sidecar: present, able to see (`pidMode: task`, the capabilities
//! its mode needs), started first, stopped last with time to flush, allowed to write its log
//! group, and `essential` as documented (docs/platform-engineers.md). Its settings are read
//! from its `TASKSENTRY_*` environment with the defaults of [`crate::config::SETTINGS`].

use std::time::Duration;

use super::input::{TaskDef, text_of};
use super::policy::{self, arn_fields, glob_match};
use super::taskdef::{Container, containers};
use super::tree::Node;
use super::{
    Finding, SIDECAR_DEPENDS_ON_HEALTHY, SIDECAR_DROPPED_CAPABILITIES, SIDECAR_ESSENTIAL,
    SIDECAR_LOG_PERMISSIONS, SIDECAR_MISSING, SIDECAR_NO_DEPENDS_ON, SIDECAR_NO_TASK_ROLE,
    SIDECAR_PID_MODE, SIDECAR_STOP_TIMEOUT, SIDECAR_TRACE_NEEDS_PTRACE,
};

/// ECS's default `stopTimeout` on Fargate when the container sets none.
const DEFAULT_STOP_TIMEOUT_SECS: i64 = 30;

/// The documented default of a setting (`SETTINGS`' fourth column).
fn default_of(setting: &str) -> &'static str {
    crate::config::SETTINGS
        .iter()
        .find(|(name, ..)| *name == setting)
        .map_or("", |(_, _, _, default, _)| default)
}

/// A setting as the sidecar resolves it from its environment: the variable, else the default.
fn setting(c: &Container<'_>, name: &str, variable: &str) -> (String, Option<super::Pos>) {
    match c.env(variable) {
        Some((value, pos)) => (value, Some(pos)),
        None => (default_of(name).to_owned(), None),
    }
}

/// Runs the sidecar checks.
pub fn check(td: &TaskDef, out: &mut Vec<Finding>) {
    let file = td.file.as_str();
    let node = &td.node;
    let all = containers(node);
    let Some(sidecar) = all.iter().find(|c| c.is_sidecar()) else {
        out.push(Finding::new(
            &SIDECAR_MISSING,
            file,
            node.member("containerDefinitions")
                .map_or(node.pos, |m| m.key_pos),
            "no TaskSentry container (named `tasksentry`, a `tasksentry` image, or `TASKSENTRY_*` settings)",
        ));
        return;
    };
    let pid_mode = node.member("pidMode");
    if pid_mode.and_then(|m| m.value.as_str()) != Some("task") {
        out.push(Finding::new(
            &SIDECAR_PID_MODE,
            file,
            pid_mode.map_or(sidecar.anchor, |m| m.key_pos),
            match pid_mode.and_then(|m| text_of(&m.value)) {
                Some(mode) => format!("`pidMode` is `{mode}`, not `task`"),
                None => "no `pidMode`: the sidecar sees only its own processes".to_owned(),
            },
        ));
    }
    capabilities(file, sidecar, out);
    for app in all.iter().filter(|c| !c.is_sidecar()) {
        let depends: Vec<&Node> = app
            .node
            .get("dependsOn")
            .and_then(Node::as_array)
            .unwrap_or_default()
            .iter()
            .filter(|d| d.get("containerName").and_then(text_of).as_deref() == Some(&sidecar.name))
            .collect();
        if depends.is_empty() {
            out.push(Finding::new(
                &SIDECAR_NO_DEPENDS_ON,
                file,
                app.at("dependsOn"),
                format!(
                    "container `{}` does not wait for `{}` to start",
                    app.name, sidecar.name
                ),
            ));
        }
        let has_health_check = sidecar.node.get("healthCheck").is_some();
        for d in depends {
            let Some(condition) = d.member("condition") else {
                continue;
            };
            let text = condition.value.as_str().unwrap_or_default();
            let never = match text {
                "HEALTHY" => !has_health_check,
                "COMPLETE" | "SUCCESS" => true,
                _ => false,
            };
            if never {
                out.push(Finding::new(
                    &SIDECAR_DEPENDS_ON_HEALTHY,
                    file,
                    condition.key_pos,
                    format!(
                        "container `{}` waits for `{}` to be {text}, which never happens",
                        app.name, sidecar.name
                    ),
                ));
            }
        }
    }
    cloudwatch(file, td, sidecar, out);
    match sidecar.node.member("essential") {
        None => out.push(Finding::new(
            &SIDECAR_ESSENTIAL,
            file,
            sidecar.anchor,
            format!(
                "`{}` has no `essential`: it defaults to true, so a monitor failure stops the task",
                sidecar.name
            ),
        )),
        Some(member) if member.value.as_bool() == Some(false) => {
            let restarts = sidecar
                .node
                .get("restartPolicy")
                .and_then(|r| r.get("enabled"))
                .and_then(Node::as_bool)
                == Some(true);
            if !restarts {
                out.push(Finding::new(
                    &SIDECAR_ESSENTIAL,
                    file,
                    member.key_pos,
                    format!(
                        "`{}` is not essential and has no enabled `restartPolicy`: once it stops, the task runs unwatched",
                        sidecar.name
                    ),
                ));
            }
        }
        Some(_) => {}
    }
}

fn capabilities(file: &str, sidecar: &Container<'_>, out: &mut Vec<Finding>) {
    let added = sidecar.capabilities("add");
    let dropped = sidecar.capabilities("drop");
    let has_added = |cap: &str| {
        added
            .as_ref()
            .is_some_and(|(l, _)| l.iter().any(|c| c == cap))
    };
    let is_dropped = |cap: &str| {
        dropped
            .as_ref()
            .is_some_and(|(l, _)| l.iter().any(|c| c == cap || c == "ALL"))
    };
    let ptrace = has_added("SYS_PTRACE");
    let (mode, mode_pos) = setting(sidecar, "mode", "TASKSENTRY_MODE");
    if mode.trim() == "trace" && !ptrace {
        out.push(Finding::new(
            &SIDECAR_TRACE_NEEDS_PTRACE,
            file,
            mode_pos
                .or(added.as_ref().map(|(_, p)| *p))
                .unwrap_or(sidecar.anchor),
            format!("`{}` runs in trace mode without `SYS_PTRACE`", sidecar.name),
        ));
    }
    let drops_all = dropped
        .as_ref()
        .is_some_and(|(l, _)| l.iter().any(|c| c == "ALL"));
    let mut missing = Vec::new();
    if is_dropped("DAC_OVERRIDE") {
        missing.push("DAC_OVERRIDE");
    }
    if !ptrace {
        missing.extend(["SETUID", "SETGID"].into_iter().filter(|c| is_dropped(c)));
    }
    if !missing.is_empty() {
        out.push(Finding::new(
            &SIDECAR_DROPPED_CAPABILITIES,
            file,
            dropped.as_ref().map_or(sidecar.anchor, |(_, p)| *p),
            format!(
                "`{}` drops {}{}",
                sidecar.name,
                if drops_all {
                    format!("ALL, {} with it", missing.join(", "))
                } else {
                    missing.join(", ")
                },
                if ptrace {
                    ""
                } else {
                    " and does not add SYS_PTRACE"
                }
            ),
        ));
    }
}

/// Whether the sidecar ships to CloudWatch (`outputs` names it, or `log_group` is set), and
/// the variable that says so.
fn cloudwatch_output(sidecar: &Container<'_>) -> Option<super::Pos> {
    let outputs = sidecar.env("TASKSENTRY_OUTPUTS");
    if let Some((value, pos)) = &outputs {
        if value.split(',').any(|o| o.trim() == "cloudwatch") {
            return Some(*pos);
        }
    }
    sidecar.env("TASKSENTRY_LOG_GROUP").map(|(_, pos)| pos)
}

fn cloudwatch(file: &str, td: &TaskDef, sidecar: &Container<'_>, out: &mut Vec<Finding>) {
    let Some(output_pos) = cloudwatch_output(sidecar) else {
        return;
    };
    let (flush, flush_pos) = setting(sidecar, "flush_timeout", "TASKSENTRY_FLUSH_TIMEOUT");
    let stop = sidecar.node.member("stopTimeout");
    let stop_secs = stop
        .and_then(|m| m.value.as_i64())
        .unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
    let stop_at = stop.map_or(sidecar.anchor, |m| m.key_pos);
    match crate::config::parse_duration(&flush) {
        Ok(flush_time) => {
            let stop_time = Duration::from_secs(u64::try_from(stop_secs).unwrap_or(0));
            if stop_time <= flush_time {
                out.push(Finding::new(
                    &SIDECAR_STOP_TIMEOUT,
                    file,
                    stop_at,
                    format!(
                        "`{}`: stopTimeout {stop_secs}s{} is not longer than flush_timeout {flush}{}",
                        sidecar.name,
                        if stop.is_none() { " (default)" } else { "" },
                        if flush_pos.is_none() { " (default)" } else { "" },
                    ),
                ));
            }
        }
        Err(error) => out.push(Finding::new(
            &SIDECAR_STOP_TIMEOUT,
            file,
            flush_pos.unwrap_or(stop_at),
            format!("`{}`: TASKSENTRY_FLUSH_TIMEOUT: {error}", sidecar.name),
        )),
    }
    if td.node.get("taskRoleArn").is_none() {
        out.push(Finding::new(
            &SIDECAR_NO_TASK_ROLE,
            file,
            output_pos,
            format!(
                "`{}` ships alerts to CloudWatch Logs but the task has no `taskRoleArn`",
                sidecar.name
            ),
        ));
        return;
    }
    let Some(policies) = &td.task_role_policies else {
        return;
    };
    let (group, group_pos) = setting(sidecar, "log_group", "TASKSENTRY_LOG_GROUP");
    let targets = [
        format!("log-group:{group}"),
        format!("log-group:{group}:log-stream:stream"),
    ];
    let missing: Vec<&str> = ["logs:CreateLogStream", "logs:PutLogEvents"]
        .into_iter()
        .filter(|action| {
            !policies.iter().any(|doc| {
                targets.iter().any(|target| {
                    policy::allows(&doc.node, action, &|pattern| {
                        logs_resource_matches(pattern, target)
                    })
                })
            })
        })
        .collect();
    if !missing.is_empty() {
        let names: Vec<_> = policies.iter().map(|d| d.name.as_str()).collect();
        out.push(Finding::new(
            &SIDECAR_LOG_PERMISSIONS,
            file,
            group_pos.unwrap_or(output_pos),
            format!(
                "the task role's policies ({}) do not allow {} on log group `{group}`",
                if names.is_empty() {
                    "no policy".to_owned()
                } else {
                    names.join(", ")
                },
                missing.join(" and ")
            ),
        ));
    }
}

/// Whether a policy's resource pattern covers a CloudWatch Logs resource (`log-group:G` or
/// `log-group:G:log-stream:S`) in whatever region and account: only the resource part of the
/// ARN is compared.
fn logs_resource_matches(pattern: &str, target: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let fields = arn_fields(pattern);
    match fields.as_slice() {
        ["arn", _, service, _, _, resource] => {
            (glob_match(service, "logs")) && glob_match(resource, target)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_settings_table() {
        assert_eq!(default_of("flush_timeout"), "25s");
        assert_eq!(default_of("log_group"), "/ecs/tasksentry");
        assert_eq!(default_of("mode"), "poll");
    }

    #[test]
    fn log_resources_match_by_their_resource_part() {
        let group = "log-group:/a/b";
        let stream = "log-group:/a/b:log-stream:stream";
        let shipped = "arn:aws:logs:eu-west-1:111122223333:log-group:/a/b";
        assert!(logs_resource_matches(shipped, group));
        assert!(!logs_resource_matches(shipped, stream));
        assert!(logs_resource_matches(&format!("{shipped}:*"), stream));
        assert!(logs_resource_matches(
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/a/b",
            group
        ));
        assert!(!logs_resource_matches(
            "arn:aws:logs:eu-west-1:1:log-group:/other:*",
            stream
        ));
        assert!(logs_resource_matches("*", stream));
    }
}
