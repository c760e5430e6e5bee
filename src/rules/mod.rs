//! The rule engine: Falco's rule language, compiled once, evaluated per event.
//!
//! Pure code: no I/O beyond reading the file texts it is given, no tokio, and no panics on
//! input. One room per stage, in the order a rule file goes through them:
//!
//! | stage | module |
//! |---|---|
//! | YAML with positions, the condition parser, list substitution, diagnostics | [`syntax`] |
//! | items read, merged across files (append/override/exceptions), resolved, built | [`loader`] |
//! | conditions compiled into evaluators, outputs into templates | `compile` |
//! | rewrites that keep the meaning: simplification, shared sub-conditions, one needle search | `optimize` |
//! | the field catalogue, extraction, transformers | [`fields`] |
//! | evaluation: the compiled tree, the per-event context, fast accessors, matchers | `eval` |
//! | which rules an event's type and key make candidates | `index` |
//!
//! This module is the public face: [`load`] turns rule files into a [`RuleSet`] (or every
//! diagnostic), [`RuleSet::evaluate`] matches an event, [`RuleSet::rules_blinded_by`] says
//! which rules a blind spot of the monitor disables. [`defaults`] embeds the default rules.
//!
//! Engine version: TaskSentry claims compatibility with Falco engine version
//! [`ENGINE_VERSION`] (0.57.0, the version the current default Falco rule files require);
//! `required_engine_version` is checked against it with Falco's rule (same major, not newer).
//! A `required_plugin_versions` entry for `container` (up to 0.4.x) is satisfied natively.

pub mod defaults;
pub mod fields;
pub mod loader;
pub mod syntax;

mod compile;
mod eval;
mod index;
mod optimize;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::event::{Event, EventType};
use crate::priority::Priority;

pub use syntax::diag::{Diagnostic, Severity};

use eval::EvalCtx;
use index::Index;

/// The Falco engine version whose rule-file semantics TaskSentry implements.
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 57, 0);

/// One rules file: its name (a path, for messages) and its text.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Name shown in diagnostics.
    pub name: String,
    /// YAML text.
    pub text: String,
}

/// Whether an event alerts for the first matching rule only, or for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMatching {
    /// Stop at the first matching rule (Falco's default).
    #[default]
    First,
    /// Every matching rule alerts.
    All,
}

/// Load options.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Make "field not provided" an error instead of skipping the rule.
    pub strict: bool,
    /// First or all matching rules.
    pub rule_matching: RuleMatching,
}

/// A rule that was left out of the rule set, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    /// Rule name.
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The result of [`load`].
#[derive(Debug)]
pub struct LoadOutcome {
    /// The rule set, `None` if any error was found.
    pub ruleset: Option<RuleSet>,
    /// Every error and warning, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// Rules left out (unknown source, fields TaskSentry does not provide).
    pub skipped: Vec<SkippedRule>,
}

impl LoadOutcome {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }
}

/// Loads rule files (in order) into one rule set.
pub fn load(sources: &[RuleSource], options: &LoadOptions) -> LoadOutcome {
    loader::load(sources, options)
}

/// What the engine knows about a compiled rule.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// Priority.
    pub priority: Priority,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// Event source (`syscall`).
    pub source: String,
    /// Description.
    pub desc: String,
    /// Event types the rule can match; `None` = all.
    pub event_types: Option<Vec<EventType>>,
    /// File of the rule's first definition.
    pub file: String,
    /// Line of the rule's first definition.
    pub line: u32,
    /// The final condition text (after appends, exceptions and list substitution).
    pub condition: String,
}

pub(crate) struct CompiledRule {
    pub(crate) info: RuleInfo,
    pub(crate) cond: eval::Node,
    pub(crate) output: compile::OutputTemplate,
    pub(crate) types: compile::TypeSet,
}

/// Counts of what a load produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCounts {
    /// Rules compiled into the set.
    pub compiled: usize,
    /// Of those, enabled.
    pub enabled: usize,
    /// Rules skipped.
    pub skipped: usize,
    /// Lists defined.
    pub lists: usize,
    /// Macros defined.
    pub macros: usize,
}

/// A rule match.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    /// The rule.
    pub rule: &'a RuleInfo,
    /// The formatted output (without time and priority prefix).
    pub output: String,
    /// Typed values of the output's fields (and `evt.time`), keys as written, sorted.
    pub output_fields: serde_json::Map<String, serde_json::Value>,
}

