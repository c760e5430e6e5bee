//! Scanner tests against this machine's real `/proc`, with real child processes: plain
//! processes, exec in place, fork-then-exec, hostile names and arguments, processes that exit
//! while being scanned, missed processes, and the collector thread with its channel.
//!
//! These run in the host namespaces, so `exclude_self` is off (otherwise the test's own
//! children, which share its mount namespace, would be hidden as the monitor's).

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{ProcScanConfig, ProcScanner, spawn_procscan_shared};
use crate::event::{Event, EventType, FdKind};

fn config() -> ProcScanConfig {
    ProcScanConfig {
        exclude_self: false,
        triggers: false,
        ..ProcScanConfig::default()
    }
}

/// Kills and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Reaped {
    Reaped(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn scan_valid(scanner: &mut ProcScanner) -> Vec<Event> {
    let mut out = Vec::new();
    scanner.scan(&mut out);
    for event in &out {
        let line = event.to_json_line();
        assert!(!line.contains('\n'));
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, event);
    }
    out
}

fn execs_of(events: &[Event], pid: i32) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.evt_type() == EventType::Execve && e.proc.as_ref().unwrap().pid == pid)
        .collect()
}

/// Scans every 20 ms until `found` says yes or `limit` passes; returns all events seen.
fn scan_until(
    scanner: &mut ProcScanner,
    limit: Duration,
    found: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    loop {
        all.extend(scan_valid(scanner));
        if found(&all) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sees_a_new_process_with_its_cmdline_exe_and_uid_then_its_exit() {
    let mut scanner = ProcScanner::new(config()).unwrap();
    scan_valid(&mut scanner);
    // GNU sleep rejects extra words, so the marker goes into argv[0].
    let mut child = spawn(Command::new("sleep").arg0("marker-xyz").arg("3"));
    let pid = i32::try_from(child.0.id()).unwrap();
    let events = scan_valid(&mut scanner);
    let execs = execs_of(&events, pid);
    assert_eq!(execs.len(), 1, "{events:#?}");
    let p = execs[0].proc.as_ref().unwrap();
    assert_eq!(p.name, "sleep");
    assert_eq!(p.exe.as_deref(), Some("marker-xyz"), "{p:#?}");
    assert_eq!(p.args, vec!["3"]);
    assert_eq!(p.cmdline(), "sleep 3");
    let sleep_path = std::fs::canonicalize("/usr/bin/sleep").unwrap();
    assert_eq!(p.exepath.as_deref(), Some(sleep_path.to_str().unwrap()));
    assert!(!p.exe_deleted);
    assert!(p.exe_mtime.is_some() && p.exe_ctime.is_some());
    let uid = nix::unistd::getuid().as_raw();
    assert_eq!(p.uid, Some(uid));
    assert_eq!(p.euid, Some(uid));
    if uid == 0 {
        assert_eq!(p.user.as_deref(), Some("root"));
    }
    assert_eq!(p.ppid, i32::try_from(std::process::id()).unwrap());
    assert_eq!(p.stdin.as_ref().unwrap().kind, FdKind::Device);
    assert_eq!(
        p.cwd,
        std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string())
    );
    assert!(execs[0].container.is_some());

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let events = scan_valid(&mut scanner);
    let exits: Vec<&Event> = events
        .iter()
        .filter(|e| e.evt_type() == EventType::Procexit && e.proc.as_ref().unwrap().pid == pid)
        .collect();
    assert_eq!(exits.len(), 1);
    assert_eq!(
        exits[0].proc.as_ref().unwrap().exe.as_deref(),
        Some("marker-xyz")
    );
}

#[test]
fn exec_in_place_is_reported_again_for_the_same_pid() {
    let mut scanner = ProcScanner::new(config()).unwrap();
    scan_valid(&mut scanner);
    let child = spawn(Command::new("sh").args(["-c", "sleep 0.3; exec sleep 2 0.002"]));
    let pid = i32::try_from(child.0.id()).unwrap();
    let first = scan_valid(&mut scanner);
    assert_eq!(execs_of(&first, pid)[0].proc.as_ref().unwrap().name, "sh");
    let events = scan_until(&mut scanner, Duration::from_secs(3), |events| {
        !execs_of(events, pid).is_empty()
    });
    let execs = execs_of(&events, pid);
    assert_eq!(execs.len(), 1, "{execs:#?}");
    let p = execs[0].proc.as_ref().unwrap();
    assert_eq!(p.name, "sleep");
    assert_eq!(p.args, vec!["2", "0.002"]);
    assert_eq!(
        p.start_ticks,
        execs_of(&first, pid)[0].proc.as_ref().unwrap().start_ticks
    );
}

#[test]
fn a_fork_seen_before_its_exec_is_reported_again_after_it() {
    let mut scanner = ProcScanner::new(config()).unwrap();
    scan_valid(&mut scanner);
    // The subshell is a fork of sh that execs `sleep` after 0.4 s.
    let _child = spawn(Command::new("sh").args(["-c", "(sleep 0.4; exec sleep 2 0.003) & wait"]));
    std::thread::sleep(Duration::from_millis(100));
    let events = scan_until(&mut scanner, Duration::from_secs(3), |events| {
        events.iter().any(|e| {
            e.evt_type() == EventType::Execve
                && e.proc.as_ref().unwrap().args.iter().any(|a| a == "0.003")
        })
    });
    let marker = events
        .iter()
        .find(|e| {
            e.evt_type() == EventType::Execve
                && e.proc.as_ref().unwrap().args.iter().any(|a| a == "0.003")
        })
        .expect("the exec after the fork is reported");
    let pid = marker.proc.as_ref().unwrap().pid;
    let all: Vec<&Event> = events
        .iter()
        .filter(|e| e.proc.as_ref().is_some_and(|p| p.pid == pid))
        .filter(|e| matches!(e.evt_type(), EventType::Execve | EventType::Clone))
        .collect();
    assert_eq!(
        all.len(),
        2,
        "first as the fork of sh, then as sleep: {all:#?}"
    );
    assert_eq!(
        all[0].evt_type(),
        EventType::Clone,
        "a fork copy is a clone"
    );
    assert_eq!(all[0].proc.as_ref().unwrap().name, "sh");
    assert_eq!(
        all[1].evt_type(),
        EventType::Execve,
        "its exec is an execve"
    );
    // Ancestry: the subshell's parent is the outer sh.
    let ancestors = &marker.proc.as_ref().unwrap().ancestors;
    assert_eq!(ancestors[0].name, "sh");
}

#[test]
fn hostile_processes_yield_valid_events() {
    let mut scanner = ProcScanner::new(config()).unwrap();
    scan_valid(&mut scanner);
    // Newlines and invalid UTF-8 in argv.
    let weird = spawn(Command::new("sh").args([
        OsStr::new("-c"),
        OsStr::new("sleep 3"),
        OsStr::new("line1\nline2"),
        OsStr::from_bytes(b"bad\xff\xfebytes"),
    ]));
    // A 1 MiB command line (16 arguments of 64 KiB; one argument is capped at 128 KiB).
    let big_arg = "A".repeat(64 * 1024);
    let mut big_cmd = Command::new("sh");
    big_cmd.args(["-c", "sleep 3"]);
    for _ in 0..16 {
        big_cmd.arg(&big_arg);
    }
    let big = spawn(&mut big_cmd);
    // A comm with spaces and parentheses, set by the process itself.
    let renamed =
        spawn(Command::new("sh").args(["-c", "printf 'a) b (c' > /proc/$$/comm; sleep 3"]));
    let events = scan_until(&mut scanner, Duration::from_secs(2), |events| {
        events
            .iter()
            .any(|e| e.proc.as_ref().is_some_and(|p| p.name == "a) b (c"))
    });

    let weird_pid = i32::try_from(weird.0.id()).unwrap();
    let p = execs_of(&events, weird_pid)[0].proc.as_ref().unwrap();
    assert_eq!(
        p.args,
        vec!["-c", "sleep 3", "line1\nline2", "bad\u{fffd}\u{fffd}bytes"]
    );

    let big_pid = i32::try_from(big.0.id()).unwrap();
    let p = execs_of(&events, big_pid)[0].proc.as_ref().unwrap();
    assert!(p.args_truncated);
    let kept: usize =
        p.exe.as_ref().unwrap().len() + p.args.iter().map(|a| a.len() + 1).sum::<usize>();
    assert!(kept <= 64 * 1024 + 1, "kept {kept} bytes");

    let renamed_pid = i32::try_from(renamed.0.id()).unwrap();
    assert!(
        execs_of(&events, renamed_pid)
            .iter()
            .any(|e| e.proc.as_ref().unwrap().name == "a) b (c"),
        "{:#?}",
        execs_of(&events, renamed_pid)
    );
}

#[test]
fn processes_exiting_while_scanned_and_missed_processes() {
    let mut scanner = ProcScanner::new(config()).unwrap();
    scan_valid(&mut scanner);
    // 300 short-lived processes while nobody scans: all of them are missed.
    let status = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let events = scan_valid(&mut scanner);
    let missed: u64 = events
        .iter()
        .filter_map(|e| e.internal.as_ref())
        .filter(|i| i.kind == "processes_missed")
        .filter_map(|i| i.count)
        .sum();
    assert!(missed >= 300, "missed {missed}");

    // A storm of processes exiting while we scan: the scanner keeps going and every event
    // it emits is valid (checked by scan_valid).
    let mut storm = spawn(Command::new("sh").args([
        "-c",
        "i=0; while [ $i -lt 400 ]; do /bin/true & i=$((i+1)); done; wait",
    ]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while storm.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        scan_valid(&mut scanner);
    }
    scan_valid(&mut scanner);
    assert!(scanner.stats().scans > 3);
}

#[test]
fn excluding_self_hides_the_monitors_own_children() {
    let mut scanner = ProcScanner::new(ProcScanConfig {
        exclude_self: true,
        triggers: false,
        ..ProcScanConfig::default()
    })
    .unwrap();
    scan_valid(&mut scanner);
    let child = spawn(Command::new("sleep").arg("3"));
    let pid = i32::try_from(child.0.id()).unwrap();
    let events = scan_valid(&mut scanner);
    assert!(execs_of(&events, pid).is_empty());
    assert!(
        scanner
            .process_table()
            .lookup_pid(pid)
            .unwrap()
            .1
            .excluded
            .is_some()
    );
}

#[test]
fn collector_thread_with_triggers_delivers_events_and_counts_drops() {
    let shutdown = Arc::new(AtomicBool::new(false));
    // A tiny queue that the first scan (every process on this machine) overflows.
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let (handle, shared) = spawn_procscan_shared(
        ProcScanConfig {
            triggers: true,
            // A long interval: only a trigger can make the scan prompt.
            interval: Duration::from_secs(120),
            ..config()
        },
        tx,
        shutdown.clone(),
    )
    .unwrap();
    // Let the first scan run and overflow the queue, then drain what is pending: until the
    // collector is quiet, for at most 5 s. On a busy machine every trigger-driven scan reports
    // other new processes too, so the collector may never be quiet; what is left is read below.
    std::thread::sleep(Duration::from_millis(500));
    let mut dropped = 0;
    let mut pending: Vec<Event> = Vec::new();
    let draining = Instant::now();
    while draining.elapsed() < Duration::from_secs(5) {
        let Ok(event) = rx.recv_timeout(Duration::from_millis(300)) else {
            break;
        };
        pending.push(event);
    }
    // Other processes on this (shared, busy) machine start and end all the time, and every
    // scan reports them too: with a four-slot queue the new process's event can itself be
    // one of the drops. So a new process is started every few seconds until one is reported;
    // any report well before the 120 s interval proves the trigger.
    let mut children = Vec::new();
    let mut pids = Vec::new();
    let started = Instant::now();
    let mut seen_after: Option<i32> = None;
    let mut last_spawn: Option<Instant> = None;
    while started.elapsed() < Duration::from_secs(30) {
        if last_spawn.is_none_or(|at| at.elapsed() >= Duration::from_secs(3)) {
            let child = spawn(Command::new("/usr/bin/sleep").arg("40"));
            pids.push(i32::try_from(child.0.id()).unwrap());
            children.push(child);
            last_spawn = Some(Instant::now());
        }
        let Ok(event) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if let Some(internal) = &event.internal
            && internal.kind == "events_dropped"
        {
            dropped += internal.count.unwrap();
        }
        if let Some(process) = event.proc.as_ref()
            && pids.contains(&process.pid)
        {
            seen_after = Some(process.pid);
            break;
        }
    }
    // The drop report may follow the new process's event (the sender reports drops as soon
    // as the queue has room again, which on a loaded machine can be after the first scan's
    // backlog): keep reading until one has come, for at most 30 s. (Waiting for the collector
    // to be quiet instead lasted as long as the machine's other work kept starting processes.)
    let drops_in = |event: &Event| {
        event
            .internal
            .as_ref()
            .filter(|i| i.kind == "events_dropped")
            .and_then(|i| i.count)
            .unwrap_or(0)
    };
    dropped += pending.iter().map(drops_in).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped == 0 && Instant::now() < deadline {
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(100)) {
            dropped += drops_in(&event);
        }
    }
    let pid = seen_after.expect("a trigger-driven scan reports a new process");
    assert!(dropped > 0, "drops are reported, never silent");
    assert!(shared.snapshot().lookup_pid(pid).is_some());
    drop(children);
    shutdown.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}
