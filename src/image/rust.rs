//! Rust binaries built with `cargo auditable`: the ELF section `.dep-v0` holds the crate's
//! dependency list as zlib-compressed JSON (`{"packages": [{"name", "version", "source",
//! "kind", "dependencies", "root"}]}`, the format of the `auditable-serde` crate). Packages of
//! kind `build` (build scripts, proc-macros) are not in the binary and are left out. The
//! section is found by the ELF reader of [`super::golang`]; it is decompressed to at most
//! [`MAX_JSON_BYTES`].

use std::io::Read;

use serde_json::Value;

use super::{Component, Ecosystem, purl};

/// The decompressed dependency list is cut here (real ones are a few hundred KiB at most).
pub const MAX_JSON_BYTES: u64 = 8 << 20;

/// The components of a `.dep-v0` section; `location` is the binary.
pub fn parse_audit_data(section: &[u8], location: &str) -> Result<Vec<Component>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON_BYTES)
        .read_to_end(&mut json)
        .map_err(|error| format!("not zlib data: {error}"))?;
    let value: Value =
        serde_json::from_slice(&json).map_err(|error| format!("not JSON: {error}"))?;
    let packages = value
        .get("packages")
        .and_then(Value::as_array)
        .ok_or("no packages")?;
    Ok(packages
        .iter()
        .filter(|p| p.get("kind").and_then(Value::as_str) != Some("build"))
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p.get("version")?.as_str()?;
            Some(Component {
                ecosystem: Ecosystem::CratesIo,
                group: None,
                name: name.to_owned(),
                version: version.to_owned(),
                purl: purl(Ecosystem::CratesIo, None, name, version, &[]),
                location: location.to_owned(),
                source: None,
                arch: None,
                files: vec![location.to_owned()],
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_sections_are_refused() {
        assert!(parse_audit_data(b"", "/x").is_err());
        assert!(parse_audit_data(b"\x78\x9c garbage", "/x").is_err());
    }
}
