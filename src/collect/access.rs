//! Reading other processes' private `/proc` entries with the capabilities Fargate gives.
//!
//! `/proc/<pid>/{exe,cwd,root,environ,fd/*,ns/*}` are guarded by the kernel's ptrace "read"
//! check in its `FSCREDS` mode (`ptrace_may_access(task, PTRACE_MODE_READ_FSCREDS)`): it passes
//! when the reader's *filesystem* uid and gid equal the target's real, effective and saved ids
//! (and the target is dumpable, and the target's permitted capabilities are a subset of the
//! reader's effective ones), or when the reader has `CAP_SYS_PTRACE`. `environ` and the `fd`
//! directory are in addition owned by the target's uid with modes 0400/0500, so a reader
//! without `CAP_DAC_OVERRIDE` must be that uid too.
//!
//! A Fargate sidecar running as root keeps Docker's default capabilities, which include
//! `CAP_SETUID` and `CAP_SETGID` but not `CAP_SYS_PTRACE` (a task definition may add that one,
//! and only that one). Without it a root monitor cannot read a non-root app's entries as
//! itself; but `setfsuid`/`setfsgid` change the filesystem ids of the *calling thread only*,
//! and with them the thread passes the check as the app's own user. [`Access::as_owner`] does
//! exactly that around a read, and switches back afterwards (the kernel drops the filesystem
//! capabilities from the thread's effective set while its fsuid is not 0 and raises them again
//! when it returns to 0, so nothing else the thread does is affected).
//!
//! A container root is opened the same way once ([`Access::open_root`]): the `O_PATH`
//! descriptor the open returns is the container's root directory itself, and paths resolved
//! below it afterwards are checked against the monitor's own credentials (its
//! `CAP_DAC_OVERRIDE` reads an app's 0700 home), not the ptrace check again.
//!
//! What stays unreadable without `CAP_SYS_PTRACE`, by design of the kernel: processes that are
//! not dumpable (they changed their user without an exec, or set `PR_SET_DUMPABLE` to 0: their
//! `/proc/<pid>` is then owned by root), processes whose real, effective and saved ids differ
//! (a setuid program), and root processes holding capabilities the monitor lacks. [`Diagnosis`]
//! names which of these applies, so that the visibility report can say why and what fixes it.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use nix::fcntl::{OFlag, OpenHow, openat2};
use nix::unistd::{Gid, Uid, setfsgid, setfsuid};

/// Capability numbers (`linux/capability.h`) the monitor's reads depend on.
pub mod cap {
    /// `CAP_CHOWN`.
    pub const CHOWN: u32 = 0;
    /// `CAP_DAC_OVERRIDE`: read any file regardless of its mode.
    pub const DAC_OVERRIDE: u32 = 1;
    /// `CAP_DAC_READ_SEARCH`: read any file and list any directory.
    pub const DAC_READ_SEARCH: u32 = 2;
    /// `CAP_SETGID`: `setfsgid` to any gid.
    pub const SETGID: u32 = 6;
    /// `CAP_SETUID`: `setfsuid` to any uid.
    pub const SETUID: u32 = 7;
    /// `CAP_SYS_PTRACE`: passes the ptrace access checks.
    pub const SYS_PTRACE: u32 = 19;

    /// The capability's name as task definitions spell it (`SYS_PTRACE`), for the numbers
    /// this module uses.
    pub fn name(cap: u32) -> &'static str {
        match cap {
            CHOWN => "CHOWN",
            DAC_OVERRIDE => "DAC_OVERRIDE",
            DAC_READ_SEARCH => "DAC_READ_SEARCH",
            SETGID => "SETGID",
            SETUID => "SETUID",
            SYS_PTRACE => "SYS_PTRACE",
            _ => "?",
        }
    }
}

/// What the monitor itself may do: its effective capabilities and filesystem ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    /// Effective capability mask (`CapEff`).
    pub cap_eff: u64,
    /// The monitor's own filesystem uid (what a switch returns to).
    pub fsuid: u32,
    /// The monitor's own filesystem gid.
    pub fsgid: u32,
}

impl Privileges {
    /// Every capability, as root: what the tests have when nothing is dropped.
    pub fn all() -> Privileges {
        Privileges {
            cap_eff: u64::MAX,
            fsuid: 0,
            fsgid: 0,
        }
    }

