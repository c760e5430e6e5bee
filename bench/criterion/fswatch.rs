//! Benchmarks of the fswatch collector.
//!
//! `cargo bench --bench fswatch` prints, then measures:
//! - the watches the default watch set costs on this machine's own root (a Debian system), per
//!   group, and the time to place them (`fswatch/place_default_set_on_host_root`);
//! - the CPU time (of the collector thread alone, `CLOCK_THREAD_CPUTIME_ID`) to turn 10,000
//!   raw inotify events into events (`fswatch/cpu_per_10k_events`): 2,500 files created,
//!   written, closed and deleted in a watched `/tmp`, no process attribution;
//! - the latency from a file's creation below a watched `/etc` to its `creat` event
//!   (`fswatch/write_to_event_latency`), blocking in `poll` on the inotify descriptor as the
//!   collector thread does. `open` events are held for the coalescing window (100 ms by
//!   default) on top of this, by design;
//! - the write-to-alert latency with the embedded default rules evaluated on each event as the
//!   engine does (`fswatch/write_to_alert_latency/creat`: a new file below `/etc` to the
//!   rendered "Write below etc" alert; in the summary table also an append to an existing
//!   file below `/etc`, which goes through the coalescing window, with the collector thread's
//!   own poll tick and flush). The engine thread's queue hop and the stdout write are not
//!   included.
//!
//! Before criterion runs, a summary table of the three figures is printed (CPU time from
//! `CLOCK_THREAD_CPUTIME_ID`, latencies as median and 95th percentile of 50 runs); it comes
//! before criterion's own measurements, so a short run is enough to read it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use support::thread_cpu_time;
use tasksentry::collect::fswatch::{DriftRegistry, FsWatchConfig, FsWatcher};
use tasksentry::event::{Container, Event, EventType};
use tasksentry::rules::{LoadOptions, RuleSet, load};

fn container(id: &str) -> Container {
    Container {
        id: id.to_string(),
        ..Container::default()
    }
}

fn watcher() -> FsWatcher {
    FsWatcher::new(
        FsWatchConfig::default(),
        None,
        Arc::new(DriftRegistry::default()),
    )
    .expect("an inotify instance")
}

fn fake_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["etc", "tmp", "usr/bin", "root"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    dir
}

/// A watcher with the default watch set placed in a fresh [`fake_root`] (container `c`), and
/// the event buffer it wrote the placement's events to.
fn watched_fake_root() -> (tempfile::TempDir, FsWatcher, Vec<Event>) {
    let root = fake_root();
    let mut w = watcher();
    let mut out = Vec::new();
    w.add_container(container("c"), root.path(), &mut out)
        .expect("watching the fake root");
    (root, w, out)
}

fn wait_readable(w: &FsWatcher, millis: u16) {
    let mut fds = [nix::poll::PollFd::new(w.fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis));
}

fn report_host_root_cost() {
    let mut w = watcher();
    let mut out = Vec::new();
    let started = Instant::now();
    w.add_container(container("host-root"), Path::new("/"), &mut out)
        .expect("watching /");
    let took = started.elapsed();
    let max = tasksentry::collect::fswatch::max_user_watches(Path::new("/proc"));
    eprintln!(
        "fswatch: default watch set on this machine's / : {} watches (budget {}, max_user_watches {:?}), placed in {:?}",
        w.watch_count(),
        w.budget(),
        max,
        took
    );
    for (group, n) in w.watches_by_group("host-root") {
        eprintln!("fswatch:   group {group:<12} {n} watches");
    }
}

fn default_rules() -> RuleSet {
    load(
        &tasksentry::rules::defaults::default_sources(),
        &LoadOptions::default(),
    )
    .ruleset
    .expect("the default rules load")
}

/// Reads, flushes and evaluates like the collector and engine threads until the rule `rule`
/// matches an event about `name`; returns when it did.
fn until_alert(w: &mut FsWatcher, rules: &RuleSet, rule: &str, name: &str) {
    let tick = 25; // the collector's poll tick for the default 100 ms coalescing window
    let mut out: Vec<Event> = Vec::new();
    let mut matches = Vec::new();
    loop {
        wait_readable(w, tick);
        w.read_events(&mut out).expect("read");
        w.flush_due(&mut out);
        for event in out.drain(..) {
            if event.fd.as_ref().and_then(|f| f.name.as_deref()) != Some(name) {
                continue;
            }
            matches.clear();
            rules.evaluate(&event, &mut matches);
            if matches.iter().any(|m| m.rule.name == rule) {
                return;
            }
        }
    }
}

