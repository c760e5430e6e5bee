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
pub mod buffer;
pub mod client;
pub mod emf;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::batch::{Batchable, LogEvent};
use self::buffer::{Buffer, Item};
use self::client::{Failure, Rejected};
use self::emf::HeartbeatStats;
use crate::alert::AlertEcs;
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
pub const INTERNAL_PRIORITY: Priority = Priority::Critical;

/// Counters the rest of the pipeline fills in, for the heartbeat.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Events the engine processed.
    pub events_processed: AtomicU64,
    /// Processes the collectors missed.
    pub processes_missed: AtomicU64,
    /// Alerts dropped before reaching this sink (e.g. the sink's channel was full).
    pub alerts_dropped: AtomicU64,
    /// Live (not excluded) containers whose visibility the monitor has checked (shared with
    /// procscan, which keeps it: `collect::visibility::VisibilityCounts::checked`).
    pub containers_checked: Arc<AtomicU64>,
    /// Of those, containers the monitor sees only partly (`visibility_degraded` reported):
    /// unreadable processes, connection owners, root or private directories.
    pub containers_degraded: Arc<AtomicU64>,
    /// Whether the two figures above mean something yet (procscan checked an application
    /// container, or its start-up grace ended without one).
    pub visibility_known: Arc<AtomicBool>,
}

/// Everything the sink needs; [`CloudWatchSettings::from_config`] fills it from the
/// configuration, the rest has defaults the lead or tests may change.
#[derive(Debug, Clone)]
pub struct CloudWatchSettings {
    /// The log group (created when missing).
    pub log_group: String,
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
    pub channel_capacity: usize,
    /// Spill directory used when memory is full.
    pub spill_dir: Option<PathBuf>,
    /// Most bytes the spill directory may hold.
    pub spill_max_bytes: u64,
    /// How long shutdown may spend flushing (the caller passes the deadline; this is the
    /// configured default for it).
    pub flush_timeout: Duration,
    /// Heartbeat interval; zero turns heartbeats off.
    pub heartbeat_interval: Duration,
    /// Heartbeat dimension `cluster`.
    pub cluster: String,
    /// Heartbeat dimension `task_family`.
    pub task_family: String,
    /// The `hostname` of the sink's own alerts (drop reports): the monitor's.
    pub hostname: String,
    /// The task's ECS metadata, for the `ecs` context of the sink's own alerts (none outside
    /// ECS).
    pub task: Option<crate::ecs::EnrichmentStatus>,
    /// Counters from the rest of the pipeline, for the heartbeat.
    pub counters: Arc<PipelineCounters>,
    /// Where to read `self/stat` for the heartbeat's CPU and RSS.
    pub proc_root: PathBuf,
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
            counters: Arc::new(PipelineCounters::default()),
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

    /// The sink's settings from the configuration, or `None` when CloudWatch is not an output.
    pub fn from_config(config: &crate::config::Config) -> Option<CloudWatchSettings> {
        if !config.cloudwatch_enabled() {
            return None;
        }
        let mut settings = CloudWatchSettings::new(config.log_group.clone());
        settings.retention_days = config.retention_days;
        settings.region = config.cloudwatch_region.clone();
        settings.endpoint = config.cloudwatch_endpoint.clone();
        settings.batch_interval = config.batch_interval;
        settings.buffer_capacity = config.buffer_capacity;
        settings.channel_capacity = config.queue_capacity;
        settings.spill_dir = config.spill_dir.clone();
        settings.spill_max_bytes = config.spill_max_bytes;
        settings.flush_timeout = config.flush_timeout;
        settings.connect_timeout = config.cloudwatch_connect_timeout;
        settings.attempt_timeout = config.cloudwatch_attempt_timeout;
        settings.retry_max = config.cloudwatch_retry_max;
        settings.proc_root = config.proc_root.clone();
        Some(settings)
    }
}

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

