//! Degraded visibility: what the monitor cannot read of each container, said as an event.
//!
//! Procscan feeds this tracker with every process it reads (which private entries the kernel
//! refused, and why: [`super::access::Diagnosis`]) and with the outcome of opening each
//! container's root and probing the directories where apps keep private files. At the end of
//! every scan the tracker reports, once per container and again only when something new turns
//! out unreadable, a `tasksentry` event of kind `visibility_degraded` naming the container,
//! the unreadable facets (`exe`, `cwd`, `environ`, `fd`, `ns`, `root`, `private_dirs`,
//! `sockets`), the reason and the fix. The engine adds the default rules that therefore cannot
//! fire. A monitor that runs in a container and sees no application container at all after a
//! grace period (a task definition without `pidMode: task`) reports that too.
//!
//! The counts the heartbeat publishes (containers checked, containers degraded) are kept in
//! [`VisibilityCounts`], shared with the CloudWatch sink.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use super::access::{Access, Diagnosis, Facets, is_denied};
use super::shared::ContainerTable;
use crate::event::{Collector, Container, Event, EventType, Internal};
use crate::procfs::HOST_ID;

/// The kind of the internal event.
pub const KIND: &str = "visibility_degraded";

/// How long a monitor that runs in a container waits for an application container before it
/// reports that it sees none.
pub const NO_CONTAINER_GRACE: Duration = Duration::from_secs(30);

/// Directories probed below each container root: where apps keep private files (an app user's
/// home is typically 0700) and where the default file watches look.
const PRIVATE_DIR_PATTERNS: [&str; 4] = ["/root", "/root/.ssh", "/home/*", "/home/*/.ssh"];

/// Most examples of affected processes kept per container.
const MAX_EXAMPLES: usize = 5;

/// Counts shared with the heartbeat: live application containers whose visibility was checked,
/// and of those, the ones the monitor sees only partly.
#[derive(Debug, Clone, Default)]
pub struct VisibilityCounts {
    /// Containers checked.
    pub checked: Arc<AtomicU64>,
    /// Containers degraded.
    pub degraded: Arc<AtomicU64>,
    /// Whether the counts mean something yet: an application container was checked, or (for a
    /// monitor in a container) the grace for one to appear ended.
    pub known: Arc<AtomicBool>,
}

/// One process the kernel refused something of.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Example {
    pid: i32,
    name: String,
    uid: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    unreadable: Facets,
    reported: Facets,
    diagnoses: BTreeSet<Diagnosis>,
    processes: u64,
    examples: Vec<Example>,
    private_dirs: BTreeSet<String>,
    root_checked: bool,
}

/// The tracker (owned by procscan's thread).
#[derive(Debug)]
pub struct Visibility {
    access: Access,
    counts: VisibilityCounts,
    containers: HashMap<Arc<str>, State>,
    started: Instant,
    grace: Duration,
    /// Whether the monitor runs in a container of its own (only then is "no application
    /// container" a misconfiguration rather than a host run).
    in_container: bool,
    no_containers_reported: bool,
}

impl Visibility {
    /// A tracker for a monitor with `access`; `in_container` says whether the monitor runs in a
    /// container of its own.
    pub fn new(access: Access, counts: VisibilityCounts, in_container: bool) -> Visibility {
        Visibility {
            access,
            counts,
            containers: HashMap::new(),
            started: Instant::now(),
            grace: NO_CONTAINER_GRACE,
            in_container,
            no_containers_reported: false,
        }
    }

    /// Changes the grace period before "no application container" is reported (tests).
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Notes what the kernel refused while reading one process of container `id`.
    pub fn note_process(
        &mut self,
        id: &Arc<str>,
        pid: i32,
        name: &str,
        uid: Option<u32>,
        unreadable: Facets,
        diagnosis: Option<Diagnosis>,
    ) {
        if unreadable.is_empty() || &**id == HOST_ID {
            return;
        }
        let state = self.containers.entry(id.clone()).or_default();
        let mut facets = unreadable;
        if facets.contains(Facets::FD) {
            // Connection owners are found through the same directory.
            facets |= Facets::SOCKETS;
        }
        state.unreadable |= facets;
        state.diagnoses.extend(diagnosis);
        state.processes += 1;
        if state.examples.len() < MAX_EXAMPLES && !state.examples.iter().any(|e| e.pid == pid) {
            state.examples.push(Example {
                pid,
                name: name.to_string(),
                uid,
            });
        }
    }

