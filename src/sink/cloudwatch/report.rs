//! The sink's own alert: the drop report, in Falco's alert shape.

use std::time::{Duration, UNIX_EPOCH};

use crate::alert::AlertEcs;
use crate::priority::Priority;

/// What one drop report counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Records dropped because memory and spill were full, by priority number.
    pub by_priority: [u64; 8],
    /// Events CloudWatch rejected (timestamp out of range).
    pub rejected_by_service: u64,
    /// Events in batches CloudWatch refused as invalid.
    pub invalid: u64,
}

/// The record that reports drops: an alert in Falco's shape (rule `TaskSentry dropped alerts`,
/// priority Critical, `source: tasksentry`, the monitor's `hostname`), with the task's `ecs`
/// context and, like every alert, its counts and context in `output_fields` too
/// (`tasksentry.kind`, `tasksentry.count`, `tasksentry.dropped_by_priority.<priority>`, ...;
/// see [`crate::alert::CONTEXT_FIELDS`]), so that a consumer keeping only Falco's keys keeps
/// them; the `tasksentry` object has the same counts.
pub fn drop_report_message(
    timestamp_ms: i64,
    hostname: &str,
    ecs: &AlertEcs,
    counts: &DropCounts,
) -> String {
    let dropped_by_priority = &counts.by_priority;
    let rejected_by_service = counts.rejected_by_service;
    let dropped_invalid = counts.invalid;
    let buffer_total: u64 = dropped_by_priority.iter().sum();
    let total = buffer_total + rejected_by_service + dropped_invalid;
    // Lower-case priority names, as the report has always spelled them.
    let names = Priority::ALL.map(|p| p.as_str().to_ascii_lowercase());
    let mut parts: Vec<String> = names
        .iter()
        .zip(dropped_by_priority)
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    if buffer_total > 0 {
        let list = parts.join(", ");
        parts = vec![format!("{list} (buffer full)")];
    }
    if rejected_by_service > 0 {
        parts.push(format!(
            "{rejected_by_service} rejected by CloudWatch (timestamp out of range)"
        ));
    }
    if dropped_invalid > 0 {
        parts.push(format!(
            "{dropped_invalid} in batches CloudWatch refused as invalid"
        ));
    }
    let by_priority: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(dropped_by_priority)
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| (name.clone(), serde_json::json!(n)))
        .collect();
    let millis = u64::try_from(timestamp_ms).unwrap_or(0);
    let time = UNIX_EPOCH + Duration::from_millis(millis);
    let stamp = crate::event::Timestamp(millis.saturating_mul(1_000_000));
    let message = format!("tasksentry dropped {total} alerts: {}", parts.join("; "));
    let mut fields = serde_json::Map::new();
    fields.insert("tasksentry.kind".into(), "alerts_dropped".into());
    fields.insert("tasksentry.count".into(), total.into());
    fields.insert("tasksentry.message".into(), message.clone().into());
    for (name, n) in &by_priority {
        fields.insert(format!("tasksentry.dropped_by_priority.{name}"), n.clone());
    }
    fields.insert(
        "tasksentry.rejected_by_service".into(),
        rejected_by_service.into(),
    );
    fields.insert("tasksentry.dropped_invalid".into(), dropped_invalid.into());
    crate::alert::add_context_fields(&mut fields, ecs, 1, stamp, stamp, false);
    serde_json::json!({
        "time": humantime::format_rfc3339_millis(time).to_string(),
        "rule": "TaskSentry dropped alerts",
        "priority": "Critical",
        "source": "tasksentry",
        "hostname": hostname,
        "output": message,
        "output_fields": fields,
        "tags": ["tasksentry"],
        "ecs": ecs,
        "tasksentry": {
            "event_type": "tasksentry",
            "collector": "cloudwatch",
            "kind": "alerts_dropped",
            "count": total,
            "dropped_by_priority": by_priority,
            "rejected_by_service": rejected_by_service,
            "dropped_invalid": dropped_invalid,
        },
    })
    .to_string()
}
