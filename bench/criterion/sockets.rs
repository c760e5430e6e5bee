//! Benchmarks of the sockets collector.
//!
//! `cargo bench --bench sockets` creates 5,000 established TCP connections on loopback (10,000
//! table entries: both ends) plus their listener, in a private network namespace when run as
//! root (else in the current one), with `RLIMIT_NOFILE` raised to fit. It then measures, in
//! CPU time of the benchmark thread (user + system), one steady-state poll as the collector
//! thread runs it (dump every table, then diff), and its parts separately: the dump
//! (`sock_diag`, and the `/proc/net` text fallback for comparison) and the diff alone, of an
//! unchanged dump and of a changed one. Finally it prints the CPU time per poll (median, min
//! and max over 20 batches) of steady polls (no connection opened: TCP connections are not
//! dumped again) and of polls with a full TCP dump, and the CPU share of one core at the
//! default 100 ms interval with one full dump per `FULL_TCP_PERIOD`.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use support::thread_cpu_time;
use tasksentry::collect::Tables;
use tasksentry::collect::sockets::{
    FULL_TCP_PERIOD, SockEntry, SocketSource, SocketTracker, SocketsConfig,
};

const CONNECTIONS: usize = 5_000;

/// Moves this thread (and so the benchmark, which runs on it) into a fresh network namespace
/// with `lo` up, so the tables hold only the benchmark's sockets. Returns whether it did.
fn private_netns() -> bool {
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return false;
    }
    std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success())
}

fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= want {
        return;
    }
    // Root may raise the hard limit too; otherwise stay under it.
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max.max(want),
    };
    // SAFETY: `raised` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let capped = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `capped` is a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) };
    }
}

fn connections(n: usize) -> (TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let address = listener.local_addr().expect("address");
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(TcpStream::connect(address).expect("connect"));
        servers.push(listener.accept().expect("accept").0);
    }
    (listener, clients, servers)
}

/// Runs `f` `iters` times and returns the CPU time this thread spent (user + system: the
/// kernel's work for a `sock_diag` dump is done in the `recvmsg` calls of this thread).
fn cpu_of(iters: u64, mut f: impl FnMut()) -> Duration {
    let before = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time() - before
}

fn main() {
    let private = private_netns();
    raise_fd_limit(4 * CONNECTIONS as u64 + 1024);
    let (_listener, _clients, _servers) = connections(CONNECTIONS);
    let proc_root = Path::new("/proc");
    let tables = Tables::default();
    let mut source = SocketSource::new(proc_root, true);
    let mut text_source = SocketSource::new(proc_root, false);
    let mut tracker = SocketTracker::new(SocketsConfig::default());
    let mut entries: Vec<SockEntry> = Vec::new();
    let mut out = Vec::new();
    // First poll: every socket is new and its owner (this process) is looked up once.
    let started = Instant::now();
    let first_cpu = cpu_of(1, || {
        source.collect(&mut entries);
        tracker.poll(&entries, &tables, &mut out);
    });
    let first = started.elapsed();
    eprintln!(
        "sockets bench: {} table entries ({} network namespace), {} tracked, first poll {:?} wall, {:?} CPU (owner scan of {} fd links)",
        entries.len(),
        if private { "private" } else { "current" },
        tracker.tracked(),
        first,
        first_cpu,
        tracker.stats().fd_links_read,
    );

    // Every figure below is CPU time of this thread (criterion's "time" is CPU time here):
    // the machine running the benchmarks is shared, so wall-clock time would mostly measure
    // the other tenants.
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("sockets_cpu");
    group.sample_size(50);
    group.bench_function("poll_5000_established", |b| {
        b.iter_custom(|iters| {
            cpu_of(iters, || {
                let entries = source.poll(tracker.has_pending());
                tracker.poll(entries, &tables, &mut out);
                assert!(out.is_empty());
            })
        })
    });
    // The poll after a connection was opened: every TCP socket is dumped again.
    group.bench_function("poll_5000_full_dump", |b| {
        b.iter_custom(|iters| {
            cpu_of(iters, || {
                source.collect(&mut entries);
                tracker.poll(&entries, &tables, &mut out);
                assert!(out.is_empty());
            })
        })
    });
    group.bench_function("dump_sock_diag_5000", |b| {
        b.iter_custom(|iters| cpu_of(iters, || source.collect(&mut entries)))
    });
    let mut text_entries = Vec::new();
    group.sample_size(10);
    group.bench_function("dump_proc_net_text_5000", |b| {
        b.iter_custom(|iters| cpu_of(iters, || text_source.collect(&mut text_entries)))
    });
    group.sample_size(50);
    source.collect(&mut entries);
    group.bench_function("diff_5000_unchanged", |b| {
        b.iter_custom(|iters| cpu_of(iters, || tracker.poll(&entries, &tables, &mut out)))
    });
    // A dump that differs from the previous one in its order (as after a socket came and
    // went) takes the full diff: one hash lookup per entry.
    let mut reordered = entries.clone();
    reordered.reverse();
    let mut flip = false;
    group.bench_function("diff_5000_changed", |b| {
        b.iter_custom(|iters| {
            cpu_of(iters, || {
                flip = !flip;
                let dump = if flip { &reordered } else { &entries };
                tracker.poll(dump, &tables, &mut out);
            })
        })
    });
    group.finish();
    c.final_summary();

    // Steady state at the default interval: 20 batches of 50 polls as the collector runs them
    // (the TCP open counters do not move, so TCP connections are not dumped again), and 20
    // batches of 5 polls that dump every TCP socket (what a poll costs after a connection
    // was opened, and at least every FULL_TCP_PERIOD); CPU time per poll, spread over the
    // batches (the spread shows how noisy the machine is).
    let interval = SocketsConfig::default().interval;
    let mut batches = |polls: u32, full: bool| {
        let mut cpu: Vec<Duration> = (0..20)
            .map(|_| {
                cpu_of(u64::from(polls), || {
                    if full {
                        source.collect(&mut entries);
                        tracker.poll(&entries, &tables, &mut out);
                    } else {
                        let entries = source.poll(tracker.has_pending());
                        tracker.poll(entries, &tables, &mut out);
                    }
                }) / polls
            })
            .collect();
        cpu.sort();
        (cpu[10], cpu[0], cpu[19])
    };
    let steady = batches(50, false);
    let full = batches(5, true);
    let steady_polls = source.stats().listener_only_dumps;
    // At the default interval a full dump happens at least once per FULL_TCP_PERIOD.
    let per_period = (FULL_TCP_PERIOD.as_secs_f64() / interval.as_secs_f64()).max(1.0);
    let amortized =
        (steady.0.as_secs_f64() * (per_period - 1.0) + full.0.as_secs_f64()) / per_period;
    println!(
        "sockets: {} entries ({} polls without a TCP connection dump); CPU per poll, median (min, max) of 20 batches: steady {:?} ({:?}, {:?}), full TCP dump {:?} ({:?}, {:?}); CPU share at the default {:?} interval with one full dump per {:?}: {:.2}% of one core (steady polls alone {:.2}%, full dumps on every poll {:.2}%)",
        entries.len(),
        steady_polls,
        steady.0,
        steady.1,
        steady.2,
        full.0,
        full.1,
        full.2,
        interval,
        FULL_TCP_PERIOD,
        100.0 * amortized / interval.as_secs_f64(),
        100.0 * steady.0.as_secs_f64() / interval.as_secs_f64(),
        100.0 * full.0.as_secs_f64() / interval.as_secs_f64(),
    );
}
