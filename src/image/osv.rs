//! Matching an inventory against OSV records, offline: a directory of OSV JSON files (the
//! per-ecosystem `all.zip` exports of osv.dev, unpacked) is indexed by (ecosystem, package name)
//! so that each component costs one hash lookup, and each affected entry is evaluated with the
//! ecosystem's own version order ([`super::version`]), honouring `introduced`, `fixed`,
//! `last_affected`, `limit` and explicit `versions`.
//!
//! Names are looked up as the advisories spell them: Debian and Alpine advisories name source
//! packages (dpkg `Source:`, apk `o:`), PyPI names are PEP 503 normalised on both sides, npm
//! names carry their scope, Maven names are `group:artifact`, Go names are module paths and
//! `stdlib`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{Component, Distro, Ecosystem, python, version};

/// One advisory (the parts a finding shows).
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    /// `id` (`DSA-5764-1`, `GHSA-…`, `GO-2024-2687`).
    pub id: String,
    /// `aliases` (CVE ids), sorted.
    pub aliases: Vec<String>,
    /// `summary`, or the start of `details`.
    pub summary: String,
    /// The first CVSS v3 vector of `severity`, if any.
    pub cvss_vector: Option<String>,
    /// Its base score, computed from the vector (CVSS 3.0/3.1 specification).
    pub cvss_score: Option<f64>,
    /// `database_specific.severity` (GitHub's `HIGH`, …), if any.
    pub severity_label: Option<String>,
}

// The index is what the matcher keeps of a whole OSV export (hundreds of thousands of
// records): boxed strings and slices (no spare capacity), and a record's explicit `versions`
// as one text (one allocation instead of one per version).
#[derive(Debug, Clone)]
enum Event {
    Introduced(Box<str>),
    Fixed(Box<str>),
    LastAffected(Box<str>),
    Limit(Box<str>),
}

#[derive(Debug, Clone)]
struct Range {
    /// `SEMVER` ranges use semver whatever the ecosystem; `ECOSYSTEM` the ecosystem's order.
    semver: bool,
    events: Box<[Event]>,
}

#[derive(Debug, Clone)]
struct Affected {
    advisory: usize,
    /// The release after `:` in the ecosystem (`12` of `Debian:12`, `v3.19` of `Alpine:v3.19`).
    release: Option<Box<str>>,
    ranges: Box<[Range]>,
    /// The explicit `versions`, each followed by a newline (versions holding one are left out).
    versions: Box<str>,
}

/// A loaded database.
#[derive(Debug, Default)]
pub struct VulnDb {
    advisories: Vec<Advisory>,
    index: HashMap<(Ecosystem, String), Vec<Affected>>,
    /// Files that could not be read or parsed, with the reason (at most 100).
    pub notes: Vec<String>,
    /// Only these packages' entries are kept (see [`VulnDb::load_for`]); all when `None`.
    wanted: Option<Wanted>,
    /// Records read, kept or not.
    records: usize,
}

/// The packages of an inventory, as advisories name them (ecosystem and lookup name): what
/// [`VulnDb::load_for`] keeps of an export.
#[derive(Debug, Clone, Default)]
pub struct Wanted(std::collections::HashSet<(Ecosystem, String)>);

impl Wanted {
    /// The packages of `components`.
    pub fn of(components: &[Component]) -> Wanted {
        Wanted(
            components
                .iter()
                .map(|c| {
                    let (name, _) = package_of(c);
                    (c.ecosystem, lookup_name(c.ecosystem, &name))
                })
                .collect(),
        )
    }
}

/// One vulnerable component.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'d> {
    /// The advisory.
    pub advisory: &'d Advisory,
    /// Index of the component in the inventory's list.
    pub component: usize,
    /// The smallest fixed version above the installed one, when the advisory has one.
    pub fixed: Option<String>,
}

/// A record file bigger than this is skipped.
const MAX_RECORD_BYTES: u64 = 16 << 20;

