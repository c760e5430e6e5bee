//! A container's `/etc/passwd` and `/etc/group` (read through its root by
//! `collect::shared::users`).

use std::collections::HashMap;

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// Parses `/etc/passwd` text into uid -> entry. The first entry for a uid wins, as in glibc.
pub(crate) fn parse_passwd(text: &str) -> HashMap<u32, PasswdEntry> {
    let mut out = HashMap::new();
    for (uid, fields) in entries(text, 7) {
        out.entry(uid).or_insert_with(|| PasswdEntry {
            name: fields[0].to_string(),
            home: fields[5].to_string(),
            shell: fields[6].to_string(),
        });
    }
    out
}

/// Parses `/etc/group` text into gid -> name. The first entry for a gid wins.
pub(crate) fn parse_group(text: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for (id, fields) in entries(text, 3) {
        out.entry(id).or_insert_with(|| fields[0].to_string());
    }
    out
}

/// The lines of a colon-separated database with at least `fields` fields, a name and a
/// numeric id in the third field; comments and malformed lines are skipped.
fn entries(text: &str, fields: usize) -> impl Iterator<Item = (u32, Vec<&str>)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(move |line| {
            let parts: Vec<&str> = line.split(':').collect();
            if parts.len() < fields || parts[0].is_empty() {
                return None;
            }
            let id = parts[2].parse::<u32>().ok()?;
            Some((id, parts))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        broken line\n\
        app:x:10001:10001::/home/app:/bin/sh\n\
        dup:x:10001:10001::/nope:/bin/false\n\
        bad:x:notanumber:1::/:/bin/sh\n";
    pub(crate) const GROUP: &str = "root:x:0:\nadm:x:4:syslog,alice\napp:x:10001:\n:x:5:\n";

    #[test]
    fn parses_passwd_and_group() {
        let passwd = parse_passwd(PASSWD);
        assert_eq!(passwd.len(), 3);
        assert_eq!(passwd[&0].name, "root");
        assert_eq!(passwd[&0].home, "/root");
        assert_eq!(passwd[&0].shell, "/bin/bash");
        assert_eq!(passwd[&10001].name, "app", "first entry wins");
        let group = parse_group(GROUP);
        assert_eq!(group[&4], "adm");
        assert_eq!(group[&10001], "app");
        assert!(!group.contains_key(&5));
    }
}
