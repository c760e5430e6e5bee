//! `tasksentry lint` through the real binary: every fixture of `tests/data/lint/` gives exactly
//! the findings its `.expect` file lists (ids and `file:line:column`) and the exit code they
//! imply; the shipped task definitions, policies and templates lint clean at `--fail-on high`;
//! positions are right in a pretty-printed and a minified file; unusable input exits 2 with
//! `file:line:column` and never panics; the SARIF output validates against the official
//! SARIF 2.1.0 schema; `docs/lint.md` documents exactly the checks the binary knows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tasksentry::exit;
use tasksentry::lint::{CHECKS, Severity};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    repo().join("tests/data/lint")
}

/// Runs `tasksentry lint ARGS` in `dir`.
fn lint_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .arg("lint")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running tasksentry lint")
}

fn code(output: &Output) -> Option<u8> {
    output.status.code().and_then(|c| u8::try_from(c).ok())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `ID FILE:LINE:COLUMN` of every finding of a `--format json` run.
fn findings(output: &Output) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON output: {e}: {}", stderr(output)));
    let mut found: Vec<String> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {}:{}:{}",
                f["id"].as_str().unwrap_or(""),
                f["file"].as_str().unwrap_or(""),
                f["line"],
                f["column"]
            )
        })
        .collect();
    found.sort();
    found
}

fn severity(id: &str) -> Severity {
    CHECKS
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("unknown check {id}"))
        .severity
}

/// The fixtures: (name, extra arguments, expected findings).
fn fixtures() -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data()).expect("tests/data/lint") {
        let path = entry.expect("entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".expect"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read .expect");
        let mut args = Vec::new();
        let mut expected = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# args:") {
                args.extend(rest.split_whitespace().map(str::to_owned));
            } else if !line.trim().is_empty() {
                expected.push(line.trim().to_owned());
            }
        }
        expected.sort();
        out.push((name.to_owned(), args, expected));
    }
    out.sort();
    out
}

/// The document a fixture lints: `NAME.json`, else `NAME.yaml`.
fn fixture_file(name: &str) -> String {
    let json = format!("{name}.json");
    if data().join(&json).exists() {
        json
    } else {
        format!("{name}.yaml")
    }
}

