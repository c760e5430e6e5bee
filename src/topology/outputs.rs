//! The outputs of `tasksentry run`: one [`OutputPort`] per output (its queue and the least
//! severe alert it takes: the one place priorities are filtered for it), and the tasks that
//! write what the ports receive: stdout lines, and the CloudWatch Logs sink behind its bridge.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::StartupError;
use crate::commands::default_hostname;
use crate::config::Config;
use crate::ecs::EnrichmentStatus;
use crate::engine::{OutputPort, Record};
use crate::sink::cloudwatch::{
    self, CloudWatchHandle, CloudWatchSettings, CloudWatchSink, default_stream_name,
};
use crate::sink::{bridge, stdout};
use crate::telemetry::Telemetry;

/// The CloudWatch sink's settings from the configuration, or `None` when CloudWatch is not an
/// output.
pub(crate) fn cloudwatch_settings(config: &Config) -> Option<CloudWatchSettings> {
    if !config.cloudwatch_enabled() {
        return None;
    }
    let mut settings = CloudWatchSettings::new(config.log_group.clone());
    settings.retention_days = config.retention_days;
    settings.region = config.cloudwatch_region.clone();
    settings.endpoint = config.cloudwatch_endpoint.clone();
    settings.batch_interval = config.batch_interval;
    settings.buffer_capacity = config.buffer_capacity;
    settings.channel_capacity = config.queue_capacity;
    settings.spill_dir = config.spill_dir.clone();
    settings.spill_max_bytes = config.spill_max_bytes;
    settings.flush_timeout = config.flush_timeout;
    settings.connect_timeout = config.cloudwatch_connect_timeout;
    settings.attempt_timeout = config.cloudwatch_attempt_timeout;
    settings.retry_max = config.cloudwatch_retry_max;
    settings.proc_root = config.proc_root.clone();
    Some(settings)
}

/// The CloudWatch output: the sink (started) and the queue its bridge will read.
struct CloudWatchOutput {
    handle: CloudWatchHandle,
    records: mpsc::Receiver<Record>,
    sink: mpsc::Sender<cloudwatch::Record>,
}

/// The outputs, built and (CloudWatch) started, before the engine runs.
pub(crate) struct Outputs {
    ports: Vec<OutputPort>,
    stdout: Option<mpsc::Receiver<Record>>,
    cloudwatch: Option<CloudWatchOutput>,
    telemetry: Arc<Telemetry>,
}

/// The outputs' tasks, running.
pub(crate) struct Running {
    stdout: Option<JoinHandle<std::io::Result<()>>>,
    bridge: Option<JoinHandle<()>>,
    cloudwatch: Option<CloudWatchHandle>,
}

impl Outputs {
    /// Builds the ports and starts the CloudWatch sink (which creates its log group and stream
    /// now, so that a misconfiguration fails at start).
    pub(crate) fn start(
        config: &Config,
        ecs: &EnrichmentStatus,
        telemetry: &Arc<Telemetry>,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Outputs, StartupError> {
        let mut ports = Vec::new();
        let stdout = config.stdout_enabled().then(|| {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            ports.push(OutputPort {
                name: "stdout",
                min_priority: config.stdout_min_priority,
                tx,
            });
            rx
        });
        let cloudwatch = match cloudwatch_settings(config) {
            None => None,
            Some(mut settings) => {
                let hostname = config.hostname.clone().unwrap_or_else(default_hostname);
                settings.telemetry = telemetry.clone();
                settings.hostname = hostname.clone();
                settings.task = Some(ecs.clone());
                let task = ecs.snapshot();
                if let Some(task) = &task {
                    settings.apply_task_context(&task.task_context());
                }
                let task_id = task.as_ref().and_then(|t| t.task_context().task_id);
                let stream = config
                    .log_stream
                    .clone()
                    .unwrap_or_else(|| default_stream_name(task_id.as_deref(), &hostname));
                let (handle, sink) = runtime
                    .block_on(CloudWatchSink::start(settings, stream.clone()))
                    .map_err(|error| {
                        StartupError(format!("cannot start the CloudWatch Logs output: {error}"))
                    })?;
                tracing::info!(log_group = %config.log_group, log_stream = %stream, "CloudWatch Logs output started.");
                let (tx, records) = mpsc::channel(config.queue_capacity);
                ports.push(OutputPort {
                    name: "cloudwatch",
                    min_priority: config.cloudwatch_min_priority,
                    tx,
                });
                Some(CloudWatchOutput {
                    handle,
                    records,
                    sink,
                })
            }
        };
        Ok(Outputs {
            ports,
            stdout,
            cloudwatch,
            telemetry: telemetry.clone(),
        })
    }

    /// The ports, for the engine (taken once).
    pub(crate) fn take_ports(&mut self) -> Vec<OutputPort> {
        std::mem::take(&mut self.ports)
    }

    /// Starts the writing tasks (on the runtime that calls this).
    pub(crate) fn spawn(self) -> Running {
        let stdout = self.stdout.map(|rx| tokio::spawn(stdout::stdout_sink(rx)));
        let (bridge, cloudwatch) = match self.cloudwatch {
            Some(output) => (
                Some(tokio::spawn(bridge::forward(
                    output.records,
                    output.sink,
                    self.telemetry,
                ))),
                Some(output.handle),
            ),
            None => (None, None),
        };
        Running {
            stdout,
            bridge,
            cloudwatch,
        }
    }
}

impl Running {
    /// Once the engine has ended (its ports are closed): waits for stdout, then flushes
    /// CloudWatch within `flush_timeout`. `Ok(false)` when alerts could not be delivered in
    /// time (said on stderr and in the log).
    pub(crate) async fn finish(self, flush_timeout: std::time::Duration) -> anyhow::Result<bool> {
        use anyhow::Context;
        if let Some(stdout) = self.stdout {
            stdout
                .await
                .context("joining the stdout sink")?
                .context("writing to stdout")?;
        }
        if let Some(bridge) = self.bridge {
            bridge.await.context("joining the CloudWatch bridge")?;
        }
        if let Some(handle) = self.cloudwatch {
            let report = handle.shutdown(flush_timeout).await;
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
                return Ok(false);
            }
            tracing::info!(
                delivered = report.stats.delivered,
                "CloudWatch Logs flushed."
            );
        }
        Ok(true)
    }
}
