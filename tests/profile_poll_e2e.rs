//! Workload profiles in poll mode (issue 18), as most Fargate tasks run the monitor: no
//! `SYS_PTRACE`, the monitor with exactly Fargate's default capability set, the app container's
//! processes running as uid 1000 (an image with `USER app`). Poll mode sees what lives long
//! enough to be scanned (a web server, a worker's requests, a listener), not every exec: this
//! test asserts what a service owner relies on in that mode.
//!
//! - a benign workload (a web server, a worker calling a peer and the web server, health checks)
//!   is learnt in two tasks (`run --mode poll --learn`); `profile build --min-tasks 2` on their
//!   stdout writes a profile that names the web server, the peer connection and the ECS agent
//!   (the task role's credentials endpoint, 169.254.170.2) by name;
//! - with that profile loaded, the same workload in a third task raises no profile alert, and a
//!   new listener, an outbound connection to a new port and a long-lived new program each raise
//!   the right profile alert.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::netns::HttpServer;
use support::profile::is_profile_alert;
use support::sidecar::{EcsMetadata, task_document};
use support::{CapSet, Container, ContainerProcess, ContainerSpec, EmulatedTask, Monitor};
use support::{MonitorSpec, User};

const TIMEOUT: Duration = Duration::from_secs(30);
const APP_UID: u32 = 1000;
const PEER_PORT: u16 = 18081;
const NEW_PEER_PORT: u16 = 18082;
const NEW_LISTENER_PORT: u16 = 4445;

// Every request lasts a second or more (the client waits before it writes), long enough for
// the scans of /proc and of the socket tables to see it. Programs are named by their path:
// busybox's shell runs a bare applet name by re-executing /proc/self/exe, and a scan that
// catches such a process mid-way sees it as `exe` (trace mode sees every such exec; poll
// mode, sometimes one, which would make the profile differ from task to task).
const WORKER: &str = r#"
/bin/sleep 1
i=0
while [ $i -lt 3 ]; do
  (/bin/sleep 1; printf 'GET / HTTP/1.0\r\n\r\n') | /bin/nc 198.51.100.1 18081 > /dev/null
  (/bin/sleep 1; printf 'GET /health HTTP/1.0\r\n\r\n') | /bin/nc 127.0.0.1 8080 > /dev/null
  (/bin/sleep 1; printf 'GET /v2/credentials HTTP/1.0\r\n\r\n') | /bin/nc 169.254.170.2 80 > /dev/null
  i=$((i + 1))
done
true"#;

struct Task {
    task: EmulatedTask,
    app: Container,
    metadata: EcsMetadata,
    _peers: Vec<HttpServer>,
}

impl Task {
    fn new() -> Task {
        let task = EmulatedTask::new().expect("task");
        let user = User::new("app", APP_UID);
        let app = task
            .add_container_with(
                "app",
                ContainerSpec::with_users(vec![user.clone()]).with_user(user),
            )
            .expect("the app container");
        std::fs::create_dir_all(app.host_path("/www")).unwrap();
        std::fs::write(app.host_path("/www/health"), "ok\n").unwrap();
        app.install_script("worker", WORKER).unwrap();
        // What an attacker brings: a program of its own, in a place the app user can write.
        std::fs::create_dir_all(app.host_path("/home/app/.cache")).unwrap();
        std::fs::copy(
            app.host_path("/bin/busybox"),
            app.host_path("/home/app/.cache/sleep"),
        )
        .unwrap();
        let mut doc = task_document(&app);
        doc["TaskARN"] = json!(format!(
            "arn:aws:ecs:eu-west-1:111122223333:task/prod/{}",
            task.task_id()
        ));
        let metadata = EcsMetadata::start(&task, &doc.to_string());
        // The peers, and the ECS agent's credentials endpoint (the task role's).
        let peers = [
            format!("198.51.100.1:{PEER_PORT}"),
            format!("198.51.100.1:{NEW_PEER_PORT}"),
            "169.254.170.2:80".to_owned(),
        ]
        .iter()
        .map(|address| {
            HttpServer::start(&task.ns_path("net"), address.parse().unwrap(), |_| {
                Some("{}".to_owned())
            })
            .expect("a peer")
        })
        .collect();
        Task {
            task,
            app,
            metadata,
            _peers: peers,
        }
    }

