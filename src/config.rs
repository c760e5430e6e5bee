//! Configuration: command-line flags > `TASKSENTRY_*` environment variables > YAML file > defaults.
//!
//! The command line (see `src/main.rs`) produces a [`Overrides`] in which every setting is
//! optional: clap fills a value from the flag, or else from the setting's environment variable.
//! The optional YAML file is read into a [`FileConfig`], which rejects unknown keys. [`Config::resolve`]
//! layers the two over the defaults and validates the result; every error names the setting
//! (as it is spelled in the file, with its flag and variable) so that a bad value fails at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What `tasksentry run` writes to its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Emit {
    /// Alerts from the rule engine (the default).
    Alerts,
    /// Every event the collectors produce, before rules (visibility and recording mode).
    Events,
}

/// How the engine treats an event that several rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuleMatchingMode {
    /// Only the first matching rule (in rule order) alerts, as Falco does by default.
    First,
    /// Every matching rule alerts.
    All,
}

/// How processes are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Poll `/proc` (plus inotify triggers) only.
    Poll,
    /// Also trace the monitored processes with event-only ptrace (needs `SYS_PTRACE`): every
    /// exec is seen, with the process frozen.
    Trace,
    /// `trace` when the monitor can trace, else `poll`; the choice is logged.
    Auto,
}

/// The format of TaskSentry's own logs (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where `tasksentry run` delivers its output lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// JSON lines on stdout (the awslogs driver ships them).
    Stdout,
    /// CloudWatch Logs directly (PutLogEvents).
    Cloudwatch,
}

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Settings given on the command line or in `TASKSENTRY_*` variables (clap resolves the
/// precedence between those two); `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config` / `TASKSENTRY_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// `--emit` / `TASKSENTRY_EMIT`.
    pub emit: Option<Emit>,
    /// `--interval` / `TASKSENTRY_INTERVAL`.
    pub interval: Option<String>,
    /// `--proc-root` / `TASKSENTRY_PROC_ROOT`.
    pub proc_root: Option<PathBuf>,
    /// `--rules` / `TASKSENTRY_RULES` (replaces the file's list when given).
    pub rules: Option<Vec<PathBuf>>,
    /// `--no-default-rules` / `TASKSENTRY_NO_DEFAULT_RULES`.
    pub no_default_rules: Option<bool>,
    /// `--strict` / `TASKSENTRY_STRICT`.
    pub strict: Option<bool>,
    /// `--rule-matching` / `TASKSENTRY_RULE_MATCHING`.
    pub rule_matching: Option<RuleMatchingMode>,
    /// `--min-priority` / `TASKSENTRY_MIN_PRIORITY`.
    pub min_priority: Option<String>,
    /// `--triggers` / `TASKSENTRY_TRIGGERS`.
    pub triggers: Option<bool>,
    /// `--env-allowlist` / `TASKSENTRY_ENV_ALLOWLIST`.
    pub env_allowlist: Option<Vec<String>>,
    /// `--queue-capacity` / `TASKSENTRY_QUEUE_CAPACITY`.
    pub queue_capacity: Option<usize>,
    /// `--hostname` / `TASKSENTRY_HOSTNAME`.
    pub hostname: Option<String>,
    /// `--log-level` / `TASKSENTRY_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// `--log-format` / `TASKSENTRY_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--record` / `TASKSENTRY_RECORD`.
    pub record: Option<PathBuf>,
    /// `--outputs` / `TASKSENTRY_OUTPUTS`.
    pub outputs: Option<Vec<Output>>,
    /// `--log-group` / `TASKSENTRY_LOG_GROUP`.
    pub log_group: Option<String>,
    /// `--log-stream` / `TASKSENTRY_LOG_STREAM`.
    pub log_stream: Option<String>,
    /// `--cloudwatch-endpoint` / `TASKSENTRY_CLOUDWATCH_ENDPOINT`.
    pub cloudwatch_endpoint: Option<String>,
    /// `--cloudwatch-region` / `TASKSENTRY_CLOUDWATCH_REGION`.
    pub cloudwatch_region: Option<String>,
    /// `--retention-days` / `TASKSENTRY_RETENTION_DAYS`.
    pub retention_days: Option<i32>,
    /// `--batch-interval` / `TASKSENTRY_BATCH_INTERVAL`.
    pub batch_interval: Option<String>,
    /// `--buffer-capacity` / `TASKSENTRY_BUFFER_CAPACITY`.
    pub buffer_capacity: Option<usize>,
    /// `--spill-dir` / `TASKSENTRY_SPILL_DIR`.
    pub spill_dir: Option<PathBuf>,
    /// `--spill-max-bytes` / `TASKSENTRY_SPILL_MAX_BYTES`.
    pub spill_max_bytes: Option<u64>,
    /// `--flush-timeout` / `TASKSENTRY_FLUSH_TIMEOUT`.
    pub flush_timeout: Option<String>,
    /// `--cloudwatch-min-priority` / `TASKSENTRY_CLOUDWATCH_MIN_PRIORITY`.
    pub cloudwatch_min_priority: Option<String>,
    /// `--aggregation-window` / `TASKSENTRY_AGGREGATION_WINDOW`.
    pub aggregation_window: Option<String>,
    /// `--rule-alert-budget` / `TASKSENTRY_RULE_ALERT_BUDGET`.
    pub rule_alert_budget: Option<u32>,
    /// `--alert-budget` / `TASKSENTRY_ALERT_BUDGET`.
    pub alert_budget: Option<u32>,
    /// `--stdout-min-priority` / `TASKSENTRY_STDOUT_MIN_PRIORITY`.
    pub stdout_min_priority: Option<String>,
    /// `--redact-patterns` / `TASKSENTRY_REDACT_PATTERNS`.
    pub redact_patterns: Option<Vec<String>>,
    /// `--rules-poll-interval` / `TASKSENTRY_RULES_POLL_INTERVAL`.
    pub rules_poll_interval: Option<String>,
    /// `--mode` / `TASKSENTRY_MODE`.
    pub mode: Option<Mode>,
    /// `--supervise` / `TASKSENTRY_SUPERVISE`.
    pub supervise: Option<bool>,
    /// `--max-restarts` / `TASKSENTRY_MAX_RESTARTS`.
    pub max_restarts: Option<u32>,
    /// `--watch` / `TASKSENTRY_WATCH` (compact entries; replaces the file's list when given).
    pub watch: Option<Vec<String>>,
    /// `--watch-remove` / `TASKSENTRY_WATCH_REMOVE`.
    pub watch_remove: Option<Vec<String>>,
    /// `--watch-defaults` / `TASKSENTRY_WATCH_DEFAULTS`.
    pub watch_defaults: Option<bool>,
    /// `--watch-budget` / `TASKSENTRY_WATCH_BUDGET`.
    pub watch_budget: Option<usize>,
}

