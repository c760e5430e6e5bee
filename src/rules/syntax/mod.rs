//! Reading rule files: YAML with positions (`yaml`), the condition language (`ast`, the parser
//! in `condition`, and `text`, the textual list substitution that comes before parsing), and
//! diagnostics that point into the files (`diag`).
//!
//! Public for the golden tests and the fuzz targets: [`parse`], [`Expr`], [`PosText`] and
//! [`substitute_list`].

pub(crate) mod ast;
pub(crate) mod condition;
pub(crate) mod diag;
pub(crate) mod text;
pub(crate) mod yaml;

pub use ast::Expr;
pub use condition::parse;
pub use text::{PosText, substitute_list};
