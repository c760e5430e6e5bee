//! The CloudWatch Logs sink: delivers every record (one JSON alert each) to one log stream with
//! PutLogEvents, within the service's limits, through outages, and accounts for anything it
//! could not deliver.
//!
//! ```text
//! engine --try_send--> mpsc<Record> --> intake task --> Buffer (memory, spill dir)
//!                                                          |
//!                         heartbeat (EMF) + drop reports --+--> sender task --> PutLogEvents
//! ```
//!
//! - The engine hands records over with `try_send` on a bounded channel and never waits; the
//!   intake task moves them into the [`buffer::Buffer`] at once, even while the sender is stuck
//!   retrying, so the channel only fills if the intake task itself is starved.
//! - The sender takes the oldest records that fit one call, prepares them ([`batch::prepare`]:
//!   clamp out-of-range timestamps, truncate oversized messages), sorts and splits them
//!   ([`batch::split_batches`]) and sends each batch. It flushes when a full batch is waiting or
//!   every `batch_interval`.
//! - Retries ([`client`] explains the layering): the SDK does one attempt per call with explicit
//!   timeouts; this loop retries throttling, 5xx, timeouts and connection errors with capped
//!   exponential backoff and full jitter ([`backoff`]), without limit while the batch is
//!   buffered. A missing group or stream is re-created and the batch resent (a task role
//!   without `logs:CreateLogGroup` is fine: the group the deployment created is used). Credential and
//!   permission errors keep the batch and retry at the maximum backoff; an invalid request
//!   (InvalidParameter, other 4xx) drops that batch. Both are logged loudly (rate-limited) and
//!   counted.
//! - Delivery is **at least once**: a batch is resent only when its call failed; a duplicate is
//!   possible only when the service accepted a call whose response was then lost (timeout after
//!   the request reached it, a connection cut after the request was processed).
//! - Drops (buffer and spill full, service rejections, invalid batches) are counted per
//!   priority in [`SinkStats`] and reported by a record ("tasksentry dropped N alerts: …") as
//!   soon as a delivery succeeds again.
//! - [`CloudWatchHandle::shutdown`] stops accepting, flushes memory and spill until the
//!   deadline, and reports what could not be delivered. A call already in flight when the
//!   shutdown starts gets a quarter of the flush time more, then is abandoned and retried on a
//!   new connection, so that a connection that died cannot hold the flush for a whole attempt
//!   timeout.

pub mod batch;
pub(crate) mod buffer;
pub mod client;
mod config;
pub mod emf;
mod report;
mod retry;
mod sender;
mod sink;
mod stats;

pub use config::{CloudWatchSettings, default_stream_name, validate_stream_name};
pub use report::{DropCounts, drop_report_message};
pub use sink::{CloudWatchHandle, CloudWatchSink};
pub use stats::{ShutdownReport, SinkStats};

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::priority::Priority;

/// One record for CloudWatch: one log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Milliseconds since the Unix epoch (the alert's time).
    pub timestamp_ms: i64,
    /// The alert's priority (an event line counts as informational); what the buffer evicts
    /// first when it is full is the least severe.
    pub priority: Priority,
    /// One JSON object, no newline.
    pub message: String,
}

/// The priority of the sink's own records (drop reports, heartbeats).
pub(crate) const INTERNAL_PRIORITY: Priority = Priority::Critical;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// No region configured anywhere.
    #[error(
        "no AWS region for CloudWatch Logs: set `cloudwatch_region`, AWS_REGION or AWS_DEFAULT_REGION"
    )]
    NoRegion,
    /// The stream name is not acceptable to CloudWatch.
    #[error("invalid log stream name `{stream}`: {reason}")]
    StreamName {
        /// The name.
        stream: String,
        /// Why.
        reason: &'static str,
    },
    /// The spill directory cannot be used.
    #[error("cannot use the spill directory {path}: {source}")]
    Spill {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alert::AlertEcs;

    #[test]
    fn stream_names_follow_cloudwatch_rules() {
        assert!(validate_stream_name("abc/def-1").is_ok());
        assert!(validate_stream_name("").is_err());
        assert!(validate_stream_name("a:b").is_err());
        assert!(validate_stream_name("a*b").is_err());
        assert!(validate_stream_name(&"x".repeat(513)).is_err());
        assert_eq!(default_stream_name(Some("abc123"), "host"), "abc123");
        assert_eq!(default_stream_name(None, "ip-10-0-0-1:x"), "ip-10-0-0-1_x");
        assert_eq!(default_stream_name(Some(""), ""), "tasksentry");
    }

    #[test]
    fn drop_report_names_counts_per_priority() {
        let mut drops = [0u64; 8];
        drops[7] = 10;
        drops[4] = 2;
        let ecs = AlertEcs {
            cluster: Some("arn:aws:ecs:eu-west-1:111122223333:cluster/prod".into()),
            family: Some("orders".into()),
            ..AlertEcs::default()
        };
        let counts = DropCounts {
            by_priority: drops,
            rejected_by_service: 3,
            invalid: 0,
        };
        let text = drop_report_message(1_780_000_000_000, "ip-10-0-0-1", &ecs, &counts);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["hostname"], "ip-10-0-0-1");
        assert_eq!(value["ecs"]["family"], "orders");
        let fields = &value["output_fields"];
        assert_eq!(fields["tasksentry.kind"], "alerts_dropped");
        assert_eq!(fields["tasksentry.count"], 15);
        assert_eq!(fields["tasksentry.dropped_by_priority.debug"], 10);
        assert_eq!(fields["tasksentry.dropped_by_priority.warning"], 2);
        assert_eq!(fields["tasksentry.rejected_by_service"], 3);
        assert_eq!(fields["ecs.family"], "orders");
        assert_eq!(fields["tasksentry.alert.count"], 1);
        assert_eq!(
            fields["tasksentry.alert.first_seen"],
            "2026-05-28T20:26:40.000000000Z"
        );
        assert!(
            fields.get("ecs.task_arn").is_none(),
            "unknown context is absent, not empty"
        );
        let local = drop_report_message(1_780_000_000_000, "h", &AlertEcs::default(), &counts);
        let local: serde_json::Value = serde_json::from_str(&local).unwrap();
        assert!(
            local["output_fields"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("ecs.") && !k.starts_with("container.")),
            "outside ECS there are no ECS keys: {local}"
        );
        assert_eq!(
            value["output"],
            "tasksentry dropped 15 alerts: 2 warning, 10 debug (buffer full); 3 rejected by CloudWatch (timestamp out of range)"
        );
        assert_eq!(value["tasksentry"]["dropped_by_priority"]["debug"], 10);
        assert_eq!(value["tasksentry"]["count"], 15);
        assert_eq!(value["priority"], "Critical");
        assert_eq!(value["time"], "2026-05-28T20:26:40.000Z");
    }
}