/// The YAML configuration file. Keys are the settings' names; unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::emit`].
    pub emit: Option<Emit>,
    /// See [`Config::interval`] (a duration such as `100ms` or `1s`).
    pub interval: Option<String>,
    /// See [`Config::proc_root`].
    pub proc_root: Option<PathBuf>,
    /// See [`Config::rules`].
    pub rules: Option<Vec<PathBuf>>,
    /// See [`Config::no_default_rules`].
    pub no_default_rules: Option<bool>,
    /// See [`Config::strict`].
    pub strict: Option<bool>,
    /// See [`Config::rule_matching`].
    pub rule_matching: Option<RuleMatchingMode>,
    /// See [`Config::min_priority`].
    pub min_priority: Option<String>,
    /// See [`Config::triggers`].
    pub triggers: Option<bool>,
    /// See [`Config::env_allowlist`].
    pub env_allowlist: Option<Vec<String>>,
    /// See [`Config::queue_capacity`].
    pub queue_capacity: Option<usize>,
    /// See [`Config::hostname`].
    pub hostname: Option<String>,
    /// See [`Config::log_level`].
    pub log_level: Option<String>,
    /// See [`Config::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`Config::record`].
    pub record: Option<PathBuf>,
    /// See [`Config::outputs`].
    pub outputs: Option<Vec<Output>>,
    /// See [`Config::log_group`].
    pub log_group: Option<String>,
    /// See [`Config::log_stream`].
    pub log_stream: Option<String>,
    /// See [`Config::cloudwatch_endpoint`].
    pub cloudwatch_endpoint: Option<String>,
    /// See [`Config::cloudwatch_region`].
    pub cloudwatch_region: Option<String>,
    /// See [`Config::retention_days`].
    pub retention_days: Option<i32>,
    /// See [`Config::batch_interval`] (a duration).
    pub batch_interval: Option<String>,
    /// See [`Config::buffer_capacity`].
    pub buffer_capacity: Option<usize>,
    /// See [`Config::spill_dir`].
    pub spill_dir: Option<PathBuf>,
    /// See [`Config::spill_max_bytes`].
    pub spill_max_bytes: Option<u64>,
    /// See [`Config::flush_timeout`] (a duration).
    pub flush_timeout: Option<String>,
    /// See [`Config::cloudwatch_min_priority`].
    pub cloudwatch_min_priority: Option<String>,
    /// See [`Config::aggregation_window`] (a duration; `0s` disables aggregation).
    pub aggregation_window: Option<String>,
    /// See [`Config::rule_alert_budget`].
    pub rule_alert_budget: Option<u32>,
    /// See [`Config::alert_budget`].
    pub alert_budget: Option<u32>,
    /// See [`Config::stdout_min_priority`].
    pub stdout_min_priority: Option<String>,
    /// See [`Config::redact_patterns`].
    pub redact_patterns: Option<Vec<String>>,
    /// See [`Config::rules_poll_interval`] (a duration; `0s` disables polling).
    pub rules_poll_interval: Option<String>,
    /// See [`Config::mode`].
    pub mode: Option<Mode>,
    /// See [`Config::supervise`].
    pub supervise: Option<bool>,
    /// See [`Config::max_restarts`].
    pub max_restarts: Option<u32>,
    /// See [`Config::watch_groups`]: extra watch entries, each a compact string or a mapping
    /// (checked in [`Config::layer`] so that errors name the setting).
    pub watch: Option<Vec<serde_json::Value>>,
    /// See [`Config::watch_groups`]: default groups or paths not watched.
    pub watch_remove: Option<Vec<String>>,
    /// See [`Config::watch_groups`]: start from the default watch set.
    pub watch_defaults: Option<bool>,
    /// See [`Config::watch_budget`].
    pub watch_budget: Option<usize>,
}

