//! The command line: subcommands and flags (clap derive). Every flag of `run` has a
//! `TASKSENTRY_*` environment variable; flags win over variables, which win over the
//! configuration file, which wins over the defaults (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Emit, LogFormat, Mode, Output, Overrides, RuleMatchingMode};

/// Exit codes of the `tasksentry` binary.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (or, for `rules validate`, rule files with errors).
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// Invalid configuration or rules at start (`EX_CONFIG` from sysexits.h).
    pub const CONFIG: u8 = 78;
}

/// TaskSentry: a runtime security monitor for ECS tasks on AWS Fargate.
///
/// Run it as a sidecar container in a task with `pidMode: task`: it watches the other
/// containers' processes through /proc, matches what it sees against Falco-compatible rules
/// (a default set is built in) and prints one JSON alert per line on stdout.
///
/// Exit codes: 0 success, 1 runtime failure (or rule files with errors for `rules validate`),
/// 2 bad usage, 78 invalid configuration or rules at start.
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
    /// Print the version and the Falco rule-engine version TaskSentry is compatible with.
    Version,
}

/// Flags of `tasksentry run`; each one can also be set by its environment variable or in the
/// configuration file (`--config`), in that order of precedence.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// YAML configuration file (keys are the long flag names with `_` for `-`).
    #[arg(long, env = "TASKSENTRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to print: `alerts` (rule matches, default) or `events` (every observation, the
    /// format that `rules test --events` replays).
    #[arg(long, env = "TASKSENTRY_EMIT", value_enum)]
    pub emit: Option<Emit>,
    /// /proc rescan interval [default: 100ms]; inotify triggers rescan sooner.
    #[arg(long, env = "TASKSENTRY_INTERVAL", value_name = "DURATION")]
    pub interval: Option<String>,
    /// Where the task's /proc is mounted [default: /proc].
    #[arg(long, env = "TASKSENTRY_PROC_ROOT", value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Extra rule file or directory, loaded after the embedded defaults (repeatable; the
    /// variable takes a comma-separated list).
    #[arg(
        long = "rules",
        env = "TASKSENTRY_RULES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub rules: Option<Vec<PathBuf>>,
    /// Do not load the embedded default rules.
    #[arg(long, env = "TASKSENTRY_NO_DEFAULT_RULES", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub no_default_rules: Option<bool>,
    /// A rule that needs a field TaskSentry does not provide is an error, not a skip.
    #[arg(long, env = "TASKSENTRY_STRICT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub strict: Option<bool>,
    /// `first`: only the first matching rule alerts (Falco's default); `all`: every one.
    #[arg(long, env = "TASKSENTRY_RULE_MATCHING", value_enum)]
    pub rule_matching: Option<RuleMatchingMode>,
    /// Do not evaluate rules less severe than this priority [default: debug].
    #[arg(long, env = "TASKSENTRY_MIN_PRIORITY", value_name = "PRIORITY")]
    pub min_priority: Option<String>,
    /// Rescan /proc at once when a container opens its loader or a PATH binary [default: true].
    #[arg(long, env = "TASKSENTRY_TRIGGERS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub triggers: Option<bool>,
    /// Extra environment variable names to read from processes (comma-separated).
    #[arg(
        long,
        env = "TASKSENTRY_ENV_ALLOWLIST",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub env_allowlist: Option<Vec<String>>,
    /// Capacity of the bounded queues between pipeline stages [default: 16384].
    #[arg(long, env = "TASKSENTRY_QUEUE_CAPACITY", value_name = "N")]
    pub queue_capacity: Option<usize>,
    /// The `hostname` written in alerts [default: this machine's host name].
    #[arg(long, env = "TASKSENTRY_HOSTNAME")]
    pub hostname: Option<String>,
    /// Filter for TaskSentry's own logs on stderr [default: info].
    #[arg(long, env = "TASKSENTRY_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Format of TaskSentry's own logs on stderr [default: text].
    #[arg(long, env = "TASKSENTRY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Also append every event to this NDJSON file, to replay with `rules test --events`.
    #[arg(long, env = "TASKSENTRY_RECORD", value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Where alerts go: `stdout`, `cloudwatch` or both (comma-separated) [default: stdout;
    /// setting --log-group adds cloudwatch].
    #[arg(long, env = "TASKSENTRY_OUTPUTS", value_enum, value_delimiter = ',')]
    pub outputs: Option<Vec<Output>>,
    /// CloudWatch log group, created when missing [default: /ecs/tasksentry].
    #[arg(long, env = "TASKSENTRY_LOG_GROUP", value_name = "NAME")]
    pub log_group: Option<String>,
    /// CloudWatch log stream [default: the ECS task id, else the host name].
    #[arg(long, env = "TASKSENTRY_LOG_STREAM", value_name = "NAME")]
    pub log_stream: Option<String>,
    /// CloudWatch Logs endpoint URL override (tests, VPC endpoints).
    #[arg(long, env = "TASKSENTRY_CLOUDWATCH_ENDPOINT", value_name = "URL")]
    pub cloudwatch_endpoint: Option<String>,
    /// CloudWatch Logs region [default: AWS_REGION, AWS_DEFAULT_REGION].
    #[arg(long, env = "TASKSENTRY_CLOUDWATCH_REGION", value_name = "REGION")]
    pub cloudwatch_region: Option<String>,
    /// Retention in days set when TaskSentry creates the log group.
    #[arg(long, env = "TASKSENTRY_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<i32>,
    /// Longest wait before buffered alerts are sent to CloudWatch [default: 1s].
    #[arg(long, env = "TASKSENTRY_BATCH_INTERVAL", value_name = "DURATION")]
    pub batch_interval: Option<String>,
    /// Alerts held in memory while CloudWatch is unreachable [default: 10000].
    #[arg(long, env = "TASKSENTRY_BUFFER_CAPACITY", value_name = "N")]
    pub buffer_capacity: Option<usize>,
    /// Directory for alerts that do not fit in memory.
    #[arg(long, env = "TASKSENTRY_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Most bytes kept in the spill directory [default: 268435456].
    #[arg(long, env = "TASKSENTRY_SPILL_MAX_BYTES", value_name = "BYTES")]
    pub spill_max_bytes: Option<u64>,
    /// How long the CloudWatch flush at shutdown may take [default: 25s].
    #[arg(long, env = "TASKSENTRY_FLUSH_TIMEOUT", value_name = "DURATION")]
    pub flush_timeout: Option<String>,
    /// Alerts less severe than this are not sent to CloudWatch [default: debug].
    #[arg(
        long,
        env = "TASKSENTRY_CLOUDWATCH_MIN_PRIORITY",
        value_name = "PRIORITY"
    )]
    pub cloudwatch_min_priority: Option<String>,
    /// Repeats of an alert within this window become one summary alert with a count
    /// [default: 60s; 0s disables].
    #[arg(long, env = "TASKSENTRY_AGGREGATION_WINDOW", value_name = "DURATION")]
    pub aggregation_window: Option<String>,
    /// Alerts per minute each rule may ship; the excess is counted and reported [default:
    /// 120; 0 = unlimited].
    #[arg(long, env = "TASKSENTRY_RULE_ALERT_BUDGET", value_name = "N")]
    pub rule_alert_budget: Option<u32>,
    /// Alerts per minute all rules together may ship [default: 1200; 0 = unlimited].
    #[arg(long, env = "TASKSENTRY_ALERT_BUDGET", value_name = "N")]
    pub alert_budget: Option<u32>,
    /// Alerts less severe than this are not printed on stdout [default: debug].
    #[arg(long, env = "TASKSENTRY_STDOUT_MIN_PRIORITY", value_name = "PRIORITY")]
    pub stdout_min_priority: Option<String>,
    /// Extra regular expression to redact from alerts (repeatable; the variable takes a
    /// newline-separated list).
    #[arg(
        long = "redact-patterns",
        env = "TASKSENTRY_REDACT_PATTERNS",
        value_name = "REGEX",
        value_delimiter = '\n'
    )]
    pub redact_patterns: Option<Vec<String>>,
    /// How often configured rule files are checked for changes (which reload the rules)
    /// [default: 2s; 0s disables].
    #[arg(long, env = "TASKSENTRY_RULES_POLL_INTERVAL", value_name = "DURATION")]
    pub rules_poll_interval: Option<String>,
    /// `poll` (/proc only, default), `trace` (also event-only ptrace; needs SYS_PTRACE) or
    /// `auto` (trace when possible, else poll).
    #[arg(long, env = "TASKSENTRY_MODE", value_enum)]
    pub mode: Option<Mode>,
    /// Run the monitor under a supervisor that restarts it when killed and reports it
    /// [default: true].
    #[arg(long, env = "TASKSENTRY_SUPERVISE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub supervise: Option<bool>,
    /// Restarts allowed per 10 minutes before the supervisor gives up [default: 5].
    #[arg(long, env = "TASKSENTRY_MAX_RESTARTS", value_name = "N")]
    pub max_restarts: Option<u32>,
    /// Extra file watch entry: `PATH [recursive|depth=N] [EVENTS] [priority=N] [name=NAME]`,
    /// EVENTS a comma-separated list of read, write, open, create, delete, move, attrib,
    /// modify (default) or all; e.g. `--watch '/srv/app recursive write'`. A default path
    /// named again is replaced (repeatable; the variable takes a `;`-separated list).
    #[arg(
        long = "watch",
        env = "TASKSENTRY_WATCH",
        value_name = "ENTRY",
        value_delimiter = ';'
    )]
    pub watch: Option<Vec<String>>,
    /// Default watch groups (credentials, etc, cron, home, binaries, temp, libraries,
    /// packages) or default paths not to watch (comma-separated).
    #[arg(
        long,
        env = "TASKSENTRY_WATCH_REMOVE",
        value_name = "GROUPS_OR_PATHS",
        value_delimiter = ','
    )]
    pub watch_remove: Option<Vec<String>>,
    /// Start from the default watch set [default: true]; `false` watches only the --watch
    /// entries.
    #[arg(long, env = "TASKSENTRY_WATCH_DEFAULTS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub watch_defaults: Option<bool>,
    /// Most inotify watches the file collector holds [default: half of max_user_watches];
    /// beyond it the lowest-priority groups are dropped and reported.
    #[arg(long, env = "TASKSENTRY_WATCH_BUDGET", value_name = "N")]
    pub watch_budget: Option<usize>,
}

