//! The end of `tasksentry run`: wait for the watchdog's stop, then stop in pipeline order so
//! that nothing queued is lost: the watchdog (it queued the stop signal's report), the
//! collectors (they stop on the shared flag and their queued events stay), the engine (it
//! drains the event queue and flushes the processor), then the outputs (stdout written,
//! CloudWatch flushed within `flush_timeout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;

use super::outputs::Outputs;
use crate::exit;
use crate::guard::health::CollectorHealth;

/// What the drain needs.
pub(super) struct Parts {
    /// Resolves when the watchdog saw a stop signal (and queued its report).
    pub(crate) stop: tokio::sync::oneshot::Receiver<&'static str>,
    /// The flag every thread stops on.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// The watchdog thread.
    pub(crate) watchdog: JoinHandle<()>,
    /// The collector health thread, which hands back the collectors to join.
    pub(crate) collectors: JoinHandle<CollectorHealth>,
    /// The engine thread.
    pub(crate) engine: JoinHandle<()>,
    /// The outputs, not yet writing.
    pub(crate) outputs: Outputs,
    /// How long the CloudWatch flush may take.
    pub(crate) flush_timeout: std::time::Duration,
}

/// Runs the outputs until the stop, then drains in order; returns the exit code.
pub(super) async fn wait_and_drain(parts: Parts) -> anyhow::Result<u8> {
    let running = parts.outputs.spawn();
    let signal = parts.stop.await.unwrap_or("watchdog gone");
    tracing::debug!(signal, "Draining the pipeline.");
    parts.shutdown.store(true, Ordering::Relaxed);
    let watchdog = parts.watchdog;
    tokio::task::spawn_blocking(move || watchdog.join())
        .await
        .context("joining the watchdog thread")?
        .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
    let health = parts.collectors;
    let health = tokio::task::spawn_blocking(move || health.join())
        .await
        .context("joining the collector health thread")?
        .map_err(|_| anyhow::anyhow!("the collector health thread panicked"))?;
    let panicked = tokio::task::spawn_blocking(move || health.join_all())
        .await
        .context("joining the collector threads")?;
    if let Some(name) = panicked.first() {
        anyhow::bail!("the {name} thread panicked");
    }
    let engine = parts.engine;
    tokio::task::spawn_blocking(move || engine.join())
        .await
        .context("joining the engine thread")?
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    if running.finish(parts.flush_timeout).await? {
        Ok(exit::OK)
    } else {
        Ok(exit::FAILURE)
    }
}