impl VulnDb {
    /// Loads a directory ([`VulnDb::load_dir`]) or a zip archive of records (osv.dev's
    /// `ECOSYSTEM/all.zip` as downloaded: every `*.json` entry).
    pub fn load(path: &Path) -> std::io::Result<VulnDb> {
        VulnDb::load_with(path, None)
    }

    /// Like [`VulnDb::load`], keeping only the entries of the packages in `wanted` (and the
    /// advisories they belong to): the whole export is read, a record at a time, but what stays
    /// in memory is what one image can match, not the export (a few hundred kilobytes instead
    /// of tens of megabytes for osv.dev's Debian and PyPI exports).
    pub fn load_for(path: &Path, wanted: &Wanted) -> std::io::Result<VulnDb> {
        VulnDb::load_with(path, Some(wanted.clone()))
    }

    fn load_with(path: &Path, wanted: Option<Wanted>) -> std::io::Result<VulnDb> {
        let empty = || VulnDb {
            wanted: wanted.clone(),
            ..VulnDb::default()
        };
        if path.is_dir() {
            return VulnDb::load_dir_into(path, empty());
        }
        // Entry by entry from the start: the central directory of an export (one entry per
        // record, hundreds of thousands) is never held in memory. An archive the sequential
        // reader cannot follow (sizes only in data descriptors) is read again through its
        // central directory.
        let file = std::fs::File::open(path)?;
        match VulnDb::load_zip_stream(path, std::io::BufReader::new(file), empty()) {
            Ok(mut db) => {
                db.shrink();
                return Ok(db);
            }
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "Reading the archive through its central directory.")
            }
        }
        let file = std::fs::File::open(path)?;
        let mut archive = zip::ZipArchive::new(file).map_err(std::io::Error::other)?;
        let mut db = empty();
        for index in 0..archive.len() {
            let mut entry = match archive.by_index(index) {
                Ok(entry) => entry,
                Err(error) => {
                    db.note(format!("{}: entry {index}: {error}", path.display()));
                    continue;
                }
            };
            let (name, size) = (entry.name().to_owned(), entry.size());
            if let Err(error) = db.add_entry(path, &name, size, &mut entry) {
                db.note(format!("{}!/{name}: {error}", path.display()));
            }
        }
        db.shrink();
        Ok(db)
    }

    /// Reads an archive's entries in order from its start (`zip`'s streaming reader).
    fn load_zip_stream(
        path: &Path,
        mut reader: impl Read,
        mut db: VulnDb,
    ) -> zip::result::ZipResult<VulnDb> {
        while let Some(mut entry) = zip::read::read_zipfile_from_stream(&mut reader)? {
            let (name, size) = (entry.name().to_owned(), entry.size());
            // A read error ends the stream (the reader cannot skip past it).
            db.add_entry(path, &name, size, &mut entry)?;
        }
        Ok(db)
    }

    /// One entry of the archive at `path`: a `*.json` entry within [`MAX_RECORD_BYTES`] is read
    /// (never past the cap, whatever its header claims) and added; others are skipped, an
    /// oversized one with a note. A read error is the caller's to handle.
    fn add_entry(
        &mut self,
        path: &Path,
        name: &str,
        size: u64,
        entry: impl Read,
    ) -> std::io::Result<()> {
        if !name.ends_with(".json") {
            return Ok(());
        }
        if size > MAX_RECORD_BYTES {
            self.note(format!(
                "{}!/{name}: above {MAX_RECORD_BYTES} bytes",
                path.display()
            ));
            return Ok(());
        }
        let mut bytes = Vec::new();
        entry.take(MAX_RECORD_BYTES).read_to_end(&mut bytes)?;
        self.add_bytes(&bytes, &format!("{}!/{name}", path.display()));
        Ok(())
    }

    fn add_bytes(&mut self, bytes: &[u8], location: &str) {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(records)) => records.iter().for_each(|r| self.add(r)),
            Ok(record) => self.add(&record),
            Err(error) => self.note(format!("{location}: {error}")),
        }
    }

    /// Loads every `*.json` file under `dir` (two levels deep: `DIR/*.json` and
    /// `DIR/ECOSYSTEM/*.json`); each holds one OSV record or an array of them.
    pub fn load_dir(dir: &Path) -> std::io::Result<VulnDb> {
        VulnDb::load_dir_into(dir, VulnDb::default())
    }

    fn load_dir_into(dir: &Path, mut db: VulnDb) -> std::io::Result<VulnDb> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                for inner in std::fs::read_dir(&path)?.flatten() {
                    files.push(inner.path());
                }
            } else {
                files.push(path);
            }
        }
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        for file in files {
            let bytes = match std::fs::metadata(&file) {
                Ok(meta) if meta.len() > MAX_RECORD_BYTES => {
                    db.note(format!(
                        "{}: above {MAX_RECORD_BYTES} bytes",
                        file.display()
                    ));
                    continue;
                }
                _ => match std::fs::read(&file) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        db.note(format!("{}: {error}", file.display()));
                        continue;
                    }
                },
            };
            db.add_bytes(&bytes, &file.display().to_string());
        }
        db.shrink();
        Ok(db)
    }

    /// Drops the spare capacity the index's lists grew while loading (in place).
    fn shrink(&mut self) {
        for entries in self.index.values_mut() {
            entries.shrink_to_fit();
        }
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < 100 {
            self.notes.push(note);
        }
    }

    /// Advisories loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Records read (with [`VulnDb::load_for`], also those of packages not kept).
    pub fn records_read(&self) -> usize {
        self.records
    }

    /// Whether no advisory was loaded.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// Adds one OSV record (a JSON object); records without an id or affected packages in a
    /// known ecosystem add nothing.
    pub fn add(&mut self, record: &Value) {
        let Some(id) = record.get("id").and_then(Value::as_str) else {
            return;
        };
        self.records += 1;
        if record.get("withdrawn").is_some_and(|w| !w.is_null()) {
            return;
        }
        let strings = |key: &str| string_array(record, key);
        let mut aliases = strings("aliases");
        aliases.sort();
        // No spare capacity: a whole export is kept.
        aliases.shrink_to_fit();
        let mut summary: String = record
            .get("summary")
            .or_else(|| record.get("details"))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect())
            .unwrap_or_default();
        summary.shrink_to_fit();
        let cvss_vector = record
            .get("severity")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| {
                s.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t == "CVSS_V3")
            })
            .find_map(|s| s.get("score").and_then(Value::as_str))
            .map(str::to_owned);
        let severity_label = record
            .pointer("/database_specific/severity")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let advisory = self.advisories.len();
        let mut used = false;
        for affected in record
            .get("affected")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(ecosystem), Some(name)) = (
                affected
                    .pointer("/package/ecosystem")
                    .and_then(Value::as_str),
                affected.pointer("/package/name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let (base, release) = match ecosystem.split_once(':') {
                Some((base, release)) => (base, Some(Box::from(release))),
                None => (ecosystem, None),
            };
            let Some(ecosystem) = ecosystem_of(base) else {
                continue;
            };
            let key = (ecosystem, lookup_name(ecosystem, name));
            if self.wanted.as_ref().is_some_and(|w| !w.0.contains(&key)) {
                continue;
            }
            // rpm distributions share the package manager, not their builds: the family is
            // kept with the release (`AlmaLinux:9`).
            let release = match ecosystem {
                Ecosystem::Rpm => Some(Box::from(match release {
                    Some(release) => format!("{base}:{release}"),
                    None => base.to_owned(),
                })),
                _ => release,
            };
            let ranges = affected
                .get("ranges")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|range| {
                    let kind = range.get("type").and_then(Value::as_str)?;
                    if kind != "ECOSYSTEM" && kind != "SEMVER" {
                        return None;
                    }
                    let events = range
                        .get("events")
                        .and_then(Value::as_array)?
                        .iter()
                        .filter_map(|event| {
                            let object = event.as_object()?;
                            let (key, value) = object.iter().next()?;
                            let value: Box<str> = value.as_str()?.into();
                            Some(match key.as_str() {
                                "introduced" => Event::Introduced(value),
                                "fixed" => Event::Fixed(value),
                                "last_affected" => Event::LastAffected(value),
                                "limit" => Event::Limit(value),
                                _ => return None,
                            })
                        })
                        .collect();
                    Some(Range {
                        semver: kind == "SEMVER",
                        events,
                    })
                })
                .collect();
            let mut versions = String::new();
            for version in string_array(affected, "versions") {
                if !version.contains('\n') {
                    versions.push_str(&version);
                    versions.push('\n');
                }
            }
            let versions = versions.into_boxed_str();
            self.index.entry(key).or_default().push(Affected {
                advisory,
                release,
                ranges,
                versions,
            });
            used = true;
        }
        if used {
            let cvss_score = cvss_vector.as_deref().and_then(cvss3_base_score);
            self.advisories.push(Advisory {
                id: id.to_owned(),
                aliases,
                summary,
                cvss_vector,
                cvss_score,
                severity_label,
            });
        }
    }

    /// The findings for `components` of an image of `distro`, sorted by component then
    /// advisory id; one per (component, advisory).
    pub fn matches<'d>(&'d self, components: &[Component], distro: &Distro) -> Vec<Finding<'d>> {
        let mut out = Vec::new();
        for (index, component) in components.iter().enumerate() {
            let (name, installed) = package_of(component);
            let Some(entries) = self
                .index
                .get(&(component.ecosystem, lookup_name(component.ecosystem, &name)))
            else {
                continue;
            };
            let mut found: Vec<Finding<'d>> = Vec::new();
            for entry in entries {
                if !release_applies(component.ecosystem, entry.release.as_deref(), distro) {
                    continue;
                }
                if let Some(fixed) = affects(component.ecosystem, entry, &installed) {
                    let advisory = &self.advisories[entry.advisory];
                    if found.iter().any(|f| f.advisory.id == advisory.id) {
                        continue;
                    }
                    found.push(Finding {
                        advisory,
                        component: index,
                        fixed,
                    });
                }
            }
            found.sort_by(|a, b| a.advisory.id.cmp(&b.advisory.id));
            out.extend(found);
        }
        out
    }
}

