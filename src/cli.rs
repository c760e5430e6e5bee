//! The command line: subcommands and flags (clap derive). Every flag of `run` has a
//! `TASKSENTRY_*` environment variable; flags win over variables, which win over the
//! configuration file, which wins over the defaults (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Overrides, RuleMatchingMode};

/// TaskSentry: a runtime security monitor for ECS tasks on AWS Fargate.
///
/// Run it as a sidecar container in a task with `pidMode: task`: it watches the other
/// containers' processes through /proc, matches what it sees against Falco-compatible rules
/// (a default set is built in) and prints one JSON alert per line on stdout.
///
/// Exit codes: 0 success, 1 runtime failure (or rule files with errors for `rules validate`,
/// findings at or above `--fail-on` for `lint`, any credential for `secrets`), 2 bad usage (or an
/// unreadable `lint` input),
/// 78 invalid configuration or rules at start.
#[derive(Debug, Parser)]
#[command(
    name = "tasksentry",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// `run` carries every setting; the enum is built once per process, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the monitor: watch the task and print alerts (or events) as JSON lines on stdout.
    Run(RunArgs),
    /// Print the catalogue of fields that rules and outputs can use.
    Fields(FieldsArgs),
    /// Work with rule files offline: validate, list, replay recorded events.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Check ECS task definitions, their roles' IAM policies and CloudFormation templates
    /// before they ship, including whether the TaskSentry sidecar can see (docs/lint.md).
    Lint(LintArgs),
    /// Print the software bill of materials of a container root (its OS and language packages)
    /// as CycloneDX 1.5 JSON (docs/images.md).
    Sbom(SbomArgs),
    /// Find credentials baked into a container root: one JSON line per finding with the file,
    /// line, kind and a fingerprint, never the value (docs/images.md). Exit 1 when any is found.
    Secrets(SecretsArgs),
    /// Workload profiles: build a rules file from learnt snapshots (`run --learn`).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print the version and the Falco rule-engine version TaskSentry is compatible with.
    Version,
}

/// Flags of `tasksentry lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Task definitions (`aws ecs describe-task-definition` output or `register-task-definition`
    /// input), CloudFormation templates (JSON or YAML) or IAM policies, recognised by content.
    #[arg(value_name = "FILES", required_unless_present = "list_checks")]
    pub files: Vec<PathBuf>,
    /// A policy of the task role (plain, or `aws iam get-policy-version` / `get-role-policy`
    /// output); checked, and used by the sidecar's CloudWatch permission check.
    #[arg(long, value_name = "POLICY.json")]
    pub task_role_policy: Vec<PathBuf>,
    /// A policy of the execution role; checked, and compared with the task definition's
    /// `secrets`.
    #[arg(long, value_name = "POLICY.json")]
    pub execution_role_policy: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LintFormat,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value = "high")]
    pub fail_on: crate::lint::Severity,
    /// Do not run this check (repeatable), e.g. `--skip TS-ECS-013`.
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    /// Print every check (id, severity, why) and exit.
    #[arg(long)]
    pub list_checks: bool,
}

/// Flags of `tasksentry sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The container root to read: an unpacked image, or `/proc/PID/root` of a process in it.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "cyclonedx-json")]
    pub format: SbomFormat,
    /// A directory of OSV JSON records, or a zip of them (osv.dev's per-ecosystem `all.zip`
    /// exports): adds the known vulnerabilities of the components (CycloneDX `vulnerabilities`).
    #[arg(long, value_name = "DIR|ZIP")]
    pub vulndb: Option<PathBuf>,
    /// With --vulndb: a process of the container (repeatable); a vulnerable package one of
    /// whose files it maps (`/proc/PID/maps`) or executes is reported in use.
    #[arg(long, value_name = "PID", requires = "vulndb")]
    pub pid: Vec<i32>,
    /// Directory entries looked at, at most, in the pass.
    #[arg(long, value_name = "N", default_value_t = crate::image::Limits::default().max_files)]
    pub max_files: u64,
    /// Bytes read, at most, in the pass.
    #[arg(long, value_name = "BYTES", default_value_t = crate::image::Limits::default().max_bytes)]
    pub max_bytes: u64,
    /// A package metadata file bigger than this is skipped.
    #[arg(long, value_name = "BYTES", default_value_t = crate::image::Limits::default().max_file_bytes)]
    pub max_file_bytes: u64,
    /// A Java archive (also one nested in another) bigger than this is skipped.
    #[arg(long, value_name = "BYTES", default_value_t = crate::image::Limits::default().max_archive_bytes)]
    pub max_archive_bytes: u64,
}

