//! Alerts: what a rule match becomes before it reaches a sink.
//!
//! [`Alert`] serializes to Falco's JSON alert shape (`time`, `rule`, `priority`, `source`,
//! `hostname`, `output`, `output_fields`, `tags`) plus two TaskSentry objects: `ecs` (task and
//! container context) and `tasksentry` (event type, collector and aggregation counters).
//!
//! A consumer built for Falco (falcosidekick and its outputs) keeps only Falco's keys, so the
//! context that matters for triage is also copied into `output_fields` just before an alert is
//! written ([`Alert::add_context_fields`]): the ECS context under the rule-field names
//! (`ecs.cluster`, `ecs.task_arn`, `ecs.family`, `container.name`, `container.image.digest`,
//! ...; the launch type and container ARN stay in `ecs` only) and the aggregation counters
//! under `tasksentry.alert.*` ([`CONTEXT_FIELDS`]). A value TaskSentry does not know is left
//! out, never written as an empty string.

pub(crate) mod aggregate;
pub mod budget;
pub mod chain;
pub mod redact;

use serde::Serialize;

use std::time::Duration;

use crate::event::{Event, Timestamp};
use crate::priority::Priority;
use crate::rules::Match;

/// How alerts are aggregated, budgeted and redacted (the alert settings of `tasksentry run`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Aggregation window; zero disables aggregation (see [`aggregate`]).
    pub aggregation_window: Duration,
    /// Bound on open aggregation keys.
    pub max_keys: usize,
    /// Rate budgets (see [`budget`]).
    pub budget: budget::BudgetConfig,
    /// Secret redaction (see [`redact`]).
    pub redactor: redact::Redactor,
}

impl Default for AlertSettings {
    fn default() -> AlertSettings {
        AlertSettings {
            aggregation_window: aggregate::DEFAULT_WINDOW,
            max_keys: aggregate::DEFAULT_MAX_KEYS,
            budget: budget::BudgetConfig::default(),
            redactor: redact::Redactor::builtin(),
        }
    }
}

/// ECS context of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AlertEcs {
    /// Cluster ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<String>,
    /// Task ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_arn: Option<String>,
    /// Task id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_id: Option<String>,
    /// Task definition family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Task definition revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) revision: Option<String>,
    /// Availability zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) availability_zone: Option<String>,
    /// Launch type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) launch_type: Option<String>,
    /// Container ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) container_arn: Option<String>,
    /// Container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) container_name: Option<String>,
    /// Container image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    /// Container image digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image_digest: Option<String>,
}

/// The `output_fields` keys [`Alert::add_context_fields`] may add, in this order. The ECS
/// keys are the rule fields of the same name (a rule whose output names one already has it,
/// with the same value); the `tasksentry.alert.*` keys are the aggregation counters of the
/// `tasksentry` object (`tasksentry.count` is not used: it is the rule field that carries an
/// internal report's own count, such as the processes missed).
pub(crate) const CONTEXT_FIELDS: &[&str] = &[
    "ecs.cluster",
    "ecs.task_arn",
    "ecs.task_id",
    "ecs.family",
    "ecs.revision",
    "ecs.availability_zone",
    "container.name",
    "container.image",
    "container.image.digest",
    "tasksentry.alert.count",
    "tasksentry.alert.first_seen",
    "tasksentry.alert.last_seen",
    "tasksentry.alert.summary",
];

impl AlertEcs {
    /// The task-level context of a task document (no container).
    pub fn from_task(task: &crate::ecs::TaskMetadata) -> AlertEcs {
        let mut ecs = AlertEcs::default();
        ecs.fill_task(task);
        ecs
    }

    /// Fills the task-level members that are missing (cluster, task, family, revision, zone,
    /// launch type) from the task document; what is there is kept.
    pub(crate) fn fill_task(&mut self, task: &crate::ecs::TaskMetadata) {
        let context = task.task_context();
        let fill = |slot: &mut Option<String>, value: Option<String>| {
            if slot.is_none() {
                *slot = value.filter(|v| !v.is_empty());
            }
        };
        fill(&mut self.cluster, context.cluster);
        fill(&mut self.task_arn, context.task_arn);
        fill(&mut self.task_id, context.task_id);
        fill(&mut self.family, context.family);
        fill(&mut self.revision, context.revision);
        fill(&mut self.availability_zone, context.availability_zone);
        fill(&mut self.launch_type, context.launch_type);
    }

    /// The context as `output_fields` entries (key, value), known values only.
    pub(crate) fn output_fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("ecs.cluster", &self.cluster),
            ("ecs.task_arn", &self.task_arn),
            ("ecs.task_id", &self.task_id),
            ("ecs.family", &self.family),
            ("ecs.revision", &self.revision),
            ("ecs.availability_zone", &self.availability_zone),
            ("container.name", &self.container_name),
            ("container.image", &self.image),
            ("container.image.digest", &self.image_digest),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().filter(|v| !v.is_empty()).map(|v| (key, v)))
        .collect()
    }
}

