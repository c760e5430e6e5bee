//! The compiler: resolves fields, expands macros (as parsed sub-trees), parses right-hand
//! values into the field's type and builds the evaluator ([`Node`]); also compiles output
//! templates (spec §3.1) and computes a rule's event types (spec §1.11).

use std::collections::HashMap;

use crate::event::{Event, EventType};

use super::condition::{Expr, Modifier, Op, Operand, PosText, Rhs, Transformer, Value};
use super::diag::Loc;
use super::eval::{Cidr, Glob, Lhs, LhsMode, MultiContains, Node, PathTrie, StrSet, Test};
use super::fields::{self, ArgKind, FieldArg, FieldId, FieldRef, FieldType, Val};

/// A problem found while compiling.
#[derive(Debug, Clone)]
pub enum Issue {
    /// A load error.
    Error(Loc, String),
    /// A field TaskSentry does not provide (or does not know): the rule is skipped unless in
    /// strict mode. Carries the field name.
    Field(Loc, String, String),
}

/// A macro after list substitution and parsing.
#[derive(Debug)]
pub struct ParsedMacro {
    /// The parsed condition (`None` when it did not parse; the error was reported).
    pub expr: Option<Expr>,
    /// The condition text after list substitution, with locations.
    pub text: PosText,
    /// Sequence number of the first definition.
    pub first_seq: u64,
    /// Sequence number of the latest definition or append.
    pub last_seq: u64,
    /// File index of the first definition.
    pub first_file: usize,
}

/// Compiles conditions against a set of macros.
pub struct Compiler<'m> {
    /// Macros by name.
    pub macros: &'m HashMap<String, ParsedMacro>,
    /// Macro names referenced (for the unused-macro warning).
    pub used_macros: std::collections::HashSet<String>,
}

/// Where a condition comes from, for macro visibility checks.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// For a rule: the file of its first definition (macros must be first defined in that file
    /// or an earlier one). For a macro: unused.
    pub rule_file: usize,
    /// For a macro: its latest definition sequence number (macros it uses must be first
    /// defined before that).
    pub macro_last_seq: Option<u64>,
}

