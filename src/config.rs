//! Configuration: command-line flags > `TASKSENTRY_*` environment variables > YAML file > defaults.
//!
//! Every setting is declared once, in the [`settings!`] table below: its flag, variable and
//! `--help` text, its YAML key, its documented default and meaning, its resolved type and
//! default, and the check its value must pass. From that table come the command line's
//! [`Overrides`] (clap fills a value from the flag, or else from the setting's environment
//! variable), the YAML file's [`FileConfig`] (which rejects unknown keys), [`SETTINGS`] (the
//! README table is checked against it), the resolved [`Config`] and its defaults.
//! [`Config::resolve`] layers the two over the defaults and validates the result; every error
//! names the setting (as it is spelled in the file, with its flag and variable) so that a bad
//! value fails at start.

use std::fmt::Display;
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

/// Declares every setting of `tasksentry run` once, and from that declaration builds
/// [`Overrides`] (clap flags and variables), [`FileConfig`] (YAML keys, in table order),
/// [`SETTINGS`] (the documentation), [`Config`] with its [`Default`], and the merge and
/// validation in [`Config::layer`]. A setting is an entry:
///
/// ```text
/// /// The `--help` text of the flag.
/// name: GivenType, "flag-without-dashes", "TASKSENTRY_VARIABLE", [more clap attributes],
///     "default as documented", "meaning (the README row)"
///     , file FileType                         (optional: the YAML type, when it differs)
///     => ResolvedType = default, resolver;    (optional: the `Config` field)
/// ```
///
/// The resolver gets the value given (flag or variable, else file) and the default, and
/// returns the value or a message (which [`setting_error`] turns into an error naming the
/// setting). Settings without `=>` feed the `derived` fields, which [`resolve_derived`]
/// computes from several settings; they are resolved (and so validated) first.
macro_rules! settings {
    (
        config_file {
            $(#[doc = $c_help:tt])*
            $c_long:literal, $c_env:tt, [$($c_arg:tt)*], $c_default_doc:tt, $c_meaning:tt;
        }
        settings {
            $(
                $(#[doc = $help:tt])*
                $name:ident: $given:ty, $long:tt, $env:tt, [$($arg:tt)*],
                    $default_doc:tt, $meaning:tt
                    $(, file $file_ty:ty)?
                    $(=> $out:ty = $default:expr, $resolve:expr)?;
            )*
        }
        derived {
            $(
                $(#[doc = $d_doc:tt])*
                $d_name:ident: $d_ty:ty = $d_default:expr;
            )*
        }
    ) => {
        /// Settings given on the command line or in `TASKSENTRY_*` variables (clap resolves
        /// the precedence between those two); `None` means "not given". These are the flags
        /// of `tasksentry run`.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct Overrides {
            $(#[doc = $c_help])*
            #[arg(long = $c_long, env = $c_env, $($c_arg)*)]
            pub config_file: Option<PathBuf>,
            $(
                $(#[doc = $help])*
                #[arg(long = $long, env = $env, $($arg)*)]
                pub $name: Option<$given>,
            )*
        }

        /// The YAML configuration file. Keys are the settings' names; unknown keys are errors.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $(
                #[doc = $meaning]
                pub $name: Option<settings!(@file_type $given $(, $file_ty)?)>,
            )*
        }

        /// The documentation of every setting: name in the file, flag, variable, default,
        /// meaning. The README's configuration table says the same and is checked by a test.
        pub const SETTINGS: &[(&str, &str, &str, &str, &str)] = &[
            ("config", concat!("--", $c_long), $c_env, $c_default_doc, $c_meaning),
            $((stringify!($name), concat!("--", $long), $env, $default_doc, $meaning),)*
        ];

        /// The resolved, validated configuration of `tasksentry run`.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $($(
                #[doc = $meaning]
                pub $name: $out,
            )?)*
            $(
                $(#[doc = $d_doc])*
                pub $d_name: $d_ty,
            )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    $($($name: $default,)?)*
                    $($d_name: $d_default,)*
                }
            }
        }

        /// The settings that combine several others, resolved by [`resolve_derived`].
        struct Derived {
            $($d_name: $d_ty,)*
        }

        impl Config {
            /// Layers already-read parts (separate from [`Config::resolve`] so tests need no
            /// files): each setting is the flag or variable, else the file, else the default,
            /// checked by its resolver.
            pub fn layer(overrides: Overrides, file: FileConfig) -> Result<Config, ConfigError> {
                let derived = resolve_derived(&overrides, &file)?;
                Ok(Config {
                    $($(
                        $name: ($resolve)(overrides.$name.or(file.$name), $default)
                            .map_err(|message| setting_error(stringify!($name), message))?,
                    )?)*
                    $($d_name: derived.$d_name,)*
                })
            }
        }
    };
    (@file_type $given:ty) => { $given };
    (@file_type $given:ty, $file_ty:ty) => { $file_ty };
}

