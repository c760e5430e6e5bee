//! A read-only reader of SQLite's file format (<https://www.sqlite.org/fileformat2.html>), only
//! as far as rpm's package database (`rpmdb.sqlite`, rpm 4.16 and later: Fedora, RHEL 9 and
//! its rebuilds, Amazon Linux 2023) needs: the schema table on page 1 and a scan of one rowid
//! table's b-tree (interior and leaf table pages, overflow chains), with its records decoded.
//! No SQL, no indexes, no writing, no journal: a database whose write-ahead log still holds
//! changes (`-wal` next to it) is read as of its last checkpoint, and the caller says so.
//!
//! Pages are read one at a time through [`Pages`], so a database of any size costs one page
//! plus the row being read in memory. Hostile files never panic and never loop: every page is
//! visited at most once per scan, the b-tree depth and a row's size are bounded, and anything
//! inconsistent ends the scan with [`SqliteError::Corrupt`] naming the page.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The largest row read (payload bytes): rpm headers are a few hundred KiB at most.
pub const MAX_ROW_BYTES: u64 = 64 << 20;
/// B-tree depth followed at most (a real table of millions of rows is four or five deep).
const MAX_DEPTH: usize = 32;

/// Why a database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file does not start with SQLite's header string.
    #[error("not an SQLite 3 database")]
    NotSqlite,
    /// The header's page size is not a power of two between 512 and 65,536.
    #[error("invalid page size {0}")]
    PageSize(u32),
    /// Reading failed.
    #[error("reading page {page}: {source}")]
    Io {
        /// The page (1-based).
        page: u32,
        /// The error.
        source: std::io::Error,
    },
    /// A structure is inconsistent (a cell outside its page, a loop, a page of the wrong
    /// kind, a row above [`MAX_ROW_BYTES`]).
    #[error("corrupt database at page {page}: {what}")]
    Corrupt {
        /// The page (1-based).
        page: u32,
        /// What is wrong.
        what: &'static str,
    },
}

/// Where the database's bytes come from.
pub trait Pages {
    /// Fills `buf` from `offset`; an error past the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// The size in bytes.
    fn size(&self) -> u64;
}

impl Pages for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A file and its size when opened (a file growing meanwhile is read up to that size).
pub struct FilePages {
    /// The open file.
    pub file: File,
    /// Its size.
    pub size: u64,
}

impl Pages for FilePages {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.size {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.file.read_exact_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `NULL` (also the stored value of an `INTEGER PRIMARY KEY`, which is the row id).
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text, as stored (the database's encoding; rpm's is UTF-8).
    Text(Vec<u8>),
    /// A blob.
    Blob(Vec<u8>),
}

/// An open database.
pub struct Database<P: ?Sized> {
    page_size: u32,
    /// Page size less the reserved bytes at the end of each page.
    usable: u32,
    pages: Box<P>,
}

impl<P: Pages + ?Sized> Database<P> {
    /// Reads the header.
    pub fn open(pages: Box<P>) -> Result<Database<P>, SqliteError> {
        let mut header = [0u8; 100];
        pages
            .read_at(0, &mut header)
            .map_err(|_| SqliteError::NotSqlite)?;
        if &header[..16] != b"SQLite format 3\0" {
            return Err(SqliteError::NotSqlite);
        }
        let raw = u32::from(u16::from_be_bytes([header[16], header[17]]));
        let page_size = if raw == 1 { 65_536 } else { raw };
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(SqliteError::PageSize(page_size));
        }
        let reserved = u32::from(header[20]);
        let usable = page_size.saturating_sub(reserved);
        if usable < 480 {
            return Err(SqliteError::PageSize(page_size));
        }
        Ok(Database {
            page_size,
            usable,
            pages,
        })
    }

    fn page(&self, page: u32) -> Result<Vec<u8>, SqliteError> {
        if page == 0 {
            return Err(SqliteError::Corrupt {
                page,
                what: "page number 0",
            });
        }
        let offset = u64::from(page - 1) * u64::from(self.page_size);
        let mut buf = vec![0u8; self.page_size as usize];
        self.pages
            .read_at(offset, &mut buf)
            .map_err(|source| SqliteError::Io { page, source })?;
        Ok(buf)
    }

    /// The number of pages the file holds.
    fn page_count(&self) -> u64 {
        self.pages.size() / u64::from(self.page_size)
    }

    /// The root page of the table `name` (from the schema table), `None` when there is none.
    pub fn table_root(&self, name: &str) -> Result<Option<u32>, SqliteError> {
        let mut root = None;
        self.scan(1, |_, row| {
            let is = |i: usize, want: &str| {
                matches!(row.get(i), Some(Value::Text(t)) if t.eq_ignore_ascii_case(want.as_bytes()))
            };
            if is(0, "table")
                && is(1, name)
                && let Some(Value::Int(page)) = row.get(3)
            {
                root = u32::try_from(*page).ok();
                return false;
            }
            true
        })?;
        Ok(root)
    }

