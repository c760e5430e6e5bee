//! The running monitor: collectors on their own OS threads, the engine on its own thread, sinks
//! on a small tokio runtime, joined by bounded queues.
//!
//! ```text
//! collectors --(sync_channel<Event>)--> engine thread --(mpsc<String>, one per output)--> sinks (tokio)
//!                     signal/watch thread --(Control)--^
//! ```
//!
//! The engine thread runs the [`Processor`]: in alerts mode rules, then aggregation, rate
//! budgets and redaction ([`EmitAlerts`]), so every output gets the same redacted alert; each
//! output then takes the records at or above its own minimum priority ([`OutputPort`]).
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

use crate::alert::aggregate::Aggregator;
use crate::alert::budget::{Budget, SuppressionReport};
use crate::alert::redact::Redactor;
use crate::alert::{Alert, AlertSettings};
use crate::ecs::TaskView;
use crate::event::{Collector, Event, EventType, Internal, Timestamp};
use crate::priority::Priority;
use crate::rules::RuleSet;

/// How often the engine ticks the processor (closing aggregation windows, reporting
/// suppressions) even when no events arrive.
pub const TICK: Duration = Duration::from_millis(50);

/// One output line and what the outputs filter it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The JSON line (no newline).
    pub line: String,
    /// The alert's priority; `None` for lines that are not alerts (`--emit events`).
    pub priority: Option<Priority>,
    /// An alert of TaskSentry's own (`evt.type = tasksentry`: visibility, tamper, reload,
    /// suppression). These pass every output's minimum priority: an output that hides the
    /// monitor's blind spots would give a false sense of coverage.
    pub internal: bool,
}

impl Record {
    /// A line that is not an alert.
    pub fn plain(line: String) -> Record {
        Record {
            line,
            priority: None,
            internal: false,
        }
    }

    /// Whether an output with minimum priority `min` takes this record.
    pub fn passes(&self, min: Priority) -> bool {
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
}

/// Prints every event (`--emit events`).
pub struct EmitEvents;

impl Processor for EmitEvents {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        out.push(Record::plain(event.to_json_line()));
    }
}

/// Loads a fresh rule set for a reload; an error is the full diagnostic text.
pub type Reloader = Box<dyn FnMut() -> Result<RuleSet, String> + Send>;

/// Evaluates every event against the rules and prints the alerts (the default): each match
/// becomes an [`Alert`], goes through aggregation ([`crate::alert::aggregate`]), the rate
/// budgets ([`crate::alert::budget`]; internal alerts are exempt) and redaction
/// ([`crate::alert::redact`]), in that order, before it is serialized once for every output.
pub struct EmitAlerts {
    ruleset: RuleSet,
    hostname: String,
    aggregator: Aggregator,
    budget: Budget,
    redactor: Redactor,
    reloader: Option<Reloader>,
    task: Option<TaskView>,
    clock: Timestamp,
    alerts: Vec<Alert>,
}

impl EmitAlerts {
    /// A processor for `ruleset` with the default alert settings, writing `hostname` into
    /// alerts.
    pub fn new(ruleset: RuleSet, hostname: String) -> EmitAlerts {
        EmitAlerts::with_settings(ruleset, hostname, AlertSettings::default())
    }

    /// A processor with explicit alert settings.
    pub fn with_settings(
        ruleset: RuleSet,
        hostname: String,
        settings: AlertSettings,
    ) -> EmitAlerts {
        EmitAlerts {
            ruleset,
            hostname,
            aggregator: Aggregator::new(settings.aggregation_window, settings.max_keys),
            budget: Budget::new(settings.budget),
            redactor: settings.redactor,
            reloader: None,
            task: None,
            clock: Timestamp(0),
            alerts: Vec::new(),
        }
    }

    /// Sets how [`Processor::reload`] loads new rules.
    pub fn with_reloader(mut self, reloader: Reloader) -> EmitAlerts {
        self.reloader = Some(reloader);
        self
    }

