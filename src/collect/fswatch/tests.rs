//! Tests of the fswatch core against real directories standing in for container roots.

use super::events::{attach_process, render_mode};
use super::*;
use crate::collect::shared::{ExecImages, ProcKey};
use crate::event::{EventType, Internal};
use std::os::unix::fs::PermissionsExt;

fn container(id: &str) -> Container {
    Container {
        id: id.to_string(),
        ..Container::default()
    }
}

fn debian_like(root: &Path) {
    for dir in [
        "etc/cron.d",
        "etc/profile.d",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "root",
        "home/alice",
        "tmp",
        "var/tmp",
        "dev/shm",
        "var/lib/dpkg",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("etc/shadow"), "root:*:1::::::\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
}

fn watcher(config: FsWatchConfig) -> FsWatcher {
    FsWatcher::new(config, None, Arc::new(DriftRegistry::default())).unwrap()
}

/// Reads and flushes until `pred` holds for the events gathered, or two seconds pass.
fn collect_until(w: &mut FsWatcher, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let mut out = Vec::new();
        w.read_events(&mut out).unwrap();
        if w.rescan_needed() {
            w.rescan(&mut out);
        }
        w.flush_opens(Duration::ZERO, &mut out);
        all.extend(out);
        if pred(&all) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    all
}

fn find<'a>(events: &'a [Event], kind: EventType, name: &str) -> Option<&'a Event> {
    events.iter().find(|e| {
        e.evt.evt_type == kind && e.fd.as_ref().and_then(|f| f.name.as_deref()) == Some(name)
    })
}

#[test]
fn modes_render_like_falco() {
    assert_eq!(
        render_mode(0o104755),
        "04755(S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH)"
    );
    assert_eq!(render_mode(0o100600), "0600(S_IRUSR|S_IWUSR)");
}

