//! Rule evaluation throughput: all Falco default rules that compile (stable, incubating,
//! sandbox), evaluated against (a) an execve that matches nothing and (b) a matching execve
//! (a terminal shell in a container), single-threaded.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use tasksentry::event::{Ancestor, Collector, Container, Event, EventType, Process, Timestamp};
use tasksentry::rules::{LoadOptions, RuleSet, RuleSource, load};

fn ruleset() -> RuleSet {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/falco");
    let sources: Vec<RuleSource> = [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]
    .iter()
    .map(|n| RuleSource {
        name: (*n).into(),
        text: std::fs::read_to_string(format!("{dir}/{n}")).expect("read"),
    })
    .collect();
    load(&sources, &LoadOptions::default())
        .ruleset
        .expect("Falco rules load")
}

fn exec(name: &str, args: &[&str], tty: u32) -> Event {
    let mut e = Event::new(EventType::Execve, Collector::Procscan);
    e.evt.time = Timestamp(1_767_225_610_000_000_000);
    e.evt.num = 7;
    e.proc = Some(Box::new(Process {
        pid: 321,
        ppid: 120,
        start_time: Some(Timestamp(1_767_225_600_000_000_000)),
        name: name.into(),
        exe: Some(format!("/usr/local/bin/{name}")),
        exepath: Some(format!("/usr/local/bin/{name}")),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: Some("/srv".into()),
        euid: Some(1000),
        user: Some("app".into()),
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
    }));
    e.container = Some(Box::new(Container {
        id: "0a1b2c3d4e5f-1234567890".into(),
        name: Some("web".into()),
        image: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:2.3.1".into()),
        ..Container::default()
    }));
    e
}

fn bench(c: &mut Criterion) {
    let set = ruleset();
    let quiet = exec("worker", &["--queue", "orders", "--concurrency", "4"], 0);
    let mut shell = exec("bash", &[], 34816);
    if let Some(p) = shell.proc.as_mut() {
        p.ancestors.clear();
        p.ppid = 0;
    }
    let mut out = Vec::new();
    set.evaluate(&quiet, &mut out);
    assert!(
        out.is_empty(),
        "the quiet event must match nothing: {:?}",
        out.iter().map(|m| &m.rule.name).collect::<Vec<_>>()
    );
    set.evaluate(&shell, &mut out);
    assert!(!out.is_empty(), "the shell event must match");
    drop(out);

    let mut group = c.benchmark_group("rules_eval");
    group.throughput(Throughput::Elements(1));
    group.bench_function("execve_no_match", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            set.evaluate(black_box(&quiet), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("execve_match_with_output", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            set.evaluate(black_box(&shell), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
