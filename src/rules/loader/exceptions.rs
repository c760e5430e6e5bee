//! Exceptions: a rule's `exceptions` read and checked, merged on append/override, and turned
//! into the `and not (...)` clauses Falco appends to the rule's condition.

use super::Loader;
use crate::rules::syntax::ast::Op;
use crate::rules::syntax::diag::Loc;
use crate::rules::syntax::text::{PosText, quote_item};
use crate::rules::syntax::yaml::{self, Kind, Node};
use crate::rules::{LoadOptions, RuleSource};

/// A scalar exception value or a list of them.
#[derive(Debug, Clone)]
enum ExItem {
    Scalar(String, Loc),
    List(Vec<(String, Loc)>),
}

/// One exception of a rule: fields, comparison operators and value tuples.
#[derive(Debug, Clone)]
pub(super) struct Exception {
    /// The exception's name (appends to the same name merge their values).
    pub(super) name: String,
    loc: Loc,
    fields: Vec<(String, Loc)>,
    fields_is_list: bool,
    comps: Vec<(String, Loc)>,
    values: Vec<(Vec<ExItem>, Loc)>,
}

impl Loader<'_> {
    /// One value of an exception tuple: a scalar or a flat list of scalars.
    fn scalar_or_list(&mut self, node: &Node, label: &str) -> Option<ExItem> {
        match &node.kind {
            Kind::Scalar(s, _) => Some(ExItem::Scalar(s.clone(), self.loc(node.offset))),
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for it in items {
                    match it.as_str() {
                        Some(s) => out.push((s.to_string(), self.loc(it.offset))),
                        None => {
                            self.error_at(
                                it,
                                label,
                                "exception values may nest at most one list deep",
                            );
                            return None;
                        }
                    }
                }
                Some(ExItem::List(out))
            }
            Kind::Map(_) => {
                self.error_at(node, label, "exception values must be scalars or lists");
                None
            }
        }
    }

    /// Reads `exceptions`; `existing` is the rule's current exceptions when merging.
    pub(super) fn read_exceptions(
        &mut self,
        node: &Node,
        label: &str,
        existing: Option<&[Exception]>,
    ) -> Option<Vec<Exception>> {
        let Kind::Seq(items) = &node.kind else {
            if node.is_null() {
                return Some(Vec::new());
            }
            self.error_at(node, label, "'exceptions' must be a sequence");
            return None;
        };
        let mut out: Vec<Exception> = Vec::new();
        let mut ok = true;
        for ex in items {
            let at = self.loc(ex.offset);
            let Kind::Map(ex_entries) = &ex.kind else {
                self.error(
                    at,
                    Some(label.to_string()),
                    "each exception must be a mapping",
                );
                ok = false;
                continue;
            };
            self.warn_unknown_keys(ex_entries, &["name", "fields", "comps", "values"], label);
            let Some(name) = ex
                .get("name")
                .and_then(Node::as_str)
                .filter(|s| !s.is_empty())
            else {
                self.error(
                    at,
                    Some(label.to_string()),
                    "Item has no mapping for key 'name'",
                );
                ok = false;
                continue;
            };
            let name = name.to_string();
            if out.iter().any(|e| e.name == name) {
                self.warn(
                    at,
                    Some(label.to_string()),
                    format!("Multiple definitions of exception '{name}' in the same rule"),
                );
            }
            let prior = existing.and_then(|ex| ex.iter().find(|e| e.name == name));
            // Values.
            let mut values = Vec::new();
            if let Some(vnode) = ex.get("values") {
                match &vnode.kind {
                    Kind::Seq(tuples) => {
                        for t in tuples {
                            let tat = self.loc(t.offset);
                            match &t.kind {
                                Kind::Seq(elems) => {
                                    let mut tuple = Vec::new();
                                    for e in elems {
                                        match self.scalar_or_list(e, label) {
                                            Some(x) => tuple.push(x),
                                            None => ok = false,
                                        }
                                    }
                                    values.push((tuple, tat));
                                }
                                Kind::Scalar(..) => match self.scalar_or_list(t, label) {
                                    Some(x) => values.push((vec![x], tat)),
                                    None => ok = false,
                                },
                                Kind::Map(_) => {
                                    self.error(
                                        tat,
                                        Some(label.to_string()),
                                        "exception values must be sequences or scalars",
                                    );
                                    ok = false;
                                }
                            }
                        }
                    }
                    _ if vnode.is_null() => {}
                    _ => {
                        self.error_at(vnode, label, "exception 'values' must be a sequence");
                        ok = false;
                        continue;
                    }
                }
            }
            if let Some(prior) = prior {
                for key in ["fields", "comps"] {
                    if let Some(k) = ex.get(key) {
                        self.error_at(k, label, format!("Can not append exception '{name}': '{key}' may not be given when appending values to an existing exception"));
                        ok = false;
                    }
                }
                let mut merged = prior.clone();
                merged.values.extend(values);
                merged.loc = at;
                self.validate_tuples(&merged, label, &mut ok);
                out.push(merged);
                continue;
            }
            let Some(fnode) = ex.get("fields") else {
                self.error(
                    at,
                    Some(label.to_string()),
                    format!("Item has no mapping for key 'fields' (exception '{name}')"),
                );
                ok = false;
                continue;
            };
            let (fields, fields_is_list) = match &fnode.kind {
                Kind::Scalar(s, _) => (vec![(s.clone(), self.loc(fnode.offset))], false),
                Kind::Seq(fs) => {
                    let mut v = Vec::new();
                    for f in fs {
                        match f.as_str() {
                            Some(s) => v.push((s.to_string(), self.loc(f.offset))),
                            None => {
                                self.error_at(f, label, "exception fields must be strings");
                                ok = false;
                            }
                        }
                    }
                    (v, true)
                }
                Kind::Map(_) => {
                    self.error_at(
                        fnode,
                        label,
                        "exception 'fields' must be a field or a list of fields",
                    );
                    ok = false;
                    continue;
                }
            };
            let comps = match ex.get("comps") {
                None => {
                    let default = if fields_is_list { "=" } else { "in" };
                    fields
                        .iter()
                        .map(|(_, l)| (default.to_string(), *l))
                        .collect::<Vec<_>>()
                }
                Some(c) => match &c.kind {
                    Kind::Scalar(s, _) if !fields_is_list => vec![(s.clone(), self.loc(c.offset))],
                    Kind::Seq(cs) if fields_is_list => cs
                        .iter()
                        .map(|x| {
                            (
                                x.as_str().unwrap_or_default().to_string(),
                                self.loc(x.offset),
                            )
                        })
                        .collect(),
                    _ => {
                        self.error_at(c, label, "exception 'comps' must be a list when 'fields' is a list, and a single operator otherwise");
                        ok = false;
                        continue;
                    }
                },
            };
            for (comp, cat) in &comps {
                let known = Op::from_token(comp).is_some()
                    || comp.split_once(' ').is_some_and(|(o, m)| {
                        Op::from_token(o).is_some() && matches!(m, "oneof" | "anyof" | "allof")
                    });
                if !known {
                    self.error(
                        *cat,
                        Some(label.to_string()),
                        format!("'{comp}' is not a supported comparison operator"),
                    );
                    ok = false;
                }
            }
            if !fields_is_list
                && !comps.iter().all(|(c, _)| {
                    matches!(c.as_str(), "in" | "pmatch" | "intersects") || c.contains(' ')
                })
            {
                let cat = comps.first().map_or(at, |c| c.1);
                self.error(
                    cat,
                    Some(label.to_string()),
                    "with a single field, 'comps' must be in, pmatch or intersects",
                );
                ok = false;
            }
            if fields_is_list && comps.len() != fields.len() {
                let cat = ex.get("comps").map_or(at, |c| self.loc(c.offset));
                self.error(cat, Some(label.to_string()), format!("Rule exception item '{name}': fields and comps lists must have equal length"));
                ok = false;
                continue;
            }
            let exc = Exception {
                name,
                loc: at,
                fields,
                fields_is_list,
                comps,
                values,
            };
            self.validate_tuples(&exc, label, &mut ok);
            out.push(exc);
        }
        ok.then_some(out)
    }

    /// Checks that every value tuple fits the exception's fields.
    fn validate_tuples(&mut self, ex: &Exception, label: &str, ok: &mut bool) {
        for (tuple, tat) in &ex.values {
            if ex.fields_is_list {
                if tuple.len() != ex.fields.len() {
                    self.error(*tat, Some(label.to_string()), format!("Rule exception item '{}': fields and values lists must have equal length", ex.name));
                    *ok = false;
                }
            } else if tuple.iter().any(|t| matches!(t, ExItem::List(_))) {
                self.error(*tat, Some(label.to_string()), format!("Rule exception item '{}': with a single field, values must be a flat list of scalars", ex.name));
                *ok = false;
            }
        }
    }
}

