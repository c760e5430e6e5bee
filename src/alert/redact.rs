//! Secret redaction: every alert is scrubbed before it reaches any output.
//!
//! A [`Redactor`] holds an ordered list of patterns. Each pattern names the kind of secret it
//! finds and which part of its match is the secret (the rest is context that stays, such as
//! `--password=` or `Bearer `). The secret is replaced with `[REDACTED:<kind>]`, so a reader
//! knows something was removed and what it was, and the number of replacements is recorded in
//! the alert's `tasksentry.redactions`. Built-in patterns cover AWS access key ids and secret
//! keys, bearer and basic authorization, passwords in common flag and variable forms (and
//! `-p<pw>` for MySQL-like clients), private key blocks, URLs with credentials, and GitHub,
//! GitLab, Slack, Stripe, Google and JWT tokens; the `redact_patterns` setting adds more.
//!
//! Redaction errs on the side of removing: a value after `--password` is removed even if it
//! happens to be another flag. Text that matches no pattern is returned unchanged (borrowed).

use std::borrow::Cow;

use regex::{Captures, Regex};

use super::Alert;

/// The prefix of every replacement; a value already starting with it is never redacted again.
pub(crate) const MARK_PREFIX: &str = "[REDACTED:";

/// A `redact_patterns` entry that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("invalid redaction pattern `{pattern}`: {source}")]
pub(crate) struct RedactError {
    /// The pattern as configured.
    pub(crate) pattern: String,
    /// Why the regex crate rejected it.
    #[source]
    pub(crate) source: Box<regex::Error>,
}

/// One pattern: the kind it reports, the regex, and which capture group is the secret
/// (0 = the whole match).
#[derive(Debug, Clone)]
struct Pattern {
    kind: &'static str,
    regex: Regex,
    group: usize,
    /// When set, the pattern applies only to texts containing one of these words (used for
    /// `-p<password>`, which means a password only for MySQL-like clients).
    only_with: &'static [&'static str],
}

/// The built-in patterns, in the order they are applied. Earlier patterns see the text first;
/// later ones skip what earlier ones replaced.
const BUILTIN: &[(&str, &str, usize, &[&str])] = &[
    (
        "private_key",
        r"(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
        0,
        &[],
    ),
    (
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:([^/\s@]+)@",
        1,
        &[],
    ),
    (
        "aws_access_key_id",
        r"\b((?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16})\b",
        1,
        &[],
    ),
    (
        "aws_secret_key",
        r#"(?i)(?:aws_secret_access_key|aws_secret_key|secret_access_key|secretaccesskey|--secret(?:-access)?(?:-key)?)["']?(?:\s*[=:]\s*|\s+)["']?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        1,
        &[],
    ),
    (
        "bearer_token",
        r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]+=*)",
        1,
        &[],
    ),
    (
        "basic_auth",
        r"(?i)\bauthorization\s*[:=]\s*basic\s+([A-Za-z0-9+/]+=*)",
        1,
        &[],
    ),
    (
        "github_token",
        r"\b((?:gh[pousr]_[A-Za-z0-9]{36,255})|(?:github_pat_[A-Za-z0-9_]{22,255}))",
        1,
        &[],
    ),
    ("gitlab_token", r"\b(glpat-[A-Za-z0-9\-_]{20,})", 1, &[]),
    ("slack_token", r"\b(xox[abposr]-[A-Za-z0-9\-]{10,})", 1, &[]),
    (
        "stripe_key",
        r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})",
        1,
        &[],
    ),
    ("google_api_key", r"\b(AIza[0-9A-Za-z\-_]{35})", 1, &[]),
    (
        "jwt",
        r"\b(eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
        1,
        &[],
    ),
    (
        "password",
        r#"(?i)(?:^|[\s"'])--?(?:password|passwd|pass|pwd)(?:=|\s+)("[^"]*"|'[^']*'|\S+)"#,
        1,
        &[],
    ),
    (
        "password",
        r"(?:^|\s)-p([^\s\-][^\s]*)",
        1,
        &["mysql", "mariadb"],
    ),
    (
        "password",
        r#"(?i)[A-Za-z0-9_.\-]*(?:password|passwd|passphrase)[A-Za-z0-9_.\-]*["']?\s*[=:]\s*("[^"]*"|'[^']*'|[^\s&;,"']+)"#,
        1,
        &[],
    ),
    (
        "password",
        r#"(?:^|[\s&;?,"'])(?:pwd|PWD_SECRET|db_pwd|DB_PWD)\s*=\s*("[^"]*"|'[^']*'|[^\s&;,"']+)"#,
        1,
        &[],
    ),
    (
        "secret",
        r#"(?i)[A-Za-z0-9_.\-]*(?:secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|client[_\-]?secret)[A-Za-z0-9_.\-]*["']?\s*[=:]\s*("[^"]*"|'[^']*'|[^\s&;,"']+)"#,
        1,
        &[],
    ),
];