    /// Sets where alerts get the task's ECS context when their event has none (the monitor's
    /// own reports, which belong to no container): the latest task document.
    pub fn with_task_view(mut self, task: Option<TaskView>) -> EmitAlerts {
        self.task = task;
        self
    }

    /// What the aggregator did so far.
    pub fn aggregate_stats(&self) -> crate::alert::aggregate::AggregateStats {
        self.aggregator.stats()
    }

    /// Budget, context, redaction and serialization of the alerts the aggregator released.
    /// Every alert gets the task's ECS context (when known) and carries its context and
    /// aggregation counters in `output_fields` too ([`Alert::add_context_fields`]).
    fn ship(&mut self, out: &mut Vec<Record>) {
        let mut alerts = std::mem::take(&mut self.alerts);
        for mut alert in alerts.drain(..) {
            let internal = alert.tasksentry.event_type == EventType::Tasksentry.as_str();
            if !internal
                && !self
                    .budget
                    .admit(&alert.rule, alert.tasksentry.count, alert.time)
            {
                continue;
            }
            if let Some(task) = self.task.as_mut().and_then(TaskView::current) {
                alert.ecs.fill_task(task);
            }
            alert.add_context_fields();
            self.redactor.redact_alert(&mut alert);
            match serde_json::to_string(&alert) {
                Ok(line) => out.push(Record {
                    line,
                    priority: Some(alert.priority),
                    internal,
                }),
                Err(error) => {
                    tracing::error!(rule = %alert.rule, %error, "Cannot serialize an alert.")
                }
            }
        }
        self.alerts = alerts;
    }

    /// Turns suppression reports into `alerts_suppressed` events and processes them.
    fn report_suppressions(&mut self, reports: Vec<SuppressionReport>, out: &mut Vec<Record>) {
        for report in reports {
            let event = suppression_event(&report);
            self.process(&event, out);
        }
    }
}

/// The internal event that reports suppressed alerts of one rule.
pub fn suppression_event(report: &SuppressionReport) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.time = report.last;
    event.evt.args = vec![
        ("rule".to_owned(), report.rule.clone()),
        ("alerts".to_owned(), report.alerts.to_string()),
        ("first_seen".to_owned(), report.first.to_string()),
        ("last_seen".to_owned(), report.last.to_string()),
    ];
    event.internal = Some(Box::new(Internal {
        kind: "alerts_suppressed".to_owned(),
        message: format!(
            "TaskSentry suppressed {} alerts ({} occurrences) of rule {} between {} and {}: rate budget exceeded",
            report.alerts, report.occurrences, report.rule, report.first, report.last
        ),
        count: Some(report.occurrences),
    }));
    event
}

/// The rules a `visibility_degraded` report's facets keep from firing, added to it as the
/// `rules` argument (at most [`MAX_BLINDED_RULES`] names, then a count); `None` for any other
/// event, or one that has the argument already (a replayed recording).
pub fn with_blinded_rules(event: &Event, ruleset: &RuleSet) -> Option<Event> {
    let internal = event.internal.as_ref()?;
    if internal.kind != crate::collect::visibility::KIND
        || event.evt.args.iter().any(|(k, _)| k == "rules")
    {
        return None;
    }
    let facets = event
        .evt
        .args
        .iter()
        .find(|(k, _)| k == "unreadable")
        .map(|(_, v)| v.split(',').map(str::trim).collect::<Vec<_>>())
        .unwrap_or_default();
    let names = ruleset.rules_blinded_by(&facets);
    let mut text = names
        .iter()
        .take(MAX_BLINDED_RULES)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_BLINDED_RULES {
        text.push_str(&format!(" and {} more", names.len() - MAX_BLINDED_RULES));
    }
    if text.is_empty() {
        text.push_str("(none)");
    }
    let mut event = event.clone();
    event.evt.args.push(("rules".to_owned(), text));
    Some(event)
}

