//! The bridge between the engine's CloudWatch output port and the CloudWatch sink: the engine's
//! typed record becomes the sink's (milliseconds, priority, message) without parsing the line. The sink's queue being full never holds up the engine: what it could not take is
//! counted (`Telemetry::alerts_dropped`, shipped in the heartbeat) and logged,
//! rate-limited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::cloudwatch::Record;
use crate::engine;
use crate::priority::Priority;
use crate::telemetry::Telemetry;

/// The CloudWatch record for an engine record: its own time and priority (an event line,
/// which has none, counts as informational). Nothing is parsed: the engine said both.
pub(crate) fn record_for(record: &engine::Record) -> Record {
    Record {
        timestamp_ms: i64::try_from(record.time.as_millis()).unwrap_or(i64::MAX),
        priority: record.priority.unwrap_or(Priority::Informational),
        message: record.line.to_string(),
    }
}

/// Forwards records until `records` closes; dropping `sink` then lets the sink flush and stop.
pub(crate) async fn forward(
    mut records: mpsc::Receiver<engine::Record>,
    sink: mpsc::Sender<Record>,
    telemetry: Arc<Telemetry>,
) {
    let mut last_warning: Option<Instant> = None;
    let mut dropped_since_warning = 0u64;
    while let Some(record) = records.recv().await {
        if sink.try_send(record_for(&record)).is_err() {
            Telemetry::add(&telemetry.alerts_dropped, 1);
            dropped_since_warning += 1;
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    dropped = dropped_since_warning,
                    "The CloudWatch queue is full: alerts were dropped (counted in the heartbeat)."
                );
                last_warning = Some(Instant::now());
                dropped_since_warning = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use std::sync::atomic::Ordering;

    fn record(line: &str, time: &str, priority: Option<Priority>) -> engine::Record {
        engine::Record {
            time: Timestamp::parse_rfc3339(time).expect("a time"),
            priority,
            internal: false,
            line: Arc::from(line),
        }
    }

    #[test]
    fn alert_lines_keep_their_time_and_priority() {
        let line = r#"{"time":"2023-05-25T13:44:05.478445995Z","rule":"r","priority":"Critical"}"#;
        let record = record_for(&record(
            line,
            "2023-05-25T13:44:05.478445995Z",
            Some(Priority::Critical),
        ));
        assert_eq!(record.timestamp_ms, 1_685_022_245_478);
        assert_eq!(record.priority, Priority::Critical);
        assert_eq!(record.message, line);
    }

    #[test]
    fn event_lines_use_the_event_time_and_count_as_informational() {
        let line = r#"{"evt":{"type":"execve","time":"2023-05-25T13:44:05.000000000Z"}}"#;
        let record = record_for(&record(line, "2023-05-25T13:44:05.000000000Z", None));
        assert_eq!(record.timestamp_ms, 1_685_022_245_000);
        assert_eq!(record.priority, Priority::Informational);
    }

    #[tokio::test]
    async fn a_full_sink_queue_drops_and_counts_without_blocking() {
        let (line_tx, line_rx) = mpsc::channel(16);
        let (sink_tx, mut sink_rx) = mpsc::channel(1);
        let counters = Arc::new(Telemetry::default());
        let task = tokio::spawn(forward(line_rx, sink_tx, counters.clone()));
        for n in 0..5 {
            line_tx
                .send(record(
                    &format!(r#"{{"priority":"Warning","n":{n}}}"#),
                    "2023-05-25T13:44:05Z",
                    Some(Priority::Warning),
                ))
                .await
                .expect("bridge running");
        }
        drop(line_tx);
        task.await.expect("the bridge ends when lines close");
        assert!(sink_rx.try_recv().is_ok(), "the queue holds one");
        assert_eq!(
            counters.alerts_dropped.load(Ordering::Relaxed),
            4,
            "every other line is counted"
        );
    }
}
