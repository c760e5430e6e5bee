//! The internal rules and their producers meet: every `tasksentry.kind` a rule in
//! `rules/tasksentry_internal_rules.yaml` names is produced somewhere in the monitor, and the
//! events of the self-protection producers (supervisor restart reports, supervisor loss,
//! collector health, unattributed sockets) each raise their rule's alert with the default
//! rules.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tasksentry::collect::sockets::UnattributedReporter;
use tasksentry::event::{Collector, Event};
use tasksentry::guard::health::CollectorHealth;
use tasksentry::guard::supervise::RestartReport;
use tasksentry::guard::watchdog::{
    StopNotice, stopped_event, supervisor_lost_event, supervisor_stopped_event,
};
use tasksentry::rules::{LoadOptions, RuleSet, defaults};

fn default_rules() -> RuleSet {
    let outcome = tasksentry::rules::load(&defaults::default_sources(), &LoadOptions::default());
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    outcome.ruleset.expect("the default rules load")
}

fn fired(rules: &RuleSet, event: &Event) -> Vec<(String, String)> {
    let mut out = Vec::new();
    rules.evaluate(event, &mut out);
    out.iter()
        .map(|m| (m.rule.name.clone(), m.output.clone()))
        .collect()
}

fn assert_fires(rules: &RuleSet, event: &Event, rule: &str, needles: &[&str]) {
    let matches = fired(rules, event);
    let Some((_, output)) = matches.iter().find(|(name, _)| name == rule) else {
        panic!("{rule:?} does not fire on {event:#?}; fired: {matches:?}");
    };
    for needle in needles {
        assert!(
            output.contains(needle),
            "{rule}: {needle:?} not in {output}"
        );
    }
}

/// The monitor's sources without their test modules: the producers.
fn producer_sources() -> String {
    let mut sources = String::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                sources.push_str(code);
            }
        }
    }
    sources
}

/// Every `kind` an internal rule (or an image rule: the image collector's findings are
/// `tasksentry` events too) names.
fn kinds_with_a_rule() -> Vec<String> {
    let rules = concat!(
        include_str!("../rules/tasksentry_internal_rules.yaml"),
        include_str!("../rules/tasksentry_image_rules.yaml")
    );
    let mut kinds = Vec::new();
    for line in rules.lines() {
        let Some(rest) = line.split("tasksentry.kind").nth(1) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(list) = rest.strip_prefix("in (") {
            let list = &list[..list.find(')').expect("a closing parenthesis")];
            kinds.extend(list.split(',').map(|k| k.trim().to_owned()));
        } else if let Some(kind) = rest.strip_prefix("= ") {
            kinds.push(kind.split_whitespace().next().expect("a kind").to_owned());
        }
    }
    kinds
}

#[test]
fn every_kind_the_monitor_produces_has_an_internal_rule() {
    // Producers build `Internal { kind: "...".into() / .to_owned(), .. }`; the supervisor's
    // restart report picks its kind from a pair (`("monitor_killed", ...)`).
    let sources = producer_sources();
    let mut produced = std::collections::BTreeSet::new();
    for piece in sources.split("kind: \"").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let rest = &piece[name.len()..];
        if rest.starts_with("\".into()") || rest.starts_with("\".to_owned()") {
            produced.insert(name);
        }
    }
    for kind in ["monitor_killed", "monitor_exited"] {
        assert!(sources.contains(&format!("\"{kind}\"")), "{kind}");
        produced.insert(kind.to_owned());
    }
    assert!(produced.len() >= 18, "{produced:?}");
    let kinds = kinds_with_a_rule();
    let missing: Vec<_> = produced.iter().filter(|k| !kinds.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "kinds the monitor produces that no internal rule turns into an alert: {missing:?}"
    );
}

#[test]
fn every_kind_an_internal_rule_names_has_a_producer() {
    let kinds = kinds_with_a_rule();
    assert!(kinds.len() >= 15, "{kinds:?}");
    let sources = producer_sources();
    for kind in &kinds {
        assert!(
            sources.contains(&format!("\"{kind}\"")),
            "no producer in src/ for tasksentry.kind {kind}"
        );
    }
}

#[test]
fn self_protection_events_raise_their_alerts() {
    let rules = default_rules();
    let report = RestartReport {
        pid: 321,
        signal: Some(9),
        exit_code: None,
        core_dumped: false,
        uptime_ms: 5000,
        down_ms: 2,
        restarts: 1,
        max_restarts: 5,
        window_secs: 600,
        supervisor_pid: 77,
    };
    assert_fires(
        &rules,
        &report.event(),
        "TaskSentry monitor killed",
        &["SIGKILL", "killed_pid=321", "restarts=1", "signal_number=9"],
    );
    let crashed = RestartReport {
        signal: None,
        exit_code: Some(101),
        ..report
    };
    assert_fires(
        &rules,
        &crashed.event(),
        "TaskSentry monitor exited unexpectedly",
        &["exit_code=101", "exited_pid=321"],
    );
    assert_fires(
        &rules,
        &supervisor_lost_event(77),
        "TaskSentry supervisor lost",
        &["supervisor_pid=77"],
    );
    let stopped = StopNotice::BySupervisor {
        supervisor: 77,
        signal: 19,
    };
    assert_fires(
        &rules,
        &stopped_event(stopped, std::path::Path::new("/proc"), None),
        "TaskSentry monitor stopped",
        &[
            "kind=monitor_stopped",
            "signal=SIGSTOP",
            "resumed_by_pid=77",
        ],
    );
    assert_fires(
        &rules,
        &supervisor_stopped_event(77, true),
        "TaskSentry monitor stopped",
        &["kind=supervisor_stopped", "supervisor_pid=77", "resumed it"],
    );

    let shutdown = Arc::new(AtomicBool::new(false));
    let mut health = CollectorHealth::default();
    health.add(
        Collector::Procscan,
        std::thread::spawn(|| panic!("boom")),
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let reports = loop {
        let reports = health.check(&shutdown);
        if !reports.is_empty() || Instant::now() > deadline {
            break reports;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(reports.len(), 1);
    assert_fires(
        &rules,
        &reports[0],
        "TaskSentry collector restarted",
        &["collector_failed", "procscan", "boom"],
    );

    let summary = UnattributedReporter::default()
        .report(3, Instant::now(), Duration::from_secs(60))
        .expect("a summary");
    assert_fires(
        &rules,
        &summary,
        "TaskSentry could not attribute sockets",
        &["count=3"],
    );
}
