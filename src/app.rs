//! `tasksentry run`: builds the pipeline from the configuration, runs it until SIGTERM or
//! SIGINT, then stops the collectors, drains the queues and flushes the sinks.
//!
//! Signals are read by the watchdog thread ([`crate::alert::tamper`]): it reports who sent
//! them as an alert before acting, reloads the rules on SIGHUP (and when configured rule files
//! change), and watches for a tracer. The order of start-up is: block the handled signals (before
//! any thread exists), build the processor, start the engine, the collectors, the watchdog,
//! then the sinks on the async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::alert::AlertSettings;
use crate::alert::budget::BudgetConfig;
use crate::alert::redact::Redactor;
use crate::alert::tamper::{self, Watchdog};
use crate::cli::exit;
use crate::collect::{ProcScanConfig, spawn_procscan_shared};
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit};
use crate::pipeline::{self, Counters, EmitAlerts, EmitEvents, OutputPort, Processor, Recording};
use crate::rules::Priority;

/// The monitor cannot start with this configuration or these rules (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(String);

/// Runs the monitor until it is asked to stop. Returns when every queued line was written.
pub fn run(config: Config) -> anyhow::Result<u8> {
    // Before any thread starts, so that every thread inherits the mask and the watchdog's
    // signalfd is the only reader of these signals.
    tamper::block_signals().context("setting up signal handling")?;
    let stdout_min_priority: Priority = config
        .stdout_min_priority
        .parse()
        .map_err(|error| StartupError(format!("invalid setting `stdout_min_priority`: {error}")))?;
    let processor: Box<dyn Processor> = match config.emit {
        Emit::Events => Box::new(EmitEvents),
        Emit::Alerts => {
            let selection = RuleSelection {
                files: config.rules.clone(),
                no_default_rules: config.no_default_rules,
                strict: config.strict,
                rule_matching: config.rule_matching,
            };
            let min_priority: Priority = config.min_priority.parse().map_err(|error| {
                StartupError(format!("invalid setting `min_priority`: {error}"))
            })?;
            let load = move || {
                load_ruleset_or_fail(&selection).map(|mut ruleset| {
                    ruleset.set_min_priority(min_priority);
                    ruleset
                })
            };
            let ruleset = load().map_err(|error| StartupError(format!("{error:#}")))?;
            let counts = ruleset.counts();
            tracing::info!(
                rules = counts.compiled,
                enabled = counts.enabled,
                skipped = counts.skipped,
                "Rules loaded."
            );
            let settings = AlertSettings {
                aggregation_window: config.aggregation_window,
                budget: BudgetConfig {
                    per_rule_per_minute: config.rule_alert_budget,
                    global_per_minute: config.alert_budget,
                    ..BudgetConfig::default()
                },
                redactor: Redactor::with_extra(&config.redact_patterns).map_err(|error| {
                    StartupError(format!("invalid setting `redact_patterns`: {error}"))
                })?,
                ..AlertSettings::default()
            };
            Box::new(
                EmitAlerts::with_settings(
                    ruleset,
                    config.hostname.clone().unwrap_or_else(default_hostname),
                    settings,
                )
                .with_reloader(Box::new(move || {
                    load().map_err(|error| format!("{error:#}"))
                })),
            )
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
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    // One queue and one minimum priority per output; further sinks add their port here.
    let (line_tx, line_rx) = mpsc::channel(config.queue_capacity);
    let outputs = vec![OutputPort {
        name: "stdout",
        min_priority: stdout_min_priority,
        tx: line_tx,
    }];

    let engine = {
        let shutdown = shutdown.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                pipeline::run_engine(event_rx, processor, outputs, control_rx, shutdown, counters)
            })
            .context("starting the engine thread")?
    };
    let watchdog_events = event_tx.clone();
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
    let (procscan, tables) = spawn_procscan_shared(procscan_config, event_tx, shutdown.clone())
        .with_context(|| {
            format!(
                "starting the procscan collector on {}",
                config.proc_root.display()
            )
        })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let watchdog = tamper::spawn_watchdog(Watchdog {
        events: watchdog_events,
        control: control_tx,
        shutdown: shutdown.clone(),
        on_stop: Box::new(move |signal| {
            let _ = stop_tx.send(signal);
        }),
        proc_root: config.proc_root.clone(),
        tables: Some(tables),
        rule_paths: match config.emit {
            Emit::Alerts => config.rules.clone(),
            Emit::Events => Vec::new(),
        },
        rules_poll_interval: config.rules_poll_interval,
    })
    .context("starting the watchdog")?;
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
        // The watchdog has queued the signal's report and set `shutdown` when this resolves.
        let signal = stop_rx.await.unwrap_or("watchdog gone");
        tracing::debug!(signal, "Draining the pipeline.");
        shutdown.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || watchdog.join())
            .await
            .context("joining the watchdog thread")?
            .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
        tokio::task::spawn_blocking(move || procscan.join())
            .await
            .context("joining the procscan thread")?
            .map_err(|_| anyhow::anyhow!("the procscan thread panicked"))?;
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
