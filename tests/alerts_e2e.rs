//! Alert quality end to end: the real `tasksentry run` as the sidecar of an emulated task.
//!
//! - A flood of one behaviour becomes one alert plus summaries whose counts add up to every
//!   matching event the monitor saw (known from its `--record`ing).
//! - Secrets on a command line never reach the output.
//! - `kill -TERM` from a process in an app container is reported, naming that process,
//!   before the monitor exits.
//! - SIGHUP with a broken rules file keeps the old rules and reports the errors; with a valid
//!   file the new rules take effect, and no event is lost across the swap. A changed rules
//!   directory reloads too.
//! - A tracer attached to the monitor from an app container is reported.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::{EmulatedTask, Monitor, recorded_events};

const TIMEOUT: Duration = Duration::from_secs(15);

fn stop(mut mon: Monitor) -> Monitor {
    mon.terminate().expect("SIGTERM");
    let status = mon.wait_exit(TIMEOUT).expect("the monitor exits");
    assert!(status.success(), "{status:?}\n{}", mon.stderr_so_far());
    mon
}

fn count_of(alert: &Value) -> u64 {
    alert["tasksentry"]["count"].as_u64().expect("a count")
}

#[test]
fn a_flood_of_one_behaviour_is_one_alert_and_summaries_that_add_up() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("xmrig", ":").expect("the script");
    let (mon, recording) = task
        .start_monitor_recording(&["run", "--aggregation-window", "3s"], &app, TIMEOUT)
        .expect("starting tasksentry run");

    let started = Instant::now();
    app.run_ok(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 10000 ]; do xmrig; i=$((i+1)); done",
    ])
    .expect("the loop runs");
    let loop_time = started.elapsed();
    // Let the last window close on its own before stopping.
    std::thread::sleep(Duration::from_millis(3500));
    let mon = stop(mon);

    let seen = recorded_events(&recording)
        .iter()
        .filter(|e| {
            e["evt"]["type"] == "execve"
                && e["proc"]["name"] == "xmrig"
                && e["container"]["id"] == app.id()
        })
        .count() as u64;
    let alerts: Vec<Value> = mon
        .events()
        .into_iter()
        .filter(|a| {
            a["rule"] == "Crypto miner launched" && a["output_fields"]["container.id"] == app.id()
        })
        .collect();
    assert!(seen > 0, "the monitor saw some of the executions");
    let firsts = alerts
        .iter()
        .filter(|a| a["tasksentry"]["summary"] == false)
        .count();
    let total: u64 = alerts.iter().map(count_of).sum();
    eprintln!(
        "loop of 10000 took {loop_time:?}; the monitor saw {seen} executions; {} alerts ({firsts} immediate) with counts totalling {total}",
        alerts.len()
    );
    assert_eq!(
        total, seen,
        "first alert + summaries = every matching event seen"
    );
    // Polling sometimes reads a process mid-exec (command line `xmrig` instead of
    // `xmrig /usr/local/bin/xmrig`): a second key. Each key opens with an immediate alert;
    // a key whose window passed without repeats closes, and its next occurrence is again
    // shipped at once.
    let mut keys = std::collections::BTreeSet::new();
    for alert in &alerts {
        let key = alert["output_fields"]["proc.cmdline"].to_string();
        if keys.insert(key.clone()) {
            assert_eq!(
                alert["tasksentry"]["summary"], false,
                "the first occurrence of {key} is shipped at once"
            );
            assert_eq!(count_of(alert), 1);
        }
    }
    assert!(
        (alerts.len() as u64) < seen.min(100),
        "the flood became few alerts: {} for {seen}",
        alerts.len()
    );
}

