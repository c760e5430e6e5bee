//! One check (`field op value`): the field resolved against the catalogue, with its argument,
//! transformers and fast accessor, and the right-hand value parsed into the field's type and
//! compiled into a [`Test`].

use super::{ALL_TYPES, Issue, type_bit};
use crate::rules::eval::access::{direct_accessor, str_accessor};
use crate::rules::eval::{Cidr, Glob, Lhs, LhsMode, MultiContains, Node, PathTrie, StrSet, Test};
use crate::rules::fields::{self, ArgKind, FieldArg, FieldId, FieldRef, FieldType};
use crate::rules::syntax::ast::{Modifier, Op, Operand, Rhs, Transformer, Value};
use crate::rules::syntax::diag::Loc;
use crate::rules::syntax::text::PosText;

/// Resolves an operand (field + argument + transformers).
pub(crate) fn resolve_operand(o: &Operand, text: &PosText) -> Result<Lhs, Issue> {
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
    let fast = if plain { str_accessor(&field) } else { None };
    let fast_direct = if plain { direct_accessor(&field) } else { None };
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

pub(super) fn compile_check(
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
