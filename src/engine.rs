//! The engine: the thread between the collectors and the outputs.
//!
//! ```text
//! collectors --(sync_channel<Event>)--> engine thread --(mpsc<Record>, one per output)--> sinks (tokio)
//!                     signal/watch thread --(Control)--^
//! ```
//!
//! The engine thread enriches each event (ECS context), numbers it and hands it to the
//! [`Processor`]: [`EmitEvents`] prints events (`--emit events`), the alert chain
//! ([`crate::alert::chain::EmitAlerts`]: rules, aggregation, rate budgets, redaction) prints
//! alerts, [`Recording`] also appends every event to a file. Every [`Record`] it produces is
//! offered to every [`OutputPort`] whose minimum priority it passes.
//!
//! Nothing upstream ever waits for a sink: the engine hands records to the sinks with
//! `try_send`, and a record that does not fit is counted; the count is reported in a
//! `tasksentry` event as soon as there is room again. Collectors do the same with events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::alert::redact::Redactor;
use crate::event::{Collector, Event, EventType, Internal, Timestamp};
use crate::guard::carry::Reported;
use crate::priority::Priority;
use crate::telemetry::Telemetry;

/// How often the engine ticks the processor (closing aggregation windows, reporting
/// suppressions) even when no events arrive. Aggregation windows and budgets count in
/// seconds, so a fifth of a second is precise enough, and an idle engine wakes 5 times a
/// second rather than 20.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// How long the engine waits for an event when nothing time-driven is pending (every
/// processor and the restart carry-over say [`Processor::idle`]): an idle monitor's engine
/// wakes once a second instead of five times.
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(1);

/// One output record: the typed form every output receives. The line is shared, not copied
/// per output, and carries its time and priority beside it, so that no output parses the JSON
/// it was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When: the alert's time, or the event's (`--emit events`).
    pub(crate) time: Timestamp,
    /// The alert's priority; `None` for lines that are not alerts (`--emit events`).
    pub priority: Option<Priority>,
    /// An alert of TaskSentry's own (`evt.type = tasksentry`: visibility, tamper, reload,
    /// suppression). These pass every output's minimum priority: an output that hides the
    /// monitor's blind spots would give a false sense of coverage.
    pub(crate) internal: bool,
    /// The JSON line (no newline).
    pub line: Arc<str>,
}

impl Record {
    /// The record of an event printed whole (`--emit events`), secrets redacted: not an alert.
    pub fn event(event: &Event, redactor: &Redactor) -> Record {
        Record {
            time: event.evt.time,
            priority: None,
            internal: false,
            line: Arc::from(redactor.event_line(event)),
        }
    }

    /// Whether an output with minimum priority `min` takes this record: the one place where
    /// priorities are filtered for an output.
    pub(crate) fn passes(&self, min: Priority) -> bool {
        self.internal || self.priority.is_none_or(|p| p >= min)
    }
}

/// A request to the engine thread from the signal and watch thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Reload the rules (SIGHUP, or a change in a configured rules file or directory); the
    /// reason is reported in the outcome's internal event.
    Reload {
        /// What asked for the reload.
        reason: String,
    },
}

/// Turns events into output records. In `events` mode the event itself; in `alerts` mode the
/// alerts of the rules it matches, aggregated, budgeted and redacted.
pub trait Processor: Send {
    /// Handles one event; appends the output records to `out`.
    fn process(&mut self, event: &Event, out: &mut Vec<Record>);

    /// Called about every [`TICK`] with the wall-clock time, events or not: time-driven
    /// output (aggregation summaries) goes to `out`.
    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<Record>) {}

    /// Whether [`Processor::tick`] has nothing to do until the next event (no aggregation
    /// window open, no suppression to report): the engine then waits up to [`IDLE_WAIT`]
    /// instead of [`TICK`]. The default says no.
    fn idle(&self) -> bool {
        false
    }

    /// Called once at the end: everything held back goes to `out`.
    fn flush(&mut self, _out: &mut Vec<Record>) {}

    /// Reloads the rules, keeping the old ones if the new ones are invalid. Returns the
    /// internal event that reports the outcome (`rules_reloaded` or `rules_reload_failed`),
    /// which the engine then processes like any event; `None` if there is nothing to reload.
    fn reload(&mut self, _reason: &str) -> Option<Event> {
        None
    }

    /// What this processor adds to an event before it is processed (and recorded): the rules
    /// a visibility report's facets keep from firing (see [`with_blinded_rules`]). `None`:
    /// nothing to add.
    fn annotate(&self, _event: &Event) -> Option<Event> {
        None
    }

    /// Keeps rule alerts quiet (`true`) or lets them out again (`false`): learning with
    /// `learn_suppress`. The monitor's own reports are never quiet. Default: nothing to do.
    fn set_quiet(&mut self, _quiet: bool) {}
}

/// Prints every event (`--emit events`), with secrets redacted as in alerts.
pub struct EmitEvents {
    redactor: Redactor,
}

