//! Self-tests of the emulated Fargate task harness (`tests/support`): each checks, from the
//! host or from inside the task, one property of a Fargate task with `pidMode: task` that the
//! monitor's integration tests rely on.

use std::path::Path;
use std::time::Duration;

use support::{CapSet, ContainerSpec, EmulatedTask, MonitorSpec, ProcCaps, User};

/// The `/proc/<pid>/cgroup` lines of a host pid, as (controllers, path).
fn cgroup_lines(host_pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{host_pid}/cgroup"))
        .expect("reading the cgroup file")
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _ = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

fn cgroup_of(host_pid: i32, controller: &str) -> String {
    cgroup_lines(host_pid)
        .into_iter()
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, path)| path)
        .unwrap_or_else(|| panic!("no {controller} line in /proc/{host_pid}/cgroup"))
}

fn ns_inode(host_pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{host_pid}/ns/{kind}"))
        .expect("reading a namespace link")
        .to_string_lossy()
        .into_owned()
}

/// `Key:\tvalue` from a `/proc/<pid>/status` text.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in status:\n{status}"))
}

fn is_fargate_container_id(id: &str, task_id: &str) -> bool {
    let Some(digits) = id
        .strip_prefix(task_id)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    task_id.len() == 32
        && task_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
}

#[test]
fn pause_is_pid_1_of_a_new_pid_and_net_namespace() {
    let task = EmulatedTask::new().expect("creating the task");
    let pause = task.pause_host_pid();
    assert_eq!(
        support::ns_pid_of(pause),
        Some(1),
        "the pause process is PID 1 of the task"
    );
    let me = std::process::id() as i32;
    assert_ne!(ns_inode(pause, "pid"), ns_inode(me, "pid"));
    assert_ne!(ns_inode(pause, "net"), ns_inode(me, "net"));
    // The pause process sits in a container-like cgroup of its own task.
    let cpu = cgroup_of(pause, "cpu");
    let id = cpu
        .strip_prefix(&format!("/ecs/{}/", task.task_id()))
        .unwrap_or_else(|| panic!("pause cgroup {cpu} is not under the task"));
    assert!(is_fargate_container_id(id, task.task_id()), "{cpu}");
    assert_eq!(cgroup_of(pause, "pids"), cpu);
}

#[test]
fn container_first_process_has_ppid_0_and_a_fargate_cgroup() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    assert!(
        is_fargate_container_id(app.id(), task.task_id()),
        "{}",
        app.id()
    );
    assert_eq!(
        app.cgroup_path(),
        format!("/ecs/{}/{}", task.task_id(), app.id())
    );

    // Seen from inside the task's PID namespace (the monitor's view), the first process's
    // parent is outside the namespace: ppid 0.
    let status = app
        .run_ok(&["cat", &format!("/proc/{}/status", app.first_pid())])
        .expect("reading the first process's status inside the container");
    assert_eq!(status_field(&status, "PPid"), "0");
    assert_eq!(status_field(&status, "Name"), "sleep");

    // The cpu and pids hierarchies show the Fargate path; the others are left alone.
    let host_pid = app.first_host_pid();
    assert_eq!(cgroup_of(host_pid, "cpu"), app.cgroup_path());
    assert_eq!(cgroup_of(host_pid, "pids"), app.cgroup_path());
    let me = std::process::id() as i32;
    for controller in ["memory", "blkio", "freezer"] {
        assert_eq!(
            cgroup_of(host_pid, controller),
            cgroup_of(me, controller),
            "the {controller} hierarchy must be left alone"
        );
    }
}

#[test]
fn containers_share_pid_and_net_namespaces_but_not_mount_namespaces() {
    let task = EmulatedTask::new().expect("creating the task");
    let a = task.add_container("app-a").expect("container a");
    let b = task.add_container("app-b").expect("container b");
    let (pa, pb) = (a.first_host_pid(), b.first_host_pid());
    assert_eq!(ns_inode(pa, "pid"), ns_inode(pb, "pid"));
    assert_eq!(ns_inode(pa, "pid"), ns_inode(task.pause_host_pid(), "pid"));
    assert_eq!(ns_inode(pa, "net"), ns_inode(pb, "net"));
    assert_ne!(ns_inode(pa, "mnt"), ns_inode(pb, "mnt"));
    let me = std::process::id() as i32;
    assert_ne!(ns_inode(pa, "mnt"), ns_inode(me, "mnt"));
    assert_ne!(a.id(), b.id());
    assert_ne!(a.cgroup_path(), b.cgroup_path());

    // Inside, each container sees the whole task: PID 1 is the pause process, and the other
    // container's first process is visible.
    let cmdline = a
        .run_ok(&["cat", "/proc/1/cmdline"])
        .expect("reading pid 1");
    assert!(cmdline.contains("pause"), "pid 1 runs {cmdline:?}");
    let other = a
        .run_ok(&["cat", &format!("/proc/{}/cmdline", b.first_pid())])
        .expect("reading the other container's first process");
    assert_eq!(other, "sleep\u{0}2147483647\u{0}");
}

