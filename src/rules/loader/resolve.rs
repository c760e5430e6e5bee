//! Resolving what rules refer to: lists expanded (a list includes the lists defined before
//! it), then substituted into macro conditions, which are parsed and checked on their own.

use std::collections::{HashMap, HashSet};

use super::{Loader, item_label};
use crate::rules::compile::{Compiler, Issue, ParsedMacro, Scope};
use crate::rules::syntax::condition;
use crate::rules::syntax::text::{PosText, substitute_list};

/// Every list, expanded, in order of first definition, and the lists conditions used.
pub(super) struct Lists {
    expanded: Vec<(String, Vec<String>)>,
    pub(super) used: HashSet<String>,
}

impl Lists {
    /// Substitutes every list name in a condition text by its items.
    pub(super) fn substitute(&mut self, text: &mut PosText) {
        for (name, items) in &self.expanded {
            if text.text.contains(name.as_str()) && substitute_list(text, name, items) {
                self.used.insert(name.clone());
            }
        }
    }
}

impl Loader<'_> {
    /// Expands the lists, in order of first definition: items naming an earlier list expand.
    pub(super) fn expand_lists(&mut self) -> Lists {
        let mut order: Vec<String> = self.lists.order.clone();
        order.sort_by_key(|n| self.lists.get(n).map_or(0, |l| l.first_seq));
        let mut expanded: HashMap<String, Vec<String>> = HashMap::new();
        let mut used: HashSet<String> = HashSet::new();
        for name in &order {
            let Some(def) = self.lists.get(name).cloned() else {
                continue;
            };
            let mut items = Vec::new();
            for (item, iloc) in &def.items {
                match self.lists.get(item) {
                    Some(other) if other.first_seq < def.last_seq && item != name => {
                        used.insert(item.clone());
                        items.extend(expanded.get(item).cloned().unwrap_or_default());
                    }
                    Some(other) => {
                        let where_ = self.position(other.loc).map(|d| d.position());
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
        let expanded = order
            .iter()
            .map(|n| (n.clone(), expanded.get(n).cloned().unwrap_or_default()))
            .collect();
        Lists { expanded, used }
    }

    /// Substitutes the lists into every macro's condition and parses it (syntax errors are
    /// reported here).
    pub(super) fn parse_macros(&mut self, lists: &mut Lists) -> HashMap<String, ParsedMacro> {
        let mut parsed: HashMap<String, ParsedMacro> = HashMap::new();
        let macro_order = self.macros.order.clone();
        for name in &macro_order {
            let Some(def) = self.macros.get(name).cloned() else {
                continue;
            };
            let mut text = def.cond.clone();
            lists.substitute(&mut text);
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
        parsed
    }

    /// Checks every macro on its own (syntax was checked when parsing): unknown and
    /// not-yet-defined macros, loops, bad values. Field issues are reported through the rules
    /// using them.
    pub(super) fn check_macros(&mut self, parsed: &HashMap<String, ParsedMacro>) {
        let mut compiler = Compiler {
            macros: parsed,
            used_macros: HashSet::new(),
        };
        let mut macro_issues = Vec::new();
        for name in &self.macros.order {
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
        for (at, name, msg) in macro_issues {
            self.error(at, Some(item_label("macro", &name)), msg);
        }
    }
}