impl EmitEvents {
    /// Events redacted by `redactor` (the `redact_patterns` setting's).
    pub fn new(redactor: Redactor) -> EmitEvents {
        EmitEvents { redactor }
    }
}

impl Processor for EmitEvents {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        out.push(Record::event(event, &self.redactor));
    }
}

/// Appends every event to a recording file (NDJSON) before handing it to the inner
/// processor. A write error is logged once and recording stops; monitoring goes on.
pub struct Recording {
    inner: Box<dyn Processor>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
    redactor: Redactor,
}

impl Recording {
    /// Opens (appending, creating) the recording file; events are written with secrets
    /// redacted by `redactor`.
    pub fn new(
        inner: Box<dyn Processor>,
        path: &std::path::Path,
        redactor: Redactor,
    ) -> std::io::Result<Recording> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Recording {
            inner,
            file: Some(std::io::BufWriter::new(file)),
            path: path.to_owned(),
            redactor,
        })
    }
}

impl Processor for Recording {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        // Recorded as the rules will see it: a visibility report with the rules it blinds.
        let annotated = self.inner.annotate(event);
        let event = annotated.as_ref().unwrap_or(event);
        if let Some(file) = &mut self.file {
            use std::io::Write;
            let written = file
                .write_all(self.redactor.event_line(event).as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.flush());
            if let Err(error) = written {
                tracing::error!(path = %self.path.display(), %error, "Cannot write the event recording; recording stops.");
                self.file = None;
            }
        }
        self.inner.process(event, out);
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.inner.tick(now, out);
    }

    fn flush(&mut self, out: &mut Vec<Record>) {
        self.inner.flush(out);
    }

    fn reload(&mut self, reason: &str) -> Option<Event> {
        self.inner.reload(reason)
    }

    fn annotate(&self, event: &Event) -> Option<Event> {
        self.inner.annotate(event)
    }

    fn set_quiet(&mut self, quiet: bool) {
        self.inner.set_quiet(quiet);
    }
}

/// One output of the engine: a queue to a sink, and the least severe alert it takes.
#[derive(Debug)]
pub struct OutputPort {
    /// The output's name, for logs (`stdout`, `cloudwatch`).
    pub name: &'static str,
    /// Alerts less severe than this are not sent to this output (internal alerts and
    /// non-alert lines always are; see [`Record::internal`]).
    pub min_priority: Priority,
    /// The sink's queue.
    pub tx: mpsc::Sender<Record>,
}

/// Runs the engine loop on the calling thread until `shutdown` is set and the event queue is
/// drained (or all senders are gone), then flushes the processor. Assigns `evt.num`. Between
/// two events it serves `control` requests (a rules reload swaps the rule set there, so no
/// event is lost or evaluated half by old and half by new rules) and ticks the processor
/// every [`TICK`]. Every record is offered to every output whose filter it passes; a full
/// queue drops the line, counts it, and reports the count as an `outputs_dropped` event.
pub fn run_engine(
    events: Receiver<Event>,
    processor: Box<dyn Processor>,
    outputs: Vec<OutputPort>,
    control: Receiver<Control>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Telemetry>,
) {
    run_engine_enriched(
        events,
        processor,
        outputs,
        control,
        shutdown,
        counters,
        Box::new(|_: &mut Event| {}),
        Reported::new(None, std::collections::HashSet::new()),
    );
}

/// Fills in context an event gets after its collector made it (the ECS task and container
/// metadata, [`crate::ecs::enrich::Enricher`]). Runs on the engine thread for every collector event,
/// before the processor (rules, recording) sees it, so it must never block.
pub(crate) type Enrich = Box<dyn FnMut(&mut Event) + Send>;

