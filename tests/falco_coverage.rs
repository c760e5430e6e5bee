//! The map of Falco's rules on Fargate (`tests/scenarios/falco-coverage.md`, copied into
//! `docs/coverage.md` by the scenario suite) names every rule of Falco's stable, incubating and
//! sandbox files exactly once (the copies in `tests/data/rules/falco/`, the same files
//! `tests/rules_falco.rs` loads), so that an update of those files cannot go unnoticed; every
//! row has a status from the fixed set and a reason; the TaskSentry rules it names are default
//! rules; and the published page carries the current text.

use std::collections::{BTreeMap, BTreeSet};

use tasksentry::rules::{LoadOptions, RuleSource, defaults, load};

const MAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/scenarios/falco-coverage.md"
);
const COVERAGE_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/coverage.md");
const SCENARIO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");

/// The table's name of each Falco file.
const FALCO_FILES: &[(&str, &str)] = &[
    ("stable", "falco_rules.yaml"),
    ("incubating", "falco-incubating_rules.yaml"),
    ("sandbox", "falco-sandbox_rules.yaml"),
];

const DETECTED: &str = "detected";
const NOT_OBSERVABLE: &str = "not observable on Fargate";
const NARROWER: &str = "narrower on purpose";

#[derive(Debug)]
struct Row {
    line: usize,
    file: String,
    rule: String,
    status: String,
    tasksentry: Vec<String>,
    why: String,
}

/// The names of the `- rule:` items of one Falco file, in order. Read from the lines (Falco's
/// files keep one `- rule: NAME` per item at the top level) and checked against what the
/// TaskSentry loader makes of the file (compiled or skipped), so that a name spelled another
/// way (quoted, on its own line) cannot slip past.
fn falco_rule_names(file: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/data/rules/falco/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("a Falco rules file");
    let names: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("- rule:"))
        .map(|name| {
            name.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .collect();
    let outcome = load(
        &[RuleSource {
            name: file.into(),
            text: text.clone(),
        }],
        &LoadOptions::default(),
    );
    let mut loaded: BTreeSet<String> = outcome
        .ruleset
        .as_ref()
        .expect("the Falco file loads")
        .rules()
        .map(|r| r.name.clone())
        .collect();
    loaded.extend(outcome.skipped.iter().map(|s| s.name.clone()));
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>(),
        loaded,
        "{file}: the `- rule:` lines and the loaded rules differ"
    );
    names
}

fn parse_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with("| Falco file |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            if !rows.is_empty() {
                break;
            }
            continue;
        }
        assert!(
            !line.contains("\\|"),
            "line {line_no}: no escaped pipes in the map"
        );
        let cells: Vec<&str> = line
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(cells.len(), 5, "line {line_no}: five cells: {line}");
        let tasksentry = if cells[3] == "-" {
            Vec::new()
        } else {
            cells[3]
                .split(", ")
                .map(|name| {
                    name.strip_prefix('`')
                        .and_then(|n| n.strip_suffix('`'))
                        .unwrap_or_else(|| {
                            panic!("line {line_no}: TaskSentry rules are `quoted`: {name}")
                        })
                        .to_owned()
                })
                .collect()
        };
        rows.push(Row {
            line: line_no,
            file: cells[0].to_owned(),
            rule: cells[1].to_owned(),
            status: cells[2].to_owned(),
            tasksentry,
            why: cells[4].to_owned(),
        });
    }
    rows
}

fn map_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(MAP).expect("tests/scenarios/falco-coverage.md");
    let rows = parse_rows(&text);
    assert!(!rows.is_empty(), "no table found in {MAP}");
    rows
}

fn default_rule_names() -> BTreeSet<String> {
    let outcome = load(&defaults::default_sources(), &LoadOptions::default());
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    outcome
        .ruleset
        .as_ref()
        .expect("the default ruleset")
        .rules()
        .map(|r| r.name.clone())
        .collect()
}