impl Compiler<'_> {
    /// Compiles a parsed condition.
    pub fn compile(
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

/// Resolves an operand (field + argument + transformers).
pub fn resolve_operand(o: &Operand, text: &PosText) -> Result<Lhs, Issue> {
    let at = text.loc(o.offset);
    let Some(def) = fields::lookup(&o.field) else {
        let msg = if fields::is_unprovided(&o.field) {
            format!(
                "field '{}' is a Falco field that TaskSentry does not provide",
                o.field
            )
        } else {
            format!("unknown field '{}'", o.field)
        };
        return Err(Issue::Field(at, o.field.clone(), msg));
    };
    let arg = if def.id == FieldId::EvtArg {
        if o.arg.is_some() {
            return Err(Issue::Error(
                at,
                format!("field '{}' does not take an argument", o.field),
            ));
        }
        FieldArg::Key(o.field["evt.arg.".len()..].into())
    } else {
        match (def.arg, &o.arg) {
            (_, None) => FieldArg::None,
            (ArgKind::None, Some(_)) => {
                return Err(Issue::Error(
                    at,
                    format!("field '{}' does not take an argument", o.field),
                ));
            }
            (ArgKind::OptionalIndex, Some(a)) => match a.parse::<usize>() {
                Ok(i) => FieldArg::Index(i),
                Err(_) => {
                    return Err(Issue::Error(
                        at,
                        format!("field '{}' expects a numeric index, found '{a}'", o.field),
                    ));
                }
            },
            (ArgKind::OptionalKey, Some(a)) => FieldArg::Key(a.as_str().into()),
        }
    };
    let field = FieldRef {
        id: def.id,
        arg,
        ty: def.ty,
    };
    let mode = if field.is_any_ancestor() {
        LhsMode::AnyAncestor
    } else if let Some((a, b)) = field.either_pair() {
        LhsMode::Either(a, b)
    } else {
        LhsMode::Single
    };
    if !o.transformers.is_empty()
        && (!matches!(mode, LhsMode::Single)
            || matches!(
                def.id,
                FieldId::ProcAname
                    | FieldId::ProcApid
                    | FieldId::ProcAexe
                    | FieldId::ProcAexepath
                    | FieldId::ProcAcmdline
            ))
    {
        return Err(Issue::Error(
            at,
            format!("field '{}' does not accept transformers", o.field),
        ));
    }
    let mut ty = def.ty;
    for t in &o.transformers {
        if ty != FieldType::String {
            return Err(Issue::Error(
                at,
                format!(
                    "transformer {t:?} needs a string, '{}' is {}",
                    o.field,
                    ty.as_str()
                ),
            ));
        }
        if *t == Transformer::Len {
            ty = FieldType::Int;
        }
    }
    let field = FieldRef { ty, ..field };
    let plain = o.transformers.is_empty() && matches!(mode, LhsMode::Single);
    let fast = if plain {
        fields::str_accessor(&field)
    } else {
        None
    };
    let fast_direct = if plain {
        fields::direct_accessor(&field)
    } else {
        None
    };
    Ok(Lhs {
        fast,
        fast_direct,
        field,
        transformers: o.transformers.clone(),
        mode,
    })
}

fn check_nul(v: &Value, text: &PosText) -> Result<(), Issue> {
    if v.text.contains('\0') {
        return Err(Issue::Error(
            text.loc(v.offset),
            "NUL byte not allowed in a value".into(),
        ));
    }
    Ok(())
}

fn service_port(name: &str) -> Option<i64> {
    Some(match name {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "http" | "www" => 80,
        "pop3" => 110,
        "sunrpc" => 111,
        "ntp" => 123,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "smtps" | "submissions" => 465,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" => 995,
        "mysql" => 3306,
        "postgresql" => 5432,
        "redis" => 6379,
        _ => return None,
    })
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    let t = text.strip_prefix('+').unwrap_or(text);
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    // Doubles: only integral values are accepted.
    let f = t.parse::<f64>().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        #[allow(clippy::cast_possible_truncation)]
        return Some(f as i64);
    }
    None
}

fn parse_typed(ty: FieldType, v: &Value, field: &str, text: &PosText) -> Result<TypedVal, Issue> {
    check_nul(v, text)?;
    let bad = || {
        Issue::Error(
            text.loc(v.offset),
            format!(
                "invalid {} value '{}' for field '{field}'",
                ty.as_str(),
                v.text
            ),
        )
    };
    Ok(match ty {
        FieldType::String => TypedVal::Str(v.text.clone()),
        FieldType::Int | FieldType::AbsTime | FieldType::RelTime => {
            TypedVal::Int(parse_int(&v.text).ok_or_else(bad)?)
        }
        FieldType::Port => TypedVal::Int(
            v.text
                .parse::<u16>()
                .ok()
                .map(i64::from)
                .or_else(|| service_port(&v.text))
                .ok_or_else(bad)?,
        ),
        FieldType::Bool => match v.text.as_str() {
            "true" => TypedVal::Bool(true),
            "false" => TypedVal::Bool(false),
            _ => return Err(bad()),
        },
        FieldType::Ip => TypedVal::Ip(v.text.parse().map_err(|_| bad())?),
        FieldType::IpNet => TypedVal::Net(Cidr::parse(&v.text).ok_or_else(bad)?),
    })
}

enum TypedVal {
    Str(String),
    Int(i64),
    Bool(bool),
    Ip(std::net::IpAddr),
    Net(Cidr),
}

fn op_error(op: Op, ty: FieldType, field: &str, at: Loc) -> Issue {
    Issue::Error(
        at,
        format!(
            "operator '{}' is not allowed on {} field '{field}'",
            op.as_str(),
            ty.as_str()
        ),
    )
}