/// The resolved, validated configuration of `tasksentry run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// What the monitor writes: alerts (default) or raw events.
    pub emit: Emit,
    /// How often /proc is rescanned (default 100 ms; inotify triggers rescan sooner).
    pub interval: Duration,
    /// Where the task's /proc is mounted (default `/proc`).
    pub proc_root: PathBuf,
    /// Extra rule files and directories, loaded in order after the embedded defaults.
    pub rules: Vec<PathBuf>,
    /// Do not load the embedded default rules.
    pub no_default_rules: bool,
    /// Treat rules that need a field TaskSentry does not provide as errors.
    pub strict: bool,
    /// First matching rule only, or every matching rule.
    pub rule_matching: RuleMatchingMode,
    /// Rules less severe than this priority are not evaluated (default `debug`: all).
    pub min_priority: String,
    /// Rescan immediately on inotify triggers (exec of a binary, loader cache opened).
    pub triggers: bool,
    /// Extra environment variable names read from processes, on top of the built-in list.
    pub env_allowlist: Vec<String>,
    /// Capacity of the bounded queues between pipeline stages.
    pub queue_capacity: usize,
    /// The `hostname` of alerts (default: the machine's host name).
    pub hostname: Option<String>,
    /// `tracing` filter for TaskSentry's own logs (default `info`).
    pub log_level: String,
    /// Format of TaskSentry's own logs.
    pub log_format: LogFormat,
    /// Also append every event (the `--emit events` format) to this file, for replaying
    /// with `tasksentry rules test` while tuning rules.
    pub record: Option<PathBuf>,
    /// Where output lines go (default stdout; `cloudwatch` is added when `log_group` is set).
    pub outputs: Vec<Output>,
    /// The CloudWatch log group (created when missing).
    pub log_group: String,
    /// The CloudWatch log stream (default: the ECS task id, else the host name).
    pub log_stream: Option<String>,
    /// CloudWatch Logs endpoint override (tests, VPC endpoints).
    pub cloudwatch_endpoint: Option<String>,
    /// CloudWatch Logs region override (default: `AWS_REGION`/`AWS_DEFAULT_REGION`).
    pub cloudwatch_region: Option<String>,
    /// Retention applied when TaskSentry creates the log group.
    pub retention_days: Option<i32>,
    /// Longest wait before buffered records are sent to CloudWatch.
    pub batch_interval: Duration,
    /// Records held in memory for CloudWatch.
    pub buffer_capacity: usize,
    /// Directory for records that do not fit in memory.
    pub spill_dir: Option<PathBuf>,
    /// Most bytes kept in `spill_dir`.
    pub spill_max_bytes: u64,
    /// How long the flush at shutdown may take.
    pub flush_timeout: Duration,
    /// Records less severe than this are not sent to CloudWatch.
    pub cloudwatch_min_priority: String,
    /// Repeats of one alert within this window are summarised in one alert with a count
    /// (default 60 s; zero disables aggregation).
    pub aggregation_window: Duration,
    /// Alerts per minute each rule may ship (token bucket; 0 = unlimited); the excess is
    /// counted and reported.
    pub rule_alert_budget: u32,
    /// Alerts per minute all rules together may ship (0 = unlimited).
    pub alert_budget: u32,
    /// Alerts less severe than this are not printed on stdout (TaskSentry's own alerts
    /// always are).
    pub stdout_min_priority: String,
    /// Extra regular expressions whose matches (or group `secret`/1) are redacted.
    pub redact_patterns: Vec<String>,
    /// How often the configured rule files and directories are checked for changes, which
    /// reload the rules like SIGHUP (zero disables).
    pub rules_poll_interval: Duration,
    /// `poll` (default), `trace` (event-only ptrace on top of polling) or `auto`.
    pub mode: Mode,
    /// Run the monitor as the child of a small supervisor that restarts it when it is killed
    /// and reports that (default true; see [`crate::alert::supervise`]).
    pub supervise: bool,
    /// Restarts the supervisor allows per 10 minutes before it gives up (0: never restart).
    pub max_restarts: u32,
    /// The file collector's watch set: the default groups, minus `watch_remove`, with the
    /// `watch` entries added (or replacing a default path they name again).
    pub watch_groups: Vec<crate::collect::fswatch::WatchGroup>,
    /// Most inotify watches the file collector holds (default: half of `max_user_watches`).
    pub watch_budget: Option<usize>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            emit: Emit::Alerts,
            interval: Duration::from_millis(100),
            proc_root: PathBuf::from("/proc"),
            rules: Vec::new(),
            no_default_rules: false,
            strict: false,
            rule_matching: RuleMatchingMode::First,
            min_priority: "debug".to_owned(),
            triggers: true,
            env_allowlist: Vec::new(),
            queue_capacity: 16_384,
            hostname: None,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            record: None,
            outputs: vec![Output::Stdout],
            log_group: "/ecs/tasksentry".to_owned(),
            log_stream: None,
            cloudwatch_endpoint: None,
            cloudwatch_region: None,
            retention_days: None,
            batch_interval: Duration::from_secs(1),
            buffer_capacity: 10_000,
            spill_dir: None,
            spill_max_bytes: 256 * 1024 * 1024,
            flush_timeout: Duration::from_secs(25),
            cloudwatch_min_priority: "debug".to_owned(),
            aggregation_window: Duration::from_secs(60),
            rule_alert_budget: 120,
            alert_budget: 1200,
            stdout_min_priority: "debug".to_owned(),
            redact_patterns: Vec::new(),
            rules_poll_interval: Duration::from_secs(2),
            mode: Mode::Poll,
            supervise: true,
            max_restarts: 5,
            watch_groups: crate::collect::fswatch::default_groups(),
            watch_budget: None,
        }
    }
}

