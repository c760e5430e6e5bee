//! Arbitrary text as a condition: parsing, list substitution and compiling (through a rule
//! that uses it) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::event::{Collector, Event, EventType, Process};
use tasksentry::rules::syntax::{PosText, parse, substitute_list};
use tasksentry::rules::{LoadOptions, RuleSource, load};

fuzz_target!(|data: &[u8]| {
    let Ok(cond) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse(cond);
    let mut t = PosText::synthetic(cond, 0);
    substitute_list(&mut t, "shells", &["sh".into(), "a b".into()]);
    substitute_list(&mut t, "empty", &[]);
    let _ = parse(&t.text);
    // Through the loader: as a block scalar, so any text is a valid YAML value.
    let body: String = cond.lines().map(|l| format!("    {l}\n")).collect();
    let text = format!(
        "- list: shells\n  items: [sh, bash]\n- macro: m\n  condition: proc.name = sh\n- rule: r\n  desc: d\n  output: o %proc.name\n  priority: INFO\n  condition: |\n{body}"
    );
    let outcome = load(
        &[RuleSource {
            name: "c.yaml".into(),
            text,
        }],
        &LoadOptions::default(),
    );
    if let Some(set) = outcome.ruleset {
        let mut e = Event::new(EventType::Execve, Collector::Procscan);
        e.proc = Some(Box::new(Process {
            name: "sh".into(),
            ..Process::default()
        }));
        let mut out = Vec::new();
        set.evaluate(&e, &mut out);
    }
});