    /// Calls `row` with the row id and the values of every row of the table whose b-tree
    /// starts at `root`, in row id order, until it returns false.
    pub fn scan(
        &self,
        root: u32,
        mut row: impl FnMut(i64, Vec<Value>) -> bool,
    ) -> Result<(), SqliteError> {
        let mut visited = HashSet::new();
        // Depth-first, children in order: a stack of (page, depth).
        let mut stack = vec![(root, 0usize)];
        while let Some((number, depth)) = stack.pop() {
            let corrupt = |what| SqliteError::Corrupt { page: number, what };
            if depth > MAX_DEPTH {
                return Err(corrupt("b-tree too deep"));
            }
            if !visited.insert(number) || u64::from(number) > self.page_count() {
                return Err(corrupt("page visited twice, or past the end"));
            }
            let page = self.page(number)?;
            let base = if number == 1 { 100 } else { 0 };
            let kind = *page.get(base).ok_or(corrupt("short page"))?;
            let cells = usize::from(be16(&page, base + 3).ok_or(corrupt("short page"))?);
            let header = match kind {
                0x05 => 12,
                0x0d => 8,
                _ => return Err(corrupt("not a table b-tree page")),
            };
            let pointer = |i: usize| -> Result<usize, SqliteError> {
                be16(&page, base + header + 2 * i)
                    .map(usize::from)
                    .filter(|&at| at < self.usable as usize)
                    .ok_or(corrupt("cell pointer outside the page"))
            };
            if kind == 0x05 {
                let right = be32(&page, base + 8).ok_or(corrupt("short page"))?;
                // Pushed in reverse so that the leftmost child is scanned first.
                stack.push((right, depth + 1));
                for i in (0..cells).rev() {
                    let at = pointer(i)?;
                    let child = be32(&page, at).ok_or(corrupt("cell outside the page"))?;
                    stack.push((child, depth + 1));
                }
                continue;
            }
            for i in 0..cells {
                let at = pointer(i)?;
                let (size, n) = varint(&page[at..]).ok_or(corrupt("truncated cell"))?;
                let (rowid, m) = varint(&page[at + n..]).ok_or(corrupt("truncated cell"))?;
                let payload = self.payload(&page, number, at + n + m, size, &mut visited)?;
                let values = record(&payload).ok_or(corrupt("malformed record"))?;
                if !row(rowid as i64, values) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The payload of a leaf cell whose local part starts at `at`: the local bytes, then the
    /// overflow chain.
    fn payload(
        &self,
        page: &[u8],
        number: u32,
        at: usize,
        size: u64,
        visited: &mut HashSet<u32>,
    ) -> Result<Vec<u8>, SqliteError> {
        let corrupt = |what| SqliteError::Corrupt { page: number, what };
        if size > MAX_ROW_BYTES {
            return Err(corrupt("row above the size cap"));
        }
        let size = size as usize;
        let usable = self.usable as usize;
        // The file format's rule for how much of a table leaf cell's payload stays on the page.
        let max_local = usable - 35;
        let min_local = (usable - 12) * 32 / 255 - 23;
        let local = if size <= max_local {
            size
        } else {
            let k = min_local + (size - min_local) % (usable - 4);
            if k <= max_local { k } else { min_local }
        };
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(
            page.get(at..at + local)
                .ok_or(corrupt("cell payload outside the page"))?,
        );
        if local == size {
            return Ok(out);
        }
        let mut next = be32(page, at + local).ok_or(corrupt("cell payload outside the page"))?;
        while out.len() < size {
            if next == 0 || !visited.insert(next) || u64::from(next) > self.page_count() {
                return Err(SqliteError::Corrupt {
                    page: next,
                    what: "overflow chain ends early, loops or leaves the file",
                });
            }
            let overflow = self.page(next)?;
            let take = (size - out.len()).min(usable - 4);
            out.extend_from_slice(&overflow[4..4 + take]);
            next = be32(&overflow, 0).unwrap_or(0);
        }
        Ok(out)
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// SQLite's variable-length integer: up to eight bytes of seven bits (high bit: more
/// follows), then a ninth of eight bits. Returns the value and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *bytes.get(i)?;
        if i == 8 {
            return Some(((value << 8) | u64::from(byte), 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a record: a header of serial types (after its own length), then the values.
fn record(payload: &[u8]) -> Option<Vec<Value>> {
    let (header_len, mut at) = varint(payload)?;
    let header_len = usize::try_from(header_len).ok()?;
    let header = payload.get(..header_len)?;
    let mut body = header_len;
    let mut values = Vec::new();
    while at < header_len {
        let (serial, n) = varint(&header[at..])?;
        at += n;
        let int = |len: usize| -> Option<i64> {
            let bytes = payload.get(body..body + len)?;
            // Big-endian two's complement of `len` bytes, sign-extended.
            let mut value: i64 = if bytes.first()? & 0x80 != 0 { -1 } else { 0 };
            for &b in bytes {
                value = (value << 8) | i64::from(b);
            }
            Some(value)
        };
        let (value, len) = match serial {
            0 => (Value::Null, 0),
            1..=4 => (Value::Int(int(serial as usize)?), serial as usize),
            5 => (Value::Int(int(6)?), 6),
            6 => (Value::Int(int(8)?), 8),
            7 => {
                let bits = payload.get(body..body + 8)?;
                (Value::Float(f64::from_be_bytes(bits.try_into().ok()?)), 8)
            }
            8 => (Value::Int(0), 0),
            9 => (Value::Int(1), 0),
            10 | 11 => return None,
            n => {
                let len = usize::try_from((n - 12) / 2).ok()?;
                let bytes = payload.get(body..body.checked_add(len)?)?.to_vec();
                if n % 2 == 0 {
                    (Value::Blob(bytes), len)
                } else {
                    (Value::Text(bytes), len)
                }
            }
        };
        body += len;
        values.push(value);
    }
    Some(values)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A database written by SQLite itself (Python's `sqlite3`): a table with rows small and
    /// large (overflow chains), enough rows for interior pages, an integer primary key, and a
    /// second table; with a 1,024-byte page and 8 reserved bytes per page.
    fn sqlite_fixture(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("fixture.sqlite");
        let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA page_size = 1024")
db.execute("CREATE TABLE Other (x TEXT)")
db.execute("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
for i in range(1, 3001):
    size = 5000 + i if i % 100 == 0 else i % 300
    db.execute("INSERT INTO Packages (blob) VALUES (?)", (bytes([i % 251]) * size,))
db.execute("INSERT INTO Other VALUES ('x')")
db.commit()
db.execute("VACUUM")
db.close()
"#;
        let status = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    #[test]
    fn reads_every_row_sqlite_wrote_including_overflow_chains() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(sqlite_fixture(dir.path())).unwrap();
        let db = Database::open(bytes.into_boxed_slice()).unwrap();
        let root = db.table_root("Packages").unwrap().unwrap();
        assert!(db.table_root("Missing").unwrap().is_none());
        let mut seen = 0i64;
        db.scan(root, |rowid, values| {
            seen += 1;
            assert_eq!(rowid, seen, "row id order");
            let i = rowid as usize;
            let size = if i % 100 == 0 { 5000 + i } else { i % 300 };
            assert_eq!(values[0], Value::Null, "INTEGER PRIMARY KEY is the row id");
            assert_eq!(
                values[1],
                Value::Blob(vec![(i % 251) as u8; size]),
                "row {i}"
            );
            true
        })
        .unwrap();
        assert_eq!(seen, 3000);
    }

    #[test]
    fn a_scan_stops_when_asked_and_reads_files_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_fixture(dir.path());
        let file = File::open(&path).unwrap();
        let size = file.metadata().unwrap().len();
        let db = Database::open(Box::new(FilePages { file, size })).unwrap();
        let root = db.table_root("Packages").unwrap().unwrap();
        let mut rows = 0;
        db.scan(root, |_, _| {
            rows += 1;
            rows < 10
        })
        .unwrap();
        assert_eq!(rows, 10);
    }

    #[test]
    fn damaged_databases_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read(sqlite_fixture(dir.path())).unwrap();
        assert!(matches!(
            Database::open(b"not a database at all".to_vec().into_boxed_slice()),
            Err(SqliteError::NotSqlite)
        ));
        let mut bad_size = good.clone();
        bad_size[16..18].copy_from_slice(&300u16.to_be_bytes());
        assert!(matches!(
            Database::open(bad_size.into_boxed_slice()),
            Err(SqliteError::PageSize(300))
        ));
        // Cut in half: the scan ends with an error naming a page past the end.
        let half = good[..good.len() / 2].to_vec();
        let db = Database::open(half.into_boxed_slice()).unwrap();
        let root = db.table_root("Packages").unwrap().unwrap();
        assert!(db.scan(root, |_, _| true).is_err());
        // Every byte of the Packages root page flipped in turn: never a panic or a loop.
        let db = Database::open(good.clone().into_boxed_slice()).unwrap();
        let root = db.table_root("Packages").unwrap().unwrap() as usize;
        for at in (0..1024).step_by(3) {
            let mut damaged = good.clone();
            damaged[(root - 1) * 1024 + at] ^= 0xff;
            let db = Database::open(damaged.into_boxed_slice()).unwrap();
            let _ = db.scan(root as u32, |_, _| true);
        }
    }

    #[test]
    fn varints_and_serial_types_decode_as_the_format_says() {
        assert_eq!(varint(&[0x00]), Some((0, 1)));
        assert_eq!(varint(&[0x7f]), Some((127, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x80]), None);
        // A header of 6 bytes (its length, then NULL, a 1-byte int, a 2-byte int, text of 2,
        // the constant 1), then -2, 300 and "ab".
        let payload = [6, 0, 1, 2, 17, 9, 0xfe, 0x01, 0x2c, b'a', b'b'];
        assert_eq!(
            record(&payload),
            Some(vec![
                Value::Null,
                Value::Int(-2),
                Value::Int(300),
                Value::Text(b"ab".to_vec()),
                Value::Int(1)
            ])
        );
        assert_eq!(record(&[3, 0, 20]), None, "a blob past the end");
        assert_eq!(record(&[2, 10]), None, "a reserved serial type");
    }
}