/// A snapshot of the sink's counters (totals since start, except the two gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records received from the channel, by priority.
    pub received_by_priority: [u64; 8],
    /// Events the service accepted (excluding rejected ones).
    pub delivered: u64,
    /// PutLogEvents calls made (successful or not).
    pub put_calls: u64,
    /// PutLogEvents calls that succeeded.
    pub put_ok: u64,
    /// Retries after a failed call.
    pub retries: u64,
    /// Calls refused for credentials or permissions (the batch is kept and retried).
    pub auth_errors: u64,
    /// Events the service rejected individually (`rejectedLogEventsInfo`).
    pub rejected_by_service: u64,
    /// Events dropped with a batch the service called invalid.
    pub dropped_invalid: u64,
    /// Records dropped because memory and spill were full, by priority.
    pub dropped_by_priority: [u64; 8],
    /// Timestamps clamped into the accepted window.
    pub timestamps_clamped: u64,
    /// Messages truncated to the event size limit.
    pub truncated: u64,
    /// Times the log group/stream was (re)created after being found missing.
    pub recreated: u64,
    /// Heartbeats queued.
    pub heartbeats: u64,
    /// Drop reports queued.
    pub drop_reports: u64,
    /// Records recovered from a previous run's spill directory at start.
    pub recovered_from_spill: u64,
    /// Spill write errors and unreadable spill lines.
    pub spill_errors: u64,
    /// Gauge: records in memory now.
    pub buffered: u64,
    /// Gauge: records in the spill directory now.
    pub spilled: u64,
}

impl SinkStats {
    /// Every record dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_by_priority.iter().sum::<u64>()
            + self.rejected_by_service
            + self.dropped_invalid
    }
}

/// What [`CloudWatchHandle::shutdown`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Records still buffered (memory, spill, in flight) when the deadline passed: not
    /// delivered. Zero means everything was flushed.
    pub undelivered: u64,
    /// Whether the deadline stopped the flush.
    pub deadline_reached: bool,
    /// The final counters.
    pub stats: SinkStats,
}

#[derive(Debug, Default)]
struct Counters {
    received: [AtomicU64; 8],
    delivered: AtomicU64,
    put_calls: AtomicU64,
    put_ok: AtomicU64,
    retries: AtomicU64,
    auth_errors: AtomicU64,
    rejected_by_service: AtomicU64,
    dropped_invalid: AtomicU64,
    clamped: AtomicU64,
    truncated: AtomicU64,
    recreated: AtomicU64,
    heartbeats: AtomicU64,
    drop_reports: AtomicU64,
    recovered: AtomicU64,
    /// Records taken from the buffer by the sender and not yet delivered or put back.
    in_flight: AtomicU64,
    /// Service rejections and invalid drops not yet reported by a record.
    unreported_rejected: AtomicU64,
    unreported_invalid: AtomicU64,
}

struct Shared {
    buffer: Mutex<Buffer>,
    counters: Counters,
    /// Poked by the intake task when a full batch is waiting.
    wake: Notify,
    /// Tells the intake task to stop accepting.
    stop_intake: Notify,
    intake_done: AtomicBool,
}

impl Shared {
    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock leaves a consistent-enough queue; keep delivering.
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stats(&self) -> SinkStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let buffer = self.buffer();
        SinkStats {
            received_by_priority: std::array::from_fn(|i| load(&c.received[i])),
            delivered: load(&c.delivered),
            put_calls: load(&c.put_calls),
            put_ok: load(&c.put_ok),
            retries: load(&c.retries),
            auth_errors: load(&c.auth_errors),
            rejected_by_service: load(&c.rejected_by_service),
            dropped_invalid: load(&c.dropped_invalid),
            dropped_by_priority: buffer.total_drops(),
            timestamps_clamped: load(&c.clamped),
            truncated: load(&c.truncated),
            recreated: load(&c.recreated),
            heartbeats: load(&c.heartbeats),
            drop_reports: load(&c.drop_reports),
            recovered_from_spill: load(&c.recovered),
            spill_errors: buffer.spill_errors,
            buffered: buffer.memory_len() as u64,
            spilled: buffer.spilled(),
        }
    }
}

/// The running sink, returned by [`CloudWatchSink::start`].
pub struct CloudWatchHandle {
    shared: Arc<Shared>,
    deadline: watch::Sender<Option<Instant>>,
    intake: JoinHandle<()>,
    sender: JoinHandle<()>,
    stream: String,
}

/// The CloudWatch Logs sink (see the module documentation).
pub struct CloudWatchSink;

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