settings! {
    config_file {
        /// YAML configuration file (keys are the long flag names with `_` for `-`).
        "config", "TASKSENTRY_CONFIG", [value_name = "FILE"],
            "(none)", "YAML configuration file with any of the settings below";
    }
    settings {
        /// What to print: `alerts` (rule matches, default) or `events` (every observation, the
        /// format that `rules test --events` replays).
        emit: Emit, "emit", "TASKSENTRY_EMIT", [value_enum],
            "alerts", "`alerts` (rule matches) or `events` (every observation, the recording format)"
            => Emit = Emit::Alerts, given;
        /// /proc rescan interval [default: 100ms]; inotify triggers rescan sooner.
        interval: String, "interval", "TASKSENTRY_INTERVAL", [value_name = "DURATION"],
            "100ms", "/proc rescan and socket table poll interval; inotify triggers rescan (and poll) sooner"
            => Duration = Duration::from_millis(100),
                duration(within(Duration::from_millis(1), Duration::from_secs(60), "use between 1ms and 60s"));
        /// Where the task's /proc is mounted [default: /proc].
        proc_root: PathBuf, "proc-root", "TASKSENTRY_PROC_ROOT", [value_name = "DIR"],
            "/proc", "where the task's /proc is mounted"
            => PathBuf = PathBuf::from("/proc"), checked(|path: &PathBuf| not_empty(path));
        /// Extra rule file or directory, loaded after the embedded defaults (repeatable; the
        /// variable takes a comma-separated list).
        rules: Vec<PathBuf>, "rules", "TASKSENTRY_RULES", [value_name = "PATH", value_delimiter = ','],
            "(none)", "extra rule files or directories, loaded in order after the embedded defaults (comma-separated in the variable)"
            => Vec<PathBuf> = Vec::new(), given;
        /// Do not load the embedded default rules.
        no_default_rules: bool, "no-default-rules", "TASKSENTRY_NO_DEFAULT_RULES",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "false", "do not load the embedded default rules"
            => bool = false, given;
        /// A rule that needs a field TaskSentry does not provide is an error, not a skip.
        strict: bool, "strict", "TASKSENTRY_STRICT",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "false", "a rule needing a field TaskSentry lacks is an error instead of a skip"
            => bool = false, given;
        /// `first`: only the first matching rule alerts (Falco's default); `all`: every one.
        rule_matching: RuleMatchingMode, "rule-matching", "TASKSENTRY_RULE_MATCHING", [value_enum],
            "first", "`first`: only the first matching rule alerts (Falco's default); `all`: every one"
            => RuleMatchingMode = RuleMatchingMode::First, given;
        /// Do not evaluate rules less severe than this priority [default: debug].
        min_priority: String, "min-priority", "TASKSENTRY_MIN_PRIORITY", [value_name = "PRIORITY"],
            "debug", "rules less severe than this are not evaluated"
            => String = "debug".to_owned(), checked(|text: &String| known_priority(text));
        /// Rescan /proc at once when a container opens its loader or a PATH binary [default: true].
        triggers: bool, "triggers", "TASKSENTRY_TRIGGERS",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "true", "rescan /proc at once when a container opens its loader or a PATH binary, and poll the socket tables every 10 ms for 250 ms after"
            => bool = true, given;
        /// Extra environment variable names to read from processes (comma-separated).
        env_allowlist: Vec<String>, "env-allowlist", "TASKSENTRY_ENV_ALLOWLIST",
            [value_name = "NAMES", value_delimiter = ','],
            "(built-in list)", "extra environment variable names read from processes"
            => Vec<String> = Vec::new(), checked(|names: &Vec<String>| variable_names(names));
        /// Capacity of the bounded queues between pipeline stages [default: 16384].
        queue_capacity: usize, "queue-capacity", "TASKSENTRY_QUEUE_CAPACITY", [value_name = "N"],
            "16384", "bounded queue size between pipeline stages; drops are counted and reported"
            => usize = 16_384, checked(between(16, 10_000_000));
        /// The `hostname` written in alerts [default: this machine's host name].
        hostname: String, "hostname", "TASKSENTRY_HOSTNAME", [],
            "(host name)", "`hostname` written in alerts"
            => Option<String> = None, optional;
        /// Filter for TaskSentry's own logs on stderr [default: info].
        log_level: String, "log-level", "TASKSENTRY_LOG_LEVEL", [value_name = "FILTER"],
            "info", "filter for TaskSentry's own logs on stderr (`warn`, `debug`, `tasksentry=trace`, ...)"
            => String = "info".to_owned(), checked(|filter: &String| log_filter(filter));
        /// Format of TaskSentry's own logs on stderr [default: text].
        log_format: LogFormat, "log-format", "TASKSENTRY_LOG_FORMAT", [value_enum],
            "text", "`text` or `json` logs on stderr"
            => LogFormat = LogFormat::Text, given;
        /// Also append every event to this NDJSON file, to replay with `rules test --events`.
        record: PathBuf, "record", "TASKSENTRY_RECORD", [value_name = "FILE"],
            "(none)", "also append every event to this NDJSON file, to replay with `rules test --events` when tuning"
            => Option<PathBuf> = None, optional;
        /// Where alerts go: `stdout`, `cloudwatch` or both (comma-separated) [default: stdout;
        /// setting --log-group adds cloudwatch].
        outputs: Vec<Output>, "outputs", "TASKSENTRY_OUTPUTS", [value_enum, value_delimiter = ','],
            "stdout", "where alerts go: `stdout`, `cloudwatch` or both (comma-separated); setting `log_group` adds `cloudwatch`";
        /// CloudWatch log group, created when missing [default: /ecs/tasksentry].
        log_group: String, "log-group", "TASKSENTRY_LOG_GROUP", [value_name = "NAME"],
            "/ecs/tasksentry", "CloudWatch log group, created when missing"
            => String = "/ecs/tasksentry".to_owned(), checked(|name: &String| log_group_name(name));
        /// CloudWatch log stream [default: the ECS task id, else the host name].
        log_stream: String, "log-stream", "TASKSENTRY_LOG_STREAM", [value_name = "NAME"],
            "(ECS task id, else host name)", "CloudWatch log stream, created when missing"
            => Option<String> = None, checked_optional(|name: &String| log_stream_name(name));
        /// CloudWatch Logs endpoint URL override (tests, VPC endpoints).
        cloudwatch_endpoint: String, "cloudwatch-endpoint", "TASKSENTRY_CLOUDWATCH_ENDPOINT",
            [value_name = "URL"],
            "(AWS default)", "CloudWatch Logs endpoint URL override (tests, VPC endpoints)"
            => Option<String> = None, optional_text(endpoint_url);
        /// CloudWatch Logs region [default: AWS_REGION, AWS_DEFAULT_REGION].
        cloudwatch_region: String, "cloudwatch-region", "TASKSENTRY_CLOUDWATCH_REGION",
            [value_name = "REGION"],
            "(`AWS_REGION`)", "CloudWatch Logs region override"
            => Option<String> = None, optional_text(region_name);
        /// Retention in days set when TaskSentry creates the log group.
        retention_days: i32, "retention-days", "TASKSENTRY_RETENTION_DAYS", [value_name = "DAYS"],
            "(never expire)", "retention set when TaskSentry creates the log group (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)"
            => Option<i32> = None, checked_optional(retention);
        /// Longest wait before buffered alerts are sent to CloudWatch [default: 1s].
        batch_interval: String, "batch-interval", "TASKSENTRY_BATCH_INTERVAL",
            [value_name = "DURATION"],
            "1s", "longest wait before buffered alerts are sent to CloudWatch (full batches go at once)"
            => Duration = Duration::from_secs(1),
                duration(within(Duration::from_millis(10), Duration::from_secs(60), "use between 10ms and 60s"));
        /// Alerts held in memory while CloudWatch is unreachable [default: 10000].
        buffer_capacity: usize, "buffer-capacity", "TASKSENTRY_BUFFER_CAPACITY", [value_name = "N"],
            "10000", "alerts held in memory while CloudWatch is slow or unreachable"
            => usize = 10_000, checked(between(100, 10_000_000));
        /// Directory for alerts that do not fit in memory.
        spill_dir: PathBuf, "spill-dir", "TASKSENTRY_SPILL_DIR", [value_name = "DIR"],
            "(none)", "directory for alerts that do not fit in memory (NDJSON files, replayed in order, deleted once delivered)"
            => Option<PathBuf> = None, checked_optional(|path: &PathBuf| not_empty(path));
        /// Most bytes kept in the spill directory [default: 268435456].
        spill_max_bytes: u64, "spill-max-bytes", "TASKSENTRY_SPILL_MAX_BYTES", [value_name = "BYTES"],
            "268435456", "most bytes kept in `spill_dir`; beyond it the least severe alerts are dropped and counted"
            => u64 = 256 * 1024 * 1024, checked(spill_bytes);
        /// How long the CloudWatch flush at shutdown may take [default: 25s].
        flush_timeout: String, "flush-timeout", "TASKSENTRY_FLUSH_TIMEOUT", [value_name = "DURATION"],
            "25s", "how long the CloudWatch flush at shutdown may take (keep it under the container's stopTimeout)"
            => Duration = Duration::from_secs(25),
                duration(within(Duration::ZERO, Duration::from_secs(600), "use at most 10m"));
        /// Longest wait for a connection to CloudWatch Logs [default: 3s].
        cloudwatch_connect_timeout: String, "cloudwatch-connect-timeout", "TASKSENTRY_CLOUDWATCH_CONNECT_TIMEOUT",
            [value_name = "DURATION"],
            "3s", "longest wait for a connection to CloudWatch Logs; a failed connection is retried with backoff"
            => Duration = Duration::from_secs(3),
                duration(within(Duration::from_millis(100), Duration::from_secs(60), "use between 100ms and 60s"));
        /// Longest a single CloudWatch Logs call may take before it is abandoned and retried
        /// [default: 10s].
        cloudwatch_attempt_timeout: String, "cloudwatch-attempt-timeout", "TASKSENTRY_CLOUDWATCH_ATTEMPT_TIMEOUT",
            [value_name = "DURATION"],
            "10s", "longest a single CloudWatch Logs call may take before it is abandoned and retried (the batch is kept)"
            => Duration = Duration::from_secs(10),
                duration(within(Duration::from_millis(100), Duration::from_secs(300), "use between 100ms and 5m"));
        /// Largest wait between two attempts to deliver a batch [default: 20s].
        cloudwatch_retry_max: String, "cloudwatch-retry-max", "TASKSENTRY_CLOUDWATCH_RETRY_MAX",
            [value_name = "DURATION"],
            "20s", "largest wait between two attempts to deliver a batch (capped exponential backoff with full jitter from 200ms; also the wait after permission errors)"
            => Duration = Duration::from_secs(20),
                duration(within(Duration::from_millis(200), Duration::from_secs(600), "use between 200ms and 10m"));
        /// Alerts less severe than this are not sent to CloudWatch [default: debug].
        cloudwatch_min_priority: String, "cloudwatch-min-priority", "TASKSENTRY_CLOUDWATCH_MIN_PRIORITY",
            [value_name = "PRIORITY"],
            "debug", "alerts less severe than this are not sent to CloudWatch"
            => String = "debug".to_owned(), checked(|text: &String| known_priority(text));
        /// Repeats of an alert within this window become one summary alert with a count
        /// [default: 60s; 0s disables].
        aggregation_window: String, "aggregation-window", "TASKSENTRY_AGGREGATION_WINDOW",
            [value_name = "DURATION"],
            "60s", "repeats of an alert (same rule, container, executable, output values) within this window become one summary alert with a count; `0s` disables"
            => Duration = Duration::from_secs(60),
                duration(within(Duration::ZERO, Duration::from_secs(3600), "use between 0s and 1h"));
        /// Alerts per minute each rule may ship; the excess is counted and reported [default:
        /// 120; 0 = unlimited].
        rule_alert_budget: u32, "rule-alert-budget", "TASKSENTRY_RULE_ALERT_BUDGET", [value_name = "N"],
            "120", "alerts per minute each rule may ship (token bucket, 0 = unlimited); the excess is counted and reported in an `alerts_suppressed` alert"
            => u32 = 120, given;
        /// Alerts per minute all rules together may ship [default: 1200; 0 = unlimited].
        alert_budget: u32, "alert-budget", "TASKSENTRY_ALERT_BUDGET", [value_name = "N"],
            "1200", "alerts per minute all rules together may ship (0 = unlimited); TaskSentry's own alerts are exempt"
            => u32 = 1200, given;
        /// Alerts less severe than this are not printed on stdout [default: debug].
        stdout_min_priority: String, "stdout-min-priority", "TASKSENTRY_STDOUT_MIN_PRIORITY",
            [value_name = "PRIORITY"],
            "debug", "alerts less severe than this are not printed on stdout; TaskSentry's own alerts always are"
            => String = "debug".to_owned(), checked(|text: &String| known_priority(text));
        /// Extra regular expression to redact from alerts (repeatable; the variable takes a
        /// newline-separated list).
        redact_patterns: Vec<String>, "redact-patterns", "TASKSENTRY_REDACT_PATTERNS",
            [value_name = "REGEX", value_delimiter = '\n'],
            "(none)", "extra regular expressions redacted from alerts (group `secret` or 1 if present), on top of the built-in secret patterns (repeatable; the variable takes a newline-separated list)"
            => Vec<String> = Vec::new(), checked(|patterns: &Vec<String>| redaction_patterns(patterns));
        /// How often configured rule files are checked for changes (which reload the rules)
        /// [default: 2s; 0s disables].
        rules_poll_interval: String, "rules-poll-interval", "TASKSENTRY_RULES_POLL_INTERVAL",
            [value_name = "DURATION"],
            "2s", "how often configured rule files and directories are checked for changes, which reload the rules like SIGHUP; `0s` disables"
            => Duration = Duration::from_secs(2), duration(rules_poll);
        /// `poll` (/proc only, default), `trace` (also event-only ptrace; needs SYS_PTRACE) or
        /// `auto` (trace when possible, else poll).
        mode: Mode, "mode", "TASKSENTRY_MODE", [value_enum],
            "poll", "`poll`: /proc only; `trace`: also event-only ptrace (needs SYS_PTRACE), every exec seen; `auto`: trace when possible, else poll"
            => Mode = Mode::Poll, given;
        /// Run the monitor under a supervisor that restarts it when killed and reports it
        /// [default: true].
        supervise: bool, "supervise", "TASKSENTRY_SUPERVISE",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "true", "run the monitor as the child of a small supervisor (the container's main process) that forwards signals, restarts the monitor when it is killed or crashes, and has the restarted monitor alert about it; `false`: the monitor is the main process"
            => bool = true, given;
        /// Restarts allowed per 10 minutes before the supervisor gives up [default: 5].
        max_restarts: u32, "max-restarts", "TASKSENTRY_MAX_RESTARTS", [value_name = "N"],
            "5", "restarts the supervisor allows per 10 minutes (the first at once, then 1 s, 2 s, ... up to 30 s apart) before it gives up and exits 1; `0`: never restart"
            => u32 = 5, checked(between(0, 1000));
        /// Extra file watch entry: `PATH [recursive|depth=N] [EVENTS] [priority=N] [name=NAME]`,
        /// EVENTS a comma-separated list of read, write, open, create, delete, move, attrib,
        /// modify (default) or all; e.g. `--watch '/srv/app recursive write'`. A default path
        /// named again is replaced (repeatable; the variable takes a `;`-separated list).
        watch: Vec<String>, "watch", "TASKSENTRY_WATCH", [value_name = "ENTRY", value_delimiter = ';'],
            "(none)", "extra file watch entries `PATH [recursive\\|depth=N] [EVENTS] [priority=N] [name=NAME]`, EVENTS from read, write, open, create, delete, move, attrib, modify (default), all; a default path named again is replaced (repeatable; `;`-separated in the variable; the file also takes mappings, see docs/files.md)",
            file Vec<serde_json::Value>;
        /// Default watch groups (credentials, etc, cron, home, binaries, temp, libraries,
        /// packages) or default paths not to watch (comma-separated).
        watch_remove: Vec<String>, "watch-remove", "TASKSENTRY_WATCH_REMOVE",
            [value_name = "GROUPS_OR_PATHS", value_delimiter = ','],
            "(none)", "default watch groups (credentials, etc, cron, home, binaries, temp, libraries, packages) or default paths not to watch (comma-separated)";
        /// Start from the default watch set [default: true]; `false` watches only the --watch
        /// entries.
        watch_defaults: bool, "watch-defaults", "TASKSENTRY_WATCH_DEFAULTS",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "true", "start from the default watch set; `false` watches only the `watch` entries";
        /// Most inotify watches the file collector holds [default: half of max_user_watches];
        /// beyond it the lowest-priority groups are dropped and reported.
        watch_budget: usize, "watch-budget", "TASKSENTRY_WATCH_BUDGET", [value_name = "N"],
            "(half of max_user_watches)", "most inotify watches the file collector holds; beyond it the lowest-priority groups are dropped and reported"
            => Option<usize> = None, checked_optional(between(1, 100_000_000));
    }
    derived {
        /// Where output lines go, from `outputs` (default stdout); `cloudwatch` is added when
        /// `log_group` is set.
        outputs: Vec<Output> = vec![Output::Stdout];
        /// The file collector's watch set, from `watch_defaults`, `watch_remove` and `watch`:
        /// the default groups, minus `watch_remove`, with the `watch` entries added (or
        /// replacing a default path they name again).
        watch_groups: Vec<crate::collect::fswatch::WatchGroup> = crate::collect::fswatch::default_groups();
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

// Resolvers: each takes the value given (flag or variable, else file) and the default.

/// The value given, else the default: any value of the type is valid.
fn given<T>(value: Option<T>, default: T) -> Result<T, String> {
    Ok(value.unwrap_or(default))
}

/// The value given, else the default, for a setting that may stay unset.
fn optional<T>(value: Option<T>, default: Option<T>) -> Result<Option<T>, String> {
    Ok(value.or(default))
}

/// The value given (else the default) when `check` accepts it.
fn checked<T>(
    check: impl Fn(&T) -> Result<(), String>,
) -> impl Fn(Option<T>, T) -> Result<T, String> {
    move |value, default| {
        let value = value.unwrap_or(default);
        check(&value)?;
        Ok(value)
    }
}

/// Like [`checked`], for a setting that may stay unset (only a set value is checked).
fn checked_optional<T>(
    check: impl Fn(&T) -> Result<(), String>,
) -> impl Fn(Option<T>, Option<T>) -> Result<Option<T>, String> {
    move |value, default| {
        let value = value.or(default);
        if let Some(value) = &value {
            check(value)?;
        }
        Ok(value)
    }
}

/// Like [`checked_optional`] for text, where an empty text means unset.
fn optional_text(
    check: impl Fn(&str) -> Result<(), String>,
) -> impl Fn(Option<String>, Option<String>) -> Result<Option<String>, String> {
    move |value, default| {
        let value = value.filter(|text| !text.is_empty()).or(default);
        if let Some(value) = &value {
            check(value)?;
        }
        Ok(value)
    }
}

/// A duration written as text (else the default) that `check` accepts.
fn duration(
    check: impl Fn(Duration) -> Result<(), String>,
) -> impl Fn(Option<String>, Duration) -> Result<Duration, String> {
    move |text, default| {
        let value = match text {
            Some(text) => parse_duration(&text)?,
            None => default,
        };
        check(value)?;
        Ok(value)
    }
}

// Checks: each says what is wrong with a value.

/// A number from `low` to `high`.
fn between<T: PartialOrd + Display>(low: T, high: T) -> impl Fn(&T) -> Result<(), String> {
    move |n| {
        if *n < low || *n > high {
            return Err(format!("{n} is out of range: use between {low} and {high}"));
        }
        Ok(())
    }
}

/// A duration from `low` to `high`; `hint` says which.
fn within(
    low: Duration,
    high: Duration,
    hint: &'static str,
) -> impl Fn(Duration) -> Result<(), String> {
    move |value| {
        if value < low || value > high {
            return Err(format!("{value:?} is out of range: {hint}"));
        }
        Ok(())
    }
}

fn rules_poll(interval: Duration) -> Result<(), String> {
    if !interval.is_zero() && interval < Duration::from_millis(100) {
        return Err(format!(
            "{interval:?} is too short: use 0s (off) or at least 100ms"
        ));
    }
    Ok(())
}

fn not_empty(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(())
}

/// A rule priority, as the engine parses it (case-insensitive; `info` is `informational`).
fn known_priority(text: &str) -> Result<(), String> {
    if text.parse::<crate::priority::Priority>().is_err() {
        return Err(format!(
            "`{text}` is not a priority: use emergency, alert, critical, error, warning, notice, informational (info) or debug"
        ));
    }
    Ok(())
}

fn log_filter(filter: &str) -> Result<(), String> {
    if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
        return Err(format!(
            "`{filter}` is not a log filter: use e.g. `info`, `debug` or `tasksentry=trace`"
        ));
    }
    Ok(())
}

fn variable_names(names: &[String]) -> Result<(), String> {
    if let Some(bad) = names
        .iter()
        .find(|name| name.is_empty() || name.contains(['=', '\0']))
    {
        return Err(format!("`{bad}` is not an environment variable name"));
    }
    Ok(())
}

fn redaction_patterns(patterns: &[String]) -> Result<(), String> {
    crate::alert::redact::Redactor::with_extra(patterns)
        .map(drop)
        .map_err(|error| error.to_string())
}

fn log_group_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 512
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
        || name.starts_with("aws/")
    {
        return Err(format!(
            "`{name}` is not a log group name: 1-512 characters of A-Z a-z 0-9 . - _ / #, not starting with `aws/`"
        ));
    }
    Ok(())
}

