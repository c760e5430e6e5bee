//! End-to-end tests of the tracer (`tasksentry run --mode trace`): the real binary as the
//! sidecar of an emulated Fargate task (see `tests/support`), tracing real processes in the
//! task's containers.
//!
//! Workloads wait at a gate (a file `/go` in the container's root) until the test has seen,
//! in `/proc/<pid>/status`, that the tracer holds the gated shell; everything the shell starts
//! after the gate is then attached by the kernel at fork, which is what these tests are about.
//! Behaviour scripts write their observations to `/out`, and are run once untraced and once
//! traced; the two outputs must be the same.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Container, ContainerProcess, EmulatedTask, Monitor, tracer_pid};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The gate loop every workload script starts with.
const GATE: &str = "while [ ! -e /go ]; do sleep 0.01; done; rm -f /go; ";

fn start_trace_monitor(task: &EmulatedTask) -> Monitor {
    task.start_monitor(&["run", "--emit", "events", "--mode", "trace"])
        .expect("starting tasksentry run --emit events --mode trace")
}

fn state(host_pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{host_pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `script` (after the gate) in `container`; when `traced`, waits until the tracer
/// holds the shell before opening the gate.
fn gated(container: &Container, script: &str, traced: bool) -> ContainerProcess {
    let _ = std::fs::remove_file(container.host_path("go"));
    let process = container
        .spawn(&["sh", "-c", &format!("{GATE}{script}")])
        .expect("spawning the gated shell");
    if traced {
        let pid = process.host_pid();
        wait_until("the tracer to seize the shell", || {
            tracer_pid(pid).is_some_and(|t| t != 0)
        });
    }
    std::fs::write(container.host_path("go"), b"").expect("opening the gate");
    process
}

/// Waits until the monitor has reported the process with `marker` in its arguments.
fn wait_marker(mon: &Monitor, marker: &str) -> Value {
    mon.wait_for(
        |e| e["evt"]["type"] == "execve" && support::proc_args(e).iter().any(|a| a == marker),
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("no execve with {marker}: {error}"))
}

/// Counts, per marker `<prefix>-<i>`, the `execve` events of `sleeper` from the tracer with
/// exactly the arguments `[ms, marker]`, and the execve events from any collector.
fn check_every_exec(mon: &Monitor, prefix: &str, count: usize, ms: &str) {
    let events = mon.events();
    let mut by_tracer: BTreeMap<String, usize> = BTreeMap::new();
    let mut any: BTreeMap<String, usize> = BTreeMap::new();
    let mut exits = 0;
    for event in &events {
        let a = support::proc_args(event);
        if a.len() != 2 || !a[1].starts_with(&format!("{prefix}-")) {
            continue;
        }
        match event["evt"]["type"].as_str() {
            Some("execve") => {
                *any.entry(a[1].clone()).or_default() += 1;
                if event["evt"]["collector"] == "tracer"
                    && event["proc"]["name"] == "sleeper"
                    && a[0] == ms
                {
                    *by_tracer.entry(a[1].clone()).or_default() += 1;
                }
            }
            Some("procexit") if event["evt"]["collector"] == "tracer" => {
                assert_eq!(event["proc"]["exit_code"], 0, "{event}");
                exits += 1;
            }
            _ => {}
        }
    }
    let missing: Vec<usize> = (0..count)
        .filter(|i| !by_tracer.contains_key(&format!("{prefix}-{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {count} execs not reported by the tracer with their command line, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<_> = any.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "execs reported more than once: {:?}",
        &twice[..twice.len().min(10)]
    );
    if exits != count {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            let k = format!(
                "{} {} {}",
                e["evt"]["type"], e["evt"]["collector"], e["proc"]["name"]
            );
            *kinds.entry(k).or_default() += 1;
        }
        eprintln!("{kinds:#?}");
    }
    assert_eq!(exits, count, "one procexit (exit code 0) per sleeper");
}

#[test]
fn thousand_one_ms_processes_are_all_seen_in_a_container_started_later() {
    let task = EmulatedTask::new().expect("task");
    let mon = start_trace_monitor(&task);
    // The container starts after the monitor.
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    app.install_program("spawner").expect("spawner");
    let prefix = support::marker("k");
    let mut shell = gated(&app, &format!("exec spawner 1000 1 0 {prefix}"), true);
    let status = shell.wait().expect("spawner");
    assert!(status.success(), "spawner failed: {status}");
    wait_marker(&mon, &format!("{prefix}-999"));
    std::thread::sleep(Duration::from_millis(500));
    check_every_exec(&mon, &prefix, 1000, "1");
    let event = wait_marker(&mon, &format!("{prefix}-0"));
    assert_eq!(event["container"]["id"], app.id(), "{event}");
    assert_eq!(event["proc"]["ancestors"][0]["name"], "spawner", "{event}");
}

#[test]
fn a_multithreaded_parent_forking_from_a_thread_is_fully_seen() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    app.install_program("threadspawner").expect("threadspawner");
    let mon = start_trace_monitor(&task);
    let prefix = support::marker("t");
    let mut shell = gated(&app, &format!("exec threadspawner 1000 1 {prefix}"), true);
    let status = shell.wait().expect("threadspawner");
    assert!(status.success(), "threadspawner failed: {status}");
    wait_marker(&mon, &format!("{prefix}-999"));
    std::thread::sleep(Duration::from_millis(500));
    check_every_exec(&mon, &prefix, 1000, "1");
}

/// Exit codes, default-action signals (a real-time one too), a trapped signal, stop/continue
/// by pid and by job spec: everything the script prints must be the same traced.
const BEHAVIOUR: &str = r#"exec >/out 2>&1
sh -c 'exit 42'; echo "exit=$?"
sleeper 60000 m & p=$!; sleep 0.1; kill -TERM $p; wait $p; echo "term=$?"
sleeper 60000 m & p=$!; sleep 0.1; kill -34 $p; wait $p; echo "rt=$?"
sh -c 'trap "echo trapped; exit 7" USR2; while :; do sleep 0.02; done' & p=$!
sleep 0.2; kill -USR2 $p; wait $p; echo "trap=$?"
sleeper 60000 m & p=$!; sleep 0.1
kill -STOP $p; sleep 0.2; echo "stopped=$(cut -d' ' -f3 /proc/$p/stat)"
sleep 0.3; echo "still=$(cut -d' ' -f3 /proc/$p/stat)"
kill -CONT $p; sleep 0.2; echo "cont=$(cut -d' ' -f3 /proc/$p/stat)"
kill -USR1 $p; wait $p; echo "usr1=$?"
sleeper 60000 m & sleep 0.1
kill -STOP %1; sleep 0.2; echo "job_stopped=$(cut -d' ' -f3 /proc/$!/stat)"
kill -CONT %1; sleep 0.2; echo "job_cont=$(cut -d' ' -f3 /proc/$!/stat)"
kill %1; wait; echo "jobs_done"
exit 3
"#;

fn run_behaviour(app: &Container, traced: bool) -> (String, Option<i32>) {
    let mut shell = gated(app, BEHAVIOUR, traced);
    let status = shell.wait().expect("behaviour script");
    let out = std::fs::read_to_string(app.host_path("out")).expect("reading /out");
    // A stopped tracee is shown as `t (tracing stop)` instead of `T (stopped)` by the kernel;
    // that letter is the only difference ptrace makes visible, so it is normalised here.
    // Busybox prints a job's death message ("Terminated") only when it reaps the job in its
    // SIGCHLD handler rather than in `wait`, which is timing-dependent: those lines are
    // dropped. The statuses printed after them are compared exactly.
    let out: String = out
        .replace("=t\n", "=T\n")
        .lines()
        .filter(|l| {
            !matches!(
                *l,
                "Terminated" | "Real-time signal 0" | "User defined signal 1"
            )
        })
        .map(|l| format!("{l}\n"))
        .collect();
    (out, status.code())
}

#[test]
fn exit_codes_signals_and_job_control_are_unchanged_by_the_tracer() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    let (untraced, untraced_code) = run_behaviour(&app, false);
    assert_eq!(
        untraced,
        "exit=42\nterm=143\nrt=162\ntrapped\ntrap=7\nstopped=T\nstill=T\ncont=S\nusr1=138\n\
         job_stopped=T\njob_cont=S\njobs_done\n",
        "the script's untraced behaviour"
    );
    assert_eq!(untraced_code, Some(3));
    let mon = start_trace_monitor(&task);
    let (traced, traced_code) = run_behaviour(&app, true);
    assert_eq!(traced, untraced, "behaviour under the tracer");
    assert_eq!(traced_code, untraced_code);
    // The tracer saw the shell's children and their exits with the right codes.
    let exit42 = mon
        .wait_for(
            |e| {
                e["evt"]["type"] == "procexit"
                    && e["evt"]["collector"] == "tracer"
                    && support::proc_args(e) == ["-c", "exit 42"]
            },
            TIMEOUT,
        )
        .expect("procexit of `sh -c 'exit 42'`");
    assert_eq!(exit42["proc"]["exit_code"], 42, "{exit42}");
    let rt = mon
        .wait_for(
            |e| {
                e["evt"]["type"] == "procexit"
                    && e["proc"]["name"] == "sleeper"
                    && e["proc"]["exit_code"] == 128 + 34
            },
            TIMEOUT,
        )
        .expect("procexit of the sleeper killed by signal 34");
    assert_eq!(rt["evt"]["collector"], "tracer", "{rt}");
}

#[test]
fn killing_the_monitor_leaves_the_app_running_and_controllable() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    let mut mon = start_trace_monitor(&task);
    let marker = support::marker("survivor");
    // The sleeper is the shell's child, not the launcher's: a launcher may mirror its child's
    // stops (`nsenter` stops itself and continues the child), which would hide SIGSTOP.
    let mut shell = gated(&app, &format!("sleeper 60000 {marker}; exit 5"), true);
    let event = wait_marker(&mon, &marker);
    assert_eq!(event["evt"]["collector"], "tracer", "{event}");
    let pid = support::children_of(u32::try_from(shell.host_pid()).expect("a host pid"))
        .into_iter()
        .find(|&p| state(p).is_some())
        .expect("the sleeper's host pid");
    assert_ne!(tracer_pid(pid), Some(0), "the sleeper is traced");
    mon.signal(nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9 the monitor");
    mon.wait_exit(Duration::from_secs(10))
        .expect("monitor gone");
    wait_until("TracerPid back to 0", || tracer_pid(pid) == Some(0));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(state(pid), Some('S'), "the app still runs (sleeps)");
    let target = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    wait_until("state T", || state(pid) == Some('T'));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(pid), Some('T'), "stays stopped");
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    wait_until("state S", || state(pid) == Some('S'));
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = shell.wait().expect("the shell's exit");
    assert_eq!(
        status.code(),
        Some(5),
        "the shell went on after its child: {status}"
    );
}

