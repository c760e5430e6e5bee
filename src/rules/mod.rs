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
pub mod yaml;

use std::fmt;
use std::str::FromStr;

use crate::event::{Event, EventType};

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

/// A rule's priority, from most to least severe. `Ord` follows severity: a more severe
/// priority is greater (`Emergency > Debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Emergency.
    Emergency,
    /// Alert.
    Alert,
    /// Critical.
    Critical,
    /// Error.
    Error,
    /// Warning.
    Warning,
    /// Notice.
    Notice,
    /// Informational (`info`).
    Informational,
    /// Debug.
    Debug,
}

impl Priority {
    /// Falco's numeric value (0 = most severe).
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The capitalised long name (`Informational`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Priority {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.level().cmp(&self.level())
    }
}

/// An unknown priority name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid priority '{0}'")]
pub struct PriorityError(pub String);

impl FromStr for Priority {
    type Err = PriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return Err(PriorityError(s.to_string())),
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
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

/// A compiled, indexed rule set. `Send + Sync`: share it behind an `Arc`.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Per event type: indices of candidate rules (type-specific and all-type), in order.
    by_type: Vec<Vec<u32>>,
    /// Per event type: type-specific rules only.
    specific: Vec<Vec<u32>>,
    /// Rules that apply to every type.
    all_types: Vec<u32>,
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
        rules: Vec<CompiledRule>,
        matching: RuleMatching,
        counts: (usize, usize, usize),
    ) -> RuleSet {
        let mut set = RuleSet {
            rules,
            by_type: Vec::new(),
            specific: Vec::new(),
            all_types: Vec::new(),
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
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.info.enabled || rule.info.priority < self.min_priority {
                continue;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            let all = rule.types == compile::ALL_TYPES;
            if all {
                self.all_types.push(idx);
            }
            for t in EventType::ALL {
                if rule.types & (1 << t.index()) != 0 {
                    self.by_type[t.index()].push(idx);
                    if !all {
                        self.specific[t.index()].push(idx);
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
                for &i in &self.by_type[t] {
                    let rule = &self.rules[i as usize];
                    if rule.cond.eval(&cx) {
                        out.push(Self::render(rule, event));
                        return;
                    }
                }
            }
            RuleMatching::All => {
                let before = out.len();
                for &i in &self.specific[t] {
                    let rule = &self.rules[i as usize];
                    if rule.cond.eval(&cx) {
                        out.push(Self::render(rule, event));
                    }
                }
                if out.len() == before {
                    for &i in &self.all_types {
                        let rule = &self.rules[i as usize];
                        if rule.cond.eval(&cx) {
                            out.push(Self::render(rule, event));
                        }
                    }
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

    #[test]
    fn ruleset_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RuleSet>();
    }
}
