//! The loader: reader (YAML items with positions), collector (one shared collection of lists,
//! macros and rules across files, with Falco's append/override/redefinition and visibility
//! rules, spec §1.2–§1.10) and the final compile into a [`RuleSet`].
//!
//! The loader keeps going past a broken item so that every error of a load is reported.

use crate::priority::Priority;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::compile::{self, Compiler, Issue, ParsedMacro, Scope};
use super::condition::{self, Op, PosText};
use super::diag::{self, Diagnostic, Loc, Severity};
use super::yaml::{self, Kind, Node, Style};
use super::{
    CompiledRule, ENGINE_VERSION, LoadOptions, LoadOutcome, RuleInfo, RuleSet, RuleSource,
    SkippedRule,
};
use crate::event::EventType;

/// A scalar exception value or a list of them.
#[derive(Debug, Clone)]
enum ExItem {
    Scalar(String, Loc),
    List(Vec<(String, Loc)>),
}

#[derive(Debug, Clone)]
struct Exception {
    name: String,
    loc: Loc,
    fields: Vec<(String, Loc)>,
    fields_is_list: bool,
    comps: Vec<(String, Loc)>,
    values: Vec<(Vec<ExItem>, Loc)>,
}

#[derive(Debug, Clone)]
struct ListDef {
    items: Vec<(String, Loc)>,
    first_seq: u64,
    last_seq: u64,
    loc: Loc,
}

#[derive(Debug, Clone)]
struct MacroDef {
    cond: PosText,
    first_seq: u64,
    last_seq: u64,
    first_file: usize,
    loc: Loc,
}

#[derive(Debug, Clone)]
struct RuleDef {
    cond: PosText,
    output: PosText,
    desc: String,
    priority: Priority,
    tags: BTreeSet<String>,
    enabled: bool,
    source: Option<String>,
    exceptions: Vec<Exception>,
    skip_unknown: bool,
    first_seq: u64,
    /// The file of the latest definition, append or override: the rule's condition may use
    /// the macros of that file and every earlier one (Falco recompiles the whole collection
    /// after each file, so a rule redefined or appended in file N sees file N's macros).
    last_file: usize,
    loc: Loc,
}

/// `override` entries: key -> (append|replace, location of the key).
type Overrides = HashMap<String, (String, Loc)>;

struct Loader<'s> {
    files: &'s [RuleSource],
    options: &'s LoadOptions,
    diags: Vec<Diagnostic>,
    seen: HashSet<(usize, usize, Option<String>, String)>,
    seq: u64,
    lists: HashMap<String, ListDef>,
    list_order: Vec<String>,
    macros: HashMap<String, MacroDef>,
    macro_order: Vec<String>,
    rules: HashMap<String, RuleDef>,
    rule_order: Vec<String>,
    file: usize,
}

fn item_label(kind: &str, name: &str) -> String {
    format!("{kind} '{name}'")
}

/// Loads rule files into a rule set.
pub fn load(sources: &[RuleSource], options: &LoadOptions) -> LoadOutcome {
    let mut l = Loader {
        files: sources,
        options,
        diags: Vec::new(),
        seen: HashSet::new(),
        seq: 0,
        lists: HashMap::new(),
        list_order: Vec::new(),
        macros: HashMap::new(),
        macro_order: Vec::new(),
        rules: HashMap::new(),
        rule_order: Vec::new(),
        file: 0,
    };
    for (idx, source) in sources.iter().enumerate() {
        l.file = idx;
        l.read_file(&source.text);
    }
    l.finish()
}