#[test]
fn a_process_traced_by_its_own_debugger_is_a_reported_conflict_covered_by_polling() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    app.install_program("selftracer").expect("selftracer");
    let marker = support::marker("debugged");
    // Started before the monitor: its child is already traced by it when the tracer comes.
    let debugger = app
        .spawn(&["selftracer", "60000", &marker])
        .expect("starting the debugger");
    let child = loop {
        if let Some(&pid) =
            support::children_of(u32::try_from(debugger.host_pid()).expect("pid")).first()
            && tracer_pid(pid) == Some(debugger.host_pid())
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let child_ns = support::ns_pid_of(child).expect("the child's pid in the task");
    let mon = start_trace_monitor(&task);
    let conflict = mon
        .wait_for(
            |e| e["evt"]["type"] == "tasksentry" && e["internal"]["kind"] == "tracer_conflict",
            TIMEOUT,
        )
        .expect("a tracer_conflict event");
    assert_eq!(conflict["proc"]["pid"], child_ns, "{conflict}");
    assert_eq!(conflict["evt"]["collector"], "tracer", "{conflict}");
    // Procscan covers it: its exec was reported from /proc.
    let exec = wait_marker(&mon, &marker);
    assert_eq!(exec["evt"]["collector"], "procscan", "{exec}");
    // The debugger keeps its tracee; the debugger itself is traced by TaskSentry.
    assert_eq!(tracer_pid(child), Some(debugger.host_pid()));
    wait_until("the tracer to seize the debugger", || {
        tracer_pid(debugger.host_pid()).is_some_and(|t| t != 0)
    });
}

