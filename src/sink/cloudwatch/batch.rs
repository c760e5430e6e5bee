//! The PutLogEvents batcher: pure functions that make events acceptable to CloudWatch Logs and
//! cut them into batches within the service's limits.
//!
//! The limits (the CloudWatch Logs API reference, PutLogEvents): at most [`MAX_BATCH_EVENTS`] events and
//! [`MAX_BATCH_BYTES`] bytes per call, counting the UTF-8 bytes of each message plus
//! [`EVENT_OVERHEAD_BYTES`]; events in ascending timestamp order; one batch spanning less than
//! 24 hours; events older than 14 days or more than 2 hours in the future are rejected one by one.
//!
//! Rules this module applies, so that no alert is ever rejected whole or lost silently:
//! - **Out-of-range timestamps** (older than 14 days, or more than 2 hours ahead, each with a
//!   5 minute safety margin) are clamped to "now", and the JSON object gets a member
//!   `"tasksentry_original_timestamp_ms": <original>` so the reader sees the original time.
//!   Each clamp is counted (`SinkStats::timestamps_clamped`).
//! - **Oversized messages** (more than [`MAX_MESSAGE_BYTES`] bytes, the largest message that fits
//!   a batch on its own) are truncated: a JSON object keeps its shape, gets a member
//!   `"tasksentry_truncated": {"original_bytes": N}`, has `output_fields` cut down to its
//!   context fields (ECS, aggregation counters, `tasksentry.*`) plus `"truncated": true`, and its
//!   largest members shortened with a `…[truncated]` marker until it
//!   fits; a message that is not a JSON object is cut at a character boundary and gets a marker.
//!   Each truncation is counted (`SinkStats::truncated`).
//! - **Empty messages** (the service wants at least one character) become `{}`.
//! - **Ordering**: a batch is sorted by timestamp with a stable sort, so records with equal
//!   timestamps keep their arrival order.

use serde_json::{Map, Value};

/// Most events in one PutLogEvents call.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes in one PutLogEvents call (message bytes plus [`EVENT_OVERHEAD_BYTES`] per event).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes the service adds to each event's message length when it checks the batch size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The largest message accepted: one event alone in a full batch.
pub(crate) const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;
/// A batch must span strictly less than this (24 hours, in milliseconds).
pub(crate) const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Events older than this (14 days) are rejected by the service.
pub(crate) const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
/// Events further than this (2 hours) in the future are rejected by the service.
pub(crate) const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;
/// Safety margin inside both time windows, for clock skew and time spent in the buffer.
pub(crate) const TIME_MARGIN_MS: i64 = 5 * 60 * 1000;

/// The member added to a JSON object whose timestamp was clamped.
pub const CLAMP_MEMBER: &str = "tasksentry_original_timestamp_ms";
/// The member added to a JSON object that was truncated.
pub(crate) const TRUNCATED_MEMBER: &str = "tasksentry_truncated";
/// The longest `output_fields` value a truncated alert keeps (context fields only).
const KEPT_FIELD_BYTES: usize = 1024;
/// The marker appended to a shortened string.
pub(crate) const TRUNCATION_MARKER: &str = "…[truncated]";

/// One event as PutLogEvents takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub(crate) timestamp_ms: i64,
    /// The message (one JSON object for TaskSentry's records).
    pub message: String,
}

/// What [`prepare`] changed in an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adjustments {
    /// The timestamp was out of the accepted window and was set to "now".
    pub clamped: bool,
    /// The message was too large and was truncated.
    pub truncated: bool,
}

/// Something the batcher can place: it has a timestamp and a size in the service's accounting.
pub(crate) trait Batchable {
    /// Milliseconds since the Unix epoch.
    fn timestamp_ms(&self) -> i64;
    /// UTF-8 message bytes plus [`EVENT_OVERHEAD_BYTES`].
    fn batch_bytes(&self) -> usize;
}