/// Most rule names a visibility report lists.
pub const MAX_BLINDED_RULES: usize = 40;

impl Processor for EmitAlerts {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        let blinded = with_blinded_rules(event, &self.ruleset);
        let event = blinded.as_ref().unwrap_or(event);
        self.clock = self.clock.max(event.evt.time);
        let mut matches = Vec::new();
        self.ruleset.evaluate(event, &mut matches);
        if matches.is_empty() {
            // Time moves on even without a match: windows that ended are closed.
            self.aggregator.advance(event.evt.time, &mut self.alerts);
        }
        let internal = event.evt_type() == EventType::Tasksentry;
        for matched in &matches {
            let mut alert = Alert::from_match(matched, event, &self.hostname);
            if internal {
                // The monitor's own reports are told apart by `source` (see
                // docs/security-teams.md: `{ $.source = "tasksentry" }`).
                alert.source = "tasksentry".to_owned();
            }
            self.aggregator.observe(alert, event, &mut self.alerts);
        }
        drop(matches);
        self.ship(out);
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.clock = self.clock.max(now);
        self.aggregator.advance(now, &mut self.alerts);
        self.ship(out);
        let reports = self.budget.take_reports(now, false);
        self.report_suppressions(reports, out);
    }

    fn flush(&mut self, out: &mut Vec<Record>) {
        self.aggregator.flush(&mut self.alerts);
        self.ship(out);
        let reports = self.budget.take_reports(self.clock, true);
        self.report_suppressions(reports, out);
        // A suppression report may itself have been a repeat held by the aggregator.
        self.aggregator.flush(&mut self.alerts);
        self.ship(out);
    }

    fn annotate(&self, event: &Event) -> Option<Event> {
        with_blinded_rules(event, &self.ruleset)
    }

    fn reload(&mut self, reason: &str) -> Option<Event> {
        let reloader = self.reloader.as_mut()?;
        let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
        event.evt.args = vec![("reason".to_owned(), reason.to_owned())];
        match reloader() {
            Ok(ruleset) => {
                let counts = ruleset.counts();
                tracing::info!(
                    reason,
                    rules = counts.compiled,
                    enabled = counts.enabled,
                    "Rules reloaded."
                );
                self.ruleset = ruleset;
                event.internal = Some(Box::new(Internal {
                    kind: "rules_reloaded".to_owned(),
                    message: format!(
                        "rules reloaded ({reason}): {} rules, {} enabled, {} skipped",
                        counts.compiled, counts.enabled, counts.skipped
                    ),
                    count: Some(counts.enabled as u64),
                }));
            }
            Err(errors) => {
                tracing::error!(reason, errors = %errors, "Rules reload rejected; the previous rules stay in force.");
                event.internal = Some(Box::new(Internal {
                    kind: "rules_reload_failed".to_owned(),
                    message: format!(
                        "rules reload ({reason}) rejected, the previous rules stay in force: {errors}"
                    ),
                    count: None,
                }));
            }
        }
        Some(event)
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
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        // Recorded as the rules will see it: a visibility report with the rules it blinds.
        let annotated = self.inner.annotate(event);
        let event = annotated.as_ref().unwrap_or(event);
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
    /// Output lines an output did not take because of its minimum priority (by design, not
    /// a loss).
    pub lines_filtered: AtomicU64,
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
    pub tx: mpsc::Sender<String>,
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
    counters: Arc<Counters>,
) {
    run_engine_enriched(
        events,
        processor,
        outputs,
        control,
        shutdown,
        counters,
        Box::new(|_: &mut Event| {}),
    );
}

/// Fills in context an event gets after its collector made it (the ECS task and container
/// metadata, [`crate::ecs::Enricher`]). Runs on the engine thread for every collector event,
/// before the processor (rules, recording) sees it, so it must never block.
pub type Enrich = Box<dyn FnMut(&mut Event) + Send>;

