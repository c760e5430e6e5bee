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
mod checks;
mod settings;
pub(crate) mod yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use settings::Derived;
pub use settings::{Config, FileConfig, Overrides, SETTINGS};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
pub(crate) const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

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

/// Parses a duration such as `100ms`, `2s`, `1m`, `250us`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("`{text}` is not a duration ({error}); write e.g. `100ms` or `1s`")
    })
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub(crate) fn read(path: &Path) -> Result<FileConfig, ConfigError> {
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
        let value = yaml::to_json(text)?;
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
    pub(crate) fn cloudwatch_enabled(&self) -> bool {
        self.outputs.contains(&Output::Cloudwatch)
    }

    /// Whether alerts go to stdout.
    pub(crate) fn stdout_enabled(&self) -> bool {
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
    use crate::priority::Priority;

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
        assert_eq!(config.stdout_min_priority, Priority::Warning);
        assert_eq!(config.redact_patterns.extra_sources(), vec!["tok-[0-9]+"]);
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
    use crate::priority::Priority;

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
        assert_eq!(config.cloudwatch_min_priority, Priority::Warning);

        let file = FileConfig::parse(
            "log_group: /security/runtime\ncloudwatch_connect_timeout: 500ms\ncloudwatch_attempt_timeout: 2s\ncloudwatch_retry_max: 5s\n",
        )
        .expect("parses");
        let config = Config::layer(Overrides::default(), file).expect("valid");
        let settings = crate::topology::outputs::cloudwatch_settings(&config).expect("enabled");
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
            ("image_scan_rate: 100\n", "image_scan_rate"),
            ("image_scan_delay: 2d\n", "image_scan_delay"),
            ("image_scan_max_files: 0\n", "image_scan_max_files"),
            ("vulndb: ''\n", "vulndb"),
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
        let readme = include_str!("../../README.md");
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