fn log_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 512 || name.contains([':', '*']) {
        return Err(format!(
            "`{name}` is not a log stream name: 1-512 characters without `:` or `*`"
        ));
    }
    Ok(())
}

fn endpoint_url(endpoint: &str) -> Result<(), String> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!("`{endpoint}` is not an http:// or https:// URL"));
    }
    Ok(())
}

fn region_name(region: &str) -> Result<(), String> {
    if !region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!("`{region}` is not a region name"));
    }
    Ok(())
}

fn retention(days: &i32) -> Result<(), String> {
    if !RETENTION_DAYS.contains(days) {
        return Err(format!(
            "{days} is not a retention CloudWatch accepts: use one of {RETENTION_DAYS:?}"
        ));
    }
    Ok(())
}

fn spill_bytes(bytes: &u64) -> Result<(), String> {
    if *bytes < 1024 * 1024 {
        return Err(format!(
            "{bytes} is too small: use at least 1048576 (1 MiB)"
        ));
    }
    Ok(())
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

    /// Whether alerts go to CloudWatch Logs.
    pub fn cloudwatch_enabled(&self) -> bool {
        self.outputs.contains(&Output::Cloudwatch)
    }

    /// Whether alerts go to stdout.
    pub fn stdout_enabled(&self) -> bool {
        self.outputs.contains(&Output::Stdout)
    }
}