/// [`run_engine`] with an enrichment step applied to every event received from a collector
/// before it is numbered and processed, and the restart carry-over ([`Reported`]): an event
/// the previous worker already reported is dropped there, and what this one reports is
/// remembered for its successor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_engine_enriched(
    events: Receiver<Event>,
    mut processor: Box<dyn Processor>,
    outputs: Vec<OutputPort>,
    control: Receiver<Control>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Telemetry>,
    mut enrich: Enrich,
    mut reported: Reported,
) {
    let mut next_num: u64 = 1;
    let mut out = Vec::new();
    let mut unreported_drops: u64 = 0;
    let mut last_drop_report = Instant::now();
    let mut last_tick = Instant::now();
    loop {
        while let Ok(request) = control.try_recv() {
            match request {
                Control::Reload { reason } => {
                    if let Some(mut report) = processor.reload(&reason) {
                        report.evt.num = next_num;
                        next_num += 1;
                        processor.process(&report, &mut out);
                    }
                }
            }
        }
        let wait = if unreported_drops == 0 && processor.idle() && reported.idle() {
            IDLE_WAIT
        } else {
            TICK
        };
        let received = match events.recv_timeout(wait) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => {
                if shutdown.load(Ordering::Relaxed) {
                    // Collectors stop on the same flag; whatever they queued before stopping
                    // is still drained below on the next iterations until the queue is empty.
                    match events.try_recv() {
                        Ok(event) => Some(event),
                        Err(_) => break,
                    }
                } else {
                    None
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(mut event) = received
            && reported.admit(&event)
        {
            enrich(&mut event);
            event.evt.num = next_num;
            next_num += 1;
            counters.events.fetch_add(1, Ordering::Relaxed);
            if let Some(internal) = &event.internal
                && internal.kind == "processes_missed"
            {
                Telemetry::add(&counters.processes_missed, internal.count.unwrap_or(0));
            }
            processor.process(&event, &mut out);
        }
        if last_tick.elapsed() >= TICK {
            processor.tick(Timestamp::now(), &mut out);
            last_tick = Instant::now();
            reported.tick(last_tick);
        }
        if unreported_drops > 0 && last_drop_report.elapsed() >= Duration::from_secs(1) {
            let report = drop_report(unreported_drops, next_num);
            next_num += 1;
            processor.process(&report, &mut out);
            unreported_drops = 0;
            last_drop_report = Instant::now();
        }
        dispatch(&mut out, &outputs, &counters, &mut unreported_drops);
    }
    processor.flush(&mut out);
    if unreported_drops > 0 {
        let report = drop_report(unreported_drops, next_num);
        processor.process(&report, &mut out);
        processor.flush(&mut out);
    }
    dispatch(&mut out, &outputs, &counters, &mut unreported_drops);
    if unreported_drops > 0 {
        tracing::error!(
            lines = unreported_drops,
            "Output lines dropped at shutdown because the output queue was full."
        );
    }
}

pub(crate) fn drop_report(dropped: u64, num: u64) -> Event {
    let mut report = Event::new(EventType::Tasksentry, Collector::Monitor);
    report.evt.num = num;
    report.internal = Some(Box::new(Internal {
        kind: "outputs_dropped".to_owned(),
        message: format!("{dropped} output lines were dropped because the output queue was full"),
        count: Some(dropped),
    }));
    report
}

/// Offers every record to every output whose filter it passes.
fn dispatch(
    out: &mut Vec<Record>,
    outputs: &[OutputPort],
    counters: &Telemetry,
    unreported_drops: &mut u64,
) {
    for record in out.drain(..) {
        for port in outputs {
            if !record.passes(port.min_priority) {
                counters.lines_filtered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match port.tx.try_send(record.clone()) {
                Ok(()) => {
                    counters.lines.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.lines_dropped.fetch_add(1, Ordering::Relaxed);
                    *unreported_drops += 1;
                }
            }
        }
    }
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
        let counters = Arc::new(Telemetry::default());
        for _ in 0..40 {
            event_tx
                .send(Event::new(EventType::Execve, Collector::Procscan))
                .expect("queue has room");
        }
        drop(event_tx);
        let (_control_tx, control_rx) = std::sync::mpsc::channel();
        run_engine(
            event_rx,
            Box::new(EmitEvents::new(Redactor::builtin())),
            vec![OutputPort {
                name: "test",
                min_priority: Priority::Debug,
                tx: line_tx,
            }],
            control_rx,
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
            25,
            "every drop is counted: 24 events, then the final drop report that found no room either"
        );
        let mut nums = Vec::new();
        while let Ok(line) = line_rx.try_recv() {
            let event: Event = serde_json::from_str(&line.line).expect("valid event JSON");
            nums.push(event.evt.num);
        }
        assert_eq!(
            nums,
            (1..=16).collect::<Vec<_>>(),
            "evt.num is assigned in order"
        );
    }

    #[test]
    fn an_output_takes_only_records_at_or_above_its_minimum() {
        // The CloudWatch output at `cloudwatch_min_priority: warning`: of debug, warning,
        // informational and emergency alerts it takes warning and emergency, and counts the
        // two others as filtered (by design, not lost); an internal alert always passes.
        let (line_tx, mut line_rx) = mpsc::channel(16);
        let counters = Telemetry::default();
        let mut out: Vec<Record> = [
            (Priority::Debug, false),
            (Priority::Warning, false),
            (Priority::Informational, false),
            (Priority::Emergency, false),
            (Priority::Debug, true),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, (priority, internal))| Record {
            time: Timestamp(n as u64),
            priority: Some(priority),
            internal,
            line: Arc::from(format!("{{\"n\":{n}}}")),
        })
        .collect();
        let port = OutputPort {
            name: "cloudwatch",
            min_priority: Priority::Warning,
            tx: line_tx,
        };
        let mut unreported = 0;
        dispatch(&mut out, &[port], &counters, &mut unreported);
        let mut taken = Vec::new();
        while let Ok(record) = line_rx.try_recv() {
            taken.push(record.line.to_string());
        }
        assert_eq!(taken, [r#"{"n":1}"#, r#"{"n":3}"#, r#"{"n":4}"#]);
        assert_eq!(counters.lines_filtered.load(Ordering::Relaxed), 2);
        assert_eq!(counters.lines.load(Ordering::Relaxed), 3);
        assert_eq!(unreported, 0);
    }
}