#[test]
fn the_map_names_every_falco_rule_exactly_once() {
    let rows = map_rows();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &rows {
        assert!(
            FALCO_FILES.iter().any(|(name, _)| *name == row.file),
            "line {}: unknown Falco file `{}`",
            row.line,
            row.file
        );
        if let Some(first) = seen.insert((row.file.clone(), row.rule.clone()), row.line) {
            panic!(
                "line {}: {} rule `{}` is already mapped on line {first}",
                row.line, row.file, row.rule
            );
        }
    }
    let mut missing = Vec::new();
    let mut expected = BTreeSet::new();
    for (label, file) in FALCO_FILES {
        let names = falco_rule_names(file);
        assert!(!names.is_empty(), "{file}: no rules parsed");
        for name in names {
            if !seen.contains_key(&(label.to_string(), name.clone())) {
                missing.push(format!("{label}: {name}"));
            }
            assert!(
                expected.insert((label.to_string(), name.clone())),
                "{file} declares `{name}` twice"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "Falco rules not in tests/scenarios/falco-coverage.md:\n{}",
        missing.join("\n")
    );
    let unknown: Vec<String> = seen
        .keys()
        .filter(|key| !expected.contains(*key))
        .map(|(file, rule)| format!("{file}: {rule}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows naming no rule of the Falco files:\n{}",
        unknown.join("\n")
    );
    assert_eq!(rows.len(), expected.len());
}

#[test]
fn every_row_has_a_known_status_a_reason_and_existing_tasksentry_rules() {
    let rows = map_rows();
    let defaults = default_rule_names();
    for row in &rows {
        let at = format!("line {} ({} `{}`)", row.line, row.file, row.rule);
        assert!(
            [DETECTED, NOT_OBSERVABLE, NARROWER].contains(&row.status.as_str()),
            "{at}: status `{}` is not one of `{DETECTED}`, `{NOT_OBSERVABLE}`, `{NARROWER}`",
            row.status
        );
        assert!(
            row.why.len() >= 10 && row.why != "-",
            "{at}: a reason is required"
        );
        match row.status.as_str() {
            DETECTED => assert!(
                !row.tasksentry.is_empty(),
                "{at}: a detected behaviour names the TaskSentry rule(s) that detect it"
            ),
            NOT_OBSERVABLE => assert!(
                row.tasksentry.is_empty(),
                "{at}: a behaviour TaskSentry cannot observe names no detecting rule (`-`)"
            ),
            _ => assert!(
                row.why.contains("Falco's reach"),
                "{at}: a narrower row says how to get Falco's reach back"
            ),
        }
        for name in &row.tasksentry {
            assert!(
                defaults.contains(name),
                "{at}: `{name}` is not a default TaskSentry rule"
            );
        }
    }
}

#[test]
fn scenarios_that_mirror_a_falco_rule_name_one_the_map_says_is_detected() {
    let rows = map_rows();
    let by_name: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.rule.as_str(), r)).collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(SCENARIO_DIR).expect("tests/scenarios") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a scenario");
        let Some(source) = text.lines().find_map(|l| l.strip_prefix("# source: ")) else {
            continue;
        };
        let mut rest = source;
        while let Some(start) = rest.find("Falco \"") {
            let after = &rest[start + "Falco \"".len()..];
            let end = after.find('"').expect("a closing quote");
            let name = &after[..end];
            let row = by_name.get(name).unwrap_or_else(|| {
                panic!("{}: Falco rule `{name}` is not in the map", path.display())
            });
            assert_ne!(
                row.status,
                NOT_OBSERVABLE,
                "{}: the map says `{name}` is not observable, yet a scenario detects it",
                path.display()
            );
            checked += 1;
            rest = &after[end + 1..];
        }
    }
    assert!(
        checked >= 30,
        "only {checked} scenario sources name a Falco rule"
    );
}

#[test]
fn the_coverage_page_carries_the_current_map() {
    let map = std::fs::read_to_string(MAP).expect("tests/scenarios/falco-coverage.md");
    let doc = std::fs::read_to_string(COVERAGE_DOC).expect("docs/coverage.md");
    assert!(
        doc.ends_with(&map),
        "docs/coverage.md does not end with tests/scenarios/falco-coverage.md: regenerate it \
         (TASKSENTRY_UPDATE_COVERAGE=1 cargo nextest run -E 'binary(scenarios)', see the page)"
    );
}