#[test]
fn container_sees_its_own_busybox_root() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    let listing = app.run_ok(&["ls", "/"]).expect("ls /");
    let entries: Vec<&str> = listing.split_whitespace().collect();
    for expected in ["bin", "etc", "proc", "tmp", "dev"] {
        assert!(
            entries.contains(&expected),
            "{expected} missing from {entries:?}"
        );
    }
    assert!(
        !entries.contains(&"work"),
        "the host's /work leaks into the container: {entries:?}"
    );
    assert!(!entries.contains(&".oldroot"), "{entries:?}");
    let passwd = app
        .run_ok(&["cat", "/etc/passwd"])
        .expect("cat /etc/passwd");
    assert!(passwd.contains("appuser:x:1000:1000:"), "{passwd}");
    // A file written on the host side of the root appears inside.
    std::fs::write(app.host_path("/tmp/hello"), "from the host").expect("writing");
    assert_eq!(
        app.run_ok(&["cat", "/tmp/hello"]).expect("cat"),
        "from the host"
    );
    // /proc is the task's: only the task's processes are listed (pause, the first process,
    // and `ls` itself), not the host's.
    let pids: Vec<i32> = app
        .run_ok(&["ls", "/proc"])
        .expect("ls /proc")
        .split_whitespace()
        .filter_map(|name| name.parse().ok())
        .collect();
    assert!(
        pids.contains(&1) && pids.contains(&app.first_pid()),
        "{pids:?}"
    );
    assert!(
        pids.len() <= 4,
        "the container sees processes outside the task: {pids:?}"
    );
    // /dev/null works.
    app.run_ok(&["sh", "-c", "echo x > /dev/null"])
        .expect("/dev/null");
}

#[test]
fn users_come_from_each_containers_own_passwd() {
    let task = EmulatedTask::new().expect("creating the task");
    let a = task.add_container("app-a").expect("container a");
    let b = task
        .add_container_with(
            "app-b",
            ContainerSpec::with_users(vec![User::new("worker", 1000)]),
        )
        .expect("container b");
    let id_a = a.run_as(1000, &["id"]).expect("id in a");
    let id_b = b.run_as(1000, &["id"]).expect("id in b");
    assert!(
        String::from_utf8_lossy(&id_a.stdout).starts_with("uid=1000(appuser) gid=1000(appuser)")
    );
    assert!(String::from_utf8_lossy(&id_b.stdout).starts_with("uid=1000(worker) gid=1000(worker)"));
    let id_root = a.run_ok(&["id", "-u"]).expect("id as root");
    assert_eq!(id_root.trim(), "0");
}

#[test]
fn spawned_processes_live_in_the_container_and_can_be_killed() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    // Busybox `sleep` sums its arguments, so a unique duration serves as the marker.
    let duration = format!(
        "30.{}",
        &support::random_hex(4).replace(|c: char| !c.is_ascii_digit(), "1")
    );
    let mut shell = app
        .spawn_as(1000, &["sh", "-c", &format!("sleep {duration}; true")])
        .expect("spawning");
    assert_eq!(support::ns_pid_of(shell.host_pid()), Some(shell.pid()));
    assert_eq!(cgroup_of(shell.host_pid(), "cpu"), app.cgroup_path());
    assert_eq!(cgroup_of(shell.host_pid(), "pids"), app.cgroup_path());
    assert_eq!(
        ns_inode(shell.host_pid(), "mnt"),
        ns_inode(app.first_host_pid(), "mnt")
    );

    // Inside: the shell's parent is outside the namespace, and its child `sleep` has the
    // shell as parent and runs as uid 1000.
    let ps = wait_until(Duration::from_secs(5), || {
        let out = app.run_ok(&["ps", "-o", "pid,ppid,user,args"]).ok()?;
        out.lines()
            .find(|line| line.contains(&format!("sleep {duration}")) && !line.contains("sh -c"))
            .map(str::to_string)
    })
    .expect("the sleep child appears in ps");
    let fields: Vec<&str> = ps.split_whitespace().collect();
    assert_eq!(fields[1], shell.pid().to_string(), "{ps}");
    assert_eq!(fields[2], "appuser", "{ps}");
    let status = app
        .run_ok(&["cat", &format!("/proc/{}/status", shell.pid())])
        .expect("status of the shell");
    assert_eq!(status_field(&status, "PPid"), "0");

    let killed = shell.kill().expect("killing");
    assert!(!killed.success());
    assert!(!Path::new(&format!("/proc/{}", shell.host_pid())).exists());
}