#[test]
fn creates_writes_renames_chmods_and_reads_are_reported_with_container_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    debian_like(root);
    let mut w = watcher(FsWatchConfig::default());
    let mut out = Vec::new();
    w.add_container(container("c1"), root, &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");

    // One write of many chunks is one open event.
    let mut file = std::fs::File::create(root.join("etc/evil.conf")).unwrap();
    for _ in 0..10 {
        std::io::Write::write_all(&mut file, b"x\n").unwrap();
    }
    drop(file);
    std::fs::rename(root.join("etc/evil.conf"), root.join("etc/cron.d/evil")).unwrap();
    std::fs::set_permissions(
        root.join("etc/cron.d/evil"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::read(root.join("etc/shadow")).unwrap();
    std::fs::create_dir(root.join("etc/newdir")).unwrap();
    // The mode is read when the event is handled, so the file must still be there.
    let mut events = collect_until(&mut w, |e| {
        find(e, EventType::Chmod, "/etc/cron.d/evil").is_some()
    });
    std::fs::remove_file(root.join("etc/cron.d/evil")).unwrap();
    // Written through the /bin symlink: reported under the real directory.
    std::fs::write(root.join("bin/implant"), b"#!/bin/sh\n").unwrap();

    events.extend(collect_until(&mut w, |e| {
        find(e, EventType::Creat, "/usr/bin/implant").is_some()
    }));
    let creat = find(&events, EventType::Creat, "/etc/evil.conf").expect("creat");
    assert_eq!(creat.container.as_ref().unwrap().id, "c1");
    assert!(creat.proc.is_none(), "no tables: no attribution");
    let opens: Vec<_> = events
        .iter()
        .filter(|e| {
            e.evt.evt_type == EventType::Open
                && e.fd.as_ref().unwrap().name.as_deref() == Some("/etc/evil.conf")
        })
        .collect();
    assert_eq!(opens.len(), 1, "coalesced: {events:#?}");
    assert_eq!(opens[0].fd.as_ref().unwrap().open_write, Some(true));
    let rename = find(&events, EventType::Renameat, "/etc/cron.d/evil").expect("rename");
    assert_eq!(
        rename.fd.as_ref().unwrap().oldname.as_deref(),
        Some("/etc/evil.conf")
    );
    assert_eq!(rename.evt.arg("oldpath"), Some("/etc/evil.conf"));
    let chmod = find(&events, EventType::Chmod, "/etc/cron.d/evil").expect("chmod");
    assert!(
        chmod.evt.arg("mode").unwrap().contains("S_ISUID"),
        "{chmod:?}"
    );
    let read = find(&events, EventType::Open, "/etc/shadow").expect("shadow read");
    assert_eq!(read.fd.as_ref().unwrap().open_read, Some(true));
    assert_eq!(read.fd.as_ref().unwrap().open_write, Some(false));
    assert!(find(&events, EventType::Mkdir, "/etc/newdir").is_some());
    assert!(find(&events, EventType::Unlinkat, "/etc/cron.d/evil").is_some());
    // Reads elsewhere in /etc are not watched (only credential files are).
    assert!(find(&events, EventType::Open, "/etc/passwd").is_none());
    // Drift: the written files are remembered.
    assert!(w.drift.contains("c1", Some("/usr/bin/implant"), None));
}

#[test]
fn dev_reports_files_appearing_not_writes_and_var_log_reports_truncation_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    debian_like(root);
    for dir in ["var/log/app", "var/log/audit"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("dev/null"), b"").unwrap();
    std::fs::write(root.join("var/log/auth.log"), b"Accepted password\n").unwrap();
    std::fs::write(root.join("var/log/wtmp"), b"record").unwrap();
    std::fs::write(root.join("var/log/app/app.log"), b"GET /\n").unwrap();
    let mut w = watcher(FsWatchConfig::default());
    let mut out = Vec::new();
    w.add_container(container("c1"), root, &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");

    // What every program does to /dev: not an event of the directory.
    std::fs::write(root.join("dev/null"), b"discarded").unwrap();
    std::fs::write(root.join("dev/kcore-cache"), b"#!/bin/sh\nid\n").unwrap();
    // Emptied (O_TRUNC), deleted, and an application's own log subdirectory.
    std::fs::File::create(root.join("var/log/auth.log")).unwrap();
    std::fs::remove_file(root.join("var/log/wtmp")).unwrap();
    std::fs::write(root.join("var/log/app/app.log"), b"").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Creat, "/dev/kcore-cache").is_some()
            && find(e, EventType::Unlinkat, "/var/log/wtmp").is_some()
            && find(e, EventType::Open, "/var/log/auth.log").is_some()
    });
    assert!(
        find(&events, EventType::Creat, "/dev/kcore-cache").is_some(),
        "{events:#?}"
    );
    assert!(
        find(&events, EventType::Open, "/dev/null").is_none(),
        "{events:#?}"
    );
    assert!(
        find(&events, EventType::Open, "/dev/kcore-cache").is_none(),
        "{events:#?}"
    );
    let truncated = find(&events, EventType::Open, "/var/log/auth.log").expect("truncation");
    assert_eq!(truncated.fd.as_ref().unwrap().open_write, Some(true));
    assert_eq!(truncated.evt.arg("size"), Some("0"), "{truncated:?}");
    assert!(find(&events, EventType::Unlinkat, "/var/log/wtmp").is_some());
    assert!(
        find(&events, EventType::Open, "/var/log/app/app.log").is_none(),
        "applications' log subdirectories are not watched by default: {events:#?}"
    );
}

#[test]
fn new_subdirectories_and_missing_patterns_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    debian_like(root);
    let mut w = watcher(FsWatchConfig::default());
    let mut out = Vec::new();
    w.add_container(container("c1"), root, &mut out).unwrap();
    // A new subdirectory of /etc, and a file in it right away.
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::fs::write(root.join("etc/systemd/system/evil.service"), b"[Service]\n").unwrap();
    // /root/.ssh does not exist yet: it is picked up when it appears.
    std::fs::create_dir(root.join("root/.ssh")).unwrap();
    std::fs::write(
        root.join("root/.ssh/authorized_keys"),
        b"ssh-ed25519 AAAA\n",
    )
    .unwrap();
    // /var/spool/cron is missing entirely at first.
    std::fs::create_dir_all(root.join("var/spool/cron/crontabs")).unwrap();
    std::fs::write(root.join("var/spool/cron/crontabs/root"), b"* * * * * x\n").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Creat, "/etc/systemd/system/evil.service").is_some()
            && find(e, EventType::Creat, "/root/.ssh/authorized_keys").is_some()
            && find(e, EventType::Creat, "/var/spool/cron/crontabs/root").is_some()
    });
    for path in [
        "/etc/systemd/system/evil.service",
        "/root/.ssh/authorized_keys",
        "/var/spool/cron/crontabs/root",
    ] {
        assert!(
            find(&events, EventType::Creat, path).is_some(),
            "{path}: {events:#?}"
        );
    }
    // Later writes in the new directories are seen directly.
    std::fs::write(root.join("root/.ssh/authorized_keys"), b"more\n").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Open, "/root/.ssh/authorized_keys").is_some()
    });
    assert!(find(&events, EventType::Open, "/root/.ssh/authorized_keys").is_some());
}

