//! `tasksentry lint`: checks of ECS task definitions, their roles' IAM policies and
//! CloudFormation templates before they ship, including whether the TaskSentry sidecar is set
//! up so that it can see.
//!
//! Pure: callers pass file texts in ([`InputFile`]); nothing here reads files or prints.
//! [`tree`] (JSON) and [`yaml`] read texts into a tree that keeps every key's line and column;
//! [`input`] recognises what a document is; [`taskdef`], [`sidecar`] and [`policy`] hold the
//! checks; [`report`] renders findings as text, JSON or SARIF. The checks, their ids and
//! severities are [`CHECKS`], documented one by one in `docs/lint.md`.

use std::fmt;

pub mod input;
pub mod policy;
pub mod report;
pub mod sidecar;
pub mod taskdef;
pub mod tree;
pub mod yaml;

pub use input::{InputError, InputFile, Role, lint};
pub use tree::Pos;

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Severity {
    /// Worth fixing; not a risk by itself.
    Low,
    /// Weakens a defence or the monitor's view.
    Medium,
    /// A real risk, or the monitor cannot do its job.
    High,
    /// Exploitable as it stands.
    Critical,
}

impl Severity {
    /// The lower-case name used in every output.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One check: a stable id, a severity, a one-line why and a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// `TS-ECS-001`, `TS-IAM-001`, `TS-SIDECAR-001`, ...
    pub id: &'static str,
    /// A short name (SARIF's rule name).
    pub name: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// Why it matters, in one line.
    pub why: &'static str,
    /// What to do.
    pub fix: &'static str,
}

macro_rules! checks {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $why:literal, $fix:literal;)*) => {
        $(
            #[doc = $why]
            pub const $konst: Check = Check {
                id: $id,
                name: $name,
                severity: Severity::$sev,
                why: $why,
                fix: $fix,
            };
        )*
        /// Every check, in id order.
        pub const CHECKS: &[Check] = &[$($konst),*];
    };
}

