//! The CloudWatch Logs output end to end: the real `tasksentry run` as the sidecar of an
//! emulated Fargate task, shipping to a moto server on the host.
//!
//! The monitor lives in the task's network namespace, where the host's loopback does not exist:
//! a relay listening *inside* that namespace (`support::sidecar`, `support::netns`) forwards its
//! connections to moto, and plays outages on command (connections held unanswered, or
//! dropped). A stand-in for the ECS task metadata endpoint, in the same namespace, gives the
//! monitor its task id.
//!
//! - Alerts raised by behaviours in an app container arrive in the configured group, in the
//!   stream named after the ECS task id, in chronological order, each message the very JSON
//!   line the monitor printed on stdout (`outputs: stdout,cloudwatch`).
//! - SIGTERM while 5,000 alerts wait undelivered (CloudWatch unreachable until the stop): the
//!   monitor flushes every one of them within the flush deadline, says so on stderr and exits 0.
//!   Also when the stop comes while a call hangs on a connection that died: the documented 10 s
//!   flush timeout is not spent waiting for it.
//! - An outage longer than the memory buffer: with a spill directory nothing is lost; without
//!   one, what overflowed is counted exactly and reported in the stream (at-least-once for what
//!   was buffered, and no silent drop).
//!
//! - The retry settings: a 500 ms attempt timeout and a 1 s backoff cap retry a service that
//!   never answers at least every 1.5 s, and everything arrives once it answers.
//!
//! Assertions compare what reached moto with what the monitor printed on stdout, so they hold
//! however many of the generated file events the collectors saw.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cloudwatch::{Moto, StreamReader};
use support::netns::{Relay, RelayMode};
use support::sidecar::{EcsMetadata, TASK_DOC, TASK_ID, TaskCloudWatch};
use support::{Container, ContainerSpec, EmulatedTask, Monitor, MonitorSpec, repo_path};

/// How long a single awaited condition may take (generous: the machine is shared).
const TIMEOUT: Duration = Duration::from_secs(30);

/// One alert per file created under `/tmp/tsmark-…` (fswatch `creat`): a cheap way to make
/// thousands of distinct alerts, the marker being in `fd.name`.
const MARKER_RULES: &str = r"
- rule: Marker file created
  desc: A test marker file was created in /tmp.
  condition: evt.type = creat and fd.name startswith /tmp/tsmark-
  output: Marker file created (file=%fd.name container_id=%container.id)
  priority: WARNING
  tags: [test]
";

/// The marker (`/tmp/tsmark-…` path) of a marker alert.
fn marker_of(alert: &Value) -> Option<String> {
    (alert["rule"] == "Marker file created")
        .then(|| {
            alert["output_fields"]["fd.name"]
                .as_str()
                .map(str::to_owned)
        })
        .flatten()
}

fn markers_in_messages(alerts: &[(i64, String)]) -> BTreeMap<String, usize> {
    let mut markers = BTreeMap::new();
    for (_, message) in alerts {
        let value: Value = serde_json::from_str(message)
            .unwrap_or_else(|error| panic!("a message that is not JSON ({error}): {message}"));
        if let Some(marker) = marker_of(&value) {
            *markers.entry(marker).or_default() += 1;
        }
    }
    markers
}

fn markers_on_stdout(mon: &Monitor) -> BTreeSet<String> {
    mon.events().iter().filter_map(marker_of).collect()
}

/// Everything a CloudWatch monitor needs besides its own arguments.
struct Setup {
    task: EmulatedTask,
    app: Container,
    /// Kept alive for the test (dropping it stops moto).
    _moto: Moto,
    relay: Relay,
    reader: StreamReader,
    dir: PathBuf,
}

fn setup(spec: ContainerSpec, relay_mode: RelayMode) -> Setup {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container_with("app", spec).expect("container");
    let TaskCloudWatch {
        moto,
        relay,
        reader,
    } = TaskCloudWatch::start(&task, relay_mode);
    let dir = task.dir().to_owned();
    Setup {
        task,
        app,
        _moto: moto,
        relay,
        reader,
        dir,
    }
}

impl Setup {
    /// The monitor shipping to `group` through the relay, printing its alerts on stdout too.
    fn monitor_spec(&self, group: &str) -> MonitorSpec {
        TaskCloudWatch::monitor_spec_through(&self.relay, "stdout,cloudwatch", group)
    }