fn ecosystem_of(name: &str) -> Option<Ecosystem> {
    Some(match name {
        "Debian" | "Ubuntu" => Ecosystem::Debian,
        "Alpine" | "Wolfi" | "Chainguard" => Ecosystem::Alpine,
        "PyPI" => Ecosystem::PyPI,
        "npm" => Ecosystem::Npm,
        "Maven" => Ecosystem::Maven,
        "Go" => Ecosystem::Go,
        "crates.io" => Ecosystem::CratesIo,
        "Red Hat" | "AlmaLinux" | "Rocky Linux" => Ecosystem::Rpm,
        _ => return None,
    })
}

fn lookup_name(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::PyPI => python::normalize(name),
        _ => name.to_owned(),
    }
}

/// The (name, version) an advisory would name this component by.
fn package_of(component: &Component) -> (String, String) {
    match (&component.ecosystem, &component.source, &component.group) {
        (Ecosystem::Debian | Ecosystem::Alpine, Some((name, version)), _) => {
            (name.clone(), version.clone())
        }
        (Ecosystem::Npm, _, Some(scope)) => (
            format!("{scope}/{}", component.name),
            component.version.clone(),
        ),
        (Ecosystem::Maven, _, Some(group)) => (
            format!("{group}:{}", component.name),
            component.version.clone(),
        ),
        _ => (component.name.clone(), component.version.clone()),
    }
}