/// [`run_engine`] with an enrichment step applied to every event received from a collector
/// before it is numbered and processed.
pub fn run_engine_enriched(
    events: Receiver<Event>,
    mut processor: Box<dyn Processor>,
    outputs: Vec<OutputPort>,
    control: Receiver<Control>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Counters>,
    mut enrich: Enrich,
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
        let received = match events.recv_timeout(TICK) {
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
        if let Some(mut event) = received {
            enrich(&mut event);
            event.evt.num = next_num;
            next_num += 1;
            counters.events.fetch_add(1, Ordering::Relaxed);
            processor.process(&event, &mut out);
        }
        if last_tick.elapsed() >= TICK {
            processor.tick(Timestamp::now(), &mut out);
            last_tick = Instant::now();
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

fn drop_report(dropped: u64, num: u64) -> Event {
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
    counters: &Counters,
    unreported_drops: &mut u64,
) {
    for record in out.drain(..) {
        for port in outputs {
            if !record.passes(port.min_priority) {
                counters.lines_filtered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match port.tx.try_send(record.line.clone()) {
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

    fn internal_rules() -> RuleSet {
        let sources: Vec<_> = crate::rules::defaults::default_sources()
            .into_iter()
            .filter(|s| s.name.contains("internal"))
            .collect();
        crate::rules::load(&sources, &crate::rules::LoadOptions::default())
            .ruleset
            .expect("the internal rules load")
    }

    #[test]
    fn alerts_of_events_without_a_container_get_the_task_context_in_ecs_and_output_fields() {
        let task =
            crate::ecs::TaskMetadata::from_json(include_bytes!("ecs/testdata/task-fargate.json"))
                .expect("test document");
        let (_enricher, status, _thread) = crate::ecs::enrich::spawn_with_fetch(
            Box::new(move || Ok(task.clone())),
            "test".into(),
            crate::ecs::RefreshPolicy::default(),
        )
        .expect("refresher");
        assert!(status.wait_first_attempt(Duration::from_secs(10)));
        let report = drop_report(7, 1);
        let mut out = Vec::new();
        let mut local = EmitAlerts::new(internal_rules(), "h".into());
        local.process(&report, &mut out);
        let mut in_ecs =
            EmitAlerts::new(internal_rules(), "h".into()).with_task_view(status.task_view());
        in_ecs.process(&report, &mut out);
        let [local, in_ecs]: [serde_json::Value; 2] = out
            .iter()
            .map(|r| serde_json::from_str(&r.line).expect("JSON"))
            .collect::<Vec<_>>()
            .try_into()
            .expect("one alert each");
        assert_eq!(local["rule"], "TaskSentry dropped output lines");
        assert_eq!(local["ecs"], serde_json::json!({}));
        let local_fields = local["output_fields"].as_object().expect("fields");
        assert!(
            local_fields.keys().all(|k| !k.starts_with("ecs.")),
            "no task, no ECS keys: {local}"
        );
        assert_eq!(
            local_fields["tasksentry.count"], 7,
            "the report's own count"
        );
        assert_eq!(local_fields["tasksentry.alert.count"], 1);
        assert_eq!(local_fields["tasksentry.alert.summary"], false);
        let cluster = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod";
        assert_eq!(in_ecs["ecs"]["cluster"], cluster);
        assert_eq!(in_ecs["ecs"]["family"], "orders-api-with-runtime-monitor");
        assert_eq!(in_ecs["output_fields"]["ecs.cluster"], cluster);
        assert_eq!(
            in_ecs["output_fields"]["ecs.family"],
            "orders-api-with-runtime-monitor"
        );
        assert_eq!(
            in_ecs["output_fields"]["ecs.task_id"],
            "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c"
        );
        assert!(
            in_ecs["output_fields"].get("container.name").is_none(),
            "no container: its keys are absent, not empty"
        );
    }

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
        let (_control_tx, control_rx) = std::sync::mpsc::channel();
        run_engine(
            event_rx,
            Box::new(EmitEvents),
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
