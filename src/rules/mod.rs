//! The rule engine: Falco's rule language, compiled once, evaluated per event.
//!
//! Pure code: no I/O beyond reading the file texts it is given, no tokio, and no panics on
//! input. The stages mirror Falco's: the reader turns YAML into items with positions
//! ([`yaml`], [`loader`]), the collector merges them into one collection across files with
//! Falco's append/override/visibility rules, and the compiler turns every rule into an
//! evaluator ([`eval::Node`]) indexed by event type, plus an output template.
//!
//! Engine version: TaskSentry claims compatibility with Falco engine version
//! [`ENGINE_VERSION`] (0.57.0, the version the current default Falco rule files require);
//! `required_engine_version` is checked against it with Falco's rule (same major, not newer).
//! A `required_plugin_versions` entry for `container` (up to 0.4.x) is satisfied natively.

pub mod compile;
pub mod condition;
pub mod defaults;
pub mod diag;
pub mod eval;
pub mod fields;
pub mod loader;
pub mod memo;
pub mod needles;
pub mod yaml;

use std::fmt;

use crate::event::{Event, EventType};
use crate::priority::Priority;

pub use diag::{Diagnostic, Severity};

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

/// Hash map from a field value to the rules that require it.
type KeyMap =
    std::collections::HashMap<Box<str>, Vec<u32>, std::hash::BuildHasherDefault<eval::Fnv>>;

/// Candidate rules for one event type (or for all types), in rule order.
///
/// A rule whose condition can only hold when a plain string field equals one of a few
/// values (a top-level `proc.name in (...)`, also through macros and through an `or` whose
/// every branch requires it) is *keyed*: it is listed under each of those values, and only
/// considered when the event's value is one of them. A field that is absent fails such a test,
/// so the rule is then skipped too. Keyed rules still evaluate their whole condition.
#[derive(Default)]
struct Candidates {
    /// Rules without a key.
    unkeyed: Vec<u32>,
    /// Per keyed field: its accessor and the map from values to rules.
    keyed: Vec<(fields::FieldRef, fields::StrAccessor, KeyMap)>,
}

impl Candidates {
    /// The most rules a lookup gathers on the stack before falling back to a scan of all.
    const MAX_HITS: usize = 64;

    fn push(&mut self, idx: u32, key: Option<RuleKey>) {
        let Some((field, accessor, values)) = key else {
            self.unkeyed.push(idx);
            return;
        };
        let at = match self.keyed.iter().position(|(f, _, _)| *f == field) {
            Some(at) => at,
            None => {
                self.keyed.push((field, accessor, KeyMap::default()));
                self.keyed.len() - 1
            }
        };
        for v in values {
            let list = self.keyed[at].2.entry(v).or_default();
            if list.last() != Some(&idx) {
                list.push(idx);
            }
        }
    }

    /// Calls `f` with every candidate for the event, in rule order, until it returns true.
    #[inline]
    fn each(&self, cx: &fields::EvalCtx<'_>, all: &[u32], mut f: impl FnMut(u32) -> bool) {
        if self.keyed.is_empty() {
            for &i in &self.unkeyed {
                if f(i) {
                    return;
                }
            }
            return;
        }
        let mut hits = [0u32; Self::MAX_HITS];
        let mut n = 0;
        for (_, accessor, map) in &self.keyed {
            let Some(list) = accessor(cx).and_then(|v| map.get(v)) else {
                continue;
            };
            if n + list.len() > Self::MAX_HITS {
                // Too many to order on the stack: scan every rule of the type instead.
                for &i in all {
                    if f(i) {
                        return;
                    }
                }
                return;
            }
            hits[n..n + list.len()].copy_from_slice(list);
            n += list.len();
        }
        let hits = &mut hits[..n];
        hits.sort_unstable();
        // Merge the two ordered lists (a rule is in one of them only).
        let (mut a, mut b) = (0, 0);
        let unkeyed = &self.unkeyed;
        while a < unkeyed.len() || b < hits.len() {
            let take_a = b >= hits.len() || (a < unkeyed.len() && unkeyed[a] < hits[b]);
            let i = if take_a {
                a += 1;
                unkeyed[a - 1]
            } else {
                b += 1;
                hits[b - 1]
            };
            if f(i) {
                return;
            }
        }
    }
}

