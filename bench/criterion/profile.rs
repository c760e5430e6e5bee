//! The cost of learning a workload profile (issue 18), beside the cost it is added to.
//!
//! `cargo bench --bench profile` prints:
//! 1. per event type, the CPU time per event (this thread's CPU time, so other processes on a
//!    busy machine do not inflate it) of evaluating an event that matches no rule of the
//!    default rule set, and of learning the same event once it is known (the steady state of a
//!    workload: the same programs, destinations and files again and again), measured in
//!    alternating rounds, with the ratio (target: learning below 10% of evaluation);
//! 2. ten minutes of a busy workload (1,000 execs/s over 200 programs, 500 connections/s to 50
//!    destinations) learnt at once: the entries held, the heap the learner holds (a counting
//!    allocator), and the snapshot's size as output lines (largest part below 256 KiB);
//!
//! then runs the criterion benchmarks (wall clock) of both arms.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, black_box};
use support::thread_cpu_time;
use tasksentry::event::{Ancestor, Collector, Container, Event, EventType, Fd, FdKind, Process};
use tasksentry::event::{EcsContext, Timestamp};
use tasksentry::profile::learner::{Learner, Limits};
use tasksentry::profile::snapshot::{MAX_PART_BYTES, Reason, SnapshotHeader, snapshot_events};
use tasksentry::rules::defaults::default_sources;
use tasksentry::rules::{LoadOptions, RuleSet, load};

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the same layout; the counter
// is only arithmetic on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn container() -> Box<Container> {
    Box::new(Container {
        id: "0a1b2c3d4e5f-1234567890".into(),
        name: Some("web".into()),
        image: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:2.3.1".into()),
        image_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        ecs: Some(EcsContext {
            task_id: Some("0a1b2c3d4e5f".into()),
            ..EcsContext::default()
        }),
        ..Container::default()
    })
}

fn process(exe: &str, name: &str) -> Box<Process> {
    Box::new(Process {
        pid: 321,
        ppid: 120,
        start_ticks: 4242,
        name: name.into(),
        exe: Some(exe.into()),
        exepath: Some(exe.into()),
        args: vec!["--queue".into(), "orders".into()],
        cwd: Some("/srv".into()),
        uid: Some(1000),
        euid: Some(1000),
        user: Some("app".into()),
        ancestors: vec![Ancestor {
            pid: 120,
            name: "node".into(),
            exe: Some("node".into()),
            exepath: Some("/usr/local/bin/node".into()),
            args: vec!["server.js".into()],
        }],
        ..Process::default()
    })
}

fn exec(exe: &str, name: &str) -> Event {
    let mut e = Event::new(EventType::Execve, Collector::Procscan);
    e.evt.time = Timestamp(1_767_225_610_000_000_000);
    e.container = Some(container());
    e.proc = Some(process(exe, name));
    e
}

fn connect(ip: &str, port: u16) -> Event {
    let mut e = Event::new(EventType::Connect, Collector::Sockets);
    e.evt.time = Timestamp(1_767_225_610_000_000_000);
    e.container = Some(container());
    e.proc = Some(process("/usr/local/bin/worker", "worker"));
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::Ipv4),
        l4proto: Some("tcp".into()),
        cip: "10.0.1.17".parse().ok(),
        cport: Some(40312),
        sip: ip.parse().ok(),
        sport: Some(port),
        local_is_client: Some(true),
        ..Fd::default()
    }));
    e
}

fn open_write(path: &str) -> Event {
    let mut e = Event::new(EventType::Open, Collector::Fswatch);
    e.evt.time = Timestamp(1_767_225_610_000_000_000);
    e.container = Some(container());
    e.proc = Some(process("/usr/local/bin/worker", "worker"));
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some(path.into()),
        open_write: Some(true),
        ..Fd::default()
    }));
    e
}

fn events() -> Vec<(&'static str, Event)> {
    vec![
        ("execve", exec("/usr/local/bin/worker", "worker")),
        ("connect", connect("10.0.2.30", 5432)),
        ("open_write", open_write("/srv/cache/orders.json")),
    ]
}

fn default_ruleset() -> RuleSet {
    load(&default_sources(), &LoadOptions::default())
        .ruleset
        .expect("the default rules load")
}

#[inline(never)]
fn eval_batch(set: &RuleSet, ev: &Event, n: u64) -> usize {
    let mut out = Vec::with_capacity(4);
    let mut total = 0;
    for _ in 0..n {
        out.clear();
        set.evaluate(black_box(ev), &mut out);
        total += out.len();
    }
    total
}

#[inline(never)]
fn learn_batch(learner: &mut Learner, ev: &Event, n: u64) {
    for _ in 0..n {
        learner.observe(black_box(ev));
    }
}

/// CPU nanoseconds per call of `f(n)` over `n` calls.
fn ns_per(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let start = thread_cpu_time();
    f(n);
    (thread_cpu_time() - start).as_nanos() as f64 / n as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn table(set: &RuleSet) {
    println!("per event, CPU time (median of 7 alternating rounds of 200,000 events):");
    println!(
        "  {:<12} {:>16} {:>16} {:>8}",
        "event", "eval, no match", "learn, known", "ratio"
    );
    for (name, ev) in events() {
        let mut out = Vec::new();
        set.evaluate(&ev, &mut out);
        assert!(out.is_empty(), "{name} must match no default rule");
        let mut learner = Learner::new(Limits::default());
        learner.observe(&ev);
        let (mut evals, mut learns) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            evals.push(ns_per(200_000, |n| {
                eval_batch(set, &ev, n);
            }));
            learns.push(ns_per(200_000, |n| learn_batch(&mut learner, &ev, n)));
        }
        let (eval, learn) = (median(evals), median(learns));
        println!(
            "  {name:<12} {eval:>13.1} ns {learn:>13.1} ns {:>7.1}%",
            100.0 * learn / eval
        );
    }
}

