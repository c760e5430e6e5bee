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
        r#"(?:^|[\s&;?,"'])(?:pwd|PWD_SECRET|db_pwd|DB_PWD|MYSQL_PWD)\s*=\s*("[^"]*"|'[^']*'|[^\s&;,"']+)"#,
        1,
        &[],
    ),
    (
        "secret",
        r#"(?i)[A-Za-z0-9_.\-]*(?:secret|token|api[_\-]?key|access[_\-]?key|account[_\-]?key|sharedaccesskey|private[_\-]?key|client[_\-]?secret)[A-Za-z0-9_.\-]*["']?\s*[=:]\s*("[^"]*"|'[^']*'|[^\s&;,"']+)"#,
        1,
        &[],
    ),
    // Tokens with a recognisable prefix: PyPI, npm, DigitalOcean, HashiCorp Vault.
    ("pypi_token", r"\b(pypi-[A-Za-z0-9_\-]{50,})", 1, &[]),
    ("npm_token", r"\b(npm_[A-Za-z0-9]{36})", 1, &[]),
    ("digitalocean_token", r"\b(do[opr]_v1_[a-f0-9]{64})", 1, &[]),
    ("vault_token", r"\b(hv[sbr]\.[A-Za-z0-9_\-]{20,})", 1, &[]),
    // A token given as a URL's user name (`https://<token>@github.com/...`).
    (
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.\-]*://([A-Za-z0-9_\-]{20,})@",
        1,
        &[],
    ),
    // Azure shared access signatures (`...?sv=...&sig=<signature>`).
    ("sas_signature", r#"[?&]sig=([^&\s"']+)"#, 1, &[]),
    // Any other authorization header scheme (`Authorization: Token abc`, `...: Digest ...`).
    (
        "authorization",
        r#"(?i)\bauthorization\s*[:=]\s*(?:[A-Za-z\-]+\s+)?([^\s"',]+)"#,
        1,
        &[],
    ),
    // `user:password` after curl's and HTTPie's user flags (`-u`, `--user`, `-U`,
    // `--proxy-user`, `-a`, `--auth`); the user name stays.
    (
        "password",
        r#"(?:^|\s)(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?["']?[^\s:"']*:([^/\s"'][^\s"']*)"#,
        1,
        &["curl", "http ", "https ", "xh "],
    ),
    // `-p <password>` / `-p<password>` of sshpass.
    (
        "password",
        r#"(?:^|\s)-p\s*("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &["sshpass"],
    ),
    // redis-cli's `-a <password>` / `--pass <password>`.
    (
        "password",
        r#"(?:^|\s)(?:-a|--pass)(?:\s+|=)("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &["redis-cli", "valkey-cli", "keydb-cli"],
    ),
    // `-p <password>` of registry and cloud logins (`docker login -u u -p p`, `helm registry
    // login`, `az login --service-principal -u id -p secret`).
    (
        "password",
        r#"\blogin\b[^\n]*?\s-p(?:\s+|=)("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &[],
    ),
    // `-p <password>` of MongoDB's tools and twine, `-P <password>` of SQL Server's and of
    // zip/unzip, `-w <password>` of the OpenLDAP clients.
    (
        "password",
        r#"(?:^|\s)-p\s+("[^"]*"|'[^']*'|[^\s"'\-][^\s"']*)"#,
        1,
        &["mongo", "twine"],
    ),
    (
        "password",
        r#"(?:^|\s)-P\s*("[^"]*"|'[^']*'|[^\s"'\-][^\s"']*)"#,
        1,
        &["sqlcmd", "bcp ", "osql", "zip"],
    ),
    (
        "password",
        r#"(?:^|\s)-w\s+("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &[
            "ldapsearch",
            "ldapadd",
            "ldapmodify",
            "ldapdelete",
            "ldapwhoami",
            "ldappasswd",
        ],
    ),
    // 7-Zip's `-p<password>`, ssh-keygen's `-N`/`-P <passphrase>`.
    ("password", r#"(?:^|\s)-p([^\s"']+)"#, 1, &["7z"]),
    (
        "password",
        r#"(?:^|\s)-[NP]\s+("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &["ssh-keygen"],
    ),
    // `user%password` of Samba's clients, `user,password` of lftp.
    (
        "password",
        r#"(?:^|\s)(?:-U|--user)(?:\s+|=)["']?[^\s%"']+%([^\s"']+)"#,
        1,
        &["smbclient", "rpcclient", "smbmap", "smbcacls"],
    ),
    (
        "password",
        r#"(?:^|\s)-u\s+["']?[^\s,"']+,([^\s"']+)"#,
        1,
        &["lftp"],
    ),
    // htpasswd's batch mode: `htpasswd -b[c] FILE USER PASSWORD`.
    (
        "password",
        r#"(?:^|\s)-[a-zA-Z]*b[a-zA-Z]*\s+\S+\s+\S+\s+("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &["htpasswd"],
    ),
    // OpenSSL's pass phrase arguments (`-passin pass:x`, `-k x`).
    ("password", r#"\bpass:("[^"]*"|'[^']*'|[^\s"']+)"#, 1, &[]),
    (
        "password",
        r#"(?:^|\s)-k\s+("[^"]*"|'[^']*'|[^\s"'\-][^\s"']*)"#,
        1,
        &["openssl"],
    ),
    // DigitalOcean's `doctl auth init -t <token>`, Vault's `vault login <token>`.
    (
        "token",
        r#"(?:^|\s)(?:-t|--access-token)(?:\s+|=)("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &["doctl"],
    ),
    (
        "token",
        r#"\bvault\s+login\s+(?:-\S+\s+)*([^\s=\-"'][^\s="']*)(?:\s|$)"#,
        1,
        &[],
    ),
    // MinIO's `mc alias set NAME URL ACCESS_KEY SECRET_KEY`.
    (
        "secret",
        r"\bmc\s+(?:alias\s+set|config\s+host\s+add)\s+\S+\s+\S+\s+\S+\s+(\S+)",
        1,
        &[],
    ),
    // `... config set <name with secret/token/password/auth/key> <value>` (aws, npm, yarn,
    // git, pip, gcloud).
    (
        "secret",
        r#"\bconfig(?:ure)?\s+set\s+(?:--\S+\s+)*\S*(?i:secret|token|password|passwd|auth|key)\S*\s+("[^"]*"|'[^']*'|[^\s"']+)"#,
        1,
        &[],
    ),
    // Any flag whose name ends in a secret's name, with its value as the next argument or
    // after `=` (`--api-key K`, `--client-secret S`, `-token T`, `--os-password P`). A value
    // that starts with `-` is the next flag (`--no-password -h db`), not a secret.
    (
        "secret",
        r#"(?i)(?:^|[\s"'])--?[a-z0-9_.\-]*(?:password|passwd|passphrase|pass|pwd|token|secret|api-?key|apikey|access-?key|account-?key|auth-?key|oauth2-bearer|private-?key)(?:=|\s+)("[^"]*"|'[^']*'|[^\s"'\-][^\s"']*)"#,
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

    /// The kind of the first secret in `text` (`aws_access_key_id`, `password`, ...), as
    /// [`Redactor::redact`] would name it, without building the redacted text. `tasksentry
    /// lint` uses it on task-definition values, so that a lint and the monitor agree on what a
    /// credential looks like.
    pub fn find_secret(&self, text: &str) -> Option<&'static str> {
        self.patterns.iter().find_map(|pattern| {
            if !pattern.only_with.is_empty()
                && !pattern.only_with.iter().any(|word| {
                    text.as_bytes()
                        .windows(word.len())
                        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
                })
            {
                return None;
            }
            pattern.regex.captures_iter(text).find_map(|caps| {
                let secret = caps.get(pattern.group)?.as_str();
                let inner = secret.trim_matches(|c| c == '"' || c == '\'');
                (!inner.is_empty() && !inner.starts_with(MARK_PREFIX)).then_some(pattern.kind)
            })
        })
    }

    /// [`Redactor::find_secret`] on an argument vector read as the command line it is (each
    /// argument alone, then all of them joined as a shell would read them, so that a flag and
    /// its value in two arguments are seen together). Returns the index of the argument that
    /// holds the secret alone, if one does, and the kind.
    pub fn find_secret_in_argv(&self, args: &[String]) -> Option<(Option<usize>, &'static str)> {
        if let Some((index, kind)) = args
            .iter()
            .enumerate()
            .find_map(|(i, arg)| self.find_secret(arg).map(|kind| (i, kind)))
        {
            return Some((Some(index), kind));
        }
        let joined: Vec<_> = args.iter().map(|arg| quote_word(arg)).collect();
        self.find_secret(&joined.join(" ")).map(|kind| (None, kind))
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

    /// Redacts an argument vector as the command line it is: a flag and its value are two
    /// arguments (`-p`, `secret`), and a value may hold spaces (`'s3cret pass'`), so the
    /// arguments are joined as a shell would read them, redacted, and split again. `None`:
    /// nothing to redact.
    pub(crate) fn redact_argv(&self, argv0: &str, args: &[String]) -> Option<(Vec<String>, usize)> {
        // Each argument alone first (a script after `sh -c` is a command line of its own), then
        // the arguments together (a flag and its value).
        let mut count = 0;
        let mut joined = quote_word(argv0).into_owned();
        for arg in args {
            let (arg, n) = self.redact(arg);
            count += n;
            joined.push(' ');
            joined.push_str(&quote_word(&arg));
        }
        let (redacted, n) = self.redact(&joined);
        count += n;
        if count == 0 {
            return None;
        }
        let mut words = split_words(&redacted);
        if words.is_empty() {
            return Some((Vec::new(), count));
        }
        words.remove(0);
        Some((words, count))
    }

    /// A copy of `event` whose processes' arguments (the process's and its ancestors') and
    /// environment are redacted as command lines; `None` when there is nothing to redact. Rules
    /// are evaluated on the event as observed; what an alert or a recording shows of it comes
    /// from this copy.
    pub(crate) fn redact_event(&self, event: &crate::event::Event) -> Option<crate::event::Event> {
        let proc = event.proc.as_deref()?;
        let own = self.redact_argv(proc.exe.as_deref().unwrap_or(&proc.name), &proc.args);
        let ancestors: Vec<_> = proc
            .ancestors
            .iter()
            .map(|a| self.redact_argv(a.exe.as_deref().unwrap_or(&a.name), &a.args))
            .collect();
        let env: Vec<_> = proc
            .env
            .iter()
            .map(|(k, v)| {
                let assignment = format!("{k}={v}");
                let (text, n) = self.redact(&assignment);
                (n > 0).then(|| {
                    let value = text.split_once('=').map_or(text.as_ref(), |(_, v)| v);
                    value.to_owned()
                })
            })
            .collect();
        if own.is_none() && ancestors.iter().all(Option::is_none) && env.iter().all(Option::is_none)
        {
            return None;
        }
        let mut copy = event.clone();
        if let Some(p) = copy.proc.as_deref_mut() {
            if let Some((args, _)) = own {
                p.args = args;
            }
            for (a, redacted) in p.ancestors.iter_mut().zip(ancestors) {
                if let Some((args, _)) = redacted {
                    a.args = args;
                }
            }
            for ((_, v), redacted) in p.env.iter_mut().zip(env) {
                if let Some(value) = redacted {
                    *v = value;
                }
            }
        }
        Some(copy)
    }

    /// An event's JSON line with secrets redacted: what `--emit events` prints and `--record`
    /// writes, so that a recording holds no more secrets than an alert. Arguments and
    /// environment are redacted as command lines ([`Redactor::redact_event`]), then every
    /// other string; a line with nothing to redact is the event's own line.
    pub(crate) fn event_line(&self, event: &crate::event::Event) -> String {
        let copy = self.redact_event(event);
        let line = copy.as_ref().unwrap_or(event).to_json_line();
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&line) else {
            return line;
        };
        if self.redact_json(&mut value) == 0 {
            return line;
        }
        value.to_string()
    }

    /// Redacts an alert's `output`, every string in `output_fields` and in the aggregation
    /// samples, and sets `tasksentry.redactions` to the number of places redacted.
    ///
    /// The count is the number of marks the alert carries once redacted: the alert chain
    /// renders alerts from an event whose command lines were already redacted as argument
    /// vectors ([`Redactor::redact_event`]), so some marks are there before this pass.
    pub(crate) fn redact_alert(&self, alert: &mut Alert) -> usize {
        self.redact_in_place(&mut alert.output);
        for value in alert.output_fields.values_mut() {
            self.redact_json(value);
        }
        for values in alert.tasksentry.samples.values_mut() {
            for value in values.iter_mut() {
                self.redact_json(value);
            }
        }
        let mut count = alert.output.matches(MARK_PREFIX).count();
        count += alert.output_fields.values().map(count_marks).sum::<usize>();
        count += alert
            .tasksentry
            .samples
            .values()
            .flatten()
            .map(count_marks)
            .sum::<usize>();
        alert.tasksentry.redactions = count as u64;
        count
    }
}

/// The redaction marks in every string of a JSON value.
fn count_marks(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(text) => text.matches(MARK_PREFIX).count(),
        serde_json::Value::Array(items) => items.iter().map(count_marks).sum(),
        serde_json::Value::Object(map) => map.values().map(count_marks).sum(),
        _ => 0,
    }
}