/// Flags of `tasksentry secrets`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The container root to read: an unpacked image, or `/proc/PID/root` of a process in it.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// A process of the container (repeatable, e.g. its entrypoint) whose environment
    /// (`/proc/PID/environ`) is checked for credentials too.
    #[arg(long, value_name = "PID")]
    pub pid: Vec<i32>,
    /// Directory entries looked at, at most, in the pass.
    #[arg(long, value_name = "N", default_value_t = crate::image::Limits::default().max_files)]
    pub max_files: u64,
    /// Bytes read, at most, in the pass.
    #[arg(long, value_name = "BYTES", default_value_t = crate::image::Limits::default().max_bytes)]
    pub max_bytes: u64,
}

/// Output formats of `tasksentry sbom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// CycloneDX 1.5, JSON.
    CyclonedxJson,
}

/// Output formats of `tasksentry lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// `file:line:column: severity ID: message`, why and fix, for people.
    Text,
    /// One JSON document (docs/lint.md).
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

/// Flags of `tasksentry run`; each one can also be set by its environment variable or in the
/// configuration file (`--config`), in that order of precedence. They are declared, with the
/// rest of each setting, in [`crate::config`]'s settings table.
pub(crate) type RunArgs = Overrides;

/// Flags of `tasksentry fields`.
#[derive(Debug, Args)]
pub struct FieldsArgs {
    /// Print the catalogue as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `tasksentry rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files: load them (after the embedded defaults unless --no-default-rules) and
    /// report rules loaded, rules skipped with reasons, and every error with file:line:column.
    /// Exit code 0 when there is no error, 1 otherwise.
    Validate {
        /// Rule files or directories, loaded in order.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        /// A rule that needs a field TaskSentry does not provide is an error, not a skip.
        #[arg(long)]
        strict: bool,
        /// Validate the files alone, without the embedded default rules before them.
        #[arg(long)]
        no_default_rules: bool,
    },
    /// List the rules (embedded defaults, then FILES): name, priority, enabled, event types, tags.
    List {
        /// Extra rule files or directories.
        #[arg(value_name = "FILES")]
        files: Vec<PathBuf>,
        /// Without the embedded default rules.
        #[arg(long)]
        no_default_rules: bool,
    },
    /// Replay recorded events (`tasksentry run --emit events` output, one JSON event per line)
    /// through rules and print the alerts they raise, one JSON line each.
    Test {
        /// The recording (NDJSON); `-` reads stdin.
        #[arg(long, value_name = "FILE.ndjson")]
        events: PathBuf,
        /// Extra rule files or directories, loaded after the embedded defaults.
        #[arg(value_name = "RULE_FILES")]
        files: Vec<PathBuf>,
        /// Without the embedded default rules.
        #[arg(long)]
        no_default_rules: bool,
        /// `first` (default) or `all` matching rules alert.
        #[arg(long, value_enum, default_value = "first")]
        rule_matching: RuleMatchingMode,
        /// The `hostname` written in alerts [default: this machine's host name].
        #[arg(long)]
        hostname: Option<String>,
    },
}

/// `tasksentry profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Build a profile from the `profile_snapshot` records of one or many tasks (`run --learn`):
    /// recordings (`--record`), stdout lines (events or alerts), `aws logs filter-log-events`
    /// output or CloudWatch Logs exports. Snapshots split in parts are put back together; tasks
    /// are merged (union, with how many tasks and how often each entry was seen). Writes a rules
    /// file to load after the defaults with `run --rules`.
    Build {
        /// Files with snapshot records; `-` reads stdin.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
        /// The rules file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Leave out what fewer than K tasks saw (so that one compromised task does not teach
        /// the profile its attack).
        #[arg(long, value_name = "K", default_value_t = 1)]
        min_tasks: usize,
    },
    /// Compare two profiles: what the new one adds (`+`) and drops (`-`), by container, kind
    /// and entry (counts aside).
    Diff {
        /// The profile in force.
        old: PathBuf,
        /// The rebuilt profile.
        new: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_has_a_flag_and_variable() {
        let command = Cli::command();
        let run = command.find_subcommand("run").expect("run exists");
        for (name, flag, env, ..) in crate::config::SETTINGS {
            let long = flag.trim_start_matches("--");
            let arg = run
                .get_arguments()
                .find(|arg| arg.get_long() == Some(long))
                .unwrap_or_else(|| panic!("setting {name} has no flag {flag}"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(*env),
                "setting {name} must read {env}"
            );
        }
    }

    #[test]
    fn bool_flags_work_bare_and_with_values() {
        let cli = Cli::try_parse_from(["tasksentry", "run", "--strict", "--triggers", "false"])
            .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(args.strict, Some(true));
        assert_eq!(args.triggers, Some(false));
    }
}
