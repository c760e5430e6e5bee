//! Scanner tests against a synthetic proc root in a tempdir: exact control over pids, start
//! times, cgroups, mount namespaces and `ns_last_pid`, so container grouping, exclusion,
//! exec detection, pid recycling and missed-process counting are checked deterministically.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ProcScanConfig, ProcScanner};
use crate::collect::shared::Exclusion;
use crate::event::{Event, EventType};

const TASK: &str = "8cd79a803caf4d2aa945152e934a5c00";

fn cg(container: &str) -> String {
    format!("11:pids:/ecs/{TASK}/{TASK}-{container}\n1:cpu:/ecs/{TASK}/{TASK}-{container}\n")
}

struct FakeProc {
    dir: tempfile::TempDir,
    roots: tempfile::TempDir,
}

struct Spec<'a> {
    pid: i32,
    ppid: i32,
    start: u64,
    comm: &'a str,
    cmdline: &'a [&'a str],
    cgroup: String,
    mnt_ns: u64,
    layout: u64,
}

impl FakeProc {
    fn new() -> FakeProc {
        let fake = FakeProc {
            dir: tempfile::tempdir().unwrap(),
            roots: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(fake.dir.path().join("sys/kernel")).unwrap();
        std::fs::write(fake.dir.path().join("sys/kernel/pid_max"), "32768\n").unwrap();
        std::fs::write(
            fake.dir.path().join("stat"),
            "cpu 1 2 3\nbtime 1700000000\n",
        )
        .unwrap();
        fake
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn set_last_pid(&self, pid: i32) {
        std::fs::write(
            self.root().join("sys/kernel/ns_last_pid"),
            format!("{pid}\n"),
        )
        .unwrap();
    }

    /// A container root directory with an /etc/passwd.
    fn container_root(&self, name: &str, passwd: &str) -> PathBuf {
        let root = self.roots.path().join(name);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), passwd).unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        root
    }

    fn add(&self, spec: &Spec, container_root: &Path) {
        let pdir = self.root().join(spec.pid.to_string());
        let _ = std::fs::remove_dir_all(&pdir);
        std::fs::create_dir_all(pdir.join("ns")).unwrap();
        std::fs::create_dir_all(pdir.join("fd")).unwrap();
        self.write_stat(spec);
        std::fs::write(
            pdir.join("status"),
            "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nTracerPid:\t0\nThreads:\t1\n",
        )
        .unwrap();
        let mut cmdline = Vec::new();
        for arg in spec.cmdline {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        std::fs::write(pdir.join("cmdline"), cmdline).unwrap();
        std::fs::write(pdir.join("environ"), b"PATH=/bin\0SECRET=x\0").unwrap();
        std::fs::write(pdir.join("cgroup"), &spec.cgroup).unwrap();
        std::os::unix::fs::symlink(format!("mnt:[{}]", spec.mnt_ns), pdir.join("ns/mnt")).unwrap();
        std::os::unix::fs::symlink(format!("/bin/{}", spec.cmdline[0]), pdir.join("exe")).unwrap();
        std::os::unix::fs::symlink(container_root, pdir.join("root")).unwrap();
        std::os::unix::fs::symlink("/", pdir.join("cwd")).unwrap();
    }

    fn write_stat(&self, spec: &Spec) {
        let mut fields = vec!["0".to_string(); 52];
        fields[0] = spec.pid.to_string();
        fields[1] = format!("({})", spec.comm);
        fields[2] = "S".into();
        fields[3] = spec.ppid.to_string();
        fields[4] = spec.pid.to_string();
        fields[5] = spec.pid.to_string();
        fields[19] = "1".into();
        fields[21] = spec.start.to_string();
        fields[25] = (spec.layout * 4096).to_string();
        fields[26] = (spec.layout * 4096 + 100).to_string();
        fields[27] = (spec.layout * 8192).to_string();
        fields[47] = (spec.layout * 8192 + 16).to_string();
        fields[48] = (spec.layout * 8192 + 64).to_string();
        std::fs::write(
            self.root().join(spec.pid.to_string()).join("stat"),
            fields.join(" ") + "\n",
        )
        .unwrap();
    }

    fn remove(&self, pid: i32) {
        std::fs::remove_dir_all(self.root().join(pid.to_string())).unwrap();
    }
}

fn spec<'a>(
    pid: i32,
    ppid: i32,
    start: u64,
    comm: &'a str,
    cmdline: &'a [&'a str],
    container: &str,
) -> Spec<'a> {
    Spec {
        pid,
        ppid,
        start,
        comm,
        cmdline,
        cgroup: cg(container),
        mnt_ns: 4_000_000_000 + container.parse::<u64>().unwrap() % 1000,
        layout: u64::try_from(pid).unwrap(),
    }
}

