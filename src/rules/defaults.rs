//! The default rules, embedded in the binary from the repository's `rules/` folder so that
//! `tasksentry run` works with no files at all. They load first, in this order; configured rule
//! files load after them and can append, override, add exceptions or disable.

use super::RuleSource;

/// `(name, text)` of every embedded rules file, in load order. The name is the path in the
/// repository, which diagnostics show.
pub(crate) const DEFAULT_RULE_FILES: &[(&str, &str)] = &[
    (
        "rules/tasksentry_process_rules.yaml",
        include_str!("../../rules/tasksentry_process_rules.yaml"),
    ),
    (
        "rules/tasksentry_network_rules.yaml",
        include_str!("../../rules/tasksentry_network_rules.yaml"),
    ),
    (
        "rules/tasksentry_file_rules.yaml",
        include_str!("../../rules/tasksentry_file_rules.yaml"),
    ),
    (
        "rules/tasksentry_image_rules.yaml",
        include_str!("../../rules/tasksentry_image_rules.yaml"),
    ),
    (
        "rules/tasksentry_internal_rules.yaml",
        include_str!("../../rules/tasksentry_internal_rules.yaml"),
    ),
];

/// The embedded default rules as loader sources.
pub fn default_sources() -> Vec<RuleSource> {
    DEFAULT_RULE_FILES
        .iter()
        .map(|(name, text)| RuleSource {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}