/// A configuration that cannot be used; each variant names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML or has an unknown key or a bad value.
    #[error("invalid configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the setting.
        message: String,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid setting `{setting}` (flag --{flag}, variable {env}): {message}")]
    Setting {
        /// The setting's name in the file.
        setting: &'static str,
        /// Its command-line flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The documentation of every setting: name in the file, flag, variable, default, meaning.
/// The README's configuration table is generated from the same facts and checked by a test.
pub const SETTINGS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "config",
        "--config",
        "TASKSENTRY_CONFIG",
        "(none)",
        "YAML configuration file with any of the settings below",
    ),
    (
        "emit",
        "--emit",
        "TASKSENTRY_EMIT",
        "alerts",
        "`alerts` (rule matches) or `events` (every observation, the recording format)",
    ),
    (
        "interval",
        "--interval",
        "TASKSENTRY_INTERVAL",
        "100ms",
        "/proc rescan and socket table poll interval; inotify triggers rescan (and poll) sooner",
    ),
    (
        "proc_root",
        "--proc-root",
        "TASKSENTRY_PROC_ROOT",
        "/proc",
        "where the task's /proc is mounted",
    ),
    (
        "rules",
        "--rules",
        "TASKSENTRY_RULES",
        "(none)",
        "extra rule files or directories, loaded in order after the embedded defaults (comma-separated in the variable)",
    ),
    (
        "no_default_rules",
        "--no-default-rules",
        "TASKSENTRY_NO_DEFAULT_RULES",
        "false",
        "do not load the embedded default rules",
    ),
    (
        "strict",
        "--strict",
        "TASKSENTRY_STRICT",
        "false",
        "a rule needing a field TaskSentry lacks is an error instead of a skip",
    ),
    (
        "rule_matching",
        "--rule-matching",
        "TASKSENTRY_RULE_MATCHING",
        "first",
        "`first`: only the first matching rule alerts (Falco's default); `all`: every one",
    ),
    (
        "min_priority",
        "--min-priority",
        "TASKSENTRY_MIN_PRIORITY",
        "debug",
        "rules less severe than this are not evaluated",
    ),
    (
        "triggers",
        "--triggers",
        "TASKSENTRY_TRIGGERS",
        "true",
        "rescan /proc at once when a container opens its loader or a PATH binary, and poll the socket tables every 10 ms for 250 ms after",
    ),
    (
        "env_allowlist",
        "--env-allowlist",
        "TASKSENTRY_ENV_ALLOWLIST",
        "(built-in list)",
        "extra environment variable names read from processes",
    ),
    (
        "queue_capacity",
        "--queue-capacity",
        "TASKSENTRY_QUEUE_CAPACITY",
        "16384",
        "bounded queue size between pipeline stages; drops are counted and reported",
    ),
    (
        "hostname",
        "--hostname",
        "TASKSENTRY_HOSTNAME",
        "(host name)",
        "`hostname` written in alerts",
    ),
    (
        "log_level",
        "--log-level",
        "TASKSENTRY_LOG_LEVEL",
        "info",
        "filter for TaskSentry's own logs on stderr (`warn`, `debug`, `tasksentry=trace`, ...)",
    ),
    (
        "log_format",
        "--log-format",
        "TASKSENTRY_LOG_FORMAT",
        "text",
        "`text` or `json` logs on stderr",
    ),
    (
        "outputs",
        "--outputs",
        "TASKSENTRY_OUTPUTS",
        "stdout",
        "where alerts go: `stdout`, `cloudwatch` or both (comma-separated); setting `log_group` adds `cloudwatch`",
    ),
    (
        "log_group",
        "--log-group",
        "TASKSENTRY_LOG_GROUP",
        "/ecs/tasksentry",
        "CloudWatch log group, created when missing",
    ),
    (
        "log_stream",
        "--log-stream",
        "TASKSENTRY_LOG_STREAM",
        "(ECS task id, else host name)",
        "CloudWatch log stream, created when missing",
    ),
    (
        "cloudwatch_endpoint",
        "--cloudwatch-endpoint",
        "TASKSENTRY_CLOUDWATCH_ENDPOINT",
        "(AWS default)",
        "CloudWatch Logs endpoint URL override (tests, VPC endpoints)",
    ),
    (
        "cloudwatch_region",
        "--cloudwatch-region",
        "TASKSENTRY_CLOUDWATCH_REGION",
        "(`AWS_REGION`)",
        "CloudWatch Logs region override",
    ),
    (
        "retention_days",
        "--retention-days",
        "TASKSENTRY_RETENTION_DAYS",
        "(never expire)",
        "retention set when TaskSentry creates the log group (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)",
    ),
    (
        "batch_interval",
        "--batch-interval",
        "TASKSENTRY_BATCH_INTERVAL",
        "1s",
        "longest wait before buffered alerts are sent to CloudWatch (full batches go at once)",
    ),
    (
        "buffer_capacity",
        "--buffer-capacity",
        "TASKSENTRY_BUFFER_CAPACITY",
        "10000",
        "alerts held in memory while CloudWatch is slow or unreachable",
    ),
    (
        "spill_dir",
        "--spill-dir",
        "TASKSENTRY_SPILL_DIR",
        "(none)",
        "directory for alerts that do not fit in memory (NDJSON files, replayed in order, deleted once delivered)",
    ),
    (
        "spill_max_bytes",
        "--spill-max-bytes",
        "TASKSENTRY_SPILL_MAX_BYTES",
        "268435456",
        "most bytes kept in `spill_dir`; beyond it the least severe alerts are dropped and counted",
    ),
    (
        "flush_timeout",
        "--flush-timeout",
        "TASKSENTRY_FLUSH_TIMEOUT",
        "25s",
        "how long the CloudWatch flush at shutdown may take (keep it under the container's stopTimeout)",
    ),
    (
        "cloudwatch_min_priority",
        "--cloudwatch-min-priority",
        "TASKSENTRY_CLOUDWATCH_MIN_PRIORITY",
        "debug",
        "alerts less severe than this are not sent to CloudWatch",
    ),
    (
        "aggregation_window",
        "--aggregation-window",
        "TASKSENTRY_AGGREGATION_WINDOW",
        "60s",
        "repeats of an alert (same rule, container, executable, output values) within this window become one summary alert with a count; `0s` disables",
    ),
    (
        "rule_alert_budget",
        "--rule-alert-budget",
        "TASKSENTRY_RULE_ALERT_BUDGET",
        "120",
        "alerts per minute each rule may ship (token bucket, 0 = unlimited); the excess is counted and reported in an `alerts_suppressed` alert",
    ),
    (
        "alert_budget",
        "--alert-budget",
        "TASKSENTRY_ALERT_BUDGET",
        "1200",
        "alerts per minute all rules together may ship (0 = unlimited); TaskSentry's own alerts are exempt",
    ),
    (
        "stdout_min_priority",
        "--stdout-min-priority",
        "TASKSENTRY_STDOUT_MIN_PRIORITY",
        "debug",
        "alerts less severe than this are not printed on stdout; TaskSentry's own alerts always are",
    ),
    (
        "redact_patterns",
        "--redact-patterns",
        "TASKSENTRY_REDACT_PATTERNS",
        "(none)",
        "extra regular expressions redacted from alerts (group `secret` or 1 if present), on top of the built-in secret patterns (repeatable; the variable takes a newline-separated list)",
    ),
    (
        "rules_poll_interval",
        "--rules-poll-interval",
        "TASKSENTRY_RULES_POLL_INTERVAL",
        "2s",
        "how often configured rule files and directories are checked for changes, which reload the rules like SIGHUP; `0s` disables",
    ),
    (
        "mode",
        "--mode",
        "TASKSENTRY_MODE",
        "poll",
        "`poll`: /proc only; `trace`: also event-only ptrace (needs SYS_PTRACE), every exec seen; `auto`: trace when possible, else poll",
    ),
    (
        "supervise",
        "--supervise",
        "TASKSENTRY_SUPERVISE",
        "true",
        "run the monitor as the child of a small supervisor (the container's main process) that forwards signals, restarts the monitor when it is killed or crashes, and has the restarted monitor alert about it; `false`: the monitor is the main process",
    ),
    (
        "max_restarts",
        "--max-restarts",
        "TASKSENTRY_MAX_RESTARTS",
        "5",
        "restarts the supervisor allows per 10 minutes (the first at once, then 1 s, 2 s, ... up to 30 s apart) before it gives up and exits 1; `0`: never restart",
    ),
    (
        "watch",
        "--watch",
        "TASKSENTRY_WATCH",
        "(none)",
        "extra file watch entries `PATH [recursive\\|depth=N] [EVENTS] [priority=N] [name=NAME]`, EVENTS from read, write, open, create, delete, move, attrib, modify (default), all; a default path named again is replaced (repeatable; `;`-separated in the variable; the file also takes mappings, see docs/files.md)",
    ),
    (
        "watch_remove",
        "--watch-remove",
        "TASKSENTRY_WATCH_REMOVE",
        "(none)",
        "default watch groups (credentials, etc, cron, home, binaries, temp, libraries, packages) or default paths not to watch (comma-separated)",
    ),
    (
        "watch_defaults",
        "--watch-defaults",
        "TASKSENTRY_WATCH_DEFAULTS",
        "true",
        "start from the default watch set; `false` watches only the `watch` entries",
    ),
    (
        "watch_budget",
        "--watch-budget",
        "TASKSENTRY_WATCH_BUDGET",
        "(half of max_user_watches)",
        "most inotify watches the file collector holds; beyond it the lowest-priority groups are dropped and reported",
    ),
];

fn setting_error(setting: &'static str, message: impl Into<String>) -> ConfigError {
    let (flag, env) = SETTINGS
        .iter()
        .find(|(name, ..)| *name == setting)
        .map(|(_, flag, env, ..)| (flag.trim_start_matches("--"), *env))
        .unwrap_or(("?", "?"));
    ConfigError::Setting {
        setting,
        flag,
        env,
        message: message.into(),
    }
}