fn config(root: &Path) -> ProcScanConfig {
    ProcScanConfig {
        proc_root: root.to_path_buf(),
        triggers: false,
        exclude_self: true,
        exclude_pause: true,
        young_window: Duration::from_secs(3600),
        ..ProcScanConfig::default()
    }
}

fn scan(scanner: &mut ProcScanner) -> Vec<Event> {
    let mut out = Vec::new();
    scanner.scan(&mut out);
    for event in &out {
        let line = event.to_json_line();
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, event);
    }
    out
}

fn of_type(events: &[Event], t: EventType) -> Vec<&Event> {
    events.iter().filter(|e| e.evt_type() == t).collect()
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv/app:/bin/ash\n";

#[test]
fn groups_containers_excludes_pause_and_reports_ancestry() {
    let fake = FakeProc::new();
    let app_root = fake.container_root("app", PASSWD);
    let pause_root = fake.container_root("pause", "");
    fake.add(
        &spec(1, 0, 10, "pause", &["/pause"], "1111111111"),
        &pause_root,
    );
    fake.add(
        &spec(
            40,
            0,
            20,
            "gunicorn",
            &["gunicorn", "app:wsgi"],
            "2222222222",
        ),
        &app_root,
    );
    fake.add(
        &spec(41, 40, 30, "sh", &["sh", "-c", "id"], "2222222222"),
        &app_root,
    );
    fake.add(
        &spec(42, 41, 31, "curl", &["curl", "http://x"], "2222222222"),
        &app_root,
    );
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    let events = scan(&mut scanner);
    let execs = of_type(&events, EventType::Execve);
    let pids: Vec<i32> = execs.iter().map(|e| e.proc.as_ref().unwrap().pid).collect();
    assert_eq!(
        pids,
        vec![40, 41, 42],
        "pause (pid 1 and its container) is excluded"
    );

    let curl = execs[2].proc.as_ref().unwrap();
    assert_eq!(curl.exe.as_deref(), Some("curl"));
    assert_eq!(curl.exepath.as_deref(), Some("/bin/curl"));
    assert_eq!(curl.args, vec!["http://x"]);
    assert_eq!(
        curl.user.as_deref(),
        Some("app"),
        "resolved from the container's passwd"
    );
    assert_eq!(curl.user_home.as_deref(), Some("/srv/app"));
    assert_eq!(curl.user_shell.as_deref(), Some("/bin/ash"));
    assert_eq!(curl.group.as_deref(), Some("app"));
    assert_eq!(curl.env, vec![("PATH".to_string(), "/bin".to_string())]);
    let ancestors: Vec<&str> = curl.ancestors.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(ancestors, vec!["sh", "gunicorn"]);

    let container = execs[2].container.as_ref().unwrap();
    assert_eq!(container.id, format!("{TASK}-2222222222"));
    assert_eq!(container.root_pid, Some(40));
    assert_eq!(
        container.cgroup.as_deref(),
        Some(format!("/ecs/{TASK}/{TASK}-2222222222").as_str())
    );
    assert!(container.start_time.is_some());

    let table = scanner.container_table();
    let pause = table.get(&format!("{TASK}-1111111111")).unwrap();
    assert_eq!(pause.excluded, Some(Exclusion::Pause));
    // The shared snapshot sees the same.
    let snapshot = scanner.shared_tables().snapshot();
    let (entry, container) = snapshot.lookup_pid(42).unwrap();
    assert_eq!(entry.process.name, "curl");
    assert_eq!(container.unwrap().container.root_pid, Some(40));
    assert_eq!(
        snapshot.lookup_pid(1).unwrap().0.excluded,
        Some(Exclusion::Pause)
    );

    // Steady state: nothing new.
    assert!(scan(&mut scanner).is_empty());
}

#[test]
fn monitor_container_is_excluded() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(
        &spec(
            50,
            0,
            20,
            "tasksentry",
            &["tasksentry", "run"],
            "3333333333",
        ),
        &root,
    );
    fake.add(
        &spec(51, 50, 21, "helper", &["helper"], "3333333333"),
        &root,
    );
    fake.add(&spec(60, 0, 22, "app", &["app"], "4444444444"), &root);
    std::os::unix::fs::symlink("50", fake.root().join("self")).unwrap();
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    let events = scan(&mut scanner);
    let pids: Vec<i32> = events
        .iter()
        .map(|e| e.proc.as_ref().unwrap().pid)
        .collect();
    assert_eq!(pids, vec![60]);
    // Later processes of the monitor's container stay hidden, including on exit.
    fake.add(&spec(52, 50, 40, "sh", &["sh"], "3333333333"), &root);
    assert!(scan(&mut scanner).is_empty());
    fake.remove(51);
    assert!(scan(&mut scanner).is_empty());

    // With exclusion off (tests in the host namespace), everything is reported.
    let mut open = ProcScanner::new(ProcScanConfig {
        exclude_self: false,
        ..config(fake.root())
    })
    .unwrap();
    assert_eq!(scan(&mut open).len(), 3);
}

