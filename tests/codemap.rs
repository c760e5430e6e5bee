//! `ARCHITECTURE.md` is the codemap a newcomer reads first: every path it names exists, and
//! every room of `src/` (a directory or a top-level file) has a row.

use std::path::Path;

const ROOTS: [&str; 9] = [
    "src/",
    "tests/",
    "bench/",
    "fuzz/",
    "rules/",
    "docs/",
    "scripts/",
    "task-definitions/",
    ".ci/",
];

fn codemap() -> &'static str {
    include_str!("../ARCHITECTURE.md")
}

/// Every `` `path` `` in the text that starts at one of the repository's top folders.
fn named_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|token| ROOTS.iter().any(|root| token.starts_with(root)))
        .map(|token| token.trim_end_matches('/').to_owned())
        .collect()
}

/// Whether `pattern` names something: `{a,b}` is either, one `*` in the last component any run
/// of characters.
fn exists(repo: &Path, pattern: &str) -> bool {
    if let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) {
        return pattern[open + 1..close].split(',').all(|alternative| {
            let expanded = format!("{}{alternative}{}", &pattern[..open], &pattern[close + 1..]);
            exists(repo, &expanded)
        });
    }
    let Some((prefix, suffix)) = pattern.split_once('*') else {
        return repo.join(pattern).exists();
    };
    let (dir, start) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    std::fs::read_dir(repo.join(dir)).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(start) && name.ends_with(suffix)
        })
    })
}

#[test]
fn every_path_the_codemap_names_exists() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let named = named_paths(codemap());
    assert!(named.len() > 20, "the codemap names paths: {named:?}");
    let missing: Vec<_> = named.iter().filter(|p| !exists(repo, p)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn every_room_of_src_has_a_row() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let named = named_paths(codemap());
    let mut unnamed = Vec::new();
    for entry in std::fs::read_dir(repo.join("src")).expect("reading src/") {
        let entry = entry.expect("a src/ entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lib.rs" {
            continue;
        }
        let path = format!("src/{name}");
        if !named.contains(&path) {
            unnamed.push(path);
        }
    }
    assert!(
        unnamed.is_empty(),
        "rooms of src/ without a codemap row: {unnamed:?}"
    );
}