/// Whether an advisory for `release` (`12`, `v3.19`) concerns an image of `distro`; one
/// without a release, or an image whose release is unknown (or whose `os-release` names a
/// distribution of the other package manager), always does.
fn release_applies(ecosystem: Ecosystem, release: Option<&str>, distro: &Distro) -> bool {
    if ecosystem == Ecosystem::Rpm {
        return rpm_release_applies(release, distro);
    }
    let (Some(release), Some(version)) = (release, distro.version_id.as_deref()) else {
        return true;
    };
    let apk_distro = super::os::is_apk_distro(distro);
    if (ecosystem == Ecosystem::Alpine) != apk_distro {
        return true;
    }
    match ecosystem {
        Ecosystem::Debian => version.split('.').next() == Some(release),
        Ecosystem::Alpine => {
            let minor: Vec<&str> = version.split('.').take(2).collect();
            release.trim_start_matches('v') == minor.join(".")
        }
        _ => true,
    }
}

/// Whether an rpm distribution's advisory (`AlmaLinux:9`, `Red Hat:enterprise_linux:9::appstream`)
/// concerns an image of `distro`: the same distribution (`os-release` `ID`), and the same major
/// release when both say one. An image whose distribution is unknown gets every advisory; one
/// of another rpm distribution (Amazon Linux, Fedora) none, since their builds differ.
fn rpm_release_applies(release: Option<&str>, distro: &Distro) -> bool {
    let Some(release) = release else {
        return true;
    };
    let (family, rest) = release.split_once(':').unwrap_or((release, ""));
    let Some(id) = distro.id.as_deref() else {
        return true;
    };
    let ids: &[&str] = match family {
        "Red Hat" => &["rhel", "centos"],
        "AlmaLinux" => &["almalinux"],
        "Rocky Linux" => &["rocky"],
        _ => &[],
    };
    if !ids.contains(&id) {
        return false;
    }
    let major = rest
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| !run.is_empty());
    let image_major = distro
        .version_id
        .as_deref()
        .and_then(|v| v.split('.').next());
    match (major, image_major) {
        (Some(major), Some(image)) => major == image,
        _ => true,
    }
}

