//! Multi-file visibility of macros for redefined and appended rules: Falco
//! recompiles the whole collection after each file, so a rule redefined, appended or
//! overridden in a later file may use that file's macros, while its position (evaluation
//! order) stays where it was first defined.

use support::events::fixture;
use support::rules::{fires, load_texts};

const BASE: &str = "- rule: r\n  desc: d\n  condition: evt.type = execve and proc.name = never\n  output: o\n  priority: NOTICE\n";

#[test]
fn a_rule_redefined_in_a_later_file_sees_that_files_macros() {
    let later = "- macro: is_curl\n  condition: proc.name = curl\n- rule: r\n  desc: d\n  condition: evt.type = execve and is_curl\n  output: o\n  priority: NOTICE\n";
    let outcome = load_texts(&[BASE, later]);
    assert_eq!(outcome.errors().count(), 0, "{:?}", outcome.diagnostics);
    assert!(fires(&outcome, "r", &fixture("curl")));
}

#[test]
fn a_rule_appended_in_a_later_file_sees_that_files_macros() {
    let later = "- macro: is_curl\n  condition: proc.name = curl\n- rule: r\n  condition: or (evt.type = execve and is_curl)\n  override: {condition: append}\n";
    let outcome = load_texts(&[BASE, later]);
    assert_eq!(outcome.errors().count(), 0, "{:?}", outcome.diagnostics);
    assert!(fires(&outcome, "r", &fixture("curl")));
}

#[test]
fn a_rule_still_cannot_use_a_macro_from_a_file_loaded_after_it() {
    let rule = "- rule: r\n  desc: d\n  condition: evt.type = execve and is_curl\n  output: o\n  priority: NOTICE\n";
    let later = "- macro: is_curl\n  condition: proc.name = curl\n";
    let outcome = load_texts(&[rule, later]);
    assert!(
        outcome.errors().any(|d| d.message.contains("is_curl")),
        "{:?}",
        outcome.diagnostics
    );
}
