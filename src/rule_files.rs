//! Reading rule files for the engine: a path is a file, or a directory whose `*.yaml`/`*.yml`
//! files load in name order (Falco's convention). The engine itself does no I/O.

use std::path::{Path, PathBuf};

use crate::rules::RuleSource;

/// A rule path that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read rules from {path}: {source}")]
pub struct RuleFileError {
    /// The file or directory.
    pub(crate) path: PathBuf,
    /// Why.
    pub(crate) source: std::io::Error,
}

/// Reads every rule file named by `paths`, in order (directories expanded, sorted by name).
pub(crate) fn read_rule_paths(paths: &[PathBuf]) -> Result<Vec<RuleSource>, RuleFileError> {
    let mut sources = Vec::new();
    for path in paths {
        let error = |source| RuleFileError {
            path: path.clone(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(error)?;
        if metadata.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(error)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| is_rules_file(file))
                .collect();
            files.sort();
            for file in files {
                sources.push(read_one(&file)?);
            }
        } else {
            sources.push(read_one(path)?);
        }
    }
    Ok(sources)
}

fn is_rules_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|ext| ext.to_str()),
            Some("yaml" | "yml")
        )
}

fn read_one(path: &Path) -> Result<RuleSource, RuleFileError> {
    let bytes = std::fs::read(path).map_err(|source| RuleFileError {
        path: path.to_owned(),
        source,
    })?;
    // Rule files are text; invalid UTF-8 is replaced so that the loader can still point at
    // the exact line and column of whatever else is wrong.
    Ok(RuleSource {
        name: path.display().to_string(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_sorted_yaml_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.yaml"), "- list: b\n  items: []\n").expect("write");
        std::fs::write(dir.path().join("a.yml"), "- list: a\n  items: []\n").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let sources = read_rule_paths(&[dir.path().to_owned()]).expect("readable");
        let names: Vec<_> = sources
            .iter()
            .map(|s| s.name.rsplit('/').next().unwrap_or(""))
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let error =
            read_rule_paths(&[PathBuf::from("/nonexistent/rules.yaml")]).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/rules.yaml"),
            "{error}"
        );
    }
}