fn parse_bool(node: &Node) -> Option<bool> {
    match node.as_str()? {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

impl<'s> Loader<'s> {
    fn loc(&self, offset: usize) -> Loc {
        diag::loc(self.file, offset)
    }

    fn report(&mut self, severity: Severity, at: Loc, item: Option<String>, message: String) {
        let (file, offset) = diag::unpack(at);
        // The same error reached through several rules (in a shared macro) is reported once;
        // warnings about a rule (skips) are reported per rule.
        let key_item = if severity == Severity::Warning {
            item.clone()
        } else {
            None
        };
        if !self.seen.insert((file, offset, key_item, message.clone())) {
            return;
        }
        let (name, text) = match self.files.get(file) {
            Some(f) => (f.name.as_str(), f.text.as_str()),
            None => ("<unknown>", ""),
        };
        self.diags
            .push(Diagnostic::at(severity, name, text, offset, item, message));
    }

    fn error(&mut self, at: Loc, item: Option<String>, message: impl Into<String>) {
        self.report(Severity::Error, at, item, message.into());
    }

    fn warn(&mut self, at: Loc, item: Option<String>, message: impl Into<String>) {
        self.report(Severity::Warning, at, item, message.into());
    }

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

    fn read_file(&mut self, text: &str) {
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
            self.read_list(item, entries);
        } else if item.get("macro").is_some() {
            self.read_macro(item, entries);
        } else if item.get("rule").is_some() {
            self.read_rule(item, entries);
        } else {
            let at = self.loc(item.offset);
            self.warn(at, None, "Unknown top level item: it is ignored");
        }
    }

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

    /// Validates `append`/`override`; returns (append, override map key -> (op, loc)).
    fn merge_mode(
        &mut self,
        item: &Node,
        entries: &[(Node, Node)],
        label: &str,
        append_allowed: &[&str],
        replace_allowed: &[&str],
    ) -> Option<(bool, Overrides)> {
        let append = match item.get("append") {
            Some(v) => match parse_bool(v) {
                Some(b) => b,
                None => {
                    let at = self.loc(v.offset);
                    self.error(at, Some(label.to_string()), "'append' must be a boolean");
                    return None;
                }
            },
            None => false,
        };
        let mut overrides = HashMap::new();
        if let Some(ov) = item.get("override") {
            let ov_at = self.loc(ov.offset);
            if append {
                self.error(
                    ov_at,
                    Some(label.to_string()),
                    "Keys 'override' and 'append: true' cannot be used together.",
                );
                return None;
            }
            let Kind::Map(pairs) = &ov.kind else {
                self.error(
                    ov_at,
                    Some(label.to_string()),
                    "'override' must be a mapping from key to append or replace",
                );
                return None;
            };
            let mut ok = true;
            for (k, v) in pairs {
                let kat = self.loc(k.offset);
                let vat = self.loc(v.offset);
                let key = k.as_str().unwrap_or_default().to_string();
                let op = v.as_str().unwrap_or_default().to_string();
                let allowed = match op.as_str() {
                    "append" => append_allowed,
                    "replace" => replace_allowed,
                    _ => {
                        self.error(vat, Some(label.to_string()), format!("Invalid override value '{op}' for key '{key}': expecting 'append' or 'replace'"));
                        ok = false;
                        continue;
                    }
                };
                if !allowed.contains(&key.as_str()) {
                    self.error(
                        kat,
                        Some(label.to_string()),
                        format!("Key '{key}' cannot be overridden with '{op}'"),
                    );
                    ok = false;
                    continue;
                }
                if item.get(&key).is_none() {
                    self.error(
                        kat,
                        Some(label.to_string()),
                        format!(
                            "{} {op} override for '{key}' was specified but '{key}' is not defined",
                            if op == "append" { "An" } else { "A" }
                        ),
                    );
                    ok = false;
                    continue;
                }
                overrides.insert(key, (op, kat));
            }
            for (k, _) in entries {
                let Some(key) = k.as_str() else { continue };
                let overridable = append_allowed.contains(&key) || replace_allowed.contains(&key);
                if overridable
                    && !overrides.contains_key(key)
                    && !pairs.iter().any(|(pk, _)| pk.as_str() == Some(key))
                {
                    let kat = self.loc(k.offset);
                    self.error(kat, Some(label.to_string()), format!("Unexpected key '{key}': no corresponding entry under 'override' is defined."));
                    ok = false;
                }
            }
            if !ok {
                return None;
            }
        }
        Some((append, overrides))
    }

    fn warn_unknown_keys(&mut self, entries: &[(Node, Node)], allowed: &[&str], label: &str) {
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

    fn read_list(&mut self, item: &Node, entries: &[(Node, Node)]) {
        let Some((name, at)) = self.name_of(item, "list") else {
            return;
        };
        let label = item_label("list", &name);
        self.warn_unknown_keys(entries, &["list", "items", "append", "override"], &label);
        if !name.bytes().all(|c| {
            !(c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b'"' | b'\'' | b'=' | b','))
        }) {
            self.warn(
                at,
                Some(label.clone()),
                "list name is not a bare string: it cannot be referenced from conditions",
            );
        }
        let Some((append, overrides)) =
            self.merge_mode(item, entries, &label, &["items"], &["items"])
        else {
            return;
        };
        let Some(items_node) = item.get("items") else {
            self.error(at, Some(label), "Item has no mapping for key 'items'");
            return;
        };
        let mut items = Vec::new();
        match &items_node.kind {
            Kind::Seq(seq) => {
                for it in seq {
                    match it.as_str() {
                        Some(s) => items.push((s.to_string(), self.loc(it.offset))),
                        None => {
                            let iat = self.loc(it.offset);
                            self.error(
                                iat,
                                Some(label.clone()),
                                format!("list items must be scalars, found {}", it.kind_name()),
                            );
                        }
                    }
                }
            }
            _ if items_node.is_null() => {}
            _ => {
                let iat = self.loc(items_node.offset);
                self.error(iat, Some(label), "'items' must be a sequence");
                return;
            }
        }
        let is_append = append || overrides.get("items").is_some_and(|(op, _)| op == "append");
        if append {
            self.warn(
                at,
                Some(label.clone()),
                "'append' is deprecated: use 'override: {items: append}'",
            );
        }
        let seq = self.seq;
        if is_append {
            match self.lists.get_mut(&name) {
                Some(l) => {
                    l.items.extend(items);
                    l.last_seq = seq;
                }
                None => self.error(
                    at,
                    Some(label),
                    format!(
                        "List '{name}' has 'append' key but no list by that name already exists"
                    ),
                ),
            }
            return;
        }
        match self.lists.get_mut(&name) {
            Some(l) => {
                l.items = items;
                l.last_seq = seq;
                l.loc = at;
            }
            None => {
                self.list_order.push(name.clone());
                self.lists.insert(
                    name,
                    ListDef {
                        items,
                        first_seq: seq,
                        last_seq: seq,
                        loc: at,
                    },
                );
            }
        }
    }

    fn read_macro(&mut self, item: &Node, entries: &[(Node, Node)]) {
        let Some((name, at)) = self.name_of(item, "macro") else {
            return;
        };
        let label = item_label("macro", &name);
        self.warn_unknown_keys(
            entries,
            &["macro", "condition", "append", "override"],
            &label,
        );
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.warn(at, Some(label.clone()), "macro name should match [a-zA-Z]+[a-zA-Z0-9_]*: it cannot be referenced from conditions");
        }
        let Some((append, overrides)) =
            self.merge_mode(item, entries, &label, &["condition"], &["condition"])
        else {
            return;
        };
        let Some(cnode) = item.get("condition") else {
            self.error(at, Some(label), "Item has no mapping for key 'condition'");
            return;
        };
        let cond = self.scalar_text(cnode);
        if cond.text.trim().is_empty() {
            let cat = self.loc(cnode.offset);
            self.error(
                cat,
                Some(label),
                "Macro condition must be a non-empty string",
            );
            return;
        }
        let is_append = append
            || overrides
                .get("condition")
                .is_some_and(|(op, _)| op == "append");
        if append {
            self.warn(
                at,
                Some(label.clone()),
                "'append' is deprecated: use 'override: {condition: append}'",
            );
        }
        let seq = self.seq;
        let file = self.file;
        if is_append {
            match self.macros.get_mut(&name) {
                Some(m) => {
                    m.cond.push_str(" ", at);
                    m.cond.push(&cond);
                    m.last_seq = seq;
                }
                None => self.error(
                    at,
                    Some(label),
                    format!(
                        "Macro '{name}' has 'append' key but no macro by that name already exists"
                    ),
                ),
            }
            return;
        }
        match self.macros.get_mut(&name) {
            Some(m) => {
                m.cond = cond;
                m.last_seq = seq;
                m.loc = at;
            }
            None => {
                self.macro_order.push(name.clone());
                self.macros.insert(
                    name,
                    MacroDef {
                        cond,
                        first_seq: seq,
                        last_seq: seq,
                        first_file: file,
                        loc: at,
                    },
                );
            }
        }
    }

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
                            let at = self.loc(t.offset);
                            self.error(at, Some(label.to_string()), "tags must be strings");
                            return None;
                        }
                    }
                }
                Some(tags)
            }
            _ if node.is_null() => Some(BTreeSet::new()),
            _ => {
                let at = self.loc(node.offset);
                self.error(
                    at,
                    Some(label.to_string()),
                    "'tags' must be a sequence of strings",
                );
                None
            }
        }
    }

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

    fn read_bool_key(&mut self, item: &Node, key: &str, label: &str) -> Option<Option<bool>> {
        let Some(v) = item.get(key) else {
            return Some(None);
        };
        match parse_bool(v) {
            Some(b) => Some(Some(b)),
            None => {
                let at = self.loc(v.offset);
                self.error(
                    at,
                    Some(label.to_string()),
                    format!("'{key}' must be a boolean"),
                );
                None
            }
        }
    }

    fn scalar_or_list(&mut self, node: &Node, label: &str) -> Option<ExItem> {
        match &node.kind {
            Kind::Scalar(s, _) => Some(ExItem::Scalar(s.clone(), self.loc(node.offset))),
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for it in items {
                    match it.as_str() {
                        Some(s) => out.push((s.to_string(), self.loc(it.offset))),
                        None => {
                            let at = self.loc(it.offset);
                            self.error(
                                at,
                                Some(label.to_string()),
                                "exception values may nest at most one list deep",
                            );
                            return None;
                        }
                    }
                }
                Some(ExItem::List(out))
            }
            Kind::Map(_) => {
                let at = self.loc(node.offset);
                self.error(
                    at,
                    Some(label.to_string()),
                    "exception values must be scalars or lists",
                );
                None
            }
        }
    }

    /// Reads `exceptions`; `existing` is the rule's current exceptions when merging.
    fn read_exceptions(
        &mut self,
        node: &Node,
        label: &str,
        existing: Option<&[Exception]>,
    ) -> Option<Vec<Exception>> {
        let Kind::Seq(items) = &node.kind else {
            if node.is_null() {
                return Some(Vec::new());
            }
            let at = self.loc(node.offset);
            self.error(
                at,
                Some(label.to_string()),
                "'exceptions' must be a sequence",
            );
            return None;
        };
        let mut out: Vec<Exception> = Vec::new();
        let mut ok = true;
        for ex in items {
            let at = self.loc(ex.offset);
            let Kind::Map(ex_entries) = &ex.kind else {
                self.error(
                    at,
                    Some(label.to_string()),
                    "each exception must be a mapping",
                );
                ok = false;
                continue;
            };
            self.warn_unknown_keys(ex_entries, &["name", "fields", "comps", "values"], label);
            let Some(name) = ex
                .get("name")
                .and_then(Node::as_str)
                .filter(|s| !s.is_empty())
            else {
                self.error(
                    at,
                    Some(label.to_string()),
                    "Item has no mapping for key 'name'",
                );
                ok = false;
                continue;
            };
            let name = name.to_string();
            if out.iter().any(|e| e.name == name) {
                self.warn(
                    at,
                    Some(label.to_string()),
                    format!("Multiple definitions of exception '{name}' in the same rule"),
                );
            }
            let prior = existing.and_then(|ex| ex.iter().find(|e| e.name == name));
            // Values.
            let mut values = Vec::new();
            if let Some(vnode) = ex.get("values") {
                match &vnode.kind {
                    Kind::Seq(tuples) => {
                        for t in tuples {
                            let tat = self.loc(t.offset);
                            match &t.kind {
                                Kind::Seq(elems) => {
                                    let mut tuple = Vec::new();
                                    for e in elems {
                                        match self.scalar_or_list(e, label) {
                                            Some(x) => tuple.push(x),
                                            None => ok = false,
                                        }
                                    }
                                    values.push((tuple, tat));
                                }
                                Kind::Scalar(..) => match self.scalar_or_list(t, label) {
                                    Some(x) => values.push((vec![x], tat)),
                                    None => ok = false,
                                },
                                Kind::Map(_) => {
                                    self.error(
                                        tat,
                                        Some(label.to_string()),
                                        "exception values must be sequences or scalars",
                                    );
                                    ok = false;
                                }
                            }
                        }
                    }
                    _ if vnode.is_null() => {}
                    _ => {
                        let vat = self.loc(vnode.offset);
                        self.error(
                            vat,
                            Some(label.to_string()),
                            "exception 'values' must be a sequence",
                        );
                        ok = false;
                        continue;
                    }
                }
            }
            if let Some(prior) = prior {
                for key in ["fields", "comps"] {
                    if let Some(k) = ex.get(key) {
                        let kat = self.loc(k.offset);
                        self.error(kat, Some(label.to_string()), format!("Can not append exception '{name}': '{key}' may not be given when appending values to an existing exception"));
                        ok = false;
                    }
                }
                let mut merged = prior.clone();
                merged.values.extend(values);
                merged.loc = at;
                self.validate_tuples(&merged, label, &mut ok);
                out.push(merged);
                continue;
            }
            let Some(fnode) = ex.get("fields") else {
                self.error(
                    at,
                    Some(label.to_string()),
                    format!("Item has no mapping for key 'fields' (exception '{name}')"),
                );
                ok = false;
                continue;
            };
            let (fields, fields_is_list) = match &fnode.kind {
                Kind::Scalar(s, _) => (vec![(s.clone(), self.loc(fnode.offset))], false),
                Kind::Seq(fs) => {
                    let mut v = Vec::new();
                    for f in fs {
                        match f.as_str() {
                            Some(s) => v.push((s.to_string(), self.loc(f.offset))),
                            None => {
                                let fat = self.loc(f.offset);
                                self.error(
                                    fat,
                                    Some(label.to_string()),
                                    "exception fields must be strings",
                                );
                                ok = false;
                            }
                        }
                    }
                    (v, true)
                }
                Kind::Map(_) => {
                    let fat = self.loc(fnode.offset);
                    self.error(
                        fat,
                        Some(label.to_string()),
                        "exception 'fields' must be a field or a list of fields",
                    );
                    ok = false;
                    continue;
                }
            };
            let comps = match ex.get("comps") {
                None => {
                    let default = if fields_is_list { "=" } else { "in" };
                    fields
                        .iter()
                        .map(|(_, l)| (default.to_string(), *l))
                        .collect::<Vec<_>>()
                }
                Some(c) => match &c.kind {
                    Kind::Scalar(s, _) if !fields_is_list => vec![(s.clone(), self.loc(c.offset))],
                    Kind::Seq(cs) if fields_is_list => cs
                        .iter()
                        .map(|x| {
                            (
                                x.as_str().unwrap_or_default().to_string(),
                                self.loc(x.offset),
                            )
                        })
                        .collect(),
                    _ => {
                        let cat = self.loc(c.offset);
                        self.error(cat, Some(label.to_string()), "exception 'comps' must be a list when 'fields' is a list, and a single operator otherwise");
                        ok = false;
                        continue;
                    }
                },
            };
            for (comp, cat) in &comps {
                let known = Op::from_token(comp).is_some()
                    || comp.split_once(' ').is_some_and(|(o, m)| {
                        Op::from_token(o).is_some() && matches!(m, "oneof" | "anyof" | "allof")
                    });
                if !known {
                    self.error(
                        *cat,
                        Some(label.to_string()),
                        format!("'{comp}' is not a supported comparison operator"),
                    );
                    ok = false;
                }
            }
            if !fields_is_list
                && !comps.iter().all(|(c, _)| {
                    matches!(c.as_str(), "in" | "pmatch" | "intersects") || c.contains(' ')
                })
            {
                let cat = comps.first().map_or(at, |c| c.1);
                self.error(
                    cat,
                    Some(label.to_string()),
                    "with a single field, 'comps' must be in, pmatch or intersects",
                );
                ok = false;
            }
            if fields_is_list && comps.len() != fields.len() {
                let cat = ex.get("comps").map_or(at, |c| self.loc(c.offset));
                self.error(cat, Some(label.to_string()), format!("Rule exception item '{name}': fields and comps lists must have equal length"));
                ok = false;
                continue;
            }
            let exc = Exception {
                name,
                loc: at,
                fields,
                fields_is_list,
                comps,
                values,
            };
            self.validate_tuples(&exc, label, &mut ok);
            out.push(exc);
        }
        ok.then_some(out)
    }

    fn validate_tuples(&mut self, ex: &Exception, label: &str, ok: &mut bool) {
        for (tuple, tat) in &ex.values {
            if ex.fields_is_list {
                if tuple.len() != ex.fields.len() {
                    self.error(*tat, Some(label.to_string()), format!("Rule exception item '{}': fields and values lists must have equal length", ex.name));
                    *ok = false;
                }
            } else if tuple.iter().any(|t| matches!(t, ExItem::List(_))) {
                self.error(*tat, Some(label.to_string()), format!("Rule exception item '{}': with a single field, values must be a flat list of scalars", ex.name));
                *ok = false;
            }
        }
    }

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
        let seq = self.seq;
        let file = self.file;
        if append {
            self.warn(
                at,
                Some(label.clone()),
                "'append' is deprecated: use 'override'",
            );
            for (k, _) in entries {
                let key = k.as_str().unwrap_or_default();
                if !matches!(key, "rule" | "append" | "condition" | "exceptions") {
                    let kat = self.loc(k.offset);
                    self.error(
                        kat,
                        Some(label.clone()),
                        format!(
                            "Key '{key}' cannot be appended to (only 'condition' and 'exceptions')"
                        ),
                    );
                    return;
                }
            }
            if cond.is_none() && exceptions.is_none() {
                self.error(
                    at,
                    Some(label),
                    "Appended rule must have exceptions or condition property",
                );
                return;
            }
            let Some(rule) = self.rules.get_mut(&name) else {
                self.error(
                    at,
                    Some(label),
                    format!(
                        "Rule '{name}' has 'append' key but no rule by that name already exists"
                    ),
                );
                return;
            };
            if let Some(c) = cond {
                rule.cond.push_str(" ", at);
                rule.cond.push(&c);
            }
            if let Some(ex) = exceptions {
                merge_exceptions(&mut rule.exceptions, ex);
            }
            rule.last_file = file;
            return;
        }
        if !overrides.is_empty() {
            let Some(rule) = self.rules.get_mut(&name) else {
                self.error(at, Some(label), format!("An override was specified for rule '{name}' but no rule by that name already exists"));
                return;
            };
            rule.last_file = file;
            // Appends first, then replaces.
            for phase in ["append", "replace"] {
                for (key, (op, _)) in &overrides {
                    if op != phase {
                        continue;
                    }
                    let is_append = phase == "append";
                    match key.as_str() {
                        "condition" => {
                            if let Some(c) = &cond {
                                if is_append {
                                    rule.cond.push_str(" ", at);
                                    rule.cond.push(c);
                                } else {
                                    rule.cond = c.clone();
                                }
                            }
                        }
                        "output" => {
                            if let Some(o) = &output {
                                if is_append {
                                    rule.output.push_str(" ", at);
                                    rule.output.push(o);
                                } else {
                                    rule.output = o.clone();
                                }
                            }
                        }
                        "desc" => {
                            if let Some(d) = &desc {
                                rule.desc = if is_append {
                                    format!("{} {d}", rule.desc)
                                } else {
                                    d.clone()
                                };
                            }
                        }
                        "tags" => {
                            if let Some(t) = &tags {
                                if is_append {
                                    rule.tags.extend(t.iter().cloned());
                                } else {
                                    rule.tags = t.clone();
                                }
                            }
                        }
                        "exceptions" => {
                            if let Some(ex) = &exceptions {
                                if is_append {
                                    merge_exceptions(&mut rule.exceptions, ex.clone());
                                } else {
                                    rule.exceptions = ex.clone();
                                }
                            }
                        }
                        "priority" => {
                            if let Some(p) = priority {
                                rule.priority = p;
                            }
                        }
                        "enabled" => {
                            if let Some(e) = enabled {
                                rule.enabled = e;
                            }
                        }
                        "skip-if-unknown-filter" => {
                            if let Some(Some(s)) =
                                item.get("skip-if-unknown-filter").map(parse_bool)
                            {
                                rule.skip_unknown = s;
                            }
                        }
                        _ => {}
                    }
                }
            }
            return;
        }
        let has_body = cond.is_some()
            || output.is_some()
            || desc.is_some()
            || priority.is_some()
            || item.get("priority").is_some();
        if !has_body {
            // Legacy form: only toggles `enabled`.
            let Some(e) = enabled else {
                self.error(at, Some(label), "Item has no mapping for key 'condition'");
                return;
            };
            self.warn(
                at,
                Some(label.clone()),
                "a rule item with only 'enabled' is deprecated: use 'override: {enabled: replace}'",
            );
            match self.rules.get_mut(&name) {
                Some(r) => r.enabled = e,
                None => self.error(
                    at,
                    Some(label),
                    format!(
                        "Rule '{name}' has 'enabled' key but no rule by that name already exists"
                    ),
                ),
            }
            return;
        }
        let mut missing = false;
        for key in ["condition", "output", "desc", "priority"] {
            if item.get(key).is_none() {
                self.error(
                    at,
                    Some(label.clone()),
                    format!("Item has no mapping for key '{key}'"),
                );
                missing = true;
            }
        }
        let (Some(cond), Some(output), Some(desc), Some(priority)) = (cond, output, desc, priority)
        else {
            let _ = missing;
            return;
        };
        let def = RuleDef {
            cond,
            output,
            desc,
            priority,
            tags: tags.unwrap_or_default(),
            enabled: enabled.unwrap_or(true),
            source: source.clone(),
            exceptions: exceptions.unwrap_or_default(),
            skip_unknown: skip_unknown.flatten().unwrap_or(false),
            first_seq: seq,
            last_file: file,
            loc: at,
        };
        match self.rules.get_mut(&name) {
            Some(old) => {
                let old_src = old.source.clone().unwrap_or_else(|| "syscall".into());
                if let Some(new_src) = &source
                    && *new_src != old_src
                {
                    self.error(at, Some(label), format!("Rule '{name}' redefined with a different source ('{new_src}', was '{old_src}')"));
                    return;
                }
                let first_seq = old.first_seq;
                *old = RuleDef { first_seq, ..def };
            }
            None => {
                self.rule_order.push(name.clone());
                self.rules.insert(name, def);
            }
        }
    }

    fn finish(mut self) -> LoadOutcome {
        // 1. Lists, in order of first definition; items naming an earlier list expand.
        let mut order: Vec<String> = self.list_order.clone();
        order.sort_by_key(|n| self.lists.get(n).map_or(0, |l| l.first_seq));
        let mut expanded: HashMap<String, Vec<String>> = HashMap::new();
        let mut used_lists: HashSet<String> = HashSet::new();
        for name in &order {
            let Some(def) = self.lists.get(name).cloned() else {
                continue;
            };
            let mut items = Vec::new();
            for (item, iloc) in &def.items {
                match self.lists.get(item) {
                    Some(other) if other.first_seq < def.last_seq && item != name => {
                        used_lists.insert(item.clone());
                        items.extend(expanded.get(item).cloned().unwrap_or_default());
                    }
                    Some(other) => {
                        let (of, oo) = diag::unpack(other.loc);
                        let where_ = self.files.get(of).map(|f| {
                            let d = Diagnostic::at(
                                Severity::Warning,
                                &f.name,
                                &f.text,
                                oo,
                                None,
                                String::new(),
                            );
                            d.position()
                        });
                        self.warn(
                            *iloc,
                            Some(item_label("list", name)),
                            format!(
                                "list item '{item}' names list '{item}', which is defined later (at {}); it is taken literally, because a list can only include lists defined before it",
                                where_.unwrap_or_default()
                            ),
                        );
                        items.push(item.clone());
                    }
                    None => items.push(item.clone()),
                }
            }
            expanded.insert(name.clone(), items);
        }
        let list_subst: Vec<(String, Vec<String>)> = order
            .iter()
            .map(|n| (n.clone(), expanded.get(n).cloned().unwrap_or_default()))
            .collect();
        let substitute = |text: &mut PosText, used: &mut HashSet<String>| {
            for (name, items) in &list_subst {
                if text.text.contains(name.as_str())
                    && condition::substitute_list(text, name, items)
                {
                    used.insert(name.clone());
                }
            }
        };
        // 2. Macros: substitute lists, parse.
        let mut parsed: HashMap<String, ParsedMacro> = HashMap::new();
        let macro_order = self.macro_order.clone();
        for name in &macro_order {
            let Some(def) = self.macros.get(name).cloned() else {
                continue;
            };
            let mut text = def.cond.clone();
            substitute(&mut text, &mut used_lists);
            let expr = match condition::parse(&text.text) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.error(
                        text.loc(e.offset),
                        Some(item_label("macro", name)),
                        e.message,
                    );
                    None
                }
            };
            parsed.insert(
                name.clone(),
                ParsedMacro {
                    expr,
                    text,
                    first_seq: def.first_seq,
                    last_seq: def.last_seq,
                    first_file: def.first_file,
                },
            );
        }
        let mut compiler = Compiler {
            macros: &parsed,
            used_macros: HashSet::new(),
        };
        // Check every macro on its own (syntax was checked above): unknown and not-yet-defined
        // macros, loops, bad values. Field issues are reported through the rules using them.
        let mut macro_issues = Vec::new();
        for name in &macro_order {
            let Some(m) = parsed.get(name) else { continue };
            let Some(expr) = &m.expr else { continue };
            let mut issues = Vec::new();
            let mut stack = vec![name.clone()];
            let scope = Scope {
                rule_file: usize::MAX,
                macro_last_seq: Some(m.last_seq),
            };
            let _ = compiler.compile(expr, &m.text, scope, &mut stack, &mut issues);
            for issue in issues {
                if let Issue::Error(at, msg) = issue {
                    macro_issues.push((at, name.clone(), msg));
                }
            }
        }
        compiler.used_macros.clear();
        for (at, name, msg) in macro_issues {
            self.error(at, Some(item_label("macro", &name)), msg);
        }
        // 3. Rules.
        let mut rule_order = self.rule_order.clone();
        rule_order.sort_by_key(|n| self.rules.get(n).map_or(0, |r| r.first_seq));
        let mut compiled = Vec::new();
        let mut skipped = Vec::new();
        for name in &rule_order {
            let Some(def) = self.rules.get(name).cloned() else {
                continue;
            };
            let label = item_label("rule", name);
            let source = def.source.clone().unwrap_or_else(|| "syscall".into());
            let mut text = build_condition(&def);
            substitute(&mut text, &mut used_lists);
            let expr = match condition::parse(&text.text) {
                Ok(e) => e,
                Err(e) => {
                    self.error(text.loc(e.offset), Some(label), e.message);
                    continue;
                }
            };
            let mut issues = Vec::new();
            let mut stack = Vec::new();
            let scope = Scope {
                rule_file: def.last_file,
                macro_last_seq: None,
            };
            let node = compiler.compile(&expr, &text, scope, &mut stack, &mut issues);
            let mut out_warnings = Vec::new();
            let output = match compile::compile_output(&def.output, &mut out_warnings) {
                Ok(o) => Some(o),
                Err(issue) => {
                    issues.push(issue);
                    None
                }
            };
            let mut field_issue: Option<(Loc, String, String)> = None;
            let mut had_error = false;
            for issue in issues {
                match issue {
                    Issue::Error(at, msg) => {
                        had_error = true;
                        self.error(at, Some(label.clone()), msg);
                    }
                    Issue::Field(at, field, msg) => {
                        if field_issue.is_none() {
                            field_issue = Some((at, field, msg));
                        }
                    }
                }
            }
            if had_error {
                continue;
            }
            if source != "syscall" {
                self.warn(
                    def.loc,
                    Some(label),
                    format!("unknown source '{source}': the rule is skipped"),
                );
                skipped.push(SkippedRule {
                    name: name.clone(),
                    reason: format!("unknown source '{source}'"),
                });
                continue;
            }
            if let Some((at, field, msg)) = field_issue {
                if self.options.strict && !def.skip_unknown {
                    self.error(at, Some(label), format!("{msg} (strict mode)"));
                } else {
                    self.warn(at, Some(label), format!("{msg}: the rule is skipped"));
                    skipped.push(SkippedRule {
                        name: name.clone(),
                        reason: format!("uses field '{field}' that TaskSentry does not provide"),
                    });
                }
                continue;
            }
            for (at, msg) in out_warnings {
                self.warn(at, Some(label.clone()), msg);
            }
            let (Some(node), Some(output)) = (node, output) else {
                continue;
            };
            let types = compile::event_types(&node, false);
            let node = compile::hoist_types(compile::simplify(node), types);
            let event_types = if types == compile::ALL_TYPES {
                None
            } else {
                Some(
                    EventType::ALL
                        .into_iter()
                        .filter(|t| types & (1 << t.index()) != 0)
                        .collect(),
                )
            };
            let (file, offset) = diag::unpack(def.loc);
            let position = self.files.get(file).map(|f| {
                Diagnostic::at(
                    Severity::Warning,
                    &f.name,
                    &f.text,
                    offset,
                    None,
                    String::new(),
                )
            });
            let info = RuleInfo {
                name: name.clone(),
                priority: def.priority,
                tags: def.tags.iter().cloned().collect(),
                enabled: def.enabled,
                source,
                desc: def.desc.clone(),
                event_types,
                file: position
                    .as_ref()
                    .map(|p| p.file.clone())
                    .unwrap_or_default(),
                line: position.map_or(0, |p| p.line),
                condition: text.text.clone(),
            };
            compiled.push(CompiledRule {
                info,
                cond: node,
                output,
                types,
            });
        }
        // Unused lists and macros.
        let mut used_macros = compiler.used_macros.clone();
        used_macros.extend(self.macros_used_by_macros(&parsed));
        for name in self.list_order.clone() {
            if !used_lists.contains(&name)
                && let Some(l) = self.lists.get(&name)
            {
                let at = l.loc;
                self.warn(
                    at,
                    Some(item_label("list", &name)),
                    "list not referred to by any other rule/macro/list",
                );
            }
        }
        for name in self.macro_order.clone() {
            if !used_macros.contains(&name)
                && let Some(m) = self.macros.get(&name)
            {
                let at = m.loc;
                self.warn(
                    at,
                    Some(item_label("macro", &name)),
                    "macro not referred to by any other rule/macro",
                );
            }
        }
        // Report in file order, then by position.
        let file_index: HashMap<&str, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect();
        self.diags.sort_by_key(|d| {
            (
                file_index
                    .get(d.file.as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                d.line,
                d.column,
            )
        });
        let has_error = self.diags.iter().any(|d| d.severity == Severity::Error);
        let counts = (self.lists.len(), self.macros.len(), skipped.len());
        let ruleset = if has_error {
            None
        } else {
            Some(RuleSet::new(compiled, self.options.rule_matching, counts))
        };
        LoadOutcome {
            ruleset,
            diagnostics: self.diags,
            skipped,
        }
    }

    fn macros_used_by_macros(&self, parsed: &HashMap<String, ParsedMacro>) -> HashSet<String> {
        fn walk(e: &condition::Expr, out: &mut HashSet<String>) {
            match e {
                condition::Expr::And(v) | condition::Expr::Or(v) => {
                    v.iter().for_each(|x| walk(x, out))
                }
                condition::Expr::Not(x) => walk(x, out),
                condition::Expr::Macro { name, .. } => {
                    out.insert(name.clone());
                }
                condition::Expr::Check { .. } => {}
            }
        }
        let mut out = HashSet::new();
        for m in parsed.values() {
            if let Some(e) = &m.expr {
                walk(e, &mut out);
            }
        }
        out
    }
}