#[test]
fn secrets_on_a_command_line_never_reach_the_output() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("xmrig", "sleep 1").expect("the script");
    let (mon, _) = task
        .start_monitor_recording(&["run", "--rule-matching", "all"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    let secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    app.run_ok(&[
        "xmrig",
        "--password=hunter2",
        &format!("AWS_SECRET_ACCESS_KEY={secret_key}"),
        "-H",
        "Authorization: Bearer abcdef.0123456789",
    ])
    .expect("the miner runs");
    let alert = mon
        .wait_for(
            |a| {
                a["rule"] == "Crypto miner launched"
                    && a["output_fields"]["container.id"] == app.id()
            },
            TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("no miner alert: {error}"));
    let mon = stop(mon);
    assert!(
        alert["tasksentry"]["redactions"].as_u64() >= Some(3),
        "{alert}"
    );
    let command = alert["output_fields"]["proc.cmdline"]
        .as_str()
        .expect("cmdline");
    for mark in ["password", "aws_secret_key", "bearer_token"] {
        assert!(
            command.contains(&format!("[REDACTED:{mark}]")),
            "{mark}: {command}"
        );
    }
    for line in mon.lines_so_far() {
        for secret in [secret_key, "hunter2", "abcdef.0123456789"] {
            assert!(!line.contains(secret), "{secret} reached stdout: {line}");
        }
    }
}

#[test]
fn kill_from_an_app_container_is_reported_naming_the_sender_before_exit() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let (mut mon, _) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    // The trailing `:` keeps the shell itself alive (busybox sh execs a last command).
    let script = format!("kill -TERM {}; sleep 5; :", mon.pid());
    let mut sender = app.spawn(&["sh", "-c", &script]).expect("the sender");
    let status = mon
        .wait_exit(TIMEOUT)
        .expect("the monitor stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", mon.stderr_so_far());
    let alerts = mon.events();
    let alert = alerts
        .iter()
        .find(|a| a["rule"] == "TaskSentry signalled by a process in the task")
        .unwrap_or_else(|| panic!("no tamper alert in {alerts:#?}\n{}", mon.stderr_so_far()));
    assert_eq!(alert["priority"], "Critical");
    let fields = &alert["output_fields"];
    assert_eq!(fields["evt.arg.signal"], "SIGTERM");
    assert_eq!(fields["evt.arg.sender_pid"], sender.pid().to_string());
    assert_eq!(fields["proc.name"], "sh");
    assert_eq!(fields["container.id"], app.id());
    assert!(
        fields["proc.cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("kill -TERM")),
        "{alert}"
    );
    let output = alert["output"].as_str().unwrap_or("");
    assert!(
        output.contains(&format!("sender_pid={}", sender.pid())),
        "{output}"
    );
    let _ = sender.kill();
}

const RULES_V1: &str = r#"
- rule: Marker one ran
  desc: test
  condition: evt.type = execve and proc.name = marker1
  output: marker one (command=%proc.cmdline container_id=%container.id)
  priority: WARNING
"#;

const RULES_V2: &str = r#"
- rule: Marker one ran
  desc: test
  condition: evt.type = execve and proc.name = marker1
  output: marker one (command=%proc.cmdline container_id=%container.id)
  priority: WARNING
- rule: Marker two ran
  desc: test
  condition: evt.type = execve and proc.name = marker2
  output: marker two (command=%proc.cmdline container_id=%container.id)
  priority: WARNING
"#;

#[test]
fn sighup_keeps_old_rules_on_errors_and_swaps_in_valid_ones_without_losing_events() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("marker1", "sleep 0.4")
        .expect("the script");
    app.install_script("marker2", "sleep 0.4")
        .expect("the script");
    let rules = task.dir().join("custom_rules.yaml");
    std::fs::write(&rules, RULES_V1).expect("write rules");
    let (mon, recording) = task
        .start_monitor_recording(
            &[
                "run",
                "--rules",
                rules.to_str().expect("utf-8"),
                "--rules-poll-interval",
                "0s",
            ],
            &app,
            TIMEOUT,
        )
        .expect("starting tasksentry run");
    let hup = |mon: &Monitor| {
        kill(Pid::from_raw(mon.host_pid()), Signal::SIGHUP).expect("SIGHUP");
    };
    let wait = |mon: &Monitor, rule: &str, command: &str| {
        mon.wait_for(
            |a| {
                a["rule"] == rule
                    && a["output_fields"]["proc.cmdline"]
                        .as_str()
                        .is_some_and(|c| c.contains(command))
            },
            TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("no {rule:?} for {command:?}: {error}"))
    };

    app.run_ok(&["marker1", "before"]).expect("marker1");
    wait(&mon, "Marker one ran", "before");

    // A broken rules file: rejected with its error, the old rules stay.
    std::fs::write(
        &rules,
        "- rule: Marker two ran\n  condition: proc.name = = x\n",
    )
    .expect("write broken rules");
    hup(&mon);
    let rejected = mon
        .wait_for(|a| a["rule"] == "TaskSentry rules reload rejected", TIMEOUT)
        .unwrap_or_else(|error| panic!("no rejection alert: {error}"));
    let output = rejected["output"].as_str().unwrap_or("");
    assert!(
        output.contains("custom_rules.yaml:") && output.contains("error"),
        "the rejection names the file and the error: {output}"
    );
    assert!(mon.events().iter().any(|a| a["rule"]
        == "TaskSentry asked to reload by a process in the task"
        || a["rule"] == "TaskSentry rules reload rejected"),);
    // And in the log (stderr is read by its own thread: give it a moment).
    let deadline = Instant::now() + TIMEOUT;
    while !mon.stderr_so_far().contains("reload rejected") {
        assert!(
            Instant::now() < deadline,
            "the rejection is not in the log: {}",
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    app.run_ok(&["marker1", "after-broken"]).expect("marker1");
    wait(&mon, "Marker one ran", "after-broken");
    app.run_ok(&["marker2", "not-yet"]).expect("marker2");

    // A valid file: swapped in while marker1 keeps running; every marker1 the monitor saw
    // alerts, before and after the swap.
    let mut runner = app
        .spawn(&[
            "sh",
            "-c",
            "i=0; while [ $i -lt 30 ]; do marker1 loop-$i; i=$((i+1)); sleep 0.05; done",
        ])
        .expect("the marker loop");
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(&rules, RULES_V2).expect("write valid rules");
    hup(&mon);
    mon.wait_for(|a| a["rule"] == "TaskSentry rules reloaded", TIMEOUT)
        .unwrap_or_else(|error| panic!("no reload alert: {error}"));
    app.run_ok(&["marker2", "now"]).expect("marker2");
    wait(&mon, "Marker two ran", "now");
    runner.wait().expect("the loop ends");
    std::thread::sleep(Duration::from_millis(500));
    let mon = stop(mon);

    let alerts = mon.events();
    assert!(
        !alerts.iter().any(|a| a["rule"] == "Marker two ran"
            && a["output_fields"]["proc.cmdline"]
                .as_str()
                .is_some_and(|c| c.contains("not-yet"))),
        "the rejected file never took effect"
    );
    let recorded: Vec<Value> = recorded_events(&recording)
        .into_iter()
        .filter(|e| e["evt"]["type"] == "execve" && e["proc"]["name"] == "marker1")
        .collect();
    let loop_seen: Vec<String> = recorded
        .iter()
        .filter_map(|e| {
            e["proc"]["args"]
                .as_array()?
                .last()?
                .as_str()
                .map(str::to_owned)
        })
        .filter(|arg| arg.starts_with("loop-"))
        .collect();
    assert!(
        loop_seen.len() >= 10,
        "the monitor saw the loop: {loop_seen:?}"
    );
    for arg in &loop_seen {
        assert!(
            alerts.iter().any(|a| a["rule"] == "Marker one ran"
                && a["output_fields"]["proc.cmdline"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&format!(" {arg}")))),
            "{arg} was recorded but raised no alert across the reload"
        );
    }
}

#[test]
fn a_changed_rules_directory_reloads_the_rules() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_script("marker2", "sleep 0.4")
        .expect("the script");
    let dir = task.dir().join("rules.d");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.yaml"), RULES_V1).expect("write rules");
    // The watchdog fingerprints the directory at start: change it only once the monitor runs.
    let (mon, _) = task
        .start_monitor_recording(
            &[
                "run",
                "--rules",
                dir.to_str().expect("utf-8"),
                "--rules-poll-interval",
                "200ms",
            ],
            &app,
            TIMEOUT,
        )
        .expect("starting tasksentry run");
    std::fs::write(dir.join("b.yaml"), &RULES_V2[RULES_V1.len()..]).expect("add a file");
    let reloaded = mon
        .wait_for(|a| a["rule"] == "TaskSentry rules reloaded", TIMEOUT)
        .unwrap_or_else(|error| panic!("no reload: {error}"));
    assert_eq!(
        reloaded["output_fields"]["evt.arg.reason"],
        "rule files changed"
    );
    assert_eq!(reloaded["source"], "tasksentry");
    app.run_ok(&["marker2", "from-dir"]).expect("marker2");
    mon.wait_for(
        |a| a["rule"] == "Marker two ran" && a["output_fields"]["container.id"] == app.id(),
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("the new rule does not fire: {error}"));
    stop(mon);
}