/// Merges exceptions into a rule's: one of the same name is replaced, others are added.
pub(super) fn merge_exceptions(into: &mut Vec<Exception>, new: Vec<Exception>) {
    for ex in new {
        match into.iter_mut().find(|e| e.name == ex.name) {
            Some(existing) => *existing = ex,
            None => into.push(ex),
        }
    }
}

/// Builds the final condition text: `(C) and not E1 and not E2 ...`, each exception one
/// clause (an `in` list for one field, an `or` of value tuples for several).
pub(super) fn build_condition(cond: &PosText, exceptions: &[Exception], loc: Loc) -> PosText {
    let mut ex_parts: Vec<PosText> = Vec::new();
    for ex in exceptions {
        let mut icond = PosText::synthetic("", ex.loc);
        if !ex.fields_is_list {
            let (field, floc) = &ex.fields[0];
            let comp = ex.comps.first().map_or("in", |c| c.0.as_str());
            let mut first = true;
            for (tuple, _) in &ex.values {
                for item in tuple {
                    if let ExItem::Scalar(v, vloc) = item {
                        if first {
                            icond.push_str(&format!("({field} {comp} ("), *floc);
                            first = false;
                        } else {
                            icond.push_str(", ", *vloc);
                        }
                        icond.push_str(&quote_item(v), *vloc);
                    }
                }
            }
            if !first {
                icond.push_str("))", ex.loc);
            }
        } else {
            icond.push_str("(", ex.loc);
            let mut first_tuple = true;
            for (tuple, tloc) in &ex.values {
                if !first_tuple {
                    icond.push_str(" or ", *tloc);
                }
                first_tuple = false;
                icond.push_str("(", *tloc);
                for (k, (field, floc)) in ex.fields.iter().enumerate() {
                    if k > 0 {
                        icond.push_str(" and ", *tloc);
                    }
                    let (comp, cloc) = ex
                        .comps
                        .get(k)
                        .map_or(("=", *floc), |c| (c.0.as_str(), c.1));
                    icond.push_str(&format!(" {field}"), *floc);
                    icond.push_str(&format!(" {comp} "), cloc);
                    match tuple.get(k) {
                        Some(ExItem::List(items)) => {
                            icond.push_str("(", *tloc);
                            for (i, (v, vloc)) in items.iter().enumerate() {
                                if i > 0 {
                                    icond.push_str(", ", *vloc);
                                }
                                icond.push_str(&quote_item(v), *vloc);
                            }
                            icond.push_str(")", *tloc);
                        }
                        Some(ExItem::Scalar(v, vloc)) => {
                            let is_list_op = matches!(comp, "in" | "pmatch" | "intersects")
                                || comp.contains(' ');
                            let rendered = if is_list_op {
                                if v.starts_with('(') {
                                    v.clone()
                                } else {
                                    format!("({v})")
                                }
                            } else {
                                quote_item(v)
                            };
                            icond.push_str(&rendered, *vloc);
                        }
                        None => {}
                    }
                }
                icond.push_str(")", *tloc);
            }
            icond.push_str(")", ex.loc);
            if icond.text == "()" {
                icond = PosText::synthetic("", ex.loc);
            }
        }
        if !icond.text.is_empty() {
            ex_parts.push(icond);
        }
    }
    if ex_parts.is_empty() {
        return cond.clone();
    }
    let mut out = PosText::synthetic("(", loc);
    out.push(cond);
    out.push_str(")", loc);
    for part in ex_parts {
        let at = part.loc(0);
        out.push_str(" and not ", at);
        out.push(&part);
    }
    out
}

/// The exception-compiled condition text of a rule definition, before list substitution
/// (for the golden test of exception compilation).
pub fn exception_text_for_test(cond: &str, exceptions_yaml: &str) -> Result<String, String> {
    let sources = [RuleSource {
        name: "t.yaml".into(),
        text: exceptions_yaml.to_string(),
    }];
    let options = LoadOptions::default();
    let mut l = Loader::new(&sources, &options);
    let docs = yaml::parse(exceptions_yaml).map_err(|e| e.message)?;
    let node = docs.into_iter().flatten().next().ok_or("empty")?;
    let ex = l
        .read_exceptions(&node, "rule 't'", None)
        .ok_or_else(|| format!("{:?}", l.diags))?;
    Ok(build_condition(&PosText::synthetic(cond, 0), &ex, 0).text)
}
