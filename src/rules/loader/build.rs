//! Building: every rule's condition (with its exceptions and the lists substituted) parsed
//! and compiled against the macros visible to it, simplified and typed, and the [`RuleSet`]
//! built from them; then the warnings about unused lists and macros, and the diagnostics in
//! file order.

use std::collections::{HashMap, HashSet};

use super::exceptions::build_condition;
use super::resolve::Lists;
use super::{Loader, item_label};
use crate::event::EventType;
use crate::rules::compile::{
    ALL_TYPES, Compiler, Issue, ParsedMacro, Scope, compile_output, event_types,
};
use crate::rules::optimize::{hoist_types, simplify};
use crate::rules::syntax::ast::Expr;
use crate::rules::syntax::condition;
use crate::rules::syntax::diag::{Loc, Severity};
use crate::rules::{CompiledRule, LoadOutcome, RuleInfo, RuleSet, SkippedRule};

impl Loader<'_> {
    /// Resolves and compiles the collection read from every file.
    pub(super) fn finish(mut self) -> LoadOutcome {
        let mut lists = self.expand_lists();
        let parsed = self.parse_macros(&mut lists);
        self.check_macros(&parsed);
        let mut compiler = Compiler {
            macros: &parsed,
            used_macros: HashSet::new(),
        };
        let (compiled, skipped) = self.compile_rules(&mut compiler, &mut lists);
        let mut used_macros = compiler.used_macros;
        used_macros.extend(macros_used_by_macros(&parsed));
        self.warn_unused(&lists, &used_macros);
        self.outcome(compiled, skipped)
    }

    /// Compiles every rule, in order of first definition; returns them and the rules skipped.
    fn compile_rules(
        &mut self,
        compiler: &mut Compiler<'_>,
        lists: &mut Lists,
    ) -> (Vec<CompiledRule>, Vec<SkippedRule>) {
        let mut rule_order = self.rules.order.clone();
        rule_order.sort_by_key(|n| self.rules.get(n).map_or(0, |r| r.first_seq));
        let mut compiled = Vec::new();
        let mut skipped = Vec::new();
        for name in &rule_order {
            let Some(def) = self.rules.get(name).cloned() else {
                continue;
            };
            let label = item_label("rule", name);
            let source = def.source.clone().unwrap_or_else(|| "syscall".into());
            let mut text = build_condition(&def.cond, &def.exceptions, def.loc);
            lists.substitute(&mut text);
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
            let output = match compile_output(&def.output, &mut out_warnings) {
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
            let types = event_types(&node, false);
            let node = hoist_types(simplify(node), types);
            let event_types = if types == ALL_TYPES {
                None
            } else {
                Some(
                    EventType::ALL
                        .into_iter()
                        .filter(|t| types & (1 << t.index()) != 0)
                        .collect(),
                )
            };
            let position = self.position(def.loc);
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
        (compiled, skipped)
    }

    /// Warns about lists and macros nothing refers to.
    fn warn_unused(&mut self, lists: &Lists, used_macros: &HashSet<String>) {
        let unused_lists: Vec<(String, Loc)> = self
            .lists
            .unused(&lists.used)
            .map(|(name, l)| (name.clone(), l.loc))
            .collect();
        let unused_macros: Vec<(String, Loc)> = self
            .macros
            .unused(used_macros)
            .map(|(name, m)| (name.clone(), m.loc))
            .collect();
        for (name, at) in unused_lists {
            let label = item_label("list", &name);
            self.warn(
                at,
                Some(label),
                "list not referred to by any other rule/macro/list",
            );
        }
        for (name, at) in unused_macros {
            let label = item_label("macro", &name);
            self.warn(
                at,
                Some(label),
                "macro not referred to by any other rule/macro",
            );
        }
    }

    /// The diagnostics in file order, then by position, and the rule set unless one is an
    /// error.
    fn outcome(mut self, compiled: Vec<CompiledRule>, skipped: Vec<SkippedRule>) -> LoadOutcome {
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
}

/// The macros that macros refer to.
fn macros_used_by_macros(parsed: &HashMap<String, ParsedMacro>) -> HashSet<String> {
    fn walk(e: &Expr, out: &mut HashSet<String>) {
        match e {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| walk(x, out)),
            Expr::Not(x) => walk(x, out),
            Expr::Macro { name, .. } => {
                out.insert(name.clone());
            }
            Expr::Check { .. } => {}
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