#[test]
fn container_processes_get_the_containers_capabilities_and_the_images_user() {
    let task = EmulatedTask::new().expect("creating the task");
    // The default: Docker's capability set, root, for the first process and for commands.
    let plain = task.add_container("plain").expect("a default container");
    let default = CapSet::docker_default();
    assert_eq!(default.names().len(), 14, "{default}");
    let first = ProcCaps::of(plain.first_host_pid()).expect("first process caps");
    let root_with = |caps: CapSet| ProcCaps {
        inheritable: CapSet::empty(),
        permitted: caps,
        effective: caps,
        bounding: caps,
        ambient: CapSet::empty(),
    };
    assert_eq!(first, root_with(default));
    let status = plain
        .run_ok(&["cat", "/proc/self/status"])
        .expect("a root command's status");
    assert_eq!(status_field(&status, "Uid"), "0\t0\t0\t0");
    assert_eq!(
        status_field(&status, "CapEff"),
        format!("{:016x}", default.0),
        "a root command (like `docker exec`) has the container's set"
    );
    assert_eq!(
        status_field(&status, "CapBnd"),
        format!("{:016x}", default.0)
    );
    assert_eq!(status_field(&status, "CapInh"), format!("{:016x}", 0));

    // An image with `USER app`, and a capability set of its own: the first process runs as
    // the user, with the set as bounding set only; its home is private; commands as root get
    // the set, commands as the user nothing under it.
    let caps = CapSet::from_names(&["NET_RAW", "KILL"]).expect("names");
    let spec = ContainerSpec::default()
        .with_user(User::new("app", 1001))
        .with_capabilities(caps);
    let app = task
        .add_container_with("app", spec)
        .expect("the app container");
    assert_eq!(app.user().uid, 1001);
    assert_eq!(app.capabilities(), caps);
    let host_pid = app.first_host_pid();
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).expect("status");
    assert_eq!(status_field(&status, "Uid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&status, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&status, "Groups"), "");
    let user_caps = ProcCaps {
        permitted: CapSet::empty(),
        effective: CapSet::empty(),
        ..root_with(caps)
    };
    assert_eq!(ProcCaps::of(host_pid).expect("caps"), user_caps);
    let environ = std::fs::read(format!("/proc/{host_pid}/environ")).expect("environ");
    assert!(
        environ.split(|b| *b == 0).any(|v| v == b"HOME=/home/app"),
        "the first process's HOME is the user's"
    );
    let home = std::fs::metadata(app.host_path("/home/app")).expect("the home");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        (home.uid(), home.gid(), home.permissions().mode() & 0o7777),
        (1001, 1001, 0o700)
    );
    let denied = app
        .run_as(1000, &["ls", "/home/app"])
        .expect("ls as another user");
    assert!(
        !denied.status.success(),
        "another user cannot enter the 0700 home"
    );
    let as_user = app
        .run_as(
            1001,
            &[
                "sh",
                "-c",
                "touch ~/own && grep -E '^Cap(Eff|Bnd)' /proc/self/status",
            ],
        )
        .expect("a command as the user");
    assert!(as_user.status.success(), "{as_user:?}");
    assert_eq!(
        String::from_utf8_lossy(&as_user.stdout),
        format!("CapEff:\t{:016x}\nCapBnd:\t{:016x}\n", 0, caps.0)
    );
    let mut root = app
        .spawn(&["sleep", "2147483647", "0.5"])
        .expect("a root command");
    let wanted = "sleep\u{0}2147483647\u{0}0.5\u{0}";
    wait_until(Duration::from_secs(5), || {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", root.host_pid())).ok()?;
        (cmdline == wanted.as_bytes()).then_some(())
    })
    .expect("the root command runs");
    assert_eq!(
        ProcCaps::of(root.host_pid()).expect("caps"),
        root_with(caps)
    );
    // Without CHOWN, even root cannot give a file away.
    let chown = app
        .run(&["sh", "-c", "touch /tmp/f && chown 1001 /tmp/f"])
        .expect("chown");
    assert!(
        !chown.status.success(),
        "chown without CAP_CHOWN: {chown:?}"
    );
    let _ = root.kill();
}

