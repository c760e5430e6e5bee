//! Loader semantics, as Falco's loader has them: append/override, multi-file ordering and
//! visibility, exceptions merging, rule indexing and matching modes, `required_engine_version`
//! and `required_plugin_versions`, skipping of fields TaskSentry lacks, output templates and the
//! alert JSON.

use support::events::fixture;
use support::rules::{fires, load_text, load_texts, load_with, rule_yaml};
use tasksentry::alert::Alert;
use tasksentry::event::EventType;
use tasksentry::priority::Priority;
use tasksentry::rules::{RuleMatching, Severity};

fn rule(name: &str, cond: &str) -> String {
    rule_yaml(name, cond)
}

#[test]
fn legacy_append_and_override_on_lists_and_macros() {
    let outcome = load_texts(&[
        "- list: names\n  items: [a]\n- macro: m\n  condition: proc.name in (names)\n",
        "- list: names\n  items: [curl]\n  append: true\n- macro: m\n  condition: or proc.name = zz\n  append: true\n",
        &rule("r", "m"),
    ]);
    assert!(fires(&outcome, "r", &fixture("curl")));
    assert!(outcome.warnings().any(|d| d.message.contains("deprecated")));
    let outcome = load_texts(&[
        "- list: names\n  items: [a]\n- macro: m\n  condition: proc.name in (names)\n",
        "- list: names\n  items: [curl]\n  override: {items: replace}\n",
        &rule("r", "m"),
    ]);
    assert!(fires(&outcome, "r", &fixture("curl")));
    let outcome = load_texts(&[
        "- list: names\n  items: [curl]\n- macro: m\n  condition: proc.name in (names)\n",
        "- list: names\n  items: [x]\n  override: {items: replace}\n",
        &rule("r", "m"),
    ]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    // Appending to something that does not exist is an error.
    let outcome = load_text("- list: nope\n  items: [x]\n  append: true\n");
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("no list by that name"))
    );
    let outcome = load_text("- macro: nope\n  condition: and x\n  override: {condition: append}\n");
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("no macro by that name"))
    );
    // append and override together.
    let outcome =
        load_text("- list: l\n  items: [x]\n  append: true\n  override: {items: append}\n");
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("cannot be used together"))
    );
}

#[test]
fn rule_override_append_and_replace_keys() {
    let base = "- rule: r\n  desc: one\n  condition: proc.name = curl\n  output: o1\n  priority: WARNING\n  tags: [b]\n";
    let outcome = load_texts(&[
        base,
        "- rule: r\n  desc: two\n  output: o2\n  tags: [a]\n  priority: critical\n  override: {desc: append, output: append, tags: append, priority: replace}\n",
    ]);
    let set = outcome.ruleset.as_ref().expect("loads");
    let info = set.rules().next().expect("rule");
    assert_eq!(info.desc, "one two");
    assert_eq!(info.tags, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(info.priority, Priority::Critical);
    let mut out = Vec::new();
    set.evaluate(&fixture("curl"), &mut out);
    assert_eq!(out[0].output, "o1 o2");
    // Key not allowed for the operation.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  priority: ERROR\n  override: {priority: append}\n",
    ]);
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("cannot be overridden with 'append'"))
    );
    // Bad override value.
    let outcome = load_texts(&[base, "- rule: r\n  desc: x\n  override: {desc: merge}\n"]);
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("Invalid override value 'merge'"))
    );
    // Override of a missing rule.
    let outcome = load_text("- rule: ghost\n  desc: x\n  override: {desc: replace}\n");
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("no rule by that name"))
    );
    // Enable/disable with override and with the legacy form.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  enabled: false\n  override: {enabled: replace}\n",
    ]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    let outcome = load_texts(&[base, "- rule: r\n  enabled: false\n"]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    assert!(outcome.warnings().any(|d| d.message.contains("deprecated")));
    // Legacy append on a rule: condition text appended with a space.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  condition: and proc.pid = 1\n  append: true\n",
    ]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    let outcome = load_texts(&[base, "- rule: r\n  output: x\n  append: true\n"]);
    assert!(outcome.ruleset.is_none());
}

