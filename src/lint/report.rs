//! Findings rendered for people (text), programs (JSON, documented in `docs/lint.md`) and code
//! scanning (SARIF 2.1.0, as GitHub accepts it).

use serde_json::{Value, json};

use super::{CHECKS, Finding, Severity};

/// The version of the JSON output's shape; bumped only when a field changes meaning or goes.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// Counts by severity, most severe first.
fn counts(findings: &[Finding]) -> [(Severity, usize); 4] {
    [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ]
    .map(|s| (s, findings.iter().filter(|f| f.check.severity == s).count()))
}

/// Whether any finding is at or above `fail_on`.
pub fn fails(findings: &[Finding], fail_on: Severity) -> bool {
    findings.iter().any(|f| f.check.severity >= fail_on)
}

/// `file:line:column: severity ID: message`, then the fix, then a summary line.
pub fn text(findings: &[Finding], files: usize, fail_on: Severity) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}: {} {}: {}\n    why: {}\n    fix: {}\n",
            f.file, f.pos, f.check.severity, f.check.id, f.message, f.check.why, f.check.fix
        ));
    }
    let by_severity: Vec<String> = counts(findings)
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    out.push_str(&format!(
        "{} finding{} in {files} file{}{}; {}\n",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if by_severity.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_severity.join(", "))
        },
        if fails(findings, fail_on) {
            format!("failing: findings at or above {fail_on}")
        } else {
            format!("passing: nothing at or above {fail_on}")
        }
    ));
    out
}

/// The JSON document: `{"version", "fail_on", "failed", "summary", "findings": [...]}`.
pub fn json(findings: &[Finding], fail_on: Severity) -> Value {
    let summary: serde_json::Map<String, Value> = counts(findings)
        .iter()
        .map(|(s, n)| (s.name().to_owned(), json!(n)))
        .collect();
    json!({
        "version": JSON_FORMAT_VERSION,
        "fail_on": fail_on.name(),
        "failed": fails(findings, fail_on),
        "summary": summary,
        "findings": findings.iter().map(|f| json!({
            "id": f.check.id,
            "severity": f.check.severity.name(),
            "file": f.file,
            "line": f.pos.line,
            "column": f.pos.column,
            "message": f.message,
            "why": f.check.why,
            "fix": f.check.fix,
        })).collect::<Vec<_>>(),
    })
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub's `security-severity` score for a severity (critical > 9.0, high 7.0–8.9, medium
/// 4.0–6.9, low below).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

/// A path as a relative URI reference: forward slashes, spaces and `%` escaped.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            '#' => out.push_str("%23"),
            '?' => out.push_str("%3F"),
            c => out.push(c),
        }
    }
    out
}

/// A SARIF 2.1.0 log with one run: every check as a rule, every finding as a result located at
/// its key (`startLine`, `startColumn` in Unicode code points).
pub fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = CHECKS
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "shortDescription": { "text": c.why },
                "fullDescription": { "text": c.why },
                "help": {
                    "text": format!("{} Fix: {}", c.why, c.fix),
                    "markdown": format!("{}\n\n**Fix:** {}", c.why, c.fix),
                },
                "defaultConfiguration": { "level": sarif_level(c.severity) },
                "properties": {
                    "security-severity": security_severity(c.severity),
                    "tags": ["security"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.check.id,
                "ruleIndex": CHECKS.iter().position(|c| c.id == f.check.id).unwrap_or(0),
                "level": sarif_level(f.check.severity),
                "message": { "text": format!("{} Fix: {}", f.message, f.check.fix) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file) },
                        "region": { "startLine": f.pos.line, "startColumn": f.pos.column },
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "TaskSentry lint",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{ECS_NO_INIT, IAM_FULL_ADMIN, Pos};

    #[test]
    fn text_names_place_id_severity_and_fix() {
        let findings = vec![
            Finding::new(&IAM_FULL_ADMIN, "p.json", Pos { line: 3, column: 7 }, "x"),
            Finding::new(&ECS_NO_INIT, "t.json", Pos { line: 9, column: 1 }, "y"),
        ];
        let out = text(&findings, 2, Severity::High);
        assert!(
            out.starts_with("p.json:3:7: critical TS-IAM-001: x\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!("    fix: {}\n", IAM_FULL_ADMIN.fix)),
            "{out}"
        );
        assert!(
            out.ends_with(
                "2 findings in 2 files (1 critical, 1 low); failing: findings at or above high\n"
            ),
            "{out}"
        );
        assert!(!fails(&findings[1..], Severity::Medium));
        assert!(fails(&findings[1..], Severity::Low));
    }

    #[test]
    fn sarif_paths_are_relative_uris() {
        assert_eq!(uri("./a b/c%.json"), "a%20b/c%25.json");
        assert_eq!(uri("dir\\x.json"), "dir/x.json");
    }
}
