//! Rule evaluation throughput, single-threaded, over the rule set a user gets with everything
//! turned on: TaskSentry's default rules plus all of Falco's rules that compile (stable,
//! incubating, sandbox), loaded together in that order.
//!
//! `cargo bench --bench rules_eval` first prints, per event type, how many rules are candidates
//! (the per-`evt.type` index), then for each event of a small set (events that match nothing,
//! and events that match) the throughput in events per second per core, measured as events
//! divided by this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, so other processes on a busy
//! machine do not inflate it), then runs the criterion benchmarks (wall clock).
//!
//! For instruction counts, which do not depend on the machine's load, run the binary under
//! callgrind with `RULES_EVAL_ITERS=N` (and optionally `RULES_EVAL_ONLY=<event name>`): it then
//! only evaluates each event N times inside `rules_eval_batch`, which callgrind can isolate:
//!
//! ```text
//! RULES_EVAL_ITERS=10000 RULES_EVAL_ONLY=execve_no_match valgrind --tool=callgrind \
//!   --collect-atstart=no --toggle-collect='*rules_eval_batch*' target/release/deps/rules_eval-*
//! ```
//!
//! and divide the total `Ir` by N.

use std::time::Duration;

use criterion::{Criterion, Throughput, black_box};
use support::thread_cpu_time;
use tasksentry::event::{
    Ancestor, Collector, Container, Event, EventType, Fd, FdKind, Process, Timestamp,
};
use tasksentry::rules::defaults::default_sources;
use tasksentry::rules::{LoadOptions, RuleSet, RuleSource, load};

fn ruleset() -> RuleSet {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/falco");
    let mut sources = default_sources();
    sources.extend(
        [
            "falco_rules.yaml",
            "falco-incubating_rules.yaml",
            "falco-sandbox_rules.yaml",
        ]
        .iter()
        .map(|n| RuleSource {
            name: (*n).into(),
            text: std::fs::read_to_string(format!("{dir}/{n}")).expect("read"),
        }),
    );
    let outcome = load(&sources, &LoadOptions::default());
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    outcome.ruleset.expect("default + Falco rules load")
}

fn process(name: &str, args: &[&str], tty: u32) -> Process {
    Process {
        pid: 321,
        ppid: 120,
        start_ticks: 4242,
        start_time: Some(Timestamp(1_767_225_600_000_000_000)),
        name: name.into(),
        exe: Some(format!("/usr/local/bin/{name}")),
        exepath: Some(format!("/usr/local/bin/{name}")),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: Some("/srv".into()),
        uid: Some(1000),
        euid: Some(1000),
        gid: Some(1000),
        egid: Some(1000),
        user: Some("app".into()),
        group: Some("app".into()),
        loginuid: Some(-1),
        tty: Some(tty),
        cap_effective: Some(0),
        cap_permitted: Some(0),
        ancestors: vec![
            Ancestor {
                pid: 120,
                name: "node".into(),
                exe: Some("node".into()),
                exepath: Some("/usr/local/bin/node".into()),
                args: vec!["server.js".into()],
            },
            Ancestor {
                pid: 1,
                name: "tini".into(),
                exe: Some("/tini".into()),
                exepath: Some("/tini".into()),
                args: vec![],
            },
        ],
        ..Process::default()
    }
}

fn event(t: EventType, collector: Collector, proc: Process) -> Event {
    let mut e = Event::new(t, collector);
    e.evt.time = Timestamp(1_767_225_610_000_000_000);
    e.evt.num = 7;
    e.proc = Some(Box::new(proc));
    e.container = Some(Box::new(Container {
        id: "0a1b2c3d4e5f-1234567890".into(),
        name: Some("web".into()),
        image: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:2.3.1".into()),
        ..Container::default()
    }));
    e
}

fn worker() -> Process {
    process("worker", &["--queue", "orders", "--concurrency", "4"], 0)
}

fn file_event(t: EventType, proc: Process, path: &str, write: bool) -> Event {
    let mut e = event(t, Collector::Fswatch, proc);
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some(path.into()),
        open_read: Some(!write),
        open_write: Some(write),
        ..Fd::default()
    }));
    e
}