#[test]
fn exec_in_place_fork_then_exec_exit_and_recycled_pid() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(
        &spec(70, 0, 10, "sh", &["sh", "entry.sh"], "5555555555"),
        &root,
    );
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    assert_eq!(scan(&mut scanner).len(), 1);

    // A fork of sh: same comm, same memory layout, same command line.
    let mut child = spec(71, 70, 20, "sh", &["sh", "entry.sh"], "5555555555");
    child.layout = 70;
    fake.add(&child, &root);
    let events = scan(&mut scanner);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].proc.as_ref().unwrap().args, vec!["entry.sh"]);

    // It execs: new comm, new layout, new command line. Reported again.
    let mut execed = spec(
        71,
        70,
        20,
        "python3",
        &["python3", "-c", "print(1)"],
        "5555555555",
    );
    execed.layout = 9999;
    fake.add(&execed, &root);
    let events = scan(&mut scanner);
    assert_eq!(of_type(&events, EventType::Execve).len(), 1);
    let p = events[0].proc.as_ref().unwrap();
    assert_eq!((p.pid, p.name.as_str()), (71, "python3"));
    assert_eq!(p.args, vec!["-c", "print(1)"]);
    assert_eq!(p.ancestors[0].name, "sh");
    assert!(scan(&mut scanner).is_empty());

    // Same binary exec'd again (exec sh from sh): only the memory layout changes.
    let mut again = spec(
        71,
        70,
        20,
        "python3",
        &["python3", "other.py"],
        "5555555555",
    );
    again.layout = 12345;
    fake.add(&again, &root);
    let events = scan(&mut scanner);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].proc.as_ref().unwrap().args, vec!["other.py"]);

    // Exit.
    fake.remove(71);
    let events = scan(&mut scanner);
    assert_eq!(of_type(&events, EventType::Procexit).len(), 1);
    assert_eq!(events[0].proc.as_ref().unwrap().name, "python3");
    // Still attributable during the grace period.
    assert!(scanner.process_table().lookup_pid(71).is_some());

    // The pid is recycled by an unrelated process (different start time): a new process.
    fake.set_last_pid(100);
    scan(&mut scanner);
    fake.add(&spec(70, 0, 500, "nginx", &["nginx"], "5555555555"), &root);
    fake.set_last_pid(70);
    let events = scan(&mut scanner);
    let types: Vec<EventType> = events.iter().map(Event::evt_type).collect();
    assert!(types.contains(&EventType::Procexit), "{types:?}");
    let new = of_type(&events, EventType::Execve);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].proc.as_ref().unwrap().name, "nginx");
    assert_eq!(new[0].proc.as_ref().unwrap().start_ticks, 500);
}