impl CloudWatchSink {
    /// Builds the client and starts the sink's tasks on the current tokio runtime. Does not
    /// contact the service: the group and stream are created by the first flush, so an
    /// unreachable endpoint at start only means buffering. Returns the handle and the sender
    /// the engine uses with `try_send`.
    pub async fn start(
        settings: CloudWatchSettings,
        stream_name: String,
    ) -> Result<(CloudWatchHandle, mpsc::Sender<Record>), SinkError> {
        validate_stream_name(&stream_name)?;
        let client = client::build_client(&settings).await?;
        let spill = settings
            .spill_dir
            .as_deref()
            .map(|dir| (dir, settings.spill_max_bytes));
        let (buffer, recovered) =
            Buffer::new(settings.buffer_capacity, spill).map_err(|source| SinkError::Spill {
                path: settings.spill_dir.clone().unwrap_or_default(),
                source,
            })?;
        if recovered > 0 {
            tracing::info!(
                records = recovered,
                "Replaying records spilled by a previous run."
            );
        }
        let shared = Arc::new(Shared {
            buffer: Mutex::new(buffer),
            counters: Counters::default(),
            wake: Notify::new(),
            stop_intake: Notify::new(),
            intake_done: AtomicBool::new(false),
        });
        shared
            .counters
            .recovered
            .store(recovered, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(settings.channel_capacity.max(1));
        let (deadline_tx, deadline_rx) = watch::channel(None);
        let intake = tokio::spawn(run_intake(shared.clone(), rx));
        let sender = Sender {
            shared: shared.clone(),
            client,
            settings,
            stream: stream_name.clone(),
            deadline: deadline_rx,
            group_ready: false,
            stream_ready: false,
            group_create_denied: false,
            logs: LogLimiter::default(),
        };
        let sender = tokio::spawn(sender.run());
        Ok((
            CloudWatchHandle {
                shared,
                deadline: deadline_tx,
                intake,
                sender,
                stream: stream_name,
            },
            tx,
        ))
    }
}

impl CloudWatchHandle {
    /// The counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// The log stream this sink writes to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Stops accepting records (the channel is closed; records already in it are still taken),
    /// flushes memory and spill until `deadline` from now, and reports what was not delivered.
    /// Undelivered records stay in the spill directory when one is configured and they were
    /// spilled; records only in memory are lost and counted in the report.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let deadline_at = Instant::now() + deadline;
        let _ = self.deadline.send(Some(deadline_at));
        self.shared.stop_intake.notify_one();
        let _ = self.intake.await;
        self.shared.wake.notify_one();
        let mut sender = self.sender;
        // The sender honours the deadline itself; the grace second covers one attempt that was
        // already in flight, and the abort is only a guard.
        let finished = tokio::time::timeout_at(deadline_at + Duration::from_secs(1), &mut sender)
            .await
            .is_ok();
        if !finished {
            sender.abort();
        }
        let stats = self.shared.stats();
        // In flight is non-zero only if the sender had to be aborted mid-batch (counted whole).
        let undelivered =
            stats.buffered + stats.spilled + self.shared.counters.in_flight.load(Ordering::Relaxed);
        if undelivered > 0 {
            tracing::error!(
                undelivered,
                "CloudWatch flush deadline reached; records were not delivered."
            );
        }
        ShutdownReport {
            undelivered,
            deadline_reached: undelivered > 0 || !finished,
            stats,
        }
    }
}

/// Takes records into the buffer. Which priorities reach CloudWatch is decided once, where
/// the engine hands records to this output (`cloudwatch_min_priority`), not here.
async fn run_intake(shared: Arc<Shared>, mut rx: mpsc::Receiver<Record>) {
    let mut records = Vec::with_capacity(256);
    let mut stopping = false;
    loop {
        let n = if stopping {
            rx.recv_many(&mut records, 256).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut records, 256) => n,
                () = shared.stop_intake.notified() => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        };
        if n == 0 {
            break;
        }
        let full = {
            let mut buffer = shared.buffer();
            for record in records.drain(..) {
                shared.counters.received[usize::from(record.priority.level())]
                    .fetch_add(1, Ordering::Relaxed);
                buffer.push(record);
            }
            buffer.has_full_batch()
        };
        if full {
            shared.wake.notify_one();
        }
    }
    shared.intake_done.store(true, Ordering::Release);
}

