//! Loads Falco's own rule files (stable, incubating, sandbox) with the TaskSentry engine.

use tasksentry::rules::{LoadOptions, RuleSource, Severity, load};

const DIR: &str = "/work/shared/falco-rules";

fn source(name: &str) -> RuleSource {
    let path = format!("{DIR}/{name}");
    RuleSource {
        name: path.clone(),
        text: std::fs::read_to_string(&path).expect("read"),
    }
}

#[test]
fn all_three_load_together() {
    let sources = [
        source("falco_rules.yaml"),
        source("falco-incubating_rules.yaml"),
        source("falco-sandbox_rules.yaml"),
    ];
    let outcome = load(&sources, &LoadOptions::default());
    for d in &outcome.diagnostics {
        if d.severity == Severity::Error {
            println!("{d}");
        }
    }
    for s in &outcome.skipped {
        println!("skipped: {} ({})", s.name, s.reason);
    }
    let set = outcome.ruleset.expect("ruleset");
    println!("{:?}", set.counts());
}
