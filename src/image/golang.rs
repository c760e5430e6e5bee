//! Go binaries (and the ELF section reader that Rust binaries use too): the build info the Go linker (1.18 and later) writes into the ELF section
//! `.go.buildinfo`. Only executable regular files are opened, and only their ELF header, section
//! headers, section names and that section are read (a few KiB of a binary of many MiB).
//!
//! The section (Go's `debug/buildinfo`): 16 bytes of header, `\xff Go buildinf:` then the pointer
//! size and a flags byte; with flag bit 1 (strings inline, Go 1.18+) the Go version and the module
//! information follow at offset 32, each as an unsigned LEB128 length and its bytes. The module
//! information is lines of tab-separated fields: `path`, `mod` (the main module), `dep` (a
//! dependency), `=>` (the replacement of the line before) and `build`, framed by two 16-byte
//! sentinels. Older binaries (pointers instead of inline strings) are noted and skipped.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;

use super::{Component, Ecosystem, Inventory, Root, purl};

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Caps on what is read of one binary: section headers, section names, the build info.
const MAX_TABLE: u64 = 256 << 10;
const MAX_BUILDINFO: u64 = 4 << 20;

/// Reads the file at `path` when it is an executable ELF file with Go build info.
pub(crate) fn maybe_read(root: &Root, path: &str, inv: &mut Inventory) {
    let host = root.host(path);
    let Ok(meta) = std::fs::symlink_metadata(&host) else {
        return;
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 || meta.len() < 64 {
        return;
    }
    read_elf(root, path, inv);
}

fn read_elf(root: &Root, path: &str, inv: &mut Inventory) {
    let Ok(file) = std::fs::File::open(root.host(path)) else {
        return;
    };
    let mut reader = Counted { file, root };
    match elf_section(&mut reader, &[".go.buildinfo", ".dep-v0"]) {
        Some((0, section)) => match parse_buildinfo(&section) {
            Ok(info) => inv.components.extend(info.components(path)),
            Err(reason) => inv.note(format!("{path}: Go build info: {reason}")),
        },
        Some((_, section)) => match super::rust::parse_audit_data(&section, path) {
            Ok(components) => inv.components.extend(components),
            Err(reason) => inv.note(format!("{path}: cargo auditable data: {reason}")),
        },
        None => {}
    }
}

/// A file whose reads count against the root's byte budget.
struct Counted<'r> {
    file: std::fs::File,
    root: &'r Root,
}

impl Counted<'_> {
    fn read_at(&mut self, offset: u64, len: u64) -> Option<Vec<u8>> {
        if !self.root.take_bytes(len) {
            return None;
        }
        self.file.seek(SeekFrom::Start(offset)).ok()?;
        let mut out = Vec::with_capacity(len as usize);
        (&mut self.file).take(len).read_to_end(&mut out).ok()?;
        (out.len() as u64 == len).then_some(out)
    }
}

/// The first section of the ELF file named in `wanted` (by its position there) and its bytes.
fn elf_section(reader: &mut Counted<'_>, wanted: &[&str]) -> Option<(usize, Vec<u8>)> {
    let header = reader.read_at(0, 64)?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match header[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match header[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let num = |bytes: &[u8], at: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(at..at + len)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { slice[len - 1 - i] } else { slice[i] };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (
            num(&header, 0x28, 8)?,
            num(&header, 0x3A, 2)?,
            num(&header, 0x3C, 2)?,
            num(&header, 0x3E, 2)?,
        )
    } else {
        (
            num(&header, 0x20, 4)?,
            num(&header, 0x2E, 2)?,
            num(&header, 0x30, 2)?,
            num(&header, 0x32, 2)?,
        )
    };
    let min_entry = if wide { 64 } else { 40 };
    if shentsize < min_entry || shnum == 0 || shstrndx >= shnum {
        return None;
    }
    let table_len = shentsize.checked_mul(shnum)?;
    if table_len > MAX_TABLE {
        return None;
    }
    let table = reader.read_at(shoff, table_len)?;
    // (name offset, file offset, size) of section `index`.
    let section = |index: u64| -> Option<(u64, u64, u64)> {
        let at = usize::try_from(index * shentsize).ok()?;
        if wide {
            Some((
                num(&table, at, 4)?,
                num(&table, at + 24, 8)?,
                num(&table, at + 32, 8)?,
            ))
        } else {
            Some((
                num(&table, at, 4)?,
                num(&table, at + 16, 4)?,
                num(&table, at + 20, 4)?,
            ))
        }
    };
    let (_, names_offset, names_size) = section(shstrndx)?;
    if names_size > MAX_TABLE {
        return None;
    }
    let names = reader.read_at(names_offset, names_size)?;
    for index in 0..shnum {
        let (name, offset, size) = section(index)?;
        let name = names.get(usize::try_from(name).ok()?..)?;
        let name = &name[..name.iter().position(|&b| b == 0)?];
        if let Some(which) = wanted.iter().position(|w| w.as_bytes() == name) {
            return Some((which, reader.read_at(offset, size.min(MAX_BUILDINFO))?));
        }
    }
    None
}

/// What a Go binary says it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain, `go1.22.1`.
    pub go_version: String,
    /// The main module `(path, version)`; the version is `(devel)` for a local build.
    pub main: Option<(String, String)>,
    /// The dependencies `(path, version)`, replacements applied.
    pub deps: Vec<(String, String)>,
}