fn string_test(op: Op, value: &str, at: Loc, field: &str) -> Result<Test, Issue> {
    Ok(match op {
        Op::Eq => Test::StrEq(value.into()),
        Op::Ne => Test::StrNe(value.into()),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => Test::StrOrd(op, value.into()),
        Op::Contains => Test::Contains(value.into()),
        Op::IContains => Test::IContains(value.to_ascii_lowercase().into()),
        Op::StartsWith => Test::StartsWith(value.into()),
        Op::EndsWith => Test::EndsWith(value.into()),
        Op::Glob => Test::Glob(Glob::new(value, false)),
        Op::IGlob => Test::IGlob(Glob::new(value, true)),
        Op::Regex => match regex::RegexBuilder::new(&format!("^(?:{value})$"))
            .size_limit(1 << 20)
            .build()
        {
            Ok(r) => Test::Regex(r),
            Err(e) => {
                let first = e.to_string().lines().last().unwrap_or_default().to_string();
                return Err(Issue::Error(
                    at,
                    format!("invalid regex '{value}': {first}"),
                ));
            }
        },
        _ => return Err(op_error(op, FieldType::String, field, at)),
    })
}

fn compile_check(
    lhs_op: &Operand,
    op: Op,
    op_offset: usize,
    modifier: Option<Modifier>,
    rhs: &Rhs,
    text: &PosText,
) -> Result<Node, Issue> {
    let lhs = resolve_operand(lhs_op, text)?;
    let ty = lhs.field.ty;
    let field = lhs_op.field.as_str();
    let op_at = text.loc(op_offset);
    let test = match (op, rhs) {
        (Op::Exists, _) => Test::Exists,
        (_, Rhs::Field(other)) => {
            if !matches!(lhs.mode, LhsMode::Single) {
                return Err(Issue::Error(
                    op_at,
                    format!("field '{field}' cannot be compared with another field"),
                ));
            }
            let other_lhs = resolve_operand(other, text)?;
            if !matches!(other_lhs.mode, LhsMode::Single) {
                return Err(Issue::Error(
                    text.loc(other.offset),
                    format!("field '{}' cannot be used on the right", other.field),
                ));
            }
            let oty = other_lhs.field.ty;
            let compatible = ty == oty || (ty.is_numeric() && oty.is_numeric());
            if !compatible || ty == FieldType::IpNet {
                return Err(Issue::Error(
                    op_at,
                    format!(
                        "cannot compare {} field '{field}' with {} field '{}'",
                        ty.as_str(),
                        oty.as_str(),
                        other.field
                    ),
                ));
            }
            let allowed = match ty {
                FieldType::String => {
                    !matches!(op, Op::BContains | Op::BStartsWith | Op::Pmatch | Op::Regex)
                }
                FieldType::Bool | FieldType::Ip => {
                    matches!(op, Op::Eq | Op::Ne | Op::In | Op::Intersects)
                }
                _ => matches!(
                    op,
                    Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In | Op::Intersects
                ),
            };
            if !allowed {
                return Err(op_error(op, ty, field, op_at));
            }
            Test::Field(op, Box::new(other_lhs))
        }
        (_, Rhs::List(items)) if modifier.is_some() => {
            if ty != FieldType::String {
                return Err(Issue::Error(
                    op_at,
                    format!(
                        "list modifiers apply only to string fields, '{field}' is {}",
                        ty.as_str()
                    ),
                ));
            }
            let mut tests = Vec::with_capacity(items.len());
            for v in items {
                check_nul(v, text)?;
                tests.push(string_test(op, &v.text, text.loc(v.offset), field)?);
            }
            let modifier = modifier.unwrap_or(Modifier::AnyOf);
            if op == Op::Contains && modifier == Modifier::AnyOf {
                Test::AnyContains(MultiContains::new(
                    items
                        .iter()
                        .map(|v| Box::<str>::from(v.text.as_str()))
                        .collect(),
                ))
            } else {
                Test::Modified(modifier, tests)
            }
        }
        (Op::Pmatch, Rhs::List(items)) => {
            if ty != FieldType::String {
                return Err(op_error(op, ty, field, op_at));
            }
            let mut trie = PathTrie::default();
            for v in items {
                check_nul(v, text)?;
                trie.insert(&v.text);
            }
            Test::Pmatch(trie)
        }
        (Op::In | Op::Intersects, Rhs::List(items)) => match ty {
            FieldType::String => {
                for v in items {
                    check_nul(v, text)?;
                }
                Test::StrIn(StrSet::new(
                    items.iter().map(|v| Box::<str>::from(v.text.as_str())),
                ))
            }
            _ => {
                let mut ints = Vec::new();
                let mut bools = Vec::new();
                let mut ips = Vec::new();
                let mut nets = Vec::new();
                for v in items {
                    match parse_typed(ty, v, field, text)? {
                        TypedVal::Int(n) => ints.push(n),
                        TypedVal::Bool(b) => bools.push(b),
                        TypedVal::Ip(ip) => ips.push(ip),
                        TypedVal::Net(n) => nets.push(n),
                        TypedVal::Str(_) => {}
                    }
                }
                match ty {
                    FieldType::Bool => Test::BoolIn(bools),
                    FieldType::Ip => Test::IpIn(ips),
                    FieldType::IpNet => Test::Net(true, nets),
                    _ => {
                        ints.sort_unstable();
                        ints.dedup();
                        Test::NumIn(ints)
                    }
                }
            }
        },
        (_, Rhs::Value(v)) => {
            if op.is_list() {
                return Err(Issue::Error(
                    text.loc(v.offset),
                    format!("operator '{}' expects a list '(...)'", op.as_str()),
                ));
            }
            if matches!(op, Op::BContains | Op::BStartsWith) {
                return Err(op_error(op, ty, field, op_at));
            }
            match (ty, parse_typed(ty, v, field, text)?) {
                (FieldType::String, TypedVal::Str(s)) => {
                    string_test(op, &s, text.loc(v.offset), field)?
                }
                (FieldType::Bool, TypedVal::Bool(b)) => match op {
                    Op::Eq => Test::Bool(true, b),
                    Op::Ne => Test::Bool(false, b),
                    _ => return Err(op_error(op, ty, field, op_at)),
                },
                (FieldType::Ip, TypedVal::Ip(ip)) => match op {
                    Op::Eq => Test::Ip(true, ip),
                    Op::Ne => Test::Ip(false, ip),
                    _ => return Err(op_error(op, ty, field, op_at)),
                },
                (FieldType::IpNet, TypedVal::Net(n)) => match op {
                    Op::Eq => Test::Net(true, vec![n]),
                    Op::Ne => Test::Net(false, vec![n]),
                    _ => return Err(op_error(op, ty, field, op_at)),
                },
                (_, TypedVal::Int(n)) => match op {
                    Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        if lhs.field.id == FieldId::EvtNum
                            && op == Op::Eq
                            && n == 0
                            && lhs.transformers.is_empty()
                        {
                            // `evt.num=0` is the never_true idiom: statically false.
                            return Ok(Node::Const(false));
                        }
                        Test::Num(op, n)
                    }
                    _ => return Err(op_error(op, ty, field, op_at)),
                },
                _ => return Err(op_error(op, ty, field, op_at)),
            }
        }
        (_, Rhs::List(_)) => {
            return Err(Issue::Error(
                op_at,
                format!("operator '{}' does not take a list", op.as_str()),
            ));
        }
        (_, Rhs::None) => {
            return Err(Issue::Error(
                op_at,
                format!("operator '{}' needs a value", op.as_str()),
            ));
        }
    };
    if lhs.field.id == FieldId::EvtDir
        && lhs.transformers.is_empty()
        && let Some(b) = test.on_constant_str(fields::EVT_DIR)
    {
        // evt.dir is the same for every event TaskSentry produces: decide the test now.
        return Ok(Node::Const(b));
    }
    if lhs.field.id == FieldId::EvtType && lhs.transformers.is_empty() {
        // evt.type is always present and only takes TaskSentry's names: compile membership
        // tests into a bit mask test (no string comparison at run time).
        match &test {
            Test::StrEq(s) => return Ok(Node::TypeIn(type_bit(s))),
            Test::StrNe(s) => return Ok(Node::TypeIn(ALL_TYPES & !type_bit(s))),
            Test::StrIn(set) => {
                return Ok(Node::TypeIn(set.iter().fold(0, |acc, s| acc | type_bit(s))));
            }
            _ => {}
        }
    }
    Ok(Node::Check(Box::new((lhs, test))))
}

