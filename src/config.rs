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
    /// `--mode` / `TASKSENTRY_MODE`.
    pub mode: Option<Mode>,
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
    /// See [`Config::mode`].
    pub mode: Option<Mode>,
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
    /// `poll` (default), `trace` (event-only ptrace on top of polling) or `auto`.
    pub mode: Mode,
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
            mode: Mode::Poll,
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
        "/proc rescan interval; inotify triggers rescan sooner",
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
        "rescan /proc at once when a container opens its loader or a PATH binary",
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
        "mode",
        "--mode",
        "TASKSENTRY_MODE",
        "poll",
        "`poll`: /proc only; `trace`: also event-only ptrace (needs SYS_PTRACE), every exec seen; `auto`: trace when possible, else poll",
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
            mode: overrides.mode.or(file.mode).unwrap_or(defaults.mode),
        })
    }
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