impl Batchable for LogEvent {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }
    fn batch_bytes(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// The size an event will have in a batch once prepared (truncation never makes it larger).
pub(crate) fn prepared_bytes(message: &str) -> usize {
    message.len().clamp(1, MAX_MESSAGE_BYTES) + EVENT_OVERHEAD_BYTES
}

/// Whether a timestamp is inside the window the service accepts at `now_ms` (with the margin).
pub(crate) fn timestamp_in_range(timestamp_ms: i64, now_ms: i64) -> bool {
    timestamp_ms >= now_ms - MAX_AGE_MS + TIME_MARGIN_MS
        && timestamp_ms <= now_ms + MAX_FUTURE_MS - TIME_MARGIN_MS
}

/// Makes one record acceptable to the service at `now_ms`: clamps an out-of-range timestamp,
/// truncates an oversized message, replaces an empty one. Never rejects.
pub fn prepare(timestamp_ms: i64, message: String, now_ms: i64) -> (LogEvent, Adjustments) {
    let mut adjustments = Adjustments::default();
    let mut message = if message.is_empty() {
        "{}".to_owned()
    } else {
        message
    };
    let mut timestamp = timestamp_ms;
    if !timestamp_in_range(timestamp_ms, now_ms) {
        timestamp = now_ms;
        adjustments.clamped = true;
        message = mark_clamped(message, timestamp_ms);
    }
    if message.len() > MAX_MESSAGE_BYTES {
        message = truncate_message(message);
        adjustments.truncated = true;
    }
    (
        LogEvent {
            timestamp_ms: timestamp,
            message,
        },
        adjustments,
    )
}

/// Adds `"tasksentry_original_timestamp_ms": original` as the first member of a JSON object
/// message (keeping the rest byte for byte); other messages get a textual prefix.
fn mark_clamped(message: String, original_ms: i64) -> String {
    let trimmed = message.trim_start();
    if trimmed.starts_with('{') && serde_json::from_str::<Map<String, Value>>(trimmed).is_ok() {
        let body = trimmed[1..].trim_start();
        let separator = if body.starts_with('}') { "" } else { "," };
        format!("{{\"{CLAMP_MEMBER}\":{original_ms}{separator}{body}")
    } else {
        format!("[{CLAMP_MEMBER}={original_ms}] {message}")
    }
}

/// Cuts `text` to at most `max_bytes` bytes at a character boundary.
fn cut_at_char_boundary(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Shortens a message to at most [`MAX_MESSAGE_BYTES`] bytes, keeping a JSON object valid.
pub(crate) fn truncate_message(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let original_bytes = message.len();
    if let Ok(mut map) = serde_json::from_str::<Map<String, Value>>(&message) {
        map.insert(
            TRUNCATED_MEMBER.to_owned(),
            serde_json::json!({ "original_bytes": original_bytes }),
        );
        if let Some(fields) = map.get("output_fields") {
            // The alert's context survives (ECS, aggregation counters, an internal report's
            // kind and count), so that the line still says where and how often, and a Falco
            // consumer still finds non-empty `output_fields`.
            let mut kept: Map<String, Value> = fields
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, value)| {
                    (crate::alert::CONTEXT_FIELDS.contains(&key.as_str())
                        || key.starts_with("tasksentry."))
                        && value.to_string().len() <= KEPT_FIELD_BYTES
                })
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            kept.insert("truncated".to_owned(), Value::Bool(true));
            map.insert("output_fields".to_owned(), Value::Object(kept));
        }
        // Each round shortens or replaces the largest member, so the loop ends; the bound is a
        // guard against a logic error, after which the raw cut below still applies.
        for _ in 0..64 {
            let text = Value::Object(map.clone()).to_string();
            if text.len() <= MAX_MESSAGE_BYTES {
                return text;
            }
            let excess = text.len() - MAX_MESSAGE_BYTES;
            let Some((key, size)) = map
                .iter()
                .filter(|(key, _)| key.as_str() != TRUNCATED_MEMBER)
                .map(|(key, value)| (key.clone(), value.to_string().len()))
                .max_by_key(|(_, size)| *size)
            else {
                break;
            };
            let replacement = match map.get(&key) {
                Some(Value::String(text)) if size > excess + TRUNCATION_MARKER.len() + 64 => {
                    // Cutting k raw bytes shortens the JSON form by at least k bytes.
                    let mut shorter = text.clone();
                    let keep = text.len().saturating_sub(excess + TRUNCATION_MARKER.len());
                    cut_at_char_boundary(&mut shorter, keep);
                    shorter.push_str(TRUNCATION_MARKER);
                    Value::String(shorter)
                }
                _ => Value::String(TRUNCATION_MARKER.to_owned()),
            };
            map.insert(key, replacement);
        }
    }
    let mut text = message;
    cut_at_char_boundary(&mut text, MAX_MESSAGE_BYTES - TRUNCATION_MARKER.len());
    text.push_str(TRUNCATION_MARKER);
    text
}