    /// Notes the outcome of opening container `id`'s root (through its first process) and, when
    /// it opened, probes the directories apps keep private files in. `diagnosis` explains a
    /// refusal (from what is known of the root process). Done once per container.
    pub fn note_root(
        &mut self,
        id: &Arc<str>,
        root: Result<&OwnedFd, &std::io::Error>,
        diagnosis: Option<Diagnosis>,
    ) {
        if &**id == HOST_ID {
            return;
        }
        let state = self.containers.entry(id.clone()).or_default();
        if state.root_checked {
            return;
        }
        match root {
            Ok(fd) => {
                state.root_checked = true;
                let private = probe_private_dirs(fd);
                if !private.is_empty() {
                    state.unreadable |= Facets::PRIVATE_DIRS;
                    state.private_dirs.extend(private);
                    let privileges = self.access.privileges();
                    state
                        .diagnoses
                        .insert(if privileges.has(super::access::cap::DAC_OVERRIDE) {
                            Diagnosis::Unknown
                        } else {
                            Diagnosis::FileModes
                        });
                }
            }
            Err(error) if is_denied(error) => {
                state.root_checked = true;
                state.unreadable |= Facets::ROOT;
                state.diagnoses.extend(diagnosis);
            }
            // Gone, or not yet in its container root: checked again with the next process.
            Err(_) => {}
        }
    }

    /// Whether container `id`'s root was checked already.
    pub fn root_checked(&self, id: &str) -> bool {
        self.containers.get(id).is_some_and(|s| s.root_checked)
    }

    /// Forgets a container that is gone.
    pub fn forget(&mut self, id: &str) {
        self.containers.remove(id);
    }

    /// Reports what is new since the last call, and updates the counts from the live
    /// application containers of `containers`.
    pub fn report(&mut self, now: Instant, containers: &ContainerTable, out: &mut Vec<Event>) {
        let mut live: Vec<(&Arc<str>, &Container)> = Vec::new();
        for (id, entry) in containers.iter() {
            if entry.excluded.is_some() || entry.gone_at.is_some() || &**id == HOST_ID {
                continue;
            }
            live.push((id, &entry.container));
        }
        let mut degraded = 0u64;
        for (id, container) in &live {
            let Some(state) = self.containers.get_mut(*id) else {
                continue;
            };
            if !state.unreadable.is_empty() {
                degraded += 1;
            }
            let new = state.unreadable.minus(state.reported);
            if new.is_empty() {
                continue;
            }
            state.reported |= new;
            out.push(container_event(
                container,
                state,
                self.access.privileges().missing(),
            ));
        }
        self.counts
            .checked
            .store(live.len() as u64, Ordering::Relaxed);
        self.counts.degraded.store(degraded, Ordering::Relaxed);
        let grace_over = now.saturating_duration_since(self.started) >= self.grace;
        if !live.is_empty() || (self.in_container && grace_over) {
            self.counts.known.store(true, Ordering::Relaxed);
        }
        if live.is_empty()
            && self.in_container
            && !self.no_containers_reported
            && now.saturating_duration_since(self.started) >= self.grace
        {
            self.no_containers_reported = true;
            out.push(no_container_event(self.grace));
        }
        if !live.is_empty() {
            self.no_containers_reported = false;
        }
    }
}

/// Opens each existing private directory pattern below `root` for listing; returns those the
/// kernel refused.
fn probe_private_dirs(root: &OwnedFd) -> Vec<String> {
    let mut refused = Vec::new();
    for pattern in PRIVATE_DIR_PATTERNS {
        let paths = match pattern.split_once("/*") {
            Some((parent, rest)) => super::fswatch::resolve::list_dir(root, parent)
                .into_iter()
                .filter(|(_, is_dir)| *is_dir)
                .map(|(name, _)| format!("{parent}/{name}{rest}"))
                .collect(),
            None => vec![pattern.to_string()],
        };
        for path in paths {
            if refused
                .iter()
                .any(|r: &String| path.starts_with(&format!("{r}/")))
            {
                continue;
            }
            let how = OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let relative = path.trim_start_matches('/');
            match openat2(root.as_fd(), relative, how) {
                Ok(_) => {}
                Err(nix::errno::Errno::EACCES) | Err(nix::errno::Errno::EPERM) => {
                    refused.push(path)
                }
                Err(_) => {}
            }
        }
    }
    refused
}