/// The compiled built-in patterns.
static BUILTIN_PATTERNS: std::sync::LazyLock<Vec<Pattern>> = std::sync::LazyLock::new(|| {
    BUILTIN
        .iter()
        .filter_map(|(kind, source, group, only_with)| {
            // The built-in patterns are constants covered by tests; a failure here is a
            // programming error, reported and skipped rather than a panic.
            match Regex::new(source) {
                Ok(regex) => Some(Pattern {
                    kind,
                    regex,
                    group: *group,
                    only_with,
                }),
                Err(error) => {
                    tracing::error!(kind, %error, "Built-in redaction pattern does not compile.");
                    None
                }
            }
        })
        .collect()
});

/// Removes secrets from texts and alerts.
#[derive(Debug, Clone)]
pub struct Redactor {
    patterns: Vec<Pattern>,
}

/// Two redactors are equal when they apply the same patterns (by source) in the same order.
impl PartialEq for Redactor {
    fn eq(&self, other: &Redactor) -> bool {
        self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.kind == b.kind && a.regex.as_str() == b.regex.as_str())
    }
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor::builtin()
    }
}

impl Redactor {
    /// The built-in patterns only (compiled once per process).
    pub fn builtin() -> Redactor {
        Redactor {
            patterns: BUILTIN_PATTERNS.clone(),
        }
    }

    /// The built-in patterns plus `extra` regular expressions (the `redact_patterns` setting).
    /// In an extra pattern, the group named `secret`, else group 1, else the whole match is
    /// the secret; it is reported as `[REDACTED:custom]`.
    pub(crate) fn with_extra(extra: &[String]) -> Result<Redactor, RedactError> {
        let mut redactor = Redactor::builtin();
        for source in extra {
            let regex = Regex::new(source).map_err(|error| RedactError {
                pattern: source.clone(),
                source: Box::new(error),
            })?;
            let group = regex
                .capture_names()
                .position(|name| name == Some("secret"))
                .unwrap_or(if regex.captures_len() > 1 { 1 } else { 0 });
            redactor.patterns.push(Pattern {
                kind: "custom",
                regex,
                group,
                only_with: &[],
            });
        }
        Ok(redactor)
    }

    /// The sources of the patterns added to the built-in ones (the `redact_patterns` setting).
    #[cfg(test)]
    pub(crate) fn extra_sources(&self) -> Vec<&str> {
        self.patterns
            .iter()
            .filter(|p| p.kind == "custom")
            .map(|p| p.regex.as_str())
            .collect()
    }

    /// Redacts one text; returns the result and how many secrets were replaced.
    pub fn redact<'t>(&self, text: &'t str) -> (Cow<'t, str>, usize) {
        let mut current: Cow<'t, str> = Cow::Borrowed(text);
        let mut total = 0;
        for pattern in &self.patterns {
            if !pattern.only_with.is_empty()
                && !pattern.only_with.iter().any(|word| {
                    current
                        .as_bytes()
                        .windows(word.len())
                        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
                })
            {
                continue;
            }
            if !pattern.regex.is_match(&current) {
                continue;
            }
            let mut count = 0;
            let replaced = pattern
                .regex
                .replace_all(&current, |caps: &Captures<'_>| {
                    replace_group(caps, pattern.group, pattern.kind, &mut count)
                })
                .into_owned();
            if count > 0 {
                total += count;
                current = Cow::Owned(replaced);
            }
        }
        (current, total)
    }

    /// Redacts a string in place; returns how many secrets were replaced.
    pub(crate) fn redact_in_place(&self, text: &mut String) -> usize {
        let (redacted, count) = self.redact(text);
        if count > 0 {
            *text = redacted.into_owned();
        }
        count
    }

    /// Redacts every string of a JSON value in place (object keys are kept).
    pub(crate) fn redact_json(&self, value: &mut serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(text) => self.redact_in_place(text),
            serde_json::Value::Array(items) => items.iter_mut().map(|v| self.redact_json(v)).sum(),
            serde_json::Value::Object(map) => map.values_mut().map(|v| self.redact_json(v)).sum(),
            _ => 0,
        }
    }

    /// Redacts an alert's `output`, every string in `output_fields` and in the aggregation
    /// samples, and adds the number of replacements to `tasksentry.redactions`.
    pub(crate) fn redact_alert(&self, alert: &mut Alert) -> usize {
        let mut count = self.redact_in_place(&mut alert.output);
        for value in alert.output_fields.values_mut() {
            count += self.redact_json(value);
        }
        for values in alert.tasksentry.samples.values_mut() {
            for value in values.iter_mut() {
                count += self.redact_json(value);
            }
        }
        alert.tasksentry.redactions += count as u64;
        count
    }
}