    /// Writes the marker rules and returns the arguments loading only them and the internal
    /// rules (so that no default file rule claims the marker files first), with aggregation
    /// and budgets off: one alert per marker.
    fn marker_args(&self) -> Vec<String> {
        let rules = self.dir.join("marker-rules.yaml");
        std::fs::write(&rules, MARKER_RULES).unwrap();
        vec![
            "--no-default-rules".into(),
            "--rules".into(),
            repo_path("rules/tasksentry_internal_rules.yaml")
                .to_str()
                .unwrap()
                .to_owned(),
            "--rules".into(),
            rules.to_str().unwrap().to_owned(),
            "--aggregation-window".into(),
            "0s".into(),
            "--rule-alert-budget".into(),
            "0".into(),
            "--alert-budget".into(),
            "0".into(),
        ]
    }

    /// Starts the monitor shipping to `group` with [`Setup::marker_args`] and `more`.
    fn start_marker_monitor(&self, group: &str, more: &[&str]) -> Monitor {
        let spec = self
            .monitor_spec(group)
            .with_args(&self.marker_args())
            .with_args(more);
        self.task
            .start_monitor_with(spec)
            .expect("starting tasksentry run")
    }

    /// Connections the relay has held unanswered so far: each is one attempt of the sink.
    fn held(&self) -> u64 {
        self.relay
            .counters()
            .held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates marker files until the monitor alerts on one: its file watches are in place.
    fn wait_until_watching(&self, mon: &Monitor) {
        let deadline = Instant::now() + TIMEOUT;
        let mut n = 0;
        loop {
            self.app
                .run_ok(&["sh", "-c", &format!(": > /tmp/tsmark-ready-{n}")])
                .expect("creating a marker");
            n += 1;
            if mon
                .wait_for(
                    |a| marker_of(a).is_some_and(|m| m.starts_with("/tmp/tsmark-ready-")),
                    Duration::from_millis(300),
                )
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the monitor never alerted on a marker file:\n{}",
                mon.stderr_so_far()
            );
        }
    }

    /// Creates `count` marker files `/tmp/tsmark-<prefix>-<i>` in chunks, each time waiting
    /// until the monitor printed the chunk's alerts (so that the file watch queue never
    /// overflows, even on a loaded machine).
    fn make_markers(&self, mon: &Monitor, prefix: &str, count: usize) {
        const CHUNK: usize = 500;
        let mut start = 0;
        while start < count {
            let end = (start + CHUNK).min(count);
            let cursor = mon.line_count();
            self.app
                .run_ok(&[
                    "sh",
                    "-c",
                    &format!(
                        "i={start}; while [ $i -lt {end} ]; do : > /tmp/tsmark-{prefix}-$i; i=$((i+1)); done"
                    ),
                ])
                .expect("creating markers");
            let mut seen = BTreeSet::new();
            let wanted = format!("/tmp/tsmark-{prefix}-");
            mon.wait_for_after(
                cursor,
                |a| {
                    if let Some(marker) = marker_of(a).filter(|m| m.starts_with(&wanted)) {
                        seen.insert(marker);
                    }
                    seen.len() >= end - start
                },
                Duration::from_secs(60),
            )
            .unwrap_or_else(|error| {
                panic!("markers {prefix} {start}..{end} not all alerted: {error}")
            });
            start = end;
        }
    }
}

/// SIGTERM; the monitor must exit 0.
fn stop(mon: &mut Monitor) {
    mon.terminate().expect("SIGTERM");
    let status = mon
        .wait_exit(Duration::from_secs(90))
        .expect("the monitor exits");
    assert!(
        status.success(),
        "SIGTERM is a clean stop: {status:?}\n{}",
        mon.stderr_so_far()
    );
}