/// A set of event types as a bit mask over [`EventType::ALL`].
pub type TypeSet = u32;

/// Every event type.
pub const ALL_TYPES: TypeSet = (1 << EventType::ALL.len()) - 1;

fn type_bit(name: &str) -> TypeSet {
    EventType::from_name(name).map_or(0, |t| 1 << t.index())
}

/// Computes the event types a condition can match (spec §1.11): `and` intersects, `or` unions,
/// `not` is pushed to the leaves, checks on other fields are neutral, constants are exact.
pub fn event_types(node: &Node, negated: bool) -> TypeSet {
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

/// Evaluation order within an `and`/`or`: cheap, selective tests first.
pub(crate) fn rank_in_and(n: &Node) -> u8 {
    match n {
        Node::Const(_) | Node::TypeIn(_) => 0,
        Node::Check(c) => match &c.1 {
            Test::StrEq(_)
            | Test::StrIn(_)
            | Test::StartsWith(_)
            | Test::Pmatch(_)
            | Test::EndsWith(_) => 1,
            Test::Contains(_)
            | Test::IContains(_)
            | Test::Glob(_)
            | Test::IGlob(_)
            | Test::Num(..)
            | Test::NumIn(_)
            | Test::AnyContains(_)
            | Test::Bool(..) => 2,
            _ => 3,
        },
        Node::Or(_) => 4,
        Node::And(_) => 4,
        Node::Not(_) => 5,
        Node::Memo(_, inner) => rank_in_and(inner),
    }
}

/// Simplifies a compiled condition without changing its meaning: constants are folded (the
/// `never_true` hooks disappear), double negations removed, nested and/or flattened, and the
/// children of `and`/`or` are ordered cheap-and-selective first. Evaluation has no side
/// effects and a missing field is just `false`, so the order of operands cannot change a
/// result.
pub fn simplify(node: Node) -> Node {
    match node {
        Node::Not(inner) => match simplify(*inner) {
            Node::Const(b) => Node::Const(!b),
            Node::Not(x) => *x,
            other => Node::Not(Box::new(other)),
        },
        Node::And(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items.into_vec() {
                match simplify(n) {
                    Node::Const(true) => {}
                    Node::Const(false) => return Node::Const(false),
                    Node::And(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            out.sort_by_key(rank_in_and);
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out.into_boxed_slice()),
            }
        }
        Node::Or(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items.into_vec() {
                match simplify(n) {
                    Node::Const(false) => {}
                    Node::Const(true) => return Node::Const(true),
                    Node::Or(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            let mut out = merge_or_leaves(out);
            out.sort_by_key(rank_in_and);
            match out.len() {
                0 => Node::Const(false),
                1 => out.pop().unwrap_or(Node::Const(false)),
                _ => Node::Or(out.into_boxed_slice()),
            }
        }
        other => other,
    }
}

/// Whether an `or` operand is a string test on a single-valued field, which can be merged
/// with the other such operands on the same field.
fn mergeable(node: &Node) -> bool {
    let Node::Check(check) = node else {
        return false;
    };
    matches!(check.0.mode, LhsMode::Single)
        && matches!(
            check.1,
            Test::StrEq(_)
                | Test::StrIn(_)
                | Test::Contains(_)
                | Test::AnyContains(_)
                | Test::IContains(_)
                | Test::StartsWith(_)
                | Test::EndsWith(_)
                | Test::Glob(_)
                | Test::IGlob(_)
                | Test::Regex(_)
                | Test::Pmatch(_)
                | Test::Modified(Modifier::AnyOf, _)
        )
}

/// The string tests of an `or` on one field, being merged.
struct OrGroup {
    /// Index of the group's node in the output.
    at: usize,
    /// Values of `=` / `in`.
    eq: Vec<Box<str>>,
    /// Needles of `contains`.
    contains: Vec<Box<str>>,
    /// Every other test.
    others: Vec<Test>,
    /// The first test, kept as is when the group has only one operand.
    first: Option<Test>,
    /// Number of operands.
    count: usize,
}

impl OrGroup {
    fn add(&mut self, test: Test) {
        self.count += 1;
        if self.count == 1 {
            self.first = Some(test);
            return;
        }
        if let Some(first) = self.first.take() {
            self.absorb(first);
        }
        self.absorb(test);
    }

    fn absorb(&mut self, test: Test) {
        match test {
            Test::StrEq(s) => self.eq.push(s),
            Test::StrIn(set) => self.eq.extend(set.iter().cloned()),
            Test::Contains(s) => self.contains.push(s),
            Test::AnyContains(m) => self.contains.extend(m.needles().iter().cloned()),
            Test::Modified(Modifier::AnyOf, tests) => {
                for t in tests {
                    self.absorb(t);
                }
            }
            other => self.others.push(other),
        }
    }

    fn finish(self) -> Test {
        if let Some(first) = self.first {
            return first;
        }
        let mut parts = Vec::with_capacity(self.others.len() + 2);
        if !self.eq.is_empty() {
            parts.push(Test::StrIn(StrSet::new(self.eq)));
        }
        if !self.contains.is_empty() {
            parts.push(Test::AnyContains(MultiContains::new(self.contains)));
        }
        parts.extend(self.others);
        if parts.len() == 1 {
            parts
                .pop()
                .unwrap_or(Test::Modified(Modifier::AnyOf, Vec::new()))
        } else {
            Test::Modified(Modifier::AnyOf, parts)
        }
    }
}

/// Merges the operands of an `or` that are string tests on the same single-valued field into
/// one test on a value extracted once: `=`/`in` into one set, `contains` into one
/// multi-substring search, the rest into one "any of" list. A value passes one of several
/// tests exactly when one of the separate checks holds, and an absent value fails all of
/// them as it fails the merged one.
fn merge_or_leaves(items: Vec<Node>) -> Vec<Node> {
    let mut groups: Vec<OrGroup> = Vec::new();
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    for node in items {
        if !mergeable(&node) {
            out.push(node);
            continue;
        }
        let Node::Check(check) = node else {
            continue;
        };
        let (lhs, test) = *check;
        let found = groups.iter().position(|g| {
            matches!(&out[g.at], Node::Check(c)
                if c.0.field == lhs.field && c.0.transformers == lhs.transformers)
        });
        let g = match found {
            Some(g) => g,
            None => {
                groups.push(OrGroup {
                    at: out.len(),
                    eq: Vec::new(),
                    contains: Vec::new(),
                    others: Vec::new(),
                    first: None,
                    count: 0,
                });
                // The test is a placeholder until the group is finished.
                out.push(Node::Check(Box::new((lhs, Test::Exists))));
                groups.len() - 1
            }
        };
        groups[g].add(test);
    }
    for g in groups {
        let at = g.at;
        let test = g.finish();
        if let Node::Check(c) = &mut out[at] {
            c.1 = test;
        }
    }
    out
}

/// Drops top-level `evt.type` tests that the event-type index already guarantees (a rule is
/// only evaluated for events of its types).
pub fn hoist_types(node: Node, types: TypeSet) -> Node {
    let implied = |n: &Node| matches!(n, Node::TypeIn(mask) if types & !mask == 0);
    match node {
        n if implied(&n) => Node::Const(true),
        Node::And(items) => {
            let mut out: Vec<Node> = items
                .into_vec()
                .into_iter()
                .filter(|n| !implied(n))
                .collect();
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out.into_boxed_slice()),
            }
        }
        other => other,
    }
}

/// One piece of an output template.
#[derive(Debug)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A field token.
    Field {
        /// The token as written (the `output_fields` key), `None` for transformer tokens.
        key: Option<String>,
        /// Inner field key for transformer tokens (Falco reports the inner field).
        inner_key: Option<String>,
        /// What to extract.
        lhs: Lhs,
        /// Fixed width, if given.
        width: Option<usize>,
    },
    /// A Falco field TaskSentry does not provide: always `<NA>`/null.
    Unprovided {
        /// The token as written.
        key: String,
        /// Fixed width, if given.
        width: Option<usize>,
    },
}

/// A compiled output template.
#[derive(Debug, Default)]
pub struct OutputTemplate {
    /// The pieces, in order.
    pub segments: Vec<Segment>,
}

fn read_field_name(b: &[u8], mut i: usize) -> usize {
    loop {
        if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            return i;
        }
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
            continue;
        }
        return i;
    }
}

