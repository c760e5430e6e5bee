//! The shipped deployment artefacts checked by their links, the way a reviewer applying them for
//! the first time would find them broken: what each one names must exist where it points.
//!
//! - **Alarms ↔ metrics.** Every alarm of both templates (metric alarms and metric-math alarms,
//!   for every value of their conditions) names a metric that something really publishes: the
//!   heartbeat, as the real sink delivered it to a moto server and GetLogEvents read it back
//!   (namespace, metric names, the exact dimension set and, from the ECS task metadata, the
//!   dimension values); a metric filter of the template (namespace, name, dimensions); or the
//!   one AWS metric the templates use, Container Insights' `RunningTaskCount`. Metric-math
//!   expressions use only the ids they define.
//! - **Dashboard ↔ metrics and logs.** Its body is valid JSON once `!Sub` is resolved, has the
//!   dashboard shape, names only metrics as above, and its Logs Insights queries read the alert
//!   log group.
//! - **Topic ↔ key.** The alarm topic is encrypted with a customer-managed key whose policy lets
//!   CloudWatch alarms use it; every alarm notifies that topic.
//! - **Task definitions ↔ log groups ↔ templates ↔ policies.** Every `awslogs-group` is created
//!   by a template (with retention) for the parameters shipped for that task definition, the
//!   sidecar writes to the group the alerting stack creates, and the roles name those groups.
//! - **Task role ↔ sink.** The policy allows exactly the CloudWatch Logs calls the sink cannot
//!   do without; the sink's list of calls is checked against its code and against the requests
//!   a proxy saw, and the sink is shown to deliver when `CreateLogGroup` is refused.
//! - **Reservations ↔ benchmarks.** The sidecar's cpu/memory follow from the figures in
//!   `docs/benchmarks.md` by the arithmetic `docs/platform-engineers.md` explains.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use support::cfn::{Pseudo, Resolver, Template};
use support::cloudwatch::{
    Fault, FaultProxy, Moto, Plan, alert_message, client, now_ms, read_stream,
};
use tasksentry::ecs::metadata::TaskMetadata;
use tasksentry::priority::Priority;
use tasksentry::sink::cloudwatch::client::API_CALLS;
use tasksentry::sink::cloudwatch::emf::validate_emf;
use tasksentry::sink::cloudwatch::{CloudWatchSettings, CloudWatchSink, Record};

/// What ECS gives the sidecar (the task metadata endpoint v4 on Fargate).
const TASK_DOC: &str = include_str!("../src/ecs/testdata/task-fargate.json");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

const ALERTING: &str = "task-definitions/cloudformation/tasksentry-alerting.yaml";
const SERVICE: &str = "task-definitions/cloudformation/tasksentry-service-monitoring.yaml";
const PARAMETERS_DIR: &str = "task-definitions/cloudformation/parameters";

fn alerting() -> Template {
    Template::load(&read(ALERTING)).unwrap()
}

fn service() -> Template {
    Template::load(&read(SERVICE)).unwrap()
}

/// The task definitions shipped: (file, JSON).
fn task_definitions() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("task-definitions")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let value = load_json(&path);
            if value.get("containerDefinitions").is_some() {
                out.push((path, value));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "the web and worker examples");
    out
}