/// The fields that combine several settings: the outputs (an explicit `log_group` adds
/// CloudWatch) and the file collector's watch set.
fn resolve_derived(overrides: &Overrides, file: &FileConfig) -> Result<Derived, ConfigError> {
    use crate::collect::fswatch::{UserWatch, WatchSetError, build_groups};
    let defaults = Config::default();
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
    let explicit_group = overrides.log_group.is_some() || file.log_group.is_some();
    if explicit_group && !outputs.contains(&Output::Cloudwatch) {
        outputs.push(Output::Cloudwatch);
    }

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
    let from_defaults = overrides
        .watch_defaults
        .or(file.watch_defaults)
        .unwrap_or(true);
    let watch_groups =
        build_groups(from_defaults, &remove, &extra).map_err(|error| match &error {
            WatchSetError::Remove { .. } => setting_error("watch_remove", error.to_string()),
            WatchSetError::NameClash { .. } => setting_error("watch", error.to_string()),
        })?;
    Ok(Derived {
        outputs,
        watch_groups,
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

        let file = FileConfig::parse(
            "log_group: /security/runtime\ncloudwatch_connect_timeout: 500ms\ncloudwatch_attempt_timeout: 2s\ncloudwatch_retry_max: 5s\n",
        )
        .expect("parses");
        let config = Config::layer(Overrides::default(), file).expect("valid");
        let settings =
            crate::sink::cloudwatch::CloudWatchSettings::from_config(&config).expect("enabled");
        assert_eq!(settings.connect_timeout, Duration::from_millis(500));
        assert_eq!(settings.attempt_timeout, Duration::from_secs(2));
        assert_eq!(settings.retry_max, Duration::from_secs(5));
        let defaults = Config::layer(Overrides::default(), FileConfig::default()).expect("valid");
        assert_eq!(defaults.cloudwatch_attempt_timeout, Duration::from_secs(10));
        assert_eq!(defaults.cloudwatch_connect_timeout, Duration::from_secs(3));
        assert_eq!(defaults.cloudwatch_retry_max, Duration::from_secs(20));
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
            (
                "cloudwatch_connect_timeout: 10ms\n",
                "cloudwatch_connect_timeout",
            ),
            (
                "cloudwatch_attempt_timeout: 0s\n",
                "cloudwatch_attempt_timeout",
            ),
            (
                "cloudwatch_attempt_timeout: soon\n",
                "cloudwatch_attempt_timeout",
            ),
            ("cloudwatch_retry_max: 1h\n", "cloudwatch_retry_max"),
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
    use crate::collect::fswatch::config::Interest;
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
