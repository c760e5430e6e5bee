//! `tasksentry run`: builds the pipeline from the configuration, runs it until SIGTERM or
//! SIGINT, then stops the collectors, drains the queues and flushes the sinks.
//!
//! Signals are read by the watchdog thread ([`crate::guard::watchdog`]): it reports who sent
//! them as an alert before acting, reloads the rules on SIGHUP (and when configured rule files
//! change), and watches for a tracer. The order of start-up is: block the handled signals (before
//! any thread exists), start the ECS metadata thread, build the processor, start the engine,
//! the collectors, the watchdog, then the sinks on the async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::alert::AlertSettings;
use crate::alert::budget::BudgetConfig;
use crate::alert::chain::EmitAlerts;
use crate::alert::redact::Redactor;
use crate::cli::exit;
use crate::collect::{
    DriftRegistry, ExecSignal, FsWatchConfig, ProcScanConfig, SocketsConfig, TracerConfig,
    TracerLink, block_sigchld, spawn_fswatch, spawn_procscan_shared, spawn_sockets, spawn_tracer,
    trace_possible,
};
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit, Mode};
use crate::ecs::{EcsMetadata, RefreshPolicy, spawn_enrichment};
use crate::engine::{self, Counters, EmitEvents, OutputPort, Processor, Recording};
use crate::event::Collector;
use crate::guard::health::{CollectorHealth, Restart, spawn_health};
use crate::guard::supervise::WorkerContext;
use crate::guard::watchdog::{self, Watchdog};
use crate::priority::Priority;
use crate::sink::bridge;
use crate::sink::cloudwatch::{
    CloudWatchSettings, CloudWatchSink, PipelineCounters, default_stream_name,
};

