//! `tasksentry run`: builds the pipeline from the configuration, runs it until SIGTERM or
//! SIGINT, then stops the collectors, drains the queues and flushes the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::exit;
use crate::collect::{
    ProcScanConfig, TracerConfig, TracerLink, block_sigchld, spawn_procscan_shared, spawn_tracer,
    trace_possible,
};
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit, Mode};
use crate::pipeline::{self, Counters, EmitAlerts, EmitEvents, Processor, Recording};
use crate::rules::Priority;

/// The monitor cannot start with this configuration or these rules (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(String);

/// Runs the monitor until it is asked to stop. Returns when every queued line was written.
pub fn run(config: Config) -> anyhow::Result<u8> {
    // The tracer's wake-ups need SIGCHLD blocked in every thread, so before any thread starts.
    let trace = choose_trace(&config);
    if trace {
        block_sigchld().context("blocking SIGCHLD for the tracer")?;
    }
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
        // In trace mode the tracer sees every exec of the processes it holds; procscan only
        // has to find what is not held yet, which its periodic scans do. Trigger-driven
        // rescans (one per exec of a PATH binary) would only compete with the traced workload
        // for CPU.
        triggers: config.triggers && !trace,
        ..ProcScanConfig::default()
    };
    for name in &config.env_allowlist {
        if !procscan_config.env_allowlist.contains(name) {
            procscan_config.env_allowlist.push(name.clone());
        }
    }
    let tracer_link = if trace {
        Some(TracerLink::new().context("creating the tracer's wake-up eventfd")?)
    } else {
        None
    };
    procscan_config.tracer = tracer_link.clone();
    let tracer_config = TracerConfig {
        proc_root: config.proc_root.clone(),
        env_allowlist: procscan_config.env_allowlist.clone(),
        max_cmdline_bytes: procscan_config.max_cmdline_bytes,
    };
    let (procscan, tables) =
        spawn_procscan_shared(procscan_config, event_tx.clone(), shutdown.clone()).with_context(
            || {
                format!(
                    "starting the procscan collector on {}",
                    config.proc_root.display()
                )
            },
        )?;
    let tracer = match tracer_link {
        Some(link) => Some(
            spawn_tracer(tracer_config, link, tables, event_tx, shutdown.clone())
                .context("starting the tracer thread")?,
        ),
        None => {
            drop(event_tx);
            None
        }
    };
    tracing::info!(
        proc_root = %config.proc_root.display(),
        interval = ?config.interval,
        triggers = config.triggers && !trace,
        emit = ?config.emit,
        mode = if trace { "trace" } else { "poll" },
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
        if let Some(tracer) = tracer {
            tokio::task::spawn_blocking(move || tracer.join())
                .await
                .context("joining the tracer thread")?
                .map_err(|_| anyhow::anyhow!("the tracer thread panicked"))?;
        }
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

/// Whether to start the tracer: always in `trace` mode (a failure to seize is reported per
/// process and procscan covers it), in `auto` mode when tracing is possible here. The choice
/// and its reason are logged.
fn choose_trace(config: &Config) -> bool {
    match config.mode {
        Mode::Poll => false,
        Mode::Trace => {
            if let Err(reason) = trace_possible(&config.proc_root) {
                tracing::warn!(%reason, "Mode trace: tracing will likely fail; procscan covers every process the tracer cannot seize.");
            }
            true
        }
        Mode::Auto => match trace_possible(&config.proc_root) {
            Ok(()) => {
                tracing::info!(
                    mode = "trace",
                    "Mode auto: tracing is possible; using trace."
                );
                true
            }
            Err(reason) => {
                tracing::info!(mode = "poll", %reason, "Mode auto: cannot trace; using poll.");
                false
            }
        },
    }
}