#[test]
fn container_root_is_repicked_when_the_first_process_exits() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(80, 0, 10, "init", &["init"], "6666666666"), &root);
    fake.add(
        &spec(81, 80, 11, "worker", &["worker"], "6666666666"),
        &root,
    );
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    scan(&mut scanner);
    let id = format!("{TASK}-6666666666");
    assert_eq!(
        scanner
            .container_table()
            .get(&id)
            .unwrap()
            .container
            .root_pid,
        Some(80)
    );
    fake.remove(80);
    scan(&mut scanner);
    assert_eq!(
        scanner
            .container_table()
            .get(&id)
            .unwrap()
            .container
            .root_pid,
        Some(81)
    );
    fake.remove(81);
    scan(&mut scanner);
    assert!(
        scanner
            .container_table()
            .get(&id)
            .unwrap()
            .gone_at
            .is_some()
    );
}

#[test]
fn missed_processes_are_counted_from_ns_last_pid() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(90, 0, 10, "init", &["init"], "7777777777"), &root);
    fake.set_last_pid(90);
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    scan(&mut scanner);
    // Pids 91..=100 were allocated; only 95 and 97 are seen, the other eight are gone.
    fake.add(&spec(95, 90, 20, "seen", &["seen"], "7777777777"), &root);
    fake.add(&spec(97, 90, 21, "seen2", &["seen2"], "7777777777"), &root);
    fake.set_last_pid(100);
    let events = scan(&mut scanner);
    let missed: Vec<&Event> = of_type(&events, EventType::Tasksentry);
    assert_eq!(missed.len(), 1);
    let internal = missed[0].internal.as_ref().unwrap();
    assert_eq!(internal.kind, "processes_missed");
    assert_eq!(internal.count, Some(8));
    // Nothing allocated: nothing missed.
    assert!(of_type(&scan(&mut scanner), EventType::Tasksentry).is_empty());
    // Wraparound: 32765 -> 301 allocates 32766, 32767, 300, 301.
    fake.set_last_pid(32765);
    scan(&mut scanner);
    fake.set_last_pid(301);
    let events = scan(&mut scanner);
    let internal = of_type(&events, EventType::Tasksentry)[0]
        .internal
        .clone()
        .unwrap();
    assert_eq!(internal.count, Some(4));
}

#[test]
fn scans_without_a_new_pid_skip_the_listing_yet_see_execs_new_processes_and_exits() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(90, 0, 10, "init", &["init"], "7777777777"), &root);
    fake.add(&spec(91, 90, 11, "app", &["app"], "7777777777"), &root);
    fake.set_last_pid(91);
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    assert_eq!(of_type(&scan(&mut scanner), EventType::Execve).len(), 2);
    // Idle: nothing allocated, nothing listed, nothing reported.
    assert!(scan(&mut scanner).is_empty());
    assert!(scan(&mut scanner).is_empty());
    assert_eq!(scanner.stats().quiet_scans, 2);
    // An exec in place allocates no pid: a quiet scan still re-reads the young process.
    let mut execed = spec(91, 90, 11, "python3", &["python3", "app.py"], "7777777777");
    execed.layout = 9999;
    fake.add(&execed, &root);
    let events = scan(&mut scanner);
    assert_eq!(execs_of(&events, 91).len(), 1, "{events:?}");
    assert_eq!(scanner.stats().quiet_scans, 3);
    // A new process allocates a pid: listed and reported at once.
    fake.add(
        &spec(92, 90, 12, "worker", &["worker"], "7777777777"),
        &root,
    );
    fake.set_last_pid(92);
    let events = scan(&mut scanner);
    assert_eq!(execs_of(&events, 92).len(), 1, "{events:?}");
    assert_eq!(scanner.stats().quiet_scans, 3);
    // An exit allocates nothing either: found by the listing that runs at least every
    // FULL_SCAN_EVERY.
    fake.remove(92);
    let deadline = std::time::Instant::now() + super::FULL_SCAN_EVERY * 3;
    let mut exits = Vec::new();
    while exits.is_empty() && std::time::Instant::now() < deadline {
        exits = scan(&mut scanner)
            .into_iter()
            .filter(|e| e.evt_type() == EventType::Procexit)
            .collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(exits.len(), 1, "the exit was never reported");
    assert_eq!(exits[0].proc.as_ref().unwrap().pid, 92);
}