#[test]
fn processes_entering_a_container_from_outside_are_reported_once_seized() {
    // Each `app.spawn` enters the container from outside (like ECS exec): procscan finds the
    // process, asks the tracer to seize it, and must report the exec it already did, even
    // when the tracer seizes it before procscan has finished looking at it.
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    app.install_program("sleeper").expect("sleeper");
    let mon = start_trace_monitor(&task);
    let mut children = Vec::new();
    let mut markers = Vec::new();
    for i in 0..10 {
        let marker = support::marker(&format!("outside{i}"));
        children.push(
            app.spawn(&["sleeper", "1500", &marker])
                .expect("spawn the sleeper"),
        );
        markers.push(marker);
        std::thread::sleep(Duration::from_millis(150));
    }
    // Matched by name: the launcher's (`ctrexec`) child, read before it execs, carries the marker
    // too.
    let is_sleeper_exec = |e: &Value, marker: &str| {
        e["evt"]["type"] == "execve"
            && e["proc"]["name"] == "sleeper"
            && support::proc_args(e).iter().any(|a| a == marker)
    };
    for marker in &markers {
        mon.wait_for(|e| is_sleeper_exec(e, marker), TIMEOUT)
            .unwrap_or_else(|error| panic!("no execve of sleeper {marker}: {error}"));
    }
    for mut child in children {
        let _ = child.wait();
    }
    // Each is reported once: procscan's execve, and no second one from the tracer.
    let events = mon.events();
    for marker in &markers {
        let execs = events.iter().filter(|e| is_sleeper_exec(e, marker)).count();
        assert_eq!(execs, 1, "{marker}");
    }
}