    /// The calling process's privileges, read from `/proc/self/status` (the real `/proc`, not
    /// the configured proc root: these are the monitor's own). Unknown values count as none.
    pub fn of_self() -> Privileges {
        let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Privileges::from_status(&text)
    }

    /// Parses the `CapEff` and `Uid`/`Gid` lines of a status text.
    pub fn from_status(text: &str) -> Privileges {
        let mut privileges = Privileges {
            cap_eff: 0,
            fsuid: u32::MAX,
            fsgid: u32::MAX,
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key {
                "CapEff" => {
                    privileges.cap_eff = u64::from_str_radix(value.trim(), 16).unwrap_or(0);
                }
                // Real, effective, saved, filesystem.
                "Uid" => {
                    if let Some(fs) = value.split_ascii_whitespace().nth(3) {
                        privileges.fsuid = fs.parse().unwrap_or(u32::MAX);
                    }
                }
                "Gid" => {
                    if let Some(fs) = value.split_ascii_whitespace().nth(3) {
                        privileges.fsgid = fs.parse().unwrap_or(u32::MAX);
                    }
                }
                _ => {}
            }
        }
        privileges
    }

    /// Whether the capability is effective.
    pub fn has(&self, cap: u32) -> bool {
        cap < 64 && self.cap_eff & (1u64 << cap) != 0
    }

    /// Whether the monitor can take another user's filesystem ids (`CAP_SETUID` and
    /// `CAP_SETGID`).
    pub fn can_switch(&self) -> bool {
        self.has(cap::SETUID) && self.has(cap::SETGID)
    }

    /// Whether every private entry of every dumpable process is readable without switching:
    /// `CAP_SYS_PTRACE` passes the ptrace check and `CAP_DAC_OVERRIDE` the file modes.
    pub fn reads_directly(&self) -> bool {
        self.has(cap::SYS_PTRACE) && self.has(cap::DAC_OVERRIDE)
    }

    /// The capabilities among those the monitor's reads depend on that it lacks, by name.
    pub fn missing(&self) -> Vec<&'static str> {
        [cap::SYS_PTRACE, cap::DAC_OVERRIDE, cap::SETUID, cap::SETGID]
            .into_iter()
            .filter(|c| !self.has(*c))
            .map(cap::name)
            .collect()
    }
}

/// The filesystem ids a reader must take to pass the ptrace read check on a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The uid (real = effective = saved).
    pub uid: u32,
    /// The gid (real = effective = saved).
    pub gid: u32,
}

impl Owner {
    /// The owner of a process from its `status` ids: `None` when its real, effective and saved
    /// ids differ (no filesystem id passes the check then), or one is unknown.
    pub fn from_ids(uids: [Option<u32>; 3], gids: [Option<u32>; 3]) -> Option<Owner> {
        let same = |ids: [Option<u32>; 3]| match ids {
            [Some(a), Some(b), Some(c)] if a == b && b == c => Some(a),
            _ => None,
        };
        Some(Owner {
            uid: same(uids)?,
            gid: same(gids)?,
        })
    }
}

