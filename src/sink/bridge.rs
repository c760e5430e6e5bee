//! The bridge between the engine's CloudWatch output port (JSON lines) and the CloudWatch
//! sink (records with a time and a priority). Each line is parsed once for its time and
//! priority. The sink's queue being full never holds up the engine: what it could not take is
//! counted (`PipelineCounters::alerts_dropped`, shipped in the heartbeat) and logged,
//! rate-limited.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;

use super::cloudwatch::{PipelineCounters, Record, priority_number};
use crate::event::Timestamp;

/// The parts of an alert or event line CloudWatch needs.
#[derive(Deserialize)]
struct LineMeta {
    time: Option<String>,
    priority: Option<String>,
    evt: Option<EvtMeta>,
}

#[derive(Deserialize)]
struct EvtMeta {
    time: Option<String>,
}

/// The CloudWatch record for a line: the alert's (or event's) own time, and its priority
/// (events, which have none, count as informational).
pub fn record_for(line: &str) -> Record {
    let meta: Option<LineMeta> = serde_json::from_str(line).ok();
    let time = meta
        .as_ref()
        .and_then(|m| {
            m.time
                .clone()
                .or_else(|| m.evt.as_ref().and_then(|e| e.time.clone()))
        })
        .and_then(|text| Timestamp::parse_rfc3339(&text).ok())
        .unwrap_or_else(Timestamp::now);
    let priority = meta
        .as_ref()
        .and_then(|m| m.priority.as_deref())
        .and_then(priority_number)
        .unwrap_or(6);
    Record {
        timestamp_ms: i64::try_from(time.as_millis()).unwrap_or(i64::MAX),
        priority,
        message: line.to_owned(),
    }
}

/// Forwards lines until `lines` closes; dropping `sink` then lets the sink flush and stop.
pub async fn forward(
    mut lines: mpsc::Receiver<String>,
    sink: mpsc::Sender<Record>,
    counters: Arc<PipelineCounters>,
) {
    let mut last_warning: Option<Instant> = None;
    let mut dropped_since_warning = 0u64;
    while let Some(line) = lines.recv().await {
        if sink.try_send(record_for(&line)).is_err() {
            counters.alerts_dropped.fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn alert_lines_keep_their_time_and_priority() {
        let line = r#"{"time":"2023-05-25T13:44:05.478445995Z","rule":"r","priority":"Critical"}"#;
        let record = record_for(line);
        assert_eq!(record.timestamp_ms, 1_685_022_245_478);
        assert_eq!(record.priority, 2);
        assert_eq!(record.message, line);
    }

    #[test]
    fn event_lines_use_the_event_time_and_count_as_informational() {
        let line = r#"{"evt":{"type":"execve","time":"2023-05-25T13:44:05.000000000Z"}}"#;
        let record = record_for(line);
        assert_eq!(record.timestamp_ms, 1_685_022_245_000);
        assert_eq!(record.priority, 6);
    }

    #[tokio::test]
    async fn a_full_sink_queue_drops_and_counts_without_blocking() {
        let (line_tx, line_rx) = mpsc::channel(16);
        let (sink_tx, mut sink_rx) = mpsc::channel(1);
        let counters = Arc::new(PipelineCounters::default());
        let task = tokio::spawn(forward(line_rx, sink_tx, counters.clone()));
        for n in 0..5 {
            line_tx
                .send(format!(r#"{{"priority":"Warning","n":{n}}}"#))
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
