//! What TaskSentry puts on the wire, checked line by line against the consumers' own rules:
//!
//! - **falcosidekick accepts every alert line** (`support::falco`: its decoding and `Check()`,
//!   re-implemented from its source), of every kind the binary writes to its alert outputs,
//!   produced for real: rule alerts, aggregated summaries (count > 1), TaskSentry's internal
//!   alerts (reload, suppression, missed processes, stop, degraded visibility), the CloudWatch
//!   sink's drop report,
//!   alerts the sink truncated or whose time it clamped, and `rules test` replays. Each also
//!   carries its context in `output_fields` (ECS keys, aggregation counters), the monitor's
//!   `hostname`, and no empty strings; outside ECS the ECS keys are absent and falcosidekick
//!   still accepts the line.
//! - **The only other lines on the alert stream are heartbeats** (valid EMF, `kind:
//!   heartbeat`), and every filter pattern the documentation and the alerting template give
//!   (`support::filter` evaluates CloudWatch's syntax) selects exactly the lines it claims, on
//!   real alert and heartbeat lines, without relying on behaviour the CloudWatch user guide
//!   leaves undefined.
//!
//! The end-to-end test runs the real `tasksentry run` as the sidecar of an emulated Fargate
//! task, with a task metadata endpoint and a moto CloudWatch Logs server reached through a
//! relay in the task's network namespace (as `tests/cloudwatch_e2e.rs` does), and reads back
//! both stdout and the log stream.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::filter::Outcome;
use support::netns::RelayMode;
use support::sidecar::{EcsMetadata, TASK_DOC, TASK_ID, TaskCloudWatch, task_document};
use support::{
    CapSet, Container, ContainerSpec, EmulatedTask, Monitor, MonitorSpec, User, repo_path,
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The family of the shipped worker task definition, which the documentation's per-service
/// pattern names.
const FAMILY: &str = "orders-worker-with-tasksentry";
const HOSTNAME: &str = "ip-10-20-3-57.eu-west-1.compute.internal";

/// One alert per marker file created under `/tmp/tswire-…`: a cheap flood of distinct alerts.
const MARKER_RULES: &str = r"
- rule: Wire marker file created
  desc: A test marker file was created in /tmp.
  condition: evt.type = creat and fd.name startswith /tmp/tswire-
  output: Wire marker file created (file=%fd.name container_id=%container.id)
  priority: WARNING
  tags: [test]
";

fn is_alert(line: &Value) -> bool {
    line["rule"].is_string()
}

fn is_heartbeat(line: &Value) -> bool {
    line["kind"] == "heartbeat" && line.get("_aws").is_some()
}

/// A `profile_snapshot` record (`run --learn`): what the monitor learnt, shipped on the alert
/// stream so that it outlives the task; not an alert.
fn is_profile_snapshot(line: &Value) -> bool {
    line["evt"]["type"] == "tasksentry" && line["internal"]["kind"] == "profile_snapshot"
}

/// An image collector's data record (an SBOM part, a pass summary): like a profile snapshot,
/// a record on the outputs, not an alert.
fn is_image_record(line: &Value) -> bool {
    line["evt"]["type"] == "tasksentry"
        && (line["internal"]["kind"] == "image_sbom"
            || line["internal"]["kind"] == "image_inventory")
}

fn priority_in(line: &Value, priorities: &[&str]) -> bool {
    line["priority"]
        .as_str()
        .is_some_and(|p| priorities.contains(&p))
}

/// What a documented pattern selects, stated on the line itself (not with the pattern).
type Claim = fn(&Value) -> bool;

/// Every filter pattern the documentation and the template give, with what it claims to
/// select. A pattern found in the documents but missing here fails the test: say here what it
/// must match.
fn claims() -> Vec<(&'static str, Claim)> {
    vec![
        (
            r#"{ ($.priority = "Critical") || ($.priority = "Alert") || ($.priority = "Emergency") }"#,
            |l| is_alert(l) && priority_in(l, &["Critical", "Alert", "Emergency"]),
        ),
        (r#"{ $.priority = "Error" }"#, |l| {
            is_alert(l) && priority_in(l, &["Error"])
        }),
        (r#"{ $.rule = "Crypto miner launched" }"#, |l| {
            l["rule"] == "Crypto miner launched"
        }),
        (r#"{ $.tags[0] = "T1059*" || $.tags[1] = "T1059*" }"#, |l| {
            is_alert(l)
                && l["tags"].as_array().is_some_and(|tags| {
                    tags.iter()
                        .any(|t| t.as_str().is_some_and(|t| t.starts_with("T1059")))
                })
        }),
        (
            r#"{ $.ecs.family = "orders-worker-with-tasksentry" && $.priority = "Warning" }"#,
            |l| is_alert(l) && l["ecs"]["family"] == FAMILY && priority_in(l, &["Warning"]),
        ),
        (r#"{ $.source = "tasksentry" && $.rule = * }"#, |l| {
            is_alert(l) && l["source"] == "tasksentry"
        }),
        ("{ $.rule = * }", is_alert),
        (r#"{ $.kind = "heartbeat" }"#, is_heartbeat),
        (r#""profile_snapshot""#, is_profile_snapshot),
    ]
}