/// `text` without ANSI SGR sequences (`ESC [ … m`): the log lines on stderr may be coloured.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The `delivered=N` of the "CloudWatch Logs flushed." log line.
fn flushed_count(stderr: &str) -> Option<u64> {
    let stderr = strip_ansi(stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("CloudWatch Logs flushed."))?;
    let start = line.find("delivered=")? + "delivered=".len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn alerts_arrive_in_the_task_stream_in_order_as_printed_on_stdout() {
    let s = setup(
        ContainerSpec::default()
            .with_host_python()
            .expect("python3 on the host"),
        RelayMode::Pass,
    );
    for tool in ["xmrig", "nmap", "apt-get"] {
        s.app
            .install_script(tool, "sleep 1.5")
            .expect("a fake tool");
    }
    let metadata = EcsMetadata::start(&s.task, TASK_DOC);
    let group = "/ecs/tasksentry-e2e";
    // Ready once the monitor has read the task (the recording shows the app container).
    let (mut mon, _recording) = s
        .task
        .start_monitor_recording_with(
            s.monitor_spec(group)
                .with_args(&["--hostname", "test-host"])
                .with_ecs_metadata(&metadata),
            &s.app,
            TIMEOUT,
        )
        .expect("starting tasksentry run");
    assert!(
        metadata.requests() >= 1,
        "the monitor asked the metadata endpoint for its task"
    );

    // Distinct behaviours, one at a time: each alert is printed before the next starts, so
    // their times are in this order.
    // (rule, command, what its alert's proc.cmdline contains: one of these)
    let behaviours: Vec<(&str, Vec<&str>, &[&str])> = vec![
        (
            "Shell spawned by a non-shell program",
            vec!["python3", "-c", "import os; os.system('sleep 1.5; true')"],
            // The shell python started.
            &["sh -c sleep 1.5; true"],
        ),
        (
            "Crypto miner launched",
            vec!["xmrig", "-o", "pool.example:3333"],
            &["-o pool.example:3333"],
        ),
        (
            "Network scanner launched",
            vec!["nmap", "-sS", "198.51.100.0/24"],
            &["-sS 198.51.100.0/24"],
        ),
        (
            "Decoded payload piped to a shell",
            vec!["sh", "-c", "echo c2xlZXAgMS41Cg== | base64 -d | sh"],
            // The rule fires for both ends of the pipe: the shell reading the decoded payload
            // (it lives 1.5 s) and the decoder (it lives milliseconds, so it is caught when
            // the machine is busy); whichever is printed first is the one waited for.
            &["sh", "base64 -d"],
        ),
        (
            "Package manager launched at runtime",
            vec!["apt-get", "install", "-y", "ncat"],
            &["install -y ncat"],
        ),
    ];
    let mut printed: Vec<Value> = Vec::new();
    let mut running = Vec::new();
    for (rule, command, _) in &behaviours {
        running.push(s.app.spawn(command).expect("spawning a behaviour"));
        let alert = mon
            .wait_for(
                |a| a["rule"] == *rule && a["output_fields"]["container.id"] == s.app.id(),
                TIMEOUT,
            )
            .unwrap_or_else(|error| panic!("no alert of {rule:?}: {error}"));
        printed.push(alert);
    }
    // Each on stdout exactly as a JSON line (the CloudWatch message must be that line).
    let stdout_lines = mon.lines_so_far();
    let line_of = |alert: &Value| -> String {
        stdout_lines
            .iter()
            .find(|l| serde_json::from_str::<Value>(l).ok().as_ref() == Some(alert))
            .cloned()
            .unwrap()
    };
    let printed_lines: Vec<String> = printed.iter().map(line_of).collect();

    // The stream is named after the ECS task id, in the configured group.
    let delivered = s.reader.wait_for_alerts(
        group,
        TASK_ID,
        Duration::from_secs(60),
        "the behaviours' alerts",
        |alerts| {
            printed_lines
                .iter()
                .all(|line| alerts.iter().any(|(_, m)| m == line))
        },
    );
    for mut process in running {
        let _ = process.kill();
    }

    // In chronological order: timestamps never go back, each is the alert's own time, and the
    // behaviours appear in the order they happened.
    assert!(
        delivered.windows(2).all(|w| w[0].0 <= w[1].0),
        "events in time order: {delivered:?}"
    );
    let positions: Vec<usize> = printed_lines
        .iter()
        .map(|line| delivered.iter().position(|(_, m)| m == line).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the behaviours' alerts are in the order they happened: {positions:?}"
    );
    for ((timestamp, message), (rule, _, cmdlines)) in positions
        .iter()
        .map(|&p| &delivered[p])
        .zip(behaviours.iter())
    {
        let alert: Value = serde_json::from_str(message).expect("the message is JSON");
        let time =
            tasksentry::event::Timestamp::parse_rfc3339(alert["time"].as_str().unwrap()).unwrap();
        assert_eq!(*timestamp, time.as_millis() as i64, "{message}");
        assert_eq!(alert["rule"], *rule);
        assert_eq!(alert["hostname"], "test-host");
        assert!(alert["priority"].is_string() && alert["output"].is_string());
        assert_eq!(alert["output_fields"]["container.id"], s.app.id());
        let seen = alert["output_fields"]["proc.cmdline"]
            .as_str()
            .unwrap_or("");
        assert!(
            cmdlines.iter().any(|c| seen.contains(c)),
            "{rule}: proc.cmdline {seen:?} contains one of {cmdlines:?}"
        );
    }

    stop(&mut mon);
    // After the stop, CloudWatch holds exactly what stdout printed (the stop alert included).
    let stdout: BTreeSet<String> = mon
        .lines_so_far()
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    let stream: BTreeSet<String> = s
        .reader
        .alerts(group, TASK_ID)
        .unwrap()
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        stream, stdout,
        "every alert printed on stdout is in CloudWatch, byte for byte, and nothing else"
    );
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("TaskSentry stopped from outside the task")),
        "the stop itself is reported: {stdout:#?}"
    );
    let groups = s
        .reader
        .runtime
        .block_on(
            s.reader
                .client
                .describe_log_streams()
                .log_group_name(group)
                .send(),
        )
        .unwrap();
    let names: Vec<&str> = groups
        .log_streams()
        .iter()
        .filter_map(|st| st.log_stream_name())
        .collect();
    assert_eq!(names, vec![TASK_ID], "one stream, named after the task");
}

