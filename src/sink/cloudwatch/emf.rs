//! The heartbeat: a CloudWatch Embedded Metric Format (EMF) record the sink writes into its own
//! log stream at a fixed interval, so that CloudWatch extracts metrics from it and a missing
//! heartbeat can raise an alarm.
//!
//! [`build_emf`] is pure: it turns a [`HeartbeatStats`] into one JSON object with the `_aws`
//! metadata (namespace `TaskSentry`, one dimension set `[cluster, task_family]`) and every
//! dimension and metric as a top-level member, as the EMF specification requires.
//! [`validate_emf`] checks a record against the specification's rules (used by the tests).
//!
//! **One heartbeat per task per interval bucket.** Heartbeats are sent in the middle of each
//! wall-clock bucket of `heartbeat_interval` (for 60 s: at second 30 of every minute, see
//! [`heartbeat_due_in`]), at most one per bucket. CloudWatch periods are aligned to the clock
//! too, so with a 60 s period the `SampleCount` of `Heartbeat` for a task family is the number
//! of its tasks whose monitor reported in that minute: the alerting stack compares it with the
//! number of running tasks to spot a single silent task among many.
//!
//! **Visibility.** `VisibilityPercent` = 100 × (checked − degraded) / checked, 0 when no app
//! container was checked (a sidecar that sees no application is blind), and
//! `ContainersDegraded`, from [`crate::telemetry::Telemetry`]. Alarming on their `Minimum` over a
//! task family catches one blind task among many. Both are left out of a heartbeat sent before
//! the monitor has anything to say (no application container checked yet, within its start-up
//! grace): "not known yet" must not read as "blind".

use serde_json::{Map, Value, json};

use crate::priority::Priority;

/// The metric namespace.
pub const NAMESPACE: &str = "TaskSentry";
/// The EMF limit of metric definitions per directive.
pub(crate) const MAX_METRICS: usize = 100;
/// The EMF limit of keys per dimension set.
pub(crate) const MAX_DIMENSIONS: usize = 30;

/// What a heartbeat reports. Counters are totals since the monitor started.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HeartbeatStats {
    /// When, in milliseconds since the Unix epoch.
    pub(crate) timestamp_ms: i64,
    /// The ECS cluster (dimension).
    pub(crate) cluster: String,
    /// The task definition family (dimension).
    pub(crate) task_family: String,
    /// Alerts (records) handed to the sink, by priority.
    pub(crate) alerts_by_priority: [u64; 8],
    /// Events the engine processed.
    pub(crate) events_processed: u64,
    /// Processes the collectors missed.
    pub(crate) processes_missed: u64,
    /// Alerts dropped anywhere in the pipeline (queue full, buffer full).
    pub(crate) alerts_dropped: u64,
    /// CPU time the monitor used (user + system), in seconds.
    pub(crate) monitor_cpu_seconds: f64,
    /// The monitor's resident set size, in bytes.
    pub(crate) monitor_rss_bytes: u64,
    /// Live application containers whose visibility was checked (gauge).
    pub(crate) containers_checked: u64,
    /// Of those, containers seen only partly (gauge).
    pub(crate) containers_degraded: u64,
    /// Whether the visibility figures mean something yet (see the module documentation).
    pub(crate) visibility_known: bool,
}

/// The share of checked application containers the monitor fully sees, in percent: 0 when
/// none was checked (no application container in sight means the monitor is blind).
pub(crate) fn visibility_percent(checked: u64, degraded: u64) -> f64 {
    if checked == 0 {
        return 0.0;
    }
    let seen = checked.saturating_sub(degraded.min(checked));
    100.0 * seen as f64 / checked as f64
}

/// The wall-clock bucket of `interval` that `now_ms` falls in (`None` for a zero interval).
pub(crate) fn heartbeat_bucket(now_ms: i64, interval: std::time::Duration) -> Option<i64> {
    let interval_ms = i64::try_from(interval.as_millis())
        .ok()
        .filter(|ms| *ms > 0)?;
    Some(now_ms.div_euclid(interval_ms))
}

