//! The tuning walkthrough of `docs/service-owners.md`, executed: the document is the test input.
//!
//! Fenced blocks after a `<!-- walkthrough: KIND NAME -->` marker are read from the document:
//! `file PATH` blocks are written to a scratch directory (the recording and the workload rules
//! file), `run NAME` blocks are the `tasksentry` commands a reader types there, and `alerts NAME`
//! blocks are what the document says those commands print (`rule | proc.cmdline` per alert).
//! The test runs the real binary and checks that:
//!
//! - every command succeeds and prints exactly the alerts the document shows;
//! - without the workload file the false positives fire; with it they do not;
//! - every other alert of the recording still fires with the workload file: the tuning
//!   silenced exactly the three documented false positives and nothing else.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const DOC: &str = include_str!("../docs/service-owners.md");

/// The marked blocks of the document: (kind, name) -> content.
fn marked_blocks(doc: &str) -> BTreeMap<(String, String), String> {
    let mut blocks = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- walkthrough:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let (kind, name) = marker
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("marker without a name: {line}"));
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a fenced block must follow {line}, found {fence:?}"
        );
        let mut content = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            content.push_str(line);
            content.push('\n');
        }
        let previous = blocks.insert((kind.to_owned(), name.trim().to_owned()), content);
        assert!(previous.is_none(), "marker {kind} {name} appears twice");
    }
    blocks
}

fn block<'a>(blocks: &'a BTreeMap<(String, String), String>, kind: &str, name: &str) -> &'a str {
    blocks
        .get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("docs/service-owners.md has no `{kind} {name}` block"))
}

/// Runs the `tasksentry` command lines of a block in `dir`; each must succeed. Returns the
/// stdout of the last one.
fn run_block(commands: &str, dir: &Path) -> String {
    let mut last = String::new();
    for line in commands.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        assert_eq!(
            words.next(),
            Some("tasksentry"),
            "not a tasksentry command: {line}"
        );
        let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
            .args(words)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{line}` failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        last = String::from_utf8(output.stdout).unwrap();
    }
    last
}

/// `rule | proc.cmdline` for every alert line of `rules test` output.
fn summarize(alerts: &str) -> Vec<String> {
    alerts
        .lines()
        .map(|line| {
            let alert: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} | {}",
                alert["rule"].as_str().unwrap(),
                alert["output_fields"]["proc.cmdline"]
                    .as_str()
                    .unwrap_or("<NA>")
            )
        })
        .collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_service_owner_tuning_walkthrough_does_what_it_says() {
    let blocks = marked_blocks(DOC);
    let dir = tempfile::tempdir().unwrap();
    for ((kind, name), content) in &blocks {
        if kind == "file" {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
    }

    // The recording is made of valid events, as many as the document says.
    let recording = block(&blocks, "file", "orders-worker.ndjson");
    let events: Vec<tasksentry::event::Event> = recording
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        DOC.contains(&format!("({} recorded events)", events.len())),
        "the document states how many events the recording has"
    );
    // The workload file uses each tuning form the document explains.
    let workload = block(&blocks, "file", "rules/orders-worker.yaml");
    for form in ["items: append", "exceptions: append", "enabled: replace"] {
        assert!(workload.contains(form), "the workload file shows `{form}`");
    }

    let before = summarize(&run_block(block(&blocks, "run", "before"), dir.path()));
    let after = summarize(&run_block(block(&blocks, "run", "after"), dir.path()));
    assert_eq!(
        before,
        lines(block(&blocks, "alerts", "before")),
        "output before tuning"
    );
    assert_eq!(
        after,
        lines(block(&blocks, "alerts", "after")),
        "output after tuning"
    );

    // Without the workload file the false positives fire; with it they do not.
    let false_positives = [
        "Unexpected listening port | python3 /app/orders_worker.py metrics",
        "Shell spawned by a non-shell program | sh -c render-config --out /etc/orders/worker.conf && echo rendered",
        "Remote file copy tool launched | rsync /usr/local/bin/rsync -a /var/lib/orders/exports/ reports@198.51.100.20:/exports/",
    ];
    for alert in false_positives {
        assert!(before.iter().any(|a| a == alert), "fires untuned: {alert}");
        assert!(!after.iter().any(|a| a == alert), "tuned away: {alert}");
    }
    // Nothing else was silenced: every other alert still fires, in the same order, and each of
    // the rules the file touched still fires for what it is meant to catch.
    let expected_after: Vec<String> = before
        .iter()
        .filter(|a| !false_positives.contains(&a.as_str()))
        .cloned()
        .collect();
    assert_eq!(after, expected_after);
    assert!(
        after
            .iter()
            .any(|a| a.starts_with("Shell spawned by a non-shell program |")),
        "the exception is narrow: the job payload's shell from the same parent still fires"
    );
    assert!(
        after
            .iter()
            .any(|a| a.starts_with("Unexpected listening port |")),
        "the appended port list still leaves other ports reported"
    );
}

/// The example alert of `docs/security-teams.md` is a line the real binary prints for the
/// walkthrough's recording (not a hand-written or Falco-style sample).
#[test]
fn the_security_teams_example_alert_is_real_output() {
    let security = include_str!("../docs/security-teams.md");
    let example = security
        .split("<!-- example-alert -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/security-teams.md has an <!-- example-alert --> json block");
    let blocks = marked_blocks(DOC);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders-worker.ndjson"),
        block(&blocks, "file", "orders-worker.ndjson"),
    )
    .unwrap();
    let printed = run_block(
        "tasksentry rules test --events orders-worker.ndjson --hostname ip-10-20-3-57.eu-west-1.compute.internal",
        dir.path(),
    );
    assert!(
        printed.lines().any(|line| line == example),
        "the example is not among the alerts printed:\n{printed}"
    );
}