/// Whether a text names a rule priority (case-insensitive; `info` is `informational`).
fn is_priority(text: &str) -> bool {
    const NAMES: [&str; 9] = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "informational",
        "info",
        "debug",
    ];
    NAMES
        .iter()
        .any(|name| name.eq_ignore_ascii_case(text.trim()))
}

/// Parses a duration such as `100ms`, `2s`, `1m`, `250us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("`{text}` is not a duration ({error}); write e.g. `100ms` or `1s`")
    })
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::File {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration YAML text. An empty document is an empty configuration.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let value = crate::yaml::to_json(text)?;
        if value.is_null() {
            return Ok(FileConfig::default());
        }
        serde_json::from_value(value).map_err(|error| error.to_string())
    }
}

impl Config {
    /// Layers command-line/environment overrides over the file over the defaults, and
    /// validates the result.
    pub fn resolve(overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Config::layer(overrides, file)
    }

    /// Layers already-read parts (separate from [`Config::resolve`] so tests need no files).
    pub fn layer(overrides: Overrides, file: FileConfig) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let cloudwatch = resolve_cloudwatch(&overrides, &file)?;
        let (watch_groups, watch_budget) = resolve_watch(&overrides, &file)?;
        let interval = match overrides.interval.or(file.interval) {
            Some(text) => {
                parse_duration(&text).map_err(|message| setting_error("interval", message))?
            }
            None => defaults.interval,
        };
        if interval < Duration::from_millis(1) || interval > Duration::from_secs(60) {
            return Err(setting_error(
                "interval",
                format!("{interval:?} is out of range: use between 1ms and 60s"),
            ));
        }
        let queue_capacity = overrides
            .queue_capacity
            .or(file.queue_capacity)
            .unwrap_or(defaults.queue_capacity);
        if !(16..=10_000_000).contains(&queue_capacity) {
            return Err(setting_error(
                "queue_capacity",
                format!("{queue_capacity} is out of range: use between 16 and 10000000"),
            ));
        }
        let min_priority = overrides
            .min_priority
            .or(file.min_priority)
            .unwrap_or(defaults.min_priority);
        if !is_priority(&min_priority) {
            return Err(setting_error(
                "min_priority",
                format!(
                    "`{min_priority}` is not a priority: use emergency, alert, critical, error, warning, notice, informational (info) or debug"
                ),
            ));
        }
        let log_level = overrides
            .log_level
            .or(file.log_level)
            .unwrap_or(defaults.log_level);
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(setting_error(
                "log_level",
                format!(
                    "`{log_level}` is not a log filter: use e.g. `info`, `debug` or `tasksentry=trace`"
                ),
            ));
        }
        let env_allowlist = overrides
            .env_allowlist
            .or(file.env_allowlist)
            .unwrap_or(defaults.env_allowlist);
        if let Some(bad) = env_allowlist
            .iter()
            .find(|name| name.is_empty() || name.contains(['=', '\0']))
        {
            return Err(setting_error(
                "env_allowlist",
                format!("`{bad}` is not an environment variable name"),
            ));
        }
        let proc_root = overrides
            .proc_root
            .or(file.proc_root)
            .unwrap_or(defaults.proc_root);
        if proc_root.as_os_str().is_empty() {
            return Err(setting_error("proc_root", "must not be empty"));
        }
        let aggregation_window = match overrides.aggregation_window.or(file.aggregation_window) {
            Some(text) => parse_duration(&text)
                .map_err(|message| setting_error("aggregation_window", message))?,
            None => defaults.aggregation_window,
        };
        if aggregation_window > Duration::from_secs(3600) {
            return Err(setting_error(
                "aggregation_window",
                format!("{aggregation_window:?} is out of range: use between 0s and 1h"),
            ));
        }
        let rules_poll_interval = match overrides.rules_poll_interval.or(file.rules_poll_interval) {
            Some(text) => parse_duration(&text)
                .map_err(|message| setting_error("rules_poll_interval", message))?,
            None => defaults.rules_poll_interval,
        };
        if !rules_poll_interval.is_zero() && rules_poll_interval < Duration::from_millis(100) {
            return Err(setting_error(
                "rules_poll_interval",
                format!("{rules_poll_interval:?} is too short: use 0s (off) or at least 100ms"),
            ));
        }
        let stdout_min_priority = overrides
            .stdout_min_priority
            .or(file.stdout_min_priority)
            .unwrap_or(defaults.stdout_min_priority);
        if !is_priority(&stdout_min_priority) {
            return Err(setting_error(
                "stdout_min_priority",
                format!(
                    "`{stdout_min_priority}` is not a priority: use emergency, alert, critical, error, warning, notice, informational (info) or debug"
                ),
            ));
        }
        let redact_patterns = overrides
            .redact_patterns
            .or(file.redact_patterns)
            .unwrap_or(defaults.redact_patterns);
        if let Err(error) = crate::alert::redact::Redactor::with_extra(&redact_patterns) {
            return Err(setting_error("redact_patterns", error.to_string()));
        }
        let max_restarts = overrides
            .max_restarts
            .or(file.max_restarts)
            .unwrap_or(defaults.max_restarts);
        if max_restarts > 1000 {
            return Err(setting_error(
                "max_restarts",
                format!("{max_restarts} is out of range: use between 0 and 1000"),
            ));
        }
        Ok(Config {
            emit: overrides.emit.or(file.emit).unwrap_or(defaults.emit),
            interval,
            proc_root,
            rules: overrides.rules.or(file.rules).unwrap_or(defaults.rules),
            no_default_rules: overrides
                .no_default_rules
                .or(file.no_default_rules)
                .unwrap_or(defaults.no_default_rules),
            strict: overrides.strict.or(file.strict).unwrap_or(defaults.strict),
            rule_matching: overrides
                .rule_matching
                .or(file.rule_matching)
                .unwrap_or(defaults.rule_matching),
            min_priority,
            triggers: overrides
                .triggers
                .or(file.triggers)
                .unwrap_or(defaults.triggers),
            env_allowlist,
            queue_capacity,
            hostname: overrides.hostname.or(file.hostname).or(defaults.hostname),
            log_level,
            log_format: overrides
                .log_format
                .or(file.log_format)
                .unwrap_or(defaults.log_format),
            record: overrides.record.or(file.record).or(defaults.record),
            outputs: cloudwatch.outputs,
            log_group: cloudwatch.log_group,
            log_stream: cloudwatch.log_stream,
            cloudwatch_endpoint: cloudwatch.cloudwatch_endpoint,
            cloudwatch_region: cloudwatch.cloudwatch_region,
            retention_days: cloudwatch.retention_days,
            batch_interval: cloudwatch.batch_interval,
            buffer_capacity: cloudwatch.buffer_capacity,
            spill_dir: cloudwatch.spill_dir,
            spill_max_bytes: cloudwatch.spill_max_bytes,
            flush_timeout: cloudwatch.flush_timeout,
            cloudwatch_min_priority: cloudwatch.cloudwatch_min_priority,
            aggregation_window,
            rule_alert_budget: overrides
                .rule_alert_budget
                .or(file.rule_alert_budget)
                .unwrap_or(defaults.rule_alert_budget),
            alert_budget: overrides
                .alert_budget
                .or(file.alert_budget)
                .unwrap_or(defaults.alert_budget),
            stdout_min_priority,
            redact_patterns,
            rules_poll_interval,
            mode: overrides.mode.or(file.mode).unwrap_or(defaults.mode),
            supervise: overrides
                .supervise
                .or(file.supervise)
                .unwrap_or(defaults.supervise),
            max_restarts,
            watch_groups,
            watch_budget,
        })
    }

    /// Whether alerts go to CloudWatch Logs.
    pub fn cloudwatch_enabled(&self) -> bool {
        self.outputs.contains(&Output::Cloudwatch)
    }

    /// Whether alerts go to stdout.
    pub fn stdout_enabled(&self) -> bool {
        self.outputs.contains(&Output::Stdout)
    }
}

