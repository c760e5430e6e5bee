//! Loading rules in memory for tests: one text or several files, and whether a rule fires on
//! an event.

use tasksentry::event::Event;
use tasksentry::rules::{LoadOptions, LoadOutcome, RuleMatching, RuleSource, defaults, load};

/// Loads `(file name, text)` pairs in order, not strict, every matching rule reported.
fn load_named(files: &[(&str, &str)]) -> LoadOutcome {
    load_with(files, false, RuleMatching::All)
}

/// Loads `(file name, text)` pairs in order with the given strictness and matching mode.
pub fn load_with(files: &[(&str, &str)], strict: bool, rule_matching: RuleMatching) -> LoadOutcome {
    let sources: Vec<RuleSource> = files
        .iter()
        .map(|(name, text)| RuleSource {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect();
    load(
        &sources,
        &LoadOptions {
            strict,
            rule_matching,
        },
    )
}

/// Loads one text as `test.yaml`.
pub fn load_text(text: &str) -> LoadOutcome {
    load_named(&[("test.yaml", text)])
}

/// Loads several texts named `a.yaml`, `b.yaml`, ...
pub fn load_texts(texts: &[&str]) -> LoadOutcome {
    let names: Vec<String> = (0..texts.len())
        .map(|i| format!("{}.yaml", (b'a' + i as u8) as char))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(texts.iter().copied())
        .collect();
    load_named(&files)
}

/// Whether the rule named `r` fires on `event` in `outcome` (panics on load errors).
pub fn fires(outcome: &LoadOutcome, rule: &str, event: &Event) -> bool {
    let set = outcome.ruleset.as_ref().unwrap_or_else(|| {
        let errs: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
        panic!("load failed:\n{}", errs.join("\n"))
    });
    let mut out = Vec::new();
    set.evaluate(event, &mut out);
    out.iter().any(|m| m.rule.name == rule)
}

/// A YAML rule item with the given condition (YAML single-quoted).
pub fn rule_yaml(name: &str, condition: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: '{}'\n  output: out %proc.name\n  priority: WARNING\n",
        condition.replace('\'', "''")
    )
}

/// The embedded internal rules (visibility, suppression, reload: what the alert stage raises
/// itself) followed by the file `name` holding `text`.
pub fn internal_rules_and(name: &str, text: &str) -> Vec<RuleSource> {
    let mut sources: Vec<RuleSource> = defaults::default_sources()
        .into_iter()
        .filter(|s| s.name.contains("internal"))
        .collect();
    sources.push(RuleSource {
        name: name.to_owned(),
        text: text.to_owned(),
    });
    sources
}
