//! Profile snapshots through CloudWatch Logs (issue 18): three containers that each run more
//! distinct programs, from more distinct parents, than one CloudWatch event can describe are
//! learnt by the real binary in an emulated task shipping to stdout and to a real moto server
//! (through a proxy that measures every PutLogEvents request). Each container's snapshot is
//! split into several records, every record is below CloudWatch's 256 KiB event limit, the
//! snapshots together (over 1 MiB, taken at once when the monitor stops) go out in several
//! batches each below the 1 MiB batch limit, and `profile build` on the events read back from
//! moto in the shape of `aws logs filter-log-events` output writes byte for byte the profile it
//! writes from the stdout copy.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::cloudwatch::{Fault, FaultProxy, Moto, Plan, client};
use support::netns::{Relay, RelayMode};
use support::sidecar::{EcsMetadata, TASK_DOC, TaskCloudWatch};
use support::{Container, EmulatedTask};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Directories per container, each with a shell that runs a program: 1,000 programs (the
/// per-container cap is 1,024 entries) of ~250-byte paths, half of them with a parent of such a
/// path, ~450 KiB of profile per container.
const DIRS: usize = 500;
const CONTAINERS: [&str; 3] = ["busy-a", "busy-b", "busy-c"];
/// CloudWatch Logs' limits.
const MAX_EVENT_BYTES: usize = 256 * 1024;
const MAX_BATCH_BYTES: usize = 1_048_576;

/// A directory of ~240 bytes.
fn program_dir(n: usize) -> String {
    format!(
        "/opt/vendor/acme-analytics-platform/releases/2026.12.0/lib/plugins/ingest/\
         transformers/normalisers/text-and-structured-record-normaliser/with-a-rather-long-\
         directory-name-as-generated-code-has/and-one-more-level/stage-{n:04}/bin"
    )
}

/// The task document naming `containers` (so that the monitor learns them by name).
fn task_doc(task: &EmulatedTask, containers: &[Container]) -> String {
    let mut doc: Value = serde_json::from_str(TASK_DOC).unwrap();
    doc["TaskARN"] = json!(format!(
        "arn:aws:ecs:eu-west-1:111122223333:task/prod/{}",
        task.task_id()
    ));
    let template = doc["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "app")
        .unwrap()
        .clone();
    let entries: Vec<Value> = containers
        .iter()
        .map(|container| {
            let mut entry = template.clone();
            entry["Name"] = json!(container.name());
            entry["DockerName"] = json!(container.name());
            entry["DockerId"] = json!(container.id());
            entry["ImageID"] = json!(format!("sha256:{}", "4".repeat(64)));
            entry["Labels"]["com.amazonaws.ecs.container-name"] = json!(container.name());
            entry
        })
        .collect();
    doc["Containers"] = json!(entries);
    doc.to_string()
}

fn build(input: &Path, out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["profile", "build"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "profile build {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

/// Every event of a log group, as `aws logs filter-log-events --log-group-name GROUP` prints
/// them (its pages put together, as the CLI does).
async fn filter_log_events(endpoint: &str, group: &str) -> Value {
    let cw = client(endpoint).await;
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cw
            .filter_log_events()
            .log_group_name(group)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        for event in page.events() {
            events.push(json!({
                "logStreamName": event.log_stream_name(),
                "timestamp": event.timestamp(),
                "message": event.message(),
                "ingestionTime": event.ingestion_time(),
                "eventId": event.event_id(),
            }));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    json!({"events": events, "searchedLogStreams": []})
}

fn arg<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event["evt"]["args"]
        .as_array()?
        .iter()
        .find(|a| a[0] == name)?
        .get(1)?
        .as_str()
}

#[test]
fn a_snapshot_larger_than_one_event_is_split_shipped_to_cloudwatch_and_reassembled() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let task = EmulatedTask::new().expect("task");
    let containers: Vec<Container> = CONTAINERS
        .iter()
        .map(|name| task.add_container(name).expect("container"))
        .collect();
    // Each directory holds hard links of busybox (their own executable paths): `sh`, which
    // runs `true` of the same directory (a program with a parent of its own).
    let script = format!(
        "sleep 1\nn=0\nwhile [ $n -lt {DIRS} ]; do\n  d=\"$(printf '{}' $n)\"\n  \"$d/sh\" -c \"$d/true; :\"\n  n=$((n + 1))\ndone\n",
        program_dir(0).replace("0000", "%04d")
    );
    for container in &containers {
        let busybox = container.host_path("/bin/busybox");
        for n in 0..DIRS {
            let dir = container.host_path(&program_dir(n));
            std::fs::create_dir_all(&dir).unwrap();
            for applet in ["sh", "true"] {
                std::fs::hard_link(&busybox, dir.join(applet)).unwrap();
            }
        }
        container.install_script("run-all", &script).unwrap();
    }
    let metadata = EcsMetadata::start(&task, &task_doc(&task, &containers));
    let moto = Moto::start();
    let proxy = runtime.block_on(FaultProxy::start(
        moto.addr,
        Plan::Always(Fault::Pass),
        Duration::from_secs(1),
    ));
    let relay = Relay::start(&task.ns_path("net"), proxy.addr, RelayMode::Pass).expect("relay");
    let group = "/security/tasksentry/profiles";
    let spec = TaskCloudWatch::monitor_spec_through(&relay, "stdout,cloudwatch", group)
        .with_args(&["--mode", "trace", "--learn", "1h", "--learn-interval", "1h"])
        .with_ecs_metadata(&metadata);
    let (mut mon, _recording) = task
        .start_monitor_recording_with(spec, &containers[0], TIMEOUT)
        .expect("the monitor starts");
    let runs: Vec<support::ContainerProcess> = containers
        .iter()
        .map(|c| c.spawn(&["run-all"]).expect("the programs start"))
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    std::thread::sleep(Duration::from_millis(1500));
    mon.terminate().unwrap();
    // It drains its queues and flushes CloudWatch (at most 25 s) first: slow on a loaded
    // machine.
    let stopping = std::time::Instant::now();
    mon.wait_exit(2 * TIMEOUT).expect("the monitor stops");
    eprintln!("the monitor stopped in {:?}", stopping.elapsed());
    if stopping.elapsed() > Duration::from_secs(30) {
        eprintln!("its log:\n{}", mon.stderr_so_far());
    }
    let stdout = mon.lines_so_far();

    // Each container's snapshot on stdout: several parts.
    let parts: Vec<Value> = stdout
        .iter()
        .filter(|l| l.contains("\"profile_snapshot\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in CONTAINERS {
        let of: Vec<&Value> = parts
            .iter()
            .filter(|v| arg(v, "container") == Some(name))
            .collect();
        assert!(
            of.len() > 1,
            "{name}: one record for the whole snapshot: {} part(s)\nstderr:\n{}",
            of.len(),
            mon.stderr_so_far()
        );
        assert!(
            of.iter()
                .all(|p| arg(p, "parts") == Some(&of.len().to_string())),
            "{name}: one snapshot, its parts numbered out of {}",
            of.len()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let from_stdout = dir.path().join("stdout.ndjson");
    std::fs::write(&from_stdout, stdout.join("\n")).unwrap();

    // What reached CloudWatch, read back as `aws logs filter-log-events` prints it.
    let document = runtime.block_on(filter_log_events(&moto.url(), group));
    let events = document["events"].as_array().unwrap();
    let shipped: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("\"profile_snapshot\""))
        .collect();
    assert_eq!(
        shipped.len(),
        parts.len(),
        "every part reached CloudWatch once"
    );
    for event in events {
        let message = event["message"].as_str().unwrap();
        assert!(
            message.len() < MAX_EVENT_BYTES,
            "a CloudWatch event of {} bytes",
            message.len()
        );
    }
    let puts = proxy.counters.put_sizes.lock().unwrap().clone();
    assert!(!puts.is_empty());
    for put in &puts {
        assert!(put.batch_bytes < MAX_BATCH_BYTES, "{put:?}");
        assert!(put.largest_event < MAX_EVENT_BYTES, "{put:?}");
    }
    let shipped_bytes: usize = shipped.iter().map(|m| m.len() + 26).sum();
    eprintln!(
        "{} parts, {shipped_bytes} bytes in CloudWatch; {} PutLogEvents, largest batch {} bytes, largest event {} bytes",
        parts.len(),
        puts.len(),
        puts.iter().map(|p| p.batch_bytes).max().unwrap_or(0),
        puts.iter().map(|p| p.largest_event).max().unwrap_or(0)
    );
    assert!(
        shipped_bytes > MAX_BATCH_BYTES,
        "the snapshots are larger than one batch: {shipped_bytes} bytes"
    );
    let snapshot_batches = puts.iter().filter(|p| p.largest_event > 100 * 1024).count();
    assert!(snapshot_batches > 1, "{puts:?}");
    let from_cloudwatch = dir.path().join("filter-log-events.json");
    std::fs::write(
        &from_cloudwatch,
        serde_json::to_string_pretty(&document).unwrap(),
    )
    .unwrap();

    // The same profile from either copy, with every program.
    let profile_stdout = build(&from_stdout, &dir.path().join("from-stdout.yaml"));
    let profile_cloudwatch = build(&from_cloudwatch, &dir.path().join("from-cloudwatch.yaml"));
    assert_eq!(profile_cloudwatch, profile_stdout);
    for n in [0, DIRS / 2, DIRS - 1] {
        let dir = program_dir(n);
        assert!(
            profile_cloudwatch.contains(&format!(
                "(proc.exepath = \"{dir}/true\" and proc.name in (\"true\") and (not proc.pexepath exists or proc.pexepath in (\"{dir}/sh\")))"
            )),
            "{dir}/true is not in the profile:\n{profile_cloudwatch}"
        );
    }
    assert!(
        !profile_cloudwatch.contains("PROFILE OVERFLOW"),
        "{profile_cloudwatch}"
    );
    drop(relay);
    drop(proxy);
}
