//! Arbitrary bytes as a rules file: loading must never panic, and a rule set that loads must
//! evaluate events without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::event::{Ancestor, Collector, Container, Event, EventType, Fd, FdKind, Process};
use tasksentry::rules::{LoadOptions, RuleMatching, RuleSource, load};

fn events() -> Vec<Event> {
    let mut exec = Event::new(EventType::Execve, Collector::Procscan);
    exec.proc = Some(Box::new(Process {
        pid: 3,
        ppid: 2,
        name: "sh".into(),
        args: vec!["-c".into(), "id".into()],
        env: vec![("HOME".into(), "/root".into())],
        ancestors: vec![Ancestor {
            pid: 2,
            name: "nginx".into(),
            exe: None,
            exepath: None,
            args: vec![],
        }],
        ..Process::default()
    }));
    exec.container = Some(Box::new(Container {
        id: "c1".into(),
        image: Some("a/b:1".into()),
        ..Container::default()
    }));
    let mut open = Event::new(EventType::Open, Collector::Fswatch);
    open.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some("/etc/shadow".into()),
        open_write: Some(true),
        ..Fd::default()
    }));
    let mut conn = Event::new(EventType::Connect, Collector::Sockets);
    conn.fd = Some(Box::new(Fd {
        kind: Some(FdKind::Ipv4),
        cip: "10.0.0.1".parse().ok(),
        sip: "198.51.100.1".parse().ok(),
        sport: Some(443),
        cport: Some(5000),
        local_is_client: Some(true),
        ..Fd::default()
    }));
    vec![exec, open, conn]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let sources = [RuleSource {
        name: "fuzz.yaml".into(),
        text,
    }];
    for strict in [false, true] {
        let outcome = load(
            &sources,
            &LoadOptions {
                strict,
                rule_matching: RuleMatching::All,
            },
        );
        for d in &outcome.diagnostics {
            let _ = d.to_string();
        }
        if let Some(set) = outcome.ruleset {
            let mut out = Vec::new();
            for e in events() {
                set.evaluate(&e, &mut out);
            }
        }
    }
});