/// The replacement for one match: the match with its secret group replaced by the mark. A
/// secret that is already a mark (or missing) is left alone and not counted.
fn replace_group(caps: &Captures<'_>, group: usize, kind: &str, count: &mut usize) -> String {
    let whole = caps.get(0).map_or("", |m| m.as_str());
    let Some(secret) = caps.get(group) else {
        return whole.to_owned();
    };
    let value = secret.as_str();
    let inner = value.trim_matches(|c| c == '"' || c == '\'');
    if inner.is_empty() || inner.starts_with(MARK_PREFIX) {
        return whole.to_owned();
    }
    *count += 1;
    let start = caps.get(0).map_or(0, |m| m.start());
    let (before, after) = (
        &whole[..secret.start() - start],
        &whole[secret.end() - start..],
    );
    // Quotes around a value stay, so that a quoted command line still reads as one.
    let (open, close) = match (value.chars().next(), value.chars().last()) {
        (Some(q @ ('"' | '\'')), Some(c)) if c == q && value.len() >= 2 => {
            (q.to_string(), q.to_string())
        }
        _ => (String::new(), String::new()),
    };
    format!("{before}{open}{MARK_PREFIX}{kind}]{close}{after}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> (String, usize) {
        let (out, n) = Redactor::builtin().redact(text);
        (out.into_owned(), n)
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        assert_eq!(Redactor::builtin().patterns.len(), BUILTIN.len());
    }

    #[test]
    fn aws_keys_are_removed() {
        let (out, n) = redacted(
            "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
        assert!(out.contains("[REDACTED:aws_access_key_id]"), "{out}");
        assert!(
            out.contains("aws_secret_access_key=[REDACTED:aws_secret_key]"),
            "{out}"
        );
        assert_eq!(n, 2);
        let (out, _) =
            redacted("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY sh");
        assert_eq!(out, "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key] sh");
        let (out, _) = redacted("tool --secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY --x");
        assert_eq!(out, "tool --secret [REDACTED:aws_secret_key] --x");
    }

    #[test]
    fn passwords_in_flag_and_variable_forms_are_removed() {
        for (input, expected) in [
            (
                "app --password=hunter2 -v",
                "app --password=[REDACTED:password] -v",
            ),
            (
                "app --password hunter2 -v",
                "app --password [REDACTED:password] -v",
            ),
            (
                "mysql -uroot -phunter2 db",
                "mysql -uroot -p[REDACTED:password] db",
            ),
            (
                "env PASSWORD=hunter2 app",
                "env PASSWORD=[REDACTED:password] app",
            ),
            (
                "DB_PASSWORD='hunter 2' app",
                "DB_PASSWORD='[REDACTED:password]' app",
            ),
            ("x passwd=hunter2", "x passwd=[REDACTED:password]"),
            (
                "curl 'h/?user=a&pwd=hunter2'",
                "curl 'h/?user=a&pwd=[REDACTED:password]'",
            ),
        ] {
            assert_eq!(redacted(input).0, expected, "input: {input}");
        }
    }

    #[test]
    fn tokens_keys_and_url_credentials_are_removed() {
        let (out, n) = redacted("curl -H 'Authorization: Bearer abc.def-123' https://x");
        assert_eq!(
            out,
            "curl -H 'Authorization: Bearer [REDACTED:bearer_token]' https://x"
        );
        assert_eq!(n, 1);
        let (out, _) = redacted("git clone https://bob:s3cr3t@git.example.com/r.git");
        assert_eq!(
            out,
            "git clone https://bob:[REDACTED:url_credentials]@git.example.com/r.git"
        );
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----";
        let (out, _) = redacted(&format!("echo '{key}' > k"));
        assert_eq!(out, "echo '[REDACTED:private_key]' > k");
        let (out, _) = redacted("gh auth ghp_0123456789abcdefghijABCDEFGHIJ012345");
        assert_eq!(out, "gh auth [REDACTED:github_token]");
        let (out, _) = redacted("SLACK=xoxb-1234567890-abcdef");
        assert!(out.contains("[REDACTED:slack_token]"), "{out}");
    }

    #[test]
    fn ordinary_command_lines_are_unchanged() {
        for text in [
            "ls -pl /tmp",
            "nginx -g daemon off;",
            "python3 -m http.server 8080",
            "PWD=/srv/app sh -c ls",
            "sleep 1.5",
            "curl https://example.com/path?x=1",
            "git clone https://git.example.com/r.git",
        ] {
            let (out, n) = Redactor::builtin().redact(text);
            assert!(matches!(out, Cow::Borrowed(_)), "{text}");
            assert_eq!((out.as_ref(), n), (text, 0));
        }
    }

    #[test]
    fn extra_patterns_redact_their_group() {
        let r = Redactor::with_extra(&[
            r"ACME-(?P<secret>[0-9]{6})".to_owned(),
            r"zz[0-9]+".to_owned(),
        ])
        .expect("valid");
        let (out, n) = r.redact("code ACME-123456 and zz99");
        assert_eq!(out, "code ACME-[REDACTED:custom] and [REDACTED:custom]");
        assert_eq!(n, 2);
        let error = Redactor::with_extra(&["(".to_owned()]).expect_err("bad regex");
        assert!(error.to_string().contains("`(`"), "{error}");
    }

    #[test]
    fn redaction_is_idempotent() {
        let (once, _) = redacted("app --password=hunter2 Bearer xyz");
        let (twice, n) = redacted(&once);
        assert_eq!(once, twice);
        assert_eq!(n, 0);
    }
}