#[test]
fn every_fixture_gives_exactly_its_expected_findings_and_exit_code() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 40, "{} fixtures", fixtures.len());
    let mut failures = Vec::new();
    for (name, args, expected) in &fixtures {
        let file = fixture_file(name);
        let mut argv = vec![file.as_str(), "--format", "json"];
        argv.extend(args.iter().map(String::as_str));
        let output = lint_in(&data(), &argv);
        let wanted_code = if expected
            .iter()
            .any(|e| severity(e.split(' ').next().unwrap_or("")) >= Severity::High)
        {
            exit::FAILURE
        } else {
            exit::OK
        };
        if code(&output) != Some(wanted_code) {
            failures.push(format!(
                "{name}: exit {:?}, expected {wanted_code}: {}",
                output.status.code(),
                stderr(&output)
            ));
            continue;
        }
        let found = findings(&output);
        if &found != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  found    {found:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_check_has_a_positive_and_a_negative_fixture() {
    let fixtures = fixtures();
    for check in CHECKS {
        let stem = check.id.to_ascii_lowercase();
        let positive = fixtures
            .iter()
            .find(|(n, ..)| *n == format!("{stem}-pos"))
            .unwrap_or_else(|| panic!("no positive fixture for {}", check.id));
        assert!(
            positive
                .2
                .iter()
                .any(|e| e.starts_with(&format!("{} ", check.id))),
            "{}-pos does not expect {}",
            stem,
            check.id
        );
        let negative = fixtures
            .iter()
            .find(|(n, ..)| *n == format!("{stem}-neg"))
            .unwrap_or_else(|| panic!("no negative fixture for {}", check.id));
        assert!(
            !negative
                .2
                .iter()
                .any(|e| e.starts_with(&format!("{} ", check.id))),
            "{stem}-neg expects {}",
            check.id
        );
    }
}

#[test]
fn shipped_task_definitions_policies_and_templates_lint_clean_at_high() {
    let runs: [&[&str]; 3] = [
        &[
            "task-definitions/web-nginx-with-tasksentry.json",
            "--task-role-policy",
            "task-definitions/iam/tasksentry-task-role-policy.json",
            "--execution-role-policy",
            "task-definitions/iam/task-execution-role-policy.json",
        ],
        &[
            "task-definitions/worker-python-with-tasksentry.json",
            "--task-role-policy",
            "task-definitions/iam/tasksentry-task-role-policy.json",
            "--execution-role-policy",
            "task-definitions/iam/task-execution-role-policy.json",
        ],
        &[
            "task-definitions/cloudformation/tasksentry-alerting.yaml",
            "task-definitions/cloudformation/tasksentry-service-monitoring.yaml",
            "task-definitions/iam/ecs-tasks-trust-policy.json",
            "task-definitions/iam/tasksentry-task-role-policy.json",
            "task-definitions/iam/task-execution-role-policy.json",
        ],
    ];
    for args in runs {
        let mut argv = args.to_vec();
        argv.extend(["--format", "json"]);
        let output = lint_in(repo(), &argv);
        assert_eq!(
            code(&output),
            Some(exit::OK),
            "{args:?}: {:?} {}",
            findings(&output),
            stderr(&output)
        );
        let doc: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(doc["summary"]["high"], 0, "{args:?}");
        assert_eq!(doc["summary"]["critical"], 0, "{args:?}");
    }
}

/// JSON text without blanks outside strings.
fn minify(text: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[test]
fn positions_are_right_in_pretty_printed_and_minified_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A non-ASCII family name before the findings: columns count characters, not bytes.
    let pretty = std::fs::read_to_string(data().join("ts-ecs-005-pos.json"))
        .expect("fixture")
        .replace("\"fixture\"", "\"caf\u{e9}-\u{2615}\"");
    let minified = minify(&pretty);
    assert_eq!(minified.lines().count(), 1);
    std::fs::write(dir.path().join("pretty.json"), &pretty).expect("write");
    std::fs::write(dir.path().join("min.json"), &minified).expect("write");

    let pretty_out = lint_in(dir.path(), &["pretty.json", "--format", "json"]);
    // The app's `"readonlyRootFilesystem": false` (its line and column, 1-based).
    let (line, column) = pretty
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.find("\"readonlyRootFilesystem\": false")
                .map(|b| (i + 1, l[..b].chars().count() + 1))
        })
        .expect("the key");
    assert_eq!((line, column), (49, 7), "the fixture as generated");
    assert_eq!(
        findings(&pretty_out),
        vec![format!("TS-ECS-005 pretty.json:{line}:{column}")]
    );

    let min_out = lint_in(dir.path(), &["min.json", "--format", "json"]);
    let byte = minified
        .find("\"readonlyRootFilesystem\":false")
        .expect("the key");
    let column = minified[..byte].chars().count() + 1;
    assert!(
        column > byte / 2 && column < byte,
        "multi-byte characters before it"
    );
    assert_eq!(
        findings(&min_out),
        vec![format!("TS-ECS-005 min.json:1:{column}")]
    );
    // The text output says the same place.
    let text = lint_in(dir.path(), &["min.json"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.starts_with(&format!(
            "min.json:1:{column}: medium TS-ECS-005: container `app`"
        )),
        "{stdout}"
    );
}

/// Lints `content` written to `name` in a temporary directory; expects exit 2, no output on
/// stdout, one `name:LINE:COLUMN: why` line on stderr, and returns (line, column, why).
fn unusable(name: &str, content: &[u8]) -> (u32, u32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name), content).expect("write");
    let output = lint_in(dir.path(), &[name]);
    let err = stderr(&output);
    assert_eq!(code(&output), Some(exit::INPUT), "{name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        output.stdout.is_empty(),
        "{name}: no findings on unusable input"
    );
    let rest = err
        .strip_prefix(&format!("{name}:"))
        .unwrap_or_else(|| panic!("{name}: {err}"));
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().and_then(|l| l.parse().ok()).expect("line");
    let column = parts.next().and_then(|c| c.parse().ok()).expect("column");
    (line, column, parts.next().unwrap_or("").trim().to_owned())
}

