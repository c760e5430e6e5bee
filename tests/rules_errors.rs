//! Broken rule files (tests/data/rules/broken): every error carries the exact file, line and
//! column of the offending token, and all errors of a file are reported.

use tasksentry::rules::{Diagnostic, LoadOptions, RuleSource, Severity, load};

fn load_broken(name: &str) -> (Vec<Diagnostic>, bool) {
    let path = format!(
        "{}/tests/data/rules/broken/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("read");
    let outcome = load(
        &[RuleSource {
            name: name.into(),
            text,
        }],
        &LoadOptions::default(),
    );
    (outcome.diagnostics, outcome.ruleset.is_some())
}

fn errors(diags: &[Diagnostic]) -> Vec<(u32, u32, String)> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.line, d.column, d.message.clone()))
        .collect()
}

fn single_error(name: &str) -> (u32, u32, String) {
    let (diags, ok) = load_broken(name);
    assert!(!ok, "{name} must not load");
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{name}: {errs:?}");
    errs.into_iter().next().expect("one error")
}

#[test]
fn unclosed_quote_points_at_the_opening_quote() {
    let (line, col, msg) = single_error("unclosed_quote.yaml");
    assert_eq!((line, col), (3, 48));
    assert!(msg.contains("unclosed quoted string"));
}

#[test]
fn unknown_macro_points_at_the_identifier() {
    let (line, col, msg) = single_error("unknown_macro.yaml");
    assert_eq!((line, col), (6, 34));
    assert_eq!(msg, "Undefined macro 'shell_procs_typo' used in filter.");
}

#[test]
fn bad_operator_in_a_folded_block_points_into_the_second_line() {
    let (line, col, msg) = single_error("bad_operator.yaml");
    assert_eq!((line, col), (5, 19));
    assert!(msg.contains("unknown operator 'likes'"));
}

#[test]
fn wrong_priority_points_at_the_value() {
    let (line, col, msg) = single_error("wrong_priority.yaml");
    assert_eq!((line, col), (5, 13));
    assert!(msg.starts_with("Invalid priority 'SEVERE'"));
}

#[test]
fn tab_indentation_points_at_the_tab() {
    let (line, col, msg) = single_error("tabs.yaml");
    assert_eq!((line, col), (3, 1));
    assert!(msg.contains("tab character is used for indentation"));
}

#[test]
fn list_used_before_definition_in_a_list_is_a_positioned_warning() {
    // As in Falco, a list item naming a list defined later is taken literally (not an error);
    // TaskSentry warns at the item.
    let (diags, ok) = load_broken("list_before_definition.yaml");
    assert!(ok);
    let w = diags
        .iter()
        .find(|d| d.message.contains("defined later"))
        .expect("warning");
    assert_eq!((w.severity, w.line, w.column), (Severity::Warning, 4, 11));
    assert_eq!(w.item.as_deref(), Some("list 'all_shells'"));
    assert!(w.message.contains("list_before_definition.yaml:6:9"));
}

#[test]
fn macro_used_in_a_macro_before_definition_is_an_error() {
    let (line, col, msg) = single_error("macro_before_definition.yaml");
    assert_eq!((line, col), (2, 14));
    assert!(msg.starts_with("Undefined macro 'spawned_process' used in filter"));
}

#[test]
fn override_key_errors_are_all_reported_at_their_keys() {
    let (diags, _) = load_broken("override_errors.yaml");
    let errs = errors(&diags);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1), (11, 5));
    assert!(
        errs[0]
            .2
            .contains("'output' was specified but 'output' is not defined")
    );
    assert_eq!((errs[1].0, errs[1].1), (15, 3));
    assert!(errs[1].2.contains("Unexpected key 'priority'"));
    assert_eq!((errs[2].0, errs[2].1), (22, 5));
    assert!(errs[2].2.contains("cannot be overridden with 'append'"));
}

#[test]
fn every_error_of_a_file_is_reported() {
    let (diags, ok) = load_broken("many_errors.yaml");
    assert!(!ok);
    let errs = errors(&diags);
    let positions: Vec<(u32, u32)> = errs.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        positions,
        [(6, 47), (10, 9), (10, 9), (16, 64), (27, 14)],
        "{errs:?}"
    );
    assert!(errs[0].2.contains("invalid int value 'abc'"));
    assert!(errs[1].2.contains("'output'"));
    assert!(errs[2].2.contains("'priority'"));
    assert!(errs[3].2.contains("invalid escape sequence"));
    assert!(errs[4].2.contains("missing ')'"));
}

#[test]
fn display_renders_position_message_line_and_caret() {
    let (diags, _) = load_broken("unknown_macro.yaml");
    let d = diags
        .iter()
        .find(|d| d.severity == Severity::Error)
        .expect("error");
    assert_eq!(
        d.to_string(),
        "unknown_macro.yaml:6:34: error: rule 'Unknown macro': Undefined macro 'shell_procs_typo' used in filter.\n    condition: spawned_process and shell_procs_typo\n                                   ^"
    );
}

/// Found by fuzzing (rules_load): a tab error next to a multi-byte character.
#[test]
fn fuzz_regression_tab_error_near_multibyte_character() {
    let path = format!(
        "{}/tests/data/rules/broken/fuzz_tab_multibyte.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = String::from_utf8_lossy(&std::fs::read(path).expect("read")).into_owned();
    let outcome = load(
        &[RuleSource {
            name: "f".into(),
            text,
        }],
        &LoadOptions::default(),
    );
    assert!(outcome.ruleset.is_none());
}
