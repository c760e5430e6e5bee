//! Workload profiles end to end (issue 18), with the real binary in emulated Fargate tasks whose
//! ECS metadata endpoint names the containers `web`, `worker` and `health`:
//!
//! - a benign workload (a web server, a worker running jobs and calling a peer, a health check)
//!   is learnt in three tasks (`run --learn`, trace mode), the third of which also connects to a
//!   port the others never use (an attack seen while learning);
//! - `profile build` reads the first task's stdout, the second's recording (`--record`) and the
//!   third's `aws logs filter-log-events` output; the profile of the first two loads with
//!   `rules validate --strict` without a warning; the build is byte-identical for the same
//!   inputs in another order; `--min-tasks 2` leaves out the third task's attack;
//! - with that profile loaded after the defaults (`--rule-matching all`), the same benign
//!   workload in a fourth task raises no profile alert, and each of eleven deviations raises
//!   the right one (among them a known program run by a new parent, and a connection accepted
//!   on a port the web server never accepted on from its peer), and so does the attack
//!   replayed;
//! - offline, as in CI (`rules test`): a learning task's recording replayed through the profile
//!   that learnt it raises no profile alert, and the rerun's recording raises the same profile
//!   alerts as the live monitor did; `profile diff` names the attack `--min-tasks 2` left out.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::netns::HttpServer;
use support::profile::is_profile_alert;
use support::sidecar::{EcsMetadata, TASK_DOC};
use support::{Container, EmulatedTask, Monitor, MonitorSpec};

const TIMEOUT: Duration = Duration::from_secs(30);
const PEER_PORT: u16 = 18081;
const NEW_PEER_PORT: u16 = 18082;
const ATTACK_PORT: u16 = 4444;

// Each script waits a second before its first job: long enough for the monitor to find and
// trace it, so that every process it starts is seen (a process that starts and ends between two
// scans of /proc can be missed, in learning as later).
const WORKER_JOBS: &str = r#"
sleep 1
i=0
while [ $i -lt 12 ]; do
  /bin/sh -c "date +%s%N | md5sum > /tmp/job.$i"
  rm -f /tmp/job.$i
  sleep 0.1
  i=$((i + 1))
done
(sleep 1; printf 'GET / HTTP/1.0\r\n\r\n') | /bin/nc 198.51.100.1 18081 > /dev/null
(sleep 1; printf 'GET /health HTTP/1.0\r\n\r\n') | /bin/nc 198.51.100.1 8080 > /dev/null
true"#;

const HEALTH_CHECK: &str = r#"
sleep 1
i=0
while [ $i -lt 5 ]; do
  /bin/sh -c '/bin/wget -q -O- http://localhost:8080/health || exit 1' > /dev/null 2>&1
  sleep 0.2
  i=$((i + 1))
done
true"#;

/// One emulated task with the three containers, its metadata endpoint and peers.
struct Workload {
    task: EmulatedTask,
    web: Container,
    worker: Container,
    health: Container,
    metadata: EcsMetadata,
    _peers: Vec<HttpServer>,
}

fn container_doc(template: &Value, container: &Container, digest: &str) -> Value {
    let mut doc = template.clone();
    doc["Name"] = json!(container.name());
    doc["DockerName"] = json!(container.name());
    doc["DockerId"] = json!(container.id());
    doc["Image"] = json!(format!(
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop-{}:1.0",
        container.name()
    ));
    doc["ImageID"] = json!(digest);
    doc["Labels"]["com.amazonaws.ecs.container-name"] = json!(container.name());
    doc
}

impl Workload {
    fn new() -> Workload {
        let task = EmulatedTask::new().expect("task");
        let web = task.add_container("web").expect("web");
        let worker = task.add_container("worker").expect("worker");
        let health = task.add_container("health").expect("health");
        // What the images ship.
        std::fs::create_dir_all(web.host_path("/www")).unwrap();
        std::fs::write(web.host_path("/www/health"), "ok\n").unwrap();
        worker.install_script("worker-jobs", WORKER_JOBS).unwrap();
        worker.install_script("report-gen", "sleep 1").unwrap();
        std::fs::create_dir_all(worker.host_path("/var/tmp")).unwrap();
        std::fs::write(
            worker.host_path("/etc/shadow"),
            "root:*:19000:0:99999:7:::\n",
        )
        .unwrap();
        health.install_script("health-check", HEALTH_CHECK).unwrap();

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
        doc["Containers"] = json!([
            container_doc(&template, &web, &format!("sha256:{}", "1".repeat(64))),
            container_doc(&template, &worker, &format!("sha256:{}", "2".repeat(64))),
            container_doc(&template, &health, &format!("sha256:{}", "3".repeat(64))),
        ]);
        let metadata = EcsMetadata::start(&task, &doc.to_string());
        let peer = HttpServer::start(
            &task.ns_path("net"),
            format!("198.51.100.1:{PEER_PORT}").parse().unwrap(),
            |_| Some("{}".to_owned()),
        )
        .expect("the peer");
        Workload {
            task,
            web,
            worker,
            health,
            metadata,
            _peers: vec![peer],
        }
    }