/// The file collector's watch settings, layered and validated: the watch set and the budget.
fn resolve_watch(
    overrides: &Overrides,
    file: &FileConfig,
) -> Result<(Vec<crate::collect::fswatch::WatchGroup>, Option<usize>), ConfigError> {
    use crate::collect::fswatch::{UserWatch, WatchSetError, build_groups};
    let extra: Vec<UserWatch> = match (&overrides.watch, &file.watch) {
        (Some(entries), _) => entries
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| UserWatch::parse(e))
            .collect::<Result<_, _>>(),
        (None, Some(entries)) => entries.iter().map(UserWatch::from_json).collect(),
        (None, None) => Ok(Vec::new()),
    }
    .map_err(|message| setting_error("watch", message))?;
    let remove = overrides
        .watch_remove
        .clone()
        .or(file.watch_remove.clone())
        .unwrap_or_default();
    let defaults = overrides
        .watch_defaults
        .or(file.watch_defaults)
        .unwrap_or(true);
    let groups = build_groups(defaults, &remove, &extra).map_err(|error| match &error {
        WatchSetError::Remove { .. } => setting_error("watch_remove", error.to_string()),
        WatchSetError::NameClash { .. } => setting_error("watch", error.to_string()),
    })?;
    let budget = overrides.watch_budget.or(file.watch_budget);
    if let Some(budget) = budget {
        if !(1..=100_000_000).contains(&budget) {
            return Err(setting_error(
                "watch_budget",
                format!("{budget} is out of range: use between 1 and 100000000"),
            ));
        }
    }
    Ok((groups, budget))
}

/// The CloudWatch settings, layered and validated (a part of [`Config`]).
struct CloudWatchConfig {
    outputs: Vec<Output>,
    log_group: String,
    log_stream: Option<String>,
    cloudwatch_endpoint: Option<String>,
    cloudwatch_region: Option<String>,
    retention_days: Option<i32>,
    batch_interval: Duration,
    buffer_capacity: usize,
    spill_dir: Option<PathBuf>,
    spill_max_bytes: u64,
    flush_timeout: Duration,
    cloudwatch_min_priority: String,
}