/// Every filter pattern in `docs/*.md`, `README.md` and the alerting template.
fn documented_patterns() -> Vec<support::filter::Found> {
    let mut found = Vec::new();
    let mut markdown: Vec<std::path::PathBuf> = std::fs::read_dir(repo_path("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    markdown.push(repo_path("README.md"));
    markdown.sort();
    for path in markdown {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap()
            .display()
            .to_string();
        found.extend(support::filter::patterns_in_markdown(&name, &text));
    }
    let template = "task-definitions/cloudformation/tasksentry-alerting.yaml";
    let text = std::fs::read_to_string(repo_path(template)).unwrap();
    found.extend(support::filter::patterns_in_template(template, &text));
    found
}

/// Checks every documented pattern against `lines`: each parses, has a claim, and on every
/// line its outcome is defined and equals the claim. With `coverage`, each must also match at
/// least one line and miss at least one (so the lines exercised it). Returns per pattern how
/// many lines it matched.
fn check_documented_patterns(lines: &[String], coverage: bool) -> BTreeMap<String, usize> {
    let claims = claims();
    let found = documented_patterns();
    let mut failures = Vec::new();
    let mut matched: BTreeMap<String, usize> = BTreeMap::new();
    for (pattern, _) in &claims {
        if !found.iter().any(|f| f.pattern == *pattern) {
            failures.push(format!(
                "claimed pattern `{pattern}` is in no document any more: drop its claim"
            ));
        }
    }
    let values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for f in &found {
        // The empty pattern forwards everything, heartbeats included: never document it.
        if f.pattern.trim().is_empty() {
            failures.push(format!(
                "{}: the empty pattern also selects heartbeats, which are not alerts",
                f.at
            ));
            continue;
        }
        let parsed = match support::filter::parse(&f.pattern) {
            Ok(parsed) => parsed,
            Err(error) => {
                failures.push(format!("{}: `{}` does not parse: {error}", f.at, f.pattern));
                continue;
            }
        };
        let Some((_, claim)) = claims.iter().find(|(p, _)| *p == f.pattern) else {
            failures.push(format!(
                "{}: `{}` has no claim in tests/alert_wire.rs",
                f.at, f.pattern
            ));
            continue;
        };
        let mut hits = 0;
        for (line, value) in lines.iter().zip(&values) {
            let want = claim(value);
            match support::filter::evaluate(&parsed, line) {
                Outcome::Undefined(why) => failures.push(format!(
                    "{}: `{}` depends on undefined behaviour ({why}) on {line}",
                    f.at, f.pattern
                )),
                outcome if outcome.defined() != Some(want) => failures.push(format!(
                    "{}: `{}` gives {outcome:?}, the documentation says {} on {line}",
                    f.at,
                    f.pattern,
                    if want { "match" } else { "no match" }
                )),
                Outcome::Match => hits += 1,
                Outcome::NoMatch => {}
            }
        }
        if coverage && (hits == 0 || hits == lines.len()) {
            failures.push(format!(
                "{}: `{}` matched {hits} of {} lines: the lines do not exercise it",
                f.at,
                f.pattern,
                lines.len()
            ));
        }
        matched.insert(f.pattern.clone(), hits);
    }
    assert!(
        failures.is_empty(),
        "{} problems with documented filter patterns:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    matched
}

/// The `output_fields` context keys whose values are strings.
const STRING_CONTEXT_KEYS: [&str; 9] = [
    "ecs.cluster",
    "ecs.task_arn",
    "ecs.task_id",
    "ecs.family",
    "ecs.revision",
    "ecs.availability_zone",
    "container.name",
    "container.image",
    "container.image.digest",
];

/// Checks one alert line: falcosidekick accepts it, and it has what TaskSentry promises on top
/// (hostname, output, the `ecs` and `tasksentry` objects, the aggregation counters in
/// `output_fields` equal to the `tasksentry` object's, no empty context string). Returns the
/// parsed line.
fn check_alert_line(line: &str, hostname: &str) -> Value {
    let accepted = support::falco::check(line)
        .unwrap_or_else(|why| panic!("falcosidekick refuses this alert line ({why}):\n{line}"));
    let alert: Value = serde_json::from_str(line).unwrap();
    assert_eq!(alert["hostname"], hostname, "{line}");
    assert!(
        alert["output"].as_str().is_some_and(|o| !o.is_empty()),
        "{line}"
    );
    assert!(
        alert["ecs"].is_object() && alert["tasksentry"].is_object(),
        "{line}"
    );
    let fields = alert["output_fields"].as_object().unwrap();
    assert_eq!(accepted.output_fields.len(), fields.len());
    for key in STRING_CONTEXT_KEYS {
        if let Some(value) = fields.get(key) {
            assert!(
                value.is_null() || value.as_str().is_some_and(|v| !v.is_empty()),
                "`{key}` is an empty string or not a string: {line}"
            );
        }
    }
    let meta = &alert["tasksentry"];
    if meta.get("summary").is_some() {
        assert_eq!(fields["tasksentry.alert.count"], meta["count"], "{line}");
        assert_eq!(
            fields["tasksentry.alert.first_seen"], meta["first_seen"],
            "{line}"
        );
        assert_eq!(
            fields["tasksentry.alert.last_seen"], meta["last_seen"],
            "{line}"
        );
        assert_eq!(
            fields["tasksentry.alert.summary"], meta["summary"],
            "{line}"
        );
    } else {
        // The sink's drop report: one alert, its own counts in `tasksentry`.
        assert_eq!(alert["rule"], "TaskSentry dropped alerts", "{line}");
        assert_eq!(fields["tasksentry.alert.count"], 1, "{line}");
        assert_eq!(fields["tasksentry.kind"], meta["kind"], "{line}");
        assert_eq!(fields["tasksentry.count"], meta["count"], "{line}");
    }
    // The ECS keys of output_fields agree with the `ecs` object.
    for (key, member) in [
        ("ecs.cluster", "cluster"),
        ("ecs.task_arn", "task_arn"),
        ("ecs.family", "family"),
        ("ecs.revision", "revision"),
        ("container.image.digest", "image_digest"),
    ] {
        if let Some(value) = alert["ecs"].get(member) {
            assert_eq!(&fields[key], value, "`{key}` and `ecs.{member}`: {line}");
        } else {
            assert!(
                fields.get(key).is_none_or(Value::is_null),
                "`{key}` without `ecs.{member}`: {line}"
            );
        }
    }
    alert
}

/// `tasksentry rules test --events` on a recording; the printed lines.
fn replay(recording: &str, hostname: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, recording).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["rules", "test", "--events"])
        .arg(&path)
        .args(["--hostname", hostname])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The recording of `docs/service-owners.md`'s walkthrough (a real recording, with ECS fields).
fn walkthrough_recording() -> String {
    let doc = include_str!("../docs/service-owners.md");
    let block = doc
        .split("<!-- walkthrough: file orders-worker.ndjson -->\n```")
        .nth(1)
        .expect("the walkthrough recording");
    let body = block.split_once('\n').unwrap().1;
    body.split("\n```").next().unwrap().to_owned() + "\n"
}

#[test]
fn replayed_alerts_with_and_without_ecs_pass_falcosidekick_and_the_documented_filters() {
    let recording = walkthrough_recording();
    let lines = replay(&recording, HOSTNAME);
    assert!(lines.len() >= 5, "{lines:#?}");
    for line in &lines {
        let alert = check_alert_line(line, HOSTNAME);
        let fields = &alert["output_fields"];
        assert_eq!(
            fields["ecs.family"], "orders-api-with-runtime-monitor",
            "{line}"
        );
        assert_eq!(
            fields["ecs.task_id"], "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c",
            "{line}"
        );
        assert_eq!(fields["container.name"], "orders-worker", "{line}");
        assert!(
            fields["container.image.digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{line}"
        );
    }
    check_documented_patterns(&lines, false);

    // The same events as a local run records them: no ECS metadata anywhere.
    let local: String = recording
        .lines()
        .map(|line| {
            let mut event: Value = serde_json::from_str(line).unwrap();
            if let Some(container) = event["container"].as_object_mut() {
                for key in ["ecs", "name", "image", "image_digest"] {
                    container.remove(key);
                }
            }
            event.to_string() + "\n"
        })
        .collect();
    let local_lines = replay(&local, "laptop");
    assert_eq!(local_lines.len(), lines.len());
    for line in &local_lines {
        let alert = check_alert_line(line, "laptop");
        assert_eq!(alert["ecs"], json!({}), "{line}");
        let fields = alert["output_fields"].as_object().unwrap();
        assert!(
            fields.keys().all(|k| !k.starts_with("ecs.")),
            "outside ECS the ECS keys are absent: {line}"
        );
        assert!(
            [
                "container.name",
                "container.image",
                "container.image.digest"
            ]
            .iter()
            .all(|k| fields.get(*k).is_none_or(Value::is_null)),
            "unknown container fields are absent or the rule's null: {line}"
        );
    }
    check_documented_patterns(&local_lines, false);
}

#[test]
fn lines_the_cloudwatch_sink_rewrites_or_writes_itself_pass_falcosidekick() {
    use tasksentry::alert::AlertEcs;
    use tasksentry::sink::cloudwatch::{DropCounts, batch, drop_report_message};
    let lines = replay(&walkthrough_recording(), HOSTNAME);
    let now = support::cloudwatch::now_ms();
    // An alert over the 1 MB event limit is truncated: still an alert, context kept.
    let mut huge: Value = serde_json::from_str(&lines[0]).unwrap();
    let giant = "x".repeat(2 * 1024 * 1024);
    huge["output"] = json!(format!("{}{giant}", huge["output"].as_str().unwrap()));
    huge["output_fields"]["proc.cmdline"] = json!(giant);
    let (event, adjustments) = batch::prepare(now, huge.to_string(), now);
    assert!(adjustments.truncated);
    let truncated = check_alert_line(&event.message, HOSTNAME);
    assert_eq!(truncated["output_fields"]["truncated"], true);
    assert_eq!(
        truncated["output_fields"]["ecs.family"], "orders-api-with-runtime-monitor",
        "the context survives truncation"
    );
    // An alert older than CloudWatch accepts is sent with the current time and keeps its own.
    let (event, adjustments) = batch::prepare(now - 30 * 24 * 3600 * 1000, lines[1].clone(), now);
    assert!(adjustments.clamped);
    let clamped = check_alert_line(&event.message, HOSTNAME);
    assert!(clamped[batch::CLAMP_MEMBER].is_i64());
    // The drop report, in ECS and outside it.
    let counts = DropCounts {
        by_priority: [0, 0, 1, 0, 40, 0, 0, 2],
        rejected_by_service: 1,
        invalid: 0,
    };
    let task =
        tasksentry::ecs::TaskMetadata::from_json(TASK_DOC.as_bytes()).expect("the test document");
    for (ecs, hostname) in [
        (AlertEcs::from_task(&task), HOSTNAME),
        (AlertEcs::default(), "laptop"),
    ] {
        let report = drop_report_message(now, hostname, &ecs, &counts);
        let alert = check_alert_line(&report, hostname);
        let fields = &alert["output_fields"];
        assert_eq!(fields["tasksentry.count"], 44);
        assert_eq!(fields["tasksentry.dropped_by_priority.warning"], 40);
        assert_eq!(fields["tasksentry.kind"], "alerts_dropped");
        assert_eq!(
            fields.get("ecs.family").is_some(),
            ecs.family.is_some(),
            "{report}"
        );
    }
}

/// The task document the metadata endpoint serves: the test document, with the shipped worker
/// task definition's family and the emulated app container's id.
fn worker_task_document(app: &Container) -> Value {
    let mut doc = task_document(app);
    doc["Family"] = json!(FAMILY);
    doc
}

/// Runs `command` in the app container until the monitor prints an alert `wanted` accepts.
fn trigger(
    mon: &Monitor,
    app: &Container,
    command: &[&str],
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let cursor = mon.line_count();
        app.run_ok(command)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Ok(alert) = mon.wait_for_after(cursor, &wanted, Duration::from_secs(3)) {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no alert\n{}",
            mon.stderr_so_far()
        );
    }
}

#[test]
fn every_line_on_the_alert_stream_is_a_falco_alert_a_heartbeat_or_a_profile_snapshot_and_the_documented_filters_select_them()
 {
    let task = EmulatedTask::new().expect("task");
    let app = task
        .add_container_with("app", ContainerSpec::default())
        .expect("container");
    for tool in ["xmrig", "apt-get"] {
        app.install_script(tool, "sleep 0.5").unwrap();
    }
    // A real executable in /tmp (a script's executable would be its interpreter): busybox,
    // named after one of its applets.
    app.install(Path::new("/bin/busybox"), "/tmp/sleep")
        .expect("busybox in /tmp");
    let cloudwatch = TaskCloudWatch::start(&task, RelayMode::Pass);
    let (relay, reader) = (&cloudwatch.relay, &cloudwatch.reader);
    let metadata = EcsMetadata::start(&task, &worker_task_document(&app).to_string());
    let rules = task.dir().join("wire-rules.yaml");
    std::fs::write(&rules, MARKER_RULES).unwrap();
    let group = "/security/tasksentry/alerts";
    let spec = cloudwatch
        .monitor_spec("stdout,cloudwatch", group)
        .with_args(&[
            "--cloudwatch-retry-max",
            "1s",
            "--buffer-capacity",
            "100",
            "--aggregation-window",
            "2s",
            "--rule-alert-budget",
            "300",
            "--hostname",
            HOSTNAME,
            "--rules",
            rules.to_str().unwrap(),
            // Learning: a profile snapshot goes out on every output when the monitor stops.
            "--learn",
            "1h",
        ])
        .with_ecs_metadata(&metadata);
    let started = Instant::now();
    let mut mon = task.start_monitor_with(spec).expect("tasksentry run");

    // A rule alert, then three repeats: a summary of them when the 2 s window ends.
    let miner = |a: &Value| {
        a["rule"] == "Crypto miner launched" && a["output_fields"]["container.id"] == app.id()
    };
    trigger(
        &mon,
        &app,
        &["xmrig", "-o", "pool.example:3333"],
        "the miner",
        miner,
    );
    // At once, so that they fall in the first one's window even on a loaded machine.
    app.run_ok(&[
        "sh",
        "-c",
        "for i in 1 2 3; do xmrig -o pool.example:3333 & done; wait",
    ])
    .unwrap();
    mon.wait_for(|a| miner(a) && a["tasksentry"]["summary"] == true, TIMEOUT)
        .unwrap_or_else(|e| panic!("no summary of the repeats: {e}"));
    // Error (package manager) and Warning with T1059 second among its tags (a program run from
    // /tmp).
    trigger(
        &mon,
        &app,
        &["apt-get", "install", "-y", "ncat"],
        "apt-get",
        |a| a["rule"] == "Package manager launched at runtime",
    );
    let from_tmp = trigger(&mon, &app, &["/tmp/sleep", "0.2"], "/tmp/sleep", |a| {
        a["rule"] == "Execution from a temporary directory"
    });
    assert_eq!(from_tmp["tags"][1], "T1059", "{from_tmp}");
    // Processes too short-lived to be seen: counted and reported.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cursor = mon.line_count();
        app.run_ok(&[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do /bin/true & i=$((i+1)); done; wait",
        ])
        .unwrap();
        if mon
            .wait_for_after(
                cursor,
                |a| a["rule"] == "TaskSentry missed processes",
                Duration::from_secs(3),
            )
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no missed processes reported after bursts"
        );
    }
    // SIGHUP: reported, and the rules are reloaded.
    mon.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    mon.wait_for(|a| a["rule"] == "TaskSentry rules reloaded", TIMEOUT)
        .unwrap_or_else(|e| panic!("no reload: {e}"));

    // CloudWatch down while 700 distinct alerts of one rule are raised: 300 pass the rule
    // budget (the rest are suppressed and reported), more than the 100-record buffer holds
    // (dropped and reported once CloudWatch is back).
    reader.wait_for_message(group, TASK_ID, TIMEOUT, "the first alerts", |v| {
        v["rule"] == "Crypto miner launched"
    });
    relay.set_mode(RelayMode::Drop);
    let cursor = mon.line_count();
    app.run_ok(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 700 ]; do : > /tmp/tswire-$i; i=$((i+1)); done",
    ])
    .unwrap();
    let mut markers = BTreeSet::new();
    mon.wait_for_after(
        cursor,
        |a| {
            if a["rule"] == "Wire marker file created" {
                markers.insert(a["output_fields"]["fd.name"].to_string());
            }
            markers.len() >= 250
        },
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("the markers were not alerted: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    relay.set_mode(RelayMode::Pass);
    reader.wait_for_message(
        group,
        TASK_ID,
        Duration::from_secs(60),
        "the drop report",
        |v| v["rule"] == "TaskSentry dropped alerts",
    );
    // The first heartbeat comes a minute after the sink started.
    let heartbeat_due = Duration::from_secs(100).saturating_sub(started.elapsed());
    reader.wait_for_message(
        group,
        TASK_ID,
        heartbeat_due.max(TIMEOUT),
        "a heartbeat",
        is_heartbeat,
    );

    mon.terminate().unwrap();
    let status = mon.wait_exit(Duration::from_secs(90)).unwrap();
    assert!(status.success(), "{status:?}\n{}", mon.stderr_so_far());

    let stdout: Vec<String> = mon
        .lines_so_far()
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    let stream = reader.messages(group, TASK_ID);
    let mut alerts: Vec<Value> = Vec::new();
    // A profile snapshot is a record of the task's learnt behaviour, not an alert: it must not
    // pass as one to falcosidekick, and it names the task and the container it describes.
    let snapshot = |line: &str, value: &Value| {
        assert!(
            support::falco::check(line).is_err(),
            "a profile snapshot is not an alert to falcosidekick: {line}"
        );
        assert!(
            line.contains(TASK_ID),
            "the snapshot names its task: {line}"
        );
        assert!(
            line.contains("\"app\""),
            "the snapshot names its container: {line}"
        );
        assert!(value["rule"].is_null(), "{line}");
    };
    let image_record = |line: &str, value: &Value| {
        assert!(
            support::falco::check(line).is_err(),
            "an image record is not an alert to falcosidekick: {line}"
        );
        assert!(value["rule"].is_null(), "{line}");
        assert!(line.len() < 256 * 1024, "below CloudWatch's event limit");
    };
    let mut snapshots = (0, 0);
    for line in &stdout {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a line that is not JSON ({e}): {line}"));
        if is_profile_snapshot(&value) {
            snapshot(line, &value);
            snapshots.0 += 1;
        } else if is_image_record(&value) {
            image_record(line, &value);
        } else {
            alerts.push(check_alert_line(line, HOSTNAME));
        }
    }
    let mut heartbeats = 0;
    for line in &stream {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a message that is not JSON ({e}): {line}"));
        if is_profile_snapshot(&value) {
            snapshot(line, &value);
            snapshots.1 += 1;
        } else if is_image_record(&value) {
            image_record(line, &value);
        } else if is_heartbeat(&value) {
            tasksentry::sink::cloudwatch::emf::validate_emf(line)
                .unwrap_or_else(|e| panic!("invalid heartbeat ({e}): {line}"));
            assert!(
                support::falco::check(line).is_err(),
                "a heartbeat is not an alert to falcosidekick"
            );
            heartbeats += 1;
        } else {
            alerts.push(check_alert_line(line, HOSTNAME));
        }
    }
    assert!(heartbeats >= 1);
    assert!(
        snapshots.0 >= 1 && snapshots.1 >= 1,
        "the profile snapshot taken at the stop is on stdout and in CloudWatch: {snapshots:?}"
    );

    // Every alert of this task carries the task's context, the monitor's own reports included;
    // those about the app container name it.
    for alert in &alerts {
        let fields = &alert["output_fields"];
        assert_eq!(fields["ecs.family"], FAMILY, "{alert}");
        assert_eq!(fields["ecs.task_id"], TASK_ID, "{alert}");
        assert_eq!(alert["ecs"]["family"], FAMILY, "{alert}");
        if fields["container.id"] == app.id() {
            assert_eq!(fields["container.name"], "app", "{alert}");
            assert!(
                fields["container.image.digest"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sha256:")),
                "{alert}"
            );
        }
    }
    // Every kind of line was produced and checked.
    let has = |what: &str, f: &dyn Fn(&Value) -> bool| {
        assert!(
            alerts.iter().any(f),
            "no {what} among {} alerts",
            alerts.len()
        );
    };
    has("first alert", &|a| {
        miner(a) && a["output_fields"]["tasksentry.alert.count"] == 1
    });
    has("summary", &|a| {
        miner(a)
            && a["output_fields"]["tasksentry.alert.summary"] == true
            && a["output_fields"]["tasksentry.alert.count"].as_u64() >= Some(2)
    });
    for rule in [
        "TaskSentry missed processes",
        "TaskSentry asked to reload by a process in the task",
        "TaskSentry rules reloaded",
        "TaskSentry suppressed alerts",
        "TaskSentry stopped from outside the task",
        "TaskSentry dropped alerts",
    ] {
        has(rule, &|a| a["rule"] == rule && a["source"] == "tasksentry");
    }
    let drop_report = alerts
        .iter()
        .find(|a| a["rule"] == "TaskSentry dropped alerts")
        .unwrap();
    assert!(
        drop_report["output_fields"]["tasksentry.dropped_by_priority.warning"].as_u64() > Some(0),
        "{drop_report}"
    );

    let mut all = stdout.clone();
    all.extend(stream.iter().cloned());
    let matched = check_documented_patterns(&all, true);
    eprintln!(
        "{} stdout lines, {} stream messages ({heartbeats} heartbeats); matches per documented pattern: {matched:#?}",
        stdout.len(),
        stream.len()
    );
}

#[test]
fn the_visibility_degraded_alert_of_a_local_run_is_a_falco_alert_too() {
    // A non-root app watched by a monitor that can neither trace nor take the app's user's
    // filesystem ids (Docker's default set without SETUID and SETGID): its processes are
    // unreadable, which the monitor reports. No ECS metadata: the ECS keys are absent.
    let task = EmulatedTask::new().expect("task");
    let user = User::new("app", 1000);
    let app = task
        .add_container_with(
            "app",
            ContainerSpec::with_users(vec![user.clone()]).with_user(user.clone()),
        )
        .expect("the app container");
    let caps = CapSet::docker_default()
        .without("SETUID")
        .and_then(|c| c.without("SETGID"))
        .expect("capability names");
    let spec = MonitorSpec::new(&["run", "--hostname", "laptop"]).with_capabilities(caps);
    let mon = task.start_monitor_with(spec).expect("tasksentry run");
    let mut sleeper = app
        .spawn_as(user.uid, &["/bin/sleep", "30"])
        .expect("an app process");
    let alert = mon
        .wait_for(
            |a| {
                a["rule"] == "TaskSentry visibility degraded"
                    && a["output_fields"]["container.id"] == app.id()
            },
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("no visibility_degraded alert: {e}"));
    let _ = sleeper.kill();
    let line = serde_json::to_string(&alert).unwrap();
    let checked = check_alert_line(&line, "laptop");
    let fields = checked["output_fields"].as_object().unwrap();
    assert!(fields.keys().all(|k| !k.starts_with("ecs.")), "{line}");
    assert_eq!(fields["tasksentry.alert.count"], 1, "{line}");
    assert!(
        fields["evt.arg.unreadable"]
            .as_str()
            .is_some_and(|u| u.contains("exe")),
        "{line}"
    );
}