/// The longest start-up waits for the first ECS task metadata answer (an endpoint that does
/// not answer delays monitoring by at most this; events are then enriched once it answers).
const ECS_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The monitor cannot start with this configuration or these rules (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(String);

/// Runs the monitor until it is asked to stop. Returns when every queued line was written.
pub fn run(config: Config) -> anyhow::Result<u8> {
    // Before any thread starts, so that every thread inherits the mask and the watchdog's
    // signalfd is the only reader of these signals.
    watchdog::block_signals().context("setting up signal handling")?;
    // The tracer's wake-ups need SIGCHLD blocked in every thread, so before any thread starts.
    let trace = choose_trace(&config);
    if trace {
        block_sigchld().context("blocking SIGCHLD for the tracer")?;
    }
    let stdout_min_priority: Priority = config
        .stdout_min_priority
        .parse()
        .map_err(|error| StartupError(format!("invalid setting `stdout_min_priority`: {error}")))?;
    // ECS task metadata: fetched by a background thread, read by the engine without waiting
    // (see `crate::ecs::enrich`); the alert stage reads it too, for the task context of alerts
    // that belong to no container.
    let (mut enricher, ecs_status, _ecs_refresher) =
        spawn_enrichment(EcsMetadata::from_env(), RefreshPolicy::default())
            .context("starting the ECS metadata thread")?;
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
                }))
                .with_task_view(ecs_status.task_view()),
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
    // Start-up waits a bounded time for the first ECS answer so that the processes already
    // running are reported with their container names.
    ecs_status.wait_first_attempt(ECS_STARTUP_WAIT);
    let shutdown = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (event_tx, event_rx) = sync_channel(config.queue_capacity);
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    // One queue and one minimum priority per output; further sinks add their port here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hostname = config.hostname.clone().unwrap_or_else(default_hostname);
    let sink_counters = Arc::new(PipelineCounters::default());
    let mut outputs = Vec::new();
    let stdout_rx = if config.stdout_enabled() {
        let (line_tx, line_rx) = mpsc::channel(config.queue_capacity);
        outputs.push(OutputPort {
            name: "stdout",
            min_priority: stdout_min_priority,
            tx: line_tx,
        });
        Some(line_rx)
    } else {
        None
    };
    let cloudwatch = match CloudWatchSettings::from_config(&config) {
        Some(mut settings) => {
            settings.counters = sink_counters.clone();
            settings.hostname = hostname.clone();
            settings.task = Some(ecs_status.clone());
            // The port's minimum is the one CloudWatch priority filter.
            let min_priority: Priority =
                config.cloudwatch_min_priority.parse().map_err(|error| {
                    StartupError(format!(
                        "invalid setting `cloudwatch_min_priority`: {error}"
                    ))
                })?;
            let task = ecs_status.snapshot();
            if let Some(task) = &task {
                settings.apply_task_context(&task.task_context());
            }
            let task_id = task.as_ref().and_then(|t| t.task_context().task_id);
            let stream = config
                .log_stream
                .clone()
                .unwrap_or_else(|| default_stream_name(task_id.as_deref(), &hostname));
            let (handle, record_tx) = runtime
                .block_on(CloudWatchSink::start(settings, stream.clone()))
                .map_err(|error| {
                    StartupError(format!("cannot start the CloudWatch Logs output: {error}"))
                })?;
            tracing::info!(log_group = %config.log_group, log_stream = %stream, "CloudWatch Logs output started.");
            let (line_tx, line_rx) = mpsc::channel(config.queue_capacity);
            outputs.push(OutputPort {
                name: "cloudwatch",
                min_priority,
                tx: line_tx,
            });
            Some((handle, line_rx, record_tx))
        }
        None => None,
    };

    let engine = {
        let shutdown = shutdown.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                engine::run_engine_enriched(
                    event_rx,
                    processor,
                    outputs,
                    control_rx,
                    shutdown,
                    counters,
                    Box::new(move |event| enricher.enrich(event)),
                )
            })
            .context("starting the engine thread")?
    };
    let watchdog_events = event_tx.clone();
    // A worker restarted by its supervisor says why before anything else.
    let worker = WorkerContext::from_env();
    if let Some(report) = &worker.restart {
        let _ = event_tx.send(report.event());
    }
    // Execs (procscan's triggers, or the tracer's exec stops in trace mode) also make the
    // sockets collector poll soon after (see `SocketsConfig`), so that a short connection made
    // right after an exec keeps its process.
    let exec_signal = config.triggers.then(ExecSignal::new);
    let mut procscan_config = ProcScanConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        // In trace mode the tracer sees every exec of the processes it holds; procscan only
        // has to find what is not held yet, which its periodic scans do. Trigger-driven
        // rescans (one per exec of a PATH binary) would only compete with the traced workload
        // for CPU.
        triggers: config.triggers && !trace,
        exec_signal: exec_signal.clone(),
        visibility: crate::collect::visibility::VisibilityCounts {
            checked: sink_counters.containers_checked.clone(),
            degraded: sink_counters.containers_degraded.clone(),
            known: sink_counters.visibility_known.clone(),
        },
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
        drift: procscan_config.drift.clone(),
        exec_signal: exec_signal.clone(),
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
    let sockets_config = SocketsConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        exec_signal,
        ..SocketsConfig::default()
    };
    let sockets = spawn_sockets(
        sockets_config.clone(),
        event_tx.clone(),
        shutdown.clone(),
        tables.clone(),
    )
    .context("starting the sockets collector")?;
    // Collector threads are watched: one that ends early is reported, and restarted where
    // that is cheap (see `guard::health`).
    let mut health = CollectorHealth::default();
    health.add(Collector::Procscan, procscan, None);
    health.add(Collector::Sockets, sockets, {
        let (tx, shutdown, tables) = (event_tx.clone(), shutdown.clone(), tables.clone());
        Some(Box::new(move || {
            spawn_sockets(
                sockets_config.clone(),
                tx.clone(),
                shutdown.clone(),
                tables.clone(),
            )
        }))
    });
    let health_events = event_tx.clone();
    let tracer = match tracer_link {
        Some(link) => Some(
            spawn_tracer(
                tracer_config,
                link,
                tables.clone(),
                event_tx.clone(),
                shutdown.clone(),
            )
            .context("starting the tracer thread")?,
        ),
        None => None,
    };
    // Every collector holds its own sender now.
    drop(event_tx);
    let fswatch_config = FsWatchConfig {
        proc_root: config.proc_root.clone(),
        groups: config.watch_groups.clone(),
        max_watches: config.watch_budget,
        ..FsWatchConfig::default()
    };
    let fswatch_restart: Restart = {
        let (config, tables, drift, tx, shutdown) = (
            fswatch_config.clone(),
            tables.clone(),
            drift.clone(),
            fswatch_tx.clone(),
            shutdown.clone(),
        );
        Box::new(move || {
            spawn_fswatch(
                config.clone(),
                tables.clone(),
                drift.clone(),
                tx.clone(),
                shutdown.clone(),
            )
            .map_err(std::io::Error::other)
        })
    };
    let fswatch = spawn_fswatch(
        fswatch_config,
        tables.clone(),
        drift,
        fswatch_tx,
        shutdown.clone(),
    );
    // Without file watches (no inotify instance left, for example) the monitor still runs:
    // process and socket visibility must not depend on it.
    match fswatch {
        Ok(handle) => health.add(Collector::Fswatch, handle, Some(fswatch_restart)),
        Err(error) => {
            tracing::error!(%error, "The fswatch collector could not start; file events are not observed.");
        }
    }
    if let Some(tracer) = tracer {
        health.add(Collector::Tracer, tracer, None);
    }
    let health = spawn_health(health, health_events, shutdown.clone())
        .context("starting the collector health thread")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let watchdog = watchdog::spawn_watchdog(Watchdog {
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

    runtime.block_on(async {
        let stdout = stdout_rx.map(|rx| tokio::spawn(crate::sink::stdout::stdout_sink(rx)));
        let (cloudwatch, cloudwatch_bridge) = match cloudwatch {
            Some((handle, line_rx, record_tx)) => (
                Some(handle),
                Some(tokio::spawn(bridge::forward(line_rx, record_tx, sink_counters.clone()))),
            ),
            None => (None, None),
        };
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
        // The watchdog has queued the signal's report and set `shutdown` when this resolves.
        let signal = stop_rx.await.unwrap_or("watchdog gone");
        tracing::debug!(signal, "Draining the pipeline.");
        shutdown.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || watchdog.join())
            .await
            .context("joining the watchdog thread")?
            .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
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
        tokio::task::spawn_blocking(move || engine.join())
            .await
            .context("joining the engine thread")?
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
        heartbeat_feed.abort();
        if let Some(stdout) = stdout {
            stdout
                .await
                .context("joining the stdout sink")?
                .context("writing to stdout")?;
        }
        if let Some(bridge) = cloudwatch_bridge {
            bridge.await.context("joining the CloudWatch bridge")?;
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