fn busy_workload() {
    let programs: Vec<Event> = (0..200)
        .map(|p| {
            exec(
                &format!("/usr/local/bin/program-{p:03}"),
                &format!("program-{p:03}"),
            )
        })
        .collect();
    let destinations: Vec<Event> = (0..50u16)
        .map(|d| connect(&format!("10.0.{}.{}", d / 10, 10 + d % 10), 443 + d % 5))
        .collect();
    // What the learner holds, not the workload's events built above.
    let before = LIVE.load(Ordering::Relaxed);
    let mut learner = Learner::new(Limits::default());
    let start = thread_cpu_time();
    // Ten minutes: 600 seconds of 1,000 execs and 500 connections each.
    for second in 0..600usize {
        for n in 0..1000 {
            learner.observe(&programs[(second * 7 + n) % programs.len()]);
        }
        for n in 0..500 {
            learner.observe(&destinations[(second * 3 + n) % destinations.len()]);
        }
    }
    let spent = thread_cpu_time() - start;
    let held = LIVE.load(Ordering::Relaxed) - before;
    let header = SnapshotHeader {
        run: "18a2b3c4d5e6f708-4242",
        seq: 1,
        task: "0a1b2c3d4e5f",
        reason: Reason::WindowEnd,
        window_start: Timestamp(0),
        time: Timestamp(1_767_225_610_000_000_000),
    };
    let summaries = learner.summaries();
    let lines: Vec<String> = summaries
        .iter()
        .flat_map(|s| snapshot_events(s, &header, MAX_PART_BYTES))
        .map(|e| e.to_json_line())
        .collect();
    println!(
        "busy workload, 10 minutes (600,000 execs over 200 programs, 300,000 connections to 50 \
         destinations): {} entries, {:.0} KiB of heap held by the learner (its own estimate, \
         as the snapshot log reports it: {:.0} KiB; cap: {} entries per container), learnt in \
         {:.2} s CPU ({:.0} ns/event); snapshot: {} part(s), {:.1} KiB, largest line {:.1} KiB \
         (CloudWatch's limit: 256 KiB)",
        learner.entries(),
        held as f64 / 1024.0,
        learner.memory_bytes() as f64 / 1024.0,
        Limits::default().max_entries,
        spent.as_secs_f64(),
        spent.as_nanos() as f64 / 900_000.0,
        lines.len(),
        lines.iter().map(String::len).sum::<usize>() as f64 / 1024.0,
        lines.iter().map(String::len).max().unwrap_or(0) as f64 / 1024.0,
    );
    // The cap: a container learning 10,000 distinct programs holds at most max_entries.
    let before = LIVE.load(Ordering::Relaxed);
    let mut capped = Learner::new(Limits::default());
    for p in 0..10_000 {
        capped.observe(&exec(
            &format!(
                "/usr/local/lib/a-rather-long-directory-name/for-generated/binaries/tool-{p:05}"
            ),
            "tool",
        ));
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    let lines: Vec<String> = capped
        .summaries()
        .iter()
        .flat_map(|s| snapshot_events(s, &header, MAX_PART_BYTES))
        .map(|e| e.to_json_line())
        .collect();
    println!(
        "cap: 10,000 distinct programs in one container: {} entries held, overflow {:?}, {:.0} KiB \
         of heap (estimate {:.0} KiB); snapshot {} part(s), largest line {:.1} KiB",
        capped.entries(),
        capped.summaries()[0].overflow,
        held as f64 / 1024.0,
        capped.memory_bytes() as f64 / 1024.0,
        lines.len(),
        lines.iter().map(String::len).max().unwrap_or(0) as f64 / 1024.0,
    );
}

/// The largest a container's aggregate gets at the default limits: 1,024 programs whose
/// executable, name and parent are each cut at 256 bytes, against the stated cap.
fn worst_case() {
    let before = LIVE.load(Ordering::Relaxed);
    let mut learner = Learner::new(Limits::default());
    let long = |n: usize, tag: &str| format!("/{tag}-{n:06}/{}", "x".repeat(400));
    for n in 0..2 * Limits::default().max_entries {
        let mut event = exec(&long(n, "exe"), &long(n, "name"));
        if let Some(proc) = event.proc.as_mut() {
            proc.ancestors[0].exepath = Some(long(n, "parent"));
        }
        learner.observe(&event);
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "worst case: {} entries of 256-byte texts in one container: {:.0} KiB of heap (estimate \
         {:.0} KiB; stated cap {} KiB per container)",
        learner.entries(),
        held as f64 / 1024.0,
        learner.memory_bytes() as f64 / 1024.0,
        tasksentry::profile::learner::CONTAINER_MEMORY_CAP / 1024,
    );
}

fn main() {
    let set = default_ruleset();
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--list" || a == "--test") {
        table(&set);
        busy_workload();
        worst_case();
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut group = criterion.benchmark_group("profile");
    for (name, ev) in events() {
        group.bench_function(format!("eval_no_match/{name}"), |b| {
            let mut out = Vec::with_capacity(4);
            b.iter(|| {
                out.clear();
                set.evaluate(black_box(&ev), &mut out);
            })
        });
        let mut learner = Learner::new(Limits::default());
        learner.observe(&ev);
        group.bench_function(format!("learn_known/{name}"), |b| {
            b.iter(|| learner.observe(black_box(&ev)))
        });
    }
    group.finish();
    criterion.final_summary();
}
