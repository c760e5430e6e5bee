//! The per-event evaluation context: the event, the values built from it at most once per
//! event (command lines, capability names, the environment, the last `/` of `fd.name`), the
//! results of shared sub-conditions and the command line's needle hits.

use std::borrow::Cow;

use crate::event::{Event, Process};
use crate::rules::fields::{
    FieldArg, FieldId, FieldRef, Val, ancestor, decode_caps, extract, is_file_like,
};
use crate::rules::optimize::needles::{NeedleBits, NeedleIndex};

/// Words of the per-event memo bit sets (see [`EvalCtx::memo_get`]).
const MEMO_WORDS: usize = 8;

/// Number of memo slots a context has: sub-conditions given a higher slot number are simply
/// evaluated each time.
pub(crate) const MEMO_SLOTS: usize = MEMO_WORDS * 64;

/// Per-event evaluation context: the event plus lazily computed values of the fields that
/// need building (command lines, capability names, the environment, where `fd.name`'s last
/// `/` is), so that each is built at most once per event however many rules test it, and the
/// results of shared sub-conditions ([`Node::Memo`](super::Node::Memo)).
pub(crate) struct EvalCtx<'e> {
    /// The event.
    pub(crate) ev: &'e Event,
    cmdline: std::cell::OnceCell<String>,
    args: std::cell::OnceCell<String>,
    pcmdline: std::cell::OnceCell<Option<String>>,
    env: std::cell::OnceCell<String>,
    caps: [std::cell::OnceCell<Option<String>>; 3],
    /// Byte position of the last `/` in `fd.name` (`None` inside: no slash).
    fd_slash: std::cell::OnceCell<Option<usize>>,
    /// Memo slots already computed (one bit each).
    memo_known: [std::cell::Cell<u64>; MEMO_WORDS],
    /// Their results.
    memo_value: [std::cell::Cell<u64>; MEMO_WORDS],
    /// Which needles of a [`NeedleIndex`] (identified by its address) occur
    /// in the command line.
    needles: std::cell::OnceCell<(usize, NeedleBits)>,
    /// Set while evaluating without caches (`Node::eval_uncached`, the tests' reference).
    bypass: std::cell::Cell<bool>,
}

