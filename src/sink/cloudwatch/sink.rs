//! The sink's two tasks and their shared state: the intake moves records from the engine's
//! channel into the buffer at once; the sender (see `sender`) delivers them. The handle stops
//! and flushes both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::buffer::Buffer;
use super::config::*;
use super::retry::*;
use super::sender::*;
use super::stats::*;
use super::*;

pub(super) struct Shared {
    pub(super) buffer: Mutex<Buffer>,
    pub(super) counters: Counters,
    /// Poked by the intake task when a full batch is waiting.
    pub(super) wake: Notify,
    /// Tells the intake task to stop accepting.
    pub(super) stop_intake: Notify,
    pub(super) intake_done: AtomicBool,
}

impl Shared {
    pub(super) fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock leaves a consistent-enough queue; keep delivering.
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn stats(&self) -> SinkStats {
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
}

/// The CloudWatch Logs sink (see the module documentation).
pub struct CloudWatchSink;

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
pub(super) async fn run_intake(shared: Arc<Shared>, mut rx: mpsc::Receiver<Record>) {
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
