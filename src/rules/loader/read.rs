//! Reading: each file's YAML items, their keys checked and typed. Lists and macros go to
//! `merge` as soon as they are read, rules as a [`RuleItem`].

use std::collections::{BTreeSet, HashSet};

use super::exceptions::Exception;
use super::merge::Overrides;
use super::{Definition, ListDef, Loader, MacroDef, item_label};
use crate::priority::Priority;
use crate::rules::ENGINE_VERSION;
use crate::rules::syntax::diag::Loc;
use crate::rules::syntax::text::PosText;
use crate::rules::syntax::yaml::{self, Kind, Node};

/// The version of the `container` plugin whose fields TaskSentry provides natively.
const CONTAINER_PLUGIN: (u64, u64, u64) = (0, 4, 0);

/// A `major[.minor[.patch]]` version (missing parts are 0; pre-release and build suffixes are
/// ignored).
fn parse_semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.trim().split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// A YAML boolean, spelled as Falco's loader accepts it.
pub(super) fn parse_bool(node: &Node) -> Option<bool> {
    match node.as_str()? {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A rule item's keys, read and checked; nothing merged yet.
pub(super) struct RuleItem {
    pub(super) name: String,
    /// Where the name is.
    pub(super) at: Loc,
    /// `rule 'name'`, for diagnostics.
    pub(super) label: String,
    /// The deprecated `append: true`.
    pub(super) append: bool,
    pub(super) overrides: Overrides,
    pub(super) priority: Option<Priority>,
    pub(super) enabled: Option<bool>,
    /// `skip-if-unknown-filter`.
    pub(super) skip_unknown: Option<bool>,
    pub(super) tags: Option<BTreeSet<String>>,
    pub(super) source: Option<String>,
    pub(super) cond: Option<PosText>,
    pub(super) output: Option<PosText>,
    pub(super) desc: Option<String>,
    pub(super) exceptions: Option<Vec<Exception>>,
}

impl Loader<'_> {
    /// A scalar's text, each byte mapped to its position in the file.
    fn scalar_text(&self, node: &Node) -> PosText {
        let text = &self.files[self.file].text;
        match &node.kind {
            Kind::Scalar(value, style) => {
                let offs = yaml::scalar_offsets(text, node.offset, *style, value);
                PosText::with_locs(
                    value.clone(),
                    offs.into_iter().map(|o| self.loc(o)).collect(),
                )
            }
            _ => PosText::synthetic("", self.loc(node.offset)),
        }
    }

    /// Reads every item of one file's YAML documents.
    pub(super) fn read_file(&mut self, text: &str) {
        let docs = match yaml::parse(text) {
            Ok(d) => d,
            Err(e) => {
                let at = self.loc(e.offset);
                self.error(at, None, format!("YAML syntax error: {}", e.message));
                return;
            }
        };
        for doc in docs.into_iter().flatten() {
            match &doc.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if item.is_null() {
                            continue;
                        }
                        self.read_item(item);
                    }
                }
                _ if doc.is_null() => {}
                _ => {
                    let at = self.loc(doc.offset);
                    self.error(at, None, "Rules content is not yaml array of objects");
                }
            }
        }
    }

    /// Reads one top-level item: a version requirement, a list, a macro or a rule.
    fn read_item(&mut self, item: &Node) {
        let Kind::Map(entries) = &item.kind else {
            let at = self.loc(item.offset);
            self.error(
                at,
                None,
                format!(
                    "Unexpected element type: each item must be a mapping, found {}",
                    item.kind_name()
                ),
            );
            return;
        };
        let mut seen_keys: HashSet<&str> = HashSet::new();
        for (k, _) in entries {
            if let Some(key) = k.as_str()
                && !seen_keys.insert(key)
            {
                let at = self.loc(k.offset);
                self.warn(
                    at,
                    None,
                    format!("duplicate key '{key}': the first value is used"),
                );
            }
        }
        self.seq += 1;
        if let Some(v) = item.get("required_engine_version") {
            self.read_engine_version(v);
        } else if let Some(v) = item.get("required_plugin_versions") {
            self.read_plugin_versions(v);
        } else if item.get("list").is_some() {
            self.read_definition::<ListDef>(item, entries, Self::read_list_items);
        } else if item.get("macro").is_some() {
            self.read_definition::<MacroDef>(item, entries, Self::read_macro_condition);
        } else if item.get("rule").is_some() {
            self.read_rule(item, entries);
        } else {
            let at = self.loc(item.offset);
            self.warn(at, None, "Unknown top level item: it is ignored");
        }
    }

    /// `required_engine_version`: same major as [`ENGINE_VERSION`], and not newer.
    fn read_engine_version(&mut self, v: &Node) {
        let at = self.loc(v.offset);
        let Some(text) = v.as_str() else {
            self.error(at, None, "required_engine_version must be a version string");
            return;
        };
        let parsed = if let Ok(n) = text.parse::<u64>() {
            Some((0, n, 0))
        } else {
            parse_semver(text)
        };
        let Some(req) = parsed else {
            self.error(
                at,
                None,
                format!("Unable to parse engine version '{text}' as a semver string"),
            );
            return;
        };
        if req.0 != ENGINE_VERSION.0 || req > ENGINE_VERSION {
            self.error(
                at,
                None,
                format!(
                    "Rules require engine version {}.{}.{}, but engine version is {}.{}.{}",
                    req.0, req.1, req.2, ENGINE_VERSION.0, ENGINE_VERSION.1, ENGINE_VERSION.2
                ),
            );
        }
    }

    /// `required_plugin_versions`: only the `container` plugin is available (natively).
    fn read_plugin_versions(&mut self, v: &Node) {
        let at = self.loc(v.offset);
        let Kind::Seq(reqs) = &v.kind else {
            self.error(
                at,
                None,
                "required_plugin_versions must be a sequence of {name, version} mappings",
            );
            return;
        };
        for req in reqs {
            let rat = self.loc(req.offset);
            let (Some(name), Some(version)) = (
                req.get("name").and_then(Node::as_str),
                req.get("version").and_then(Node::as_str),
            ) else {
                self.error(rat, None, "a plugin requirement needs 'name' and 'version'");
                continue;
            };
            if parse_semver(version).is_none() {
                self.error(
                    rat,
                    None,
                    format!("plugin version '{version}' is not a semver string"),
                );
                continue;
            }
            let mut names = vec![(name.to_string(), version.to_string())];
            if let Some(Node {
                kind: Kind::Seq(alts),
                ..
            }) = req.get("alternatives")
            {
                for alt in alts {
                    if let (Some(n), Some(ver)) = (
                        alt.get("name").and_then(Node::as_str),
                        alt.get("version").and_then(Node::as_str),
                    ) {
                        if names.iter().any(|(x, _)| x == n) {
                            let aat = self.loc(alt.offset);
                            self.error(
                                aat,
                                None,
                                format!("plugin '{n}' appears twice in one requirement"),
                            );
                        }
                        names.push((n.to_string(), ver.to_string()));
                    }
                }
            }
            // The `container` plugin's fields are provided natively (at the level of the
            // container plugin 0.x series); other plugins are not available.
            let satisfied = names.iter().any(|(n, ver)| {
                n == "container"
                    && parse_semver(ver)
                        .is_some_and(|v| v.0 == CONTAINER_PLUGIN.0 && v <= CONTAINER_PLUGIN)
            });
            if !satisfied {
                self.error(rat, None, format!("Plugin '{name}' (version {version}) is required by the rules but not available"));
            }
        }
    }

    /// Warns about the keys of an item that are not in `allowed`.
    pub(super) fn warn_unknown_keys(
        &mut self,
        entries: &[(Node, Node)],
        allowed: &[&str],
        label: &str,
    ) {
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if !allowed.contains(&key) {
                let at = self.loc(k.offset);
                self.warn(
                    at,
                    Some(label.to_string()),
                    format!("Unknown key '{key}'. The key will be ignored."),
                );
            }
        }
    }

    /// The item's name under `key`, which must be a non-empty string.
    fn name_of(&mut self, item: &Node, key: &str) -> Option<(String, Loc)> {
        let node = item.get(key)?;
        let at = self.loc(node.offset);
        match node.as_str() {
            Some(s) if !s.is_empty() && !node.is_null() => Some((s.to_string(), at)),
            _ => {
                self.error(
                    at,
                    None,
                    format!("Value of '{key}' must be a non-empty string"),
                );
                None
            }
        }
    }

    /// Reads a list or a macro item and merges it into the collection.
    fn read_definition<T: Definition>(
        &mut self,
        item: &Node,
        entries: &[(Node, Node)],
        read_value: fn(&mut Self, &Node, &str, Loc) -> Option<T>,
    ) {
        let Some((name, at)) = self.name_of(item, T::KIND) else {
            return;
        };
        let label = item_label(T::KIND, &name);
        self.warn_unknown_keys(entries, &[T::KIND, T::VALUE, "append", "override"], &label);
        if let Some(why) = T::name_warning(&name) {
            self.warn(at, Some(label.clone()), why);
        }
        let Some((append, overrides)) =
            self.merge_mode(item, entries, &label, &[T::VALUE], &[T::VALUE])
        else {
            return;
        };
        let Some(node) = item.get(T::VALUE) else {
            self.error(
                at,
                Some(label),
                format!("Item has no mapping for key '{}'", T::VALUE),
            );
            return;
        };
        let Some(def) = read_value(self, node, &label, at) else {
            return;
        };
        let is_append = append
            || overrides
                .get(T::VALUE)
                .is_some_and(|(op, _)| op == "append");
        if append {
            self.warn(
                at,
                Some(label.clone()),
                format!(
                    "'append' is deprecated: use 'override: {{{}: append}}'",
                    T::VALUE
                ),
            );
        }
        self.merge_definition(name, at, label, def, is_append);
    }

    /// A list's `items`.
    fn read_list_items(&mut self, node: &Node, label: &str, at: Loc) -> Option<ListDef> {
        let mut items = Vec::new();
        match &node.kind {
            Kind::Seq(seq) => {
                for it in seq {
                    match it.as_str() {
                        Some(s) => items.push((s.to_string(), self.loc(it.offset))),
                        None => {
                            self.error_at(
                                it,
                                label,
                                format!("list items must be scalars, found {}", it.kind_name()),
                            );
                        }
                    }
                }
            }
            _ if node.is_null() => {}
            _ => {
                self.error_at(node, label, "'items' must be a sequence");
                return None;
            }
        }
        Some(ListDef {
            items,
            first_seq: self.seq,
            last_seq: self.seq,
            loc: at,
        })
    }

    /// A macro's `condition`.
    fn read_macro_condition(&mut self, node: &Node, label: &str, at: Loc) -> Option<MacroDef> {
        let cond = self.scalar_text(node);
        if cond.text.trim().is_empty() {
            self.error_at(node, label, "Macro condition must be a non-empty string");
            return None;
        }
        Some(MacroDef {
            cond,
            first_seq: self.seq,
            last_seq: self.seq,
            first_file: self.file,
            loc: at,
        })
    }

    /// `tags`: a sequence of strings.
    fn read_tags(&mut self, node: &Node, label: &str) -> Option<BTreeSet<String>> {
        match &node.kind {
            Kind::Seq(items) => {
                let mut tags = BTreeSet::new();
                for t in items {
                    match t.as_str() {
                        Some(s) => {
                            tags.insert(s.to_string());
                        }
                        None => {
                            self.error_at(t, label, "tags must be strings");
                            return None;
                        }
                    }
                }
                Some(tags)
            }
            _ if node.is_null() => Some(BTreeSet::new()),
            _ => {
                self.error_at(node, label, "'tags' must be a sequence of strings");
                None
            }
        }
    }

    /// `priority`: one of Falco's priority names.
    fn read_priority(&mut self, node: &Node, label: &str) -> Option<Priority> {
        let at = self.loc(node.offset);
        match node.as_str().map(str::parse::<Priority>) {
            Some(Ok(p)) => Some(p),
            _ => {
                let shown = node.as_str().unwrap_or("<not a string>").to_string();
                self.error(at, Some(label.to_string()), format!("Invalid priority '{shown}': expecting one of emergency, alert, critical, error, warning, notice, informational (info), debug"));
                None
            }
        }
    }

    /// A boolean key: `Some(None)` when absent, `None` after an error.
    fn read_bool_key(&mut self, item: &Node, key: &str, label: &str) -> Option<Option<bool>> {
        let Some(v) = item.get(key) else {
            return Some(None);
        };
        match parse_bool(v) {
            Some(b) => Some(Some(b)),
            None => {
                self.error_at(v, label, format!("'{key}' must be a boolean"));
                None
            }
        }
    }

    /// Reads a rule item, checking every key so that every error is reported, and merges it.
    fn read_rule(&mut self, item: &Node, entries: &[(Node, Node)]) {
        const KEYS: &[&str] = &[
            "rule",
            "condition",
            "output",
            "desc",
            "priority",
            "source",
            "enabled",
            "tags",
            "exceptions",
            "warn_evttypes",
            "skip-if-unknown-filter",
            "capture",
            "capture_duration",
            "append",
            "override",
        ];
        const APPEND: &[&str] = &["condition", "output", "desc", "tags", "exceptions"];
        const REPLACE: &[&str] = &[
            "condition",
            "output",
            "desc",
            "priority",
            "tags",
            "exceptions",
            "enabled",
            "warn_evttypes",
            "skip-if-unknown-filter",
            "capture",
            "capture_duration",
        ];
        let Some((name, at)) = self.name_of(item, "rule") else {
            return;
        };
        let label = item_label("rule", &name);
        self.warn_unknown_keys(entries, KEYS, &label);
        let Some((append, overrides)) = self.merge_mode(item, entries, &label, APPEND, REPLACE)
        else {
            return;
        };
        // Validate typed keys up front so that every error is reported.
        let mut ok = true;
        let priority = match item.get("priority") {
            Some(p) => {
                let r = self.read_priority(p, &label);
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let enabled = self.read_bool_key(item, "enabled", &label);
        ok &= enabled.is_some();
        let enabled = enabled.flatten();
        let skip_unknown = self.read_bool_key(item, "skip-if-unknown-filter", &label);
        ok &= skip_unknown.is_some();
        for key in ["warn_evttypes", "capture"] {
            ok &= self.read_bool_key(item, key, &label).is_some();
        }
        let tags = match item.get("tags") {
            Some(t) => {
                let r = self.read_tags(t, &label);
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let source = item
            .get("source")
            .and_then(Node::as_str)
            .map(str::to_string);
        let cond = item.get("condition").map(|n| self.scalar_text(n));
        let output = item.get("output").map(|n| {
            let t = self.scalar_text(n);
            trim_pos(&t)
        });
        let desc = item.get("desc").and_then(Node::as_str).map(str::to_string);
        let existing_ex = self.rules.get(&name).map(|r| r.exceptions.clone());
        let merging_exceptions = append
            || overrides
                .get("exceptions")
                .is_some_and(|(op, _)| op == "append");
        let exceptions = match item.get("exceptions") {
            Some(e) => {
                let r = self.read_exceptions(
                    e,
                    &label,
                    if merging_exceptions {
                        existing_ex.as_deref()
                    } else {
                        None
                    },
                );
                ok &= r.is_some();
                r
            }
            None => None,
        };
        if !ok {
            return;
        }
        self.merge_rule(
            item,
            entries,
            RuleItem {
                name,
                at,
                label,
                append,
                overrides,
                priority,
                enabled,
                skip_unknown: skip_unknown.flatten(),
                tags,
                source,
                cond,
                output,
                desc,
                exceptions,
            },
        );
    }
}

/// A text with its leading and trailing white space removed (positions kept).
fn trim_pos(t: &PosText) -> PosText {
    let start = t.text.len() - t.text.trim_start().len();
    let end = t.text.trim_end().len().max(start);
    PosText::with_locs(t.text[start..end].to_string(), t.locs[start..=end].to_vec())
}
