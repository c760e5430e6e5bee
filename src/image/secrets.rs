//! Credentials baked into a container root. One walk (the same bounds as the inventory: the
//! root's budget, links never followed, `/proc`, `/sys`, `/dev` skipped) reads text files up to
//! [`MAX_SCANNED_BYTES`] (a file with a NUL byte in its first 8 KiB is binary and skipped) and
//! applies the rules of [`RULES`] (`docs/images.md` lists them). A finding names the file, the
//! line, the kind and a fingerprint (SHA-256 of the value, first 16 hex digits): **never the
//! value**, nor any part of it.
//!
//! Look-alikes are refused by [`plausible`]: documentation values (`EXAMPLE`, `example`,
//! `xxxx`, `changeme`, `${VAR}`, `<token>`, `your_…`), repeated characters, and values whose
//! character entropy is too low for a generated secret.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::Root;

/// Text files bigger than this are not scanned.
pub const MAX_SCANNED_BYTES: u64 = 1 << 20;

/// One credential found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretFinding {
    /// Path inside the container.
    pub path: String,
    /// 1-based line of the value's start.
    pub line: usize,
    /// The rule's kind (`aws_credentials`, `private_key`, …).
    pub kind: &'static str,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the value: the same secret in two
    /// images has the same fingerprint; the value cannot be read back from it (a short,
    /// guessable value could be confirmed by guessing, which [`plausible`] keeps out).
    pub fingerprint: String,
}

/// Which files a rule reads (by their path inside the container).
type FileFilter = fn(&str) -> bool;

/// A rule: a kind, a regular expression whose group 1 is the secret, and whether the file's
/// name must match (`None`: any text file).
struct Rule {
    kind: &'static str,
    regex: Regex,
    file: Option<FileFilter>,
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_env_file(path: &str) -> bool {
    let name = file_name(path);
    name == ".env" || name.starts_with(".env.") || name.ends_with(".env")
}

/// The rules, in the order they are tried; a value found by one rule is not reported again by
/// a later one.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rules: [(&str, &str, Option<FileFilter>); 14] = [
        // A private key block with a body (PEM: PKCS#1, PKCS#8, EC, DSA, encrypted; OpenSSH).
        (
            "private_key",
            r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----\r?\n(?:[A-Za-z0-9+/=:,\- ]*\r?\n)*?[A-Za-z0-9+/=]{40,}[\s\S]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----)",
            None,
        ),
        // An AWS secret access key next to its name (`aws_secret_access_key = …`,
        // `AWS_SECRET_ACCESS_KEY=…`, `"SecretAccessKey": "…"`), in a file that also holds an
        // access key id: the pair is the credential.
        (
            "aws_credentials",
            r#"(?i)(?:aws_?secret_?access_?key|secret_?access_?key|aws_?secret_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
            None,
        ),
        (
            "github_token",
            r"\b((?:gh[pousr]_[A-Za-z0-9]{36})|(?:github_pat_[A-Za-z0-9_]{82}))\b",
            None,
        ),
        ("gitlab_token", r"\b(glpat-[A-Za-z0-9\-_]{20})\b", None),
        (
            "slack_token",
            r"\b(xox[abpr]-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9\-]{20,})",
            None,
        ),
        ("stripe_key", r"\b((?:sk|rk)_live_[A-Za-z0-9]{24,})", None),
        ("google_api_key", r"\b(AIza[0-9A-Za-z\-_]{35})\b", None),
        ("npm_token", r"\b(npm_[A-Za-z0-9]{36})\b", None),
        (
            "pypi_token",
            r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})",
            None,
        ),
        // `.npmrc`: `//registry/:_authToken=…`, `_auth=…`, `_password=…`.
        (
            "npmrc_auth",
            r"(?m)(?:_authToken|_auth|_password)\s*=\s*([^\s]+)\s*$",
            Some(|p| file_name(p) == ".npmrc"),
        ),
        // `.pypirc` and `.netrc`: `password = …` / `password …`.
        (
            "netrc_password",
            r"(?m)\bpassword\s*[=:]?\s+([^\s]+)",
            Some(|p| matches!(file_name(p), ".netrc" | "_netrc" | ".pypirc")),
        ),
        // `.git-credentials`, and any URL with a password: `https://user:secret@host`.
        (
            "url_credentials",
            r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:([^/\s@]+)@[A-Za-z0-9]",
            None,
        ),
        // `.docker/config.json`: `"auth": "base64(user:password)"`.
        (
            "docker_auth",
            r#""auth"\s*:\s*"([A-Za-z0-9+/]{8,}={0,2})""#,
            Some(|p| p.ends_with("/.docker/config.json")),
        ),
        // `.env` files: a variable whose name says secret, with a value.
        (
            "env_file_secret",
            r#"(?mi)^\s*(?:export\s+)?[A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)[A-Z0-9_]*\s*=\s*["']?([^\s"'#]+)"#,
            Some(is_env_file),
        ),
    ];
    rules
        .into_iter()
        .filter_map(|(kind, source, file)| match Regex::new(source) {
            Ok(regex) => Some(Rule { kind, regex, file }),
            Err(error) => {
                tracing::error!(kind, %error, "Built-in secret rule does not compile.");
                None
            }
        })
        .collect()
});

