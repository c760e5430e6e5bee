//! Direct accessors: the evaluator's fast paths to the fields rules test most, chosen once per
//! check at load time. Each returns exactly what the general extraction returns for its field
//! (the tests below check every one).

use super::ctx::EvalCtx;
use crate::event::Process;
use crate::rules::fields::{
    FieldArg, FieldId, FieldRef, ancestor, basename, dirname, split_image, typechar,
};

/// A direct accessor for a string field that can be borrowed from the event (or the per-event
/// cache): the evaluator's fast path, with no `Val` wrapping.
pub(crate) type StrAccessor = for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<&'c str>;

fn proc_of<'c>(cx: &'c EvalCtx<'_>) -> Option<&'c Process> {
    cx.ev.proc.as_deref()
}

/// The fast accessor for a field, when it has one (string fields without argument that are
/// stored as such in the event).
pub(crate) fn str_accessor(field: &FieldRef) -> Option<StrAccessor> {
    use FieldId as F;
    if field.arg != FieldArg::None {
        return None;
    }
    Some(match field.id {
        F::ProcName => |cx| proc_of(cx).map(|p| p.name.as_str()),
        F::ProcExe => |cx| proc_of(cx).and_then(|p| p.exe.as_deref()),
        F::ProcExepath => |cx| proc_of(cx).and_then(|p| p.exepath.as_deref()),
        F::ProcCwd => |cx| proc_of(cx).and_then(|p| p.cwd.as_deref()),
        F::ProcPname => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .map(|a| a.name.as_str())
        },
        F::ProcPexe => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .and_then(|a| a.exe.as_deref())
        },
        F::ProcPexepath => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .and_then(|a| a.exepath.as_deref())
        },
        F::ProcCmdline => |cx| cx.cmdline(),
        F::UserName => |cx| proc_of(cx).and_then(|p| p.user.as_deref()),
        F::GroupName => |cx| proc_of(cx).and_then(|p| p.group.as_deref()),
        F::ContainerId => |cx| Some(cx.ev.container.as_ref().map_or("host", |c| c.id.as_str())),
        F::ContainerImage => |cx| cx.ev.container.as_ref().and_then(|c| c.image.as_deref()),
        F::ContainerImageRepository => |cx| {
            cx.ev
                .container
                .as_ref()
                .and_then(|c| c.image.as_deref())
                .map(|i| split_image(i).0)
        },
        F::FdName => |cx| cx.ev.fd.as_ref().and_then(|f| f.name.as_deref()),
        // Same results as `dirname`/`basename` (a `/` byte is always a char boundary).
        F::FdDirectory => |cx| {
            cx.fd_path().map(|(name, slash)| match slash {
                Some(0) => "/",
                Some(i) => name.get(..i).unwrap_or_else(|| dirname(name)),
                None => name,
            })
        },
        F::FdFilename => |cx| {
            cx.fd_path().map(|(name, slash)| match slash {
                Some(i) => name.get(i + 1..).unwrap_or_else(|| basename(name)),
                None => name,
            })
        },
        F::FdL4proto => |cx| cx.ev.fd.as_ref().and_then(|f| f.l4proto.as_deref()),
        _ => return None,
    })
}

/// A direct accessor for a number or boolean field: the evaluator's fast path for those, with
/// no `Val` built and no dispatch through [`extract_ctx`](super::ctx::extract_ctx) and
/// [`extract`](crate::rules::fields::extract). Each returns exactly what `extract` returns for
/// the field (a test checks every one).
#[derive(Clone, Copy)]
pub(crate) enum DirectAccessor {
    /// An integer field.
    Int(for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<i64>),
    /// A boolean field.
    Bool(for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<bool>),
    /// A string field read by [`direct_str`].
    Str,
}

impl std::fmt::Debug for DirectAccessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The accessor follows from the field, which is printed next to it.
        f.write_str(match self {
            DirectAccessor::Int(_) => "Int",
            DirectAccessor::Bool(_) => "Bool",
            DirectAccessor::Str => "Str",
        })
    }
}