#[test]
fn unusable_input_exits_2_with_file_line_column_and_never_panics() {
    let fixture = std::fs::read_to_string(data().join("ts-ecs-010-neg.json")).expect("fixture");
    // Truncated in the middle of a container definition.
    let cut = &fixture[..fixture.len() / 2];
    let (line, _, why) = unusable("truncated.json", cut.as_bytes());
    assert_eq!(line as usize, cut.lines().count(), "{why}");
    assert!(why.contains("end of the document"), "{why}");

    let (line, column, why) = unusable(
        "types.json",
        b"{\n  \"family\": \"x\",\n  \"containerDefinitions\": {\"name\": \"app\"}\n}\n",
    );
    assert_eq!((line, column), (3, 27), "{why}");
    assert!(
        why.contains("`containerDefinitions` must be an array of objects, not an object"),
        "{why}"
    );

    let (line, column, why) = unusable(
        "policy-types.json",
        b"{\"Statement\": [{\"Effect\": \"Allow\", \"Action\": 3, \"Resource\": \"*\"}]}",
    );
    assert_eq!((line, column), (1, 46), "{why}");
    assert!(
        why.contains("`Action` must be a string or an array of strings"),
        "{why}"
    );

    let (line, column, why) = unusable(
        "env.json",
        b"{\"containerDefinitions\": [{\"name\": \"a\", \"environment\": [{\"name\": \"A\", \"value\": 1}]}]}",
    );
    assert_eq!((line, column), (1, 80), "{why}");
    assert!(why.contains("`value` must be a string"), "{why}");

    let (line, column, why) = unusable("deep.json", "[".repeat(100_000).as_bytes());
    assert_eq!((line, column), (1, 129), "{why}");
    assert!(why.contains("nesting deeper than 128"), "{why}");

    let (line, _, why) = unusable("deep.yaml", "[".repeat(100_000).as_bytes());
    assert_eq!(line, 1, "{why}");

    let (_, _, why) = unusable("not-a-doc.json", b"{\"family\": \"x\"}");
    assert!(why.contains("not a task definition"), "{why}");

    let (line, column, why) = unusable("latin1.json", b"{\"family\": \"caf\xe9\"}");
    assert_eq!((line, column), (1, 16), "{why}");
    assert!(why.contains("UTF-8"), "{why}");

    // 50 MB of a syntactically valid start: refused at the size limit, without reading it all.
    let mut big = b"{\"containerDefinitions\": [".to_vec();
    let entry = b"{\"name\": \"app\", \"image\": \"nginx\"},\n";
    while big.len() < 50 << 20 {
        big.extend_from_slice(entry);
    }
    let (line, _, why) = unusable("big.json", &big);
    assert!(why.contains("larger than 8 MiB"), "{why}");
    assert!(line > 1000, "the position where reading stopped: {line}");

    // A file that does not exist: exit 2 and its name.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = lint_in(dir.path(), &["missing.json"]);
    assert_eq!(code(&output), Some(exit::INPUT));
    assert!(
        stderr(&output).starts_with("missing.json: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sarif_output_validates_against_the_official_schema() {
    let python = Command::new(repo().join("scripts/jsonschema-venv"))
        .output()
        .expect("scripts/jsonschema-venv");
    assert!(python.status.success(), "{}", stderr(&python));
    let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [&[&str]; 3] = [
        &[
            "ts-iam-005-pos.json",
            "ts-ecs-003-pos.json",
            "ts-ecs-012-pos.json",
        ],
        &[
            "ts-sidecar-009-pos.json",
            "--task-role-policy",
            "ts-sidecar-009-pos.task-role-policy.json",
        ],
        &["ts-ecs-010-neg.json"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let mut argv = args.to_vec();
        argv.extend(["--format", "sarif"]);
        let output = lint_in(&data(), &argv);
        assert!(matches!(code(&output), Some(0 | 1)), "{}", stderr(&output));
        let log: Value = serde_json::from_slice(&output.stdout).expect("SARIF is JSON");
        // What GitHub code scanning needs beyond the schema: every result names a known rule
        // and is located at a line of its file.
        let run = &log["runs"][0];
        let rules: BTreeSet<&str> = run["tool"]["driver"]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(rules.len(), CHECKS.len());
        for result in run["results"].as_array().expect("results") {
            assert!(rules.contains(result["ruleId"].as_str().expect("ruleId")));
            let location = &result["locations"][0]["physicalLocation"];
            assert!(location["region"]["startLine"].as_u64().expect("startLine") >= 1);
            let uri = location["artifactLocation"]["uri"].as_str().expect("uri");
            assert!(data().join(uri).exists(), "{uri}");
        }
        let file = dir.path().join(format!("run{i}.sarif"));
        std::fs::write(&file, &output.stdout).expect("write");
        let check = Command::new(&python)
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 log = json.load(open(sys.argv[2]))\n\
                 jsonschema.validators.validator_for(schema)(schema).validate(log)\n\
                 print(len(log['runs'][0]['results']))",
            ])
            .arg(data().join("sarif-schema-2.1.0.json"))
            .arg(&file)
            .output()
            .expect("python");
        assert!(check.status.success(), "case {i}: {}", stderr(&check));
    }
    // The schema rejects what is not SARIF, so the validation above can fail.
    let bad = dir.path().join("bad.sarif");
    std::fs::write(&bad, r#"{"version": "2.1.0", "runs": [{"tool": {}}]}"#).expect("write");
    let check = Command::new(&python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(data().join("sarif-schema-2.1.0.json"))
        .arg(&bad)
        .output()
        .expect("python");
    assert!(
        !check.status.success(),
        "a run without a driver must not validate"
    );
}

/// Every `TS-...-NNN` id in a text.
fn ids_in(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (start, _) in text.match_indices("TS-") {
        let rest = &text[start..];
        let end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-'))
            .map_or(rest.len(), |(i, _)| i);
        let id = &rest[..end];
        if id
            .rsplit_once('-')
            .is_some_and(|(_, n)| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
        {
            ids.insert(id.to_owned());
        }
    }
    ids
}

#[test]
fn docs_list_exactly_the_checks_the_binary_knows() {
    let output = lint_in(repo(), &["--list-checks"]);
    assert_eq!(code(&output), Some(exit::OK));
    let listed: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect();
    let known: BTreeSet<String> = CHECKS.iter().map(|c| c.id.to_owned()).collect();
    assert_eq!(listed, known);
    let docs = std::fs::read_to_string(repo().join("docs/lint.md")).expect("docs/lint.md");
    assert_eq!(
        ids_in(&docs),
        known,
        "docs/lint.md names other ids than the binary"
    );
    // Each has its row in the table, with the binary's severity.
    for check in CHECKS {
        let row = format!("| {} | {} |", check.id, check.severity);
        assert!(docs.contains(&row), "docs/lint.md has no row `{row}`");
    }
}

#[test]
fn fail_on_and_skip_change_the_exit_code() {
    // ts-ecs-013-pos has one medium finding.
    let medium = lint_in(&data(), &["ts-ecs-013-pos.json"]);
    assert_eq!(code(&medium), Some(exit::OK));
    let strict = lint_in(&data(), &["ts-ecs-013-pos.json", "--fail-on", "medium"]);
    assert_eq!(code(&strict), Some(exit::FAILURE));
    let skipped = lint_in(
        &data(),
        &[
            "ts-ecs-013-pos.json",
            "--fail-on",
            "low",
            "--skip",
            "TS-ECS-013",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&skipped), Some(exit::OK));
    assert!(findings(&skipped).is_empty());
    let unknown = lint_in(&data(), &["ts-ecs-013-pos.json", "--skip", "TS-NOPE-001"]);
    assert_eq!(code(&unknown), Some(exit::USAGE));
}