/// A word as [`split_words`] reads it back: single-quoted when it is empty or holds blanks or
/// quotes, double-quoted when it holds a `'`, with backslashes before blanks, quotes and
/// backslashes when it holds both kinds of quote.
fn quote_word(word: &str) -> Cow<'_, str> {
    let special = |c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '\\';
    if !word.is_empty() && !word.contains(special) {
        Cow::Borrowed(word)
    } else if !word.contains('\'') {
        Cow::Owned(format!("'{word}'"))
    } else if !word.contains('"') {
        Cow::Owned(format!("\"{word}\""))
    } else {
        let mut escaped = String::with_capacity(word.len() + 8);
        for c in word.chars() {
            if special(c) {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        Cow::Owned(escaped)
    }
}

/// Splits a command line into words at blanks outside quotes, as a shell does without
/// expansions: quotes are removed, and a backslash outside quotes takes the next character
/// as it is.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\\' => {
                escaped = true;
                in_word = true;
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
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

    #[test]
    fn find_secret_names_the_kind_redact_would_replace() {
        let redactor = Redactor::builtin();
        let cases = [
            (
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                Some("aws_access_key_id"),
            ),
            ("DB_PASSWORD=hunter2", Some("password")),
            (
                "https://user:s3cret@db.example.com/x",
                Some("url_credentials"),
            ),
            ("PYTHONUNBUFFERED=1", None),
            ("DB_PASSWORD=[REDACTED:password]", None),
            ("mysql -ph", Some("password")),
            ("app -ph", None),
        ];
        for (text, kind) in cases {
            assert_eq!(redactor.find_secret(text), kind, "{text}");
            assert_eq!(redactor.redact(text).1 > 0, kind.is_some(), "{text}");
        }
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            redactor.find_secret_in_argv(&argv(&["app", "--password", "hunter2"])),
            Some((None, "password"))
        );
        assert_eq!(
            redactor.find_secret_in_argv(&argv(&["app", "--token=abcdef123"])),
            Some((Some(1), "secret"))
        );
        assert_eq!(
            redactor.find_secret_in_argv(&argv(&["python", "-m", "app"])),
            None
        );
    }

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

    /// The credential-bearing command lines of `tests/data/redaction/`, as documented by their
    /// tools: (source, secrets, command line).
    fn credential_command_lines() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
        include_str!("../../tests/data/redaction/credential_command_lines.tsv")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let mut parts = line.splitn(3, '\t');
                let source = parts.next().expect("a source column");
                let secrets = parts
                    .next()
                    .expect("a secrets column")
                    .split(" | ")
                    .collect();
                let command = parts.next().expect("three tab-separated columns");
                (source, secrets, command)
            })
            .collect()
    }

    #[test]
    fn no_byte_of_a_documented_credential_survives() {
        let lines = credential_command_lines();
        assert!(lines.len() >= 40, "{} command lines", lines.len());
        let mut leaks = Vec::new();
        for (source, secrets, command) in lines {
            let (out, n) = redacted(command);
            for secret in secrets {
                if out.contains(secret) || n == 0 {
                    leaks.push(format!("{source}: {out}"));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "{} leaks:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }

    #[test]
    fn flags_that_look_like_credential_flags_but_are_not_keep_their_values() {
        for text in [
            "docker run -p 8080:80 -u 1000:1000 nginx:1.27",
            "ssh -p 2222 deploy@10.0.0.7",
            "sudo -u app:app id",
            "psql --no-password -h db.internal -U app",
            "docker login --password-stdin registry.example.com",
            "redis-server --port 6380",
            "gcloud auth activate-service-account --key-file=/secrets/sa.json",
            "tar -czf backup.tgz /srv/data",
            "python3 manage.py runserver 0.0.0.0:8000",
        ] {
            assert_eq!(redacted(text), (text.to_owned(), 0), "{text}");
        }
    }

    #[test]
    fn an_argument_vector_is_redacted_as_the_command_line_it_is() {
        let r = Redactor::builtin();
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // The flag and its value are two arguments; the value holds a blank.
        let (out, n) = r
            .redact_argv("sshpass", &args(&["-p", "s3cret pass", "ssh", "host"]))
            .expect("redacted");
        assert_eq!(out, args(&["-p", "[REDACTED:password]", "ssh", "host"]));
        assert_eq!(n, 1);
        let (out, _) = r
            .redact_argv("/usr/bin/curl", &args(&["-u", "alice:pw", "https://x"]))
            .expect("redacted");
        assert_eq!(out, args(&["-u", "alice:[REDACTED:password]", "https://x"]));
        // Nothing to redact: nothing copied; quotes and blanks of other arguments survive.
        assert_eq!(r.redact_argv("sh", &args(&["-c", "echo 'a b'"])), None);
        let (out, _) = r
            .redact_argv(
                "app",
                &args(&["--password", "x", "--msg", "it's \"quoted\" here", ""]),
            )
            .expect("redacted");
        assert_eq!(
            out,
            args(&[
                "--password",
                "[REDACTED:password]",
                "--msg",
                "it's \"quoted\" here",
                ""
            ])
        );
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