#[test]
fn sigterm_with_five_thousand_undelivered_alerts_flushes_them_all_and_exits_zero() {
    let s = setup(ContainerSpec::default(), RelayMode::Hold);
    let group = "/ecs/tasksentry-flush";
    let stream = "flush-test";
    let mut mon =
        s.start_marker_monitor(group, &["--log-stream", stream, "--flush-timeout", "45s"]);
    s.wait_until_watching(&mon);
    s.make_markers(&mon, "flush", 5_000);
    let printed = markers_on_stdout(&mon);
    assert!(printed.len() > 5_000, "{}", printed.len());
    // CloudWatch has been unreachable all along: the sink tried and is stuck in a held call,
    // and nothing was delivered.
    let counters = s.relay.counters();
    assert!(
        counters.held.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the sink tried to deliver"
    );
    assert_eq!(
        counters
            .forwarded
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        s.reader.alerts(group, stream).is_err(),
        "nothing delivered yet"
    );

    let stopping = mon.line_count();
    let stop_sent = Instant::now();
    mon.terminate().expect("SIGTERM");
    // The monitor reports the stop before draining: only then does the network come back.
    mon.wait_for_after(
        stopping,
        |a| a["rule"] == "TaskSentry stopped from outside the task",
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("the stop is not reported: {error}"));
    s.relay.set_mode(RelayMode::Pass);
    let status = mon
        .wait_exit(Duration::from_secs(90))
        .expect("the monitor exits");
    let stop_took = stop_sent.elapsed();
    let stderr = mon.stderr_so_far();
    assert!(
        status.success(),
        "exit code 0 after the flush: {status:?}\n{stderr}"
    );
    let flushed =
        flushed_count(&stderr).unwrap_or_else(|| panic!("stderr reports the flush:\n{stderr}"));
    assert!(flushed > 5_000, "flushed {flushed}:\n{stderr}");

    let delivered = markers_in_messages(&s.reader.alerts(group, stream).unwrap());
    let missing: Vec<&String> = printed
        .iter()
        .filter(|m| !delivered.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts printed were not delivered, e.g. {:?}",
        missing.len(),
        printed.len(),
        &missing[..missing.len().min(5)]
    );
    let stop_alert_delivered = s
        .reader
        .alerts(group, stream)
        .unwrap()
        .iter()
        .any(|(_, m)| m.contains("TaskSentry stopped from outside the task"));
    assert!(stop_alert_delivered, "the stop alert is flushed too");
    eprintln!(
        "flushed {flushed} records at SIGTERM, {stop_took:?} from SIGTERM to exit; {} distinct markers delivered of {} printed",
        delivered.len(),
        printed.len()
    );
}