#[test]
fn the_watch_budget_drops_the_lowest_priority_groups_first_and_says_so() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for dir in [&one, &two] {
        debian_like(dir.path());
        for i in 0..30 {
            std::fs::create_dir_all(dir.path().join(format!("etc/sub{i}"))).unwrap();
        }
    }
    // Count what the full set costs in one container.
    let mut full = watcher(FsWatchConfig::default());
    let mut out = Vec::new();
    full.add_container(container("c1"), one.path(), &mut out)
        .unwrap();
    let cost = full.watch_count();
    let by_group = full.watches_by_group("c1");
    let group =
        |list: &[(String, usize)], name: &str| list.iter().find(|(n, _)| n == name).unwrap().1;
    let low = group(&by_group, "packages") + group(&by_group, "libraries");
    assert!(
        group(&by_group, "packages") >= 1 && group(&by_group, "libraries") >= 1,
        "{by_group:?}"
    );
    drop(full);

    let etc = group(&by_group, "etc");
    // Room for two containers without their two least important groups: the second
    // container's important groups take the watches of the first one's least important ones.
    let budget = 2 * cost - 2 * low;
    let mut w = watcher(FsWatchConfig {
        max_watches: Some(budget),
        ..FsWatchConfig::default()
    });
    let mut out = Vec::new();
    w.add_container(container("c1"), one.path(), &mut out)
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    w.add_container(container("c2"), two.path(), &mut out)
        .unwrap();
    let limits: Vec<&Internal> = out
        .iter()
        .filter_map(|e| e.internal.as_deref())
        .filter(|i| i.kind == "watch_limit")
        .collect();
    assert!(limits.len() >= 2, "{out:?}");
    assert!(limits[0].message.contains("group packages"), "{limits:?}");
    assert!(limits[1].message.contains("group libraries"), "{limits:?}");
    assert!(w.watch_count() <= budget);
    for id in ["c1", "c2"] {
        let by_group = w.watches_by_group(id);
        assert_eq!(group(&by_group, "etc"), etc, "{id}: {by_group:?}");
        assert_eq!(group(&by_group, "credentials"), 4, "{id}: {by_group:?}");
        assert_eq!(group(&by_group, "packages"), 0, "{id}: {by_group:?}");
        assert_eq!(group(&by_group, "libraries"), 0, "{id}: {by_group:?}");
    }
    // /etc of the second container reports.
    std::fs::write(two.path().join("etc/sub7/x"), b"x").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Creat, "/etc/sub7/x").is_some()
    });
    let creat = find(&events, EventType::Creat, "/etc/sub7/x").unwrap();
    assert_eq!(creat.container.as_ref().unwrap().id, "c2");
}

#[test]
fn removing_a_container_removes_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    debian_like(dir.path());
    let mut w = watcher(FsWatchConfig::default());
    let mut out = Vec::new();
    w.add_container(container("c1"), dir.path(), &mut out)
        .unwrap();
    assert!(w.watch_count() > 0);
    w.remove_container("c1");
    assert_eq!(w.watch_count(), 0);
    std::fs::write(dir.path().join("etc/x"), b"x").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut out = Vec::new();
    w.read_events(&mut out).unwrap();
    w.flush_opens(Duration::ZERO, &mut out);
    assert!(out.iter().all(|e| e.fd.is_none()), "{out:?}");
}

