//! Arbitrary bytes as image content for `tasksentry sbom`/`secrets`: a Go build info section, a
//! dpkg control file, Python core metadata and RECORD, a pom.properties, a (nested) jar,
//! `/proc/PID/maps`, an OSV record matched against a component, a CVSS vector, two versions
//! per ecosystem, text scanned for credentials. Nothing panics, loops or allocates without
//! bound (archive entries are read to their caps).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tasksentry::image::parse_everything(data);
});
