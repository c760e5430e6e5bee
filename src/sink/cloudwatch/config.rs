//! The sink's settings, and the names CloudWatch accepts for its log stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::telemetry::Telemetry;

/// Everything the sink needs; `topology::outputs::cloudwatch_settings` fills it from the
/// configuration, the rest has defaults tests may change.
#[derive(Debug, Clone)]
pub struct CloudWatchSettings {
    /// The log group (created when missing).
    pub(crate) log_group: String,
    /// Retention applied when the sink creates the group.
    pub retention_days: Option<i32>,
    /// Region override (otherwise `AWS_REGION`, `AWS_DEFAULT_REGION`, profile).
    pub region: Option<String>,
    /// Endpoint override (tests: a local moto server).
    pub endpoint: Option<String>,
    /// Static credentials (key id, secret) instead of the default chain (tests, local runs).
    pub static_credentials: Option<(String, String)>,
    /// Longest time a record waits before a flush.
    pub batch_interval: Duration,
    /// Records held in memory.
    pub buffer_capacity: usize,
    /// Capacity of the input channel (the engine's `try_send` queue).
    pub(crate) channel_capacity: usize,
    /// Spill directory used when memory is full.
    pub spill_dir: Option<PathBuf>,
    /// Most bytes the spill directory may hold.
    pub(crate) spill_max_bytes: u64,
    /// How long shutdown may spend flushing (the caller passes the deadline; this is the
    /// configured default for it).
    pub(crate) flush_timeout: Duration,
    /// Heartbeat interval; zero turns heartbeats off.
    pub heartbeat_interval: Duration,
    /// Heartbeat dimension `cluster`.
    pub cluster: String,
    /// Heartbeat dimension `task_family`.
    pub task_family: String,
    /// The `hostname` of the sink's own alerts (drop reports): the monitor's.
    pub(crate) hostname: String,
    /// The task's ECS metadata, for the `ecs` context of the sink's own alerts (none outside
    /// ECS).
    pub(crate) task: Option<crate::ecs::EnrichmentStatus>,
    /// Counters from the rest of the pipeline, for the heartbeat.
    pub telemetry: Arc<Telemetry>,
    /// Where to read `self/stat` for the heartbeat's CPU and RSS.
    pub(crate) proc_root: PathBuf,
    /// SDK connect timeout.
    pub connect_timeout: Duration,
    /// SDK per-attempt (and per-operation) timeout.
    pub attempt_timeout: Duration,
    /// First retry backoff ceiling.
    pub retry_base: Duration,
    /// Largest retry backoff.
    pub retry_max: Duration,
}

impl CloudWatchSettings {
    /// Defaults for a log group.
    pub fn new(log_group: impl Into<String>) -> CloudWatchSettings {
        CloudWatchSettings {
            log_group: log_group.into(),
            retention_days: None,
            region: None,
            endpoint: None,
            static_credentials: None,
            batch_interval: Duration::from_secs(1),
            buffer_capacity: 10_000,
            channel_capacity: 4_096,
            spill_dir: None,
            spill_max_bytes: 256 * 1024 * 1024,
            flush_timeout: Duration::from_secs(25),
            heartbeat_interval: Duration::from_secs(60),
            cluster: "unknown".to_owned(),
            task_family: "unknown".to_owned(),
            hostname: crate::commands::default_hostname(),
            task: None,
            telemetry: Arc::new(Telemetry::default()),
            proc_root: PathBuf::from("/proc"),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(20),
        }
    }

    /// Takes the heartbeat's dimensions from the ECS task metadata: `cluster` is the cluster
    /// as the metadata names it (its ARN on Fargate), `task_family` the task definition
    /// family. What the metadata lacks stays as it was (`unknown` by default).
    pub fn apply_task_context(&mut self, context: &crate::event::EcsContext) {
        if let Some(cluster) = context.cluster.as_deref().filter(|c| !c.is_empty()) {
            cluster.clone_into(&mut self.cluster);
        }
        if let Some(family) = context.family.as_deref().filter(|f| !f.is_empty()) {
            family.clone_into(&mut self.task_family);
        }
    }
}

/// Checks a stream name against CloudWatch's rules (1–512 characters, no `:` or `*`).
pub fn validate_stream_name(stream: &str) -> Result<(), SinkError> {
    let reason = if stream.is_empty() {
        Some("it is empty")
    } else if stream.len() > 512 {
        Some("it is longer than 512 characters")
    } else if stream.contains([':', '*']) {
        Some("it contains `:` or `*`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SinkError::StreamName {
            stream: stream.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A stream name from a task id or host name: characters CloudWatch refuses become `_`.
pub fn default_stream_name(task_id: Option<&str>, hostname: &str) -> String {
    let base = task_id
        .filter(|t| !t.is_empty())
        .unwrap_or(if hostname.is_empty() {
            "tasksentry"
        } else {
            hostname
        });
    let mut name: String = base
        .chars()
        .map(|c| if c == ':' || c == '*' { '_' } else { c })
        .collect();
    while name.len() > 512 {
        name.pop();
    }
    name
}
