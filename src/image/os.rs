//! OS package databases: dpkg (`var/lib/dpkg/status`, and the one-file-per-package
//! `var/lib/dpkg/status.d/` of distroless images) and apk (`lib/apk/db/installed`), and the
//! distribution from `etc/os-release`.

use super::{Component, Distro, Ecosystem, Inventory, Root, purl, text};

/// `etc/os-release` (or `usr/lib/os-release`): `ID` and `VERSION_ID`.
pub fn distro(root: &Root) -> Distro {
    let cap = root.limits().max_file_bytes;
    let Some(bytes) = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| root.read(path, cap).ok())
    else {
        return Distro::default();
    };
    let mut distro = Distro::default();
    for line in text(&bytes).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        match key.trim() {
            "ID" => distro.id = Some(value),
            "VERSION_ID" => distro.version_id = Some(value),
            _ => {}
        }
    }
    distro
}

/// The paragraphs of a Debian control file: `Key: value` fields, continuation lines (starting
/// with a space or tab) appended to the previous field, paragraphs separated by blank lines.
pub fn control_paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

fn field<'p>(paragraph: &'p [(String, String)], key: &str) -> Option<&'p str> {
    paragraph
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Distributions built on apk; any other `ID` is taken as dpkg-based.
const APK_DISTROS: &[&str] = &["alpine", "wolfi", "chainguard", "postmarketos"];

pub(crate) fn is_apk_distro(distro: &Distro) -> bool {
    distro
        .id
        .as_deref()
        .is_some_and(|id| APK_DISTROS.contains(&id))
}

fn distro_qualifier(distro: &Distro) -> Option<String> {
    match (&distro.id, &distro.version_id) {
        (Some(id), Some(version)) => Some(format!("{id}-{version}")),
        _ => None,
    }
}

/// dpkg: the status file (only packages whose status is `installed`), then every file of
/// `status.d/` (one package each, no `Status` field), with the files of each package from
/// `info/NAME.list` or `info/NAME:ARCH.list`.
pub fn dpkg(root: &Root, inv: &mut Inventory) {
    let cap = root.limits().max_file_bytes;
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    match root.read("/var/lib/dpkg/status", cap) {
        Ok(bytes) => sources.push(("/var/lib/dpkg/status".to_owned(), bytes)),
        Err(super::ReadError::Io { .. }) => {}
        Err(error) => inv.note(error.to_string()),
    }
    for (name, kind) in root.list("/var/lib/dpkg/status.d") {
        // Distroless also ships NAME.md5sums next to NAME.
        if name.ends_with(".md5sums") || kind.is_dir() {
            continue;
        }
        let path = format!("/var/lib/dpkg/status.d/{name}");
        match root.read(&path, cap) {
            Ok(bytes) => sources.push((path, bytes)),
            Err(error) => inv.note(error.to_string()),
        }
    }
    // A dpkg database in an image that says it is Alpine is named Debian's, without a release.
    let (namespace, distro) = match &inv.distro.id {
        Some(id) if !is_apk_distro(&inv.distro) => (id.clone(), distro_qualifier(&inv.distro)),
        _ => ("debian".to_owned(), None),
    };
    for (location, bytes) in sources {
        for paragraph in control_paragraphs(&text(&bytes)) {
            let (Some(name), Some(version)) =
                (field(&paragraph, "Package"), field(&paragraph, "Version"))
            else {
                continue;
            };
            if let Some(status) = field(&paragraph, "Status")
                && status.split_whitespace().nth(2) != Some("installed")
            {
                continue;
            }
            let arch = field(&paragraph, "Architecture").map(str::to_owned);
            // `Source: name` or `Source: name (version)`; absent when equal to the package.
            let source = match field(&paragraph, "Source") {
                Some(source) => match source.split_once('(') {
                    Some((name, version)) => (
                        name.trim().to_owned(),
                        version.trim_end_matches(')').trim().to_owned(),
                    ),
                    None => (source.trim().to_owned(), version.to_owned()),
                },
                None => (name.to_owned(), version.to_owned()),
            };
            let files = dpkg_files(root, name, arch.as_deref(), inv);
            inv.components.push(Component {
                ecosystem: Ecosystem::Debian,
                group: None,
                name: name.to_owned(),
                version: version.to_owned(),
                purl: purl(
                    Ecosystem::Debian,
                    Some(&namespace),
                    name,
                    version,
                    &[
                        ("arch", arch.as_deref()),
                        ("distro", distro.as_deref()),
                        ("upstream", (source.0 != name).then_some(source.0.as_str())),
                    ],
                ),
                location: location.clone(),
                source: Some(source),
                arch,
                files,
            });
        }
    }
}

fn dpkg_files(root: &Root, name: &str, arch: Option<&str>, inv: &mut Inventory) -> Vec<String> {
    let cap = root.limits().max_file_bytes;
    let mut candidates = vec![format!("/var/lib/dpkg/info/{name}.list")];
    if let Some(arch) = arch {
        candidates.push(format!("/var/lib/dpkg/info/{name}:{arch}.list"));
    }
    for path in candidates {
        match root.read(&path, cap) {
            Ok(bytes) => {
                return text(&bytes)
                    .lines()
                    .filter(|line| line.starts_with('/') && *line != "/.")
                    .map(str::to_owned)
                    .collect();
            }
            Err(super::ReadError::Io { .. }) => {}
            Err(error) => {
                inv.note(error.to_string());
                return Vec::new();
            }
        }
    }
    Vec::new()
}

/// apk: `lib/apk/db/installed`, paragraphs of `X:value` lines (`P` name, `V` version, `A`
/// arch, `o` origin, `F` a directory, `R` a file in the last `F`).
pub fn apk(root: &Root, inv: &mut Inventory) {
    const DB: &str = "/lib/apk/db/installed";
    let bytes = match root.read(DB, root.limits().max_file_bytes) {
        Ok(bytes) => bytes,
        Err(super::ReadError::Io { .. }) => return,
        Err(error) => {
            inv.note(error.to_string());
            return;
        }
    };
    let (namespace, distro) = match &inv.distro.id {
        Some(id) if is_apk_distro(&inv.distro) => (id.clone(), inv.distro.version_id.clone()),
        _ => ("alpine".to_owned(), None),
    };
    let text = text(&bytes);
    for block in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut origin) = (None, None, None, None);
        let mut dir = String::new();
        let mut files = Vec::new();
        for line in block.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key {
                "P" => name = Some(value),
                "V" => version = Some(value),
                "A" => arch = Some(value),
                "o" => origin = Some(value),
                "F" => dir = value.to_owned(),
                "R" if dir.is_empty() => files.push(format!("/{value}")),
                "R" => files.push(format!("/{dir}/{value}")),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        inv.components.push(Component {
            ecosystem: Ecosystem::Alpine,
            group: None,
            name: name.to_owned(),
            version: version.to_owned(),
            purl: purl(
                Ecosystem::Alpine,
                Some(&namespace),
                name,
                version,
                &[("arch", arch), ("distro", distro.as_deref())],
            ),
            location: DB.to_owned(),
            source: Some((origin.unwrap_or(name).to_owned(), version.to_owned())),
            arch: arch.map(str::to_owned),
            files,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_paragraphs_keep_continuations() {
        let text = "Package: a\nDescription: one\n two\n\n\nPackage: b\r\nVersion: 1\n";
        let paragraphs = control_paragraphs(text);
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(field(&paragraphs[0], "description"), Some("one\ntwo"));
        assert_eq!(field(&paragraphs[1], "Version"), Some("1"));
    }
}