/// A rule's key: the field, its accessor and the values one of which it requires.
type RuleKey = (fields::FieldRef, fields::StrAccessor, Vec<Box<str>>);

/// The values of a plain string field that `node` requires (see [`Candidates`]).
fn required_values(node: &eval::Node, field: &fields::FieldRef) -> Option<Vec<Box<str>>> {
    use eval::{LhsMode, Node, Test};
    match node {
        Node::Check(c) => {
            let (lhs, test) = &**c;
            if lhs.field != *field
                || !lhs.transformers.is_empty()
                || !matches!(lhs.mode, LhsMode::Single)
                || lhs.fast.is_none()
            {
                return None;
            }
            match test {
                Test::StrEq(s) => Some(vec![s.clone()]),
                Test::StrIn(set) => Some(set.iter().cloned().collect()),
                _ => None,
            }
        }
        Node::Memo(_, inner) => required_values(inner, field),
        Node::And(items) => items.iter().find_map(|n| required_values(n, field)),
        Node::Or(items) => {
            let mut all = Vec::new();
            for n in items.iter() {
                all.extend(required_values(n, field)?);
            }
            Some(all)
        }
        _ => None,
    }
}

/// Plain string fields tested with `=`/`in` at the top level of a condition (candidates for a
/// key), `proc.name` first.
fn key_candidates(node: &eval::Node, out: &mut Vec<(fields::FieldRef, fields::StrAccessor)>) {
    use eval::{LhsMode, Node, Test};
    match node {
        Node::Check(c) => {
            let (lhs, test) = &**c;
            if let Some(fast) = lhs.fast
                && lhs.transformers.is_empty()
                && matches!(lhs.mode, LhsMode::Single)
                && matches!(test, Test::StrEq(_) | Test::StrIn(_))
                && !out.iter().any(|(f, _)| *f == lhs.field)
            {
                out.push((lhs.field.clone(), fast));
            }
        }
        Node::And(items) | Node::Or(items) => {
            for n in items.iter() {
                key_candidates(n, out);
            }
        }
        Node::Memo(_, inner) => key_candidates(inner, out),
        _ => {}
    }
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
    let file_types = [
        EventType::Open,
        EventType::Creat,
        EventType::Unlinkat,
        EventType::Renameat,
        EventType::Chmod,
        EventType::Mkdir,
    ];
    let socket_types = [
        EventType::Connect,
        EventType::Accept,
        EventType::Listen,
        EventType::Socket,
    ];
    let any_of = |set: &[EventType]| set.iter().any(|t| types & (1 << t.index()) != 0);
    let only = |set: &[EventType]| {
        types != 0
            && EventType::ALL
                .iter()
                .filter(|t| types & (1 << t.index()) != 0)
                .all(|t| set.contains(t))
    };
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
            only(&socket_types)
                && (field.starts_with("proc.") || user_field || field.starts_with("container."))
        }
        // Without the root there are no file events and no user names.
        "root" => any_of(&file_types) || (user_field && !field.ends_with("id")),
        "private_dirs" => any_of(&file_types),
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

/// The key of a rule's condition, if it has one (at most [`Candidates::MAX_HITS`] values are
/// not a limit: a key with many values just makes a longer map).
fn rule_key(node: &eval::Node) -> Option<RuleKey> {
    let mut fields_seen = Vec::new();
    key_candidates(node, &mut fields_seen);
    fields_seen.sort_by_key(|(f, _)| f.id != fields::FieldId::ProcName);
    fields_seen
        .into_iter()
        .find_map(|(f, acc)| required_values(node, &f).map(|v| (f, acc, v)))
}