/// The catalogue ids of every field a condition reads (both sides of field comparisons).
fn condition_fields(node: &eval::Node, out: &mut std::collections::HashSet<fields::FieldId>) {
    use eval::{Node, Test};
    match node {
        Node::Check(c) => {
            let (lhs, test) = &**c;
            out.insert(lhs.field.id);
            if let Test::Field(_, rhs) = test {
                out.insert(rhs.field.id);
            }
            if let Test::Modified(_, tests) = test {
                for t in tests {
                    if let Test::Field(_, rhs) = t {
                        out.insert(rhs.field.id);
                    }
                }
            }
        }
        Node::And(items) | Node::Or(items) => {
            for n in items.iter() {
                condition_fields(n, out);
            }
        }
        Node::Not(inner) | Node::Memo(_, inner) => condition_fields(inner, out),
        Node::Const(_) | Node::TypeIn(_) => {}
    }
}

/// What a part of the monitor's view that it could not read takes away from rules: the names
/// of [`crate::event`] facets as the visibility report spells them (`exe`, `cwd`, `environ`,
/// `fd`, `sockets`, `root`, `private_dirs`, `containers`).
fn blinded_by(facet: &str, field: &str, types: compile::TypeSet) -> bool {
    use EventType as T;
    let file = |t: EventType| {
        matches!(
            t,
            T::Open | T::Creat | T::Unlinkat | T::Renameat | T::Chmod | T::Mkdir
        )
    };
    let socket = |t: EventType| matches!(t, T::Connect | T::Accept | T::Listen | T::Socket);
    let of_rule = || {
        EventType::ALL
            .into_iter()
            .filter(|t| types & (1 << t.index()) != 0)
    };
    let any_of = |kind: &dyn Fn(EventType) -> bool| of_rule().any(kind);
    let only = |kind: &dyn Fn(EventType) -> bool| types != 0 && of_rule().all(kind);
    let user_field = field.starts_with("user.") || field.starts_with("group.");
    match facet {
        "exe" => {
            field == "proc.exepath"
                || field == "proc.pexepath"
                || field == "proc.aexepath"
                || field.starts_with("proc.is_exe_")
                || field.starts_with("proc.exe_")
        }
        "cwd" => field == "proc.cwd",
        "environ" => field.starts_with("proc.env"),
        "fd" => {
            field.starts_with("proc.stdin")
                || field.starts_with("proc.stdout")
                || field.starts_with("proc.stderr")
        }
        // A connection whose owner is unknown has no process, user or container details.
        "sockets" => {
            only(&socket)
                && (field.starts_with("proc.") || user_field || field.starts_with("container."))
        }
        // Without the root there are no file events and no user names.
        "root" => any_of(&file) || (user_field && !field.ends_with("id")),
        "private_dirs" => any_of(&file),
        "containers" => true,
        _ => false,
    }
}

impl RuleSet {
    /// The enabled rules (TaskSentry's own excluded) that cannot fire, or can fire only for
    /// part of what they describe, when the monitor cannot read the given facets of a
    /// container (see `collect::visibility`): those whose condition reads a field the facet
    /// provides, or whose events the facet is the source of.
    pub fn rules_blinded_by(&self, facets: &[&str]) -> Vec<String> {
        let internal = 1u32 << EventType::Tasksentry.index();
        let mut names = Vec::new();
        for rule in &self.rules {
            if !rule.info.enabled || rule.types == internal {
                continue;
            }
            let mut ids = std::collections::HashSet::new();
            condition_fields(&rule.cond, &mut ids);
            let field_names: Vec<&str> = ids.iter().filter_map(|id| fields::name_of(*id)).collect();
            let types = rule.types & !internal;
            let hit = facets.iter().any(|facet| {
                (matches!(*facet, "root" | "private_dirs" | "containers")
                    && blinded_by(facet, "", types))
                    || field_names.iter().any(|f| blinded_by(facet, f, types))
            });
            if hit {
                names.push(rule.info.name.clone());
            }
        }
        names
    }
}

/// A compiled, indexed rule set. `Send + Sync`: share it behind an `Arc`.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Which rules are evaluated for an event.
    index: Index,
    matching: RuleMatching,
    min_priority: Priority,
    lists: usize,
    macros: usize,
    skipped: usize,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("matching", &self.matching)
            .finish()
    }
}