static AWS_KEY_ID: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b(?:AKIA|ASIA)[A-Z2-7]{16}\b").ok());

/// Bits of Shannon entropy per character.
fn entropy(value: &str) -> f64 {
    let mut counts = [0usize; 256];
    for byte in value.bytes() {
        counts[byte as usize] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// Whether `value` can be a real secret of `kind`, not a documentation example or a
/// placeholder.
pub fn plausible(kind: &str, value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    const PLACEHOLDERS: &[&str] = &[
        "example",
        "xxxx",
        "changeme",
        "change_me",
        "placeholder",
        "your_",
        "your-",
        "dummy",
        "redacted",
        "secret123",
        "password",
        "<",
        "${",
        "{{",
        "%(",
        "****",
        "0000",
    ];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return false;
    }
    if kind == "private_key" {
        // The body must look random, not `MIIE...` followed by dots.
        return entropy(value) > 4.5;
    }
    if kind == "docker_auth" {
        // base64 of `user:password`.
        return decode_base64(value).is_some_and(|d| d.contains(&b':') && d.len() >= 3);
    }
    let threshold = match value.len() {
        0..=7 => return false,
        8..=15 => 2.5,
        16..=31 => 3.0,
        _ => 3.5,
    };
    entropy(value) >= threshold
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The findings in one file's text (`path` inside the container).
pub fn scan_text(path: &str, text: &str) -> Vec<SecretFinding> {
    let mut out = Vec::new();
    let mut taken: Vec<std::ops::Range<usize>> = Vec::new();
    let has_key_id = AWS_KEY_ID
        .as_ref()
        .is_some_and(|r| r.find_iter(text).any(|m| plausible("aws", m.as_str())));
    for rule in RULES.iter() {
        if rule.file.is_some_and(|applies| !applies(path)) {
            continue;
        }
        if rule.kind == "aws_credentials" && !has_key_id {
            continue;
        }
        for captures in rule.regex.captures_iter(text) {
            let Some(secret) = captures.get(1) else {
                continue;
            };
            if taken
                .iter()
                .any(|r| r.start < secret.end() && secret.start() < r.end)
            {
                continue;
            }
            let value = secret.as_str();
            let checked = if rule.kind == "private_key" {
                // The base64 lines of the body.
                value
                    .lines()
                    .filter(|l| !l.starts_with("-----") && !l.contains(':'))
                    .collect::<String>()
            } else {
                value.to_owned()
            };
            if !plausible(rule.kind, &checked) {
                continue;
            }
            taken.push(secret.range());
            out.push(SecretFinding {
                path: path.to_owned(),
                line: text[..secret.start()].matches('\n').count() + 1,
                kind: rule.kind,
                fingerprint: fingerprint(value),
            });
        }
    }
    out.sort();
    out
}

/// A credential in a process's environment (a task definition's plain `environment` where
/// `secrets` belonged).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvFinding {
    /// The variable's name.
    pub variable: String,
    /// The kind, as the alert redactor names it (`crate::alert::redact::Redactor`).
    pub kind: &'static str,
    /// `sha256:` and 16 hex digits of the SHA-256 of the variable's value.
    pub fingerprint: String,
}

/// The credentials of an environment block (`/proc/PID/environ`: `NAME=value` entries separated
/// by NUL bytes): a variable is reported when the alert pipeline's redactor finds a secret in
/// `NAME=value` (so a finding here is exactly what alerts would redact) and its value is
/// [`plausible`] (not a placeholder, not too short or too regular).
pub fn scan_environ(environ: &[u8]) -> Vec<EnvFinding> {
    let redactor = crate::alert::redact::Redactor::builtin();
    let mut out: Vec<EnvFinding> = environ
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            let kind = redactor.find_secret(&entry)?;
            plausible(kind, value).then(|| EnvFinding {
                variable: name.to_owned(),
                kind,
                fingerprint: fingerprint(value),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Scans every text file of the root within its budget.
pub fn scan(root: &Root) -> Vec<SecretFinding> {
    let mut out = Vec::new();
    super::walk_files(root, |path| {
        let Ok(bytes) = root.read_walked(path, MAX_SCANNED_BYTES) else {
            return;
        };
        if bytes[..bytes.len().min(8192)].contains(&0) {
            return;
        }
        out.extend(scan_text(path, &String::from_utf8_lossy(&bytes)));
    });
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_values_are_not_secrets() {
        assert!(!plausible(
            "aws_credentials",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        ));
        assert!(!plausible(
            "github_token",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        ));
        assert!(!plausible("env_file_secret", "changeme"));
        assert!(!plausible("env_file_secret", "${DB_PASSWORD}"));
        assert!(plausible("env_file_secret", "q8Vz2LmN4pRt7XyW"));
        assert!(plausible("docker_auth", "dXNlcjpwYXNz"));
        assert!(!plausible("docker_auth", "bm9jb2xvbg=="));
    }
}