/// The parameter files shipped for the service template: (file, key → value).
fn parameter_files() -> Vec<(PathBuf, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join(PARAMETERS_DIR)).unwrap() {
        let path = entry.unwrap().path();
        let value = load_json(&path);
        let values = value
            .as_array()
            .unwrap_or_else(|| panic!("{}: a list of parameters", path.display()))
            .iter()
            .map(|p| {
                (
                    p["ParameterKey"].as_str().unwrap().to_owned(),
                    p["ParameterValue"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.push((path, values));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn pairs(values: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn resolved_properties(template: &Template, resolver: &Resolver, name: &str) -> Value {
    let resource = template
        .resource(name)
        .unwrap_or_else(|| panic!("resource {name}"));
    resolver
        .resolve(resource.get("Properties").unwrap())
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

// ------------------------------------------------------------------------------------------
// The heartbeat as the real sink delivers it.
// ------------------------------------------------------------------------------------------

/// A heartbeat record read back from CloudWatch Logs (moto), and what it publishes.
struct Heartbeat {
    namespace: String,
    dimension_sets: Vec<BTreeSet<String>>,
    /// Metric name → unit.
    metrics: BTreeMap<String, String>,
    record: Value,
    /// The sink's heartbeat interval (what one heartbeat per task per period relies on).
    interval: Duration,
}

/// Runs the real CloudWatch sink, configured from the ECS task metadata document the way
/// `tasksentry run` configures it, against a moto server; reads the first heartbeat back with
/// GetLogEvents.
fn real_heartbeat() -> Heartbeat {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let interval = CloudWatchSettings::new("defaults").heartbeat_interval;
    runtime.block_on(async {
        let moto = Moto::start();
        let group = "/security/tasksentry/alerts";
        let stream = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c";
        let task = TaskMetadata::from_json(TASK_DOC.as_bytes()).unwrap();
        let mut settings = support::cloudwatch::settings(&moto.url(), group);
        settings.apply_task_context(&task.task_context());
        settings.heartbeat_interval = Duration::from_millis(200);
        let visibility = &settings.telemetry.visibility;
        visibility.checked.store(4, Ordering::Relaxed);
        visibility.degraded.store(1, Ordering::Relaxed);
        visibility.known.store(true, Ordering::Relaxed);
        let (handle, tx) = CloudWatchSink::start(settings, stream.to_owned())
            .await
            .unwrap();
        assert!(
            support::cloudwatch::wait_for(Duration::from_secs(30), || handle.stats().heartbeats
                >= 1)
            .await
        );
        drop(tx);
        let report = handle.shutdown(Duration::from_secs(30)).await;
        assert_eq!(report.undelivered, 0, "{report:?}");
        let cw = client(&moto.url()).await;
        let events = read_stream(&cw, group, stream).await;
        let message = events
            .iter()
            .map(|(_, m)| m)
            .find(|m| m.contains("\"_aws\""))
            .unwrap_or_else(|| panic!("no heartbeat in {events:?}"))
            .clone();
        validate_emf(&message).unwrap();
        let record: Value = serde_json::from_str(&message).unwrap();
        let directives = record["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "one metric directive");
        let directive = &directives[0];
        let dimension_sets = directive["Dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|set| {
                set.as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect();
        let metrics = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap().to_owned(),
                    m["Unit"].as_str().unwrap_or("None").to_owned(),
                )
            })
            .collect();
        Heartbeat {
            namespace: directive["Namespace"].as_str().unwrap().to_owned(),
            dimension_sets,
            metrics,
            record,
            interval,
        }
    })
}

#[test]
fn the_real_heartbeat_carries_visibility_and_the_task_metadata_dimensions() {
    let heartbeat = real_heartbeat();
    let task: Value = serde_json::from_str(TASK_DOC).unwrap();
    assert_eq!(heartbeat.record["cluster"], task["Cluster"]);
    assert_eq!(heartbeat.record["task_family"], task["Family"]);
    assert_eq!(
        heartbeat.dimension_sets,
        vec![BTreeSet::from([
            "cluster".to_owned(),
            "task_family".to_owned()
        ])]
    );
    assert_eq!(heartbeat.metrics["VisibilityPercent"], "Percent");
    assert_eq!(heartbeat.metrics["ContainersDegraded"], "Count");
    assert_eq!(
        heartbeat.record["VisibilityPercent"], 75.0,
        "4 checked, 1 degraded"
    );
    assert_eq!(heartbeat.record["ContainersDegraded"], 1);
    assert_eq!(heartbeat.record["Heartbeat"], 1);
    assert_eq!(heartbeat.interval, Duration::from_secs(60));
}

// ------------------------------------------------------------------------------------------
// What can be named: the heartbeat, the metric filters, and the AWS metrics the templates use.
// ------------------------------------------------------------------------------------------

/// AWS-published metrics the templates may use: (namespace, metric, dimension set).
/// Source: Amazon CloudWatch User Guide, "Amazon ECS Container Insights metrics"
/// (awsdocs/amazon-cloudwatch-user-guide doc_source/Container-Insights-metrics-ECS.md):
/// `RunningTaskCount`, dimensions `ServiceName, ClusterName`, in `ECS/ContainerInsights`.
const AWS_METRICS: &[(&str, &str, &[&str])] = &[(
    "ECS/ContainerInsights",
    "RunningTaskCount",
    &["ClusterName", "ServiceName"],
)];

/// One metric something publishes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    namespace: String,
    name: String,
    dimensions: BTreeSet<String>,
    source: String,
}

struct Catalogue {
    published: Vec<Published>,
    /// The heartbeat's dimension values (to compare alarms resolved for the same task).
    heartbeat_values: BTreeMap<String, String>,
    heartbeat_namespace: String,
}

fn catalogue(heartbeat: &Heartbeat, alerting: &Template, resolver: &Resolver) -> Catalogue {
    let mut published = Vec::new();
    for set in &heartbeat.dimension_sets {
        for name in heartbeat.metrics.keys() {
            published.push(Published {
                namespace: heartbeat.namespace.clone(),
                name: name.clone(),
                dimensions: set.clone(),
                source: "heartbeat (EMF)".into(),
            });
        }
    }
    for (filter, _) in alerting.resources_of("AWS::Logs::MetricFilter") {
        let properties = resolved_properties(alerting, resolver, filter);
        for transformation in properties["MetricTransformations"].as_array().unwrap() {
            published.push(Published {
                namespace: text(&transformation["MetricNamespace"]),
                name: text(&transformation["MetricName"]),
                dimensions: transformation["Dimensions"]
                    .as_object()
                    .map(|d| d.keys().cloned().collect())
                    .unwrap_or_default(),
                source: format!("metric filter {filter}"),
            });
        }
    }
    for (namespace, name, dimensions) in AWS_METRICS {
        published.push(Published {
            namespace: (*namespace).into(),
            name: (*name).into(),
            dimensions: dimensions.iter().map(|d| (*d).to_owned()).collect(),
            source: "AWS".into(),
        });
    }
    let mut heartbeat_values = BTreeMap::new();
    for set in &heartbeat.dimension_sets {
        for key in set {
            heartbeat_values.insert(key.clone(), text(&heartbeat.record[key]));
        }
    }
    Catalogue {
        published,
        heartbeat_values,
        heartbeat_namespace: heartbeat.namespace.clone(),
    }
}

/// A metric an alarm reads.
#[derive(Debug)]
struct AlarmMetric {
    id: String,
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
    stat: String,
    period: u64,
}

/// The metrics of a resolved alarm, and its math expressions (id, expression, returns data).
fn alarm_metrics(properties: &Value) -> (Vec<AlarmMetric>, Vec<(String, String, bool)>) {
    let dims = |value: &Value| -> BTreeMap<String, String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| (text(&d["Name"]), text(&d["Value"])))
            .collect()
    };
    let mut metrics = Vec::new();
    let mut expressions = Vec::new();
    if let Some(queries) = properties["Metrics"].as_array() {
        for query in queries {
            let id = text(&query["Id"]);
            let returns = text(&query["ReturnData"]) == "true";
            if let Some(expression) = query.get("Expression") {
                expressions.push((id, text(expression), returns));
            } else {
                let stat = &query["MetricStat"];
                let metric = &stat["Metric"];
                metrics.push(AlarmMetric {
                    id: id.clone(),
                    namespace: text(&metric["Namespace"]),
                    name: text(&metric["MetricName"]),
                    dimensions: dims(&metric["Dimensions"]),
                    stat: text(&stat["Stat"]),
                    period: text(&stat["Period"]).parse().unwrap_or(0),
                });
                if returns {
                    expressions.push((id, String::new(), true));
                }
            }
        }
    } else {
        metrics.push(AlarmMetric {
            id: String::new(),
            namespace: text(&properties["Namespace"]),
            name: text(&properties["MetricName"]),
            dimensions: dims(&properties["Dimensions"]),
            stat: text(&properties["Statistic"]),
            period: text(&properties["Period"]).parse().unwrap_or(0),
        });
    }
    (metrics, expressions)
}

/// Metric-math functions an alarm expression may call (CloudWatch User Guide, "Metric math
/// syntax and functions"); the ones documented as unfit for alarms are not listed.
const MATH_FUNCTIONS: &[&str] = &[
    "ABS", "CEIL", "FILL", "FLOOR", "IF", "LOG", "LOG10", "MAX", "MIN", "SUM", "REPEAT", "AND",
    "OR",
];

/// Identifiers an expression uses: (lower-case ids, upper-case function names).
fn expression_names(expression: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ids = BTreeSet::new();
    let mut functions = BTreeSet::new();
    let mut word = String::new();
    for c in expression.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if let Some(first) = word.chars().next() {
            if first.is_ascii_lowercase() {
                ids.insert(word.clone());
            } else if first.is_ascii_uppercase() {
                functions.insert(word.clone());
            }
        }
        word.clear();
    }
    (ids, functions)
}

/// Every problem with the alarms of a resolved template: metrics nobody publishes, dimension
/// sets that do not match exactly, expressions using undefined ids.
fn alarm_problems(
    template: &Template,
    resolver: &Resolver,
    catalogue: &Catalogue,
    compare_heartbeat_values: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (alarm, _) in template.resources_of("AWS::CloudWatch::Alarm") {
        let properties = resolved_properties(template, resolver, alarm);
        let (metrics, expressions) = alarm_metrics(&properties);
        if metrics.is_empty() {
            problems.push(format!("{alarm}: no metric"));
        }
        for metric in &metrics {
            let dimension_names: BTreeSet<String> = metric.dimensions.keys().cloned().collect();
            let same_name: Vec<&Published> = catalogue
                .published
                .iter()
                .filter(|p| p.namespace == metric.namespace && p.name == metric.name)
                .collect();
            if same_name.is_empty() {
                problems.push(format!(
                    "{alarm}: nothing publishes {}/{}",
                    metric.namespace, metric.name
                ));
                continue;
            }
            if !same_name.iter().any(|p| p.dimensions == dimension_names) {
                problems.push(format!(
                    "{alarm}: {}/{} with dimensions {dimension_names:?}, but {} publishes it with {:?} (CloudWatch matches dimension sets exactly)",
                    metric.namespace,
                    metric.name,
                    same_name[0].source,
                    same_name.iter().map(|p| &p.dimensions).collect::<Vec<_>>()
                ));
            }
            if compare_heartbeat_values && metric.namespace == catalogue.heartbeat_namespace {
                for (key, value) in &metric.dimensions {
                    let published = catalogue.heartbeat_values.get(key);
                    if published != Some(value) {
                        problems.push(format!(
                            "{alarm}: dimension {key} = {value:?}, the heartbeat of that task says {published:?}"
                        ));
                    }
                }
            }
            if metric.period == 0 || metric.stat.is_empty() {
                problems.push(format!(
                    "{alarm}: {} needs a period and a statistic",
                    metric.name
                ));
            }
        }
        let defined: BTreeSet<String> = metrics
            .iter()
            .map(|m| m.id.clone())
            .chain(expressions.iter().map(|(id, _, _)| id.clone()))
            .collect();
        for (id, expression, _) in &expressions {
            let (ids, functions) = expression_names(expression);
            for used in ids {
                if !defined.contains(&used) || used == *id {
                    problems.push(format!(
                        "{alarm}: expression {id} = {expression:?} uses undefined id {used}"
                    ));
                }
            }
            for function in functions {
                if !MATH_FUNCTIONS.contains(&function.as_str()) {
                    problems.push(format!(
                        "{alarm}: expression {id} calls {function}, not a metric-math function fit for alarms"
                    ));
                }
            }
        }
        if properties.get("Metrics").is_some() {
            let returning = expressions.iter().filter(|(_, _, r)| *r).count();
            if returning != 1 {
                problems.push(format!(
                    "{alarm}: {returning} queries return data; an alarm needs exactly one"
                ));
            }
        }
    }
    problems
}

/// The service template's parameters for the task the metadata document describes, as an
/// operator would fill them in: the cluster's *name*, the family, and the account and Region
/// of the ARN.
fn service_parameters_for_task(expected: &str) -> (Vec<(String, String)>, Pseudo) {
    let task: Value = serde_json::from_str(TASK_DOC).unwrap();
    let cluster_arn = task["Cluster"].as_str().unwrap();
    let parts: Vec<&str> = cluster_arn.split(':').collect();
    let pseudo = Pseudo {
        partition: parts[1].into(),
        region: parts[3].into(),
        account: parts[4].into(),
        ..Pseudo::default()
    };
    let cluster_name = cluster_arn.rsplit('/').next().unwrap();
    let values = vec![
        ("ClusterName".to_owned(), cluster_name.to_owned()),
        ("TaskFamily".to_owned(), text(&task["Family"])),
        ("ServiceName".to_owned(), "orders-api".to_owned()),
        ("ExpectedTaskCount".to_owned(), expected.to_owned()),
        ("TaskLogGroupName".to_owned(), "/ecs/orders-api".to_owned()),
    ];
    (values, pseudo)
}

fn as_pairs(values: &[(String, String)]) -> Vec<(&str, &str)> {
    values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn every_alarm_reads_a_metric_the_binary_or_a_filter_publishes() {
    let heartbeat = real_heartbeat();
    let alerting = alerting();
    let pseudo = Pseudo::default();
    let alerting_resolver = alerting.resolver(&[], &pseudo).unwrap();
    let catalogue = catalogue(&heartbeat, &alerting, &alerting_resolver);

    // The alerting stack's alarms (metric-filter metrics).
    let problems = alarm_problems(&alerting, &alerting_resolver, &catalogue, false);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(alerting.resources_of("AWS::CloudWatch::Alarm").len() >= 2);

    // The service stack, for the task whose heartbeat was read back, in both modes (running
    // tasks from Container Insights, or a fixed count): dimension names *and* values match.
    let service = service();
    for expected in ["0", "3"] {
        let (values, pseudo) = service_parameters_for_task(expected);
        let resolver = service.resolver(&as_pairs(&values), &pseudo).unwrap();
        let problems = alarm_problems(&service, &resolver, &catalogue, true);
        assert!(
            problems.is_empty(),
            "ExpectedTaskCount {expected}: {problems:#?}"
        );

        // One heartbeat per task per interval: the missing-heartbeat alarm counts samples per
        // period of exactly the heartbeat interval.
        let properties = resolved_properties(&service, &resolver, "HeartbeatMissingAlarm");
        let (metrics, expressions) = alarm_metrics(&properties);
        let beats = metrics.iter().find(|m| m.name == "Heartbeat").unwrap();
        assert_eq!(beats.stat, "SampleCount");
        assert_eq!(beats.period, heartbeat.interval.as_secs());
        assert_eq!(text(&properties["TreatMissingData"]), "breaching");
        let returned: Vec<&String> = expressions
            .iter()
            .filter(|(_, _, r)| *r)
            .map(|(_, e, _)| e)
            .collect();
        let running = if expected == "0" { "running" } else { expected };
        assert_eq!(returned, [&format!("{running} - heartbeats")]);
        if expected == "0" {
            assert!(metrics.iter().any(|m| m.name == "RunningTaskCount"));
        } else {
            assert!(metrics.iter().all(|m| m.name != "RunningTaskCount"));
        }

        // A blind task among many: the worst task's visibility, below 100 %.
        let properties = resolved_properties(&service, &resolver, "VisibilityDegradedAlarm");
        let (metrics, _) = alarm_metrics(&properties);
        assert_eq!(metrics[0].name, "VisibilityPercent");
        assert_eq!(metrics[0].stat, "Minimum");
        assert_eq!(text(&properties["ComparisonOperator"]), "LessThanThreshold");
        assert_eq!(text(&properties["Threshold"]), "100");
    }

    // The shipped parameter files resolve too (dimension names checked; values are theirs).
    for (path, values) in parameter_files() {
        let resolver = service.resolver(&pairs(&values), &pseudo).unwrap();
        let problems = alarm_problems(&service, &resolver, &catalogue, false);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
}

#[test]
fn the_alarm_check_rejects_what_cloudwatch_would_never_match() {
    let heartbeat = real_heartbeat();
    let alerting = alerting();
    let pseudo = Pseudo::default();
    let alerting_resolver = alerting.resolver(&[], &pseudo).unwrap();
    let catalogue = catalogue(&heartbeat, &alerting, &alerting_resolver);
    let (values, pseudo) = service_parameters_for_task("0");
    let service_text = read(SERVICE);
    let cases = [
        // The original mistake: a dimension the heartbeat does not have.
        (
            "- Name: task_family",
            "- Name: Family",
            "CloudWatch matches dimension sets exactly",
        ),
        // A dimension value built differently from what ECS reports.
        (
            ":cluster/${ClusterName}",
            ":${ClusterName}",
            "the heartbeat of that task says",
        ),
        (
            "MetricName: VisibilityPercent",
            "MetricName: Visibility",
            "nothing publishes TaskSentry/Visibility",
        ),
        (
            "Namespace: ECS/ContainerInsights",
            "Namespace: AWS/ECS",
            "nothing publishes AWS/ECS/RunningTaskCount",
        ),
        (
            "- running - heartbeats",
            "- running - beats",
            "uses undefined id beats",
        ),
        (
            "- running - heartbeats",
            "- AVG(running) - heartbeats",
            "calls AVG",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(service_text.contains(from), "fixture text {from:?}");
        let broken = Template::load(&service_text.replacen(from, to, 1)).unwrap();
        let resolver = broken.resolver(&as_pairs(&values), &pseudo).unwrap();
        let problems = alarm_problems(&broken, &resolver, &catalogue, true);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:#?}"
        );
    }
    let alerting_text = read(ALERTING);
    let broken = Template::load(&alerting_text.replacen(
        "MetricName: CriticalAlerts\n      Statistic",
        "MetricName: CriticalAlert\n      Statistic",
        1,
    ))
    .unwrap();
    let resolver = broken.resolver(&[], &Pseudo::default()).unwrap();
    let problems = alarm_problems(&broken, &resolver, &catalogue, false);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("nothing publishes TaskSentry/CriticalAlert")),
        "{problems:#?}"
    );
}

// ------------------------------------------------------------------------------------------
// The dashboard.
// ------------------------------------------------------------------------------------------

/// Parses `SEARCH('{Namespace,dim1,dim2} MetricName="X"', 'Stat', period)`: (namespace,
/// dimension set, metric name).
fn parse_search(expression: &str) -> Option<(String, BTreeSet<String>, String)> {
    let inner = expression.trim().strip_prefix("SEARCH('")?;
    let schema = inner.strip_prefix('{')?;
    let (schema, rest) = schema.split_once('}')?;
    let mut parts = schema.split(',').map(str::trim);
    let namespace = parts.next()?.to_owned();
    let dimensions = parts.map(str::to_owned).collect();
    let name = rest
        .trim()
        .strip_prefix("MetricName=\"")?
        .split_once('"')?
        .0
        .to_owned();
    Some((namespace, dimensions, name))
}

/// Every problem with a resolved dashboard body.
fn dashboard_problems(body: &str, catalogue: &Catalogue, alert_group: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let dashboard: Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(error) => return vec![format!("the body is not JSON: {error}")],
    };
    let Some(widgets) = dashboard["widgets"].as_array().filter(|w| !w.is_empty()) else {
        return vec!["`widgets` must be a non-empty list".into()];
    };
    let mut cells: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for (index, widget) in widgets.iter().enumerate() {
        let kind = widget["type"].as_str().unwrap_or("");
        if !["metric", "log", "text", "alarm", "explorer"].contains(&kind) {
            problems.push(format!("widget {index}: type {kind:?}"));
        }
        let number = |key: &str| widget[key].as_u64();
        match (number("x"), number("y"), number("width"), number("height")) {
            (Some(x), Some(y), Some(width), Some(height))
                if (1..=24).contains(&width) && x + width <= 24 && height >= 1 =>
            {
                for cx in x..x + width {
                    for cy in y..y + height {
                        if let Some(other) = cells.insert((cx, cy), index) {
                            problems.push(format!("widget {index} overlaps widget {other}"));
                        }
                    }
                }
            }
            _ => problems.push(format!(
                "widget {index}: x, y, width (1-24, x + width <= 24) and height are required"
            )),
        }
        let properties = &widget["properties"];
        if !properties.is_object() {
            problems.push(format!("widget {index}: `properties` object missing"));
            continue;
        }
        if matches!(kind, "metric" | "log") && properties["region"].as_str().is_none() {
            problems.push(format!("widget {index}: `region` missing"));
        }
        if kind == "log" {
            let query = properties["query"].as_str().unwrap_or("");
            let mut sources = 0;
            for part in query.split('|').map(str::trim) {
                if let Some(source) = part.strip_prefix("SOURCE ") {
                    sources += 1;
                    let group = source.trim().trim_matches('\'');
                    if group != alert_group {
                        problems.push(format!(
                            "widget {index}: queries {group:?}, not the alert group {alert_group:?}"
                        ));
                    }
                }
            }
            if sources == 0 || !query.starts_with("SOURCE ") {
                problems.push(format!(
                    "widget {index}: a dashboard Logs Insights query starts with SOURCE '<group>'"
                ));
            }
        }
        if kind == "metric" {
            let rows = properties["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if rows.is_empty() {
                problems.push(format!("widget {index}: no metrics"));
            }
            for row in rows {
                let cells = row.as_array().cloned().unwrap_or_default();
                let (namespace, name, dimensions) = if let Some(expression) =
                    cells.first().and_then(|c| c["expression"].as_str())
                {
                    let Some((namespace, dimensions, name)) = parse_search(expression) else {
                        problems.push(format!(
                            "widget {index}: expression {expression:?} is not a SEARCH this check understands"
                        ));
                        continue;
                    };
                    (namespace, name, dimensions)
                } else {
                    let strings: Vec<String> = cells
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect();
                    if strings.len() < 2 || strings.len() % 2 != 0 || strings[0] == "." {
                        problems.push(format!("widget {index}: metric row {row}"));
                        continue;
                    }
                    let dimensions = strings[2..].chunks(2).map(|p| p[0].clone()).collect();
                    (strings[0].clone(), strings[1].clone(), dimensions)
                };
                let known = catalogue.published.iter().any(|p| {
                    p.namespace == namespace && p.name == name && p.dimensions == dimensions
                });
                if !known {
                    problems.push(format!(
                        "widget {index}: {namespace}/{name} {dimensions:?} is published by nothing"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn the_dashboard_is_valid_and_names_only_published_metrics_and_the_alert_group() {
    let heartbeat = real_heartbeat();
    let alerting = alerting();
    let resolver = alerting.resolver(&[], &Pseudo::default()).unwrap();
    let catalogue = catalogue(&heartbeat, &alerting, &resolver);
    let dashboards = alerting.resources_of("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let properties = resolved_properties(&alerting, &resolver, dashboards[0].0);
    let body = text(&properties["DashboardBody"]);
    let group = text(&resolved_properties(&alerting, &resolver, "AlertLogGroup")["LogGroupName"]);
    let problems = dashboard_problems(&body, &catalogue, &group);
    assert!(problems.is_empty(), "{problems:#?}\n{body}");

    // It shows what the security team asked for.
    let dashboard: Value = serde_json::from_str(&body).unwrap();
    let queries: Vec<String> = dashboard["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["properties"]["query"].as_str().map(str::to_owned))
        .collect();
    let has_query = |needles: &[&str]| {
        queries
            .iter()
            .any(|q| needles.iter().all(|n| q.contains(n)))
    };
    assert!(
        has_query(&["bin(", "priority"]),
        "alerts by priority over time"
    );
    assert!(
        has_query(&["bin(", "by bin(1h), rule"]),
        "alerts by rule over time"
    );
    assert!(has_query(&["ecs.container_name", "sort"]), "top containers");
    assert!(has_query(&["by ecs.family", "sort"]), "top task families");
    for metric in [
        "Heartbeat",
        "VisibilityPercent",
        "AlertsDropped",
        "ProcessesMissed",
    ] {
        assert!(
            body.contains(&format!("MetricName=\\\"{metric}\\\"")),
            "{metric} graphed"
        );
    }

    // The check can fail.
    for (from, to, expected) in [
        ("SOURCE '", "SOURCE '/ecs/other", "not the alert group"),
        (
            "MetricName=\\\"Heartbeat\\\"",
            "MetricName=\\\"Heartbeats\\\"",
            "published by nothing",
        ),
        (
            "{TaskSentry,cluster,task_family} MetricName=\\\"VisibilityPercent",
            "{TaskSentry,task_family} MetricName=\\\"VisibilityPercent",
            "published by nothing",
        ),
        (
            "\"CriticalAlerts\"",
            "\"CriticalAlert\"",
            "published by nothing",
        ),
        ("\"width\": 12", "\"width\": 25", "width (1-24"),
        ("\"x\": 12, \"y\": 2", "\"x\": 6, \"y\": 2", "overlaps"),
        ("\"widgets\": [", "\"widgets\": [,", "not JSON"),
    ] {
        assert!(body.contains(from), "fixture {from:?}");
        let problems = dashboard_problems(&body.replacen(from, to, 1), &catalogue, &group);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: {problems:#?}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Alarm topic and its key.
// ------------------------------------------------------------------------------------------

#[test]
fn the_alarm_topic_uses_a_key_cloudwatch_alarms_may_use_and_every_alarm_notifies_it() {
    let template = alerting();
    let pseudo = Pseudo::default();
    let resolver = template.resolver(&[], &pseudo).unwrap();
    let topics = template.resources_of("AWS::SNS::Topic");
    assert_eq!(topics.len(), 1);
    let topic_name = topics[0].0;
    let topic = resolved_properties(&template, &resolver, topic_name);
    let key_id = text(&topic["KmsMasterKeyId"]);
    assert_ne!(
        key_id, "alias/aws/sns",
        "CloudWatch alarms cannot use the AWS-managed key"
    );
    // The key: a customer-managed key of this template (by ARN, id, or an alias of it).
    let keys = template.resources_of("AWS::KMS::Key");
    let key = keys
        .iter()
        .find(|(name, _)| {
            let arn = resolver.getatts[&format!("{name}.Arn")].clone();
            let aliases: Vec<String> = template
                .resources_of("AWS::KMS::Alias")
                .iter()
                .filter(|(alias, _)| {
                    text(&resolved_properties(&template, &resolver, alias)["TargetKeyId"])
                        == resolver.refs[*name]
                })
                .map(|(alias, _)| {
                    text(&resolved_properties(&template, &resolver, alias)["AliasName"])
                })
                .collect();
            key_id == arn || key_id == resolver.refs[*name] || aliases.contains(&key_id)
        })
        .unwrap_or_else(|| panic!("KmsMasterKeyId {key_id:?} is no key of the template"));
    let key_properties = resolved_properties(&template, &resolver, key.0);
    let statements = key_properties["KeyPolicy"]["Statement"].as_array().unwrap();
    let cloudwatch = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com" && s["Effect"] == "Allow")
        .expect("a key policy statement for cloudwatch.amazonaws.com");
    let actions: BTreeSet<String> = match &cloudwatch["Action"] {
        Value::Array(items) => items.iter().map(text).collect(),
        other => BTreeSet::from([text(other)]),
    };
    assert!(actions.contains("kms:Decrypt"), "{actions:?}");
    assert!(
        actions.contains("kms:GenerateDataKey*") || actions.contains("kms:GenerateDataKey"),
        "{actions:?}"
    );
    // The account keeps control of its key (otherwise nobody could ever change its policy).
    let root = format!("arn:{}:iam::{}:root", pseudo.partition, pseudo.account);
    assert!(
        statements
            .iter()
            .any(|s| s["Principal"]["AWS"] == json!(root) && s["Action"] == "kms:*")
    );
    assert!(
        !template.resources_of("AWS::KMS::Alias").is_empty(),
        "an alias names the key"
    );

    // Every alarm of the alerting stack notifies the topic; the service stack's notify the
    // topic the alerting stack exports, under the name it exports it.
    let topic_arn = resolver.refs[topic_name].clone();
    for (alarm, _) in template.resources_of("AWS::CloudWatch::Alarm") {
        let properties = resolved_properties(&template, &resolver, alarm);
        assert_eq!(properties["AlarmActions"], json!([topic_arn]), "{alarm}");
    }
    let service = service();
    let (values, pseudo_task) = service_parameters_for_task("0");
    let service_resolver = service.resolver(&as_pairs(&values), &pseudo_task).unwrap();
    let alerting_stack = service_resolver.refs["AlertingStackName"].clone();
    let exporting = template
        .resolver(
            &[],
            &Pseudo {
                stack_name: alerting_stack,
                ..Pseudo::default()
            },
        )
        .unwrap();
    let output = template
        .root
        .get("Outputs")
        .unwrap()
        .entries()
        .iter()
        .find(|(_, o)| {
            o.get("Value")
                .is_some_and(|v| exporting.resolve(v).unwrap() == json!(topic_arn))
        })
        .map(|(_, o)| o)
        .expect("the topic is an output");
    let export = exporting
        .resolve(output.get("Export").unwrap().get("Name").unwrap())
        .unwrap();
    for (alarm, _) in service.resources_of("AWS::CloudWatch::Alarm") {
        let properties = resolved_properties(&service, &service_resolver, alarm);
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                properties[actions],
                json!([{ "ImportValue": export }]),
                "{alarm} {actions}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Log groups named by the task definitions.
// ------------------------------------------------------------------------------------------

/// The log groups a resolved template creates: name → retention.
fn log_groups(template: &Template, resolver: &Resolver) -> BTreeMap<String, String> {
    template
        .resources_of("AWS::Logs::LogGroup")
        .iter()
        .map(|(name, _)| {
            let properties = resolved_properties(template, resolver, name);
            (
                text(&properties["LogGroupName"]),
                properties
                    .get("RetentionInDays")
                    .map(text)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn every_log_group_a_task_definition_names_is_created_with_retention() {
    let alerting = alerting();
    let service = service();
    let pseudo = Pseudo::default();
    let alerting_resolver = alerting.resolver(&[], &pseudo).unwrap();
    let shared_groups = log_groups(&alerting, &alerting_resolver);
    let alert_group =
        text(&resolved_properties(&alerting, &alerting_resolver, "AlertLogGroup")["LogGroupName"]);
    let parameters = parameter_files();
    let execution_policy =
        load_json(&repo().join("task-definitions/iam/task-execution-role-policy.json"));
    let execution_resources: BTreeSet<String> = execution_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("logs:PutLogEvents"))
        .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
        .map(|r| text(&r))
        .collect();
    let task_policy =
        load_json(&repo().join("task-definitions/iam/tasksentry-task-role-policy.json"));
    let task_resources = task_policy["Statement"][0]["Resource"].to_string();

    for (path, task) in task_definitions() {
        let family = task["family"].as_str().unwrap();
        // The parameters shipped for this task definition's service stack.
        let (params_path, values) = parameters
            .iter()
            .find(|(_, v)| v.get("TaskFamily").map(String::as_str) == Some(family))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no file in {PARAMETERS_DIR} deploys the service template for family {family}",
                    path.display()
                )
            });
        let resolver = service.resolver(&pairs(values), &pseudo).unwrap();
        let mut created = log_groups(&service, &resolver);
        created.extend(shared_groups.clone());
        for container in task["containerDefinitions"].as_array().unwrap() {
            let name = container["name"].as_str().unwrap();
            let options = &container["logConfiguration"]["options"];
            if let Some(group) = options["awslogs-group"].as_str() {
                let retention = created.get(group).unwrap_or_else(|| {
                    panic!(
                        "{}: container {name} logs to {group}, which no template creates with {} (creates {:?})",
                        path.display(),
                        params_path.display(),
                        created.keys()
                    )
                });
                assert!(!retention.is_empty(), "{group} without retention");
                assert_ne!(
                    options["awslogs-create-group"].as_str(),
                    Some("true"),
                    "the stack creates {group}; the driver must not need logs:CreateLogGroup"
                );
                let region = options["awslogs-region"].as_str().unwrap();
                let arn = format!("arn:aws:logs:{region}:111122223333:log-group:{group}:*");
                assert!(
                    execution_resources.contains(&arn),
                    "the execution role lets the awslogs driver write {arn}: {execution_resources:?}"
                );
            }
            if name == "tasksentry" {
                let sidecar_group = container["environment"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "TASKSENTRY_LOG_GROUP")
                    .map(|e| text(&e["value"]))
                    .unwrap();
                assert_eq!(
                    sidecar_group,
                    alert_group,
                    "{}: the sidecar ships to the group the alerting stack creates",
                    path.display()
                );
                assert!(
                    task_resources.contains(&format!("log-group:{alert_group}")),
                    "the task role policy names the alert group"
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The task role and the calls the sink makes.
// ------------------------------------------------------------------------------------------

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The CloudWatch Logs operations the sink's code calls on an SDK client
/// (`client.put_log_events()` and the like, across line breaks).
fn operations_in_code() -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("src/sink/cloudwatch")).unwrap() {
        let code = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (at, _) in code.match_indices("client") {
            // A variable named `client`, not `self.client` passed on or `client::put`.
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':')
            {
                continue;
            }
            let Some(call) = code[at + "client".len()..].trim_start().strip_prefix('.') else {
                continue;
            };
            let call = call.trim_start();
            let name: String = call
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && call[name.len()..].starts_with("()") {
                operations.insert(pascal(&name));
            }
        }
    }
    operations
}

fn listed(required: Option<bool>) -> BTreeSet<String> {
    API_CALLS
        .iter()
        .filter(|c| required.is_none_or(|r| c.required == r))
        .map(|c| c.operation.to_owned())
        .collect()
}

#[test]
fn the_sinks_list_of_calls_is_what_its_code_calls() {
    let in_code = operations_in_code();
    assert_eq!(
        in_code,
        listed(None),
        "src/sink/cloudwatch calls vs API_CALLS"
    );
    assert!(!in_code.contains("DescribeLogStreams"));
}

fn policy_actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::Array(items) => items.iter().map(text).collect::<Vec<_>>(),
            other => vec![text(other)],
        })
        .collect()
}

#[test]
fn the_task_role_allows_exactly_the_calls_the_sink_needs() {
    let required: BTreeSet<String> = listed(Some(true))
        .iter()
        .map(|op| format!("logs:{op}"))
        .collect();
    assert_eq!(
        required,
        BTreeSet::from([
            "logs:CreateLogStream".to_owned(),
            "logs:PutLogEvents".to_owned()
        ])
    );
    let policy = load_json(&repo().join("task-definitions/iam/tasksentry-task-role-policy.json"));
    assert_eq!(
        policy_actions(&policy),
        required,
        "iam/tasksentry-task-role-policy.json"
    );

    let template = alerting();
    let resolver = template.resolver(&[], &Pseudo::default()).unwrap();
    let role = resolved_properties(&template, &resolver, "TaskSentryTaskRole");
    let mut actions = BTreeSet::new();
    for policy in role["Policies"].as_array().unwrap() {
        actions.extend(policy_actions(&policy["PolicyDocument"]));
    }
    assert_eq!(actions, required, "the template's TaskSentryTaskRole");
    // The optional calls are not granted because the stack creates the group, with retention.
    let groups = log_groups(&template, &resolver);
    let alert_group = template.default_of("AlertLogGroupName").unwrap();
    assert!(groups.get(&alert_group).is_some_and(|r| !r.is_empty()));
}

/// Runs the sink through a proxy with `plan` in front of moto; returns what was delivered,
/// the report and the operations the proxy saw.
async fn run_through_proxy(
    plan: Plan,
    create_group_first: bool,
    retention: Option<i32>,
    flush: Duration,
) -> (
    Vec<(i64, String)>,
    tasksentry::sink::cloudwatch::ShutdownReport,
    Vec<(String, Fault)>,
) {
    let moto = Moto::start();
    let cw = client(&moto.url()).await;
    let group = "/security/tasksentry/alerts";
    let stream = "task-links";
    if create_group_first {
        cw.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .unwrap();
    }
    let proxy = FaultProxy::start(moto.addr, plan, Duration::from_secs(1)).await;
    let mut settings = support::cloudwatch::settings(&proxy.url(), group);
    settings.retention_days = retention;
    let (handle, tx) = CloudWatchSink::start(settings, stream.to_owned())
        .await
        .unwrap();
    for n in 0..50u64 {
        tx.send(Record {
            timestamp_ms: now_ms(),
            priority: Priority::Warning,
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let report = handle.shutdown(flush).await;
    let events = support::cloudwatch::try_read_stream(&cw, group, stream)
        .await
        .unwrap_or_default();
    let operations = proxy.counters.operations.lock().unwrap().clone();
    (events, report, operations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_the_sink_makes_is_in_its_list() {
    // A missing group with a retention: the sink makes every call it can make.
    let (events, report, operations) = run_through_proxy(
        Plan::Always(Fault::Pass),
        false,
        Some(7),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(events.len(), 50);
    let seen: BTreeSet<String> = operations.into_iter().map(|(op, _)| op).collect();
    assert_eq!(seen, listed(None), "operations the proxy saw vs API_CALLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_delivers_when_create_log_group_is_denied_and_the_group_exists() {
    // The shipped task role: the stack created the group; CreateLogGroup and
    // PutRetentionPolicy are refused with AccessDeniedException.
    let optional: Vec<&'static str> = API_CALLS
        .iter()
        .filter(|c| !c.required)
        .map(|c| c.operation)
        .collect();
    let denied = Plan::ByOperation(optional.iter().map(|op| (*op, Fault::Denied)).collect());
    let (events, report, operations) =
        run_through_proxy(denied, true, Some(7), Duration::from_secs(30)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.delivered, 50, "{report:?}");
    assert_eq!(
        report.stats.auth_errors, 0,
        "a refused CreateLogGroup is not an error"
    );
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, m)| support::cloudwatch::seq_of(m))
        .collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    assert!(
        operations
            .iter()
            .any(|(op, fault)| op == "CreateLogGroup" && *fault == Fault::Denied),
        "the sink did try, and was refused: {operations:?}"
    );
    // Calls that succeeded are exactly the required ones.
    let succeeded: BTreeSet<String> = operations
        .iter()
        .filter(|(_, fault)| *fault == Fault::Pass)
        .map(|(op, _)| op.clone())
        .collect();
    assert_eq!(succeeded, listed(Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_group_that_may_not_be_created_keeps_alerts_and_says_so() {
    let denied = Plan::ByOperation(vec![("CreateLogGroup", Fault::Denied)]);
    let (events, report, operations) =
        run_through_proxy(denied, false, None, Duration::from_secs(3)).await;
    assert!(events.is_empty());
    assert_eq!(
        report.undelivered, 50,
        "kept, and counted as undelivered: {report:?}"
    );
    assert!(
        report.stats.auth_errors >= 1,
        "reported as a permission problem: {report:?}"
    );
    assert_eq!(report.stats.put_calls, 0, "{operations:?}");
}

// ------------------------------------------------------------------------------------------
// Sidecar reservations from the measured figures.
// ------------------------------------------------------------------------------------------

/// One row of "Monitor CPU and memory" in docs/benchmarks.md.
#[derive(Debug)]
struct Measured {
    mode: String,
    processes: u64,
    execs: u64,
    cpu_percent: f64,
    peak_rss_mib: f64,
}

fn measured() -> (Vec<Measured>, f64) {
    let doc = read("docs/benchmarks.md");
    let section = doc
        .split("## Monitor CPU and memory")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut rows = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        if header.is_empty() {
            header = cells;
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let column = |name: &str| {
            let index = header
                .iter()
                .position(|h| h.starts_with(name))
                .unwrap_or_else(|| panic!("column {name} in {header:?}"));
            cells[index].clone()
        };
        rows.push(Measured {
            mode: column("mode"),
            processes: column("processes").parse().unwrap(),
            execs: column("execs/s").parse().unwrap(),
            cpu_percent: column("CPU").parse().unwrap(),
            peak_rss_mib: column("peak RSS").parse().unwrap(),
        });
    }
    // The mean alert size from the sink benchmark's mixed workload.
    let line = doc
        .lines()
        .find(|l| l.starts_with("cloudwatch/mixed:"))
        .expect("the cloudwatch/mixed line");
    let number_before = |unit: &str| -> f64 {
        let head = line.split(&format!(" {unit}")).next().unwrap();
        head.rsplit([' ', ':']).next().unwrap().parse().unwrap()
    };
    let mean_bytes = number_before("bytes") / number_before("records");
    assert!(rows.len() >= 4, "{rows:?}");
    (rows, mean_bytes)
}

fn round_up(value: f64, step: u64) -> u64 {
    (value / step as f64).ceil() as u64 * step
}

/// The reservations docs/platform-engineers.md ("Overhead") derives from the measurements, for
/// a sidecar in `mode`: (cpu units, memoryReservation MiB, memory MiB).
fn reservations(mode: &str) -> (u64, u64, u64) {
    let (rows, mean_bytes) = measured();
    let busy = rows
        .iter()
        .find(|r| r.mode == mode && r.processes == 100 && r.execs == 100)
        .unwrap_or_else(|| panic!("the busy row for {mode}"));
    let cpu = round_up(busy.cpu_percent / 100.0 * 1024.0, 32);
    let soft = round_up(busy.peak_rss_mib * 1.25, 8);
    let worst_rss = rows
        .iter()
        .filter(|r| r.mode == mode)
        .map(|r| r.peak_rss_mib)
        .fold(0.0, f64::max);
    let buffer_capacity = tasksentry::config::Config::default().buffer_capacity as f64;
    let buffer_mib = buffer_capacity * mean_bytes / (1024.0 * 1024.0);
    let hard = round_up(2.0 * (worst_rss + buffer_mib), 32);
    (cpu, soft, hard)
}

#[test]
fn sidecar_reservations_follow_from_the_measured_figures() {
    let guide = read("docs/platform-engineers.md");
    for (path, task) in task_definitions() {
        let sidecar = task["containerDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "tasksentry")
            .unwrap();
        let mode = sidecar["environment"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "TASKSENTRY_MODE")
            .map(|e| text(&e["value"]))
            .unwrap_or_else(|| "poll".to_owned());
        let (cpu, soft, hard) = reservations(&mode);
        let actual = (
            sidecar["cpu"].as_u64().unwrap(),
            sidecar["memoryReservation"].as_u64().unwrap(),
            sidecar["memory"].as_u64().unwrap(),
        );
        assert_eq!(
            actual,
            (cpu, soft, hard),
            "{}: (cpu, memoryReservation, memory) from docs/benchmarks.md",
            path.display()
        );
        // The guide's snippet shows the same numbers.
        assert!(
            guide.contains(&format!(
                "\"cpu\": {cpu}, \"memoryReservation\": {soft}, \"memory\": {hard}"
            )),
            "docs/platform-engineers.md shows cpu {cpu}, memoryReservation {soft}, memory {hard}"
        );
    }
}