impl RuleSet {
    pub(crate) fn new(
        mut rules: Vec<CompiledRule>,
        matching: RuleMatching,
        counts: (usize, usize, usize),
    ) -> RuleSet {
        let mut conds: Vec<&mut eval::Node> = rules.iter_mut().map(|r| &mut r.cond).collect();
        optimize::memo::share(&mut conds);
        optimize::needles::index(&mut conds);
        let mut set = RuleSet {
            rules,
            index: Index::default(),
            matching,
            min_priority: Priority::Debug,
            lists: counts.0,
            macros: counts.1,
            skipped: counts.2,
        };
        set.reindex();
        set
    }

    fn reindex(&mut self) {
        self.index = Index::new(&self.rules, self.min_priority);
    }

    /// Every compiled rule, in evaluation order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule compiled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts of compiled, enabled and skipped rules, lists and macros.
    pub fn counts(&self) -> RuleCounts {
        RuleCounts {
            compiled: self.rules.len(),
            enabled: self.rules.iter().filter(|r| r.info.enabled).count(),
            skipped: self.skipped,
            lists: self.lists,
            macros: self.macros,
        }
    }

    /// Drops rules less severe than `min` from evaluation.
    pub fn set_min_priority(&mut self, min: Priority) {
        self.min_priority = min;
        self.reindex();
    }

    /// Enables or disables rules by name (`*` wildcards allowed); returns how many matched.
    pub fn set_enabled_by_name(&mut self, pattern: &str, enabled: bool) -> usize {
        let glob = eval::Glob::new(pattern, false);
        let mut n = 0;
        for r in &mut self.rules {
            if glob.matches(&r.info.name) {
                r.info.enabled = enabled;
                n += 1;
            }
        }
        self.reindex();
        n
    }

    /// Enables or disables rules carrying a tag; returns how many matched.
    pub fn set_enabled_by_tag(&mut self, tag: &str, enabled: bool) -> usize {
        let mut n = 0;
        for r in &mut self.rules {
            if r.info.tags.iter().any(|t| t == tag) {
                r.info.enabled = enabled;
                n += 1;
            }
        }
        self.reindex();
        n
    }

    /// Evaluates an event; appends matches (in rule order) to `out`.
    pub fn evaluate<'a>(&'a self, event: &Event, out: &mut Vec<Match<'a>>) {
        let t = event.evt_type().index();
        let cx = EvalCtx::new(event);
        let ix = &self.index;
        match self.matching {
            RuleMatching::First => {
                ix.by_type_keyed[t].each(&cx, &ix.by_type[t], |i| {
                    let rule = &self.rules[i as usize];
                    if rule.cond.eval(&cx) {
                        out.push(Self::render(rule, event));
                        return true;
                    }
                    false
                });
            }
            RuleMatching::All => {
                let before = out.len();
                ix.specific_keyed[t].each(&cx, &ix.specific[t], |i| {
                    let rule = &self.rules[i as usize];
                    if rule.cond.eval(&cx) {
                        out.push(Self::render(rule, event));
                    }
                    false
                });
                if out.len() == before {
                    ix.all_types_keyed.each(&cx, &ix.all_types, |i| {
                        let rule = &self.rules[i as usize];
                        if rule.cond.eval(&cx) {
                            out.push(Self::render(rule, event));
                        }
                        false
                    });
                }
            }
        }
    }

    /// The match's output rendered again from another event: the alert chain renders from a
    /// copy with secrets redacted. The rule is the match's own (found by identity).
    pub fn render_again<'a>(&'a self, matched: &Match<'a>, event: &Event) -> Match<'a> {
        match self
            .rules
            .iter()
            .find(|rule| std::ptr::eq(&rule.info, matched.rule))
        {
            Some(rule) => Self::render(rule, event),
            None => Match {
                rule: matched.rule,
                output: matched.output.clone(),
                output_fields: matched.output_fields.clone(),
            },
        }
    }

    fn render<'a>(rule: &'a CompiledRule, event: &Event) -> Match<'a> {
        let (output, output_fields) = rule.output.render(event);
        Match {
            rule: &rule.info,
            output,
            output_fields,
        }
    }
}