/// The owner of `<proc_root>/<pid>` as the kernel shows it: the process's effective uid and
/// gid while it is dumpable, root otherwise. One `stat`; `None` if the process is gone.
pub fn dir_owner(proc_root: &Path, pid: i32) -> Option<Owner> {
    let meta = std::fs::metadata(proc_root.join(pid.to_string())).ok()?;
    Some(Owner {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Reads made "as" a process's owner where the monitor's own credentials do not pass the
/// kernel's checks. Cheap to copy; [`Access::current`] is the monitor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    privileges: Privileges,
}

static CURRENT: OnceLock<Access> = OnceLock::new();

impl Access {
    /// Access with the given privileges (tests and benchmarks force the switching path with
    /// privileges that lack `CAP_SYS_PTRACE`).
    pub fn with_privileges(privileges: Privileges) -> Access {
        Access { privileges }
    }

    /// The monitor's access, from its own privileges, read once.
    pub fn current() -> Access {
        *CURRENT.get_or_init(|| Access::with_privileges(Privileges::of_self()))
    }

    /// The privileges this access works with.
    pub fn privileges(&self) -> Privileges {
        self.privileges
    }

    /// Whether reading a process owned by `owner` takes a switch of the filesystem ids.
    pub fn switches_for(&self, owner: Owner) -> bool {
        !self.privileges.reads_directly()
            && self.privileges.can_switch()
            && (owner.uid != self.privileges.fsuid || owner.gid != self.privileges.fsgid)
    }

    /// Whether any read may take a switch (so that callers can skip finding the owner).
    pub fn may_switch(&self) -> bool {
        !self.privileges.reads_directly() && self.privileges.can_switch()
    }

    /// Runs `read` with the calling thread's filesystem ids set to `owner`'s when the
    /// monitor's own do not pass the kernel's checks for that owner's processes, and restores
    /// them afterwards (also if `read` panics). Without an owner, or when no switch is needed
    /// or possible, `read` runs as the monitor.
    ///
    /// Only the calling thread changes: collectors call this on their own OS threads, never on
    /// a thread shared with other work.
    pub fn as_owner<T>(&self, owner: Option<Owner>, read: impl FnOnce() -> T) -> T {
        match owner {
            Some(owner) if self.switches_for(owner) => {
                let _switched = Switched::to(owner, self.privileges);
                read()
            }
            _ => read(),
        }
    }

    /// Opens the root directory of process `pid` (`<proc_root>/<pid>/root`) as an `O_PATH`
    /// descriptor, as the process's owner when needed. Paths below it are then resolved with
    /// the monitor's own credentials: keep the descriptor, and reach files through it
    /// (`openat2` relative to it, or `/proc/self/fd/<n>/...`).
    pub fn open_root(&self, proc_root: &Path, pid: i32) -> std::io::Result<OwnedFd> {
        let path = proc_root.join(pid.to_string()).join("root");
        let owner = if self.may_switch() {
            dir_owner(proc_root, pid)
        } else {
            None
        };
        self.as_owner(owner, || {
            let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY);
            openat2(nix::fcntl::AT_FDCWD, &path, how).map_err(std::io::Error::from)
        })
    }
}

/// The thread's filesystem ids switched to an owner's; dropping it switches back.
struct Switched {
    own: Privileges,
}

impl Switched {
    fn to(owner: Owner, own: Privileges) -> Switched {
        // The gid first: with CAP_SETGID either order works, and this one leaves the thread
        // with root's fsuid if the second call is refused.
        setfsgid(Gid::from_raw(owner.gid));
        setfsuid(Uid::from_raw(owner.uid));
        Switched { own }
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        setfsuid(Uid::from_raw(self.own.fsuid));
        setfsgid(Gid::from_raw(self.own.fsgid));
    }
}

/// The parts of a container the monitor may fail to see, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Facets(pub u16);

impl Facets {
    /// `/proc/<pid>/exe`: `proc.exepath` and the drift facts.
    pub const EXE: Facets = Facets(1);
    /// `/proc/<pid>/cwd`: `proc.cwd`.
    pub const CWD: Facets = Facets(1 << 1);
    /// `/proc/<pid>/environ`: `proc.env`.
    pub const ENVIRON: Facets = Facets(1 << 2);
    /// `/proc/<pid>/fd`: `proc.stdin_type`... and the owners of sockets and files.
    pub const FD: Facets = Facets(1 << 3);
    /// `/proc/<pid>/ns/*`: container identity by mount namespace.
    pub const NS: Facets = Facets(1 << 4);
    /// `/proc/<pid>/root`: every file event and user names of the container.
    pub const ROOT: Facets = Facets(1 << 5);
    /// Directories below the root the monitor cannot list (an app's 0700 home).
    pub const PRIVATE_DIRS: Facets = Facets(1 << 6);
    /// Owners of connections (found through `/proc/<pid>/fd`).
    pub const SOCKETS: Facets = Facets(1 << 7);
    /// No application container is visible at all (`pidMode` is not `task`).
    pub const CONTAINERS: Facets = Facets(1 << 8);

    const NAMES: [(Facets, &'static str); 9] = [
        (Facets::EXE, "exe"),
        (Facets::CWD, "cwd"),
        (Facets::ENVIRON, "environ"),
        (Facets::FD, "fd"),
        (Facets::NS, "ns"),
        (Facets::ROOT, "root"),
        (Facets::PRIVATE_DIRS, "private_dirs"),
        (Facets::SOCKETS, "sockets"),
        (Facets::CONTAINERS, "containers"),
    ];

    /// No facet.
    pub const NONE: Facets = Facets(0);

    /// Whether no facet is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every facet of `other` is set.
    pub fn contains(self, other: Facets) -> bool {
        self.0 & other.0 == other.0
    }

    /// The facets of `self` that `other` lacks.
    pub fn minus(self, other: Facets) -> Facets {
        Facets(self.0 & !other.0)
    }

    /// The names of the facets set, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Facets::NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Parses a comma-separated list of names (unknown names are ignored).
    pub fn parse(text: &str) -> Facets {
        let mut out = Facets::NONE;
        for name in text.split(',').map(str::trim) {
            if let Some((f, _)) = Facets::NAMES.iter().find(|(_, n)| *n == name) {
                out |= *f;
            }
        }
        out
    }
}

impl std::ops::BitOr for Facets {
    type Output = Facets;
    fn bitor(self, rhs: Facets) -> Facets {
        Facets(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Facets {
    fn bitor_assign(&mut self, rhs: Facets) {
        self.0 |= rhs.0;
    }
}

/// Whether an I/O error is the kernel refusing access (as opposed to the process or file
/// being gone).
pub fn is_denied(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// Why a process's private entries cannot be read, and what would make them readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Diagnosis {
    /// The process is not dumpable (it changed its user without an exec, or asked not to be):
    /// only `CAP_SYS_PTRACE` passes the check.
    NotDumpable,
    /// Its real, effective and saved ids differ (a setuid program): only `CAP_SYS_PTRACE`.
    MixedIds,
    /// It holds capabilities the monitor lacks (a root app with more than the monitor has):
    /// only `CAP_SYS_PTRACE`, or giving the monitor at least the app's capabilities.
    MoreCapabilities,
    /// Another user's process and the monitor can neither pass the check (no
    /// `CAP_SYS_PTRACE`) nor take that user's ids (no `CAP_SETUID`/`CAP_SETGID`).
    OtherUser,
    /// The check passes but the file modes do not (`environ` 0400 and `fd/` 0500 belong to
    /// the process's user): `CAP_DAC_OVERRIDE` missing and no switch possible.
    FileModes,
    /// None of the above explains it (a security module, a hardened kernel).
    Unknown,
}

impl Diagnosis {
    /// Explains, from what is known of the target, why a read of its private entries failed.
    /// `dir_owner` is the owner of `/proc/<pid>`, `uids`/`gids` its real, effective and saved
    /// ids, `cap_prm` its permitted capabilities, `check_passed` whether a ptrace-checked entry
    /// (`exe`) was readable.
    pub fn of(
        privileges: Privileges,
        dir_owner: Option<Owner>,
        uids: [Option<u32>; 3],
        gids: [Option<u32>; 3],
        cap_prm: Option<u64>,
        check_passed: bool,
    ) -> Diagnosis {
        if check_passed {
            return Diagnosis::FileModes;
        }
        let owner = Owner::from_ids(uids, gids);
        if let (Some(dir), Some(ids)) = (dir_owner, owner)
            && dir.uid == 0
            && ids.uid != 0
        {
            return Diagnosis::NotDumpable;
        }
        let Some(owner) = owner else {
            return Diagnosis::MixedIds;
        };
        if owner.uid == privileges.fsuid || privileges.can_switch() {
            if cap_prm.is_some_and(|prm| prm & !privileges.cap_eff != 0) {
                return Diagnosis::MoreCapabilities;
            }
            return Diagnosis::Unknown;
        }
        Diagnosis::OtherUser
    }

    /// A stable short name (`not_dumpable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnosis::NotDumpable => "not_dumpable",
            Diagnosis::MixedIds => "mixed_ids",
            Diagnosis::MoreCapabilities => "more_capabilities",
            Diagnosis::OtherUser => "other_user",
            Diagnosis::FileModes => "file_modes",
            Diagnosis::Unknown => "unknown",
        }
    }

    /// Why, in a sentence.
    pub fn reason(self) -> &'static str {
        match self {
            Diagnosis::NotDumpable => {
                "processes that are not dumpable (they changed user without an exec) pass the kernel's ptrace read check only for a reader with CAP_SYS_PTRACE"
            }
            Diagnosis::MixedIds => {
                "processes whose real, effective and saved ids differ (setuid programs) pass the kernel's ptrace read check only for a reader with CAP_SYS_PTRACE"
            }
            Diagnosis::MoreCapabilities => {
                "root processes holding capabilities the monitor lacks pass the kernel's ptrace read check only for a reader with CAP_SYS_PTRACE or a superset of their capabilities"
            }
            Diagnosis::OtherUser => {
                "another user's /proc/<pid>/{exe,cwd,root,environ,fd} pass the kernel's ptrace read check only for a reader with CAP_SYS_PTRACE or, with CAP_SETUID and CAP_SETGID, reading as that user"
            }
            Diagnosis::FileModes => {
                "/proc/<pid>/environ (0400) and /proc/<pid>/fd (0500) belong to the process's user: reading them takes CAP_DAC_OVERRIDE or, with CAP_SETUID and CAP_SETGID, reading as that user"
            }
            Diagnosis::Unknown => {
                "the kernel refused the read although the monitor's capabilities should pass its checks (a security module or hardened kernel?)"
            }
        }
    }

    /// What to change in the task definition.
    pub fn fix(self) -> &'static str {
        match self {
            Diagnosis::NotDumpable | Diagnosis::MixedIds | Diagnosis::MoreCapabilities => {
                "add SYS_PTRACE to the sidecar's linuxParameters.capabilities.add"
            }
            Diagnosis::OtherUser => {
                "add SYS_PTRACE to the sidecar's linuxParameters.capabilities.add, or keep SETUID and SETGID (do not drop ALL)"
            }
            Diagnosis::FileModes => {
                "keep DAC_OVERRIDE in the sidecar (drop the capabilities it does not need one by one instead of ALL), or keep SETUID and SETGID"
            }
            Diagnosis::Unknown => "check the host's security modules (AppArmor, SELinux, Yama)",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The status of a uid-0 process with Docker's default capabilities (real text).
    const ROOT_DEFAULT_CAPS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n";

    #[test]
    fn docker_default_caps_can_switch_but_do_not_read_directly() {
        let p = Privileges::from_status(ROOT_DEFAULT_CAPS);
        assert_eq!((p.fsuid, p.fsgid), (0, 0));
        assert!(p.has(cap::DAC_OVERRIDE) && p.has(cap::SETUID) && p.has(cap::SETGID));
        assert!(!p.has(cap::SYS_PTRACE));
        assert!(p.can_switch());
        assert!(!p.reads_directly());
        assert_eq!(p.missing(), vec!["SYS_PTRACE"]);
        let access = Access::with_privileges(p);
        assert!(access.switches_for(Owner {
            uid: 1000,
            gid: 1000
        }));
        assert!(access.switches_for(Owner { uid: 0, gid: 1000 }));
        assert!(!access.switches_for(Owner { uid: 0, gid: 0 }));
    }

    #[test]
    fn with_sys_ptrace_and_dac_override_nothing_switches() {
        let mut p = Privileges::from_status(ROOT_DEFAULT_CAPS);
        p.cap_eff |= 1 << cap::SYS_PTRACE;
        assert!(p.reads_directly());
        assert!(!Access::with_privileges(p).switches_for(Owner {
            uid: 1000,
            gid: 1000
        }));
        assert!(!Access::with_privileges(p).may_switch());
    }

    #[test]
    fn drop_all_add_sys_ptrace_can_neither_switch_nor_override_modes() {
        let p = Privileges {
            cap_eff: 1 << cap::SYS_PTRACE,
            fsuid: 0,
            fsgid: 0,
        };
        assert!(!p.can_switch() && !p.reads_directly());
        assert_eq!(p.missing(), vec!["DAC_OVERRIDE", "SETUID", "SETGID"]);
        assert!(!Access::with_privileges(p).switches_for(Owner {
            uid: 1000,
            gid: 1000
        }));
    }

    #[test]
    fn facets_print_and_parse_by_name() {
        let f = Facets::EXE | Facets::ENVIRON | Facets::PRIVATE_DIRS;
        assert_eq!(f.names(), vec!["exe", "environ", "private_dirs"]);
        assert_eq!(Facets::parse("private_dirs, exe,environ,bogus"), f);
        assert!(f.contains(Facets::EXE) && !f.contains(Facets::CWD));
        assert_eq!(
            f.minus(Facets::EXE | Facets::CWD),
            Facets::ENVIRON | Facets::PRIVATE_DIRS
        );
        assert!(Facets::NONE.is_empty());
    }

    #[test]
    fn owner_needs_equal_real_effective_and_saved_ids() {
        let ids = |v: u32| [Some(v), Some(v), Some(v)];
        assert_eq!(
            Owner::from_ids(ids(1000), ids(50)),
            Some(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            Owner::from_ids([Some(1000), Some(0), Some(0)], ids(50)),
            None
        );
        assert_eq!(Owner::from_ids([Some(1), Some(1), None], ids(1)), None);
    }

    #[test]
    fn diagnosis_names_the_kernel_rule_that_applies() {
        let default = Privileges::from_status(ROOT_DEFAULT_CAPS);
        let ids = |v: u32| [Some(v), Some(v), Some(v)];
        let app = ids(1000);
        let drop_all = Privileges {
            cap_eff: 1 << cap::SYS_PTRACE,
            fsuid: 0,
            fsgid: 0,
        };
        // Passed the check, failed on modes.
        assert_eq!(
            Diagnosis::of(drop_all, None, app, app, Some(0), true),
            Diagnosis::FileModes
        );
        // /proc/<pid> owned by root although the process runs as 1000: not dumpable.
        let root_owned = Some(Owner { uid: 0, gid: 0 });
        assert_eq!(
            Diagnosis::of(default, root_owned, app, app, Some(0), false),
            Diagnosis::NotDumpable
        );
        assert_eq!(
            Diagnosis::of(
                default,
                None,
                [Some(1000), Some(0), Some(0)],
                app,
                Some(0),
                false
            ),
            Diagnosis::MixedIds
        );
        // A root app with every capability, read by a monitor with the default set.
        assert_eq!(
            Diagnosis::of(default, None, ids(0), ids(0), Some(u64::MAX >> 23), false),
            Diagnosis::MoreCapabilities
        );
        let none = Privileges {
            cap_eff: 0,
            fsuid: 0,
            fsgid: 0,
        };
        assert_eq!(
            Diagnosis::of(none, None, app, app, Some(0), false),
            Diagnosis::OtherUser
        );
        for d in [
            Diagnosis::NotDumpable,
            Diagnosis::MixedIds,
            Diagnosis::MoreCapabilities,
            Diagnosis::OtherUser,
            Diagnosis::FileModes,
            Diagnosis::Unknown,
        ] {
            assert!(!d.reason().is_empty() && !d.fix().is_empty() && !d.as_str().is_empty());
        }
    }

    /// The switch on a real process of another user, on this thread only: run as root, a
    /// thread that switches to uid 1000 reads what a uid-1000 reader may, and every other
    /// thread keeps root's filesystem ids throughout.
    #[test]
    fn the_switch_changes_only_the_calling_thread_and_is_undone() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let access = Access::with_privileges(Privileges {
            cap_eff: (1 << cap::SETUID) | (1 << cap::SETGID) | (1 << cap::DAC_OVERRIDE),
            fsuid: 0,
            fsgid: 0,
        });
        let thread_fsuid = || {
            std::fs::read_to_string("/proc/thread-self/status")
                .ok()
                .map(|t| Privileges::from_status(&t).fsuid)
        };
        let (inside, other) = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Option<u32>>();
            let watcher = scope.spawn(move || {
                rx.recv().unwrap();
                back_tx.send(thread_fsuid()).unwrap();
            });
            let inside = access.as_owner(
                Some(Owner {
                    uid: 1000,
                    gid: 1000,
                }),
                || {
                    tx.send(()).unwrap();
                    let other = back_rx.recv().unwrap();
                    (thread_fsuid(), other)
                },
            );
            watcher.join().unwrap();
            inside
        });
        assert_eq!(inside, Some(1000));
        assert_eq!(other, Some(0), "another thread's fsuid must not change");
        assert_eq!(thread_fsuid(), Some(0), "the switch must be undone");
    }
}