#[test]
fn exceptions_append_and_validation() {
    let base = "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: names\n      fields: [proc.name]\n      values: [[wget]]\n";
    let outcome = load_text(base);
    assert!(fires(&outcome, "r", &fixture("curl")));
    // Appending values to an existing exception.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  exceptions:\n    - name: names\n      values: [[curl]]\n  override: {exceptions: append}\n",
    ]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    // Giving fields when appending to an existing exception is an error.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  exceptions:\n    - name: names\n      fields: [proc.name]\n      values: [[curl]]\n  override: {exceptions: append}\n",
    ]);
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("may not be given when appending"))
    );
    // A new exception through append must have fields.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  exceptions:\n    - name: other\n      values: [[curl]]\n  append: true\n",
    ]);
    assert!(outcome.errors().any(|d| d.message.contains("'fields'")));
    // Replace swaps the whole list.
    let outcome = load_texts(&[
        base,
        "- rule: r\n  exceptions:\n    - name: pids\n      fields: [proc.pid]\n      comps: [=]\n      values: [[300]]\n  override: {exceptions: replace}\n",
    ]);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    assert!(fires(&outcome, "r", &fixture("host_bash")));
    // Length mismatches and bad operators.
    let outcome = load_text(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.name, proc.pid]\n      comps: [=]\n",
    );
    assert!(outcome.errors().any(|d| d.message.contains("equal length")));
    let outcome = load_text(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.name]\n      comps: [like]\n      values: [[x]]\n",
    );
    assert!(outcome.errors().any(|d| {
        d.message
            .contains("'like' is not a supported comparison operator")
    }));
    let outcome = load_text(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.name, proc.pid]\n      values: [[x]]\n",
    );
    assert!(outcome.errors().any(|d| {
        d.message
            .contains("fields and values lists must have equal length")
    }));
    // A pmatch exception with a single field.
    let outcome = load_text(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: proc.exepath\n      comps: pmatch\n      values: [/usr/bin]\n",
    );
    assert!(!fires(&outcome, "r", &fixture("curl")));
}

