//! `tasksentry run`: builds the pipeline from the configuration, runs it until SIGTERM or
//! SIGINT, then stops the collectors, drains the queues and flushes the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::exit;
use crate::collect::{ProcScanConfig, SocketsConfig, spawn_procscan_shared, spawn_sockets};
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit};
use crate::pipeline::{self, Counters, EmitAlerts, EmitEvents, Processor, Recording};
use crate::rules::Priority;

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
    let (procscan, tables) =
        spawn_procscan_shared(procscan_config, event_tx.clone(), shutdown.clone()).with_context(
            || {
                format!(
                    "starting the procscan collector on {}",
                    config.proc_root.display()
                )
            },
        )?;
    let sockets_config = SocketsConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        ..SocketsConfig::default()
    };
    let sockets = spawn_sockets(sockets_config, event_tx, shutdown.clone(), tables)
        .context("starting the sockets collector")?;
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
        let sink = tokio::spawn(pipeline::stdout_sink(line_rx));
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
        tokio::task::spawn_blocking(move || sockets.join())
            .await
            .context("joining the sockets thread")?
            .map_err(|_| anyhow::anyhow!("the sockets thread panicked"))?;
        tokio::task::spawn_blocking(move || engine.join())
            .await
            .context("joining the engine thread")?
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
        sink.await
            .context("joining the stdout sink")?
            .context("writing to stdout")?;
        anyhow::Ok(exit::OK)
    })
}