fn resolve_cloudwatch(
    overrides: &Overrides,
    file: &FileConfig,
) -> Result<CloudWatchConfig, ConfigError> {
    let defaults = Config::default();
    let explicit_group = overrides.log_group.clone().or(file.log_group.clone());
    let mut outputs = overrides
        .outputs
        .clone()
        .or(file.outputs.clone())
        .unwrap_or(defaults.outputs);
    if outputs.is_empty() {
        return Err(setting_error(
            "outputs",
            "at least one output is needed: `stdout`, `cloudwatch` or both",
        ));
    }
    outputs.dedup();
    if explicit_group.is_some() && !outputs.contains(&Output::Cloudwatch) {
        outputs.push(Output::Cloudwatch);
    }
    let log_group = explicit_group.unwrap_or(defaults.log_group);
    if log_group.is_empty()
        || log_group.len() > 512
        || !log_group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
        || log_group.starts_with("aws/")
    {
        return Err(setting_error(
            "log_group",
            format!(
                "`{log_group}` is not a log group name: 1-512 characters of A-Z a-z 0-9 . - _ / #, not starting with `aws/`"
            ),
        ));
    }
    let log_stream = overrides.log_stream.clone().or(file.log_stream.clone());
    if let Some(stream) = &log_stream {
        if stream.is_empty() || stream.len() > 512 || stream.contains([':', '*']) {
            return Err(setting_error(
                "log_stream",
                format!("`{stream}` is not a log stream name: 1-512 characters without `:` or `*`"),
            ));
        }
    }
    let cloudwatch_endpoint = overrides
        .cloudwatch_endpoint
        .clone()
        .or(file.cloudwatch_endpoint.clone())
        .filter(|e| !e.is_empty());
    if let Some(endpoint) = &cloudwatch_endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(setting_error(
                "cloudwatch_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
    }
    let cloudwatch_region = overrides
        .cloudwatch_region
        .clone()
        .or(file.cloudwatch_region.clone())
        .filter(|r| !r.is_empty());
    if let Some(region) = &cloudwatch_region {
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(setting_error(
                "cloudwatch_region",
                format!("`{region}` is not a region name"),
            ));
        }
    }
    let retention_days = overrides.retention_days.or(file.retention_days);
    if let Some(days) = retention_days {
        if !RETENTION_DAYS.contains(&days) {
            return Err(setting_error(
                "retention_days",
                format!(
                    "{days} is not a retention CloudWatch accepts: use one of {RETENTION_DAYS:?}"
                ),
            ));
        }
    }
    let batch_interval = match overrides
        .batch_interval
        .clone()
        .or(file.batch_interval.clone())
    {
        Some(text) => parse_duration(&text).map_err(|m| setting_error("batch_interval", m))?,
        None => defaults.batch_interval,
    };
    if batch_interval < Duration::from_millis(10) || batch_interval > Duration::from_secs(60) {
        return Err(setting_error(
            "batch_interval",
            format!("{batch_interval:?} is out of range: use between 10ms and 60s"),
        ));
    }
    let buffer_capacity = overrides
        .buffer_capacity
        .or(file.buffer_capacity)
        .unwrap_or(defaults.buffer_capacity);
    if !(100..=10_000_000).contains(&buffer_capacity) {
        return Err(setting_error(
            "buffer_capacity",
            format!("{buffer_capacity} is out of range: use between 100 and 10000000"),
        ));
    }
    let spill_dir = overrides.spill_dir.clone().or(file.spill_dir.clone());
    if spill_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(setting_error("spill_dir", "must not be empty"));
    }
    let spill_max_bytes = overrides
        .spill_max_bytes
        .or(file.spill_max_bytes)
        .unwrap_or(defaults.spill_max_bytes);
    if spill_max_bytes < 1024 * 1024 {
        return Err(setting_error(
            "spill_max_bytes",
            format!("{spill_max_bytes} is too small: use at least 1048576 (1 MiB)"),
        ));
    }
    let flush_timeout = match overrides
        .flush_timeout
        .clone()
        .or(file.flush_timeout.clone())
    {
        Some(text) => parse_duration(&text).map_err(|m| setting_error("flush_timeout", m))?,
        None => defaults.flush_timeout,
    };
    if flush_timeout > Duration::from_secs(600) {
        return Err(setting_error(
            "flush_timeout",
            format!("{flush_timeout:?} is out of range: use at most 10m"),
        ));
    }
    let cloudwatch_min_priority = overrides
        .cloudwatch_min_priority
        .clone()
        .or(file.cloudwatch_min_priority.clone())
        .unwrap_or(defaults.cloudwatch_min_priority);
    if !is_priority(&cloudwatch_min_priority) {
        return Err(setting_error(
            "cloudwatch_min_priority",
            format!(
                "`{cloudwatch_min_priority}` is not a priority: use emergency, alert, critical, error, warning, notice, informational (info) or debug"
            ),
        ));
    }
    Ok(CloudWatchConfig {
        outputs,
        log_group,
        log_stream,
        cloudwatch_endpoint,
        cloudwatch_region,
        retention_days,
        batch_interval,
        buffer_capacity,
        spill_dir,
        spill_max_bytes,
        flush_timeout,
        cloudwatch_min_priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let config =
            Config::layer(Overrides::default(), FileConfig::default()).expect("defaults are valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.interval, Duration::from_millis(100));
        assert_eq!(config.emit, Emit::Alerts);
    }

    #[test]
    fn flag_or_env_beats_file_beats_default() {
        let file =
            FileConfig::parse("interval: 250ms\nemit: events\nstrict: true\n").expect("valid file");
        let overrides = Overrides {
            interval: Some("50ms".into()),
            ..Overrides::default()
        };
        let config = Config::layer(overrides, file).expect("valid");
        assert_eq!(
            config.interval,
            Duration::from_millis(50),
            "flag wins over file"
        );
        assert_eq!(config.emit, Emit::Events, "file wins over default");
        assert!(config.strict);
        assert_eq!(config.queue_capacity, 16_384, "default when nobody sets it");
    }

    #[test]
    fn unknown_key_in_file_is_rejected_naming_it() {
        let error = FileConfig::parse("intervall: 1s\n").expect_err("typo must fail");
        assert!(error.contains("intervall"), "{error}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let file = FileConfig::parse("interval: soon\n").expect("parses as a string");
        let error = Config::layer(Overrides::default(), file)
            .expect_err("bad duration")
            .to_string();
        assert!(
            error.contains("`interval`")
                && error.contains("--interval")
                && error.contains("TASKSENTRY_INTERVAL"),
            "{error}"
        );

        let error = FileConfig::parse("emit: everything\n").expect_err("bad enum");
        assert!(error.contains("everything"), "{error}");

        let overrides = Overrides {
            min_priority: Some("loud".into()),
            ..Overrides::default()
        };
        let error = Config::layer(overrides, FileConfig::default())
            .expect_err("bad priority")
            .to_string();
        assert!(error.contains("min_priority"), "{error}");

        let overrides = Overrides {
            queue_capacity: Some(1),
            ..Overrides::default()
        };
        let error = Config::layer(overrides, FileConfig::default())
            .expect_err("tiny queue")
            .to_string();
        assert!(error.contains("queue_capacity"), "{error}");

        let file = FileConfig::parse("interval: 0ms\n").expect("parses");
        assert!(Config::layer(Overrides::default(), file).is_err());
    }

    #[test]
    fn alert_settings_are_layered_and_validated() {
        let file = FileConfig::parse(
            "aggregation_window: 5s\nrule_alert_budget: 7\nstdout_min_priority: warning\nredact_patterns: ['tok-[0-9]+']\n",
        )
        .expect("valid file");
        let overrides = Overrides {
            alert_budget: Some(0),
            ..Overrides::default()
        };
        let config = Config::layer(overrides, file).expect("valid");
        assert_eq!(config.aggregation_window, Duration::from_secs(5));
        assert_eq!(config.rule_alert_budget, 7);
        assert_eq!(config.alert_budget, 0);
        assert_eq!(config.stdout_min_priority, "warning");
        assert_eq!(config.redact_patterns, vec!["tok-[0-9]+".to_owned()]);
        assert_eq!(config.rules_poll_interval, Duration::from_secs(2));

        for (yaml, setting) in [
            ("redact_patterns: ['(']\n", "redact_patterns"),
            ("stdout_min_priority: loud\n", "stdout_min_priority"),
            ("aggregation_window: 2h\n", "aggregation_window"),
            ("rules_poll_interval: 1ms\n", "rules_poll_interval"),
        ] {
            let file = FileConfig::parse(yaml).expect("parses");
            let error = Config::layer(Overrides::default(), file)
                .expect_err(yaml)
                .to_string();
            assert!(error.contains(&format!("`{setting}`")), "{error}");
        }
        let file =
            FileConfig::parse("aggregation_window: 0s\nrules_poll_interval: 0s\n").expect("parses");
        let config = Config::layer(Overrides::default(), file).expect("zero disables");
        assert!(config.aggregation_window.is_zero() && config.rules_poll_interval.is_zero());
    }

    #[test]
    fn empty_file_is_an_empty_configuration() {
        let file = FileConfig::parse("").expect("empty is fine");
        assert!(file.emit.is_none());
        let file = FileConfig::parse("# only a comment\n").expect("comment only is fine");
        assert!(file.interval.is_none());
    }

    #[test]
    fn non_mapping_file_is_rejected() {
        assert!(FileConfig::parse("- a\n- b\n").is_err());
        assert!(FileConfig::parse("interval: [1, 2]\n").is_err());
    }
}

#[cfg(test)]
mod cloudwatch_config_tests {
    use super::*;

    #[test]
    fn stdout_only_by_default_and_log_group_enables_cloudwatch() {
        let config = Config::layer(Overrides::default(), FileConfig::default()).expect("valid");
        assert_eq!(config.outputs, [Output::Stdout]);
        assert!(!config.cloudwatch_enabled());
        assert_eq!(config.log_group, "/ecs/tasksentry");
        assert_eq!(config.batch_interval, Duration::from_secs(1));
        assert_eq!(config.flush_timeout, Duration::from_secs(25));
        assert_eq!(config.buffer_capacity, 10_000);

        let file = FileConfig::parse("log_group: /security/runtime\n").expect("parses");
        let config = Config::layer(Overrides::default(), file).expect("valid");
        assert_eq!(config.outputs, [Output::Stdout, Output::Cloudwatch]);
        assert_eq!(config.log_group, "/security/runtime");

        let overrides = Overrides {
            outputs: Some(vec![Output::Cloudwatch]),
            ..Overrides::default()
        };
        let config = Config::layer(overrides, FileConfig::default()).expect("valid");
        assert!(config.cloudwatch_enabled() && !config.stdout_enabled());

        let file = FileConfig::parse(
            "outputs: [stdout, cloudwatch]\nretention_days: 30\nbatch_interval: 250ms\nspill_dir: /tmp/x\ncloudwatch_min_priority: warning\n",
        )
        .expect("parses");
        let config = Config::layer(Overrides::default(), file).expect("valid");
        assert_eq!(config.retention_days, Some(30));
        assert_eq!(config.batch_interval, Duration::from_millis(250));
        assert_eq!(config.spill_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(config.cloudwatch_min_priority, "warning");
    }

    #[test]
    fn bad_cloudwatch_values_name_the_setting() {
        for (yaml, setting) in [
            ("retention_days: 10\n", "retention_days"),
            ("log_group: \"aws/lambda\"\n", "log_group"),
            ("log_group: \"bad name\"\n", "log_group"),
            ("log_stream: \"a:b\"\n", "log_stream"),
            (
                "cloudwatch_endpoint: localhost:4566\n",
                "cloudwatch_endpoint",
            ),
            ("batch_interval: 1ms\n", "batch_interval"),
            ("buffer_capacity: 5\n", "buffer_capacity"),
            ("spill_max_bytes: 100\n", "spill_max_bytes"),
            ("flush_timeout: 1h\n", "flush_timeout"),
            ("cloudwatch_min_priority: loud\n", "cloudwatch_min_priority"),
            ("outputs: []\n", "outputs"),
        ] {
            let file = FileConfig::parse(yaml).expect("parses");
            let error = Config::layer(Overrides::default(), file)
                .expect_err(yaml)
                .to_string();
            assert!(error.contains(&format!("`{setting}`")), "{yaml}: {error}");
        }
        assert!(FileConfig::parse("outputs: [syslog]\n").is_err());
    }
}

#[cfg(test)]
mod readme_tests {
    /// The README's configuration table must say what the code does.
    #[test]
    fn readme_table_matches_settings() {
        let readme = include_str!("../README.md");
        for (name, flag, env, default, meaning) in super::SETTINGS {
            let row = format!("| {name} | `{flag}` | `{env}` | {default} | {meaning} |");
            assert!(readme.contains(&row), "README.md lacks the row:\n{row}");
        }
    }
}

#[cfg(test)]
mod watch_config_tests {
    use super::*;
    use crate::collect::fswatch::Interest;
    use crate::collect::fswatch::config::RECURSIVE;

    fn group<'a>(
        config: &'a Config,
        name: &str,
    ) -> Option<&'a crate::collect::fswatch::WatchGroup> {
        config.watch_groups.iter().find(|g| g.name == name)
    }

    #[test]
    fn watch_entries_from_the_file_are_added_and_defaults_removed() {
        let file = FileConfig::parse(
            "watch:\n  - path: /srv/app\n    recursive: true\n    events: [write]\n    priority: 70\n  - /opt/data depth=2 read\nwatch_remove: [libraries, /tmp]\nwatch_budget: 500\n",
        )
        .expect("valid file");
        let config = Config::layer(Overrides::default(), file).expect("valid");
        let app = group(&config, "/srv/app").expect("the /srv/app group");
        assert_eq!(app.priority, 70);
        assert_eq!(app.specs[0].depth, RECURSIVE);
        assert_eq!(
            app.specs[0].interest,
            Interest {
                writes: true,
                ..Interest::default()
            }
        );
        assert!(
            group(&config, "/opt/data").expect("data").specs[0]
                .interest
                .reads
        );
        assert!(group(&config, "libraries").is_none());
        assert!(
            group(&config, "temp")
                .expect("temp keeps /var/tmp")
                .specs
                .iter()
                .all(|s| s.pattern != "/tmp")
        );
        assert_eq!(config.watch_budget, Some(500));
    }

    #[test]
    fn watch_flags_replace_the_file_and_defaults_can_be_left_out() {
        let file = FileConfig::parse("watch: ['/from/file']\n").expect("valid file");
        let overrides = Overrides {
            watch: Some(vec!["/srv/app recursive write".into(), " ".into()]),
            watch_defaults: Some(false),
            ..Overrides::default()
        };
        let config = Config::layer(overrides, file).expect("valid");
        let names: Vec<&str> = config
            .watch_groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, ["/srv/app"]);
    }

    #[test]
    fn bad_watch_settings_name_the_setting() {
        for (yaml, setting) in [
            ("watch: ['srv/app']\n", "watch"),
            ("watch: ['/srv explode']\n", "watch"),
            ("watch: [{path: /a, recurse: true}]\n", "watch"),
            ("watch: [{path: /a, priority: 256}]\n", "watch"),
            ("watch: ['/x name=etc']\n", "watch"),
            ("watch_remove: [librarys]\n", "watch_remove"),
            ("watch_budget: 0\n", "watch_budget"),
        ] {
            let file = FileConfig::parse(yaml).expect("parses");
            let error = Config::layer(Overrides::default(), file)
                .expect_err(yaml)
                .to_string();
            assert!(error.contains(&format!("`{setting}`")), "{yaml}: {error}");
        }
        let overrides = Overrides {
            watch: Some(vec!["/srv depth=100".into()]),
            ..Overrides::default()
        };
        let error = Config::layer(overrides, FileConfig::default())
            .expect_err("too deep")
            .to_string();
        assert!(
            error.contains("`watch`")
                && error.contains("--watch")
                && error.contains("TASKSENTRY_WATCH"),
            "{error}"
        );
    }
}