impl RunArgs {
    /// The settings given on the command line or in the environment.
    pub fn overrides(self) -> Overrides {
        Overrides {
            config_file: self.config,
            emit: self.emit,
            interval: self.interval,
            proc_root: self.proc_root,
            rules: self.rules,
            no_default_rules: self.no_default_rules,
            strict: self.strict,
            rule_matching: self.rule_matching,
            min_priority: self.min_priority,
            triggers: self.triggers,
            env_allowlist: self.env_allowlist,
            queue_capacity: self.queue_capacity,
            hostname: self.hostname,
            log_level: self.log_level,
            log_format: self.log_format,
            record: self.record,
            outputs: self.outputs,
            log_group: self.log_group,
            log_stream: self.log_stream,
            cloudwatch_endpoint: self.cloudwatch_endpoint,
            cloudwatch_region: self.cloudwatch_region,
            retention_days: self.retention_days,
            batch_interval: self.batch_interval,
            buffer_capacity: self.buffer_capacity,
            spill_dir: self.spill_dir,
            spill_max_bytes: self.spill_max_bytes,
            flush_timeout: self.flush_timeout,
            cloudwatch_min_priority: self.cloudwatch_min_priority,
            aggregation_window: self.aggregation_window,
            rule_alert_budget: self.rule_alert_budget,
            alert_budget: self.alert_budget,
            stdout_min_priority: self.stdout_min_priority,
            redact_patterns: self.redact_patterns,
            rules_poll_interval: self.rules_poll_interval,
            mode: self.mode,
            supervise: self.supervise,
            max_restarts: self.max_restarts,
            watch: self.watch,
            watch_remove: self.watch_remove,
            watch_defaults: self.watch_defaults,
            watch_budget: self.watch_budget,
        }
    }
}

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