/// How long from `now_ms` until the next heartbeat is due: the middle of the current bucket
/// when no heartbeat was sent in it (`last_bucket` is an older bucket or `None`; at once if
/// the middle has passed), otherwise the middle of the next bucket. One heartbeat per bucket,
/// sent half an interval away from the bucket's edges, so that scheduling delays never move it
/// into a neighbouring period. A wall clock set back behind `last_bucket` counts as a new start.
pub(crate) fn heartbeat_due_in(
    now_ms: i64,
    interval: std::time::Duration,
    last_bucket: Option<i64>,
) -> std::time::Duration {
    let Some(bucket) = heartbeat_bucket(now_ms, interval) else {
        return std::time::Duration::MAX;
    };
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let target = match last_bucket {
        Some(last) if last == bucket => bucket + 1,
        _ => bucket,
    };
    let due_ms = target
        .saturating_mul(interval_ms)
        .saturating_add(interval_ms / 2);
    std::time::Duration::from_millis(u64::try_from(due_ms - now_ms).unwrap_or(0))
}

/// The value of a dimension that is unknown (outside ECS, or before the task metadata
/// answered): CloudWatch does not accept empty dimension values.
pub(crate) const UNKNOWN_DIMENSION: &str = "unknown";

/// Builds the heartbeat's EMF JSON object (one line, no newline).
pub(crate) fn build_emf(stats: &HeartbeatStats) -> String {
    let mut metrics = Vec::new();
    let mut root = Map::new();
    let dimension = |value: &str| {
        if value.is_empty() {
            json!(UNKNOWN_DIMENSION)
        } else {
            json!(value)
        }
    };
    root.insert("source".into(), json!("tasksentry"));
    root.insert("kind".into(), json!("heartbeat"));
    root.insert("cluster".into(), dimension(&stats.cluster));
    root.insert("task_family".into(), dimension(&stats.task_family));
    let mut metric = |name: &str, unit: &str, value: Value| {
        metrics.push(json!({ "Name": name, "Unit": unit }));
        root.insert(name.to_owned(), value);
    };
    metric("Heartbeat", "Count", json!(1));
    for (priority, count) in Priority::ALL.iter().zip(stats.alerts_by_priority) {
        metric(priority.metric_name(), "Count", json!(count));
    }
    metric("EventsProcessed", "Count", json!(stats.events_processed));
    metric("ProcessesMissed", "Count", json!(stats.processes_missed));
    metric("AlertsDropped", "Count", json!(stats.alerts_dropped));
    metric(
        "MonitorCpuSeconds",
        "Seconds",
        json!(stats.monitor_cpu_seconds),
    );
    metric("MonitorRssBytes", "Bytes", json!(stats.monitor_rss_bytes));
    if stats.visibility_known {
        metric(
            "VisibilityPercent",
            "Percent",
            json!(visibility_percent(
                stats.containers_checked,
                stats.containers_degraded
            )),
        );
        metric(
            "ContainersDegraded",
            "Count",
            json!(stats.containers_degraded.min(stats.containers_checked)),
        );
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": stats.timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["cluster", "task_family"]],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// Checks one record against the EMF specification: a single JSON object with
/// `_aws.Timestamp` (integer milliseconds) and `_aws.CloudWatchMetrics`, each directive with a
/// `Namespace`, `Dimensions` (arrays of at most 30 keys) and `Metrics` (at most 100, each with a
/// `Name` and an optional valid `Unit`), and every referenced dimension (a string) and metric (a
/// number or an array of at most 100 numbers) present as a top-level member.
pub fn validate_emf(text: &str) -> Result<(), String> {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let root: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("not one JSON object: {e}"))?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("missing object `_aws`")?;
    let timestamp = aws.get("Timestamp").ok_or("missing `_aws.Timestamp`")?;
    if timestamp.as_i64().is_none_or(|ms| ms < 1_000_000_000_000) {
        return Err(format!(
            "`_aws.Timestamp` must be epoch milliseconds, got {timestamp}"
        ));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("missing array `_aws.CloudWatchMetrics`")?;
    if directives.is_empty() {
        return Err("`_aws.CloudWatchMetrics` is empty".into());
    }
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or("directive without a string `Namespace`")?;
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err(format!("bad namespace `{namespace}`"));
        }
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("directive without array `Dimensions`")?;
        for set in sets {
            let keys = set.as_array().ok_or("a dimension set is not an array")?;
            if keys.len() > MAX_DIMENSIONS {
                return Err(format!(
                    "dimension set of {} keys (max {MAX_DIMENSIONS})",
                    keys.len()
                ));
            }
            for key in keys {
                let key = key.as_str().ok_or("dimension key is not a string")?;
                match root.get(key) {
                    Some(Value::String(value)) if value.len() <= 1024 => {}
                    Some(_) => return Err(format!("dimension `{key}` is not a string ≤ 1024")),
                    None => return Err(format!("dimension `{key}` is not a top-level member")),
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("directive without array `Metrics`")?;
        if metrics.len() > MAX_METRICS {
            return Err(format!("{} metrics (max {MAX_METRICS})", metrics.len()));
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("metric without a string `Name`")?;
            if let Some(unit) = metric.get("Unit") {
                if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
                    return Err(format!("metric `{name}` has an invalid unit {unit}"));
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                Some(other) => return Err(format!("metric `{name}` is not numeric: {other}")),
                None => return Err(format!("metric `{name}` is not a top-level member")),
            }
        }
    }
    Ok(())
}

/// Reads this process's CPU time (user + system, seconds) and resident set size (bytes) from
/// `<proc_root>/self/stat` and `statm`. `None` when they cannot be read or parsed.
pub(crate) fn read_self_usage(proc_root: &std::path::Path) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(proc_root.join("self/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields follow the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime is field 14 and stime 15 (1-based, man proc_pid_stat).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let statm = std::fs::read_to_string(proc_root.join("self/statm")).ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        (utime + stime) as f64 / ticks as f64,
        resident * page as u64,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> HeartbeatStats {
        HeartbeatStats {
            timestamp_ms: 1_780_000_000_123,
            cluster: "prod".into(),
            task_family: "orders-api".into(),
            alerts_by_priority: [0, 1, 2, 3, 4, 5, 6, 7],
            events_processed: 12_345,
            processes_missed: 3,
            alerts_dropped: 9,
            monitor_cpu_seconds: 1.25,
            monitor_rss_bytes: 14_000_000,
            containers_checked: 4,
            containers_degraded: 1,
            visibility_known: true,
        }
    }

    #[test]
    fn heartbeat_is_valid_emf_with_every_value() {
        let text = build_emf(&sample());
        validate_emf(&text).expect("valid EMF");
        assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["_aws"]["Timestamp"], 1_780_000_000_123i64);
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "TaskSentry");
        assert_eq!(directive["Dimensions"], json!([["cluster", "task_family"]]));
        assert_eq!(value["cluster"], "prod");
        assert_eq!(value["task_family"], "orders-api");
        assert_eq!(value["AlertsCritical"], 2);
        assert_eq!(value["AlertsDebug"], 7);
        assert_eq!(value["EventsProcessed"], 12_345);
        assert_eq!(value["ProcessesMissed"], 3);
        assert_eq!(value["AlertsDropped"], 9);
        assert_eq!(value["MonitorCpuSeconds"], 1.25);
        assert_eq!(value["MonitorRssBytes"], 14_000_000);
        assert_eq!(value["VisibilityPercent"], 75.0);
        assert_eq!(value["ContainersDegraded"], 1);
        let names: Vec<_> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 16);
        assert!(names.iter().all(|n| value.get(n).is_some()));
        let unit = |name: &str| {
            directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Name"] == name)
                .map(|m| m["Unit"].clone())
        };
        assert_eq!(unit("VisibilityPercent"), Some(json!("Percent")));
        assert_eq!(unit("ContainersDegraded"), Some(json!("Count")));
    }

    #[test]
    fn visibility_is_the_share_of_checked_containers_fully_seen() {
        assert_eq!(visibility_percent(4, 0), 100.0);
        assert_eq!(visibility_percent(4, 1), 75.0);
        assert_eq!(visibility_percent(3, 3), 0.0);
        // No application container in sight: blind, not "nothing to see".
        assert_eq!(visibility_percent(0, 0), 0.0);
        // A racing degraded count above checked never goes negative.
        assert_eq!(visibility_percent(2, 5), 0.0);
        let mut stats = sample();
        stats.containers_checked = 0;
        stats.containers_degraded = 0;
        let value: Value = serde_json::from_str(&build_emf(&stats)).unwrap();
        assert_eq!(value["VisibilityPercent"], 0.0);
        assert_eq!(value["ContainersDegraded"], 0);
        // Before the monitor knows anything: neither figure, and a valid record without them.
        stats.visibility_known = false;
        let text = build_emf(&stats);
        validate_emf(&text).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(
            value.get("VisibilityPercent").is_none() && value.get("ContainersDegraded").is_none()
        );
        assert!(!text.contains("VisibilityPercent"));
    }

    #[test]
    fn empty_dimensions_become_unknown_because_cloudwatch_rejects_empty_values() {
        let mut stats = sample();
        stats.cluster = String::new();
        stats.task_family = String::new();
        let text = build_emf(&stats);
        validate_emf(&text).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["cluster"], "unknown");
        assert_eq!(value["task_family"], "unknown");
    }

    #[test]
    fn heartbeats_fall_once_in_every_bucket_in_its_middle() {
        use std::time::Duration;
        let minute = Duration::from_secs(60);
        // The first millisecond of some minute.
        let start = 1_780_000_020_000i64 - 1_780_000_020_000i64.rem_euclid(60_000);
        // First heartbeat: in the middle of the current minute when it is still ahead...
        assert_eq!(
            heartbeat_due_in(start + 10_000, minute, None),
            Duration::from_secs(20)
        );
        // ...at once when the middle has passed (still this minute's heartbeat).
        assert_eq!(
            heartbeat_due_in(start + 45_000, minute, None),
            Duration::ZERO
        );
        // After one was sent in this minute: the middle of the next one.
        let bucket = heartbeat_bucket(start + 45_000, minute);
        assert_eq!(
            heartbeat_due_in(start + 45_000, minute, bucket),
            Duration::from_secs(45)
        );
        // Late by less than half a minute: it still falls in its own minute.
        let now = start + 60_000 + 30_000 + 29_000;
        assert_eq!(heartbeat_bucket(now, minute), bucket.map(|b| b + 1));
        // A stall over a whole minute: that minute has none, the current one gets one at once.
        assert_eq!(
            heartbeat_due_in(start + 3 * 60_000 + 40_000, minute, bucket),
            Duration::ZERO
        );
        // The wall clock set back: a new start, not a wait until it catches up.
        assert_eq!(
            heartbeat_due_in(start - 60_000 + 10_000, minute, bucket),
            Duration::from_secs(20)
        );
        assert_eq!(heartbeat_bucket(start, Duration::ZERO), None);
        assert_eq!(heartbeat_due_in(start, Duration::ZERO, None), Duration::MAX);
        // Simulated: whatever the phase and jitter (< half an interval), exactly one per bucket.
        for phase in [0i64, 1, 29_999, 30_000, 59_999] {
            let mut now = start + phase;
            let mut last = None;
            let mut per_bucket = std::collections::BTreeMap::new();
            for step in 0..200i64 {
                let due = heartbeat_due_in(now, minute, last);
                now += i64::try_from(due.as_millis()).unwrap() + (step * 7_919) % 29_000;
                let bucket = heartbeat_bucket(now, minute).unwrap();
                if last != Some(bucket) {
                    *per_bucket.entry(bucket).or_insert(0) += 1;
                    last = Some(bucket);
                }
            }
            let first = *per_bucket.keys().next().unwrap();
            let last_bucket = *per_bucket.keys().last().unwrap();
            assert_eq!(per_bucket.len() as i64, last_bucket - first + 1, "no gap");
            assert!(per_bucket.values().all(|n| *n == 1));
        }
    }

    #[test]
    fn validator_rejects_what_the_spec_forbids() {
        let good: Value = serde_json::from_str(&build_emf(&sample())).unwrap();
        let mutate = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            validate_emf(&v.to_string())
        };
        assert!(mutate(&|_| {}).is_ok());
        assert!(
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("_aws");
            })
            .is_err()
        );
        assert!(mutate(&|v| v["_aws"]["Timestamp"] = json!("now")).is_err());
        assert!(
            mutate(&|v| v["_aws"]["Timestamp"] = json!(1_780_000_000)).is_err(),
            "seconds"
        );
        assert!(
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("cluster");
            })
            .is_err()
        );
        assert!(
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("EventsProcessed");
            })
            .is_err()
        );
        assert!(mutate(&|v| v["EventsProcessed"] = json!("many")).is_err());
        assert!(
            mutate(&|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Parsecs"))
                .is_err()
        );
        assert!(
            mutate(&|v| {
                let keys: Vec<Value> = (0..31).map(|i| json!(format!("d{i}"))).collect();
                for i in 0..31 {
                    v[format!("d{i}")] = json!("x");
                }
                v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
            })
            .is_err()
        );
        assert!(
            mutate(&|v| {
                let metrics: Vec<Value> =
                    (0..101).map(|i| json!({"Name": format!("m{i}")})).collect();
                for i in 0..101 {
                    v[format!("m{i}")] = json!(1);
                }
                v["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(metrics);
            })
            .is_err()
        );
        assert!(validate_emf("{} trailing").is_err());
    }

    #[test]
    fn reads_own_cpu_and_rss() {
        let (cpu, rss) = read_self_usage(std::path::Path::new("/proc")).expect("readable");
        assert!(cpu >= 0.0);
        assert!(
            rss > 1024 * 1024,
            "a test process uses more than 1 MiB: {rss}"
        );
    }
}
