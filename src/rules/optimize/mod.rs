//! Rewrites of compiled conditions that never change what a rule matches, only what an event
//! costs: per rule, `simplify` (constants folded, operands reordered, `or`s of string tests
//! merged); across the rule set, [`memo`] (shared sub-conditions evaluated once per event) and
//! [`needles`] (every `contains` on `proc.cmdline` answered from one search per event).

pub(crate) mod memo;
pub(crate) mod needles;
mod simplify;

pub(crate) use simplify::{hoist_types, simplify};
