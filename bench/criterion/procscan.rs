//! Benchmarks of the procscan collector.
//!
//! `cargo bench --bench procscan` runs two criterion benchmarks over this machine's /proc with
//! 500 extra `sleep` children: the first scan (every process new, read in full) and a
//! steady-state scan (nothing changed; only the readdir and the spread-out re-checks).
//!
//! `PROCSCAN_IDLE_SECS=30 cargo bench --bench procscan` instead measures the collector thread
//! as the monitor runs it: 100 `sleep` children, the default 100 ms interval with triggers on,
//! and prints the CPU used over the window (utime+stime of this process from /proc/self/stat,
//! as a share of one core) and VmRSS.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use tasksentry::collect::{ProcScanConfig, ProcScanner, spawn_procscan};

fn spawn_sleepers(n: usize) -> Vec<Child> {
    (0..n)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sleep")
        })
        .collect()
}

fn reap(children: Vec<Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn config() -> ProcScanConfig {
    ProcScanConfig {
        // The children share this process's mount namespace: do not hide them.
        exclude_self: false,
        triggers: false,
        ..ProcScanConfig::default()
    }
}

fn bench_scans(c: &mut Criterion) {
    let children = spawn_sleepers(500);
    std::thread::sleep(Duration::from_millis(200));
    let mut group = c.benchmark_group("procscan");
    group.sample_size(20);
    group.bench_function("first_scan_500", |b| {
        b.iter_batched(
            || ProcScanner::new(config()).expect("scanner"),
            |mut scanner| {
                let mut out = Vec::new();
                scanner.scan(&mut out);
                assert!(out.len() >= 500);
                out
            },
            BatchSize::PerIteration,
        );
    });
    // A process seen less than `young_window` ago is re-checked for an exec on every scan.
    for (name, young_window) in [
        ("steady_scan_500", Duration::ZERO),
        ("steady_scan_500_all_young", Duration::from_secs(3600)),
    ] {
        group.bench_function(name, |b| {
            let mut scanner = ProcScanner::new(ProcScanConfig {
                young_window,
                ..config()
            })
            .expect("scanner");
            let mut out = Vec::new();
            scanner.scan(&mut out);
            b.iter(|| {
                out.clear();
                scanner.scan(&mut out);
            });
        });
    }
    group.finish();
    reap(children);
}

fn self_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields[0]` is field 3.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn idle(secs: u64) {
    let children = spawn_sleepers(100);
    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::sync_channel(4096);
    let handle = spawn_procscan(
        ProcScanConfig {
            triggers: true,
            ..config()
        },
        tx,
        shutdown.clone(),
    )
    .expect("spawn");
    let drain = std::thread::spawn(move || {
        let mut n = std::collections::BTreeMap::<String, u64>::new();
        while let Ok(event) = rx.recv() {
            let kind = match &event.internal {
                Some(internal) => internal.kind.clone(),
                None => event.evt_type().to_string(),
            };
            *n.entry(kind).or_default() += 1;
        }
        n
    });
    // Warm-up: the first scan reads every process on the machine.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t0 = Instant::now();
    let c0 = self_cpu_ticks();
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = self_cpu_ticks();
    let elapsed = t0.elapsed().as_secs_f64();
    let rss = vm_rss_kib();
    shutdown.store(true, Ordering::Relaxed);
    handle.join().expect("join");
    let events = drain.join().expect("drain");
    let cpu = (c1 - c0) as f64 / hz;
    println!(
        "idle procscan over {elapsed:.1}s with 100 extra processes at 100 ms: cpu {cpu:.3}s = {:.3}% of one core, VmRSS {rss} KiB, events {events:?}",
        100.0 * cpu / elapsed
    );
    reap(children);
}

fn main() {
    if let Some(secs) = std::env::var("PROCSCAN_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        idle(secs);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_scans(&mut c);
    c.final_summary();
}
