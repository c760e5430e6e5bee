//! What the engine thread runs, from the settings: every event printed (`emit: events`) or the
//! alert chain over the loaded rules (`emit: alerts`, with reloads), optionally recording every
//! event to a file.

use crate::alert::AlertSettings;
use crate::alert::budget::BudgetConfig;
use crate::alert::chain::EmitAlerts;
use crate::commands::{RuleSelection, default_hostname, load_ruleset_or_fail};
use crate::config::{Config, Emit};
use crate::ecs::EnrichmentStatus;
use crate::engine::{EmitEvents, Processor, Recording};
use crate::event::Timestamp;
use crate::profile::learner::Limits;
use crate::profile::learning::{LearnSettings, Learning};

use super::StartupError;

/// Builds the processor; fails when the rules do not load or the recording file cannot be
/// opened.
pub(super) fn build(
    config: &Config,
    ecs: &EnrichmentStatus,
) -> Result<Box<dyn Processor>, StartupError> {
    let processor: Box<dyn Processor> = match config.emit {
        Emit::Events => Box::new(EmitEvents::new(config.redact_patterns.clone())),
        Emit::Alerts => {
            let selection = RuleSelection {
                files: config.rules.clone(),
                no_default_rules: config.no_default_rules,
                strict: config.strict,
                rule_matching: config.rule_matching,
            };
            let min_priority = config.min_priority;
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
                redactor: config.redact_patterns.clone(),
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
                .with_task_view(ecs.task_view()),
            )
        }
    };
    let processor: Box<dyn Processor> = match &config.record {
        Some(path) => Box::new(
            Recording::new(processor, path, config.redact_patterns.clone()).map_err(|error| {
                StartupError(format!(
                    "invalid setting `record`: cannot open {}: {error}",
                    path.display()
                ))
            })?,
        ),
        None => processor,
    };
    // Learning comes first, so that its snapshots are recorded and printed like any event.
    Ok(match config.learn {
        Some(window) => {
            let start = Timestamp::now();
            tracing::info!(window = ?window, interval = ?config.learn_interval, suppress = config.learn_suppress, "Learning the workload's profile.");
            Box::new(
                Learning::new(
                    processor,
                    LearnSettings {
                        window,
                        interval: config.learn_interval,
                        suppress: config.learn_suppress,
                        limits: Limits::default(),
                    },
                    start,
                    format!("{:x}-{}", start.0, std::process::id()),
                )
                .with_task_view(ecs.task_view()),
            )
        }
        None => processor,
    })
}