#[test]
fn a_quiet_scan_re_reads_an_old_process_once_it_is_due_and_not_before() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(90, 0, 10, "init", &["init"], "7777777777"), &root);
    fake.add(&spec(91, 90, 11, "app", &["app"], "7777777777"), &root);
    fake.set_last_pid(91);
    let recheck = Duration::from_millis(300);
    let mut scanner = ProcScanner::new(ProcScanConfig {
        young_window: Duration::ZERO,
        recheck_period: recheck,
        ..config(fake.root())
    })
    .unwrap();
    assert_eq!(of_type(&scan(&mut scanner), EventType::Execve).len(), 2);
    let checks = scanner.stats().stat_checks;
    // Old (past the young window) and just read: a quiet scan re-reads nothing.
    let mut execed = spec(91, 90, 11, "python3", &["python3", "app.py"], "7777777777");
    execed.layout = 9999;
    fake.add(&execed, &root);
    assert!(scan(&mut scanner).is_empty());
    assert_eq!(scanner.stats().stat_checks, checks, "nothing was due");
    assert_eq!(scanner.stats().quiet_scans, 1);
    // Once the recheck period has passed, the quiet scan re-reads both and sees the exec in
    // place that no pid announced.
    std::thread::sleep(recheck);
    let events = scan(&mut scanner);
    assert_eq!(scanner.stats().quiet_scans, 2);
    assert_eq!(scanner.stats().stat_checks, checks + 2);
    assert_eq!(execs_of(&events, 91).len(), 1, "{events:?}");
}

#[test]
fn unreadable_and_half_written_entries_are_skipped() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(20, 0, 10, "ok", &["ok"], "8888888888"), &root);
    // A pid directory without files (vanished mid-listing) and one with garbage stat.
    std::fs::create_dir_all(fake.root().join("21")).unwrap();
    std::fs::create_dir_all(fake.root().join("22")).unwrap();
    std::fs::write(fake.root().join("22/stat"), "22 (garbage").unwrap();
    std::fs::create_dir_all(fake.root().join("notapid")).unwrap();
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    let events = scan(&mut scanner);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].proc.as_ref().unwrap().pid, 20);
}

impl FakeProc {
    /// The process as the kernel shows it in the middle of an exec: the new name is set, the
    /// new memory map has no addresses yet, and the command line is empty.
    fn set_mid_exec(&self, spec: &Spec) {
        let pdir = self.root().join(spec.pid.to_string());
        self.write_stat(spec);
        // `write_stat` derives the map from the layout; zero every map field.
        let text = std::fs::read_to_string(pdir.join("stat")).unwrap();
        let mut fields: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        for i in [25, 26, 27, 47, 48] {
            fields[i] = "0".into();
        }
        std::fs::write(pdir.join("stat"), fields.join(" ") + "\n").unwrap();
        std::fs::write(pdir.join("cmdline"), b"").unwrap();
    }
}

fn execs_of(events: &[Event], pid: i32) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.evt_type() == EventType::Execve && e.proc.as_ref().unwrap().pid == pid)
        .collect()
}

#[test]
fn a_process_caught_mid_exec_is_reported_once_its_exec_completed() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(
        &spec(70, 0, 10, "sh", &["sh", "-c", "x"], "5555555555"),
        &root,
    );
    let wget = spec(
        71,
        70,
        20,
        "wget",
        &["wget", "-q", "http://x/a"],
        "5555555555",
    );
    fake.add(&wget, &root);
    fake.set_mid_exec(&wget);
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    let events = scan(&mut scanner);
    assert!(
        execs_of(&events, 71).is_empty(),
        "not reported without its arguments: {events:?}"
    );
    assert_eq!(execs_of(&events, 70).len(), 1);
    assert_eq!(scanner.stats().deferred, 1);
    assert!(
        scanner.stats().settle_retries >= 1,
        "read again within the scan"
    );
    // Already in the table, for attribution by the other collectors.
    assert_eq!(
        scanner
            .process_table()
            .lookup_pid(71)
            .unwrap()
            .1
            .process
            .name,
        "wget"
    );

    // The exec completes: reported once, with its arguments.
    fake.add(&wget, &root);
    let events = scan(&mut scanner);
    let execs = execs_of(&events, 71);
    assert_eq!(execs.len(), 1, "{events:?}");
    let p = execs[0].proc.as_ref().unwrap();
    assert_eq!(p.name, "wget");
    assert_eq!(p.args, vec!["-q", "http://x/a"]);
    assert_eq!(p.ancestors[0].name, "sh");
    assert_eq!(scanner.stats().new_processes, 2);
    assert!(scan(&mut scanner).is_empty());
}