#[test]
fn a_tracer_attached_to_the_monitor_is_reported() {
    let task = EmulatedTask::new().expect("task");
    // The attacker's container was given SYS_PTRACE too: with Docker's default set, the
    // kernel refuses to let it trace a monitor that holds capabilities it lacks.
    let caps = support::CapSet::docker_default()
        .with("SYS_PTRACE")
        .expect("a capability name");
    let app = task
        .add_container_with(
            "app",
            support::ContainerSpec::default()
                .with_capabilities(caps)
                .with_host_python()
                .expect("python3 on the host"),
        )
        .expect("container");
    let (mon, _) = task
        .start_monitor_recording(&["run"], &app, TIMEOUT)
        .expect("starting tasksentry run");
    // PTRACE_SEIZE (0x4206) the monitor from the app container, hold it, then detach.
    let script = format!(
        "import ctypes, time\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.ptrace(0x4206, {pid}, None, None)\nassert r == 0, ctypes.get_errno()\ntime.sleep(3)\n",
        pid = mon.pid()
    );
    let mut tracer = app.spawn(&["python3", "-c", &script]).expect("the tracer");
    let alert = mon
        .wait_for(|a| a["rule"] == "TaskSentry is being traced", TIMEOUT)
        .unwrap_or_else(|error| panic!("no tracing alert: {error}"));
    assert_eq!(alert["priority"], "Critical");
    assert_eq!(
        alert["output_fields"]["evt.arg.tracer_pid"],
        tracer.pid().to_string()
    );
    assert_eq!(alert["output_fields"]["container.id"], app.id());
    let _ = tracer.kill();
    stop(mon);
}
