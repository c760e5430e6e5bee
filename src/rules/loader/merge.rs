//! Merging: each item read goes into one collection shared across files, with Falco's rules for
//! `append: true` (deprecated), `override: {key: append|replace}`, and redefinition.

use std::collections::HashMap;

use super::exceptions::merge_exceptions;
use super::read::RuleItem;
use super::{Definition, Loader, RuleDef};
use crate::rules::syntax::diag::Loc;
use crate::rules::syntax::text::PosText;
use crate::rules::syntax::yaml::{Kind, Node};

/// `override` entries: key -> (append|replace, location of the key).
pub(super) type Overrides = HashMap<String, (String, Loc)>;

impl Loader<'_> {
    /// Validates `append`/`override`; returns (append, override map key -> (op, loc)).
    pub(super) fn merge_mode(
        &mut self,
        item: &Node,
        entries: &[(Node, Node)],
        label: &str,
        append_allowed: &[&str],
        replace_allowed: &[&str],
    ) -> Option<(bool, Overrides)> {
        let append = match item.get("append") {
            Some(v) => match super::read::parse_bool(v) {
                Some(b) => b,
                None => {
                    self.error_at(v, label, "'append' must be a boolean");
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
                    self.error_at(k, label, format!("Unexpected key '{key}': no corresponding entry under 'override' is defined."));
                    ok = false;
                }
            }
            if !ok {
                return None;
            }
        }
        Some((append, overrides))
    }

    /// Merges a list or macro into the collection: appended to the definition of the same
    /// name, or (re)defining it.
    pub(super) fn merge_definition<T: Definition>(
        &mut self,
        name: String,
        at: Loc,
        label: String,
        def: T,
        append: bool,
    ) {
        let defs = T::defs(self);
        match defs.get_mut(&name) {
            Some(old) if append => old.append(def),
            Some(old) => old.redefine(def),
            None if append => {
                let kind = T::KIND;
                let mut what = kind.to_string();
                what[..1].make_ascii_uppercase();
                self.error(
                    at,
                    Some(label),
                    format!(
                        "{what} '{name}' has 'append' key but no {kind} by that name already exists"
                    ),
                );
            }
            None => defs.insert(name, def),
        }
    }

    /// Merges a rule item into the collection.
    pub(super) fn merge_rule(&mut self, item: &Node, entries: &[(Node, Node)], rule: RuleItem) {
        if rule.append {
            self.append_rule(entries, rule);
        } else if !rule.overrides.is_empty() {
            self.override_rule(rule);
        } else {
            self.define_rule(item, rule);
        }
    }

    /// The deprecated `append: true`: the condition and exceptions are appended.
    fn append_rule(&mut self, entries: &[(Node, Node)], rule: RuleItem) {
        let RuleItem {
            name,
            at,
            label,
            cond,
            exceptions,
            ..
        } = rule;
        let file = self.file;
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
                format!("Rule '{name}' has 'append' key but no rule by that name already exists"),
            );
            return;
        };
        if let Some(c) = cond {
            rule.cond.append_clause(&c, at);
        }
        if let Some(ex) = exceptions {
            merge_exceptions(&mut rule.exceptions, ex);
        }
        rule.last_file = file;
    }

    /// `override`: every key listed is appended to or replaced in the existing rule, appends
    /// first.
    fn override_rule(&mut self, new: RuleItem) {
        let (name, at, label) = (&new.name, new.at, &new.label);
        let file = self.file;
        let Some(rule) = self.rules.get_mut(name) else {
            self.error(at, Some(label.clone()), format!("An override was specified for rule '{name}' but no rule by that name already exists"));
            return;
        };
        rule.last_file = file;
        // Appends first, then replaces.
        for phase in ["append", "replace"] {
            for (key, (op, _)) in &new.overrides {
                if op != phase {
                    continue;
                }
                let is_append = phase == "append";
                match key.as_str() {
                    "condition" => append_or_replace(&mut rule.cond, &new.cond, is_append, at),
                    "output" => append_or_replace(&mut rule.output, &new.output, is_append, at),
                    "desc" => {
                        if let Some(d) = &new.desc {
                            rule.desc = if is_append {
                                format!("{} {d}", rule.desc)
                            } else {
                                d.clone()
                            };
                        }
                    }
                    "tags" => {
                        if let Some(t) = &new.tags {
                            if is_append {
                                rule.tags.extend(t.iter().cloned());
                            } else {
                                rule.tags = t.clone();
                            }
                        }
                    }
                    "exceptions" => {
                        if let Some(ex) = &new.exceptions {
                            if is_append {
                                merge_exceptions(&mut rule.exceptions, ex.clone());
                            } else {
                                rule.exceptions = ex.clone();
                            }
                        }
                    }
                    "priority" => {
                        if let Some(p) = new.priority {
                            rule.priority = p;
                        }
                    }
                    "enabled" => {
                        if let Some(e) = new.enabled {
                            rule.enabled = e;
                        }
                    }
                    "skip-if-unknown-filter" => {
                        if let Some(s) = new.skip_unknown {
                            rule.skip_unknown = s;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A full definition (a new rule or a redefinition), or the deprecated item with only
    /// `enabled`.
    fn define_rule(&mut self, item: &Node, new: RuleItem) {
        let (name, at, label) = (new.name, new.at, new.label);
        let seq = self.seq;
        let file = self.file;
        let has_body = new.cond.is_some()
            || new.output.is_some()
            || new.desc.is_some()
            || new.priority.is_some()
            || item.get("priority").is_some();
        if !has_body {
            // Legacy form: only toggles `enabled`.
            let Some(e) = new.enabled else {
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
        for key in ["condition", "output", "desc", "priority"] {
            if item.get(key).is_none() {
                self.error(
                    at,
                    Some(label.clone()),
                    format!("Item has no mapping for key '{key}'"),
                );
            }
        }
        let (Some(cond), Some(output), Some(desc), Some(priority)) =
            (new.cond, new.output, new.desc, new.priority)
        else {
            return;
        };
        let def = RuleDef {
            cond,
            output,
            desc,
            priority,
            tags: new.tags.unwrap_or_default(),
            enabled: new.enabled.unwrap_or(true),
            source: new.source.clone(),
            exceptions: new.exceptions.unwrap_or_default(),
            skip_unknown: new.skip_unknown.unwrap_or(false),
            first_seq: seq,
            last_file: file,
            loc: at,
        };
        match self.rules.get_mut(&name) {
            Some(old) => {
                let old_src = old.source.clone().unwrap_or_else(|| "syscall".into());
                if let Some(new_src) = &new.source
                    && *new_src != old_src
                {
                    self.error(at, Some(label), format!("Rule '{name}' redefined with a different source ('{new_src}', was '{old_src}')"));
                    return;
                }
                let first_seq = old.first_seq;
                *old = RuleDef { first_seq, ..def };
            }
            None => self.rules.insert(name, def),
        }
    }
}

/// Appends an override's text to a rule's (after a space mapped to `at`), or replaces it;
/// nothing when the item does not give the key.
fn append_or_replace(text: &mut PosText, new: &Option<PosText>, append: bool, at: Loc) {
    match new {
        Some(more) if append => text.append_clause(more, at),
        Some(new) => *text = new.clone(),
        None => {}
    }
}