#[test]
fn sigterm_while_a_call_hangs_on_a_dead_connection_still_flushes_within_the_deadline() {
    // The documented example's flush timeout (docs/platform-engineers.md), no longer than the
    // sink's per-attempt timeout: a call hanging when the stop comes must not use it all up.
    let s = setup(ContainerSpec::default(), RelayMode::Hold);
    let group = "/ecs/tasksentry-dead-connection";
    let stream = "dead-connection";
    let mut mon =
        s.start_marker_monitor(group, &["--log-stream", stream, "--flush-timeout", "10s"]);
    s.wait_until_watching(&mon);
    s.make_markers(&mon, "dead", 500);
    let printed = markers_on_stdout(&mon);
    // Stop just after the sink started a new call: it hangs for the sink's whole attempt
    // timeout unless the shutdown cuts it short.
    let before = s.held();
    let deadline = Instant::now() + TIMEOUT;
    while s.held() == before {
        assert!(Instant::now() < deadline, "the sink made no new attempt");
        std::thread::sleep(Duration::from_millis(5));
    }
    mon.terminate().expect("SIGTERM");
    // New connections work from now on; the held one stays dead.
    s.relay.set_mode_keeping_held(RelayMode::Pass);
    let status = mon
        .wait_exit(Duration::from_secs(60))
        .expect("the monitor exits");
    let stderr = mon.stderr_so_far();
    assert!(status.success(), "flushed in time: {status:?}\n{stderr}");
    let delivered = markers_in_messages(&s.reader.alerts(group, stream).unwrap());
    let missing = printed
        .iter()
        .filter(|m| !delivered.contains_key(*m))
        .count();
    assert_eq!(missing, 0, "{} printed, {} missing", printed.len(), missing);
}

#[test]
fn the_attempt_timeout_and_backoff_settings_shape_the_retries_against_a_hung_service() {
    // A service that accepts connections and never answers (a black-holed VPC endpoint): with
    // a 500 ms attempt timeout and a 1 s backoff cap the sink abandons and retries a call at
    // least every 1.5 s. With the defaults (10 s, 20 s) it would make at most one new attempt in
    // the 6 s watched here.
    let s = setup(ContainerSpec::default(), RelayMode::Hold);
    let group = "/ecs/tasksentry-short-attempts";
    let stream = "short-attempts";
    let mut mon = s.start_marker_monitor(
        group,
        &[
            "--log-stream",
            stream,
            "--cloudwatch-attempt-timeout",
            "500ms",
            "--cloudwatch-retry-max",
            "1s",
        ],
    );
    s.wait_until_watching(&mon);
    s.make_markers(&mon, "hung", 50);
    let printed = markers_on_stdout(&mon);
    let before = s.held();
    std::thread::sleep(Duration::from_secs(6));
    let attempts = s.held() - before;
    assert!(
        attempts >= 4,
        "{attempts} attempts in 6 s against a hung service with a 500 ms attempt timeout:\n{}",
        mon.stderr_so_far()
    );
    // The service answers again: everything printed arrives, nothing was given up.
    s.relay.set_mode(RelayMode::Pass);
    s.reader
        .wait_for_alerts(group, stream, TIMEOUT, "the markers after the hang", |a| {
            let delivered = markers_in_messages(a);
            printed.iter().all(|m| delivered.contains_key(m))
        });
    stop(&mut mon);
}

