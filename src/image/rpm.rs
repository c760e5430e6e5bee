//! rpm packages: the sqlite package database of rpm 4.16 and later (`var/lib/rpm/rpmdb.sqlite`:
//! Fedora 33+, RHEL 9 and its rebuilds, Amazon Linux 2023, UBI 9), read with the file-format
//! reader of [`super::sqlite`] (no SQLite library), each row's blob parsed as an rpm header.
//!
//! Not read: the Berkeley DB `Packages` file of older rpm (Amazon Linux 2, RHEL 7 and 8, UBI 8)
//! and the `ndb` format of SUSE; a root holding one gets a note saying its packages are not
//! listed, so the gap is visible in the SBOM.
//!
//! A header blob as stored in the database: a count of index entries and a length of data
//! (big-endian 32-bit), the entries (tag, type, offset into the data, count; 16 bytes each),
//! then the data. Tags read: name (1000), version (1001), release (1002), epoch (1003), arch
//! (1022), source rpm (1044), and the file list as base names (1117), directory names (1118)
//! and each file's directory index (1116).

use super::sqlite::{Database, FilePages, Value};
use super::{Component, Ecosystem, Inventory, Root};

/// Where rpm 4.16+ keeps its database, and where older ones kept theirs.
const SQLITE_DB: &str = "/var/lib/rpm/rpmdb.sqlite";
const OTHER_DBS: &[(&str, &str)] = &[
    ("/var/lib/rpm/Packages", "Berkeley DB"),
    ("/var/lib/rpm/Packages.db", "ndb"),
    ("/usr/lib/sysimage/rpm/Packages.db", "ndb"),
];
/// Index entries and data bytes accepted in one header (real ones: a few hundred entries,
/// well under a MiB).
const MAX_ENTRIES: usize = 65_536;
/// Files listed per package at most.
const MAX_FILES: usize = 100_000;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// One package as its header describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmPackage {
    /// `NAME`.
    pub name: String,
    /// `EPOCH`, when set.
    pub epoch: Option<u32>,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `ARCH` (`noarch`, `x86_64`, ...).
    pub arch: Option<String>,
    /// `SOURCERPM` (`openssl-3.0.7-24.el9.src.rpm`).
    pub source_rpm: Option<String>,
    /// The files it owns, as absolute paths.
    pub files: Vec<String>,
}

impl RpmPackage {
    /// `[epoch:]version-release`, the form rpm orders and advisories name fixed versions by.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(epoch) => format!("{epoch}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
}

/// Parses a header blob; `None` when it is not one (or lacks a name or version).
pub fn parse_header(blob: &[u8]) -> Option<RpmPackage> {
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
    };
    let entries = usize::try_from(be(0)?).ok()?;
    let data_len = usize::try_from(be(4)?).ok()?;
    if entries > MAX_ENTRIES {
        return None;
    }
    let data_start = 8 + entries * 16;
    let data = blob.get(data_start..data_start.checked_add(data_len)?)?;
    let mut index = Vec::with_capacity(entries.min(1024));
    for i in 0..entries {
        let at = 8 + i * 16;
        index.push(Entry {
            tag: be(at)?,
            kind: be(at + 4)?,
            offset: usize::try_from(be(at + 8)?).ok()?,
            count: usize::try_from(be(at + 12)?).ok()?,
        });
    }
    let find = |tag: u32| index.iter().find(|e| e.tag == tag);
    let string = |tag: u32| -> Option<String> {
        let entry = find(tag)?;
        if !matches!(
            entry.kind,
            TYPE_STRING | TYPE_I18NSTRING | TYPE_STRING_ARRAY
        ) {
            return None;
        }
        strings(data, entry.offset, 1).into_iter().next()
    };
    let mut package = RpmPackage {
        name: string(TAG_NAME)?,
        version: string(TAG_VERSION)?,
        release: string(TAG_RELEASE).unwrap_or_default(),
        arch: string(TAG_ARCH),
        source_rpm: string(TAG_SOURCERPM),
        ..RpmPackage::default()
    };
    package.epoch = find(TAG_EPOCH)
        .filter(|e| e.kind == TYPE_INT32 && e.count >= 1)
        .and_then(|e| int32s(data, e.offset, 1).first().copied());
    let (Some(bases), Some(dirs), Some(indexes)) = (
        find(TAG_BASENAMES).filter(|e| e.kind == TYPE_STRING_ARRAY),
        find(TAG_DIRNAMES).filter(|e| e.kind == TYPE_STRING_ARRAY),
        find(TAG_DIRINDEXES).filter(|e| e.kind == TYPE_INT32),
    ) else {
        return Some(package);
    };
    let bases = strings(data, bases.offset, bases.count.min(MAX_FILES));
    let dirs = strings(data, dirs.offset, dirs.count.min(MAX_FILES));
    let indexes = int32s(data, indexes.offset, indexes.count.min(MAX_FILES));
    package.files = bases
        .iter()
        .zip(&indexes)
        .filter_map(|(base, &dir)| {
            let dir = dirs.get(usize::try_from(dir).ok()?)?;
            Some(format!("{dir}{base}"))
        })
        .collect();
    Some(package)
}

