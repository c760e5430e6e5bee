//! The parsed form of a condition: [`Expr`], with the byte offset of every token in the
//! parsed text so that errors can point into the rules file.

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    In,
    Intersects,
    Pmatch,
    Exists,
}

impl Op {
    /// Parses an operator as written in conditions and in exception `comps`.
    pub(crate) fn from_token(token: &str) -> Option<Op> {
        Some(match token {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "contains" => Op::Contains,
            "icontains" => Op::IContains,
            "bcontains" => Op::BContains,
            "startswith" => Op::StartsWith,
            "bstartswith" => Op::BStartsWith,
            "endswith" => Op::EndsWith,
            "glob" => Op::Glob,
            "iglob" => Op::IGlob,
            "regex" => Op::Regex,
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "pmatch" => Op::Pmatch,
            "exists" => Op::Exists,
            _ => return None,
        })
    }

    /// Whether the operator takes a list on the right (`in`, `intersects`, `pmatch`).
    pub(crate) fn is_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::Pmatch)
    }

    /// Whether the operator needs a number on the right.
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }

    /// The operator's canonical spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Pmatch => "pmatch",
            Op::Exists => "exists",
        }
    }
}

/// A list modifier on a string operator (`startswith anyof (...)`); the variants are named
/// after the keywords `oneof`, `anyof`, `allof`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, clippy::enum_variant_names)]
pub enum Modifier {
    OneOf,
    AnyOf,
    AllOf,
}

/// A transformer applied to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Transformer {
    ToLower,
    ToUpper,
    B64,
    Basename,
    Len,
}

impl Transformer {
    /// The transformer of a name as written in conditions.
    pub(crate) fn from_name(name: &str) -> Option<Transformer> {
        Some(match name {
            "tolower" => Transformer::ToLower,
            "toupper" => Transformer::ToUpper,
            "b64" => Transformer::B64,
            "basename" => Transformer::Basename,
            "len" => Transformer::Len,
            _ => return None,
        })
    }
}

/// A field operand, possibly transformed.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    /// The field name (`proc.aname`).
    pub field: String,
    /// The raw argument between brackets, if any.
    pub arg: Option<String>,
    /// Transformers, innermost first.
    pub transformers: Vec<Transformer>,
    /// Offset of the field name.
    pub offset: usize,
}

/// A constant with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The text after escape processing.
    pub text: String,
    /// Offset of the token.
    pub offset: usize,
}

/// The right-hand side of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    /// Unary operator (`exists`).
    None,
    /// A scalar.
    Value(Value),
    /// A list (`in`, `intersects`, `pmatch`, or a modifier).
    List(Vec<Value>),
    /// Another field (`val(f)` or a transformer).
    Field(Operand),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A macro reference (a bare identifier).
    Macro {
        /// Macro name.
        name: String,
        /// Offset of the identifier.
        offset: usize,
    },
    /// A field check.
    Check {
        /// Left-hand side.
        lhs: Operand,
        /// Operator.
        op: Op,
        /// Offset of the operator.
        op_offset: usize,
        /// Optional list modifier.
        modifier: Option<Modifier>,
        /// Right-hand side.
        rhs: Rhs,
    },
}

/// A syntax error at a byte offset of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the parsed text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}