checks! {
    ECS_ENV_SECRET = "TS-ECS-001", "EnvironmentCredential", High,
        "A credential in a plain `environment` value is readable by anyone who can describe the task definition, and by every process of the container.",
        "Move it to `secrets` (Secrets Manager or an SSM SecureString parameter) and rotate it.";
    ECS_SECRET_NOT_SECURE = "TS-ECS-002", "SecretNotFromSecureStore", High,
        "A `secrets` entry whose `valueFrom` is not a Secrets Manager secret or SSM parameter reference (a literal value, another service) or is an AWS public parameter (a plain String, never a SecureString).",
        "Point `valueFrom` at a Secrets Manager secret or a SecureString SSM parameter you own.";
    ECS_COMMAND_SECRET = "TS-ECS-003", "CommandLineCredential", High,
        "A credential in `command` or `entryPoint` is stored in the task definition and visible in every process listing (`/proc/<pid>/cmdline`) of the task.",
        "Pass it through `secrets` as an environment variable the program reads, and rotate it.";
    ECS_ROOT_USER = "TS-ECS-004", "RootUser", Medium,
        "The container runs as root (no `user`, or user 0): a compromise of the application is root in its container, with every file and capability root has.",
        "Set `user` to a non-root uid (`\"10001:10001\"`) the image can run as.";
    ECS_WRITABLE_ROOT = "TS-ECS-005", "WritableRootFilesystem", Medium,
        "A writable root filesystem lets an intruder drop tools and change the application's files.",
        "Set `readonlyRootFilesystem: true` and mount volumes for the paths that must be written (`/tmp`, caches).";
    ECS_ADDED_CAPABILITIES = "TS-ECS-006", "AddedCapabilities", High,
        "Capabilities added to an application container (`SYS_PTRACE` above all: it can read and control every process of the task, the monitor included).",
        "Remove `linuxParameters.capabilities.add` from application containers; only the TaskSentry sidecar needs `SYS_PTRACE`.";
    ECS_PRIVILEGED = "TS-ECS-007", "PrivilegedContainer", Critical,
        "A privileged container (EC2 launch type) is root on the host: every device, every capability, no confinement.",
        "Remove `privileged: true`; add the one capability needed, if any.";
    ECS_HOST_PID = "TS-ECS-008", "HostPidNamespace", High,
        "`pidMode: host` (EC2 launch type) shares the host's processes with the task: containers see and can signal every process of the instance.",
        "Use `pidMode: task` (the sidecar needs it) or none.";
    ECS_HOST_NETWORK = "TS-ECS-009", "HostNetworkMode", Medium,
        "`networkMode: host` (EC2 launch type) puts the containers on the instance's network stack: they reach the instance metadata service and every host port.",
        "Use `awsvpc` (Fargate's only mode).";
    ECS_NO_LOGGING = "TS-ECS-010", "NoLogConfiguration", Medium,
        "A container without `logConfiguration` leaves no record of what it printed; investigations start blind.",
        "Add a `logConfiguration` (`awslogs` with `awslogs-group`, `awslogs-region`, `awslogs-stream-prefix`).";
    ECS_NO_MEMORY_LIMIT = "TS-ECS-011", "NoMemoryLimit", Medium,
        "Neither the container (`memory`) nor the task has a memory limit: one container can starve the others, the monitor included.",
        "Set task-level `memory` (required on Fargate) or a container `memory` hard limit.";
    ECS_NO_INIT = "TS-ECS-012", "NoInitProcess", Low,
        "Without `initProcessEnabled` the application's main process gets no init to forward signals and reap its children (recommended by AWS for ECS Exec sessions).",
        "Set `linuxParameters.initProcessEnabled: true` on application containers.";
    ECS_MUTABLE_IMAGE = "TS-ECS-013", "ImageNotPinned", Medium,
        "An image by tag (`nginx:1.27`) can change under the same task definition: what runs is not what was reviewed, and alerts name a tag, not a build.",
        "Reference images by digest (`repo@sha256:...`), e.g. resolved in CI when the task definition is rendered.";
    ECS_SAME_ROLES = "TS-ECS-014", "TaskRoleIsExecutionRole", Medium,
        "The task role equals the execution role: the application gets the ECR pull, log and secret-reading permissions meant only for the ECS agent.",
        "Give the task its own role with only what the application (and the sidecar) call.";
    ECS_NO_TASK_ROLE = "TS-ECS-015", "NoTaskRole", Medium,
        "An application that calls AWS (its environment names AWS endpoints, ARNs or a region) has no task role: it will fail, or someone will give it long-lived keys.",
        "Set `taskRoleArn` to a role with exactly the calls the application makes.";
    IAM_FULL_ADMIN = "TS-IAM-001", "AllActionsAllowed", Critical,
        "`Action: \"*\"` allows every call of every service: anyone running code in the task is an administrator.",
        "List the actions the role needs; start from IAM Access Analyzer's generated policy.";
    IAM_SERVICE_WILDCARD = "TS-IAM-002", "ServiceWildcardAction", High,
        "A service-wide wildcard (`s3:*`, `iam:*`) allows every present and future action of that service, including its permission and deletion calls.",
        "Replace `service:*` with the actions the role calls.";
    IAM_RESOURCE_STAR = "TS-IAM-003", "ResourceStar", Medium,
        "`Resource: \"*\"` on actions that support resource-level permissions reaches every bucket, queue, table or secret of the account.",
        "Name the resources (ARNs); keep `*` only for actions that accept nothing else (e.g. `ecr:GetAuthorizationToken`).";
    IAM_PRIVILEGE_ESCALATION = "TS-IAM-004", "PrivilegeEscalation", High,
        "The policy allows a known privilege-escalation path (Rhino Security Labs' methods, and passing a role to a new ECS task): code in the task can become more powerful than its role.",
        "Remove one action of each listed path, or restrict it to resources and conditions that cannot reach a more privileged role.";
    IAM_ASSUME_ANY_ROLE = "TS-IAM-005", "AssumeAnyRole", High,
        "`sts:AssumeRole` on `*` lets the task assume any role that trusts its account or role: its power is that of the most permissive one.",
        "Name the role ARNs it may assume.";
    IAM_NOT_ACTION_ALLOW = "TS-IAM-006", "AllowWithNotActionOrNotResource", High,
        "`Allow` with `NotAction` or `NotResource` grants everything not listed, including actions and resources created later.",
        "Allow the listed actions on the listed resources instead; use `Deny` statements for exclusions.";
    IAM_SENSITIVE_WITHOUT_CONDITION = "TS-IAM-007", "SensitiveActionWithoutCondition", Medium,
        "`iam:PassRole` (or `kms:CreateGrant`) without a `Condition` can hand a role (or a key) to any service, not only to ECS.",
        "Add `\"Condition\": {\"StringEquals\": {\"iam:PassedToService\": \"ecs-tasks.amazonaws.com\"}}` (`kms:GrantIsForAWSResource` for grants).";
    IAM_EXECUTION_ROLE_EXTRA_SECRETS = "TS-IAM-008", "ExecutionRoleReadsOtherSecrets", Medium,
        "The execution role can read secrets or parameters beyond those the task definition names: anyone who can register a task definition with it can read them.",
        "Limit `secretsmanager:GetSecretValue` / `ssm:GetParameters` to the ARNs in the task definition's `secrets`.";
    IAM_TRUST_CONFUSED_DEPUTY = "TS-IAM-009", "TrustWithoutSourceCondition", Medium,
        "A role trusting `ecs-tasks.amazonaws.com` without an `aws:SourceAccount` or `aws:SourceArn` condition can be assumed by ECS on behalf of any account's tasks (the confused-deputy problem).",
        "Add `\"Condition\": {\"StringEquals\": {\"aws:SourceAccount\": \"ACCOUNT\"}, \"ArnLike\": {\"aws:SourceArn\": \"arn:aws:ecs:REGION:ACCOUNT:*\"}}` (task-definitions/iam/ecs-tasks-trust-policy.json).";
    SIDECAR_MISSING = "TS-SIDECAR-001", "SidecarMissing", High,
        "The task has no TaskSentry container: nothing watches its processes, connections and files at run time.",
        "Add the sidecar container (docs/platform-engineers.md, or copy it from task-definitions/).";
    SIDECAR_PID_MODE = "TS-SIDECAR-002", "SidecarNoTaskPidMode", High,
        "Without `pidMode: task` each container has its own PID namespace: the sidecar sees only itself.",
        "Set `\"pidMode\": \"task\"` at task level (Fargate platform version 1.4.0 or later).";
    SIDECAR_TRACE_NEEDS_PTRACE = "TS-SIDECAR-003", "SidecarTraceWithoutPtrace", High,
        "`TASKSENTRY_MODE=trace` needs `SYS_PTRACE`; without it the monitor cannot start tracing.",
        "Add `SYS_PTRACE` to the sidecar's `linuxParameters.capabilities.add`, or use `auto`/`poll`.";
    SIDECAR_DROPPED_CAPABILITIES = "TS-SIDECAR-004", "SidecarBlindCapabilities", High,
        "The sidecar's capabilities leave it blind: without `DAC_OVERRIDE` it cannot read a non-root app's environment and descriptors, and without `SYS_PTRACE` it needs `SETUID`+`SETGID` to read as the app's user (`drop: [\"ALL\"]` removes all three, and Fargate can add back only `SYS_PTRACE`).",
        "Add `SYS_PTRACE` and drop the other defaults by name, keeping `DAC_OVERRIDE` (as the shipped task definitions do), or keep Fargate's default set.";
    SIDECAR_NO_DEPENDS_ON = "TS-SIDECAR-005", "AppStartsBeforeSidecar", Medium,
        "An application container without `dependsOn` the sidecar (`START`) may start, and stop, while the monitor is not running: its first and last processes go unseen.",
        "Add `\"dependsOn\": [{\"containerName\": \"tasksentry\", \"condition\": \"START\"}]` to every application container.";
    SIDECAR_DEPENDS_ON_HEALTHY = "TS-SIDECAR-006", "AppWaitsForSidecarHealth", High,
        "`dependsOn` the sidecar with `HEALTHY`, `COMPLETE` or `SUCCESS`: the sidecar has no health check and never exits, so the application never starts.",
        "Use the `START` condition.";
    SIDECAR_STOP_TIMEOUT = "TS-SIDECAR-007", "SidecarStopTimeoutTooShort", High,
        "The sidecar's `stopTimeout` (default 30 s) is not longer than its `flush_timeout` (default 25 s): ECS kills it before the last alerts reach CloudWatch.",
        "Set `stopTimeout` above `TASKSENTRY_FLUSH_TIMEOUT` (the examples: 30 and 10s).";
    SIDECAR_NO_TASK_ROLE = "TS-SIDECAR-008", "SidecarCloudWatchWithoutTaskRole", High,
        "The sidecar ships alerts to CloudWatch Logs but the task has no task role: every delivery is refused and alerts stay in its buffer.",
        "Set `taskRoleArn` to a role allowing `logs:CreateLogStream` and `logs:PutLogEvents` on the alert group (task-definitions/iam/tasksentry-task-role-policy.json).";
    SIDECAR_LOG_PERMISSIONS = "TS-SIDECAR-009", "SidecarCloudWatchNotAllowed", High,
        "The task role's policies do not allow `logs:CreateLogStream` and `logs:PutLogEvents` on the sidecar's `log_group`: alerts are never delivered.",
        "Allow both actions on `arn:aws:logs:REGION:ACCOUNT:log-group:GROUP` and `...:log-group:GROUP:*`.";
    SIDECAR_ESSENTIAL = "TS-SIDECAR-010", "SidecarEssentialUndocumented", Medium,
        "The sidecar's `essential` flag is not as documented: left out it defaults to true (a monitor crash stops the task without anyone having chosen that), and `false` without a `restartPolicy` leaves a crashed monitor down.",
        "Set `\"essential\": false` with `\"restartPolicy\": {\"enabled\": true}` (recommended), or `\"essential\": true` explicitly.";
}

