//! `/proc/<pid>/cmdline` and `/proc/<pid>/environ`: NUL-separated, workload-controlled bytes.

/// The default allowlist of environment variable names kept in `Process::env`.
pub(crate) const DEFAULT_ENV_ALLOWLIST: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GLIBC_TUNABLES",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "NO_PROXY",
    "HOME",
    "PATH",
    "USER",
    "SHELL",
    "PWD",
    "AWS_EXECUTION_ENV",
    "ECS_CONTAINER_METADATA_URI_V4",
];

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    /// `argv[0]`, when the command line is not empty.
    pub argv0: Option<String>,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The command line was longer than the cap and was cut.
    pub truncated: bool,
}

/// Parses NUL-separated `/proc/<pid>/cmdline` bytes; `truncated` says the read was capped.
/// Invalid UTF-8 becomes U+FFFD.
pub fn parse_cmdline(bytes: &[u8], truncated: bool) -> Cmdline {
    if bytes.is_empty() {
        return Cmdline {
            truncated,
            ..Cmdline::default()
        };
    }
    let body = match bytes.last() {
        Some(0) => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    let mut parts = body
        .split(|&b| b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned());
    let argv0 = parts.next();
    Cmdline {
        argv0,
        args: parts.collect(),
        truncated,
    }
}

/// Keeps the allowlisted `NAME=value` pairs of NUL-separated `environ` bytes, in order.
pub fn parse_environ(bytes: &[u8], allowlist: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in bytes.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = &entry[..eq];
        if allowlist.iter().any(|allowed| allowed.as_bytes() == key) {
            out.push((
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(&entry[eq + 1..]).into_owned(),
            ));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::fixture;

    #[test]
    fn cmdline_with_newlines_and_invalid_utf8() {
        let cmdline = parse_cmdline(&fixture("hostile", "cmdline"), false);
        assert_eq!(
            cmdline.argv0.as_deref(),
            Some("/root/.pyenv/versions/3.11.7/bin/python3")
        );
        assert_eq!(
            cmdline.args,
            vec![
                "/tmp/hostile.py",
                "line1\nline2",
                "bad\u{fffd}\u{fffd}bytes"
            ]
        );
        assert!(!cmdline.truncated);
    }

    #[test]
    fn cmdline_edge_cases() {
        assert_eq!(parse_cmdline(b"", false), Cmdline::default());
        // Empty arguments are kept; only the final terminator is dropped.
        let c = parse_cmdline(b"sh\0\0-c\0", false);
        assert_eq!(c.argv0.as_deref(), Some("sh"));
        assert_eq!(c.args, vec!["", "-c"]);
        // A process that rewrote its argv without NULs (setproctitle style).
        let c = parse_cmdline(b"nginx: worker process", false);
        assert_eq!(c.argv0.as_deref(), Some("nginx: worker process"));
        assert!(c.args.is_empty());
    }

    #[test]
    fn environ_keeps_only_allowlisted_keys() {
        let allow: Vec<String> = DEFAULT_ENV_ALLOWLIST
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = parse_environ(&fixture("hostile", "environ"), &allow);
        assert_eq!(
            env,
            vec![
                (
                    "PATH".to_string(),
                    "/usr/local/bin:/usr/bin:/bin".to_string()
                ),
                ("HOME".to_string(), "/root".to_string()),
                ("LD_PRELOAD".to_string(), "/tmp/evil.so".to_string()),
                (
                    "AWS_EXECUTION_ENV".to_string(),
                    "AWS_ECS_FARGATE".to_string()
                ),
            ]
        );
        let custom = parse_environ(b"A=1\0EMPTY=\0B=2", &["EMPTY".to_string()]);
        assert_eq!(custom, vec![("EMPTY".to_string(), String::new())]);
    }
}
