//! The heartbeat carries what the monitor can see, end to end: the real `tasksentry run` as the
//! sidecar of an emulated task with a non-root app (`USER app`, home 0700), shipping to a moto
//! server, under two capability sets side by side:
//!
//! - the sidecar set of the shipped task definitions (read from the JSON): it sees everything,
//!   so its heartbeat says `VisibilityPercent` 100 with 1 container checked and
//!   `ContainersDegraded` 0, and no `TaskSentry visibility degraded` alert reaches the stream;
//! - `DAC_OVERRIDE` alone (no `SYS_PTRACE`, no `SETUID`/`SETGID`): it cannot read the app's
//!   private `/proc` entries nor its root, so the alert reaches the stream naming the container
//!   and the fix, and the heartbeat says `VisibilityPercent` 0 and `ContainersDegraded` 1: what
//!   the template's visibility alarm (the minimum `VisibilityPercent` of the family's tasks
//!   below 100) needs to catch this one blind task among healthy ones.
//!
//! And the heartbeat counts what the monitor missed: after a burst of processes too short for
//! the monitor to see (reported as `TaskSentry missed processes`), the next heartbeat's
//! `ProcessesMissed` is at least the count that alert gave.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::caps::{CapSet, shipped_sidecar_sets};
use support::netns::RelayMode;
use support::sidecar::{EcsMetadata, TASK_ID, TaskCloudWatch, task_document};
use support::{ContainerSpec, EmulatedTask, User};

const GROUP: &str = "/security/tasksentry/alerts";

/// What one sidecar shipped: its first heartbeat (with the visibility figures, and after the
/// first missed-processes alert when there was a burst), its visibility alerts for the app,
/// and the count of its first missed-processes alert.
struct Shipped {
    heartbeat: Value,
    degraded_alerts: Vec<Value>,
    app_id: String,
    missed: Option<u64>,
}

fn run(caps: CapSet, burst: bool) -> Shipped {
    let task = EmulatedTask::new().expect("task");
    let user = User::new("app", 1000);
    let app = task
        .add_container_with(
            "app",
            ContainerSpec::with_users(vec![user.clone()]).with_user(user),
        )
        .expect("the app container");
    let cloudwatch = TaskCloudWatch::start(&task, RelayMode::Pass);
    let metadata = EcsMetadata::start(&task, &task_document(&app).to_string());
    let spec = cloudwatch
        .monitor_spec("stdout,cloudwatch", GROUP)
        .with_capabilities(caps)
        .with_ecs_metadata(&metadata);
    let mon = task.start_monitor_with(spec).expect("tasksentry run");
    // The app runs something of its own (as its user) while the monitor starts.
    let _work = app
        .spawn_as(1000, &["/bin/sleep", "600"])
        .expect("an app process");

    // Bursts of processes that live a millisecond, until the monitor says it missed some.
    let mut missed: Option<(u64, u128)> = None;
    let burst_deadline = Instant::now() + Duration::from_secs(60);
    while burst && missed.is_none() {
        let cursor = mon.line_count();
        app.run_as(
            1000,
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 300 ]; do /bin/true & i=$((i+1)); done; wait",
            ],
        )
        .expect("a burst");
        if let Ok(alert) = mon.wait_for_after(
            cursor,
            |a| a["rule"] == "TaskSentry missed processes",
            Duration::from_secs(3),
        ) {
            let count = alert["output_fields"]["tasksentry.count"].as_u64().unwrap();
            let at = tasksentry::event::Timestamp::parse_rfc3339(alert["time"].as_str().unwrap())
                .unwrap()
                .as_millis() as u128;
            missed = Some((count, at));
        }
        assert!(
            Instant::now() < burst_deadline,
            "no missed processes reported after a minute of bursts"
        );
    }
    // The heartbeat goes out once per wall-clock minute, in its middle: the second one within
    // 130 s.
    let deadline = Instant::now() + Duration::from_secs(130);
    let heartbeat = loop {
        let messages: Vec<Value> = cloudwatch
            .reader
            .messages(GROUP, TASK_ID)
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect();
        // A heartbeat sent before the first check (the sink may start a few milliseconds
        // before the collectors, and heartbeats go out in the middle of each wall-clock minute)
        // leaves the figures out; the next one, a minute later, has them.
        let after_missed = |m: &Value| {
            missed.is_none_or(|(_, at)| {
                m["_aws"]["Timestamp"]
                    .as_u64()
                    .is_some_and(|t| u128::from(t) > at)
            })
        };
        if let Some(heartbeat) = messages.iter().find(|m| {
            m["kind"] == "heartbeat" && m.get("VisibilityPercent").is_some() && after_missed(m)
        }) {
            break heartbeat.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat with the visibility figures in 130 s; monitor stderr:\n{}",
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Alerts raised before the heartbeat was built are delivered by then (200 ms batches).
    std::thread::sleep(Duration::from_secs(1));
    let degraded_alerts = cloudwatch
        .reader
        .messages(GROUP, TASK_ID)
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|a| a["rule"] == "TaskSentry visibility degraded")
        .collect();
    Shipped {
        heartbeat,
        degraded_alerts,
        app_id: app.id().to_string(),
        missed: missed.map(|(count, _)| count),
    }
}

