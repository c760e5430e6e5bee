//! The sender task: takes the oldest records that fit one call, prepares, sorts and splits
//! them, and delivers each batch with PutLogEvents, creating the group and stream when missing,
//! retrying what can be retried, queueing the heartbeat and the drop reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::batch::{Batchable, LogEvent};
use super::buffer::Item;
use super::client::{Failure, Rejected};
use super::config::*;
use super::emf::HeartbeatStats;
use super::report::*;
use super::retry::*;
use super::sink::*;
use super::*;
use crate::alert::AlertEcs;
use crate::telemetry::Telemetry;

/// How a batch ended.
pub(super) enum Outcome {
    /// Accepted (some events may have been rejected individually, counted).
    Delivered,
    /// Dropped as invalid (counted).
    Dropped,
    /// The shutdown deadline passed first.
    Deadline,
}

pub(super) struct Prepared {
    pub(super) event: LogEvent,
    pub(super) index: usize,
}

impl Batchable for Prepared {
    fn timestamp_ms(&self) -> i64 {
        self.event.timestamp_ms
    }
    fn batch_bytes(&self) -> usize {
        self.event.batch_bytes()
    }
}

pub(super) struct Sender {
    pub(super) shared: Arc<Shared>,
    pub(super) client: aws_sdk_cloudwatchlogs::Client,
    pub(super) settings: CloudWatchSettings,
    pub(super) stream: String,
    pub(super) deadline: watch::Receiver<Option<Instant>>,
    pub(super) group_ready: bool,
    pub(super) stream_ready: bool,
    /// CreateLogGroup was refused (the task role leaves creating the group to the deployment).
    pub(super) group_create_denied: bool,
    pub(super) logs: LogLimiter,
}

/// A bound for timer arithmetic (a disabled heartbeat is due "never").
pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) const LOG_RETRY: usize = 0;
pub(super) const LOG_AUTH: usize = 1;
pub(super) const LOG_INVALID: usize = 2;
pub(super) const LOG_REJECTED: usize = 3;

impl Sender {
    pub(super) fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    pub(super) async fn run(mut self) {
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
            // Read before taking: the intake sets `intake_done` after its last record is in
            // the buffer, so an empty take after seeing it set means nothing is left. (Read
            // after the take, it could be set by an intake that filled the buffer in between,
            // and the sender would end with those records still buffered.)
            let intake_done = self.shared.intake_done.load(Ordering::Acquire);
            let items = self.shared.buffer().take_batch();
            if items.is_empty() {
                if draining && intake_done {
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
    pub(super) async fn deliver(&mut self, items: Vec<Item>) -> Result<(), Vec<Item>> {
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
    pub(super) async fn bounded<T>(
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
    pub(super) async fn send(&mut self, events: &[LogEvent]) -> Outcome {
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

    pub(super) fn record_success(&mut self, sent: usize, rejected: Rejected, attempt: u32) {
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

    pub(super) fn queue_drop_report(&mut self) {
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

    pub(super) fn queue_heartbeat(&mut self, timestamp_ms: i64) {
        let stats = self.shared.stats();
        let external = &self.settings.telemetry;
        let (cpu, rss) = emf::read_self_usage(&self.settings.proc_root).unwrap_or((0.0, 0));
        let heartbeat = HeartbeatStats {
            timestamp_ms,
            cluster: self.settings.cluster.clone(),
            task_family: self.settings.task_family.clone(),
            alerts_by_priority: stats.received_by_priority,
            events_processed: Telemetry::get(&external.events),
            processes_missed: Telemetry::get(&external.processes_missed),
            alerts_dropped: stats.dropped_total() + Telemetry::get(&external.alerts_dropped),
            monitor_cpu_seconds: cpu,
            monitor_rss_bytes: rss,
            containers_checked: Telemetry::get(&external.visibility.checked),
            containers_degraded: Telemetry::get(&external.visibility.degraded),
            visibility_known: external.visibility.known.load(Ordering::Relaxed),
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