/// `Some(fixed version, if any)` when `installed` is affected by `entry`.
fn affects(ecosystem: Ecosystem, entry: &Affected, installed: &str) -> Option<Option<String>> {
    if !installed.contains('\n')
        && entry
            .versions
            .split_terminator('\n')
            .any(|v| v == installed)
    {
        let fixed = entry
            .ranges
            .iter()
            .find_map(|range| in_range(ecosystem, range, installed).flatten());
        return Some(fixed);
    }
    entry
        .ranges
        .iter()
        .find_map(|range| in_range(ecosystem, range, installed))
}

/// OSV's evaluation of one range: affected when some `introduced` is at or below the version
/// with no `fixed` in between (above the introduction, at or below the version) and no
/// `last_affected` below the version, and below a `limit` when the range has limits. Versions
/// the order cannot read are ignored. Returns the smallest `fixed` above the version.
fn in_range(ecosystem: Ecosystem, range: &Range, installed: &str) -> Option<Option<String>> {
    let cmp = |a: &str, b: &str| -> Option<Ordering> {
        if a == "0" {
            return Some(if b == "0" {
                Ordering::Equal
            } else {
                Ordering::Less
            });
        }
        if range.semver {
            version::semver(a, b)
        } else {
            version::compare(ecosystem, a, b)
        }
    };
    let le = |a: &str, b: &str| matches!(cmp(a, b), Some(Ordering::Less | Ordering::Equal));
    let lt = |a: &str, b: &str| matches!(cmp(a, b), Some(Ordering::Less));
    let limits: Vec<&str> = range
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Limit(v) => Some(&**v),
            _ => None,
        })
        .collect();
    if !limits.is_empty() && !limits.iter().any(|limit| lt(installed, limit)) {
        return None;
    }
    let affected = range.events.iter().any(|event| {
        let Event::Introduced(introduced) = event else {
            return false;
        };
        le(introduced, installed)
            && !range.events.iter().any(|other| match other {
                Event::Fixed(fixed) => lt(introduced, fixed) && le(fixed, installed),
                Event::LastAffected(last) => le(introduced, last) && lt(last, installed),
                _ => false,
            })
    });
    if !affected {
        return None;
    }
    let mut fixed: Option<&str> = None;
    for event in &range.events {
        if let Event::Fixed(candidate) = event
            && lt(installed, candidate)
            && fixed.is_none_or(|best| lt(candidate, best))
        {
            fixed = Some(candidate);
        }
    }
    Some(fixed.map(str::to_owned))
}

