//! Python distributions: `NAME-VER.dist-info/METADATA` (with `RECORD`, the files it
//! installed) and `NAME-VER.egg-info/PKG-INFO` (or a single `*.egg-info` file), under a
//! `site-packages` or `dist-packages` directory.

use super::{Component, Ecosystem, Inventory, Root, purl, text};

fn in_packages_dir(dir: &str) -> bool {
    dir.rsplit('/')
        .next()
        .is_some_and(|last| last == "site-packages" || last == "dist-packages")
}

/// A `*.dist-info` or `*.egg-info` directory right inside `site-packages`/`dist-packages`.
pub(crate) fn is_metadata_dir(dir: &str, name: &str) -> bool {
    in_packages_dir(dir) && (name.ends_with(".dist-info") || name.ends_with(".egg-info"))
}

/// A single-file `*.egg-info` (distutils) right inside `site-packages`/`dist-packages`.
pub(crate) fn is_metadata_file(dir: &str, name: &str) -> bool {
    in_packages_dir(dir) && name.ends_with(".egg-info")
}

/// PEP 503 normalised name: lower case, runs of `-`, `_`, `.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `Name` and `Version` of core metadata (`METADATA`, `PKG-INFO`).
pub fn parse_metadata(metadata: &str) -> Option<(String, String)> {
    name_version(metadata)
}

/// The paths of a `RECORD`, as written (relative to the site-packages directory).
pub fn parse_record(record: &str) -> Vec<String> {
    record_paths(record)
}

/// `Name` and `Version` from the header block of core metadata (RFC 822 style).
fn name_version(metadata: &str) -> Option<(String, String)> {
    let (mut name, mut version) = (None, None);
    for line in metadata.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            match key.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(value.trim().to_owned()),
                "version" => version = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some((
        name.filter(|n| !n.is_empty())?,
        version.filter(|v| !v.is_empty())?,
    ))
}

fn component(name: String, version: String, location: &str, files: Vec<String>) -> Component {
    let normalized = normalize(&name);
    Component {
        ecosystem: Ecosystem::PyPI,
        group: None,
        purl: purl(Ecosystem::PyPI, None, &normalized, &version, &[]),
        name,
        version,
        location: location.to_owned(),
        source: None,
        arch: None,
        files,
    }
}

/// Reads a metadata directory found by the walk (`path` inside the root).
pub(crate) fn read_dir(root: &Root, path: &str, inv: &mut Inventory) {
    let cap = root.limits().max_file_bytes;
    let file = if path.ends_with(".dist-info") {
        "METADATA"
    } else {
        "PKG-INFO"
    };
    let metadata = match root.read_walked(&format!("{path}/{file}"), cap) {
        Ok(bytes) => bytes,
        Err(error) => {
            inv.note(error.to_string());
            return;
        }
    };
    let Some((name, version)) = name_version(&text(&metadata)) else {
        inv.note(format!("{path}/{file}: no Name or Version"));
        return;
    };
    let mut files = Vec::new();
    if file == "METADATA"
        && let Ok(record) = root.read_walked(&format!("{path}/RECORD"), cap)
    {
        let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        files = record_paths(&text(&record))
            .into_iter()
            .map(|file| resolve_relative(base, &file))
            .collect();
    }
    inv.components
        .push(component(name, version, &format!("{path}/{file}"), files));
}

/// Reads a single-file `*.egg-info`.
pub(crate) fn read_file(root: &Root, path: &str, inv: &mut Inventory) {
    match root.read_walked(path, root.limits().max_file_bytes) {
        Ok(bytes) => match name_version(&text(&bytes)) {
            Some((name, version)) => {
                inv.components
                    .push(component(name, version, path, Vec::new()))
            }
            None => inv.note(format!("{path}: no Name or Version")),
        },
        Err(error) => inv.note(error.to_string()),
    }
}

/// The first column of a `RECORD` (CSV: a path, quoted when it holds a comma or quote).
fn record_paths(record: &str) -> Vec<String> {
    record
        .lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = rest.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            out.push('"');
                        } else {
                            break;
                        }
                    } else {
                        out.push(c);
                    }
                }
                Some(out)
            } else {
                line.split(',').next().map(str::to_owned)
            }
        })
        .filter(|path| !path.is_empty())
        .collect()
}

/// `file` (relative to `base`, with `..` allowed, or absolute) as a normal absolute path.
fn resolve_relative(base: &str, file: &str) -> String {
    let mut parts: Vec<&str> = if file.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in file.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_per_pep_503() {
        assert_eq!(normalize("Django_REST.framework"), "django-rest-framework");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("a--b"), "a-b");
    }

    #[test]
    fn record_paths_are_resolved() {
        let record = "requests/__init__.py,sha256=x,1\n\"odd,name.py\",,\n../../../bin/normalizer,sha256=y,2\n";
        let paths: Vec<String> = record_paths(record)
            .iter()
            .map(|p| resolve_relative("/usr/lib/python3/site-packages", p))
            .collect();
        assert_eq!(
            paths,
            [
                "/usr/lib/python3/site-packages/requests/__init__.py",
                "/usr/lib/python3/site-packages/odd,name.py",
                "/usr/bin/normalizer"
            ]
        );
    }
}
