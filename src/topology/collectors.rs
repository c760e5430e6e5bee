//! The collectors of `tasksentry run` (the image collector too, when `image_scan` is on), each on its own thread, each with its own small
//! configuration built here from the settings, and watched by the health thread (one that ends
//! early is reported, and restarted where that is cheap: sockets and fswatch).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use anyhow::Context;

use crate::collect::imagescan::{ImageScanConfig, spawn_imagescan};
use crate::collect::{
    DriftRegistry, ExecSignal, FsWatchConfig, ProcScanConfig, SharedTables, SocketsConfig,
    TracerConfig, TracerLink, spawn_fswatch, spawn_procscan_shared, spawn_sockets, spawn_tracer,
    trace_possible,
};
use crate::config::{Config, Mode};
use crate::ecs::EnrichmentStatus;
use crate::event::{Collector, Event};
use crate::guard::health::{CollectorHealth, Restart, spawn_health};
use crate::telemetry::Telemetry;

/// How often the image collector looks for containers it has not read yet.
const IMAGE_SCAN_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The running collectors.
pub(super) struct Collectors {
    /// The process and container tables the watchdog names signal senders from.
    pub(crate) tables: SharedTables,
    /// The health thread; joining it hands back the collector threads.
    pub(crate) health: JoinHandle<CollectorHealth>,
}

/// Whether to start the tracer: always in `trace` mode (a failure to seize is reported per
/// process and procscan covers it), in `auto` mode when tracing is possible here. The choice
/// and its reason are logged.
pub(super) fn choose_trace(config: &Config) -> bool {
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

/// Starts procscan, sockets, the tracer (when `trace`), fswatch and the health thread. Every
/// collector gets its own clone of `events`.
pub(super) fn start(
    config: &Config,
    trace: bool,
    telemetry: &Telemetry,
    ecs: &EnrichmentStatus,
    events: SyncSender<Event>,
    shutdown: &Arc<AtomicBool>,
) -> anyhow::Result<Collectors> {
    // Execs (procscan's triggers, or the tracer's exec stops in trace mode) also make the
    // sockets collector poll soon after (see `SocketsConfig`), so that a short connection made
    // right after an exec keeps its process.
    let exec_signal = config.triggers.then(ExecSignal::new);
    // Files the file collector sees written are shared with procscan for
    // `proc.exe_written_after_start`.
    let drift = Arc::new(DriftRegistry::default());
    let tracer_link = if trace {
        Some(TracerLink::new().context("creating the tracer's wake-up eventfd")?)
    } else {
        None
    };
    let mut procscan_config = ProcScanConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        // In trace mode the tracer sees every exec of the processes it holds; procscan only
        // has to find what is not held yet, which its periodic scans do. Trigger-driven
        // rescans (one per exec of a PATH binary) would only compete with the traced workload
        // for CPU.
        triggers: config.triggers && !trace,
        exec_signal: exec_signal.clone(),
        visibility: telemetry.visibility.clone(),
        drift: Some(drift.clone()),
        tracer: tracer_link.clone(),
        ..ProcScanConfig::default()
    };
    for name in &config.env_allowlist {
        if !procscan_config.env_allowlist.contains(name) {
            procscan_config.env_allowlist.push(name.clone());
        }
    }
    let tracer_config = TracerConfig {
        proc_root: config.proc_root.clone(),
        env_allowlist: procscan_config.env_allowlist.clone(),
        max_cmdline_bytes: procscan_config.max_cmdline_bytes,
        drift: procscan_config.drift.clone(),
        exec_signal: exec_signal.clone(),
    };
    let (procscan, tables) =
        spawn_procscan_shared(procscan_config, events.clone(), shutdown.clone()).with_context(
            || {
                format!(
                    "starting the procscan collector on {}",
                    config.proc_root.display()
                )
            },
        )?;
    let mut health = CollectorHealth::default();
    health.add(Collector::Procscan, procscan, None);

    let sockets_config = SocketsConfig {
        proc_root: config.proc_root.clone(),
        interval: config.interval,
        exec_signal,
        env_allowlist: tracer_config.env_allowlist.clone(),
        max_cmdline_bytes: tracer_config.max_cmdline_bytes,
        ..SocketsConfig::default()
    };
    let sockets = spawn_sockets(
        sockets_config.clone(),
        events.clone(),
        shutdown.clone(),
        tables.clone(),
    )
    .context("starting the sockets collector")?;
    health.add(Collector::Sockets, sockets, {
        let (tx, shutdown, tables) = (events.clone(), shutdown.clone(), tables.clone());
        Some(Box::new(move || {
            spawn_sockets(
                sockets_config.clone(),
                tx.clone(),
                shutdown.clone(),
                tables.clone(),
            )
        }))
    });

    if let Some(link) = tracer_link {
        let tracer = spawn_tracer(
            tracer_config,
            link,
            tables.clone(),
            events.clone(),
            shutdown.clone(),
        )
        .context("starting the tracer thread")?;
        health.add(Collector::Tracer, tracer, None);
    }

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
            events.clone(),
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
    // Without file watches (no inotify instance left, for example) the monitor still runs:
    // process and socket visibility must not depend on it.
    match spawn_fswatch(
        fswatch_config,
        tables.clone(),
        drift,
        events.clone(),
        shutdown.clone(),
    ) {
        Ok(handle) => health.add(Collector::Fswatch, handle, Some(fswatch_restart)),
        Err(error) => {
            tracing::error!(%error, "The fswatch collector could not start; file events are not observed.");
        }
    }
    if config.image_scan {
        let image_config = ImageScanConfig {
            proc_root: config.proc_root.clone(),
            delay: config.image_scan_delay,
            rate: config.image_scan_rate,
            max_files: config.image_scan_max_files,
            max_bytes: config.image_scan_max_bytes,
            vulndb: config.vulndb.clone(),
            poll: IMAGE_SCAN_POLL,
        };
        let handle = spawn_imagescan(
            image_config,
            tables.clone(),
            ecs.clone(),
            events.clone(),
            shutdown.clone(),
        )
        .context("starting the image collector")?;
        health.add(Collector::Images, handle, None);
    }
    let health = spawn_health(health, events, shutdown.clone())
        .context("starting the collector health thread")?;
    Ok(Collectors { tables, health })
}