/// The CVSS 3.0/3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/...`), `None` if a base metric
/// is missing or unknown.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut metrics: HashMap<&str, &str> = HashMap::new();
    let mut parts = vector.split('/');
    if !parts.next()?.starts_with("CVSS:3") {
        return None;
    }
    for part in parts {
        let (key, value) = part.split_once(':')?;
        metrics.insert(key, value);
    }
    let get = |key: &str| metrics.get(key).copied();
    let changed = match get("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |key: &str| -> Option<f64> {
        match get(key)? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    // CVSS 3.1 Roundup: the smallest number with one decimal at or above the input.
    let scaled = (raw * 100_000.0).round() as i64;
    Some(if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        ((scaled / 10_000) + 1) as f64 / 10.0
    })
}

/// The CVSS qualitative rating of a score (`none` … `critical`).
pub fn rating(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "critical",
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        s if s > 0.0 => "low",
        _ => "none",
    }
}

/// The strings of the array `key` of a record (others and non-strings left out; none when it
/// is absent or not an array).
fn string_array(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An export as `zip` writes it, to a seekable file (sizes in the local headers) or to a
    /// stream (sizes only in data descriptors, which the sequential reader cannot follow).
    fn export(streamed: bool) -> Vec<u8> {
        use std::io::Write;
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let records = (0..50).map(|i| {
            (
                format!("GHSA-{i}.json"),
                format!(
                    r#"{{"id":"GHSA-{i}","affected":[{{"package":{{"ecosystem":"npm","name":"p{i}"}},"versions":["1.0.{i}"]}}]}}"#
                ),
            )
        });
        if streamed {
            let mut writer = zip::ZipWriter::new_stream(Vec::new());
            for (name, text) in records {
                writer.start_file(name, options).expect("entry");
                writer.write_all(text.as_bytes()).expect("write");
            }
            writer.start_file("README.txt", options).expect("entry");
            writer.finish().expect("finish").into_inner()
        } else {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (name, text) in records {
                writer.start_file(name, options).expect("entry");
                writer.write_all(text.as_bytes()).expect("write");
            }
            writer.start_file("README.txt", options).expect("entry");
            writer.finish().expect("finish").into_inner()
        }
    }

    #[test]
    fn an_export_loads_whole_read_in_order_or_through_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        for streamed in [false, true] {
            let path = dir.path().join(format!("all-{streamed}.zip"));
            std::fs::write(&path, export(streamed)).expect("write");
            let db = VulnDb::load(&path).expect("load");
            assert_eq!(db.len(), 50, "streamed={streamed}: {:?}", db.notes);
            let component = Component {
                ecosystem: Ecosystem::Npm,
                group: None,
                name: "p7".into(),
                version: "1.0.7".into(),
                purl: String::new(),
                location: String::new(),
                source: None,
                arch: None,
                files: Vec::new(),
            };
            let found = db.matches(&[component], &Distro::default());
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].advisory.id, "GHSA-7");
        }
        // The sequential reader alone refuses the streamed archive: the fallback is exercised.
        let streamed = export(true);
        assert!(VulnDb::load_zip_stream(dir.path(), &streamed[..], VulnDb::default()).is_err());
        let plain = export(false);
        assert_eq!(
            VulnDb::load_zip_stream(dir.path(), &plain[..], VulnDb::default())
                .expect("in order")
                .len(),
            50
        );
    }

    fn npm(name: &str, version: &str) -> Component {
        Component {
            ecosystem: Ecosystem::Npm,
            group: None,
            name: name.into(),
            version: version.into(),
            purl: String::new(),
            location: String::new(),
            source: None,
            arch: None,
            files: Vec::new(),
        }
    }

    /// What the sidecar keeps of an export for one image: only its packages' entries, with the
    /// same findings as the whole export gives; every record is still read.
    #[test]
    fn a_load_for_an_inventory_keeps_only_its_packages_and_finds_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("all.zip");
        std::fs::write(&path, export(false)).expect("write");
        let components = [
            npm("p7", "1.0.7"),
            npm("p9", "2.0.0"),
            npm("other", "1.0.0"),
        ];
        let whole = VulnDb::load(&path).expect("load");
        let kept = VulnDb::load_for(&path, &Wanted::of(&components)).expect("load");
        assert_eq!((whole.len(), kept.len()), (50, 2), "p7 and p9 only");
        assert_eq!((whole.records_read(), kept.records_read()), (50, 50));
        let ids = |db: &VulnDb| -> Vec<String> {
            db.matches(&components, &Distro::default())
                .iter()
                .map(|f| f.advisory.id.clone())
                .collect()
        };
        assert_eq!(ids(&kept), ids(&whole));
        assert_eq!(ids(&kept), ["GHSA-7"]);
        let none = VulnDb::load_for(&path, &Wanted::default()).expect("load");
        assert_eq!((none.len(), none.records_read()), (0, 50));
    }

    #[test]
    fn cvss_scores_match_the_specification_examples() {
        // Scores as the NVD shows them for these vectors.
        for (vector, score) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:L", 3.7),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ] {
            assert_eq!(cvss3_base_score(vector), Some(score), "{vector}");
        }
        assert_eq!(cvss3_base_score("CVSS:3.1/AV:X"), None);
        assert_eq!(cvss3_base_score("AV:N/AC:L"), None);
    }

    fn range(events: &[(&str, &str)]) -> Range {
        Range {
            semver: false,
            events: events
                .iter()
                .map(|(k, v)| match *k {
                    "introduced" => Event::Introduced((*v).into()),
                    "fixed" => Event::Fixed((*v).into()),
                    "last_affected" => Event::LastAffected((*v).into()),
                    _ => Event::Limit((*v).into()),
                })
                .collect(),
        }
    }

    #[test]
    fn ranges_follow_the_osv_evaluation() {
        let two = range(&[
            ("introduced", "0"),
            ("fixed", "1.26.17"),
            ("introduced", "2.0.0"),
            ("fixed", "2.0.6"),
        ]);
        let pypi = |v: &str| in_range(Ecosystem::PyPI, &two, v);
        assert_eq!(pypi("1.26.0"), Some(Some("1.26.17".into())));
        assert_eq!(pypi("1.26.17"), None);
        assert_eq!(pypi("2.0.0a1"), None, "a pre-release precedes its release");
        assert_eq!(pypi("2.0.0"), Some(Some("2.0.6".into())));
        assert_eq!(pypi("2.0.6"), None);
        let last = range(&[("introduced", "1.0"), ("last_affected", "1.5")]);
        assert_eq!(in_range(Ecosystem::Npm, &last, "1.5.0"), Some(None));
        assert_eq!(in_range(Ecosystem::Npm, &last, "1.5.1"), None);
        assert_eq!(in_range(Ecosystem::Npm, &last, "0.9.0"), None);
        let limited = range(&[("introduced", "0"), ("limit", "2.0.0")]);
        assert_eq!(in_range(Ecosystem::Npm, &limited, "1.9.9"), Some(None));
        assert_eq!(in_range(Ecosystem::Npm, &limited, "2.0.0"), None);
        let tilde = range(&[("introduced", "0"), ("fixed", "3.0.11-1~deb12u2")]);
        assert_eq!(
            in_range(Ecosystem::Debian, &tilde, "3.0.11-1~deb12u2"),
            None
        );
        assert_eq!(
            in_range(Ecosystem::Debian, &tilde, "3.0.11-1~deb12u1"),
            Some(Some("3.0.11-1~deb12u2".into()))
        );
        // The epoch wins over everything after it.
        let epoch = range(&[("introduced", "0"), ("fixed", "1.2.13.dfsg-2")]);
        assert_eq!(in_range(Ecosystem::Debian, &epoch, "1:1.2.13.dfsg-1"), None);
    }
}
