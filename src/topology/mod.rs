//! `tasksentry run`: the monitor's parts built from the configuration and joined together.
//!
//! ```text
//! collectors ──Event──▶ engine thread ──Record──▶ outputs (stdout, CloudWatch)
//!  (collectors.rs)       (processor.rs)            (outputs.rs)
//!        watchdog ──Control──▶ engine      telemetry ◀── every part; the heartbeat reads it
//! ```
//!
//! The order of start-up matters and is this: block the handled signals (before any thread
//! exists, so that every thread inherits the mask and the watchdog's `sigtimedwait` is their
//! only reader), decide on tracing (SIGCHLD is blocked before any thread too), start the ECS
//! metadata thread, build the processor (rules), wait a bounded time for the first ECS answer,
//! start the outputs, the engine, the collectors and the watchdog; then wait for a stop
//! signal and drain ([`shutdown`]).

mod collectors;
pub(crate) mod outputs;
mod processor;
mod shutdown;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::sync_channel;

use anyhow::Context;

use crate::collect::block_sigchld;
use crate::config::{Config, Emit};
use crate::ecs::{EcsMetadata, RefreshPolicy, spawn_enrichment};
use crate::engine;
use crate::guard::carry::{CarryFile, Reported};
use crate::guard::supervise::WorkerContext;
use crate::guard::watchdog::{self, Watchdog};
use crate::telemetry::Telemetry;

/// The longest start-up waits for the first ECS task metadata answer (an endpoint that does
/// not answer delays monitoring by at most this; events are then enriched once it answers).
const ECS_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The monitor cannot start with this configuration or these rules (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// The restart carry-over of a supervised worker: its file, and on a restart what the
/// previous worker reported. Problems are logged; the worker then reports everything again.
fn carry_over(worker: &WorkerContext) -> Reported {
    let file = match CarryFile::from_env() {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(%error, "No restart carry-over for this worker.");
            None
        }
    };
    let inherited = match (&file, &worker.restart) {
        (Some(file), Some(_)) => match file.read() {
            Ok(keys) => {
                tracing::info!(
                    reported = keys.len(),
                    "Restarted worker: what the previous worker reported is not reported again."
                );
                keys
            }
            Err(error) => {
                tracing::warn!(%error, "Restarted worker: reporting everything again.");
                HashSet::new()
            }
        },
        _ => HashSet::new(),
    };
    Reported::new(file, inherited)
}

/// Runs the monitor until it is asked to stop. Returns the exit code once every queued record
/// was written.
pub fn run(config: Config) -> anyhow::Result<u8> {
    crate::memory::limit_arenas();
    watchdog::block_signals().context("setting up signal handling")?;
    let trace = collectors::choose_trace(&config);
    if trace {
        block_sigchld().context("blocking SIGCHLD for the tracer")?;
    }
    let (mut enricher, ecs, _ecs_refresher) =
        spawn_enrichment(EcsMetadata::from_env(), RefreshPolicy::default())
            .context("starting the ECS metadata thread")?;
    let processor = processor::build(&config, &ecs)?;
    ecs.wait_first_attempt(ECS_STARTUP_WAIT);

    let telemetry = Arc::new(Telemetry::default());
    let shutdown = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut outputs = outputs::Outputs::start(&config, &ecs, &telemetry, &runtime)?;

    let (event_tx, event_rx) = sync_channel(config.queue_capacity);
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    let worker = WorkerContext::from_env();
    let reported = carry_over(&worker);
    let engine = {
        let (ports, shutdown, telemetry) =
            (outputs.take_ports(), shutdown.clone(), telemetry.clone());
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                engine::run_engine_enriched(
                    event_rx,
                    processor,
                    ports,
                    control_rx,
                    shutdown,
                    telemetry,
                    Box::new(move |event| enricher.enrich(event)),
                    reported,
                )
            })
            .context("starting the engine thread")?
    };
    // A worker restarted by its supervisor says why before anything else.
    if let Some(report) = &worker.restart {
        let _ = event_tx.send(report.event());
    }
    let watchdog_events = event_tx.clone();
    let collectors = collectors::start(&config, trace, &telemetry, &ecs, event_tx, &shutdown)?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let watchdog = watchdog::spawn_watchdog(Watchdog {
        events: watchdog_events,
        control: control_tx,
        shutdown: shutdown.clone(),
        on_stop: Box::new(move |signal| {
            let _ = stop_tx.send(signal);
        }),
        proc_root: config.proc_root.clone(),
        tables: Some(collectors.tables.clone()),
        rule_paths: match config.emit {
            Emit::Alerts => config.rules.clone(),
            Emit::Events => Vec::new(),
        },
        rules_poll_interval: config.rules_poll_interval,
        supervisor: worker.supervisor_pid,
    })
    .context("starting the watchdog")?;
    tracing::info!(
        proc_root = %config.proc_root.display(),
        interval = ?config.interval,
        triggers = config.triggers && !trace,
        emit = ?config.emit,
        mode = if trace { "trace" } else { "poll" },
        "Monitoring started."
    );
    runtime.block_on(shutdown::wait_and_drain(shutdown::Parts {
        stop: stop_rx,
        shutdown,
        watchdog,
        collectors: collectors.health,
        engine,
        outputs,
        flush_timeout: config.flush_timeout,
    }))
}
