//! Loads Falco's own rule files (copies in tests/data/rules/falco, see SOURCE.md there) with
//! the TaskSentry engine: every list and macro resolves, and every rule either compiles or is
//! skipped only because it needs a Falco field TaskSentry does not provide.

use tasksentry::rules::fields::is_unprovided;
use tasksentry::rules::{LoadOptions, LoadOutcome, RuleCounts, RuleSource, Severity, load};

fn source(name: &str) -> RuleSource {
    let path = format!(
        "{}/tests/data/rules/falco/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    RuleSource {
        name: name.into(),
        text: std::fs::read_to_string(&path).expect("read"),
    }
}

fn check(outcome: &LoadOutcome) -> RuleCounts {
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for w in outcome.warnings() {
        println!("{w}");
    }
    for s in &outcome.skipped {
        println!("skipped: {} ({})", s.name, s.reason);
        let field = s.reason.split('\'').nth(1).expect("field in reason");
        assert!(
            is_unprovided(field),
            "{} skipped for '{field}', which is not a known unprovided field",
            s.name
        );
    }
    // No skip warning may be about anything but fields.
    for w in outcome.warnings().filter(|w| w.message.contains("skipped")) {
        assert!(w.message.contains("does not provide"), "{w}");
    }
    let counts = outcome.ruleset.as_ref().expect("ruleset").counts();
    println!("{counts:?}");
    counts
}

#[test]
fn all_three_load_together() {
    let sources = [
        source("falco_rules.yaml"),
        source("falco-incubating_rules.yaml"),
        source("falco-sandbox_rules.yaml"),
    ];
    let outcome = load(&sources, &LoadOptions::default());
    let counts = check(&outcome);
    assert_eq!(
        counts,
        RuleCounts {
            compiled: 76,
            enabled: 70,
            skipped: 17,
            lists: 118,
            macros: 315
        }
    );
    assert_eq!(counts.compiled + counts.skipped, 93);
    assert_eq!(
        outcome
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count(),
        0
    );
}

#[test]
fn each_file_loads_alone() {
    for (name, expected) in [
        (
            "falco_rules.yaml",
            RuleCounts {
                compiled: 21,
                enabled: 21,
                skipped: 4,
                lists: 49,
                macros: 87,
            },
        ),
        (
            "falco-incubating_rules.yaml",
            RuleCounts {
                compiled: 27,
                enabled: 27,
                skipped: 4,
                lists: 54,
                macros: 82,
            },
        ),
        (
            "falco-sandbox_rules.yaml",
            RuleCounts {
                compiled: 28,
                enabled: 22,
                skipped: 9,
                lists: 60,
                macros: 183,
            },
        ),
    ] {
        let outcome = load(&[source(name)], &LoadOptions::default());
        let c = check(&outcome);
        println!("{name}: {c:?}");
        assert_eq!(c, expected, "{name}");
    }
}

#[test]
fn falco_rules_fire_on_a_terminal_shell_and_stay_quiet_on_a_worker() {
    use tasksentry::event::{Ancestor, Collector, Container, Event, EventType, Process};
    let sources = [
        source("falco_rules.yaml"),
        source("falco-incubating_rules.yaml"),
        source("falco-sandbox_rules.yaml"),
    ];
    let outcome = load(&sources, &LoadOptions::default());
    let set = outcome.ruleset.expect("ruleset");
    let mut e = Event::new(EventType::Execve, Collector::Procscan);
    e.evt.num = 1;
    e.proc = Some(Box::new(Process {
        pid: 321,
        name: "bash".into(),
        exepath: Some("/bin/bash".into()),
        tty: Some(34816),
        euid: Some(0),
        user: Some("root".into()),
        ..Process::default()
    }));
    e.container = Some(Box::new(Container {
        id: "0a1b2c-123".into(),
        name: Some("web".into()),
        ..Container::default()
    }));
    let mut out = Vec::new();
    set.evaluate(&e, &mut out);
    let names: Vec<&str> = out.iter().map(|m| m.rule.name.as_str()).collect();
    assert_eq!(names, ["Terminal shell in container"]);
    assert!(
        out[0]
            .output
            .starts_with("A shell was spawned in a container with an attached terminal")
    );
    assert_eq!(out[0].output_fields["proc.name"], "bash");
    assert_eq!(out[0].output_fields["proc.tty"], 34816);
    assert_eq!(out[0].output_fields["proc.pname"], serde_json::Value::Null);
    assert!(out[0].output.contains("parent=<NA>"));
    // A worker process with an ordinary parent matches nothing.
    let mut quiet = e.clone();
    let p = quiet.proc.as_mut().expect("proc");
    p.name = "worker".into();
    p.exepath = Some("/usr/local/bin/worker".into());
    p.tty = Some(0);
    p.ancestors = vec![Ancestor {
        pid: 120,
        name: "node".into(),
        exe: None,
        exepath: None,
        args: vec![],
    }];
    out.clear();
    set.evaluate(&quiet, &mut out);
    assert!(
        out.is_empty(),
        "{:?}",
        out.iter().map(|m| &m.rule.name).collect::<Vec<_>>()
    );
}