#[test]
fn a_command_exits_like_what_it_ran_and_is_its_launchers_only_child() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    let code = app.run(&["sh", "-c", "exit 7"]).expect("exit 7");
    assert_eq!(code.status.code(), Some(7));
    let signalled = app
        .run(&["sh", "-c", "kill -TERM $$"])
        .expect("kill itself");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        signalled.status.signal(),
        Some(15),
        "{:?}",
        signalled.status
    );
    let missing = app
        .run(&["/no/such/program"])
        .expect("run a missing program");
    assert_eq!(missing.status.code(), Some(127));

    // The command's process is the launcher's (`ctrexec`, on the host) only child, and runs
    // the command itself once it exec'd: nothing in between.
    // Busybox `sleep` sums its arguments: the marker is a unique extra duration.
    let marker = format!(
        "0.{}",
        support::random_hex(4).replace(|c: char| !c.is_ascii_digit(), "3")
    );
    let mut child = app.spawn(&["sleep", "2147483647", &marker]).expect("spawn");
    let wanted = format!("sleep\u{0}2147483647\u{0}{marker}\u{0}");
    let exec_done = wait_until(Duration::from_secs(5), || {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.host_pid())).ok()?;
        (cmdline == wanted.as_bytes()).then_some(())
    });
    assert!(exec_done.is_some(), "the command never ran");
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.host_pid())).expect("exe");
    assert!(exe.ends_with("bin/busybox"), "{}", exe.display());
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.host_pid())).expect("stat");
    let ppid: i32 = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .expect("ppid");
    let launcher_comm =
        std::fs::read_to_string(format!("/proc/{ppid}/comm")).expect("the launcher's comm");
    assert_eq!(launcher_comm.trim(), "ctrexec");
    assert_eq!(support::children_of(ppid as u32), vec![child.host_pid()]);
    let _ = child.kill();
}