    /// The monitor in poll mode with exactly Fargate's default capabilities.
    fn monitor(&self, args: &[&str]) -> (Monitor, PathBuf) {
        let mut spec = MonitorSpec::new(&["run", "--mode", "poll"])
            .with_args(args)
            .with_ecs_metadata(&self.metadata);
        spec.capabilities = Some(CapSet::fargate_default());
        self.task
            .start_monitor_recording_with(spec, &self.app, TIMEOUT)
            .expect("the monitor starts")
    }

    /// The benign workload, as the app user; returns the web server, which runs until dropped.
    fn benign(&self) -> ContainerProcess {
        let httpd = self
            .app
            .spawn_as(APP_UID, &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
            .expect("httpd");
        std::thread::sleep(Duration::from_millis(1500));
        self.run(&["worker"]);
        httpd
    }

    fn run(&self, args: &[&str]) {
        let output = self.app.run_as(APP_UID, args).unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn stop(mut mon: Monitor) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(1500));
    mon.terminate().unwrap();
    mon.wait_exit(TIMEOUT).expect("the monitor stops");
    mon.lines_so_far()
}

fn build(inputs: &[PathBuf], out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["profile", "build"])
        .args(inputs)
        .arg("--out")
        .arg(out)
        .args(["--min-tasks", "2"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn in_poll_mode_under_fargate_capabilities_a_profile_is_quiet_on_the_workload_and_sees_deviations()
{
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for run in 0..2 {
        let task = Task::new();
        let (mon, _) = task.monitor(&["--learn", "1h"]);
        let httpd = task.benign();
        let lines = stop(mon);
        drop(httpd);
        let path = dir.path().join(format!("task{run}.ndjson"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        inputs.push(path);
    }
    let profile = dir.path().join("profile.yaml");
    let text = build(&inputs, &profile);
    assert!(text.contains("# Tasks: 2 ("), "{text}");
    // What poll mode learnt as the app user: the web server, its listener, the peer.
    for expected in [
        "app | exec | /bin/busybox name=httpd",
        "app | listen | tcp/8080",
        &format!("app | connect | tcp/{PEER_PORT} 198.51.100.1 |"),
        // The ECS agent, by name.
        "app | connect | tcp/80 ecs-agent |",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("#   entry: ") && l.contains(expected)),
            "{expected} not learnt:\n{text}"
        );
    }

    let task = Task::new();
    let (mon, _) = task.monitor(&[
        "--rules",
        profile.to_str().unwrap(),
        "--rule-matching",
        "all",
    ]);
    let httpd = task.benign();
    std::thread::sleep(Duration::from_millis(1500));
    let quiet: Vec<Value> = mon.events().into_iter().filter(is_profile_alert).collect();
    assert!(
        quiet.is_empty(),
        "the benign workload raised profile alerts:\n{}\nprofile:\n{text}",
        quiet
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Deviations poll mode can see, as the app user.
    let listener = task
        .app
        .spawn_as(
            APP_UID,
            &["/bin/nc", "-l", "-p", &NEW_LISTENER_PORT.to_string()],
        )
        .unwrap();
    task.run(&[
        "/bin/sh",
        "-c",
        "(/bin/sleep 2; printf 'GET / HTTP/1.0\\r\\n\\r\\n') | /bin/nc 198.51.100.1 18082 > /dev/null; true",
    ]);
    task.run(&["/home/app/.cache/sleep", "2"]);

    type Check = (&'static str, &'static str, Value);
    let expected: Vec<Check> = vec![
        (
            "Listener never seen in this container (app)",
            "fd.sport",
            json!(NEW_LISTENER_PORT),
        ),
        (
            "Connection never seen from this container (app)",
            "fd.sport",
            json!(NEW_PEER_PORT),
        ),
        (
            "Program never seen in this container (app)",
            "proc.exepath",
            json!("/home/app/.cache/sleep"),
        ),
    ];
    support::profile::wait_for_profile_alerts(&mon, &expected, &text, TIMEOUT);
    // The alerts name the app user's processes.
    let alerts = mon.events();
    let program = alerts
        .iter()
        .find(|a| a["rule"] == "Program never seen in this container (app)")
        .unwrap();
    assert_eq!(program["output_fields"]["user.name"], "app", "{program}");
    drop(listener);
    drop(httpd);
}