/// Sorts events by timestamp (stable: equal timestamps keep their order) and cuts them into
/// batches of at most [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`] bytes, each spanning
/// less than [`MAX_BATCH_SPAN_MS`]. Every event must already be prepared (at most
/// [`MAX_MESSAGE_BYTES`]); an event that alone exceeds the byte limit still gets a batch of its
/// own rather than being lost here.
pub(crate) fn split_batches<T: Batchable>(mut events: Vec<T>) -> Vec<Vec<T>> {
    events.sort_by_key(Batchable::timestamp_ms);
    let mut batches = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut bytes = 0usize;
    let mut first_ms = 0i64;
    for event in events {
        let size = event.batch_bytes();
        let ts = event.timestamp_ms();
        if !current.is_empty()
            && (current.len() >= MAX_BATCH_EVENTS
                || bytes + size > MAX_BATCH_BYTES
                || ts - first_ms >= MAX_BATCH_SPAN_MS)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        if current.is_empty() {
            first_ms = ts;
        }
        bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn event(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: "x".repeat(len),
        }
    }

    fn check_batch(batch: &[LogEvent]) {
        assert!(!batch.is_empty());
        assert!(batch.len() <= MAX_BATCH_EVENTS);
        let bytes: usize = batch.iter().map(Batchable::batch_bytes).sum();
        assert!(bytes <= MAX_BATCH_BYTES, "{bytes} bytes");
        assert!(
            batch
                .windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
        let span = batch[batch.len() - 1].timestamp_ms - batch[0].timestamp_ms;
        assert!(span < MAX_BATCH_SPAN_MS);
    }

    #[test]
    fn exactly_ten_thousand_events_fit_one_batch_and_one_more_starts_another() {
        let batches = split_batches((0..10_000).map(|i| event(NOW + i, 10)).collect());
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 10_000);
        let batches = split_batches((0..10_001).map(|i| event(NOW + i, 10)).collect());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10_000, 1]
        );
        batches.iter().for_each(|b| check_batch(b));
    }

    #[test]
    fn byte_limit_counts_26_bytes_per_event_exactly() {
        // Four events of (MAX/4 - 26) bytes fill a batch exactly: 4 * (len + 26) = 1,048,576.
        let len = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD_BYTES;
        let exact: Vec<_> = (0..4).map(|i| event(NOW + i, len)).collect();
        let total: usize = exact.iter().map(Batchable::batch_bytes).sum();
        assert_eq!(total, MAX_BATCH_BYTES);
        assert_eq!(split_batches(exact).len(), 1);
        // One byte more in the last event and it no longer fits.
        let mut over: Vec<_> = (0..4).map(|i| event(NOW + i, len)).collect();
        over[3].message.push('y');
        let batches = split_batches(over);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
        // Without the 26-byte overhead these would fit; with it they must not.
        let naive: Vec<_> = (0..2)
            .map(|i| event(NOW + i, MAX_BATCH_BYTES / 2 - 10))
            .collect();
        assert_eq!(split_batches(naive).len(), 2);
        // A single event of the maximum message size is a batch on its own.
        let batches = split_batches(vec![event(NOW, MAX_MESSAGE_BYTES), event(NOW, 1)]);
        assert_eq!(batches.len(), 2);
        batches.iter().for_each(|b| check_batch(b));
    }

    #[test]
    fn batches_are_sorted_stably_by_timestamp() {
        let events = vec![
            LogEvent {
                timestamp_ms: NOW + 5,
                message: "c".into(),
            },
            LogEvent {
                timestamp_ms: NOW + 1,
                message: "a".into(),
            },
            LogEvent {
                timestamp_ms: NOW + 5,
                message: "d".into(),
            },
            LogEvent {
                timestamp_ms: NOW + 1,
                message: "b".into(),
            },
        ];
        let batches = split_batches(events);
        let order: Vec<_> = batches[0].iter().map(|e| e.message.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_batch_never_spans_24_hours() {
        let day = MAX_BATCH_SPAN_MS;
        let batches = split_batches(vec![event(NOW, 1), event(NOW + day - 1, 1)]);
        assert_eq!(batches.len(), 1, "just under 24 h is one batch");
        let batches = split_batches(vec![event(NOW, 1), event(NOW + day, 1)]);
        assert_eq!(batches.len(), 2, "exactly 24 h must be split");
        let batches = split_batches(vec![
            event(NOW + 2 * day + 7, 1),
            event(NOW, 1),
            event(NOW + day / 2, 1),
            event(NOW + day + 1, 1),
        ]);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1]);
        batches.iter().for_each(|b| check_batch(b));
    }

    #[test]
    fn many_mixed_events_always_respect_every_limit() {
        let mut seed = 7u64;
        let events: Vec<_> = (0..30_000)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let ts = NOW + (seed >> 33) as i64 % (3 * MAX_BATCH_SPAN_MS);
                let len = 1 + (seed >> 20) as usize % 400;
                event(ts, len)
            })
            .collect();
        let batches = split_batches(events);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 30_000);
        batches.iter().for_each(|b| check_batch(b));
    }

    #[test]
    fn oversized_json_alert_is_truncated_and_stays_valid_json() {
        let big = "A".repeat(2 * 1024 * 1024);
        let alert = serde_json::json!({
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "output": big,
            "output_fields": {
                "proc.cmdline": "x".repeat(300_000),
                "ecs.family": "orders",
                "tasksentry.alert.count": 3,
            },
            "ecs": {"task": "t-1"},
        })
        .to_string();
        let (event, adjustments) = prepare(NOW, alert, NOW);
        assert!(adjustments.truncated && !adjustments.clamped);
        assert!(event.message.len() <= MAX_MESSAGE_BYTES);
        assert!(
            event.message.len() > MAX_MESSAGE_BYTES - 4096,
            "keeps most of it"
        );
        let value: Value = serde_json::from_str(&event.message).expect("still valid JSON");
        assert_eq!(value["rule"], "Terminal shell in container");
        assert_eq!(value["ecs"]["task"], "t-1");
        assert_eq!(value["output_fields"]["truncated"], true);
        assert_eq!(
            value["output_fields"]["ecs.family"], "orders",
            "context kept"
        );
        assert_eq!(value["output_fields"]["tasksentry.alert.count"], 3);
        assert!(value["output_fields"].get("proc.cmdline").is_none());
        assert!(value[TRUNCATED_MEMBER]["original_bytes"].as_u64().unwrap() > 2 * 1024 * 1024);
        let output = value["output"].as_str().unwrap();
        assert!(output.starts_with("AAAA") && output.ends_with(TRUNCATION_MARKER));
    }

    #[test]
    fn truncation_boundary_is_exact_and_respects_utf8() {
        let exact = "é".repeat(MAX_MESSAGE_BYTES / 2); // 2 bytes each: exactly the maximum.
        assert_eq!(exact.len(), MAX_MESSAGE_BYTES);
        let (event, adjustments) = prepare(NOW, exact.clone(), NOW);
        assert!(!adjustments.truncated);
        assert_eq!(event.message, exact);

        let over = format!("{exact}z");
        let (event, adjustments) = prepare(NOW, over, NOW);
        assert!(adjustments.truncated);
        assert!(event.message.len() <= MAX_MESSAGE_BYTES);
        assert!(event.message.ends_with(TRUNCATION_MARKER));

        // A huge escaped string (every quote doubles in JSON form) still ends up small enough.
        let quotes = serde_json::json!({"output": "\"".repeat(900_000)}).to_string();
        assert!(quotes.len() > MAX_MESSAGE_BYTES);
        let (event, _) = prepare(NOW, quotes, NOW);
        assert!(event.message.len() <= MAX_MESSAGE_BYTES);
        serde_json::from_str::<Value>(&event.message).expect("valid JSON");
    }

    #[test]
    fn out_of_range_timestamps_are_clamped_and_marked() {
        let old = NOW - MAX_AGE_MS - 1;
        let (event, adjustments) = prepare(old, r#"{"rule":"r","n":1}"#.into(), NOW);
        assert!(adjustments.clamped);
        assert_eq!(event.timestamp_ms, NOW);
        let value: Value = serde_json::from_str(&event.message).expect("valid JSON");
        assert_eq!(value[CLAMP_MEMBER], old);
        assert_eq!(value["rule"], "r");

        let future = NOW + MAX_FUTURE_MS + 1;
        let (event, adjustments) = prepare(future, "{}".into(), NOW);
        assert!(adjustments.clamped);
        let value: Value = serde_json::from_str(&event.message).expect("valid JSON");
        assert_eq!(value[CLAMP_MEMBER], future);

        let (event, adjustments) = prepare(-5, "plain text".into(), NOW);
        assert!(adjustments.clamped);
        assert!(event.message.contains("-5") && event.message.ends_with("plain text"));

        // Inside the window (with the margin) nothing changes.
        for ts in [
            NOW,
            NOW - MAX_AGE_MS + TIME_MARGIN_MS,
            NOW + MAX_FUTURE_MS - TIME_MARGIN_MS,
        ] {
            let (event, adjustments) = prepare(ts, "{\"a\":1}".into(), NOW);
            assert_eq!(adjustments, Adjustments::default());
            assert_eq!(event.timestamp_ms, ts);
            assert_eq!(event.message, "{\"a\":1}");
        }
    }

    #[test]
    fn empty_message_becomes_an_empty_object() {
        let (event, _) = prepare(NOW, String::new(), NOW);
        assert_eq!(event.message, "{}");
    }
}
