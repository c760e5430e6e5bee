//! Self-protection end to end: the real `tasksentry run` (a supervisor and its monitor
//! worker) as the sidecar of an emulated task.
//!
//! - `kill -9` of the monitor worker from a process in an app container: the supervisor
//!   restarts it, the restarted monitor alerts naming the signal, the dead pid and the restart,
//!   and detection works again afterwards.
//! - A restart is not news: the restarted worker does not report again the listener and the
//!   process its predecessor reported, and does report what started after.
//! - Restarts are bounded: past `--max-restarts` the supervisor gives up and exits 1.
//! - `kill -9` of the supervisor: the worker reports that its supervisor is gone, and stops.
//! - With `--supervise=false` the monitor is the main process, without a child.
//! - Deleting a watched directory (a container's /tmp) is a lost watch, alerted.
//! - SIGSTOP of the monitor or of its supervisor is undone and alerted; unsupervised, the
//!   stop is reported when the monitor is resumed, naming who resumed it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Container, EmulatedTask, Monitor};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The supervisor's one child that runs `tasksentry`: (host pid, pid in the task).
fn worker_of(mon: &Monitor) -> (i32, i32) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let children = support::children_of(u32::try_from(mon.host_pid()).expect("a pid"));
        if let [host_pid] = children[..] {
            if let Some(pid) = support::ns_pid_of(host_pid) {
                return (host_pid, pid);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor (host pid {}) has no single worker child: {children:?}\n{}",
            mon.host_pid(),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell script, run in an app container, that finds the children of `parent` by
/// scanning /proc and SIGKILLs them, printing their pids.
fn kill_children_script(parent: i32) -> String {
    format!(
        r#"for s in /proc/[0-9]*/status; do
  if grep -q "^PPid:[[:space:]]*{parent}$" "$s" 2>/dev/null; then
    p=${{s#/proc/}}; p=${{p%/status}}; echo "$p"; kill -9 "$p"
  fi
done"#
    )
}

fn miner_alert(mon: &Monitor, app: &Container, start: usize, arg: &str) -> Value {
    mon.wait_for_after(
        start,
        |a| {
            a["rule"] == "Crypto miner launched"
                && a["output_fields"]["container.id"] == app.id()
                && a["output_fields"]["proc.cmdline"]
                    .as_str()
                    .is_some_and(|c| c.contains(arg))
        },
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("no miner alert for {arg}: {error}"))
}

#[test]
fn kill_9_of_the_monitor_from_an_app_container_is_alerted_and_monitoring_resumes() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("xmrig", "sleep 1").expect("the script");
    let (mut mon, _) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let (worker_host, worker) = worker_of(&mon);
    assert_ne!(
        worker,
        mon.pid(),
        "the monitor runs as the supervisor's child"
    );
    app.run_ok(&["xmrig", "before-kill"])
        .expect("the miner runs");
    miner_alert(&mon, &app, 0, "before-kill");

    // A process in the app container finds the monitor worker in /proc and kills it.
    let killed_at = Instant::now();
    let printed = app
        .run_ok(&["sh", "-c", &kill_children_script(mon.pid())])
        .expect("the killer runs");
    assert_eq!(printed.trim(), worker.to_string(), "it found the worker");
    let alert = mon
        .wait_for(|a| a["rule"] == "TaskSentry monitor killed", TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert about the kill: {error}"));
    let latency = killed_at.elapsed();
    assert_eq!(alert["priority"], "Critical", "{alert}");
    let fields = &alert["output_fields"];
    assert_eq!(fields["evt.arg.signal"], "SIGKILL", "{alert}");
    assert_eq!(fields["evt.arg.signal_number"], "9", "{alert}");
    assert_eq!(fields["evt.arg.pid"], worker.to_string(), "{alert}");
    assert_eq!(fields["evt.arg.restarts"], "1", "{alert}");
    let output = alert["output"].as_str().unwrap_or("");
    assert!(
        output.contains(&format!("killed_pid={worker}")) && output.contains("SIGKILL"),
        "{output}"
    );
    eprintln!("kill -9 to alert: {latency:?}");

    // The old worker is gone, a new one runs, and it detects again.
    assert!(
        !Path::new(&format!("/proc/{worker_host}")).exists() || {
            let stat =
                std::fs::read_to_string(format!("/proc/{worker_host}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        }
    );
    let (_, new_worker) = worker_of(&mon);
    assert_ne!(new_worker, worker);
    assert!(mon.is_running(), "the supervisor still runs");
    let after = mon.line_count();
    let deadline = Instant::now() + TIMEOUT;
    let mut n = 0;
    // The restarted monitor first rereads the task; retry the behaviour until it is seen.
    loop {
        n += 1;
        let arg = format!("after-kill-{n}");
        app.run_ok(&["xmrig", &arg]).expect("the miner runs");
        let seen = mon.wait_for_after(
            after,
            |a| {
                a["rule"] == "Crypto miner launched"
                    && a["output_fields"]["proc.cmdline"]
                        .as_str()
                        .is_some_and(|c| c.contains("after-kill-"))
            },
            Duration::from_secs(2),
        );
        if seen.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted monitor never alerted: {}",
            seen.expect_err("not seen")
        );
    }
    mon.terminate().expect("SIGTERM");
    let status = mon.wait_exit(TIMEOUT).expect("the monitor exits");
    assert!(status.success(), "{status:?}\n{}", mon.stderr_so_far());
}

/// Whether `alert` is of `rule` and its `field` contains `text` (a number or string field).
fn alert_matches(alert: &Value, rule: &str, field: &str, text: &str) -> bool {
    alert["rule"] == rule
        && match &alert["output_fields"][field] {
            Value::String(s) => s.contains(text),
            Value::Number(n) => n.to_string() == text,
            _ => false,
        }
}

/// Alerts of `rule` whose `field` contains `text`.
fn count_alerts(mon: &Monitor, rule: &str, field: &str, text: &str) -> usize {
    mon.events()
        .iter()
        .filter(|a| alert_matches(a, rule, field, text))
        .count()
}

#[test]
fn a_restarted_worker_does_not_report_again_what_its_predecessor_reported() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("xmrig", "sleep 600")
        .expect("the script");
    let (mon, _) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let (_, worker) = worker_of(&mon);
    // A backdoor listener and a miner that stay up across the restart.
    let _listener = app
        .spawn(&["/bin/nc", "-l", "-p", "31400"])
        .expect("nc 31400");
    let _miner = app.spawn(&["xmrig", "long-lived"]).expect("the miner");
    for (rule, field, text) in [
        ("Unexpected listening port", "fd.sport", "31400"),
        ("Crypto miner launched", "proc.cmdline", "long-lived"),
    ] {
        mon.wait_for(|a| alert_matches(a, rule, field, text), TIMEOUT)
            .unwrap_or_else(|error| panic!("no {rule} alert before the kill: {error}"));
    }
    // The worker writes what it reported at most once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let printed = app
        .run_ok(&["sh", "-c", &kill_children_script(mon.pid())])
        .expect("the killer runs");
    assert_eq!(printed.trim(), worker.to_string(), "it found the worker");
    mon.wait_for(|a| a["rule"] == "TaskSentry monitor killed", TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert about the kill: {error}"));
    let (_, new_worker) = worker_of(&mon);
    assert_ne!(new_worker, worker);

    // What starts after the restart is reported: the new worker scans sockets and processes.
    let _second = app
        .spawn(&["/bin/nc", "-l", "-p", "31401"])
        .expect("nc 31401");
    let _second_miner = app.spawn(&["xmrig", "after-restart"]).expect("the miner");
    for (rule, field, text) in [
        ("Unexpected listening port", "fd.sport", "31401"),
        ("Crypto miner launched", "proc.cmdline", "after-restart"),
    ] {
        mon.wait_for(|a| alert_matches(a, rule, field, text), TIMEOUT)
            .unwrap_or_else(|error| {
                panic!(
                    "no {rule} alert after the restart: {error}\n{}",
                    mon.stderr_so_far()
                )
            });
    }
    // The new worker's first scans, which saw 31400 and the first miner, are long done.
    std::thread::sleep(Duration::from_millis(1000));
    let lines = mon.lines_so_far().join("\n");
    assert_eq!(
        count_alerts(&mon, "Unexpected listening port", "fd.sport", "31400"),
        1,
        "the listener was reported again after the restart:\n{lines}"
    );
    assert_eq!(
        count_alerts(&mon, "Crypto miner launched", "proc.cmdline", "long-lived"),
        1,
        "the miner was reported again after the restart:\n{lines}"
    );
    assert_eq!(
        count_alerts(&mon, "TaskSentry monitor killed", "evt.arg.restarts", "1"),
        1,
        "the restart itself is one alert:\n{lines}"
    );
    let stderr = mon.stderr_so_far();
    assert!(
        stderr.contains("what the previous worker reported is not reported again"),
        "{stderr}"
    );
}

#[test]
fn restarts_are_bounded_and_the_supervisor_then_gives_up() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mut mon, _) = task
        .start_monitor_recording(&["run", "--max-restarts", "1"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let (_, first) = worker_of(&mon);
    app.run_ok(&["kill", "-9", &first.to_string()])
        .expect("kill the worker");
    mon.wait_for(|a| a["rule"] == "TaskSentry monitor killed", TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert about the first kill: {error}"));
    let (_, second) = worker_of(&mon);
    assert_ne!(first, second);
    app.run_ok(&["kill", "-9", &second.to_string()])
        .expect("kill the worker again");
    let status = mon.wait_exit(TIMEOUT).expect("the supervisor gives up");
    assert_eq!(
        status.code(),
        Some(1),
        "{status:?}\n{}",
        mon.stderr_so_far()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mon.stderr_so_far().contains("gives up") {
        assert!(Instant::now() < deadline, "{}", mon.stderr_so_far());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_of_the_supervisor_is_reported_by_the_monitor_before_it_stops() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mut mon, _) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let (worker_host, _) = worker_of(&mon);
    app.run_ok(&["kill", "-9", &mon.pid().to_string()])
        .expect("kill the supervisor");
    let alert = mon
        .wait_for(|a| a["rule"] == "TaskSentry supervisor lost", TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert about the supervisor: {error}"));
    assert_eq!(alert["priority"], "Critical");
    assert_eq!(
        alert["output_fields"]["evt.arg.supervisor_pid"],
        mon.pid().to_string()
    );
    let _ = mon.wait_exit(TIMEOUT);
    // The worker does not outlive its supervisor.
    let deadline = Instant::now() + TIMEOUT;
    while Path::new(&format!("/proc/{worker_host}")).exists()
        && !std::fs::read_to_string(format!("/proc/{worker_host}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            Instant::now() < deadline,
            "the worker outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_supervision_the_monitor_is_the_main_process() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mut mon, _) = task
        .start_monitor_recording(&["run", "--supervise=false"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    assert_eq!(
        support::children_of(u32::try_from(mon.host_pid()).expect("a pid")),
        Vec::<i32>::new(),
        "no worker child"
    );
    let mut sender = app
        .spawn(&["sh", "-c", &format!("kill -TERM {}; sleep 5; :", mon.pid())])
        .expect("the sender");
    let status = mon.wait_exit(TIMEOUT).expect("the monitor stops");
    assert!(status.success(), "{status:?}");
    let alert = mon
        .events()
        .into_iter()
        .find(|a| a["rule"] == "TaskSentry signalled by a process in the task")
        .expect("the tamper alert");
    assert_eq!(
        alert["output_fields"]["evt.arg.sender_pid"],
        sender.pid().to_string()
    );
    let _ = sender.kill();
}

#[test]
fn deleting_a_watched_directory_is_a_lost_watch_alert() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mon, recording) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    // The container's /tmp is watched once a write there is reported.
    let deadline = Instant::now() + TIMEOUT;
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("/tmp/probe-{n}");
        app.run_ok(&["sh", "-c", &format!("echo x > {name}")])
            .expect("probe");
        let recorded = std::fs::read_to_string(&recording).unwrap_or_default();
        if recorded
            .lines()
            .any(|l| l.contains(&name) && l.contains("\"fswatch\""))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container's /tmp is never watched"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    app.run_ok(&["rm", "-rf", "/tmp"]).expect("rm -rf /tmp");
    let alert = mon
        .wait_for(
            |a| {
                a["rule"] == "TaskSentry lost a watch"
                    && a["output_fields"]["evt.arg.path"] == "/tmp"
            },
            TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("no lost-watch alert: {error}"));
    assert_eq!(alert["priority"], "Warning");
    assert_eq!(alert["output_fields"]["container.id"], app.id(), "{alert}");
    // Files deleted below a watched directory are not lost watches.
    assert!(
        !mon.events()
            .iter()
            .any(|a| a["rule"] == "TaskSentry lost a watch"
                && a["output_fields"]["evt.arg.path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/tmp/"))),
        "{:#?}",
        mon.events()
    );
    // Recreated, it is watched again: a write there is reported.
    app.run_ok(&["sh", "-c", "mkdir /tmp && sleep 1 && echo x > /tmp/again"])
        .expect("recreate /tmp");
    let deadline = Instant::now() + TIMEOUT;
    while !std::fs::read_to_string(&recording)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("/tmp/again") && l.contains("\"fswatch\""))
    {
        assert!(Instant::now() < deadline, "the new /tmp is not watched");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The state letter of a host pid (`R`, `S`, `T`, ...).
fn state_of(host_pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{host_pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn sigstop_of_the_monitor_or_its_supervisor_is_undone_and_alerted() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("xmrig", "sleep 1").expect("the script");
    let (mon, _recording) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let (worker_host, worker) = worker_of(&mon);

    // A process in the app container stops the monitor worker: it cannot catch SIGSTOP.
    app.run_ok(&["kill", "-STOP", &worker.to_string()])
        .expect("SIGSTOP the monitor");
    let alert = mon
        .wait_for(
            |a| {
                a["rule"] == "TaskSentry monitor stopped"
                    && a["output_fields"]["tasksentry.kind"] == "monitor_stopped"
            },
            TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("no alert about the stop: {error}"));
    assert_eq!(alert["priority"], "Critical", "{alert}");
    assert_eq!(
        alert["output_fields"]["evt.arg.signal"], "SIGSTOP",
        "{alert}"
    );
    assert_eq!(
        alert["output_fields"]["evt.arg.resumed_by_pid"],
        mon.pid().to_string(),
        "the supervisor resumed it: {alert}"
    );
    assert_ne!(state_of(worker_host), Some('T'), "the worker runs again");
    assert_eq!(
        worker_of(&mon).0,
        worker_host,
        "the same worker, not a restart"
    );
    // And it still detects.
    let start = mon.lines_so_far().len();
    app.run_ok(&["xmrig", "after-stop"])
        .expect("the miner runs");
    miner_alert(&mon, &app, start, "after-stop");

    // Stopping the supervisor instead: the worker notices within a second and resumes it.
    app.run_ok(&["kill", "-STOP", &mon.pid().to_string()])
        .expect("SIGSTOP the supervisor");
    let alert = mon
        .wait_for(
            |a| a["output_fields"]["tasksentry.kind"] == "supervisor_stopped",
            TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("no alert about the supervisor's stop: {error}"));
    assert_eq!(alert["rule"], "TaskSentry monitor stopped", "{alert}");
    assert_eq!(
        alert["output_fields"]["evt.arg.supervisor_pid"],
        mon.pid().to_string(),
        "{alert}"
    );
    let deadline = Instant::now() + TIMEOUT;
    while state_of(mon.host_pid()) == Some('T') {
        assert!(Instant::now() < deadline, "the supervisor stays stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unsupervised_a_stop_is_reported_when_resumed_naming_who_resumed_it() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mon, _recording) = task
        .start_monitor_recording(&["run", "--supervise=false"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let script = format!(
        "kill -STOP {0}; sleep 2; kill -CONT {0}; echo $$; sleep 1; :",
        mon.pid()
    );
    let printed = app
        .run_ok(&["sh", "-c", &script])
        .expect("stop, wait, resume");
    // The resumer stays a second: one that exits at once is read as a zombie, which no
    // longer belongs to its container's cgroup (it is then named by pid and name only).
    let resumer = printed.trim().to_owned();
    let alert = mon
        .wait_for(|a| a["rule"] == "TaskSentry monitor stopped", TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert about the stop: {error}"));
    let fields = &alert["output_fields"];
    assert_eq!(fields["tasksentry.kind"], "monitor_stopped", "{alert}");
    assert_eq!(fields["evt.arg.resumed_by_pid"], resumer, "{alert}");
    assert_eq!(fields["proc.name"], "sh", "{alert}");
    assert_eq!(fields["container.id"], app.id(), "{alert}");
    let stopped: u64 = fields["evt.arg.stopped_ms"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("stopped_ms: {alert}"));
    assert!((1500..20_000).contains(&stopped), "{alert}");
}
