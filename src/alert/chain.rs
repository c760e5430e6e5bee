//! The alert chain: what the engine runs in alerts mode. Each event is evaluated against the
//! rules; each match becomes an [`Alert`] and goes through aggregation (repeats become counted
//! summaries), the task's ECS context, the rate budgets (internal alerts are exempt) and
//! redaction, in that order, before it is serialized once into the [`Record`] every output
//! shares. Suppressions become `alerts_suppressed` events that go through the same chain, and a
//! `visibility_degraded` report gets the rules it blinds before the rules see it.

use std::sync::Arc;

use super::aggregate::Aggregator;
use super::budget::{Budget, SuppressionReport};
use super::redact::Redactor;
use super::{Alert, AlertSettings};
use crate::ecs::TaskView;
use crate::engine::{Processor, Record};
use crate::event::{Collector, Event, EventType, Internal, Timestamp};
use crate::rules::RuleSet;

/// Loads a fresh rule set for a reload; an error is the full diagnostic text.
pub(crate) type Reloader = Box<dyn FnMut() -> Result<RuleSet, String> + Send>;

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
    quiet: bool,
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
            quiet: false,
        }
    }

    /// Sets how [`Processor::reload`] loads new rules.
    pub fn with_reloader(mut self, reloader: Reloader) -> EmitAlerts {
        self.reloader = Some(reloader);
        self
    }

    /// Sets where alerts get the task's ECS context when their event has none (the monitor's
    /// own reports, which belong to no container): the latest task document.
    pub(crate) fn with_task_view(mut self, task: Option<TaskView>) -> EmitAlerts {
        self.task = task;
        self
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
                    time: alert.time,
                    priority: Some(alert.priority),
                    internal,
                    line: Arc::from(line),
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
pub(crate) fn suppression_event(report: &SuppressionReport) -> Event {
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
pub(crate) fn with_blinded_rules(event: &Event, ruleset: &RuleSet) -> Option<Event> {
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
pub(crate) const MAX_BLINDED_RULES: usize = 40;

impl Processor for EmitAlerts {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        if crate::profile::snapshot::is_snapshot(event)
            || crate::image::report::is_data_record(event)
        {
            // A learnt profile is data for `profile build`, an image's SBOM and pass summary
            // data for inventories, not rule matches: printed whole (as `--emit events`
            // would), on every output.
            out.push(Record {
                time: event.evt.time,
                priority: None,
                internal: true,
                line: Arc::from(self.redactor.event_line(event)),
            });
            return;
        }
        if self.quiet && event.evt_type() != EventType::Tasksentry {
            // Learning with `learn_suppress`: rule alerts stay quiet.
            self.clock = self.clock.max(event.evt.time);
            self.aggregator.advance(event.evt.time, &mut self.alerts);
            self.ship(out);
            return;
        }
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
        // What an alert shows of the event comes from a copy whose command lines and
        // environment are redacted as command lines (a flag and its value are two arguments).
        let redacted = if matches.is_empty() {
            None
        } else {
            self.redactor.redact_event(event)
        };
        let shown = redacted.as_ref().unwrap_or(event);
        for matched in &matches {
            let rendered;
            let matched = if redacted.is_some() {
                rendered = self.ruleset.render_again(matched, shown);
                &rendered
            } else {
                matched
            };
            let mut alert = Alert::from_match(matched, shown, &self.hostname);
            if internal {
                // The monitor's own reports are told apart by `source` (see
                // docs/security-teams.md: `{ $.source = "tasksentry" }`).
                alert.source = "tasksentry".to_owned();
            }
            self.aggregator.observe(alert, shown, &mut self.alerts);
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

    fn idle(&self) -> bool {
        self.alerts.is_empty() && self.aggregator.idle() && self.budget.idle()
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

    fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let task = crate::ecs::TaskMetadata::from_json(include_bytes!(
            "../ecs/testdata/task-fargate.json"
        ))
        .expect("test document");
        let (_enricher, status, _thread) = crate::ecs::enrich::spawn_with_fetch(
            Box::new(move || Ok(task.clone())),
            "test".into(),
            crate::ecs::RefreshPolicy::default(),
        )
        .expect("refresher");
        assert!(status.wait_first_attempt(Duration::from_secs(10)));
        let report = crate::engine::drop_report(7, 1);
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
}
