//! npm packages: `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`,
//! at any depth (nested `node_modules` are separate installs and reported each).

use super::{Component, Ecosystem, Inventory, Root, purl};

/// `package.json` of a package directory inside `node_modules`.
pub(crate) fn is_manifest(dir: &str, name: &str) -> bool {
    if name != "package.json" {
        return false;
    }
    let mut parts = dir.rsplit('/');
    let _package = parts.next();
    match parts.next() {
        Some("node_modules") => true,
        Some(scope) if scope.starts_with('@') => parts.next() == Some("node_modules"),
        _ => false,
    }
}

/// Reads one manifest (`path` inside the root).
pub(crate) fn read(root: &Root, path: &str, inv: &mut Inventory) {
    let bytes = match root.read_walked(path, root.limits().max_file_bytes) {
        Ok(bytes) => bytes,
        Err(error) => {
            inv.note(error.to_string());
            return;
        }
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        inv.note(format!("{path}: not JSON"));
        return;
    };
    let (Some(full), Some(version)) = (
        json.get("name").and_then(|v| v.as_str()),
        json.get("version").and_then(|v| v.as_str()),
    ) else {
        // Test fixtures and stubs inside packages have no name or version.
        return;
    };
    let (group, name) = match full.split_once('/') {
        Some((scope, name)) if scope.starts_with('@') => (Some(scope.to_owned()), name),
        _ => (None, full),
    };
    inv.components.push(Component {
        ecosystem: Ecosystem::Npm,
        purl: purl(Ecosystem::Npm, group.as_deref(), name, version, &[]),
        group,
        name: name.to_owned(),
        version: version.to_owned(),
        location: path.to_owned(),
        source: None,
        arch: None,
        files: Vec::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_those_of_installed_packages() {
        assert!(is_manifest("/app/node_modules/express", "package.json"));
        assert!(is_manifest("/app/node_modules/@babel/core", "package.json"));
        assert!(is_manifest(
            "/app/node_modules/a/node_modules/b",
            "package.json"
        ));
        assert!(!is_manifest("/app", "package.json"));
        assert!(!is_manifest("/app/node_modules/a/lib", "package.json"));
        assert!(!is_manifest("/app/node_modules/express", "index.js"));
    }
}
