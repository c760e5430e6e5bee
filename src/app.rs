//! `tasksentry run`: builds the pipeline from the configuration, runs it until SIGTERM or
//! SIGINT, then stops the collectors, drains the queues and flushes the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::exit;
use crate::collect::{
    DriftRegistry, FsWatchConfig, ProcScanConfig, spawn_fswatch, spawn_procscan_shared,
};
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit};
use crate::ecs::EcsMetadata;
use crate::pipeline::{self, Counters, EmitAlerts, EmitEvents, Processor, Recording};
use crate::rules::Priority;
use crate::sink::cloudwatch::{
    CloudWatchSettings, CloudWatchSink, PipelineCounters, default_stream_name,
};
use crate::sink::fanout::{self, OutputSinks};

/// The monitor cannot start with this configuration or these rules (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(String);

/// Runs the monitor until it is asked to stop. Returns when every queued line was written.
pub fn run(config: Config) -> anyhow::Result<u8> {
    let processor: Box<dyn Processor> = match config.emit {
        Emit::Events => Box::new(EmitEvents),
        Emit::Alerts => {
            let mut ruleset = load_ruleset_or_fail(&RuleSelection {
                files: config.rules.clone(),
                no_default_rules: config.no_default_rules,
                strict: config.strict,
                rule_matching: config.rule_matching,
            })
            .map_err(|error| StartupError(format!("{error:#}")))?;
            let min_priority: Priority = config.min_priority.parse().map_err(|error| {
                StartupError(format!("invalid setting `min_priority`: {error}"))
            })?;
            ruleset.set_min_priority(min_priority);
            let counts = ruleset.counts();
            tracing::info!(
                rules = counts.compiled,
                enabled = counts.enabled,
                skipped = counts.skipped,
                "Rules loaded."
            );
            Box::new(EmitAlerts::new(
                ruleset,
                config.hostname.clone().unwrap_or_else(default_hostname),
            ))
        }
    };
    let processor: Box<dyn Processor> = match &config.record {
        Some(path) => Box::new(Recording::new(processor, path).map_err(|error| {
            StartupError(format!(
                "invalid setting `record`: cannot open {}: {error}",
                path.display()
            ))
        })?),
        None => processor,
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (event_tx, event_rx) = sync_channel(config.queue_capacity);
    let (line_tx, line_rx) = mpsc::channel(config.queue_capacity);

    let engine = {
        let shutdown = shutdown.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || pipeline::run_engine(event_rx, processor, line_tx, shutdown, counters))
            .context("starting the engine thread")?
    };
    let mut procscan_config = ProcScanConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        triggers: config.triggers,
        ..ProcScanConfig::default()
    };
    for name in &config.env_allowlist {
        if !procscan_config.env_allowlist.contains(name) {
            procscan_config.env_allowlist.push(name.clone());
        }
    }
    // Files the file collector sees written are shared with procscan for
    // `proc.exe_written_after_start`.
    let drift = Arc::new(DriftRegistry::default());
    procscan_config.drift = Some(drift.clone());
    let fswatch_tx = event_tx.clone();
    let (procscan, tables) = spawn_procscan_shared(procscan_config, event_tx, shutdown.clone())
        .with_context(|| {
            format!(
                "starting the procscan collector on {}",
                config.proc_root.display()
            )
        })?;
    let fswatch = spawn_fswatch(
        FsWatchConfig {
            proc_root: config.proc_root.clone(),
            ..FsWatchConfig::default()
        },
        tables,
        drift,
        fswatch_tx,
        shutdown.clone(),
    );
    // Without file watches (no inotify instance left, for example) the monitor still runs:
    // process and socket visibility must not depend on it.
    let fswatch = match fswatch {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::error!(%error, "The fswatch collector could not start; file events are not observed.");
            None
        }
    };
    tracing::info!(
        proc_root = %config.proc_root.display(),
        interval = ?config.interval,
        triggers = config.triggers,
        emit = ?config.emit,
        "Monitoring started."
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let hostname = config.hostname.clone().unwrap_or_else(default_hostname);
        let sink_counters = Arc::new(PipelineCounters::default());
        let (cloudwatch, cloudwatch_tx) = match CloudWatchSettings::from_config(&config) {
            Some(mut settings) => {
                settings.counters = sink_counters.clone();
                let task = tokio::task::spawn_blocking(|| EcsMetadata::from_environment().task())
                    .await
                    .ok()
                    .flatten();
                if let Some(task) = &task {
                    let context = task.task_context();
                    settings.cluster = context.cluster.unwrap_or_default();
                    settings.task_family = context.family.unwrap_or_default();
                }
                let task_id = task.as_ref().and_then(|t| t.task_context().task_id);
                let stream = config
                    .log_stream
                    .clone()
                    .unwrap_or_else(|| default_stream_name(task_id.as_deref(), &hostname));
                let (handle, tx) = CloudWatchSink::start(settings, stream.clone())
                    .await
                    .map_err(|error| StartupError(format!("cannot start the CloudWatch Logs output: {error}")))?;
                tracing::info!(log_group = %config.log_group, log_stream = %stream, "CloudWatch Logs output started.");
                (Some(handle), Some(tx))
            }
            None => (None, None),
        };
        let (stdout_tx, stdout) = if config.stdout_enabled() {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            (Some(tx), Some(tokio::spawn(pipeline::stdout_sink(rx))))
        } else {
            (None, None)
        };
        let fanout = tokio::spawn(fanout::run(
            line_rx,
            OutputSinks {
                stdout: stdout_tx,
                cloudwatch: cloudwatch_tx,
                counters: sink_counters.clone(),
            },
        ));
        // The heartbeat reports the engine's event count.
        let heartbeat_feed = {
            let counters = counters.clone();
            let sink_counters = sink_counters.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    sink_counters
                        .events_processed
                        .store(counters.events.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            })
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("installing the SIGINT handler")?;
        tokio::select! {
            _ = sigterm.recv() => tracing::info!(signal = "SIGTERM", "Stopping."),
            _ = sigint.recv() => tracing::info!(signal = "SIGINT", "Stopping."),
        }
        shutdown.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || procscan.join())
            .await
            .context("joining the procscan thread")?
            .map_err(|_| anyhow::anyhow!("the procscan thread panicked"))?;
        if let Some(fswatch) = fswatch {
            tokio::task::spawn_blocking(move || fswatch.join())
                .await
                .context("joining the fswatch thread")?
                .map_err(|_| anyhow::anyhow!("the fswatch thread panicked"))?;
        }
        tokio::task::spawn_blocking(move || engine.join())
            .await
            .context("joining the engine thread")?
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
        heartbeat_feed.abort();
        fanout.await.context("joining the output fan-out")?;
        if let Some(stdout) = stdout {
            stdout
                .await
                .context("joining the stdout sink")?
                .context("writing to stdout")?;
        }
        if let Some(handle) = cloudwatch {
            let report = handle.shutdown(config.flush_timeout).await;
            if report.undelivered > 0 {
                tracing::error!(
                    undelivered = report.undelivered,
                    deadline_reached = report.deadline_reached,
                    "Alerts could not be delivered to CloudWatch Logs before the flush deadline."
                );
                eprintln!(
                    "tasksentry: {} alerts could not be delivered to CloudWatch Logs before the flush deadline",
                    report.undelivered
                );
                return anyhow::Ok(exit::FAILURE);
            }
            tracing::info!(delivered = report.stats.delivered, "CloudWatch Logs flushed.");
        }
        anyhow::Ok(exit::OK)
    })
}