    fn add_peer(&mut self, port: u16) {
        let peer = HttpServer::start(
            &self.task.ns_path("net"),
            format!("198.51.100.1:{port}").parse().unwrap(),
            |_| Some("{}".to_owned()),
        )
        .expect("a peer");
        self._peers.push(peer);
    }

    fn monitor(&self, args: &[&str]) -> (Monitor, PathBuf) {
        let spec = MonitorSpec::new(&["run", "--mode", "trace"])
            .with_args(args)
            .with_ecs_metadata(&self.metadata);
        self.task
            .start_monitor_recording_with(spec, &self.web, TIMEOUT)
            .expect("the monitor starts")
    }

    /// The benign workload; returns the web server, which runs until dropped.
    fn benign(&self) -> support::ContainerProcess {
        let httpd = self
            .web
            .spawn(&["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
            .expect("httpd");
        std::thread::sleep(Duration::from_millis(500));
        self.worker.run_ok(&["worker-jobs"]).expect("worker jobs");
        self.health
            .run_ok(&["health-check"])
            .expect("health checks");
        httpd
    }
}

/// Stops the monitor (SIGTERM, as ECS does) and returns everything it printed.
fn stop(mut mon: Monitor) -> Vec<String> {
    // Let the collectors catch up with the last processes and sockets.
    std::thread::sleep(Duration::from_millis(1500));
    mon.terminate().unwrap();
    mon.wait_exit(TIMEOUT).expect("the monitor stops");
    mon.lines_so_far()
}

fn snapshot_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("\"profile_snapshot\""))
        .collect()
}

fn tasksentry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(args)
        .output()
        .expect("tasksentry runs")
}

