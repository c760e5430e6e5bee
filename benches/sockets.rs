//! Benchmarks of the sockets collector.
//!
//! `cargo bench --bench sockets` creates 5,000 established TCP connections on loopback (10,000
//! table entries: both ends) plus their listener, in a private network namespace when run as
//! root (else in the current one), with `RLIMIT_NOFILE` raised to fit. It then measures one
//! steady-state poll as the collector thread runs it (dump every table, then diff), and its
//! two halves separately: the dump (`sock_diag`, and the `/proc/net` text fallback for
//! comparison) and the diff alone. Finally it prints the CPU time of 100 polls as a share of
//! one core at the default 100 ms interval.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tasksentry::collect::Tables;
use tasksentry::collect::sockets::{SockEntry, SocketSource, SocketTracker, SocketsConfig};

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

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
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
    source.collect(&mut entries);
    tracker.poll(&entries, &tables, &mut out);
    let first = started.elapsed();
    eprintln!(
        "sockets bench: {} table entries ({} network namespace), {} tracked, first poll {:?} (owner scan of {} fd links)",
        entries.len(),
        if private { "private" } else { "current" },
        tracker.tracked(),
        first,
        tracker.stats().fd_links_read,
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("sockets");
    group.sample_size(50);
    group.bench_function("poll_5000_established", |b| {
        b.iter(|| {
            source.collect(&mut entries);
            tracker.poll(&entries, &tables, &mut out);
            assert!(out.is_empty());
        })
    });
    group.bench_function("dump_sock_diag_5000", |b| {
        b.iter(|| source.collect(&mut entries))
    });
    let mut text_entries = Vec::new();
    group.bench_function("dump_proc_net_text_5000", |b| {
        b.iter(|| text_source.collect(&mut text_entries))
    });
    source.collect(&mut entries);
    group.bench_function("diff_5000", |b| {
        b.iter(|| tracker.poll(&entries, &tables, &mut out))
    });
    group.finish();
    c.final_summary();

    // CPU share at the default interval: 100 polls, CPU time of this thread.
    let polls = 100;
    let cpu_before = thread_cpu();
    let wall_before = Instant::now();
    for _ in 0..polls {
        source.collect(&mut entries);
        tracker.poll(&entries, &tables, &mut out);
    }
    let cpu = (thread_cpu() - cpu_before) / polls;
    let wall = wall_before.elapsed() / polls;
    let interval = SocketsConfig::default().interval;
    println!(
        "sockets: {} entries, per poll {:?} wall, {:?} CPU; CPU share at {:?}: {:.2}% of one core",
        entries.len(),
        wall,
        cpu,
        interval,
        100.0 * cpu.as_secs_f64() / interval.as_secs_f64()
    );
}