/// The fast accessor for a number or boolean field without argument, when it has one (the
/// process fields rules test most: ids, terminal, user, executable flags), or for a string
/// field that [`direct_str`] reads.
pub(crate) fn direct_accessor(field: &FieldRef) -> Option<DirectAccessor> {
    use DirectAccessor::{Bool, Int};
    use FieldId as F;
    match (field.id, &field.arg) {
        (F::ProcEnv, FieldArg::Key(_))
        | (F::ProcAname, FieldArg::Index(_))
        | (F::FdTypechar, FieldArg::None) => {
            return Some(DirectAccessor::Str);
        }
        (_, FieldArg::None) => {}
        _ => return None,
    }
    Some(match field.id {
        F::ProcPid | F::ProcVpid => Int(|cx| proc_of(cx).map(|p| i64::from(p.pid))),
        F::ProcPpid => Int(|cx| proc_of(cx).map(|p| i64::from(p.ppid))),
        F::ProcTty => Int(|cx| proc_of(cx).and_then(|p| p.tty).map(i64::from)),
        F::ProcSid => Int(|cx| proc_of(cx).and_then(|p| p.sid).map(i64::from)),
        F::ProcVpgid => Int(|cx| proc_of(cx).and_then(|p| p.pgid).map(i64::from)),
        F::ProcTracerPid => Int(|cx| proc_of(cx).and_then(|p| p.tracer_pid).map(i64::from)),
        F::UserUid => Int(|cx| proc_of(cx).and_then(|p| p.euid).map(i64::from)),
        F::UserLoginuid => Int(|cx| proc_of(cx).and_then(|p| p.loginuid)),
        F::GroupGid => Int(|cx| proc_of(cx).and_then(|p| p.egid).map(i64::from)),
        F::ProcIsExeFromMemfd => Bool(|cx| proc_of(cx).map(|p| p.exe_from_memfd)),
        F::ProcIsExeDeleted => Bool(|cx| proc_of(cx).map(|p| p.exe_deleted)),
        F::ProcExeWrittenAfterStart => {
            Bool(|cx| proc_of(cx).and_then(|p| p.exe_written_after_start))
        }
        F::ProcIsVpgidLeader => Bool(|cx| proc_of(cx).and_then(|p| p.pgid.map(|g| g == p.pid))),
        F::EvtIsOpenRead => Bool(|cx| cx.ev.fd.as_ref().and_then(|f| f.open_read)),
        F::EvtIsOpenWrite => Bool(|cx| cx.ev.fd.as_ref().and_then(|f| f.open_write)),
        _ => return None,
    })
}