/// Capped exponential backoff with full jitter: a uniformly random duration between zero and
/// `min(max, base * 2^attempt)`. `unit` is a uniform random number in `[0, 1)`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Rate limits the sink's own warnings: one line per kind every 10 seconds, with the number
/// suppressed since.
#[derive(Default)]
struct LogLimiter {
    last: [Option<std::time::Instant>; 4],
    suppressed: [u64; 4],
}

impl LogLimiter {
    /// Whether to log now for this kind; returns the number suppressed since the last line.
    fn allow(&mut self, kind: usize) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last[kind] {
            Some(last) if now.duration_since(last) < Duration::from_secs(10) => {
                self.suppressed[kind] += 1;
                None
            }
            _ => {
                self.last[kind] = Some(now);
                Some(std::mem::take(&mut self.suppressed[kind]))
            }
        }
    }
}

/// How a batch ended.
enum Outcome {
    /// Accepted (some events may have been rejected individually, counted).
    Delivered,
    /// Dropped as invalid (counted).
    Dropped,
    /// The shutdown deadline passed first.
    Deadline,
}

struct Prepared {
    event: LogEvent,
    index: usize,
}

impl Batchable for Prepared {
    fn timestamp_ms(&self) -> i64 {
        self.event.timestamp_ms
    }
    fn batch_bytes(&self) -> usize {
        self.event.batch_bytes()
    }
}

struct Sender {
    shared: Arc<Shared>,
    client: aws_sdk_cloudwatchlogs::Client,
    settings: CloudWatchSettings,
    stream: String,
    deadline: watch::Receiver<Option<Instant>>,
    group_ready: bool,
    stream_ready: bool,
    /// CreateLogGroup was refused (the task role leaves creating the group to the deployment).
    group_create_denied: bool,
    logs: LogLimiter,
}

/// A bound for timer arithmetic (a disabled heartbeat is due "never").
const DAY: Duration = Duration::from_secs(86_400);

const LOG_RETRY: usize = 0;
const LOG_AUTH: usize = 1;
const LOG_INVALID: usize = 2;
const LOG_REJECTED: usize = 3;

impl Sender {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    async fn run(mut self) {
        let interval = self.settings.batch_interval.max(Duration::from_millis(1));
        let heartbeat = self.settings.heartbeat_interval;
        let mut next_flush = Instant::now() + interval;
        // One heartbeat per wall-clock bucket, in its middle (see `emf::heartbeat_due_in`).
        let mut heartbeat_bucket: Option<i64> = None;
        let mut next_heartbeat =
            Instant::now() + emf::heartbeat_due_in(now_ms(), heartbeat, None).min(DAY);
        loop {
            let draining = self.deadline().is_some();
            if !draining && !self.shared.buffer().has_full_batch() {
                let wake_at = if heartbeat.is_zero() {
                    next_flush
                } else {
                    next_flush.min(next_heartbeat)
                };
                tokio::select! {
                    () = self.shared.wake.notified() => {}
                    () = tokio::time::sleep_until(wake_at) => {}
                    _ = self.deadline.changed() => {}
                }
            }
            let now = Instant::now();
            if !heartbeat.is_zero() && now >= next_heartbeat {
                let wall = now_ms();
                let bucket = emf::heartbeat_bucket(wall, heartbeat);
                if bucket != heartbeat_bucket {
                    self.queue_heartbeat(wall);
                    heartbeat_bucket = bucket;
                }
                next_heartbeat =
                    now + emf::heartbeat_due_in(wall, heartbeat, heartbeat_bucket).min(DAY);
            }
            let draining = self.deadline().is_some();
            if !(draining || now >= next_flush || self.shared.buffer().has_full_batch()) {
                continue;
            }
            if now >= next_flush {
                next_flush = now + interval;
            }
            let items = self.shared.buffer().take_batch();
            if items.is_empty() {
                if draining && self.shared.intake_done.load(Ordering::Acquire) {
                    return;
                }
                if draining {
                    tokio::task::yield_now().await;
                } else {
                    // Nothing could be taken (e.g. an unreadable spill): wait for the next
                    // tick instead of spinning.
                    tokio::select! {
                        () = tokio::time::sleep_until(next_flush) => {}
                        _ = self.deadline.changed() => {}
                    }
                }
                continue;
            }
            let in_flight = &self.shared.counters.in_flight;
            in_flight.store(items.len() as u64, Ordering::Relaxed);
            let result = self.deliver(items).await;
            self.shared.counters.in_flight.store(0, Ordering::Relaxed);
            if let Err(items) = result {
                self.shared.buffer().put_back(items);
                return;
            }
        }
    }