/// Finds the end of a token starting at `i` (a field with optional `[arg]`, or a transformer
/// call), returning `None` when nothing valid starts there.
fn token_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > 32 {
        return None;
    }
    let name_end = read_field_name(b, i);
    if name_end == i {
        return None;
    }
    let name = std::str::from_utf8(&b[i..name_end]).ok()?;
    if !name.contains('.') {
        if b.get(name_end) != Some(&b'(') {
            return None;
        }
        let inner = token_end(b, name_end + 1, depth + 1)?;
        return if b.get(inner) == Some(&b')') {
            Some(inner + 1)
        } else {
            None
        };
    }
    if b.get(name_end) == Some(&b'[')
        && let Some(close) = b[name_end..].iter().position(|c| *c == b']')
    {
        return Some(name_end + close + 1);
    }
    Some(name_end)
}

/// Compiles an output template. `warnings` collects (loc, message) for unprovided fields.
pub fn compile_output(
    text: &PosText,
    warnings: &mut Vec<(Loc, String)>,
) -> Result<OutputTemplate, Issue> {
    let s = text.text.as_str();
    let b = s.as_bytes();
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = s[i..].find('%').map_or(s.len(), |k| i + k);
            literal.push_str(&s[i..next]);
            i = next;
            continue;
        }
        let pct = i;
        let mut j = i + 1;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let width = if j > i + 1 {
            s[i + 1..j].parse::<usize>().ok()
        } else {
            None
        };
        let Some(end) = token_end(b, j, 0) else {
            return Err(Issue::Error(
                text.loc(pct),
                format!("invalid formatting token '{}'", preview(&s[pct..])),
            ));
        };
        let token = &s[j..end];
        if token == "container.info" {
            warnings.push((
                text.loc(pct),
                "%container.info is deprecated and is replaced by an empty string".into(),
            ));
            i = end;
            continue;
        }
        // Parse the token with the condition parser's operand rules.
        let probe = format!("{token} exists");
        let parsed = super::condition::parse(&probe);
        let operand = match parsed {
            Ok(Expr::Check { lhs, .. }) => lhs,
            _ => {
                return Err(Issue::Error(
                    text.loc(pct),
                    format!("invalid formatting token '%{token}'"),
                ));
            }
        };
        let sub = PosText::synthetic(&probe, text.loc(j));
        if !literal.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut literal)));
        }
        match resolve_operand(&operand, &sub) {
            Ok(lhs) => {
                let (key, inner_key) = if operand.transformers.is_empty() {
                    (Some(token.to_string()), None)
                } else {
                    let inner = match &operand.arg {
                        Some(a) => format!("{}[{a}]", operand.field),
                        None => operand.field.clone(),
                    };
                    (None, Some(inner))
                };
                segments.push(Segment::Field {
                    key,
                    inner_key,
                    lhs,
                    width,
                });
            }
            Err(Issue::Field(_, name, msg)) if fields::is_unprovided(&name) => {
                warnings.push((text.loc(j), format!("{msg}; it renders as <NA>")));
                segments.push(Segment::Unprovided {
                    key: token.to_string(),
                    width,
                });
            }
            Err(Issue::Field(_, name, msg)) => return Err(Issue::Field(text.loc(j), name, msg)),
            Err(Issue::Error(_, msg)) => return Err(Issue::Error(text.loc(j), msg)),
        }
        i = end;
    }
    if !literal.is_empty() {
        segments.push(Segment::Text(literal));
    }
    Ok(OutputTemplate { segments })
}

