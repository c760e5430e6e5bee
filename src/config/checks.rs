//! The resolvers and checks of the settings table: each resolver takes the value given (flag or
//! variable, else file) and the default and returns the value or a message; each check says
//! what is wrong with a value. The messages become errors that name the setting.

use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use super::{RETENTION_DAYS, parse_duration};
use crate::alert::redact::Redactor;
use crate::priority::Priority;

// Resolvers: each takes the value given (flag or variable, else file) and the default.

/// The value given, else the default: any value of the type is valid.
pub(super) fn given<T>(value: Option<T>, default: T) -> Result<T, String> {
    Ok(value.unwrap_or(default))
}

/// The value given, else the default, for a setting that may stay unset.
pub(super) fn optional<T>(value: Option<T>, default: Option<T>) -> Result<Option<T>, String> {
    Ok(value.or(default))
}

/// The value given (else the default) when `check` accepts it.
pub(super) fn checked<T>(
    check: impl Fn(&T) -> Result<(), String>,
) -> impl Fn(Option<T>, T) -> Result<T, String> {
    move |value, default| {
        let value = value.unwrap_or(default);
        check(&value)?;
        Ok(value)
    }
}

/// Like [`checked`], for a setting that may stay unset (only a set value is checked).
pub(super) fn checked_optional<T>(
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
pub(super) fn optional_text(
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
pub(super) fn duration(
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
pub(super) fn between<T: PartialOrd + Display>(
    low: T,
    high: T,
) -> impl Fn(&T) -> Result<(), String> {
    move |n| {
        if *n < low || *n > high {
            return Err(format!("{n} is out of range: use between {low} and {high}"));
        }
        Ok(())
    }
}

/// A duration setting that may stay unset (only a set value is checked).
pub(super) fn optional_duration(
    check: impl Fn(Duration) -> Result<(), String>,
) -> impl Fn(Option<String>, Option<Duration>) -> Result<Option<Duration>, String> {
    move |text, default| {
        let value = match text {
            Some(text) => Some(parse_duration(&text)?),
            None => default,
        };
        if let Some(value) = value {
            check(value)?;
        }
        Ok(value)
    }
}

/// A duration from `low` to `high`; `hint` says which.
pub(super) fn within(
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

pub(super) fn rules_poll(interval: Duration) -> Result<(), String> {
    if !interval.is_zero() && interval < Duration::from_millis(100) {
        return Err(format!(
            "{interval:?} is too short: use 0s (off) or at least 100ms"
        ));
    }
    Ok(())
}

pub(super) fn not_empty(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(())
}

/// A priority given as text (else the default), parsed as rules spell it (case-insensitive;
/// `info` is `informational`).
pub(super) fn priority(text: Option<String>, default: Priority) -> Result<Priority, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse().map_err(|_| {
        format!(
            "`{text}` is not a priority: use emergency, alert, critical, error, warning, notice, informational (info) or debug"
        )
    })
}

pub(super) fn log_filter(filter: &str) -> Result<(), String> {
    if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
        return Err(format!(
            "`{filter}` is not a log filter: use e.g. `info`, `debug` or `tasksentry=trace`"
        ));
    }
    Ok(())
}

pub(super) fn variable_names(names: &[String]) -> Result<(), String> {
    if let Some(bad) = names
        .iter()
        .find(|name| name.is_empty() || name.contains(['=', '\0']))
    {
        return Err(format!("`{bad}` is not an environment variable name"));
    }
    Ok(())
}

/// The built-in secret patterns plus the ones given, compiled (else the default).
pub(super) fn redaction_patterns(
    patterns: Option<Vec<String>>,
    default: Redactor,
) -> Result<Redactor, String> {
    match patterns {
        Some(patterns) => Redactor::with_extra(&patterns).map_err(|error| error.to_string()),
        None => Ok(default),
    }
}

pub(super) fn log_group_name(name: &str) -> Result<(), String> {
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

pub(super) fn log_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 512 || name.contains([':', '*']) {
        return Err(format!(
            "`{name}` is not a log stream name: 1-512 characters without `:` or `*`"
        ));
    }
    Ok(())
}

pub(super) fn endpoint_url(endpoint: &str) -> Result<(), String> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!("`{endpoint}` is not an http:// or https:// URL"));
    }
    Ok(())
}

pub(super) fn region_name(region: &str) -> Result<(), String> {
    if !region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!("`{region}` is not a region name"));
    }
    Ok(())
}

pub(super) fn retention(days: &i32) -> Result<(), String> {
    if !RETENTION_DAYS.contains(days) {
        return Err(format!(
            "{days} is not a retention CloudWatch accepts: use one of {RETENTION_DAYS:?}"
        ));
    }
    Ok(())
}

pub(super) fn spill_bytes(bytes: &u64) -> Result<(), String> {
    if *bytes < 1024 * 1024 {
        return Err(format!(
            "{bytes} is too small: use at least 1048576 (1 MiB)"
        ));
    }
    Ok(())
}