/// Named events.
type Named = Vec<(&'static str, Event)>;

/// Events that must match nothing, and events that must match at least one rule.
fn events() -> (Named, Named) {
    let exec = event(EventType::Execve, Collector::Procscan, worker());
    let open = file_event(EventType::Open, worker(), "/srv/data/orders.json", false);
    let mut connect = event(EventType::Connect, Collector::Sockets, worker());
    connect.fd = Some(Box::new(Fd {
        kind: Some(FdKind::Ipv4),
        l4proto: Some("tcp".into()),
        cip: "10.0.1.17".parse().ok(),
        cport: Some(40312),
        sip: "10.0.2.30".parse().ok(),
        sport: Some(5432),
        local_is_client: Some(true),
        ..Fd::default()
    }));
    let exit = event(EventType::Procexit, Collector::Procscan, worker());
    let quiet = vec![
        ("execve_no_match", exec),
        ("open_no_match", open),
        ("connect_no_match", connect),
        ("procexit_no_match", exit),
    ];

    let mut shell_proc = process("bash", &[], 34816);
    shell_proc.ancestors.clear();
    shell_proc.ppid = 0;
    let shell = event(EventType::Execve, Collector::Procscan, shell_proc);
    let shadow = file_event(EventType::Open, worker(), "/etc/shadow", false);
    let matching = vec![("execve_match", shell), ("open_match", shadow)];
    (quiet, matching)
}

#[inline(never)]
fn rules_eval_batch(set: &RuleSet, ev: &Event, n: u64) -> usize {
    let mut out = Vec::with_capacity(4);
    let mut total = 0;
    for _ in 0..n {
        out.clear();
        set.evaluate(black_box(ev), &mut out);
        total += out.len();
    }
    total
}

/// Events per second per core: repeats batches until at least `budget` of thread CPU time.
fn per_core(set: &RuleSet, ev: &Event, budget: Duration) -> f64 {
    rules_eval_batch(set, ev, 1000);
    let start = thread_cpu_time();
    let mut n = 0u64;
    let mut batch = 1000u64;
    loop {
        rules_eval_batch(set, ev, batch);
        n += batch;
        let spent = thread_cpu_time() - start;
        if spent >= budget {
            return n as f64 / spent.as_secs_f64();
        }
        batch = (batch * 2).min(1 << 20);
    }
}

fn print_index(set: &RuleSet) {
    let enabled: Vec<_> = set.rules().filter(|r| r.enabled).collect();
    let all = enabled.iter().filter(|r| r.event_types.is_none()).count();
    println!(
        "rule set: default + Falco rules, {} compiled, {} enabled, {} for every event type",
        set.len(),
        enabled.len(),
        all
    );
    print!("candidate rules per evt.type:");
    for t in EventType::ALL {
        let n = enabled
            .iter()
            .filter(|r| r.event_types.as_ref().is_none_or(|ts| ts.contains(&t)))
            .count();
        print!(" {t}={n}");
    }
    println!();
}

fn check(set: &RuleSet, quiet: &[(&str, Event)], matching: &[(&str, Event)]) {
    let mut out = Vec::new();
    for (name, ev) in quiet {
        out.clear();
        set.evaluate(ev, &mut out);
        assert!(
            out.is_empty(),
            "{name} must match nothing: {:?}",
            out.iter().map(|m| &m.rule.name).collect::<Vec<_>>()
        );
    }
    for (name, ev) in matching {
        out.clear();
        set.evaluate(ev, &mut out);
        assert!(!out.is_empty(), "{name} must match");
        println!("{name} matches: {}", out[0].rule.name);
    }
}

fn main() {
    let set = ruleset();
    let (quiet, matching) = events();
    check(&set, &quiet, &matching);

    if let Ok(n) = std::env::var("RULES_EVAL_ITERS") {
        let n: u64 = n.parse().expect("RULES_EVAL_ITERS is a number");
        let only = std::env::var("RULES_EVAL_ONLY").ok();
        if std::env::var_os("RULES_EVAL_PER_RULE").is_some() {
            // One batch per enabled rule, alone in the set: prints the matches and the thread
            // CPU time per evaluation (a ranking of the rules' costs for that event).
            let mut set = set;
            let names: Vec<String> = set
                .rules()
                .filter(|r| r.enabled)
                .map(|r| r.name.clone())
                .collect();
            for (name, ev) in quiet.iter().chain(&matching) {
                if only.as_deref().is_some_and(|o| o != *name) {
                    continue;
                }
                for rule in &names {
                    set.set_enabled_by_name("*", false);
                    set.set_enabled_by_name(rule, true);
                    let start = thread_cpu_time();
                    let matches = rules_eval_batch(&set, ev, n);
                    let ns = (thread_cpu_time() - start).as_nanos() as f64 / n as f64;
                    println!("{name}\t{rule}\t{matches}\t{ns:.1} ns");
                }
            }
            return;
        }
        for (name, ev) in quiet.iter().chain(&matching) {
            if only.as_deref().is_none_or(|o| o == *name) {
                let matches = rules_eval_batch(&set, ev, n);
                println!("{name}: {n} evaluations, {matches} matches");
            }
        }
        return;
    }

    print_index(&set);
    // Skip the CPU-time table when criterion is only listing or testing benchmarks.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--list" || a == "--test") {
        println!("events/s/core (events / thread CPU time):");
        for (name, ev) in quiet.iter().chain(&matching) {
            let rate = per_core(&set, ev, Duration::from_millis(700));
            println!("  {name:<20} {:>6.2} M events/s/core", rate / 1e6);
        }
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("rules_eval");
    group.throughput(Throughput::Elements(1));
    for (name, ev) in quiet.iter().chain(&matching) {
        group.bench_function(*name, |b| {
            let mut out = Vec::with_capacity(4);
            b.iter(|| {
                out.clear();
                set.evaluate(black_box(ev), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
    c.final_summary();
}