/// One write-to-alert measurement: `append` writes to an existing file, else creates one.
fn write_to_alert(
    w: &mut FsWatcher,
    rules: &RuleSet,
    etc: &Path,
    n: u64,
    append: bool,
) -> Duration {
    let file = if append {
        "existing.conf".to_string()
    } else {
        format!("lat-{n}")
    };
    let started = Instant::now();
    if append {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(etc.join(&file))
            .expect("open");
        std::io::Write::write_all(&mut f, b"x\n").expect("append");
    } else {
        std::fs::File::create(etc.join(&file)).expect("create");
    }
    until_alert(w, rules, "Write below etc", &format!("/etc/{file}"));
    let took = started.elapsed();
    // Nothing left over for the next run.
    let mut rest = Vec::new();
    std::thread::sleep(Duration::from_millis(if append { 0 } else { 1 }));
    w.read_events(&mut rest).expect("read");
    w.flush_opens(Duration::ZERO, &mut rest);
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Prints the three figures as a table.
fn report_summary(rules: &RuleSet) {
    // CPU per 10,000 raw events, 5 rounds.
    let (root, mut w, mut out) = watched_fake_root();
    let tmp = root.path().join("tmp");
    let mut cpu = Vec::new();
    for round in 0..5 {
        for i in 0..2_500 {
            let path = tmp.join(format!("s-{round}-{i}"));
            std::fs::write(&path, b"x").expect("write");
            std::fs::remove_file(&path).expect("remove");
        }
        let target = w.stats().raw_events + 10_000;
        let before = thread_cpu_time();
        while w.stats().raw_events < target {
            w.read_events(&mut out).expect("read");
            if w.stats().raw_events < target {
                wait_readable(&w, 100);
            }
        }
        w.flush_opens(Duration::ZERO, &mut out);
        cpu.push(thread_cpu_time() - before);
        out.clear();
    }
    cpu.sort();
    let mut creat = Vec::new();
    let mut append = Vec::new();
    let etc = root.path().join("etc");
    for n in 0..50 {
        creat.push(write_to_alert(&mut w, rules, &etc, n, false));
        append.push(write_to_alert(&mut w, rules, &etc, n, true));
    }
    creat.sort();
    append.sort();
    eprintln!("fswatch summary (this machine; CPU is the collector thread's own time):");
    eprintln!("  {:<44} {:>12} {:>12}", "figure", "median", "p95 / max");
    eprintln!(
        "  {:<44} {:>12.2?} {:>12.2?}",
        "CPU per 10,000 inotify events (5 rounds)",
        percentile(&cpu, 0.5),
        cpu[cpu.len() - 1]
    );
    eprintln!(
        "  {:<44} {:>12.2?} {:>12.2?}",
        "write-to-alert, new file below /etc (50)",
        percentile(&creat, 0.5),
        percentile(&creat, 0.95)
    );
    eprintln!(
        "  {:<44} {:>12.2?} {:>12.2?}",
        "write-to-alert, append below /etc (50)",
        percentile(&append, 0.5),
        percentile(&append, 0.95)
    );
}

fn bench(c: &mut Criterion) {
    report_host_root_cost();
    let rules = default_rules();
    report_summary(&rules);
    let mut group = c.benchmark_group("fswatch");
    group.sample_size(20);

    group.bench_function("place_default_set_on_host_root", |b| {
        b.iter(|| {
            let mut w = watcher();
            let mut out = Vec::new();
            w.add_container(container("host-root"), Path::new("/"), &mut out)
                .expect("watching /");
            w.watch_count()
        })
    });

    group.bench_function("cpu_per_10k_events", |b| {
        let (root, mut w, mut out) = watched_fake_root();
        let tmp = root.path().join("tmp");
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for round in 0..iters {
                // 2,500 files x (create, modify, close-write, delete) = 10,000 raw events.
                for i in 0..2_500 {
                    let path = tmp.join(format!("f-{round}-{i}"));
                    std::fs::write(&path, b"x").expect("write");
                    std::fs::remove_file(&path).expect("remove");
                }
                let target = w.stats().raw_events + 10_000;
                let cpu = thread_cpu_time();
                while w.stats().raw_events < target {
                    w.read_events(&mut out).expect("read");
                    if w.stats().raw_events < target {
                        wait_readable(&w, 100);
                    }
                }
                w.flush_opens(Duration::ZERO, &mut out);
                total += thread_cpu_time() - cpu;
                out.clear();
            }
            total
        })
    });

    group.bench_function("write_to_event_latency", |b| {
        let (root, mut w, mut out) = watched_fake_root();
        let etc = root.path().join("etc");
        let mut n = 0u64;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("/etc/lat-{n}");
                let started = Instant::now();
                std::fs::File::create(etc.join(format!("lat-{n}"))).expect("create");
                loop {
                    wait_readable(&w, 1000);
                    w.read_events(&mut out).expect("read");
                    if out.iter().any(|e| {
                        e.evt.evt_type == EventType::Creat
                            && e.fd.as_ref().and_then(|f| f.name.as_deref()) == Some(&name)
                    }) {
                        break;
                    }
                }
                total += started.elapsed();
                w.flush_opens(Duration::ZERO, &mut out);
                out.clear();
            }
            total
        })
    });
    // The append case is measured in the summary table only: under criterion's sampling it
    // reported about half the coalescing window, which a plain loop of back-to-back appends
    // does not reproduce (every one takes the full window), so that figure is not trusted.
    group.bench_function("write_to_alert_latency/creat", |b| {
        let (root, mut w, _) = watched_fake_root();
        let etc = root.path().join("etc");
        let mut n = 0u64;
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    n += 1;
                    write_to_alert(&mut w, &rules, &etc, n, false)
                })
                .sum()
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