/// Plays an outage: a few markers delivered, then CloudWatch unreachable (connections dropped)
/// while `during` markers are made, then back. Returns the markers printed, and what the
/// stream holds once the monitor has stopped.
fn outage(
    s: &Setup,
    mon: &mut Monitor,
    group: &str,
    stream: &str,
    during: usize,
) -> (BTreeSet<String>, Vec<(i64, String)>) {
    s.wait_until_watching(mon);
    s.make_markers(mon, "before", 20);
    let before = markers_on_stdout(mon);
    s.reader
        .wait_for_alerts(group, stream, TIMEOUT, "markers before the outage", |a| {
            markers_in_messages(a).len() >= before.len()
        });

    s.relay.set_mode(RelayMode::Drop);
    let dropped_before = s
        .relay
        .counters()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    s.make_markers(mon, "outage", during);
    // The sink keeps trying through the outage.
    let deadline = Instant::now() + TIMEOUT;
    while s
        .relay
        .counters()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed)
        < dropped_before + 3
    {
        assert!(
            Instant::now() < deadline,
            "the sink did not retry during the outage:\n{}",
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.relay.set_mode(RelayMode::Pass);
    // Delivery resumes on its own (backoff is capped), before any stop; only then can new
    // alerts find room in a buffer the outage filled.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mon.stderr_so_far().contains("CloudWatch delivery resumed.") {
        assert!(
            Instant::now() < deadline,
            "delivery did not resume:\n{}",
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.make_markers(mon, "after", 20);
    let printed = markers_on_stdout(mon);
    s.reader.wait_for_alerts(
        group,
        stream,
        Duration::from_secs(60),
        "markers made after the outage",
        |a| {
            markers_in_messages(a)
                .keys()
                .filter(|m| m.starts_with("/tmp/tsmark-after-"))
                .count()
                >= 20
        },
    );
    stop(mon);
    let stderr = mon.stderr_so_far();
    assert!(
        stderr.contains("CloudWatch delivery failed; retrying."),
        "the outage is logged:\n{stderr}"
    );
    (printed, s.reader.alerts(group, stream).unwrap())
}

#[test]
fn an_outage_longer_than_memory_spills_and_loses_nothing() {
    let s = setup(ContainerSpec::default(), RelayMode::Pass);
    let group = "/ecs/tasksentry-outage";
    let stream = "outage-spill";
    let spill = s.dir.join("spill");
    let mut mon = s.start_marker_monitor(
        group,
        &[
            "--log-stream",
            stream,
            "--buffer-capacity",
            "100",
            "--spill-dir",
            spill.to_str().unwrap(),
        ],
    );
    let (printed, delivered) = outage(&s, &mut mon, group, stream, 600);
    let delivered = markers_in_messages(&delivered);
    let missing: Vec<&String> = printed
        .iter()
        .filter(|m| !delivered.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts lost, e.g. {:?}",
        missing.len(),
        printed.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        support::cloudwatch::dir_is_empty(&spill),
        "the spill directory is empty once everything is delivered"
    );
}

#[test]
fn an_outage_overflowing_memory_without_spill_reports_exactly_what_it_dropped() {
    let s = setup(ContainerSpec::default(), RelayMode::Pass);
    let group = "/ecs/tasksentry-outage";
    let stream = "outage-drop";
    let mut mon =
        s.start_marker_monitor(group, &["--log-stream", stream, "--buffer-capacity", "100"]);
    let (printed, messages) = outage(&s, &mut mon, group, stream, 600);
    let delivered = markers_in_messages(&messages);
    let missing = printed
        .iter()
        .filter(|m| !delivered.contains_key(*m))
        .count() as u64;
    let reports: Vec<Value> = messages
        .iter()
        .filter_map(|(_, m)| serde_json::from_str::<Value>(m).ok())
        .filter(|v| v["rule"] == "TaskSentry dropped alerts")
        .collect();
    let reported: u64 = reports
        .iter()
        .map(|r| r["tasksentry"]["count"].as_u64().unwrap())
        .sum();
    // The markers are Warning alerts; a drop report counts every alert it dropped, by
    // priority ("452 alerts: 451 warning, 1 notice"): other alerts the task raised during
    // the outage may be among them, so the Warning counts are the ones compared exactly.
    let reported_warning: u64 = reports
        .iter()
        .map(|r| {
            let output = r["output"].as_str().unwrap();
            let (_, after) = output.split_once("alerts: ").expect("a breakdown");
            after
                .split(", ")
                .find_map(|part| part.split_once(" warning"))
                .map_or(0, |(n, _)| n.trim().parse::<u64>().expect("a count"))
        })
        .sum();
    assert!(missing > 0, "600 alerts cannot fit a 100-record buffer");
    assert_eq!(
        reported_warning, missing,
        "every marker not delivered is counted in a drop report: {reports:#?}"
    );
    assert!(reported >= reported_warning, "{reports:#?}");
    for report in &reports {
        assert_eq!(report["priority"], "Critical");
        assert!(
            report["output"].as_str().unwrap().contains("(buffer full)"),
            "{report}"
        );
    }
}
