//! The compiler: expands macros (as parsed sub-trees), resolves fields and parses right-hand
//! values into the field's type (`check`), building the evaluator ([`Node`]); computes a rule's
//! event types; compiles output templates (`output`).

mod check;

use check::compile_check;
mod output;

use std::collections::HashMap;

use crate::event::EventType;

use super::eval::Node;
use super::syntax::ast::Expr;
use super::syntax::diag::Loc;
use super::syntax::text::PosText;

pub(crate) use check::resolve_operand;
pub(crate) use output::{OutputTemplate, compile_output};

/// A problem found while compiling.
#[derive(Debug, Clone)]
pub(crate) enum Issue {
    /// A load error.
    Error(Loc, String),
    /// A field TaskSentry does not provide (or does not know): the rule is skipped unless in
    /// strict mode. Carries the field name.
    Field(Loc, String, String),
}

/// A macro after list substitution and parsing.
#[derive(Debug)]
pub(crate) struct ParsedMacro {
    /// The parsed condition (`None` when it did not parse; the error was reported).
    pub(crate) expr: Option<Expr>,
    /// The condition text after list substitution, with locations.
    pub(crate) text: PosText,
    /// Sequence number of the first definition.
    pub(crate) first_seq: u64,
    /// Sequence number of the latest definition or append.
    pub(crate) last_seq: u64,
    /// File index of the first definition.
    pub(crate) first_file: usize,
}

/// Compiles conditions against a set of macros.
pub(crate) struct Compiler<'m> {
    /// Macros by name.
    pub(crate) macros: &'m HashMap<String, ParsedMacro>,
    /// Macro names referenced (for the unused-macro warning).
    pub(crate) used_macros: std::collections::HashSet<String>,
}

/// Where a condition comes from, for macro visibility checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    /// For a rule: the file of its first definition (macros must be first defined in that file
    /// or an earlier one). For a macro: unused.
    pub(crate) rule_file: usize,
    /// For a macro: its latest definition sequence number (macros it uses must be first
    /// defined before that).
    pub(crate) macro_last_seq: Option<u64>,
}

impl Compiler<'_> {
    /// Compiles a parsed condition.
    pub(crate) fn compile(
        &mut self,
        expr: &Expr,
        text: &PosText,
        scope: Scope,
        stack: &mut Vec<String>,
        issues: &mut Vec<Issue>,
    ) -> Option<Node> {
        match expr {
            Expr::And(items) | Expr::Or(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.compile(item, text, scope, stack, issues) {
                        Some(n) => out.push(n),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                let is_and = matches!(expr, Expr::And(_));
                // Flatten nested conjunctions/disjunctions (from macros and parentheses).
                let mut flat = Vec::with_capacity(out.len());
                for n in out {
                    match n {
                        Node::And(inner) if is_and => flat.extend(inner.into_vec()),
                        Node::Or(inner) if !is_and => flat.extend(inner.into_vec()),
                        other => flat.push(other),
                    }
                }
                Some(if is_and {
                    Node::And(flat.into_boxed_slice())
                } else {
                    Node::Or(flat.into_boxed_slice())
                })
            }
            Expr::Not(inner) => self
                .compile(inner, text, scope, stack, issues)
                .map(|n| match n {
                    Node::Not(x) => *x,
                    Node::Const(b) => Node::Const(!b),
                    other => Node::Not(Box::new(other)),
                }),
            Expr::Macro { name, offset } => {
                let at = text.loc(*offset);
                let Some(m) = self.macros.get(name) else {
                    issues.push(Issue::Error(
                        at,
                        format!("Undefined macro '{name}' used in filter."),
                    ));
                    return None;
                };
                let visible = match scope.macro_last_seq {
                    Some(last) => m.first_seq < last,
                    None => m.first_file <= scope.rule_file,
                };
                if !visible {
                    let why = if scope.macro_last_seq.is_some() {
                        "a macro can only use macros defined before it"
                    } else {
                        "a rule can only use macros defined in its own file or an earlier one"
                    };
                    issues.push(Issue::Error(
                        at,
                        format!("Undefined macro '{name}' used in filter ({name} is defined later; {why})."),
                    ));
                    return None;
                }
                self.used_macros.insert(name.clone());
                if stack.iter().any(|s| s == name) {
                    issues.push(Issue::Error(
                        at,
                        format!("reference loop in macro '{name}'"),
                    ));
                    return None;
                }
                let expr = m.expr.as_ref()?;
                stack.push(name.clone());
                let inner_scope = Scope {
                    rule_file: scope.rule_file,
                    macro_last_seq: Some(m.last_seq),
                };
                let node = self.compile(expr, &m.text, inner_scope, stack, issues);
                stack.pop();
                node
            }
            Expr::Check {
                lhs,
                op,
                op_offset,
                modifier,
                rhs,
            } => match compile_check(lhs, *op, *op_offset, *modifier, rhs, text) {
                Ok(node) => Some(node),
                Err(issue) => {
                    issues.push(issue);
                    None
                }
            },
        }
    }
}

/// A set of event types as a bit mask over [`EventType::ALL`].
pub(crate) type TypeSet = u32;

/// Every event type.
pub(crate) const ALL_TYPES: TypeSet = (1 << EventType::ALL.len()) - 1;

/// The bit of the event type named `name` (none for a name TaskSentry does not produce).
fn type_bit(name: &str) -> TypeSet {
    EventType::from_name(name).map_or(0, |t| 1 << t.index())
}

/// Computes the event types a condition can match (as Falco's rule indexing does): `and` intersects, `or` unions,
/// `not` is pushed to the leaves, checks on other fields are neutral, constants are exact.
pub(crate) fn event_types(node: &Node, negated: bool) -> TypeSet {
    match node {
        Node::Const(b) => {
            if *b != negated {
                ALL_TYPES
            } else {
                0
            }
        }
        Node::And(items) | Node::Or(items) => {
            let is_and = matches!(node, Node::And(_)) != negated;
            let mut acc = if is_and { ALL_TYPES } else { 0 };
            for item in items.iter() {
                let s = event_types(item, negated);
                acc = if is_and { acc & s } else { acc | s };
            }
            acc
        }
        Node::Not(inner) => event_types(inner, !negated),
        Node::TypeIn(mask) => {
            if negated {
                ALL_TYPES & !mask
            } else {
                *mask
            }
        }
        Node::Check(_) => ALL_TYPES,
        Node::Memo(_, inner) => event_types(inner, negated),
    }
}