#[test]
fn the_heartbeat_says_how_much_of_the_task_the_monitor_sees_and_what_it_missed() {
    let shipped = shipped_sidecar_sets().expect("the shipped sidecar sets");
    let (seeing, _) = shipped.first().expect("a shipped sidecar set").clone();
    let blind = CapSet::from_names(&["DAC_OVERRIDE"]).unwrap();
    let (full, partial) = std::thread::scope(|scope| {
        let full = scope.spawn(move || run(seeing, true));
        let partial = scope.spawn(move || run(blind, false));
        (full.join().unwrap(), partial.join().unwrap())
    });

    let hb = &full.heartbeat;
    assert_eq!(hb["VisibilityPercent"].as_f64(), Some(100.0), "{hb}");
    let missed = full.missed.expect("a missed-processes alert");
    assert!(missed > 0);
    let in_heartbeat = hb["ProcessesMissed"].as_u64().unwrap();
    assert!(
        in_heartbeat >= missed,
        "the heartbeat after {missed} missed processes says {in_heartbeat}: {hb}"
    );
    assert_eq!(hb["ContainersDegraded"], json!(0), "{hb}");
    assert!(
        full.degraded_alerts.is_empty(),
        "the shipped set sees everything, yet: {:?}",
        full.degraded_alerts
    );
    // The metric the alarm reads is declared in the record's EMF directive.
    let names: Vec<&str> = hb["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"VisibilityPercent") && names.contains(&"ContainersDegraded"),
        "{names:?}"
    );

    let hb = &partial.heartbeat;
    assert_eq!(hb["ContainersDegraded"], json!(1), "{hb}");
    let percent = hb["VisibilityPercent"].as_f64().unwrap();
    assert!(
        percent < 100.0,
        "a blind monitor reported {percent} %: {hb}"
    );
    let alert = partial
        .degraded_alerts
        .iter()
        .find(|a| a["output_fields"]["container.id"] == partial.app_id.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no visibility alert for the app in the stream: {:?}",
                partial.degraded_alerts
            )
        });
    let fields = &alert["output_fields"];
    let unreadable = fields["evt.arg.unreadable"].as_str().unwrap();
    for facet in ["exe", "environ", "fd", "root"] {
        assert!(unreadable.split(',').any(|f| f == facet), "{alert}");
    }
    assert!(
        fields["evt.arg.fix"]
            .as_str()
            .unwrap()
            .contains("SYS_PTRACE"),
        "{alert}"
    );
    assert!(
        fields["evt.arg.rules"]
            .as_str()
            .unwrap()
            .contains("Reverse shell"),
        "{alert}"
    );
    assert_eq!(alert["priority"], "Error");
}
