//! The running monitor: collectors on their own OS threads, the engine on its own thread, sinks
//! on a small tokio runtime, joined by bounded queues.
//!
//! ```text
//! collectors --(sync_channel<Event>)--> engine thread --(mpsc<Output>)--> sinks (tokio)
//! ```
//!
//! Nothing upstream ever waits for a sink: the engine hands lines to the sinks with `try_send`,
//! and a line that does not fit is counted; the count is reported in a `tasksentry` event as
//! soon as there is room again. Collectors do the same with events (see each collector).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::alert::Alert;
use crate::event::{Collector, Event, EventType, Internal};
use crate::rules::RuleSet;

/// Turns one event into zero or more output lines (JSON, no newline). In `events` mode the
/// event itself; in `alerts` mode the alerts of the rules it matches.
pub trait Processor: Send {
    /// Handles one event; appends the output lines to `out`.
    fn process(&mut self, event: &Event, out: &mut Vec<String>);
}

/// Prints every event (`--emit events`).
pub struct EmitEvents;

impl Processor for EmitEvents {
    fn process(&mut self, event: &Event, out: &mut Vec<String>) {
        out.push(event.to_json_line());
    }
}

/// Evaluates every event against the rules and prints the alerts (the default).
pub struct EmitAlerts {
    ruleset: RuleSet,
    hostname: String,
}

impl EmitAlerts {
    /// A processor for `ruleset`, writing `hostname` into alerts.
    pub fn new(ruleset: RuleSet, hostname: String) -> EmitAlerts {
        EmitAlerts { ruleset, hostname }
    }
}

impl Processor for EmitAlerts {
    fn process(&mut self, event: &Event, out: &mut Vec<String>) {
        let mut matches = Vec::new();
        self.ruleset.evaluate(event, &mut matches);
        for matched in &matches {
            let alert = Alert::from_match(matched, event, &self.hostname);
            match serde_json::to_string(&alert) {
                Ok(line) => out.push(line),
                Err(error) => {
                    tracing::error!(rule = %alert.rule, %error, "Cannot serialize an alert.")
                }
            }
        }
    }
}

/// Appends every event to a recording file (NDJSON) before handing it to the inner
/// processor. A write error is logged once and recording stops; monitoring goes on.
pub struct Recording {
    inner: Box<dyn Processor>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
}

impl Recording {
    /// Opens (appending, creating) the recording file.
    pub fn new(inner: Box<dyn Processor>, path: &std::path::Path) -> std::io::Result<Recording> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Recording {
            inner,
            file: Some(std::io::BufWriter::new(file)),
            path: path.to_owned(),
        })
    }
}

impl Processor for Recording {
    fn process(&mut self, event: &Event, out: &mut Vec<String>) {
        if let Some(file) = &mut self.file {
            use std::io::Write;
            let written = file
                .write_all(event.to_json_line().as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.flush());
            if let Err(error) = written {
                tracing::error!(path = %self.path.display(), %error, "Cannot write the event recording; recording stops.");
                self.file = None;
            }
        }
        self.inner.process(event, out);
    }
}

/// Counters shared by the pipeline's stages, for the heartbeat and for tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the engine received.
    pub events: AtomicU64,
    /// Output lines handed to the sinks.
    pub lines: AtomicU64,
    /// Output lines dropped because the sink queue was full.
    pub lines_dropped: AtomicU64,
}

/// Runs the engine loop on the calling thread until `shutdown` is set and the event queue is
/// drained (or all senders are gone). Assigns `evt.num`.
pub fn run_engine(
    events: Receiver<Event>,
    mut processor: Box<dyn Processor>,
    lines: mpsc::Sender<String>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let mut next_num: u64 = 1;
    let mut out = Vec::new();
    let mut unreported_drops: u64 = 0;
    let mut last_drop_report = Instant::now();
    loop {
        let mut event = match events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                if shutdown.load(Ordering::Relaxed) {
                    // Collectors stop on the same flag; whatever they queued before stopping
                    // is still drained below on the next iterations until the queue is empty.
                    match events.try_recv() {
                        Ok(event) => event,
                        Err(_) => break,
                    }
                } else {
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        event.evt.num = next_num;
        next_num += 1;
        counters.events.fetch_add(1, Ordering::Relaxed);
        out.clear();
        processor.process(&event, &mut out);
        if unreported_drops > 0 && last_drop_report.elapsed() >= Duration::from_secs(1) {
            let mut report = Event::new(EventType::Tasksentry, Collector::Monitor);
            report.evt.num = next_num;
            next_num += 1;
            report.internal = Some(Box::new(Internal {
                kind: "outputs_dropped".to_owned(),
                message: format!(
                    "{unreported_drops} output lines were dropped because the output queue was full"
                ),
                count: Some(unreported_drops),
            }));
            processor.process(&report, &mut out);
            unreported_drops = 0;
            last_drop_report = Instant::now();
        }
        for line in out.drain(..) {
            match lines.try_send(line) {
                Ok(()) => {
                    counters.lines.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.lines_dropped.fetch_add(1, Ordering::Relaxed);
                    unreported_drops += 1;
                }
            }
        }
    }
}

/// Writes lines to stdout, flushing whenever the queue is momentarily empty so that a reader
/// sees each line promptly without a syscall per line under load.
pub async fn stdout_sink(mut lines: mpsc::Receiver<String>) -> std::io::Result<()> {
    let mut stdout = tokio::io::BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    while let Some(line) = lines.recv().await {
        stdout.write_all(line.as_bytes()).await?;
        stdout.write_all(b"\n").await?;
        while let Ok(line) = lines.try_recv() {
            stdout.write_all(line.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
        }
        stdout.flush().await?;
    }
    stdout.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn engine_numbers_events_and_reports_dropped_lines() {
        let (event_tx, event_rx) = sync_channel(64);
        let (line_tx, mut line_rx) = mpsc::channel(16);
        let shutdown = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        for _ in 0..40 {
            event_tx
                .send(Event::new(EventType::Execve, Collector::Procscan))
                .expect("queue has room");
        }
        drop(event_tx);
        run_engine(
            event_rx,
            Box::new(EmitEvents),
            line_tx,
            shutdown,
            counters.clone(),
        );
        assert_eq!(counters.events.load(Ordering::Relaxed), 40);
        assert_eq!(
            counters.lines.load(Ordering::Relaxed),
            16,
            "the sink queue holds 16"
        );
        assert_eq!(
            counters.lines_dropped.load(Ordering::Relaxed),
            24,
            "every drop is counted"
        );
        let mut nums = Vec::new();
        while let Ok(line) = line_rx.try_recv() {
            let event: Event = serde_json::from_str(&line).expect("valid event JSON");
            nums.push(event.evt.num);
        }
        assert_eq!(
            nums,
            (1..=16).collect::<Vec<_>>(),
            "evt.num is assigned in order"
        );
    }
}
