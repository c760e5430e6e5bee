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
//!   default) on top of this, by design.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tasksentry::collect::fswatch::{DriftRegistry, FsWatchConfig, FsWatcher};
use tasksentry::event::{Container, Event, EventType};

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

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
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

fn bench(c: &mut Criterion) {
    report_host_root_cost();
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
        let root = fake_root();
        let mut w = watcher();
        let mut out: Vec<Event> = Vec::new();
        w.add_container(container("c"), root.path(), &mut out)
            .expect("watching the fake root");
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
                let cpu = thread_cpu();
                while w.stats().raw_events < target {
                    w.read_events(&mut out).expect("read");
                    if w.stats().raw_events < target {
                        wait_readable(&w, 100);
                    }
                }
                w.flush_opens(Duration::ZERO, &mut out);
                total += thread_cpu() - cpu;
                out.clear();
            }
            total
        })
    });

    group.bench_function("write_to_event_latency", |b| {
        let root = fake_root();
        let mut w = watcher();
        let mut out: Vec<Event> = Vec::new();
        w.add_container(container("c"), root.path(), &mut out)
            .expect("watching the fake root");
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
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