/// The value of a string field that is not a plain [`str_accessor`] field: `proc.env[NAME]`,
/// `proc.aname[N]` (`N` = 0 is the process itself) and `fd.typechar` (which is kept out of
/// [`str_accessor`] so that it does not become a rule key for the candidate index). `None`
/// for every other field; `Some(None)` when the event lacks the value. The same as `extract`,
/// without its dispatch (a test checks it).
#[inline]
pub(crate) fn direct_str<'c>(field: &FieldRef, cx: &'c EvalCtx<'_>) -> Option<Option<&'c str>> {
    match (field.id, &field.arg) {
        (FieldId::ProcEnv, FieldArg::Key(k)) => Some(proc_of(cx).and_then(|p| p.env_var(k))),
        (FieldId::ProcAname, FieldArg::Index(0)) => Some(proc_of(cx).map(|p| p.name.as_str())),
        (FieldId::ProcAname, FieldArg::Index(i)) => Some(
            proc_of(cx)
                .and_then(|p| ancestor(p, *i))
                .map(|a| a.name.as_str()),
        ),
        (FieldId::FdTypechar, FieldArg::None) => {
            Some(cx.ev.fd.as_ref().and_then(|f| f.kind).map(typechar))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::event::FdKind;
    use crate::rules::eval::ctx::extract_ctx;
    use crate::rules::fields::{FieldType, Val, catalogue, extract};

    /// Every catalogue field, referenced without an argument, with its name.
    fn plain_refs() -> impl Iterator<Item = (&'static str, FieldRef)> {
        catalogue().iter().map(|def| {
            let field = FieldRef {
                id: def.id,
                arg: FieldArg::None,
                ty: def.ty,
            };
            (def.name, field)
        })
    }

    /// Every direct accessor returns what `extract` returns, on events with and without a
    /// process or descriptor and with every optional value present or absent.
    #[test]
    fn direct_accessors_agree_with_extract() {
        use crate::event::{Collector, Event, EventType, Fd, Process};
        let full = Process {
            pid: 42,
            ppid: -1,
            tty: Some(u32::MAX),
            sid: Some(42),
            pgid: Some(42),
            tracer_pid: Some(7),
            euid: Some(u32::MAX),
            loginuid: Some(-1),
            egid: Some(0),
            exe_from_memfd: true,
            exe_deleted: true,
            exe_written_after_start: Some(false),
            ..Process::default()
        };
        let other_group = Process {
            pgid: Some(41),
            exe_written_after_start: Some(true),
            ..full.clone()
        };
        let mut events = Vec::new();
        for proc in [
            None,
            Some(Process::default()),
            Some(full),
            Some(other_group),
        ] {
            for fd in [
                None,
                Some(Fd::default()),
                Some(Fd {
                    open_read: Some(true),
                    open_write: Some(false),
                    ..Fd::default()
                }),
            ] {
                let mut ev = Event::new(EventType::Open, Collector::Fswatch);
                ev.proc = proc.clone().map(Box::new);
                ev.fd = fd.map(Box::new);
                events.push(ev);
            }
        }
        let mut with_accessor = 0;
        for (name, field) in plain_refs() {
            let Some(get) = direct_accessor(&field) else {
                continue;
            };
            with_accessor += 1;
            for ev in &events {
                let cx = EvalCtx::new(ev);
                let fast = match get {
                    DirectAccessor::Int(f) => f(&cx).map(Val::Int),
                    DirectAccessor::Bool(f) => f(&cx).map(Val::Bool),
                    DirectAccessor::Str => continue,
                };
                assert_eq!(fast, extract(&field, ev), "{name}");
            }
        }
        assert!(with_accessor >= 14, "{with_accessor}");
    }

    /// Every string accessor (the evaluator's fast path) returns what `extract_ctx` returns,
    /// with and without a process, container and descriptor of each kind.
    #[test]
    fn str_accessors_agree_with_extract_ctx() {
        use crate::event::{Collector, Container, Event, EventType, Fd, Process};
        let mut events = Vec::new();
        let kinds = [
            None,
            Some(FdKind::File),
            Some(FdKind::Directory),
            Some(FdKind::Ipv4),
            Some(FdKind::Unix),
            Some(FdKind::Pipe),
            Some(FdKind::Anon),
        ];
        for with_proc in [false, true] {
            for kind in kinds {
                for name in [None, Some("/etc/shadow"), Some("noslash"), Some("/")] {
                    let mut ev = Event::new(EventType::Open, Collector::Fswatch);
                    if with_proc {
                        ev.proc = Some(Box::new(Process {
                            name: "sh".into(),
                            exe: Some("/bin/sh".into()),
                            args: vec!["-c".into(), "id".into()],
                            user: Some("root".into()),
                            ..Process::default()
                        }));
                        ev.container = Some(Box::new(Container {
                            id: "abc".into(),
                            image: Some("repo/img:1".into()),
                            ..Container::default()
                        }));
                    }
                    ev.fd = Some(Box::new(Fd {
                        kind,
                        name: name.map(String::from),
                        l4proto: Some("tcp".into()),
                        ..Fd::default()
                    }));
                    events.push(ev);
                }
            }
        }
        let mut with_accessor = 0;
        for (name, field) in plain_refs() {
            let Some(get) = str_accessor(&field) else {
                continue;
            };
            with_accessor += 1;
            for ev in &events {
                let cx = EvalCtx::new(ev);
                let want = extract_ctx(&field, &cx).map(|v| v.to_text());
                assert_eq!(get(&cx).map(String::from), want, "{name}");
            }
        }
        assert!(with_accessor >= 17, "{with_accessor}");
    }

    /// `direct_str` returns what `extract` returns for the fields it covers.
    #[test]
    fn direct_str_agrees_with_extract() {
        use crate::event::{Ancestor, Collector, Event, EventType, Process};
        let anc = |name: &str| Ancestor {
            pid: 1,
            name: name.into(),
            exe: None,
            exepath: None,
            args: Vec::new(),
        };
        let procs = [
            None,
            Some(Process::default()),
            Some(Process {
                name: "worker".into(),
                env: vec![
                    ("LD_PRELOAD".into(), "/x.so".into()),
                    ("EMPTY".into(), String::new()),
                    ("LD_PRELOAD".into(), "second".into()),
                ],
                ancestors: vec![anc("node"), anc(""), anc("tini")],
                ..Process::default()
            }),
        ];
        let fields = [
            (FieldId::ProcEnv, FieldArg::Key("LD_PRELOAD".into())),
            (FieldId::ProcEnv, FieldArg::Key("EMPTY".into())),
            (FieldId::ProcEnv, FieldArg::Key("MISSING".into())),
            (FieldId::ProcAname, FieldArg::Index(0)),
            (FieldId::ProcAname, FieldArg::Index(1)),
            (FieldId::ProcAname, FieldArg::Index(2)),
            (FieldId::ProcAname, FieldArg::Index(3)),
            (FieldId::ProcAname, FieldArg::Index(4)),
        ];
        for proc in procs {
            let mut ev = Event::new(EventType::Execve, Collector::Procscan);
            ev.proc = proc.map(Box::new);
            let cx = EvalCtx::new(&ev);
            for (id, arg) in &fields {
                let field = FieldRef {
                    id: *id,
                    arg: arg.clone(),
                    ty: FieldType::String,
                };
                assert!(matches!(direct_accessor(&field), Some(DirectAccessor::Str)));
                let want = extract(&field, &ev);
                let got = direct_str(&field, &cx).expect("covered");
                assert_eq!(
                    got.map(|s| Val::Str(Cow::Borrowed(s))),
                    want,
                    "{id:?} {arg:?}"
                );
            }
        }
        let other = FieldRef {
            id: FieldId::ProcName,
            arg: FieldArg::None,
            ty: FieldType::String,
        };
        let ev = Event::new(EventType::Execve, Collector::Procscan);
        assert!(direct_str(&other, &EvalCtx::new(&ev)).is_none());
        let typechar = FieldRef {
            id: FieldId::FdTypechar,
            arg: FieldArg::None,
            ty: FieldType::String,
        };
        assert!(matches!(
            direct_accessor(&typechar),
            Some(DirectAccessor::Str)
        ));
        assert!(str_accessor(&typechar).is_none());
        let kinds = [
            FdKind::File,
            FdKind::Directory,
            FdKind::Ipv4,
            FdKind::Ipv6,
            FdKind::Unix,
            FdKind::Pipe,
            FdKind::Socket,
            FdKind::Tty,
            FdKind::Device,
            FdKind::Anon,
            FdKind::None,
        ];
        let fds = [None, Some(None)]
            .into_iter()
            .chain(kinds.into_iter().map(|k| Some(Some(k))));
        for fd in fds {
            let mut ev = Event::new(EventType::Open, Collector::Fswatch);
            ev.fd = fd.map(|kind| {
                Box::new(crate::event::Fd {
                    kind,
                    ..crate::event::Fd::default()
                })
            });
            let cx = EvalCtx::new(&ev);
            let got = direct_str(&typechar, &cx).expect("covered");
            assert_eq!(
                got.map(|s| Val::Str(Cow::Borrowed(s))),
                extract(&typechar, &ev),
                "{fd:?}"
            );
        }
    }
}