fn preview(s: &str) -> String {
    s.chars()
        .take_while(|c| !c.is_whitespace())
        .take(30)
        .collect()
}

fn pad(text: &mut String, value: &str, width: Option<usize>) {
    match width {
        None => text.push_str(value),
        Some(w) => {
            let n = value.chars().count();
            if n >= w {
                text.extend(value.chars().take(w));
            } else {
                text.push_str(value);
                text.extend(std::iter::repeat_n(' ', w - n));
            }
        }
    }
}

impl OutputTemplate {
    /// Renders the template: the text and the typed output fields (plus `evt.time`).
    pub fn render(&self, ev: &Event) -> (String, serde_json::Map<String, serde_json::Value>) {
        let mut text = String::new();
        let mut map = serde_json::Map::new();
        map.insert(
            "evt.time".into(),
            serde_json::Value::from(ev.evt.time.as_nanos()),
        );
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => text.push_str(t),
                Segment::Unprovided { key, width } => {
                    pad(&mut text, "<NA>", *width);
                    map.insert(key.clone(), serde_json::Value::Null);
                }
                Segment::Field {
                    key,
                    inner_key,
                    lhs,
                    width,
                } => {
                    let raw = fields::extract_for_output(&lhs.field, ev);
                    let value = match raw {
                        Some(v) if !lhs.transformers.is_empty() => {
                            if let Some(k) = inner_key {
                                map.insert(k.clone(), v.to_json());
                            }
                            transform_for_output(v, &lhs.transformers)
                        }
                        Some(v) => Some(v),
                        None => {
                            if let Some(k) = inner_key {
                                map.insert(k.clone(), serde_json::Value::Null);
                            }
                            None
                        }
                    };
                    let rendered = match &value {
                        Some(v) => render_text(&lhs.field, v),
                        None => "<NA>".to_string(),
                    };
                    pad(&mut text, &rendered, *width);
                    if let Some(k) = key {
                        map.insert(
                            k.clone(),
                            value.map_or(serde_json::Value::Null, |v| v.to_json()),
                        );
                    }
                }
            }
        }
        (text.trim().to_string(), map)
    }
}

fn render_text(field: &FieldRef, v: &Val<'_>) -> String {
    match (field.ty, v) {
        (FieldType::AbsTime, Val::Int(n)) => {
            crate::event::Timestamp(u64::try_from(*n).unwrap_or(0)).to_string()
        }
        _ => v.to_text(),
    }
}

fn transform_for_output<'a>(v: Val<'a>, transformers: &[Transformer]) -> Option<Val<'a>> {
    super::eval::apply_transformers(v, transformers)
}