fn merge_exceptions(into: &mut Vec<Exception>, new: Vec<Exception>) {
    for ex in new {
        match into.iter_mut().find(|e| e.name == ex.name) {
            Some(existing) => *existing = ex,
            None => into.push(ex),
        }
    }
}

fn trim_pos(t: &PosText) -> PosText {
    let start = t.text.len() - t.text.trim_start().len();
    let end = t.text.trim_end().len().max(start);
    PosText::with_locs(t.text[start..end].to_string(), t.locs[start..=end].to_vec())
}

/// Builds the final condition text: `(C) and not E1 and not E2 ...` (spec §1.10).
fn build_condition(def: &RuleDef) -> PosText {
    let mut ex_parts: Vec<PosText> = Vec::new();
    for ex in &def.exceptions {
        let mut icond = PosText::synthetic("", ex.loc);
        if !ex.fields_is_list {
            let (field, floc) = &ex.fields[0];
            let comp = ex.comps.first().map_or("in", |c| c.0.as_str());
            let mut first = true;
            for (tuple, _) in &ex.values {
                for item in tuple {
                    if let ExItem::Scalar(v, vloc) = item {
                        if first {
                            icond.push_str(&format!("({field} {comp} ("), *floc);
                            first = false;
                        } else {
                            icond.push_str(", ", *vloc);
                        }
                        icond.push_str(&condition::quote_item(v), *vloc);
                    }
                }
            }
            if !first {
                icond.push_str("))", ex.loc);
            }
        } else {
            icond.push_str("(", ex.loc);
            let mut first_tuple = true;
            for (tuple, tloc) in &ex.values {
                if !first_tuple {
                    icond.push_str(" or ", *tloc);
                }
                first_tuple = false;
                icond.push_str("(", *tloc);
                for (k, (field, floc)) in ex.fields.iter().enumerate() {
                    if k > 0 {
                        icond.push_str(" and ", *tloc);
                    }
                    let (comp, cloc) = ex
                        .comps
                        .get(k)
                        .map_or(("=", *floc), |c| (c.0.as_str(), c.1));
                    icond.push_str(&format!(" {field}"), *floc);
                    icond.push_str(&format!(" {comp} "), cloc);
                    match tuple.get(k) {
                        Some(ExItem::List(items)) => {
                            icond.push_str("(", *tloc);
                            for (i, (v, vloc)) in items.iter().enumerate() {
                                if i > 0 {
                                    icond.push_str(", ", *vloc);
                                }
                                icond.push_str(&condition::quote_item(v), *vloc);
                            }
                            icond.push_str(")", *tloc);
                        }
                        Some(ExItem::Scalar(v, vloc)) => {
                            let is_list_op = matches!(comp, "in" | "pmatch" | "intersects")
                                || comp.contains(' ');
                            let rendered = if is_list_op {
                                if v.starts_with('(') {
                                    v.clone()
                                } else {
                                    format!("({v})")
                                }
                            } else {
                                condition::quote_item(v)
                            };
                            icond.push_str(&rendered, *vloc);
                        }
                        None => {}
                    }
                }
                icond.push_str(")", *tloc);
            }
            icond.push_str(")", ex.loc);
            if icond.text == "()" {
                icond = PosText::synthetic("", ex.loc);
            }
        }
        if !icond.text.is_empty() {
            ex_parts.push(icond);
        }
    }
    if ex_parts.is_empty() {
        return def.cond.clone();
    }
    let mut out = PosText::synthetic("(", def.loc);
    out.push(&def.cond);
    out.push_str(")", def.loc);
    for part in ex_parts {
        let at = part.loc(0);
        out.push_str(" and not ", at);
        out.push(&part);
    }
    out
}

