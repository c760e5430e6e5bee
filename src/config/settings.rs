//! The table of every setting of `tasksentry run`, declared once, and the macro that builds
//! the command line's flags, the YAML file's keys, the documentation and the resolved
//! [`Config`] from it (see the module documentation of `config`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::checks::*;
use super::{
    ConfigError, Emit, LogFormat, Mode, Output, RuleMatchingMode, resolve_derived, setting_error,
};
use crate::alert::redact::Redactor;
use crate::priority::Priority;

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
            pub(crate) config_file: Option<PathBuf>,
            $(
                $(#[doc = $help])*
                #[arg(long = $long, env = $env, $($arg)*)]
                pub(crate) $name: Option<$given>,
            )*
        }

        /// The YAML configuration file. Keys are the settings' names; unknown keys are errors.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $(
                #[doc = $meaning]
                pub(crate) $name: Option<settings!(@file_type $given $(, $file_ty)?)>,
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
        pub(super) struct Derived {
            $(pub(super) $d_name: $d_ty,)*
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
            => Priority = Priority::Debug, priority;
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
            => Priority = Priority::Debug, priority;
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
            => Priority = Priority::Debug, priority;
        /// Extra regular expression to redact from alerts (repeatable; the variable takes a
        /// newline-separated list).
        redact_patterns: Vec<String>, "redact-patterns", "TASKSENTRY_REDACT_PATTERNS",
            [value_name = "REGEX", value_delimiter = '\n'],
            "(none)", "extra regular expressions redacted from alerts, `--emit events` lines and recordings (group `secret` or 1 if present), on top of the built-in secret patterns (repeatable; the variable takes a newline-separated list)"
            => Redactor = Redactor::builtin(), redaction_patterns;
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
        /// Learn what each container normally does for this long after start-up, and ship the
        /// profile as `profile_snapshot` records for `tasksentry profile build` [default: off].
        learn: String, "learn", "TASKSENTRY_LEARN", [value_name = "DURATION"],
            "(off)", "learn each container's normal behaviour for this long after start-up (e.g. `24h`) and ship it as `profile_snapshot` records on the outputs, for `tasksentry profile build`"
            => Option<Duration> = None, optional_duration(within(Duration::from_secs(1), Duration::from_secs(90 * 24 * 3600), "use between 1s and 90d"));
        /// Time between two profile snapshots while learning [default: 10m].
        learn_interval: String, "learn-interval", "TASKSENTRY_LEARN_INTERVAL", [value_name = "DURATION"],
            "10m", "time between two profile snapshots while learning (one more goes out at the end of the window and when the monitor stops)"
            => Duration = Duration::from_secs(600),
                duration(within(Duration::from_secs(1), Duration::from_secs(24 * 3600), "use between 1s and 24h"));
        /// Keep rule alerts quiet while learning (TaskSentry's own reports still go out)
        /// [default: false].
        learn_suppress: bool, "learn-suppress", "TASKSENTRY_LEARN_SUPPRESS",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "false", "keep rule alerts quiet while learning (discover mode); TaskSentry's own reports still go out"
            => bool = false, given;
        /// Read each running image once in the background (packages, vulnerabilities,
        /// credentials; docs/images.md) [default: true].
        image_scan: bool, "image-scan", "TASKSENTRY_IMAGE_SCAN",
            [num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"],
            "true", "read each running image once per digest in the background, at the lowest CPU and I/O priority: its packages (`image_sbom` records), vulnerable packages (`image_vulnerability`, with `vulndb`), credentials in its files (`image_secret`) and in each entrypoint's environment (`env_secret`); see docs/images.md"
            => bool = true, given;
        /// Time after start-up before the first image is read [default: 60s].
        image_scan_delay: String, "image-scan-delay", "TASKSENTRY_IMAGE_SCAN_DELAY", [value_name = "DURATION"],
            "60s", "time after start-up before the image collector reads the first image (the app's start is left alone)"
            => Duration = Duration::from_secs(60),
                duration(within(Duration::ZERO, Duration::from_secs(24 * 3600), "use between 0s and 24h"));
        /// Bytes per second the image collector may read [default: 8388608].
        image_scan_rate: u64, "image-scan-rate", "TASKSENTRY_IMAGE_SCAN_RATE", [value_name = "BYTES"],
            "8388608", "bytes per second the image collector may read from container roots, on average (it sleeps to hold it)"
            => u64 = 8 << 20, checked(between(4096, 10 << 30));
        /// Directory entries one image pass may look at [default: 200000].
        image_scan_max_files: u64, "image-scan-max-files", "TASKSENTRY_IMAGE_SCAN_MAX_FILES", [value_name = "N"],
            "200000", "directory entries one image pass may look at (files, directories, links, archive entries); past it the pass ends and says it is incomplete"
            => u64 = 200_000, checked(between(1, 100_000_000));
        /// Bytes one image pass may read [default: 536870912].
        image_scan_max_bytes: u64, "image-scan-max-bytes", "TASKSENTRY_IMAGE_SCAN_MAX_BYTES", [value_name = "BYTES"],
            "536870912", "bytes one image pass may read (package databases, metadata and the text files scanned for credentials); past it the pass ends and says it is incomplete"
            => u64 = 512 << 20, checked(between(4096, 1 << 40));
        /// OSV records to match packages against: a directory or osv.dev's `all.zip`.
        vulndb: PathBuf, "vulndb", "TASKSENTRY_VULNDB", [value_name = "PATH"],
            "(none)", "OSV records (a directory of JSON files or osv.dev's `all.zip` exports) the image collector matches packages against; without it no `image_vulnerability` events"
            => Option<PathBuf> = None, checked_optional(|path: &PathBuf| not_empty(path));
        /// Extra file watch entry: `PATH [recursive|depth=N] [EVENTS] [priority=N] [name=NAME]`,
        /// EVENTS a comma-separated list of read, write, open, create, delete, move, attrib,
        /// modify (default) or all; e.g. `--watch '/srv/app recursive write'`. A default path
        /// named again is replaced (repeatable; the variable takes a `;`-separated list).
        watch: Vec<String>, "watch", "TASKSENTRY_WATCH", [value_name = "ENTRY", value_delimiter = ';'],
            "(none)", "extra file watch entries `PATH [recursive\\|depth=N] [EVENTS] [priority=N] [name=NAME]`, EVENTS from read, write, open, create, delete, move, attrib, modify (default), all; a default path named again is replaced (repeatable; `;`-separated in the variable; the file also takes mappings, see docs/files.md)",
            file Vec<serde_json::Value>;
        /// Default watch groups (credentials, etc, cron, home, binaries, temp, dev, logs,
        /// libraries, packages) or default paths not to watch (comma-separated).
        watch_remove: Vec<String>, "watch-remove", "TASKSENTRY_WATCH_REMOVE",
            [value_name = "GROUPS_OR_PATHS", value_delimiter = ','],
            "(none)", "default watch groups (credentials, etc, cron, home, binaries, temp, dev, logs, libraries, packages) or default paths not to watch (comma-separated)";
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