#[test]
fn a_configured_write_only_tree_reports_writes_only_and_follows_new_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("srv/app/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let entry = UserWatch::parse("/srv/app recursive write").unwrap();
    let groups = build_groups(false, &[], &[entry]).unwrap();
    let mut w = watcher(FsWatchConfig {
        groups,
        ..FsWatchConfig::default()
    });
    let mut out = Vec::new();
    w.add_container(container("c1"), root, &mut out).unwrap();
    // Only /srv/app and its subdirectory: nothing of the default set.
    assert_eq!(w.watch_count(), 2);
    std::fs::write(root.join("srv/app/lib/util.py"), b"pass\n").unwrap();
    // A new directory and a file written in it before its watch can be placed.
    std::fs::create_dir_all(root.join("srv/app/plugins/new")).unwrap();
    std::fs::write(root.join("srv/app/plugins/new/evil.py"), b"x\n").unwrap();
    std::fs::write(root.join("etc/unwatched"), b"x\n").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Open, "/srv/app/lib/util.py").is_some()
            && find(e, EventType::Open, "/srv/app/plugins/new/evil.py").is_some()
    });
    for name in ["/srv/app/lib/util.py", "/srv/app/plugins/new/evil.py"] {
        let open = find(&events, EventType::Open, name).expect(name);
        assert_eq!(open.fd.as_ref().unwrap().open_write, Some(true), "{open:?}");
    }
    assert!(
        events.iter().all(|e| e.evt.evt_type == EventType::Open),
        "write-only: {events:#?}"
    );
    assert!(find(&events, EventType::Open, "/etc/unwatched").is_none());
    // The new directories are watched now.
    std::fs::write(root.join("srv/app/plugins/new/later.py"), b"y\n").unwrap();
    let events = collect_until(&mut w, |e| {
        find(e, EventType::Open, "/srv/app/plugins/new/later.py").is_some()
    });
    assert!(find(&events, EventType::Open, "/srv/app/plugins/new/later.py").is_some());
}

#[test]
fn a_file_event_names_the_image_the_tracer_saw_exec_and_never_an_excluded_process() {
    use crate::collect::shared::{Exclusion, ProcEntry};
    use crate::event::Process;
    let mut tables = Tables::default();
    let id = tables.containers.intern("c1", None);
    let insert = |tables: &mut Tables, pid: i32, ppid: i32, name: &str, excluded: bool| {
        let key = ProcKey {
            pid,
            start_ticks: 100 + pid as u64,
        };
        tables.processes.insert(
            key,
            ProcEntry {
                process: Arc::new(Process {
                    pid,
                    ppid,
                    start_ticks: key.start_ticks,
                    name: name.into(),
                    ..Process::default()
                }),
                container_id: id.clone(),
                excluded: excluded.then_some(Exclusion::Monitor),
                exited_at: None,
            },
        );
        key
    };
    insert(&mut tables, 10, 0, "sh", false);
    // Procscan read the shell's fork; the tracer saw it exec `cp` since.
    let child = insert(&mut tables, 20, 10, "sh", false);
    let monitor = insert(&mut tables, 30, 0, "tasksentry", true);
    let images = ExecImages::default();
    images.record_exec(
        Arc::new(Process {
            pid: 20,
            ppid: 10,
            start_ticks: child.start_ticks,
            name: "cp".into(),
            args: vec!["/tmp/x".into(), "/etc/cron.d/x".into()],
            ..Process::default()
        }),
        "app".into(),
    );

    let mut event = Event::new(EventType::Creat, Collector::Fswatch);
    attach_process(&mut event, &tables, child, Some(&images));
    let proc = event.proc.as_ref().expect("attributed");
    assert_eq!(proc.name, "cp");
    assert_eq!(proc.args, ["/tmp/x", "/etc/cron.d/x"]);
    assert_eq!(proc.ancestors[0].name, "sh");

    let mut event = Event::new(EventType::Creat, Collector::Fswatch);
    attach_process(&mut event, &tables, child, None);
    assert_eq!(
        event.proc.as_ref().expect("attributed").name,
        "sh",
        "poll mode"
    );

    let mut event = Event::new(EventType::Creat, Collector::Fswatch);
    attach_process(&mut event, &tables, monitor, Some(&images));
    assert!(event.proc.is_none(), "the monitor itself is never named");
}