/// Up to `count` NUL-terminated strings from `offset` (fewer when the data ends first).
fn strings(data: &[u8], offset: usize, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = offset;
    while out.len() < count {
        let Some(rest) = data.get(at..) else {
            break;
        };
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            break;
        };
        out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        at += end + 1;
    }
    out
}

/// Up to `count` big-endian 32-bit integers from `offset`.
fn int32s(data: &[u8], offset: usize, count: usize) -> Vec<u32> {
    let Some(rest) = data.get(offset..) else {
        return Vec::new();
    };
    rest.chunks_exact(4)
        .take(count)
        .filter_map(|c| Some(u32::from_be_bytes(c.try_into().ok()?)))
        .collect()
}

/// Reads the rpm database of `root` into `inv`.
pub fn rpm(root: &Root, inv: &mut Inventory) {
    for (path, format) in OTHER_DBS {
        if root.resolve(path).is_some_and(|p| p.is_file()) {
            inv.note(format!(
                "{path}: an rpm database in the {format} format, not read: its packages are not listed"
            ));
        }
    }
    let (file, size) = match root.open(SQLITE_DB, root.limits().max_archive_bytes) {
        Ok(opened) => opened,
        Err(super::ReadError::Io { .. }) => return,
        Err(error) => {
            inv.note(error.to_string());
            return;
        }
    };
    if root
        .resolve(&format!("{SQLITE_DB}-wal"))
        .and_then(|p| p.metadata().ok())
        .is_some_and(|m| m.len() > 0)
    {
        inv.note(format!(
            "{SQLITE_DB}-wal: changes not yet checkpointed into the database are not read"
        ));
    }
    let packages = match read_sqlite(Box::new(FilePages { file, size })) {
        Ok(packages) => packages,
        Err(error) => {
            inv.note(format!("{SQLITE_DB}: {error}"));
            return;
        }
    };
    let distro = match (&inv.distro.id, &inv.distro.version_id) {
        (Some(id), Some(version)) => Some(format!("{id}-{version}")),
        _ => None,
    };
    let namespace = inv.distro.id.clone().unwrap_or_else(|| "redhat".to_owned());
    for package in packages {
        // The keys rpm imports are pseudo-packages, not software.
        if package.name == "gpg-pubkey" {
            continue;
        }
        let epoch = package.epoch.map(|e| e.to_string());
        let purl = super::purl(
            Ecosystem::Rpm,
            Some(&namespace),
            &package.name,
            &format!("{}-{}", package.version, package.release),
            &[
                ("arch", package.arch.as_deref()),
                ("distro", distro.as_deref()),
                ("epoch", epoch.as_deref()),
            ],
        );
        let source = package
            .source_rpm
            .as_deref()
            .and_then(source_name)
            .map(|name| (name, package.evr()));
        inv.components.push(Component {
            ecosystem: Ecosystem::Rpm,
            group: None,
            name: package.name.clone(),
            version: package.evr(),
            purl,
            location: SQLITE_DB.to_owned(),
            source,
            arch: package.arch.clone(),
            files: package.files,
        });
    }
}

/// The packages of an rpm sqlite database, in row order (headers that do not parse skipped).
pub fn read_sqlite<P: super::sqlite::Pages + ?Sized>(
    pages: Box<P>,
) -> Result<Vec<RpmPackage>, super::sqlite::SqliteError> {
    let db = Database::open(pages)?;
    let Some(table) = db.table_root("Packages")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    db.scan(table, |_, row| {
        if let Some(Value::Blob(blob)) = row.get(1)
            && let Some(package) = parse_header(blob)
        {
            out.push(package);
        }
        true
    })?;
    Ok(out)
}