    /// Delivers taken records; on a shutdown deadline returns those not delivered.
    async fn deliver(&mut self, items: Vec<Item>) -> Result<(), Vec<Item>> {
        let now = now_ms();
        let mut prepared = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let (event, adjustments) =
                batch::prepare(item.record.timestamp_ms, item.record.message.clone(), now);
            if adjustments.clamped {
                self.shared.counters.clamped.fetch_add(1, Ordering::Relaxed);
            }
            if adjustments.truncated {
                self.shared
                    .counters
                    .truncated
                    .fetch_add(1, Ordering::Relaxed);
            }
            prepared.push(Prepared { event, index });
        }
        let mut done = vec![false; items.len()];
        let mut delivered_any = false;
        for batch in batch::split_batches(prepared) {
            let indexes: Vec<usize> = batch.iter().map(|p| p.index).collect();
            let events: Vec<LogEvent> = batch.into_iter().map(|p| p.event).collect();
            match self.send(&events).await {
                Outcome::Delivered => delivered_any = true,
                Outcome::Dropped => {}
                Outcome::Deadline => {
                    let mut undelivered = Vec::new();
                    let mut finished = Vec::new();
                    for (item, done) in items.into_iter().zip(done) {
                        if done {
                            finished.push(item);
                        } else {
                            undelivered.push(item);
                        }
                    }
                    self.shared.buffer().done(&finished);
                    return Err(undelivered);
                }
            }
            for index in indexes {
                done[index] = true;
            }
        }
        self.shared.buffer().done(&items);
        if delivered_any {
            self.queue_drop_report();
        }
        Ok(())
    }

    /// Runs one service call; `None` when the shutdown deadline passed first.
    ///
    /// Once the shutdown has started, a call never outlives its deadline. A call already in
    /// flight when the shutdown starts gets a quarter of the remaining flush time more; if it
    /// has not finished by then it is abandoned (its connection dropped) and the batch retried
    /// on a new connection, so that one call hanging on a dead connection (up to the attempt
    /// timeout) cannot use up the whole flush. Abandoning a call the service may have applied
    /// can only cause a duplicate, never a loss.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Option<Result<T, Failure>> {
        if let Some(deadline) = self.deadline() {
            return tokio::time::timeout_at(deadline, call).await.ok();
        }
        let mut shutdown = self.deadline.clone();
        let mut call = std::pin::pin!(call);
        tokio::select! {
            result = &mut call => return Some(result),
            changed = shutdown.changed() => {
                if changed.is_err() {
                    // The handle is gone without a shutdown: nothing to bound the call by.
                    return Some(call.await);
                }
            }
        }
        let Some(deadline) = self.deadline() else {
            return Some(call.await);
        };
        let now = Instant::now();
        let grace = now + deadline.saturating_duration_since(now) / 4;
        match tokio::time::timeout_at(grace, call).await {
            Ok(result) => Some(result),
            Err(_) if Instant::now() >= deadline => None,
            Err(_) => Some(Err(Failure::Retry(
                "the call in flight when the shutdown started did not finish within a quarter \
                 of the flush time; retrying it on a new connection"
                    .to_owned(),
            ))),
        }
    }

    /// Sends one batch until it is delivered, dropped as invalid, or the deadline passes.
    async fn send(&mut self, events: &[LogEvent]) -> Outcome {
        let mut attempt: u32 = 0;
        let mut recreate_now = false;
        loop {
            let deadline = self.deadline();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Outcome::Deadline;
            }
            let result = if self.group_ready && self.stream_ready {
                self.shared
                    .counters
                    .put_calls
                    .fetch_add(1, Ordering::Relaxed);
                let call =
                    client::put(&self.client, &self.settings.log_group, &self.stream, events);
                match self.bounded(call).await {
                    Some(result) => result,
                    None => return Outcome::Deadline,
                }
            } else {
                // Group and stream are created one step at a time, remembering each success,
                // so that a high failure rate still makes progress.
                let creating_group = !self.group_ready;
                let result = if creating_group {
                    let call = client::ensure_group(
                        &self.client,
                        &self.settings.log_group,
                        self.settings.retention_days,
                    );
                    match self.bounded(call).await {
                        Some(result) => result,
                        None => return Outcome::Deadline,
                    }
                } else {
                    let call =
                        client::ensure_stream(&self.client, &self.settings.log_group, &self.stream);
                    match self.bounded(call).await {
                        Some(result) => result,
                        None => return Outcome::Deadline,
                    }
                };
                match result {
                    Ok(()) => {
                        if creating_group {
                            self.group_ready = true;
                        } else {
                            self.stream_ready = true;
                        }
                        continue;
                    }
                    // The shipped task role has no logs:CreateLogGroup: the deployment
                    // creates the group (with its retention). Go on with the stream; a group
                    // that really is missing then shows as ResourceNotFound below.
                    Err(Failure::Auth(text)) if creating_group => {
                        if !self.group_create_denied {
                            tracing::info!(group = %self.settings.log_group, error = %text, "Not allowed to create the CloudWatch log group; using it as the deployment created it.");
                        }
                        self.group_create_denied = true;
                        self.group_ready = true;
                        continue;
                    }
                    // Missing and not ours to create: an operator problem, like permissions.
                    // Keep the batch; try creating it again next time (the role may change).
                    Err(Failure::Missing(text)) if self.group_create_denied => {
                        self.group_ready = false;
                        Err(Failure::Auth(format!(
                            "the log group {} does not exist and the task role may not create it: {text}",
                            self.settings.log_group
                        )))
                    }
                    // A group the sink may not create is an operator problem, like
                    // permissions: keep the batch.
                    Err(Failure::Invalid(text)) => Err(Failure::Auth(text)),
                    Err(other) => Err(other),
                }
            };
            let mut max_backoff = false;
            match result {
                Ok(rejected) => {
                    self.record_success(events.len(), rejected, attempt);
                    return Outcome::Delivered;
                }
                Err(Failure::Missing(text)) => {
                    // The message does not reliably say which one is missing: re-create both
                    // (an existing group costs one ResourceAlreadyExists answer).
                    self.group_ready = false;
                    self.stream_ready = false;
                    self.shared
                        .counters
                        .recreated
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.logs.allow(LOG_RETRY) {
                        tracing::warn!(group = %self.settings.log_group, stream = %self.stream, error = %text, suppressed, "CloudWatch log group or stream missing; re-creating it.");
                    }
                    // Re-create at once the first time; back off if it keeps disappearing.
                    if !recreate_now {
                        recreate_now = true;
                        continue;
                    }
                }
                Err(Failure::Retry(text)) => {
                    if let Some(suppressed) = self.logs.allow(LOG_RETRY) {
                        tracing::warn!(error = %text, attempt, suppressed, "CloudWatch delivery failed; retrying.");
                    }
                }
                Err(Failure::Auth(text)) => {
                    max_backoff = true;
                    self.shared
                        .counters
                        .auth_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.logs.allow(LOG_AUTH) {
                        tracing::error!(group = %self.settings.log_group, error = %text, suppressed, "CloudWatch refused the credentials or permissions; alerts are kept and retried. Check that the log group exists and the task role allows logs:CreateLogStream and logs:PutLogEvents on it.");
                    }
                }
                Err(Failure::Invalid(text)) => {
                    let n = events.len() as u64;
                    let c = &self.shared.counters;
                    c.dropped_invalid.fetch_add(n, Ordering::Relaxed);
                    c.unreported_invalid.fetch_add(n, Ordering::Relaxed);
                    if let Some(suppressed) = self.logs.allow(LOG_INVALID) {
                        tracing::error!(events = n, error = %text, suppressed, "CloudWatch rejected a batch as invalid; it was dropped.");
                    }
                    return Outcome::Dropped;
                }
            }
            self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            let mut wait = if max_backoff {
                self.settings.retry_max
            } else {
                backoff(
                    attempt,
                    self.settings.retry_base,
                    self.settings.retry_max,
                    fastrand::f64(),
                )
            };
            attempt = attempt.saturating_add(1);
            if let Some(d) = self.deadline() {
                // While shutting down, retry often enough to use the remaining time.
                wait = wait.min(Duration::from_secs(1));
                if Instant::now() + wait >= d {
                    tokio::time::sleep_until(d).await;
                    return Outcome::Deadline;
                }
                tokio::time::sleep(wait).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    // A shutdown cuts a long wait short.
                    _ = self.deadline.changed() => {}
                }
            }
        }
    }

    fn record_success(&mut self, sent: usize, rejected: Rejected, attempt: u32) {
        let c = &self.shared.counters;
        c.put_ok.fetch_add(1, Ordering::Relaxed);
        let rejected_total = rejected.total().min(sent) as u64;
        c.delivered
            .fetch_add(sent as u64 - rejected_total, Ordering::Relaxed);
        if rejected_total > 0 {
            c.rejected_by_service
                .fetch_add(rejected_total, Ordering::Relaxed);
            c.unreported_rejected
                .fetch_add(rejected_total, Ordering::Relaxed);
            if let Some(suppressed) = self.logs.allow(LOG_REJECTED) {
                tracing::warn!(
                    too_new = rejected.too_new,
                    too_old = rejected.too_old,
                    expired = rejected.expired,
                    suppressed,
                    "CloudWatch rejected some events of a batch."
                );
            }
        }
        if attempt > 0 {
            tracing::info!(attempts = attempt + 1, "CloudWatch delivery resumed.");
        }
    }

    fn queue_drop_report(&mut self) {
        let c = &self.shared.counters;
        let rejected = c.unreported_rejected.swap(0, Ordering::Relaxed);
        let invalid = c.unreported_invalid.swap(0, Ordering::Relaxed);
        let mut buffer = self.shared.buffer();
        let drops = buffer.take_unreported_drops();
        let buffer_total: u64 = drops.iter().sum();
        if buffer_total + rejected + invalid == 0 {
            return;
        }
        let ecs = self
            .settings
            .task
            .as_ref()
            .and_then(crate::ecs::EnrichmentStatus::snapshot)
            .map(|task| AlertEcs::from_task(&task))
            .unwrap_or_default();
        let message = drop_report_message(
            now_ms(),
            &self.settings.hostname,
            &ecs,
            &DropCounts {
                by_priority: drops,
                rejected_by_service: rejected,
                invalid,
            },
        );
        buffer.push_report(Record {
            timestamp_ms: now_ms(),
            priority: INTERNAL_PRIORITY,
            message,
        });
        c.drop_reports.fetch_add(1, Ordering::Relaxed);
    }

    fn queue_heartbeat(&mut self, timestamp_ms: i64) {
        let stats = self.shared.stats();
        let external = &self.settings.counters;
        let (cpu, rss) = emf::read_self_usage(&self.settings.proc_root).unwrap_or((0.0, 0));
        let heartbeat = HeartbeatStats {
            timestamp_ms,
            cluster: self.settings.cluster.clone(),
            task_family: self.settings.task_family.clone(),
            alerts_by_priority: stats.received_by_priority,
            events_processed: external.events_processed.load(Ordering::Relaxed),
            processes_missed: external.processes_missed.load(Ordering::Relaxed),
            alerts_dropped: stats.dropped_total() + external.alerts_dropped.load(Ordering::Relaxed),
            monitor_cpu_seconds: cpu,
            monitor_rss_bytes: rss,
            containers_checked: external.containers_checked.load(Ordering::Relaxed),
            containers_degraded: external.containers_degraded.load(Ordering::Relaxed),
            visibility_known: external.visibility_known.load(Ordering::Relaxed),
        };
        self.shared.buffer().push(Record {
            timestamp_ms: heartbeat.timestamp_ms,
            priority: INTERNAL_PRIORITY,
            message: emf::build_emf(&heartbeat),
        });
        self.shared
            .counters
            .heartbeats
            .fetch_add(1, Ordering::Relaxed);
    }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(0, base, max, 0.999_999), base.mul_f64(0.999_999));
        assert_eq!(backoff(3, base, max, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(3, base, max, 0.0), Duration::ZERO);
        assert_eq!(backoff(20, base, max, 1.0), max, "capped");
        assert_eq!(backoff(u32::MAX, base, max, 1.0), max, "no overflow");
        let mut seen_small = false;
        let mut seen_large = false;
        for _ in 0..1000 {
            let d = backoff(4, base, max, fastrand::f64());
            assert!(d <= Duration::from_millis(1600));
            seen_small |= d < Duration::from_millis(400);
            seen_large |= d > Duration::from_millis(1200);
        }
        assert!(seen_small && seen_large, "jitter spans the whole range");
    }

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
