//! The loader: rule files in, a [`RuleSet`](super::RuleSet) (or every diagnostic) out, in Falco's stages.
//!
//! 1. `read`: each file's YAML items, their keys checked and typed (versions, lists, macros,
//!    rules, with positions for every diagnostic);
//! 2. `merge`: each item merged into one collection shared across files, with Falco's
//!    `append`/`override`/redefinition rules (`exceptions`: a rule's exceptions, merged and
//!    turned into `and not (...)` conditions);
//! 3. `resolve`: lists expanded (a list may include lists defined before it), macros
//!    substituted, parsed and checked on their own;
//! 4. `build`: every rule compiled against the macros visible to it, optimised, and the
//!    [`RuleSet`](super::RuleSet) built, with warnings for unused lists and macros.
//!
//! The loader keeps going past a broken item so that every error of a load is reported.

mod build;
mod exceptions;
mod merge;
mod read;
mod resolve;

use std::collections::{BTreeSet, HashMap, HashSet};

use super::syntax::diag::{self, Diagnostic, Loc, Severity};
use super::syntax::text::PosText;
use super::syntax::yaml::Node;
use super::{LoadOptions, LoadOutcome, RuleSource};
use crate::priority::Priority;

use exceptions::Exception;
pub use exceptions::exception_text_for_test;

/// Loads rule files into a rule set.
pub(crate) fn load(sources: &[RuleSource], options: &LoadOptions) -> LoadOutcome {
    let mut l = Loader::new(sources, options);
    for (idx, source) in sources.iter().enumerate() {
        l.file = idx;
        l.read_file(&source.text);
    }
    l.finish()
}

/// A list as collected across files.
#[derive(Debug, Clone)]
struct ListDef {
    items: Vec<(String, Loc)>,
    first_seq: u64,
    last_seq: u64,
    loc: Loc,
}

/// A macro as collected across files.
#[derive(Debug, Clone)]
struct MacroDef {
    cond: PosText,
    first_seq: u64,
    last_seq: u64,
    first_file: usize,
    loc: Loc,
}

/// A list or a macro: an item that is a name and one value, which later items append to or
/// replace.
trait Definition: Sized {
    /// The item's key, and how messages name it (`list`, `macro`).
    const KIND: &'static str;
    /// The key of its value (`items`, `condition`).
    const VALUE: &'static str;
    /// Why conditions cannot refer to `name`, when they cannot.
    fn name_warning(name: &str) -> Option<&'static str>;
    /// Appends a later item's value.
    fn append(&mut self, more: Self);
    /// Replaces the value, keeping where the name was first defined.
    fn redefine(&mut self, new: Self);
    /// The collection of this kind.
    fn defs<'a>(loader: &'a mut Loader<'_>) -> &'a mut Defs<Self>;
}

impl Definition for ListDef {
    const KIND: &'static str = "list";
    const VALUE: &'static str = "items";

    fn name_warning(name: &str) -> Option<&'static str> {
        let bare = name.bytes().all(|c| {
            !(c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b'"' | b'\'' | b'=' | b','))
        });
        (!bare).then_some("list name is not a bare string: it cannot be referenced from conditions")
    }

    fn append(&mut self, more: Self) {
        self.items.extend(more.items);
        self.last_seq = more.last_seq;
    }

    fn redefine(&mut self, new: Self) {
        self.items = new.items;
        self.last_seq = new.last_seq;
        self.loc = new.loc;
    }

    fn defs<'a>(loader: &'a mut Loader<'_>) -> &'a mut Defs<Self> {
        &mut loader.lists
    }
}

impl Definition for MacroDef {
    const KIND: &'static str = "macro";
    const VALUE: &'static str = "condition";

    fn name_warning(name: &str) -> Option<&'static str> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (!valid).then_some(
            "macro name should match [a-zA-Z]+[a-zA-Z0-9_]*: it cannot be referenced from conditions",
        )
    }

    fn append(&mut self, more: Self) {
        self.cond.append_clause(&more.cond, more.loc);
        self.last_seq = more.last_seq;
    }

    fn redefine(&mut self, new: Self) {
        self.cond = new.cond;
        self.last_seq = new.last_seq;
        self.loc = new.loc;
    }

    fn defs<'a>(loader: &'a mut Loader<'_>) -> &'a mut Defs<Self> {
        &mut loader.macros
    }
}

/// A rule as collected across files.
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

/// Lists, macros or rules by name, and their names in order of first definition.
#[derive(Debug)]
struct Defs<T> {
    by_name: HashMap<String, T>,
    order: Vec<String>,
}

impl<T> Default for Defs<T> {
    fn default() -> Self {
        Defs {
            by_name: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl<T> Defs<T> {
    fn get(&self, name: &str) -> Option<&T> {
        self.by_name.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.by_name.get_mut(name)
    }

    /// Adds a definition of a name not defined yet.
    fn insert(&mut self, name: String, def: T) {
        self.order.push(name.clone());
        self.by_name.insert(name, def);
    }

    fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The definitions whose names are not in `used`, in order of first definition.
    fn unused<'a>(
        &'a self,
        used: &'a HashSet<String>,
    ) -> impl Iterator<Item = (&'a String, &'a T)> {
        self.order
            .iter()
            .filter(|name| !used.contains(*name))
            .filter_map(|name| Some((name, self.by_name.get(name)?)))
    }
}

/// The state of one load: the files, the collection built from them so far and the
/// diagnostics.
struct Loader<'s> {
    files: &'s [RuleSource],
    options: &'s LoadOptions,
    diags: Vec<Diagnostic>,
    /// Diagnostics already reported: (file, offset, item for warnings, message).
    seen: HashSet<(usize, usize, Option<String>, String)>,
    /// Sequence number of the item being read (across files).
    seq: u64,
    lists: Defs<ListDef>,
    macros: Defs<MacroDef>,
    rules: Defs<RuleDef>,
    /// Index of the file being read.
    file: usize,
}

/// How diagnostics name an item: `rule 'name'`.
fn item_label(kind: &str, name: &str) -> String {
    format!("{kind} '{name}'")
}

impl<'s> Loader<'s> {
    fn new(files: &'s [RuleSource], options: &'s LoadOptions) -> Loader<'s> {
        Loader {
            files,
            options,
            diags: Vec::new(),
            seen: HashSet::new(),
            seq: 0,
            lists: Defs::default(),
            macros: Defs::default(),
            rules: Defs::default(),
            file: 0,
        }
    }

    /// The location of a byte offset in the file being read.
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

    /// An error about the item `label`, at `node` of the file being read.
    fn error_at(&mut self, node: &Node, label: &str, message: impl Into<String>) {
        let at = self.loc(node.offset);
        self.error(at, Some(label.to_string()), message);
    }

    /// Where `at` is, as `file:line:col` (for messages that point at a second place).
    fn position(&self, at: Loc) -> Option<Diagnostic> {
        let (file, offset) = diag::unpack(at);
        self.files.get(file).map(|f| {
            Diagnostic::at(
                Severity::Warning,
                &f.name,
                &f.text,
                offset,
                None,
                String::new(),
            )
        })
    }
}