#[test]
fn an_exec_in_place_caught_midway_is_reported_once_completed() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(
        &spec(70, 0, 10, "sh", &["sh", "-c", "x"], "5555555555"),
        &root,
    );
    let mut fork = spec(71, 70, 20, "sh", &["sh", "-c", "x"], "5555555555");
    fork.layout = 70;
    fake.add(&fork, &root);
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    assert_eq!(scan(&mut scanner).len(), 2);
    // The fork execs curl; the scan catches it midway.
    let mut curl = spec(
        71,
        70,
        20,
        "curl",
        &["curl", "-sO", "http://x/a"],
        "5555555555",
    );
    curl.layout = 4242;
    fake.set_mid_exec(&curl);
    assert!(
        scan(&mut scanner).is_empty(),
        "put off, not reported half-read"
    );
    fake.add(&curl, &root);
    let events = scan(&mut scanner);
    assert_eq!(events.len(), 1, "{events:?}");
    let p = events[0].proc.as_ref().unwrap();
    assert_eq!(
        (p.name.as_str(), p.args.clone()),
        ("curl", vec!["-sO".to_string(), "http://x/a".to_string()])
    );
    assert!(scan(&mut scanner).is_empty());
}

#[test]
fn a_process_that_stays_without_a_command_line_is_reported_after_a_few_scans() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    // A live process whose command line is empty for good (its memory map is complete).
    let odd = spec(80, 0, 10, "odd", &["odd"], "5555555555");
    fake.add(&odd, &root);
    std::fs::write(fake.root().join("80/cmdline"), b"").unwrap();
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    let mut per_scan = Vec::new();
    for _ in 0..6 {
        per_scan.push(execs_of(&scan(&mut scanner), 80).len());
    }
    assert_eq!(
        per_scan,
        vec![0, 0, 0, 1, 0, 0],
        "put off three scans, then reported once"
    );
    assert_eq!(scanner.stats().deferred, 3);
}

#[test]
fn a_process_that_exits_before_it_settled_is_reported_then_its_exit() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    let short = spec(90, 0, 10, "wget", &["wget", "http://x"], "5555555555");
    fake.add(&short, &root);
    fake.set_mid_exec(&short);
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    assert!(scan(&mut scanner).is_empty());
    fake.remove(90);
    let events = scan(&mut scanner);
    let types: Vec<EventType> = events.iter().map(Event::evt_type).collect();
    assert_eq!(types, vec![EventType::Execve, EventType::Procexit]);
    assert_eq!(events[0].proc.as_ref().unwrap().name, "wget");
}

#[test]
fn a_first_read_without_a_memory_map_is_corrected_when_the_map_appears() {
    let fake = FakeProc::new();
    let root = fake.container_root("c", PASSWD);
    fake.add(&spec(70, 0, 10, "sh", &["sh"], "5555555555"), &root);
    // Read with a command line but no map addresses yet (the exec was still loading).
    let early = spec(71, 70, 20, "sh", &["sh", "old"], "5555555555");
    fake.add(&early, &root);
    fake.set_mid_exec(&early);
    std::fs::write(fake.root().join("71/cmdline"), b"sh\0old\0").unwrap();
    let mut scanner = ProcScanner::new(config(fake.root())).unwrap();
    assert_eq!(execs_of(&scan(&mut scanner), 71).len(), 1);
    // The map is filled and the command line is the new one: an image change, read again.
    let done = spec(71, 70, 20, "sh", &["sh", "new.sh"], "5555555555");
    fake.add(&done, &root);
    let events = scan(&mut scanner);
    let execs = execs_of(&events, 71);
    assert_eq!(execs.len(), 1, "{events:?}");
    assert_eq!(execs[0].proc.as_ref().unwrap().args, vec!["new.sh"]);
}