fn build(inputs: &[&Path], out: &Path, min_tasks: usize) -> String {
    let mut args: Vec<String> = vec!["profile".into(), "build".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--min-tasks".into(),
        min_tasks.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = tasksentry(&args);
    assert!(
        output.status.success(),
        "profile build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn a_profile_learnt_in_tasks_is_quiet_on_the_same_workload_and_alerts_on_deviations() {
    let dir = tempfile::tempdir().unwrap();
    // Three tasks learn; the first snapshots every 2 s too.
    let mut inputs = Vec::new();
    for run in 0..3 {
        let mut workload = Workload::new();
        let interval = if run == 0 { "2s" } else { "1h" };
        let (mon, recording) = workload.monitor(&["--learn", "1h", "--learn-interval", interval]);
        let httpd = workload.benign();
        if run == 2 {
            // Something only this task did while learning.
            workload.add_peer(ATTACK_PORT);
            workload
                .worker
                .run_ok(&[
                    "/bin/sh",
                    "-c",
                    "(sleep 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n') | /bin/nc 198.51.100.1 4444 > /dev/null; true",
                ])
                .unwrap();
        }
        let lines = stop(mon);
        drop(httpd);
        let snapshots = snapshot_lines(&lines);
        let containers: Vec<String> = snapshots
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| {
                v["evt"]["args"]
                    .as_array()?
                    .iter()
                    .find(|a| a[0] == "container")
                    .map(|a| a[1].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        for name in ["web", "worker", "health"] {
            assert!(
                containers.iter().any(|c| c == name),
                "run {run}: no snapshot of {name}: {containers:?}\nstdout:\n{}\nstderr:\n{}",
                lines.join("\n"),
                workload.task.dir().display()
            );
        }
        let input = match run {
            // The first task's stdout as the awslogs driver ships it.
            0 => {
                let path = dir.path().join("task1-stdout.ndjson");
                std::fs::write(&path, lines.join("\n")).unwrap();
                path
            }
            // The second task's recording.
            1 => {
                let text = std::fs::read_to_string(&recording).unwrap();
                assert!(
                    text.contains("profile_snapshot"),
                    "the recording has the snapshots"
                );
                let path = dir.path().join("task2-recording.ndjson");
                std::fs::write(&path, text).unwrap();
                path
            }
            // The third as `aws logs filter-log-events` prints it.
            _ => {
                let events: Vec<Value> = lines
                    .iter()
                    .enumerate()
                    .map(|(n, l)| json!({"logStreamName": "tasksentry", "timestamp": n, "message": l, "eventId": n.to_string()}))
                    .collect();
                let path = dir.path().join("task3-filter-log-events.json");
                std::fs::write(
                    &path,
                    serde_json::to_string_pretty(
                        &json!({"events": events, "searchedLogStreams": []}),
                    )
                    .unwrap(),
                )
                .unwrap();
                path
            }
        };
        inputs.push(input);
    }

    // Two tasks: a profile that loads strictly, without a warning.
    let two = dir.path().join("two.yaml");
    let text = build(&[&inputs[0], &inputs[1]], &two, 1);
    assert!(text.contains("# Tasks: 2 ("), "{text}");
    assert!(
        text.contains(&format!("sha256:{}", "1".repeat(64))),
        "{text}"
    );
    let validate = tasksentry(&["rules", "validate", "--strict", two.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{report}");
    assert!(report.contains("0 errors, 0 warnings"), "{report}");
    assert!(report.contains("0 rules skipped"), "{report}");

    // Three tasks: the attack of one is in the profile only with --min-tasks 1.
    let all = dir.path().join("all.yaml");
    let all_text = build(&[&inputs[0], &inputs[1], &inputs[2]], &all, 1);
    let attack = format!("fd.sport = {ATTACK_PORT} ");
    assert!(all_text.contains(&attack), "{all_text}");
    let profile = dir.path().join("profile.yaml");
    let text = build(&[&inputs[0], &inputs[1], &inputs[2]], &profile, 2);
    assert!(!text.contains(&attack), "{text}");
    assert!(text.contains("# Tasks: 3 ("), "{text}");
    // The diff from the profile with the attack to the one without names the attack.
    let diff = tasksentry(&[
        "profile",
        "diff",
        all.to_str().unwrap(),
        profile.to_str().unwrap(),
    ]);
    let diff_text = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.status.success(), "{diff_text}");
    assert!(
        diff_text.contains(&format!(
            "- worker | connect | tcp/{ATTACK_PORT} 198.51.100.1\n"
        )),
        "{diff_text}"
    );
    assert!(
        text.contains(&format!(
            "#   left out: worker | connect | tcp/{ATTACK_PORT} 198.51.100.1 | tasks=1 n="
        )),
        "{text}"
    );
    // Deterministic: the same inputs in another order give the same bytes.
    let again = dir.path().join("again.yaml");
    let text_again = build(&[&inputs[2], &inputs[0], &inputs[1]], &again, 2);
    assert_eq!(text, text_again);

    // Offline, as in CI: the second task's recording replayed through the profile that learnt
    // it (every entry kept) raises no profile alert.
    let replay = tasksentry(&[
        "rules",
        "test",
        "--events",
        inputs[1].to_str().unwrap(),
        "--rule-matching",
        "all",
        all.to_str().unwrap(),
    ]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !replayed.iter().any(is_profile_alert),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );

    // PROFILE_E2E_KEEP=DIR keeps the inputs and profiles (the documentation shows them).
    if let Ok(keep) = std::env::var("PROFILE_E2E_KEEP") {
        std::fs::create_dir_all(&keep).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
        }
    }

    // The same workload with the profile loaded: no profile alert.
    let mut workload = Workload::new();
    workload.add_peer(NEW_PEER_PORT);
    workload.add_peer(ATTACK_PORT);
    let (mon, rerun_recording) = workload.monitor(&[
        "--rules",
        profile.to_str().unwrap(),
        "--rule-matching",
        "all",
    ]);
    let httpd = workload.benign();
    std::thread::sleep(Duration::from_millis(1500));
    let profile_alerts: Vec<Value> = mon.events().into_iter().filter(is_profile_alert).collect();
    assert!(
        profile_alerts.is_empty(),
        "the benign workload raised profile alerts:\n{}\nprofile:\n{text}",
        profile_alerts
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Deviations, each with the profile rule it must raise and a field that tells it apart.
    let (web, worker, health) = (&workload.web, &workload.worker, &workload.health);
    web.run_ok(&["/bin/sh", "-c", "sleep 1; true"]).unwrap();
    worker.run_ok(&["report-gen"]).unwrap();
    // A second first, so that the monitor traces the shell before it starts `id`.
    health
        .run_ok(&["/bin/sh", "-c", "sleep 1; /bin/id > /dev/null"])
        .unwrap();
    worker
        .run_ok(&[
            "/bin/sh",
            "-c",
            "cp /bin/busybox /tmp/sleep && /tmp/sleep 1",
        ])
        .unwrap();
    worker
        .run_ok(&[
            "/bin/sh",
            "-c",
            "(sleep 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n') | /bin/nc 198.51.100.1 18082 > /dev/null; true",
        ])
        .unwrap();
    // Its input stays open, so that it holds the connection it accepts (below).
    let listener = web
        .spawn(&["/bin/sh", "-c", "sleep 30 | /bin/nc -l -p 4445 > /dev/null"])
        .unwrap();
    worker
        .run_ok(&["/bin/sh", "-c", "echo loot > /var/tmp/stash"])
        .unwrap();
    worker
        .run_ok(&[
            "/bin/sh",
            "-c",
            "mkdir -p /etc/cron.d && echo '* * * * * root sh' > /etc/cron.d/job",
        ])
        .unwrap();
    worker.run_ok(&["/bin/cat", "/etc/shadow"]).unwrap();
    // A program the health check always runs (wget), run by a parent it never had.
    health
        .run_ok(&[
            "/bin/sh",
            "-c",
            "cp /bin/busybox /tmp/busybox && /tmp/busybox sh -c 'sleep 1; /bin/wget -q -O- http://localhost:8080/health; true' > /dev/null",
        ])
        .unwrap();
    // The web server's peer on a port it never accepted on (the listener above).
    worker
        .run_ok(&[
            "/bin/sh",
            "-c",
            "(sleep 1; echo hello; sleep 2) | /bin/nc 198.51.100.1 4445 > /dev/null; true",
        ])
        .unwrap();
    // The attack one task did while learning, replayed.
    worker
        .run_ok(&[
            "/bin/sh",
            "-c",
            "(sleep 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n') | /bin/nc 198.51.100.1 4444 > /dev/null; true",
        ])
        .unwrap();

    type Check = (&'static str, &'static str, Value);
    let expected: Vec<Check> = vec![
        (
            "Shell never seen in this container (web)",
            "proc.name",
            json!("sh"),
        ),
        (
            "Program never seen in this container (worker)",
            "proc.name",
            json!("report-gen"),
        ),
        (
            "Program never seen in this container (health)",
            "proc.name",
            json!("id"),
        ),
        (
            "Program never seen in this container (worker)",
            "proc.exepath",
            json!("/tmp/sleep"),
        ),
        (
            "Connection never seen from this container (worker)",
            "fd.sport",
            json!(NEW_PEER_PORT),
        ),
        (
            "Listener never seen in this container (web)",
            "fd.sport",
            json!(4445),
        ),
        (
            "Write where this container never wrote (worker)",
            "fd.name",
            json!("/var/tmp/stash"),
        ),
        (
            "Write where this container never wrote (worker)",
            "fd.directory",
            json!("/etc"),
        ),
        (
            "Sensitive file read never seen in this container (worker)",
            "fd.name",
            json!("/etc/shadow"),
        ),
        (
            "Connection never seen from this container (worker)",
            "fd.sport",
            json!(ATTACK_PORT),
        ),
        (
            "Program never seen in this container (health)",
            "proc.pexepath",
            json!("/tmp/busybox"),
        ),
        (
            "Inbound connection never seen in this container (web)",
            "fd.sport",
            json!(4445),
        ),
    ];
    support::profile::wait_for_profile_alerts(&mon, &expected, &text, TIMEOUT);
    drop(listener);
    drop(httpd);

    // The rerun's recording replayed offline raises the same profile alerts.
    let replay = tasksentry(&[
        "rules",
        "test",
        "--events",
        rerun_recording.to_str().unwrap(),
        "--rule-matching",
        "all",
        profile.to_str().unwrap(),
    ]);
    let replayed: Vec<Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for (rule, field, value) in &expected {
        assert!(
            replayed
                .iter()
                .any(|a| a["rule"] == *rule && a["output_fields"][*field] == *value),
            "the replay lacks {rule} {field}={value}"
        );
    }
}