/// The source package's name from `SOURCERPM` (`openssl-3.0.7-24.el9.src.rpm` → `openssl`).
fn source_name(source_rpm: &str) -> Option<String> {
    let base = source_rpm
        .strip_suffix(".src.rpm")
        .or_else(|| source_rpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, _release) = base.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A header blob from `(tag, type, values)`; strings NUL-terminated, INT32 4-aligned.
    pub(crate) fn header(entries: &[(u32, u32, &[&str])]) -> Vec<u8> {
        let mut data = Vec::new();
        let mut index = Vec::new();
        for (tag, kind, values) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            let offset = data.len() as u32;
            for value in *values {
                if *kind == TYPE_INT32 {
                    data.extend_from_slice(&value.parse::<u32>().unwrap().to_be_bytes());
                } else {
                    data.extend_from_slice(value.as_bytes());
                    data.push(0);
                }
            }
            index.push((*tag, *kind, offset, values.len() as u32));
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset, count) in index {
            for n in [tag, kind, offset, count] {
                blob.extend_from_slice(&n.to_be_bytes());
            }
        }
        blob.extend_from_slice(&data);
        blob
    }

    #[test]
    fn a_header_gives_name_epoch_version_release_arch_source_and_files() {
        let blob = header(&[
            (TAG_NAME, TYPE_STRING, &["openssl-libs"]),
            (TAG_VERSION, TYPE_STRING, &["3.0.8"]),
            (TAG_RELEASE, TYPE_STRING, &["1.amzn2023.0.14"]),
            (TAG_EPOCH, TYPE_INT32, &["1"]),
            (TAG_ARCH, TYPE_STRING, &["x86_64"]),
            (
                TAG_SOURCERPM,
                TYPE_STRING,
                &["openssl-3.0.8-1.amzn2023.0.14.src.rpm"],
            ),
            (TAG_DIRINDEXES, TYPE_INT32, &["0", "0", "1"]),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                &["libssl.so.3", "libcrypto.so.3", "openssl.cnf"],
            ),
            (
                TAG_DIRNAMES,
                TYPE_STRING_ARRAY,
                &["/usr/lib64/", "/etc/pki/tls/"],
            ),
        ]);
        let package = parse_header(&blob).unwrap();
        assert_eq!(package.name, "openssl-libs");
        assert_eq!(package.evr(), "1:3.0.8-1.amzn2023.0.14");
        assert_eq!(package.arch.as_deref(), Some("x86_64"));
        assert_eq!(
            package
                .source_rpm
                .as_deref()
                .and_then(source_name)
                .as_deref(),
            Some("openssl")
        );
        assert_eq!(
            package.files,
            [
                "/usr/lib64/libssl.so.3",
                "/usr/lib64/libcrypto.so.3",
                "/etc/pki/tls/openssl.cnf"
            ]
        );
    }

    #[test]
    fn hostile_headers_are_refused_or_cut_never_a_panic() {
        assert_eq!(parse_header(b""), None);
        assert_eq!(parse_header(&[0xff; 8]), None, "too many entries");
        // Entries pointing past the data, a directory index past the list.
        let mut blob = header(&[
            (TAG_NAME, TYPE_STRING, &["x"]),
            (TAG_VERSION, TYPE_STRING, &["1"]),
            (TAG_DIRINDEXES, TYPE_INT32, &["7"]),
            (TAG_BASENAMES, TYPE_STRING_ARRAY, &["a"]),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, &["/"]),
        ]);
        let package = parse_header(&blob).unwrap();
        assert!(package.files.is_empty());
        // The version's offset moved past the end of the data.
        blob[8 + 16 + 8..8 + 16 + 12].copy_from_slice(&10_000u32.to_be_bytes());
        assert_eq!(parse_header(&blob), None);
        // Every truncation.
        let blob = header(&[
            (TAG_NAME, TYPE_STRING, &["bash"]),
            (TAG_VERSION, TYPE_STRING, &["5.2.15"]),
        ]);
        for len in 0..blob.len() {
            let _ = parse_header(&blob[..len]);
        }
        assert!(source_name("not-a-source").is_none());
        assert!(source_name("-1-2.src.rpm").is_none());
    }
}