/// The exception-compiled condition text of a rule definition, before list substitution
/// (exposed for the golden test of spec §6).
pub fn exception_text_for_test(cond: &str, exceptions_yaml: &str) -> Result<String, String> {
    let sources = [RuleSource {
        name: "t.yaml".into(),
        text: exceptions_yaml.to_string(),
    }];
    let options = LoadOptions::default();
    let mut l = Loader {
        files: &sources,
        options: &options,
        diags: Vec::new(),
        seen: HashSet::new(),
        seq: 0,
        lists: HashMap::new(),
        list_order: Vec::new(),
        macros: HashMap::new(),
        macro_order: Vec::new(),
        rules: HashMap::new(),
        rule_order: Vec::new(),
        file: 0,
    };
    let docs = yaml::parse(exceptions_yaml).map_err(|e| e.message)?;
    let node = docs.into_iter().flatten().next().ok_or("empty")?;
    let ex = l
        .read_exceptions(&node, "rule 't'", None)
        .ok_or_else(|| format!("{:?}", l.diags))?;
    let def = RuleDef {
        cond: PosText::synthetic(cond, 0),
        output: PosText::default(),
        desc: String::new(),
        priority: Priority::Debug,
        tags: BTreeSet::new(),
        enabled: true,
        source: None,
        exceptions: ex,
        skip_unknown: false,
        first_seq: 0,
        last_file: 0,
        loc: 0,
    };
    Ok(build_condition(&def).text)
}

/// The version of the `container` plugin whose fields TaskSentry provides natively.
const CONTAINER_PLUGIN: (u64, u64, u64) = (0, 4, 0);

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

#[allow(dead_code)]
fn unused_style(_: Style) {}