/// Unsigned LEB128, as Go's `binary.Uvarint`.
fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Parses the contents of `.go.buildinfo`.
pub fn parse_buildinfo(data: &[u8]) -> Result<BuildInfo, &'static str> {
    if data.len() < 32 || !data.starts_with(MAGIC) {
        return Err("no build info header");
    }
    if data[15] & 2 == 0 {
        return Err("built before Go 1.18 (pointer format), not read");
    }
    let mut rest = &data[32..];
    let mut string = || -> Result<String, &'static str> {
        let (len, used) = uvarint(rest).ok_or("bad length")?;
        let len = usize::try_from(len).map_err(|_| "bad length")?;
        let bytes = rest
            .get(used..used.checked_add(len).ok_or("bad length")?)
            .ok_or("truncated")?;
        rest = &rest[used + len..];
        Ok(String::from_utf8_lossy(bytes).into_owned())
    };
    let go_version = string()?;
    let mut modinfo = string()?;
    // The module information is framed by two 16-byte sentinels.
    if modinfo.len() >= 33 && modinfo.as_bytes()[modinfo.len() - 17] == b'\n' {
        modinfo = String::from_utf8_lossy(&modinfo.as_bytes()[16..modinfo.len() - 16]).into_owned();
    }
    let mut info = BuildInfo {
        go_version: go_version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
        main: None,
        deps: Vec::new(),
    };
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", path, version, ..] => info.main = Some(((*path).into(), (*version).into())),
            ["dep", path, version, ..] => info.deps.push(((*path).into(), (*version).into())),
            ["=>", path, version, ..] => {
                if let Some(last) = info.deps.last_mut() {
                    *last = ((*path).into(), (*version).into());
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

impl BuildInfo {
    /// The components: the standard library (`stdlib`, version `v1.22.1` for `go1.22.1`),
    /// the main module and every dependency; `location` is the binary.
    pub fn components(&self, location: &str) -> Vec<Component> {
        let mut out = Vec::new();
        if let Some(version) = self.go_version.strip_prefix("go") {
            out.push(module("stdlib", &format!("v{version}"), location));
        }
        if let Some((path, version)) = &self.main {
            out.push(module(path, version, location));
        }
        for (path, version) in &self.deps {
            out.push(module(path, version, location));
        }
        out
    }
}

fn module(path: &str, version: &str, location: &str) -> Component {
    let (namespace, name) = match path.rsplit_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, path),
    };
    Component {
        ecosystem: Ecosystem::Go,
        group: None,
        name: path.to_owned(),
        version: version.to_owned(),
        purl: purl(Ecosystem::Go, namespace, name, version, &[]),
        location: location.to_owned(),
        source: None,
        arch: None,
        files: vec![location.to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_build_info_is_refused_not_panicked_on() {
        assert!(parse_buildinfo(b"").is_err());
        let mut data = MAGIC.to_vec();
        data.extend([8, 2]);
        data.resize(32, 0);
        assert!(parse_buildinfo(&data).is_err());
        data.extend([0xff; 12]);
        assert!(parse_buildinfo(&data).is_err());
        let mut data = data[..32].to_vec();
        data.extend([200, 1, b'g']);
        assert_eq!(parse_buildinfo(&data), Err("truncated"));
    }
}