/// A compiled, indexed rule set. `Send + Sync`: share it behind an `Arc`.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Per event type: indices of candidate rules (type-specific and all-type), in order.
    by_type: Vec<Vec<u32>>,
    /// Per event type: type-specific rules only.
    specific: Vec<Vec<u32>>,
    /// Rules that apply to every type.
    all_types: Vec<u32>,
    /// `by_type`, keyed.
    by_type_keyed: Vec<Candidates>,
    /// `specific`, keyed.
    specific_keyed: Vec<Candidates>,
    /// `all_types`, keyed.
    all_types_keyed: Candidates,
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
        memo::share(&mut conds);
        needles::index(&mut conds);
        let mut set = RuleSet {
            rules,
            by_type: Vec::new(),
            specific: Vec::new(),
            all_types: Vec::new(),
            by_type_keyed: Vec::new(),
            specific_keyed: Vec::new(),
            all_types_keyed: Candidates::default(),
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
        let n = EventType::ALL.len();
        self.by_type = vec![Vec::new(); n];
        self.specific = vec![Vec::new(); n];
        self.all_types.clear();
        self.by_type_keyed = (0..n).map(|_| Candidates::default()).collect();
        self.specific_keyed = (0..n).map(|_| Candidates::default()).collect();
        self.all_types_keyed = Candidates::default();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.info.enabled || rule.info.priority < self.min_priority {
                continue;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            let key = rule_key(&rule.cond);
            let all = rule.types == compile::ALL_TYPES;
            if all {
                self.all_types.push(idx);
                self.all_types_keyed.push(idx, key.clone());
            }
            for t in EventType::ALL {
                if rule.types & (1 << t.index()) != 0 {
                    self.by_type[t.index()].push(idx);
                    self.by_type_keyed[t.index()].push(idx, key.clone());
                    if !all {
                        self.specific[t.index()].push(idx);
                        self.specific_keyed[t.index()].push(idx, key.clone());
                    }
                }
            }
        }
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
        let cx = fields::EvalCtx::new(event);
        match self.matching {
            RuleMatching::First => {
                self.by_type_keyed[t].each(&cx, &self.by_type[t], |i| {
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
                self.specific_keyed[t].each(&cx, &self.specific[t], |i| {
                    let rule = &self.rules[i as usize];
                    if rule.cond.eval(&cx) {
                        out.push(Self::render(rule, event));
                    }
                    false
                });
                if out.len() == before {
                    self.all_types_keyed.each(&cx, &self.all_types, |i| {
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

    fn render<'a>(rule: &'a CompiledRule, event: &Event) -> Match<'a> {
        let (output, output_fields) = rule.output.render(event);
        Match {
            rule: &rule.info,
            output,
            output_fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_parsing_and_order() {
        assert_eq!("INFO".parse::<Priority>(), Ok(Priority::Informational));
        assert_eq!("Warning".parse::<Priority>(), Ok(Priority::Warning));
        assert!("warn".parse::<Priority>().is_err());
        assert!(Priority::Emergency > Priority::Debug);
        assert!(Priority::Critical > Priority::Warning);
        assert_eq!(Priority::Informational.to_string(), "Informational");
    }

    use crate::event::{Ancestor, Collector, Container, Fd, FdKind, Process};

    fn set_of(text: &str, matching: RuleMatching) -> RuleSet {
        let outcome = load(
            &[RuleSource {
                name: "t.yaml".into(),
                text: text.into(),
            }],
            &LoadOptions {
                strict: false,
                rule_matching: matching,
            },
        );
        let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        outcome.ruleset.expect("ruleset")
    }

    fn rule(name: &str, condition: &str) -> String {
        format!(
            "- rule: {name}\n  desc: d\n  output: o\n  priority: INFO\n  condition: {condition}\n"
        )
    }

    fn exec(name: &str, args: &[&str]) -> Event {
        let mut e = Event::new(EventType::Execve, Collector::Procscan);
        e.proc = Some(Box::new(Process {
            name: name.into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
            ..Process::default()
        }));
        e
    }

    fn names<'a>(set: &'a RuleSet, e: &Event) -> Vec<&'a str> {
        let mut out = Vec::new();
        set.evaluate(e, &mut out);
        out.iter().map(|m| m.rule.name.as_str()).collect()
    }

    /// What `evaluate` must return: every candidate of the type index evaluated in order,
    /// without the value keys.
    fn reference<'a>(set: &'a RuleSet, e: &Event) -> Vec<&'a str> {
        let cx = fields::EvalCtx::new(e);
        let t = e.evt_type().index();
        let hit = |i: &&u32| set.rules[**i as usize].cond.eval_uncached(&cx);
        let name = |i: &u32| set.rules[*i as usize].info.name.as_str();
        match set.matching {
            RuleMatching::First => set.by_type[t]
                .iter()
                .find(hit)
                .map(name)
                .into_iter()
                .collect(),
            RuleMatching::All => {
                let specific: Vec<&str> = set.specific[t].iter().filter(hit).map(name).collect();
                if specific.is_empty() {
                    set.all_types.iter().filter(hit).map(name).collect()
                } else {
                    specific
                }
            }
        }
    }

    #[test]
    fn keyed_rules_keep_rule_order_and_skip_absent_fields() {
        let text = [
            rule("a", "evt.type = execve and proc.name in (sh, bash)"),
            rule("b", "evt.type = execve and proc.args contains x"),
            rule("c", "evt.type = execve and (proc.name = sh or (proc.name = zsh and proc.args contains y))"),
            rule("d", "proc.name = sh"),
            rule("e", "evt.type = execve and not proc.name in (sh)"),
        ]
        .concat();
        let all = set_of(&text, RuleMatching::All);
        let first = set_of(&text, RuleMatching::First);
        assert_eq!(names(&all, &exec("sh", &["x"])), ["a", "b", "c"]);
        assert_eq!(names(&first, &exec("sh", &["x"])), ["a"]);
        assert_eq!(names(&all, &exec("zsh", &["y"])), ["c", "e"]);
        assert_eq!(names(&all, &exec("zsh", &["x"])), ["b", "e"]);
        assert_eq!(names(&first, &exec("zsh", &["x"])), ["b"]);
        // Only the all-types rule can match a non-execve event.
        let mut open = exec("sh", &[]);
        open.evt.evt_type = EventType::Open;
        assert_eq!(names(&all, &open), ["d"]);
        // No process: keyed rules are skipped (their test on the absent field is false), and
        // `not` of a test on an absent field holds.
        let bare = Event::new(EventType::Execve, Collector::Procscan);
        assert_eq!(names(&all, &bare), ["e"]);
        assert_eq!(names(&first, &bare), ["e"]);
    }

    #[test]
    fn merged_or_operands_mean_the_same() {
        let text = [
            rule(
                "contains",
                "evt.type = execve and (proc.cmdline contains \"a.b\" or proc.cmdline contains \"(x\" or proc.cmdline contains \"c+\" or proc.cmdline contains zz or proc.cmdline contains anyof (\"q*\"))",
            ),
            rule(
                "eq",
                "evt.type = execve and (proc.exe = /bin/a or proc.exe in (/bin/b, /bin/c) or proc.cwd = /tmp)",
            ),
            rule("dir", "evt.type = execve and evt.dir = < and not evt.dir = > and proc.name = dir"),
            rule("never", "evt.type = execve and evt.dir = > and proc.name = dir"),
        ]
        .concat();
        let set = set_of(&text, RuleMatching::All);
        for (args, hit) in [
            (&["a.b"][..], true),
            (&["axb"][..], false),
            (&["f(x"][..], true),
            (&["c+"][..], true),
            (&["c"][..], false),
            (&["--zz--"][..], true),
            (&["q*"][..], true),
            (&["q"][..], false),
        ] {
            let got = names(&set, &exec("p", args));
            assert_eq!(got.contains(&"contains"), hit, "{args:?}: {got:?}");
        }
        let mut e = exec("p", &[]);
        assert!(names(&set, &e).is_empty());
        for (exe, cwd, hit) in [
            (Some("/bin/b"), None, true),
            (Some("/bin/a"), None, true),
            (Some("/bin/d"), None, false),
            (None, Some("/tmp"), true),
            (Some("/bin/d"), Some("/tmpx"), false),
        ] {
            let p = e.proc.as_mut().expect("proc");
            p.exe = exe.map(Into::into);
            p.cwd = cwd.map(Into::into);
            assert_eq!(names(&set, &e) == ["eq"], hit, "{exe:?} {cwd:?}");
        }
        assert_eq!(names(&set, &exec("dir", &[])), ["dir"]);

        let mixed = rule(
            "mixed",
            "evt.type = execve and (proc.exe startswith /a/ or proc.exe endswith .sh or proc.exe = /x or proc.exe glob \"/g*z\" or proc.exe pmatch (/p) or proc.exe contains anyof (mm, nn) or proc.name = n)",
        );
        let set = set_of(&mixed, RuleMatching::All);
        for (exe, hit) in [
            (Some("/a/b"), true),
            (Some("/b/a/"), false),
            (Some("/b/run.sh"), true),
            (Some("/b/run.shx"), false),
            (Some("/x"), true),
            (Some("/xy"), false),
            (Some("/gaz"), true),
            (Some("/ga"), false),
            (Some("/p/q"), true),
            (Some("/pq"), false),
            (Some("/nn"), true),
            (None, false),
        ] {
            let mut e = exec("p", &[]);
            e.proc.as_mut().expect("proc").exe = exe.map(Into::into);
            assert_eq!(names(&set, &e) == ["mixed"], hit, "{exe:?}");
        }
        assert_eq!(names(&set, &exec("n", &[])), ["mixed"]);
    }

    /// The default rules plus Falco's three files (stable, incubating, sandbox order).
    fn default_and_falco_sources() -> Vec<RuleSource> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/falco");
        let mut sources = defaults::default_sources();
        for n in [
            "falco_rules.yaml",
            "falco-incubating_rules.yaml",
            "falco-sandbox_rules.yaml",
        ] {
            sources.push(RuleSource {
                name: n.into(),
                text: std::fs::read_to_string(format!("{dir}/{n}")).expect("read"),
            });
        }
        sources
    }

    #[test]
    fn index_agrees_with_evaluating_every_candidate_on_default_and_falco_rules() {
        let sources = default_and_falco_sources();
        let names_ = [
            "sh", "bash", "nc", "ncat", "socat", "curl", "wget", "xmrig", "apt", "pip", "python3",
            "node", "sudo", "find", "grep", "cat", "base64", "crontab", "useradd", "nmap", "java",
            "mysqld", "worker", "ld.so", "memfd:x", "debugfs", "rm", "shred", "gdb",
        ];
        let argv: [&[&str]; 5] = [
            &[],
            &["-c", "id"],
            &["-e", "/bin/sh", "10.0.0.1", "4444"],
            &["stratum+tcp://pool", "-o"],
            &["-d", "aGVsbG8="],
        ];
        let mut total = 0;
        for matching in [RuleMatching::All, RuleMatching::First] {
            let set = load(
                &sources,
                &LoadOptions {
                    strict: false,
                    rule_matching: matching,
                },
            )
            .ruleset
            .expect("ruleset");
            for name in names_ {
                for args in argv {
                    for (tty, parent, in_container) in [
                        (0, "node", true),
                        (34816, "bash", true),
                        (0, "nginx", false),
                    ] {
                        let mut e = exec(name, args);
                        let p = e.proc.as_mut().expect("proc");
                        p.exepath = Some(format!("/usr/bin/{name}"));
                        p.exe = Some(format!("/tmp/{name}"));
                        p.tty = Some(tty);
                        p.euid = Some(0);
                        p.user = Some("root".into());
                        p.ancestors = vec![Ancestor {
                            pid: 1,
                            name: parent.into(),
                            exe: None,
                            exepath: None,
                            args: vec![],
                        }];
                        if in_container {
                            e.container = Some(Box::new(Container {
                                id: "abc".into(),
                                ..Container::default()
                            }));
                        }
                        let mut open = e.clone();
                        open.evt.evt_type = EventType::Open;
                        open.fd = Some(Box::new(Fd {
                            kind: Some(FdKind::File),
                            name: Some(format!("/etc/{name}")),
                            open_write: Some(true),
                            ..Fd::default()
                        }));
                        for ev in [e, open] {
                            let want = reference(&set, &ev);
                            total += want.len();
                            assert_eq!(
                                names(&set, &ev),
                                want,
                                "{name} {args:?} {:?}",
                                ev.evt_type()
                            );
                        }
                    }
                }
            }
        }
        assert!(total > 10, "the events must match some rules ({total})");
    }

    /// Default + all Falco rules, loaded once per matching mode.
    fn default_and_falco(matching: RuleMatching) -> &'static RuleSet {
        static ALL: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        static FIRST: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        let cell = match matching {
            RuleMatching::All => &ALL,
            RuleMatching::First => &FIRST,
        };
        cell.get_or_init(|| {
            let sources = default_and_falco_sources();
            load(
                &sources,
                &LoadOptions {
                    strict: false,
                    rule_matching: matching,
                },
            )
            .ruleset
            .expect("ruleset")
        })
    }

    fn count_memo(node: &eval::Node) -> usize {
        use eval::Node;
        match node {
            Node::Memo(_, inner) => 1 + count_memo(inner),
            Node::And(items) | Node::Or(items) => items.iter().map(count_memo).sum(),
            Node::Not(inner) => count_memo(inner),
            _ => 0,
        }
    }

    #[test]
    fn default_and_falco_rules_share_sub_conditions() {
        let set = default_and_falco(RuleMatching::All);
        let memoised = set.rules.iter().map(|r| count_memo(&r.cond)).sum::<usize>();
        let rules_with = set.rules.iter().filter(|r| count_memo(&r.cond) > 0).count();
        // `container.id != host`, `open_read`'s checks, ... occur in most rules.
        assert!(
            rules_with * 2 > set.rules.len(),
            "{rules_with} of {} rules",
            set.rules.len()
        );
        assert!(memoised > rules_with, "{memoised}");
    }

    /// Every `contains` test on `proc.cmdline` of the default and Falco rules is answered
    /// from one automaton (one search per event).
    #[test]
    fn default_and_falco_cmdline_contains_tests_share_one_search() {
        fn collect<'a>(node: &'a eval::Node, out: &mut Vec<&'a needles::NeedleTest>) {
            use eval::{Node, Test};
            fn of_test<'a>(t: &'a Test, out: &mut Vec<&'a needles::NeedleTest>) {
                match t {
                    Test::Needles(n) => out.push(n),
                    Test::Modified(_, ts) => ts.iter().for_each(|t| of_test(t, out)),
                    _ => {}
                }
            }
            match node {
                Node::And(items) | Node::Or(items) => items.iter().for_each(|n| collect(n, out)),
                Node::Not(inner) | Node::Memo(_, inner) => collect(inner, out),
                Node::Check(c) => of_test(&c.1, out),
                Node::Const(_) | Node::TypeIn(_) => {}
            }
        }
        let set = default_and_falco(RuleMatching::All);
        let mut tests = Vec::new();
        for r in &set.rules {
            collect(&r.cond, &mut tests);
        }
        assert!(tests.len() >= 10, "{} converted tests", tests.len());
        assert!(
            tests
                .iter()
                .all(|t| std::sync::Arc::ptr_eq(&t.index, &tests[0].index))
        );
        // The miner needles are found in a command line, and only the tests looking for them
        // hold.
        let ev = exec("xmrig", &["-o", "stratum+tcp://pool:3333"]);
        let cx = fields::EvalCtx::new(&ev);
        let holding = tests
            .iter()
            .filter(|t| t.on_event(&cx) == Some(true))
            .count();
        assert!(holding >= 1 && holding < tests.len(), "{holding}");
        for t in &tests {
            let plain = ev.proc.as_ref().map(|p| p.cmdline()).unwrap_or_default();
            let cx0 = fields::EvalCtx::new(&ev);
            assert_eq!(
                t.on_event(&cx).unwrap_or(false),
                t.original.on_constant_str(&plain).unwrap_or(false),
                "{:?}",
                t.original
            );
            assert_eq!(t.on_value(&plain, &cx0), t.on_event(&cx).unwrap_or(false));
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const NAMES: &[&str] = &[
            "sh", "bash", "nc", "curl", "wget", "xmrig", "python3", "node", "sudo", "cat",
            "base64", "crontab", "useradd", "worker", "java", "sshd", "find", "rm", "ld.so",
        ];
        const PATHS: &[&str] = &[
            "/etc/shadow",
            "/etc/passwd",
            "/etc/sudoers.d/x",
            "/root/.ssh/id_rsa",
            "/home/app/.ssh/authorized_keys",
            "/home/app/.ssh/id_ed25519.pub",
            "/root/.aws/credentials",
            "/srv/data/orders.json",
            "/usr/bin/ls",
            "/bin/sh",
            "/tmp/x.sh",
            "/dev/shm/a",
            "/proc/1/environ",
            "/var/log/syslog",
            "/root/.bash_history",
            "/etc/cron.d/job",
            "/etc/ld.so.preload",
            "/dev/sda",
            "x",
            "/",
            "/etc/",
        ];
        const ARGS: &[&[&str]] = &[
            &[],
            &["-c", "id"],
            &["-e", "/bin/sh", "10.0.0.1", "4444"],
            &["stratum+tcp://pool", "-o"],
            &["-d", "aGVsbG8="],
            &["http://169.254.169.254/latest/meta-data/"],
            &["--queue", "orders"],
        ];
        const TYPES: &[EventType] = &EventType::ALL;

        prop_compose! {
            fn events()(
                t in 0..TYPES.len(),
                name in 0..NAMES.len(),
                parent in 0..NAMES.len(),
                args in 0..ARGS.len(),
                path in 0..PATHS.len(),
                exe in 0..PATHS.len(),
                flags in any::<u16>(),
                port in prop::sample::select(vec![22u16, 80, 443, 3333, 4444, 5432, 40312]),
            ) -> Event {
                let mut e = exec(NAMES[name], ARGS[args]);
                e.evt.evt_type = TYPES[t];
                let bit = |i: u32| flags & (1 << i) != 0;
                let p = e.proc.as_mut().expect("proc");
                p.exe = Some(PATHS[exe].into());
                p.exepath = Some(format!("/usr/bin/{}", NAMES[name]));
                p.tty = Some(if bit(0) { 34816 } else { 0 });
                p.euid = Some(if bit(1) { 0 } else { 1000 });
                p.user = Some(if bit(1) { "root" } else { "app" }.into());
                p.cwd = Some(if bit(12) { "/tmp" } else { "/srv" }.into());
                p.cap_effective = Some(if bit(13) { 1 << 21 } else { 0 });
                if bit(2) {
                    p.ancestors = vec![Ancestor {
                        pid: 1,
                        name: NAMES[parent].into(),
                        exe: Some(format!("/usr/bin/{}", NAMES[parent])),
                        exepath: None,
                        args: vec![],
                    }];
                }
                if bit(3) {
                    p.env = vec![("LD_PRELOAD".into(), "/tmp/x.so".into())];
                }
                if bit(4) {
                    e.container = Some(Box::new(Container {
                        id: "abc".into(),
                        image: Some("docker.io/library/nginx:1".into()),
                        ..Container::default()
                    }));
                }
                let ip = matches!(TYPES[t], EventType::Connect | EventType::Accept | EventType::Listen);
                if ip {
                    e.fd = Some(Box::new(Fd {
                        kind: Some(FdKind::Ipv4),
                        l4proto: Some(if bit(5) { "udp" } else { "tcp" }.into()),
                        cip: "10.0.1.17".parse().ok(),
                        cport: Some(40312),
                        sip: if bit(6) { "169.254.169.254" } else { "10.0.2.30" }.parse().ok(),
                        sport: Some(port),
                        local_is_client: Some(true),
                        ..Fd::default()
                    }));
                } else if TYPES[t] != EventType::Execve || bit(7) {
                    e.fd = Some(Box::new(Fd {
                        kind: Some(if bit(8) { FdKind::Directory } else { FdKind::File }),
                        name: Some(PATHS[path].into()),
                        num: bit(9).then_some(3),
                        open_read: Some(!bit(10)),
                        open_write: Some(bit(10)),
                        oldname: bit(11).then(|| "/tmp/old".into()),
                        ..Fd::default()
                    }));
                }
                e
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

            /// Every rule's memoised result, with the memo filled by the other rules in either
            /// order, is its result computed from scratch; and the indexed, memoised
            /// `evaluate` returns what evaluating every candidate without index or memo does.
            #[test]
            fn memo_and_index_agree_with_plain_evaluation(ev in events()) {
                for matching in [RuleMatching::All, RuleMatching::First] {
                    let set = default_and_falco(matching);
                    let plain: Vec<bool> = set
                        .rules
                        .iter()
                        .map(|r| r.cond.eval_uncached(&fields::EvalCtx::new(&ev)))
                        .collect();
                    let forward = fields::EvalCtx::new(&ev);
                    for (r, want) in set.rules.iter().zip(&plain) {
                        prop_assert_eq!(r.cond.eval(&forward), *want, "{}", r.info.name);
                    }
                    let backward = fields::EvalCtx::new(&ev);
                    for (r, want) in set.rules.iter().zip(&plain).rev() {
                        prop_assert_eq!(r.cond.eval(&backward), *want, "{}", r.info.name);
                    }
                    prop_assert_eq!(names(set, &ev), reference(set, &ev));
                }
            }
        }
    }

    #[test]
    fn ruleset_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RuleSet>();
    }
}