/// The check with this id.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// One finding: a check failed at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check.
    pub check: &'static Check,
    /// The file, as given on the command line.
    pub file: String,
    /// The key (or value) the finding is about.
    pub pos: Pos,
    /// What is wrong here, naming the container, variable, statement or action.
    pub message: String,
}

impl Finding {
    /// A finding of `check` in `file` at `pos`.
    pub fn new(check: &'static Check, file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Finding {
            check,
            file: file.to_owned(),
            pos,
            message: message.into(),
        }
    }
}

/// Sorts findings by file, position and id, and removes exact repeats.
pub fn sort_findings(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        (&a.file, a.pos, a.check.id, &a.message).cmp(&(&b.file, b.pos, b.check.id, &b.message))
    });
    findings.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_well_formed_and_in_order() {
        let ids: Vec<_> = CHECKS.iter().map(|c| c.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids.len(), sorted.len(), "duplicate ids");
        for check in CHECKS {
            let (prefix, number) = check.id.rsplit_once('-').expect("TS-AREA-NNN");
            assert!(
                ["TS-ECS", "TS-IAM", "TS-SIDECAR"].contains(&prefix),
                "{}",
                check.id
            );
            assert!(
                number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit()),
                "{}",
                check.id
            );
            assert!(!check.why.is_empty() && !check.fix.is_empty());
        }
    }
}