/// Adds the context entries to `fields`: the ECS context where the key is missing or `null`
/// (a rule's own value is kept), and the aggregation counters.
pub(crate) fn add_context_fields(
    fields: &mut serde_json::Map<String, serde_json::Value>,
    ecs: &AlertEcs,
    count: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    summary: bool,
) {
    for (key, value) in ecs.output_fields() {
        let slot = fields
            .entry(key.to_owned())
            .or_insert(serde_json::Value::Null);
        if slot.is_null() {
            *slot = serde_json::Value::from(value);
        }
    }
    fields.insert("tasksentry.alert.count".to_owned(), count.into());
    fields.insert(
        "tasksentry.alert.first_seen".to_owned(),
        first_seen.to_string().into(),
    );
    fields.insert(
        "tasksentry.alert.last_seen".to_owned(),
        last_seen.to_string().into(),
    );
    fields.insert("tasksentry.alert.summary".to_owned(), summary.into());
}

/// TaskSentry's own alert context.
///
/// Aggregation counts add up: for one rule and aggregation key, the first alert has
/// `count: 1` and each later summary alert (`summary: true`) has `count` = the number of
/// repeats in its window (not cumulative), so the sum of `count` over the alerts of a rule
/// plus the counts of its `alerts_suppressed` reports is the number of matches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub(crate) struct AlertMeta {
    /// `evt.type` of the (first) event.
    pub(crate) event_type: String,
    /// The collector that observed it.
    pub(crate) collector: String,
    /// How many identical alerts this one stands for (aggregation).
    pub(crate) count: u64,
    /// Time of the first occurrence.
    pub(crate) first_seen: Timestamp,
    /// Time of the last occurrence.
    pub(crate) last_seen: Timestamp,
    /// Whether this alert summarises repeats of an alert already shipped (see
    /// [`aggregate`]); `count` is then the number of repeats in the window.
    pub(crate) summary: bool,
    /// For a summary: up to [`aggregate::MAX_SAMPLES`] distinct values of fields that vary
    /// between repeats (`proc.pid`, `proc.cmdline`, ...), keyed by field name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) samples: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    /// How many secrets were removed from this alert (see [`redact`]).
    pub(crate) redactions: u64,
}

/// One alert, in Falco's JSON shape plus `ecs` and `tasksentry`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Event time (RFC 3339, nanoseconds, UTC).
    pub(crate) time: Timestamp,
    /// Rule name.
    pub(crate) rule: String,
    /// Priority, capitalised long name.
    pub(crate) priority: Priority,
    /// Event source (`syscall`).
    pub(crate) source: String,
    /// Host name of the monitor.
    pub(crate) hostname: String,
    /// `<time>: <Priority> <formatted output>`.
    pub(crate) output: String,
    /// Typed output field values, keys sorted.
    pub(crate) output_fields: serde_json::Map<String, serde_json::Value>,
    /// Rule tags, sorted.
    pub(crate) tags: Vec<String>,
    /// ECS context.
    pub(crate) ecs: AlertEcs,
    /// TaskSentry context.
    pub(crate) tasksentry: AlertMeta,
}

impl Alert {
    /// Copies the ECS context and the aggregation counters into `output_fields` (see the
    /// module documentation and [`CONTEXT_FIELDS`]). Called once, when the alert is written.
    pub(crate) fn add_context_fields(&mut self) {
        add_context_fields(
            &mut self.output_fields,
            &self.ecs,
            self.tasksentry.count,
            self.tasksentry.first_seen,
            self.tasksentry.last_seen,
            self.tasksentry.summary,
        );
    }

    /// Builds an alert from a rule match and the event it matched.
    pub fn from_match(m: &Match<'_>, event: &Event, hostname: &str) -> Alert {
        let time = event.evt.time;
        let mut tags = m.rule.tags.clone();
        tags.sort();
        let container = event.container.as_ref();
        let e = container.and_then(|c| c.ecs.as_ref());
        let ecs = AlertEcs {
            cluster: e.and_then(|e| e.cluster.clone()),
            task_arn: e.and_then(|e| e.task_arn.clone()),
            task_id: e.and_then(|e| e.task_id.clone()),
            family: e.and_then(|e| e.family.clone()),
            revision: e.and_then(|e| e.revision.clone()),
            availability_zone: e.and_then(|e| e.availability_zone.clone()),
            launch_type: e.and_then(|e| e.launch_type.clone()),
            container_arn: e.and_then(|e| e.container_arn.clone()),
            container_name: container.and_then(|c| c.name.clone()),
            image: container.and_then(|c| c.image.clone()),
            image_digest: container.and_then(|c| c.image_digest.clone()),
        };
        Alert {
            time,
            rule: m.rule.name.clone(),
            priority: m.rule.priority,
            source: m.rule.source.clone(),
            hostname: hostname.to_string(),
            output: format!("{time}: {} {}", m.rule.priority, m.output),
            output_fields: m.output_fields.clone(),
            tags,
            ecs,
            tasksentry: AlertMeta {
                event_type: event.evt.evt_type.as_str().to_string(),
                collector: event.evt.collector.as_str().to_string(),
                count: 1,
                first_seen: time,
                last_seen: time,
                ..AlertMeta::default()
            },
        }
    }
}