impl<'e> EvalCtx<'e> {
    /// A context for one event.
    pub(crate) fn new(ev: &'e Event) -> EvalCtx<'e> {
        EvalCtx {
            ev,
            cmdline: std::cell::OnceCell::new(),
            args: std::cell::OnceCell::new(),
            pcmdline: std::cell::OnceCell::new(),
            env: std::cell::OnceCell::new(),
            caps: Default::default(),
            fd_slash: std::cell::OnceCell::new(),
            memo_known: Default::default(),
            memo_value: Default::default(),
            needles: std::cell::OnceCell::new(),
            bypass: std::cell::Cell::new(false),
        }
    }

    /// The needles of `index` that occur in the command line: `scan` runs once per event
    /// (and again only if a second index is used with the same context).
    #[inline]
    pub(crate) fn cmdline_needles(
        &self,
        index: &NeedleIndex,
        scan: impl Fn() -> NeedleBits,
    ) -> NeedleBits {
        let id = std::ptr::from_ref(index) as usize;
        let (owner, hits) = *self.needles.get_or_init(|| (id, scan()));
        if owner == id { hits } else { scan() }
    }

    /// Whether caches are bypassed (the reference evaluation); returns the previous setting.
    #[cfg(test)]
    pub(crate) fn set_bypass(&self, on: bool) -> bool {
        self.bypass.replace(on)
    }

    /// Whether caches are bypassed.
    #[inline]
    pub(crate) fn bypass(&self) -> bool {
        self.bypass.get()
    }

    /// The remembered result of the sub-condition in memo `slot` for this event, if it was
    /// computed (by [`EvalCtx::memo_set`]). Conditions are pure functions of the event, so
    /// every rule sharing the slot gets the same answer it would have computed itself.
    #[inline]
    pub(crate) fn memo_get(&self, slot: u32) -> Option<bool> {
        let word = (slot / 64) as usize;
        let bit = 1u64 << (slot % 64);
        let known = self.memo_known.get(word)?;
        if known.get() & bit == 0 {
            return None;
        }
        Some(
            self.memo_value
                .get(word)
                .is_some_and(|v| v.get() & bit != 0),
        )
    }

    /// Remembers the result of memo `slot` (slots past [`MEMO_SLOTS`] are not remembered).
    #[inline]
    pub(crate) fn memo_set(&self, slot: u32, result: bool) {
        let word = (slot / 64) as usize;
        let bit = 1u64 << (slot % 64);
        let (Some(known), Some(value)) = (self.memo_known.get(word), self.memo_value.get(word))
        else {
            return;
        };
        known.set(known.get() | bit);
        if result {
            value.set(value.get() | bit);
        }
    }

    /// The process's command line, built at most once per event.
    #[inline]
    pub(super) fn cmdline(&self) -> Option<&str> {
        let p = self.ev.proc.as_deref()?;
        Some(self.cmdline.get_or_init(|| p.cmdline()).as_str())
    }

    /// `fd.name` of a file-like descriptor, with the position of its last `/` (found once per
    /// event: `fd.directory` and `fd.filename` are tested by many rules).
    #[inline]
    pub(super) fn fd_path(&self) -> Option<(&'e str, Option<usize>)> {
        let name = self
            .ev
            .fd
            .as_ref()
            .filter(|f| is_file_like(f.kind))
            .and_then(|f| f.name.as_deref())?;
        let slash = *self
            .fd_slash
            .get_or_init(|| name.bytes().rposition(|b| b == b'/'));
        Some((name, slash))
    }
}

/// Extracts a field through the per-event cache.
pub(crate) fn extract_ctx<'c>(field: &FieldRef, cx: &'c EvalCtx<'_>) -> Option<Val<'c>> {
    let p = cx.ev.proc.as_ref();
    let cached = |cell: &'c std::cell::OnceCell<String>, f: &dyn Fn(&Process) -> String| {
        p.map(|p| Val::Str(Cow::Borrowed(cell.get_or_init(|| f(p)).as_str())))
    };
    match (field.id, &field.arg) {
        (FieldId::ProcCmdline, _) => cached(&cx.cmdline, &|p| p.cmdline()),
        (FieldId::ProcArgs, FieldArg::None) if p.is_some_and(|p| p.args.len() > 1) => {
            cached(&cx.args, &|p| p.args_joined())
        }
        // An empty environment (the usual case for the processes a workload starts with a
        // clean environment, and whenever it could not be read) needs no string built.
        (FieldId::ProcEnv, FieldArg::None) if p.is_some_and(|p| p.env.is_empty()) => {
            Some(Val::Str(Cow::Borrowed("")))
        }
        (FieldId::ProcEnv, FieldArg::None) => cached(&cx.env, &|p| {
            let parts: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.join(" ")
        }),
        (FieldId::ProcPcmdline, _) => cx
            .pcmdline
            .get_or_init(|| {
                p.and_then(|p| ancestor(p, 1))
                    .map(|a| crate::event::join_cmdline(&a.name, &a.args))
            })
            .as_deref()
            .map(|s| Val::Str(Cow::Borrowed(s))),
        (
            FieldId::ThreadCapEffective
            | FieldId::ThreadCapPermitted
            | FieldId::ThreadCapInheritable,
            _,
        ) => {
            let (i, mask) = match field.id {
                FieldId::ThreadCapEffective => (0, p.and_then(|p| p.cap_effective)),
                FieldId::ThreadCapPermitted => (1, p.and_then(|p| p.cap_permitted)),
                _ => (2, p.and_then(|p| p.cap_inheritable)),
            };
            cx.caps[i]
                .get_or_init(|| mask.map(decode_caps))
                .as_deref()
                .map(|s| Val::Str(Cow::Borrowed(s)))
        }
        _ => extract(field, cx.ev),
    }
}