#[test]
fn multi_file_visibility_and_order() {
    // A list used in a condition may be defined anywhere (even later in the same file).
    let outcome = load_text(&format!(
        "{}- list: late\n  items: [curl]\n",
        rule("r", "proc.name in (late)")
    ));
    assert!(fires(&outcome, "r", &fixture("curl")));
    // A rule cannot use a macro first defined in a later file.
    let outcome = load_texts(&[
        &rule("r", "later_macro"),
        "- macro: later_macro\n  condition: proc.name = curl\n",
    ]);
    let err = outcome.errors().next().expect("error");
    assert!(
        err.message.contains("Undefined macro 'later_macro'"),
        "{err}"
    );
    assert_eq!((err.file.as_str(), err.line, err.column), ("a.yaml", 3, 15));
    // A rule may use a macro defined later in its own file.
    let outcome = load_text(&format!(
        "{}- macro: later_macro\n  condition: proc.name = curl\n",
        rule("r", "later_macro")
    ));
    assert!(fires(&outcome, "r", &fixture("curl")));
    // Redefinition keeps the original position: with `first`, rule a still wins.
    let two = format!(
        "{}{}",
        rule("a", "proc.name = curl"),
        rule("b", "proc.name = curl")
    );
    let second = rule("a", "proc.pid = 300");
    let files = [("1.yaml", two.as_str()), ("2.yaml", second.as_str())];
    let outcome = load_with(&files, false, RuleMatching::First);
    let set = outcome.ruleset.as_ref().expect("loads");
    let names: Vec<&str> = set.rules().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let mut out = Vec::new();
    set.evaluate(&fixture("curl"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule.name, "a");
    assert_eq!(set.rules().next().expect("a").condition, "proc.pid = 300");
    // With `all`, both alert.
    let outcome = load_with(&files, false, RuleMatching::All);
    let mut out = Vec::new();
    outcome
        .ruleset
        .as_ref()
        .expect("loads")
        .evaluate(&fixture("curl"), &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn lists_in_lists_only_if_defined_before() {
    let outcome = load_text(
        "- list: a\n  items: [b, x]\n- list: b\n  items: [curl]\n- list: c\n  items: [b]\n",
    );
    let w = outcome
        .warnings()
        .find(|d| d.message.contains("defined later"))
        .expect("warning");
    assert_eq!((w.line, w.column), (2, 11));
    let text = "- list: a\n  items: [b]\n- list: b\n  items: [curl]\n- list: c\n  items: [b]\n";
    let outcome = load_text(&format!(
        "{text}{}{}",
        rule("ra", "proc.name in (a)"),
        rule("rc", "proc.name in (c)")
    ));
    // In `a`, `b` is literal: `a` holds the string "b", which is then itself substituted in
    // the condition text (textual substitution is global, a Falco quirk), so both match.
    assert!(fires(&outcome, "rc", &fixture("curl")));
    assert!(fires(&outcome, "ra", &fixture("curl")));
}

#[test]
fn macros_in_macros_must_be_defined_before_and_loops_fail() {
    let outcome = load_text("- macro: a\n  condition: b\n- macro: b\n  condition: proc.name = x\n");
    let err = outcome.errors().next().expect("error");
    assert!(err.message.contains("Undefined macro 'b'"));
    assert_eq!(
        (err.line, err.column, err.item.as_deref()),
        (2, 14, Some("macro 'a'"))
    );
    let outcome = load_text(
        "- macro: a\n  condition: proc.name = x\n- macro: b\n  condition: a and c\n- macro: c\n  condition: b\n- macro: a\n  condition: c\n  override: {condition: replace}\n",
    );
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("reference loop")),
        "{:?}",
        outcome.diagnostics
    );
}

#[test]
fn disabled_rules_are_compiled_but_not_evaluated() {
    let text = "- rule: r\n  desc: d\n  condition: proc.name = curl\n  output: o\n  priority: INFO\n  enabled: false\n";
    let outcome = load_text(text);
    assert!(!fires(&outcome, "r", &fixture("curl")));
    assert_eq!(outcome.ruleset.as_ref().expect("loads").counts().enabled, 0);
    let broken = text.replace("proc.name = curl", "proc.name = \"x");
    assert!(load_text(&broken).ruleset.is_none());
    let mut outcome = load_text(text);
    let set = outcome.ruleset.as_mut().expect("loads");
    assert_eq!(set.set_enabled_by_name("r", true), 1);
    let mut out = Vec::new();
    set.evaluate(&fixture("curl"), &mut out);
    assert_eq!(out.len(), 1);
    drop(out);
}

#[test]
fn tags_and_priority_selection() {
    let text = "- rule: low\n  desc: d\n  condition: proc.name = curl\n  output: o\n  priority: info\n  tags: [t1]\n- rule: high\n  desc: d\n  condition: proc.name = curl\n  output: o\n  priority: Critical\n  tags: [t2]\n";
    let mut outcome = load_text(text);
    let set = outcome.ruleset.as_mut().expect("loads");
    set.set_min_priority(Priority::Warning);
    let names = |set: &tasksentry::rules::RuleSet| {
        let mut out = Vec::new();
        set.evaluate(&fixture("curl"), &mut out);
        out.iter().map(|m| m.rule.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(set), ["high"]);
    set.set_min_priority(Priority::Debug);
    assert_eq!(set.set_enabled_by_tag("t2", false), 1);
    assert_eq!(names(set), ["low"]);
}

#[test]
fn event_type_index() {
    let text = format!(
        "{}{}{}{}{}",
        rule("both", "evt.type in (open, execve) and proc.name exists"),
        rule("notopen", "not evt.type = open"),
        rule("any", "proc.name = x"),
        rule("never", "evt.num=0 and evt.type = execve"),
        rule("neg", "not (evt.type != execve or proc.name = x)"),
    );
    let outcome = load_text(&text);
    let set = outcome.ruleset.as_ref().expect("loads");
    let types: Vec<(String, Option<Vec<EventType>>)> = set
        .rules()
        .map(|r| (r.name.clone(), r.event_types.clone()))
        .collect();
    assert_eq!(types[0].1, Some(vec![EventType::Execve, EventType::Open]));
    let notopen = types[1].1.as_ref().expect("restricted");
    assert_eq!(notopen.len(), EventType::ALL.len() - 1);
    assert!(!notopen.contains(&EventType::Open));
    assert_eq!(types[2].1, None);
    assert_eq!(types[3].1, Some(vec![]));
    assert_eq!(types[4].1, Some(vec![EventType::Execve]));
}

#[test]
fn rule_matching_all_skips_untyped_rules_when_a_typed_rule_matched() {
    let text = format!(
        "{}{}",
        rule("untyped", "proc.name = curl"),
        rule("typed", "evt.type = execve and proc.name = curl")
    );
    let outcome = load_text(&text);
    let mut out = Vec::new();
    outcome
        .ruleset
        .as_ref()
        .expect("loads")
        .evaluate(&fixture("curl"), &mut out);
    assert_eq!(
        out.iter().map(|m| m.rule.name.as_str()).collect::<Vec<_>>(),
        ["typed"]
    );
    let outcome = load_with(&[("x", text.as_str())], false, RuleMatching::First);
    out.clear();
    outcome
        .ruleset
        .as_ref()
        .expect("loads")
        .evaluate(&fixture("curl"), &mut out);
    assert_eq!(
        out.iter().map(|m| m.rule.name.as_str()).collect::<Vec<_>>(),
        ["untyped"]
    );
}

#[test]
fn versions_and_plugins() {
    assert!(
        load_text("- required_engine_version: 0.57.0\n")
            .ruleset
            .is_some()
    );
    assert!(
        load_text("- required_engine_version: 26\n")
            .ruleset
            .is_some()
    );
    let o = load_text("- required_engine_version: 0.58.0\n");
    assert!(o.errors().any(|d| {
        d.message
            .contains("Rules require engine version 0.58.0, but engine version is 0.57.0")
    }));
    assert!(
        load_text("- required_engine_version: 1.0.0\n")
            .ruleset
            .is_none()
    );
    assert!(
        load_text("- required_engine_version: banana\n")
            .ruleset
            .is_none()
    );
    assert!(
        load_text("- required_plugin_versions:\n    - name: container\n      version: 0.4.0\n")
            .ruleset
            .is_some()
    );
    let o = load_text("- required_plugin_versions:\n    - name: k8saudit\n      version: 0.1.0\n");
    assert!(o.errors().any(|d| d.message.contains("k8saudit")));
    let o = load_text(
        "- required_plugin_versions:\n    - name: k8saudit\n      version: 0.1.0\n      alternatives:\n        - name: container\n          version: 0.2.0\n",
    );
    assert!(o.ruleset.is_some());
}

#[test]
fn warnings_for_unknown_keys_items_and_unused_definitions() {
    let o = load_text(
        "- rule: r\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: INFO\n  colour: red\n- something: else\n- list: unused_list\n  items: [a]\n- macro: unused_macro\n  condition: proc.name = y\n",
    );
    assert!(o.ruleset.is_some());
    let msgs: Vec<(u32, u32, String)> = o
        .warnings()
        .map(|d| (d.line, d.column, d.message.clone()))
        .collect();
    assert!(
        msgs.iter()
            .any(|(l, c, m)| (*l, *c) == (6, 3) && m.contains("Unknown key 'colour'")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|(l, c, m)| (*l, *c) == (7, 3) && m.contains("Unknown top level item")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|(l, _, m)| *l == 8 && m.contains("not referred to")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|(l, _, m)| *l == 10 && m.contains("not referred to")),
        "{msgs:?}"
    );
}

#[test]
fn unprovided_fields_skip_the_rule_or_fail_in_strict_mode() {
    let text = format!(
        "{}{}",
        rule("k8s", "proc.name = curl and k8s.ns.name = default"),
        rule("ok", "proc.name = curl")
    );
    let outcome = load_text(&text);
    let set = outcome.ruleset.as_ref().expect("loads");
    assert_eq!(set.len(), 1);
    assert_eq!(outcome.skipped.len(), 1);
    assert_eq!(outcome.skipped[0].name, "k8s");
    let w = outcome
        .warnings()
        .find(|d| d.message.contains("k8s.ns.name"))
        .expect("warning");
    assert_eq!(w.item.as_deref(), Some("rule 'k8s'"));
    assert_eq!((w.line, w.column), (3, 36));
    let strict = load_with(&[("s.yaml", text.as_str())], true, RuleMatching::First);
    assert!(strict.ruleset.is_none());
    assert!(
        strict
            .errors()
            .any(|d| d.severity == Severity::Error && d.message.contains("k8s.ns.name"))
    );
    // skip-if-unknown-filter: skipped even in strict mode; typos are skipped too.
    let text = "- rule: r\n  desc: d\n  condition: proc.nmae = curl\n  output: o\n  priority: INFO\n  skip-if-unknown-filter: true\n";
    let strict = load_with(&[("s.yaml", text)], true, RuleMatching::First);
    assert!(strict.ruleset.is_some());
    assert!(
        strict
            .warnings()
            .any(|d| d.message.contains("unknown field 'proc.nmae'"))
    );
}

#[test]
fn outputs_render_text_and_typed_fields() {
    let text = "- rule: r\n  desc: d\n  condition: proc.name = curl\n  output: >\n    shell %proc.name (gp=%proc.aname[2] pid=%proc.pid file=%fd.name\n    pod=%k8s.pod.name up=%toupper(proc.name) w=[%6proc.name] anc=%proc.aname)\n  priority: NOTICE\n  tags: [z, a]\n";
    let outcome = load_text(text);
    assert!(
        outcome
            .warnings()
            .any(|d| d.message.contains("k8s.pod.name"))
    );
    let set = outcome.ruleset.as_ref().expect("loads");
    let event = fixture("curl");
    let mut out = Vec::new();
    set.evaluate(&event, &mut out);
    let m = &out[0];
    assert_eq!(
        m.output,
        "shell curl (gp=nginx pid=300 file=<NA> pod=<NA> up=CURL w=[curl  ] anc=sh nginx)"
    );
    let keys: Vec<&str> = m.output_fields.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "evt.time",
            "fd.name",
            "k8s.pod.name",
            "proc.aname",
            "proc.aname[2]",
            "proc.name",
            "proc.pid"
        ]
    );
    assert_eq!(m.output_fields["proc.pid"], serde_json::json!(300));
    assert_eq!(m.output_fields["fd.name"], serde_json::Value::Null);
    assert_eq!(m.output_fields["proc.aname[2]"], serde_json::json!("nginx"));
    let alert = Alert::from_match(m, &event, "sidecar-1");
    let json = serde_json::to_value(&alert).expect("json");
    assert_eq!(json["time"], "2026-01-01T00:00:10.000000000Z");
    assert_eq!(json["priority"], "Notice");
    assert_eq!(json["rule"], "r");
    assert_eq!(json["source"], "syscall");
    assert_eq!(json["hostname"], "sidecar-1");
    assert_eq!(json["tags"], serde_json::json!(["a", "z"]));
    assert_eq!(
        json["output"].as_str().expect("output"),
        format!("2026-01-01T00:00:10.000000000Z: Notice {}", m.output)
    );
    assert_eq!(json["output_fields"]["proc.name"], "curl");
    assert_eq!(json["ecs"]["family"], "shop");
    assert_eq!(json["ecs"]["container_name"], "web");
    assert_eq!(json["tasksentry"]["event_type"], "execve");
    assert_eq!(json["tasksentry"]["collector"], "procscan");
    assert_eq!(json["tasksentry"]["count"], 1);
    // Invalid output tokens are errors.
    let bad = text.replace("%proc.pid", "%(proc.pid");
    assert!(
        load_text(&bad)
            .errors()
            .any(|d| d.message.contains("invalid formatting token"))
    );
}

#[test]
fn multi_document_files_and_non_sequence_documents() {
    let text = format!(
        "{}---\n{}",
        rule("a", "proc.name = curl"),
        rule("b", "proc.name = curl")
    );
    let outcome = load_text(&text);
    assert_eq!(outcome.ruleset.as_ref().expect("loads").len(), 2);
    let outcome = load_text("rule: x\n");
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("not yaml array"))
    );
    let outcome = load_text("");
    assert_eq!(outcome.ruleset.as_ref().expect("loads").len(), 0);
}