#[test]
fn network_namespace_has_the_task_addresses_on_lo_only() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    let addresses = app.run_ok(&["ip", "-o", "addr", "show"]).expect("ip addr");
    for address in support::TASK_ADDRESSES {
        assert!(
            addresses.contains(&format!("inet {address} ")),
            "{address} missing:\n{addresses}"
        );
    }
    let links = app.run_ok(&["ip", "-o", "link", "show"]).expect("ip link");
    assert_eq!(links.lines().count(), 1, "only lo exists:\n{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    // A peer started from the host side in the task's network namespace is reachable from a
    // container at a "remote" address.
    // The listener's stdin stays open for a few seconds: busybox nc stops at EOF on its own
    // stdin, which (from /dev/null) could come before the client's data was read.
    let listener = task
        .netns_command("/bin/sh")
        .args(["-c", "sleep 3 | /bin/busybox nc -l -p 8080"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting a listener");
    let sent = wait_until(Duration::from_secs(5), || {
        // The client keeps its side open briefly after sending: a busybox nc that sees EOF on
        // stdin at once can close before its data is read, which made this test flaky.
        app.run_ok(&[
            "sh",
            "-c",
            "(echo ping-198; sleep 0.5) | nc 198.51.100.1 8080",
        ])
        .ok()
    });
    assert!(sent.is_some(), "could not connect to 198.51.100.1:8080");
    let output = listener.wait_with_output().expect("listener output");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ping-198\n");
}

#[test]
fn host_python_can_be_bound_into_a_container() {
    let task = EmulatedTask::new().expect("creating the task");
    let spec = ContainerSpec::default()
        .with_host_python()
        .expect("python binds");
    let app = task
        .add_container_with("py", spec)
        .expect("adding a python container");
    let out = app
        .run_ok(&[
            "python3",
            "-c",
            "import json, socket; print(json.dumps([1]))",
        ])
        .expect("running python3");
    assert_eq!(out, "[1]\n");
    // The bind is read-only.
    let write = app
        .run(&["sh", "-c", "echo x > /usr/lib/x86_64-linux-gnu/probe"])
        .expect("run");
    assert!(!write.status.success());
}

/// The sidecar's environment, checked with a shell script standing in for the monitor binary
/// (this tests the harness, not TaskSentry).
#[test]
fn monitor_sidecar_runs_in_the_task_with_its_own_proc_and_cgroup() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    let script = r#"
        printf '{"self":%s}\n' "$(cut -d' ' -f1 /proc/self/stat)"
        printf '{"sh":%s}\n' "$$"
        printf '{"cgroup":"%s"}\n' "$(grep ':cpu:' /proc/self/cgroup | cut -d: -f3)"
        printf '{"pid1":"%s"}\n' "$(tr '\0' ' ' < /proc/1/cmdline)"
        printf '{"procs":[%s]}\n' "$(ls /proc | grep -E '^[0-9]+$' | paste -sd, -)"
        echo 'diagnostic on stderr' >&2
        trap 'echo "{\"term\":true}"; exit 0' TERM
        while :; do sleep 0.05; done
    "#;
    let spec = MonitorSpec {
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), script.into()],
        env: Vec::new(),
        capabilities: None,
    };
    let mut mon = task.start_monitor_with(spec).expect("starting the sidecar");
    let timeout = Duration::from_secs(5);
    let sh = mon
        .wait_for(|v| v.get("sh").is_some(), timeout)
        .expect("sh line");
    assert_eq!(sh["sh"].as_i64(), Some(i64::from(mon.pid())));
    let cgroup = mon
        .wait_for(|v| v.get("cgroup").is_some(), timeout)
        .expect("cgroup line");
    assert_eq!(cgroup["cgroup"], mon.cgroup_path());
    assert!(is_fargate_container_id(mon.container_id(), task.task_id()));
    assert_ne!(mon.container_id(), app.id());
    let pid1 = mon
        .wait_for(|v| v.get("pid1").is_some(), timeout)
        .expect("pid1 line");
    assert!(
        pid1["pid1"].as_str().is_some_and(|c| c.contains("pause")),
        "{pid1}"
    );
    let procs = mon
        .wait_for(|v| v.get("procs").is_some(), timeout)
        .expect("procs line");
    let procs: Vec<i64> = procs["procs"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p.as_i64())
        .collect();
    assert!(
        procs.contains(&1) && procs.contains(&i64::from(app.first_pid())),
        "{procs:?}"
    );
    assert!(procs.contains(&i64::from(mon.pid())));
    assert!(
        procs.len() < 10,
        "the sidecar sees processes outside the task: {procs:?}"
    );
    // The monitor's mount namespace is its own (not the host's, not a container's).
    let me = std::process::id() as i32;
    assert_ne!(ns_inode(mon.host_pid(), "mnt"), ns_inode(me, "mnt"));
    assert_ne!(
        ns_inode(mon.host_pid(), "mnt"),
        ns_inode(app.first_host_pid(), "mnt")
    );
    // Nothing matches: the error carries the lines seen and stderr.
    let error = mon
        .wait_for(|v| v.get("never").is_some(), Duration::from_millis(200))
        .expect_err("nothing matches");
    let message = error.to_string();
    assert!(
        message.contains("\"pid1\"") && message.contains("diagnostic on stderr"),
        "{message}"
    );
    assert!(mon.non_json_lines().is_empty());

    assert!(mon.is_running());
    mon.terminate().expect("SIGTERM");
    mon.wait_for(|v| v.get("term").is_some(), timeout)
        .expect("the sidecar saw SIGTERM");
    let status = mon.wait_exit(timeout).expect("exit");
    assert!(status.success(), "{status}");
    assert!(!mon.is_running());
}

#[test]
fn dropping_the_task_removes_processes_cgroups_and_files() {
    let task = EmulatedTask::new().expect("creating the task");
    let app = task.add_container("app-a").expect("adding a container");
    let child = app.spawn(&["sleep", "60"]).expect("spawning");
    let pause = task.pause_host_pid();
    let first = app.first_host_pid();
    let dir = task.dir().to_path_buf();
    let cgroup_dirs: Vec<_> = ["cpu", "pids"]
        .iter()
        .map(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join(format!("ecs/{}", task.task_id()))
        })
        .collect();
    assert!(cgroup_dirs.iter().all(|d| d.is_dir()) && dir.is_dir());
    drop(app);
    drop(task);
    // The spawned process's handle still exists, but the task is gone with everything in it.
    for pid in [pause, first, child.host_pid()] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "pid {pid} survived the task"
        );
    }
    assert!(
        cgroup_dirs.iter().all(|d| !d.exists()),
        "cgroups left: {cgroup_dirs:?}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    drop(child);
}

/// Polls `probe` until it returns `Some`, or gives up after `timeout`.
fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