fn container_event(container: &Container, state: &State, missing: Vec<&'static str>) -> Event {
    let facets = state.unreadable.names().join(",");
    let diagnoses: Vec<Diagnosis> = state.diagnoses.iter().copied().collect();
    let reason = diagnoses
        .iter()
        .map(|d| d.reason())
        .collect::<Vec<_>>()
        .join("; ");
    let mut fixes: Vec<&str> = diagnoses.iter().map(|d| d.fix()).collect();
    fixes.dedup();
    let fix = fixes.join("; or ");
    let examples = state
        .examples
        .iter()
        .map(|e| match e.uid {
            Some(uid) => format!("{} ({}, uid {uid})", e.pid, e.name),
            None => format!("{} ({})", e.pid, e.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let name = container.name.as_deref().unwrap_or(&container.id);
    let mut message = format!("TaskSentry cannot read {facets} of container {name}");
    if state.processes > 0 {
        message.push_str(&format!(
            "; {} processes affected, e.g. {examples}",
            state.processes
        ));
    }
    if !state.private_dirs.is_empty() {
        let dirs: Vec<&str> = state.private_dirs.iter().map(String::as_str).collect();
        message.push_str(&format!(
            "; directories it cannot list: {}",
            dirs.join(", ")
        ));
    }
    if !reason.is_empty() {
        message.push_str(&format!(". Why: {reason}"));
    }
    if !fix.is_empty() {
        message.push_str(&format!(". Fix: {fix}"));
    }
    let mut event = Event::new(EventType::Tasksentry, Collector::Procscan);
    event.container = Some(Box::new(container.clone()));
    let mut args: BTreeMap<&str, String> = BTreeMap::new();
    args.insert("unreadable", facets);
    args.insert(
        "reason",
        diagnoses
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    args.insert("fix", fix);
    args.insert("missing_capabilities", missing.join(","));
    if !state.private_dirs.is_empty() {
        let dirs: Vec<&str> = state.private_dirs.iter().map(String::as_str).collect();
        args.insert("private_dirs", dirs.join(","));
    }
    if !examples.is_empty() {
        args.insert("examples", examples);
    }
    event.evt.args = args.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    event.internal = Some(Box::new(Internal {
        kind: KIND.into(),
        message,
        count: Some(state.processes),
    }));
    event
}

fn no_container_event(grace: Duration) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Procscan);
    event.evt.args = vec![
        ("unreadable".to_string(), "containers".to_string()),
        ("reason".to_string(), "no_containers".to_string()),
        (
            "fix".to_string(),
            "set \"pidMode\": \"task\" in the task definition (Fargate platform version 1.4.0 or later)"
                .to_string(),
        ),
    ];
    event.internal = Some(Box::new(Internal {
        kind: KIND.into(),
        message: format!(
            "TaskSentry sees no application container {}s after it started: only its own container and the task's pause process are visible. Without \"pidMode\": \"task\" every container has its own PID namespace and the sidecar sees nothing of the others. Fix: set \"pidMode\": \"task\" in the task definition",
            grace.as_secs()
        ),
        count: Some(0),
    }));
    event
}

/// Whether `path` is the root this process itself runs in (a container process seen before
/// it moved into its own root, during its setup).
pub fn is_own_root(fd: &OwnedFd) -> bool {
    let Ok(own) = std::fs::metadata("/proc/self/root") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    own.dev() == st.st_dev && own.ino() == st.st_ino
}

/// The `/proc/self/fd/<n>` path through which files below an opened root are reached.
pub fn fd_path(fd: &OwnedFd) -> std::path::PathBuf {
    super::fswatch::resolve::fd_path(fd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::collect::access::Privileges;

    fn table_with(id: &str) -> ContainerTable {
        let mut table = ContainerTable::default();
        table.intern(id, None);
        table
    }

    fn kinds(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                let unreadable = e
                    .evt
                    .args
                    .iter()
                    .find(|(k, _)| k == "unreadable")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (e.internal.as_ref().unwrap().kind.clone(), unreadable)
            })
            .collect()
    }

    #[test]
    fn a_container_is_reported_once_and_again_only_for_new_facets() {
        let counts = VisibilityCounts::default();
        let mut v = Visibility::new(
            Access::with_privileges(Privileges::all()),
            counts.clone(),
            true,
        );
        let table = table_with("c1");
        let id: Arc<str> = Arc::from("c1");
        let mut out = Vec::new();
        v.report(Instant::now(), &table, &mut out);
        assert!(out.is_empty());
        assert_eq!(counts.checked.load(Ordering::Relaxed), 1);
        assert_eq!(counts.degraded.load(Ordering::Relaxed), 0);

        v.note_process(
            &id,
            7,
            "python3",
            Some(1000),
            Facets::EXE | Facets::ENVIRON,
            Some(Diagnosis::OtherUser),
        );
        v.note_process(
            &id,
            8,
            "sh",
            Some(1000),
            Facets::EXE,
            Some(Diagnosis::OtherUser),
        );
        v.report(Instant::now(), &table, &mut out);
        assert_eq!(
            kinds(&out),
            vec![(KIND.to_string(), "exe,environ".to_string())]
        );
        let message = &out[0].internal.as_ref().unwrap().message;
        assert!(message.contains("2 processes affected"), "{message}");
        assert!(message.contains("7 (python3, uid 1000)"), "{message}");
        assert!(message.contains("SYS_PTRACE"), "{message}");
        assert_eq!(counts.degraded.load(Ordering::Relaxed), 1);

        out.clear();
        v.note_process(&id, 9, "sh", Some(1000), Facets::EXE, None);
        v.report(Instant::now(), &table, &mut out);
        assert!(out.is_empty(), "nothing new: no second report");

        v.note_process(
            &id,
            9,
            "nc",
            Some(1000),
            Facets::FD,
            Some(Diagnosis::FileModes),
        );
        v.report(Instant::now(), &table, &mut out);
        assert_eq!(
            kinds(&out),
            vec![(KIND.to_string(), "exe,environ,fd,sockets".to_string())]
        );
    }

    #[test]
    fn a_refused_root_is_reported_and_a_gone_one_is_retried() {
        let mut v = Visibility::new(
            Access::with_privileges(Privileges::all()),
            VisibilityCounts::default(),
            true,
        );
        let table = table_with("c1");
        let id: Arc<str> = Arc::from("c1");
        let gone = std::io::Error::from_raw_os_error(libc::ENOENT);
        v.note_root(&id, Err(&gone), None);
        assert!(!v.root_checked("c1"));
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        v.note_root(&id, Err(&denied), Some(Diagnosis::OtherUser));
        assert!(v.root_checked("c1"));
        let mut out = Vec::new();
        v.report(Instant::now(), &table, &mut out);
        assert_eq!(kinds(&out), vec![(KIND.to_string(), "root".to_string())]);
    }

    #[test]
    fn private_directories_the_kernel_refuses_are_named() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home/app");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(dir.path().join("home/open")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
        let root = crate::collect::fswatch::resolve::open_root(dir.path()).unwrap();
        // As root with DAC_OVERRIDE everything opens; a thread without it (a switch to another
        // user drops it) is refused the 0700 home, and does not probe below it.
        assert!(probe_private_dirs(&root).is_empty());
        let access = Access::with_privileges(Privileges {
            cap_eff: (1 << crate::collect::access::cap::SETUID)
                | (1 << crate::collect::access::cap::SETGID),
            fsuid: 0,
            fsgid: 0,
        });
        let refused = std::thread::scope(|s| {
            s.spawn(|| {
                access.as_owner(
                    Some(crate::collect::access::Owner {
                        uid: 2000,
                        gid: 2000,
                    }),
                    || probe_private_dirs(&root),
                )
            })
            .join()
            .unwrap()
        });
        assert!(refused.contains(&"/home/app".to_string()), "{refused:?}");
        assert!(!refused.iter().any(|r| r.starts_with("/home/app/")));
        assert!(!refused.contains(&"/home/open".to_string()));
    }

    #[test]
    fn a_monitor_in_a_container_that_sees_no_other_reports_it_after_the_grace() {
        let counts = VisibilityCounts::default();
        let mut v = Visibility::new(
            Access::with_privileges(Privileges::all()),
            counts.clone(),
            true,
        );
        v.set_grace(Duration::from_millis(0));
        let empty = ContainerTable::default();
        let mut out = Vec::new();
        v.report(Instant::now(), &empty, &mut out);
        assert_eq!(
            kinds(&out),
            vec![(KIND.to_string(), "containers".to_string())]
        );
        assert_eq!(counts.checked.load(Ordering::Relaxed), 0);
        out.clear();
        v.report(Instant::now(), &empty, &mut out);
        assert!(out.is_empty(), "reported once");

        // On a host (not in a container) there is nothing to say.
        let mut host = Visibility::new(
            Access::with_privileges(Privileges::all()),
            VisibilityCounts::default(),
            false,
        );
        host.set_grace(Duration::from_millis(0));
        host.report(Instant::now(), &empty, &mut out);
        assert!(out.is_empty());
    }
}
