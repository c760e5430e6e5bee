//! The image collector: what each running image holds, read in the background from inside the
//! task (`docs/images.md`). For every container procscan's tables know (never the monitor's own
//! nor the pause container), once per image digest (the ECS `ImageID`, else a content hash of
//! the image's package databases), it reads the container's root through
//! `/proc/<pid>/root` with `crate::image` (packages, credentials in files), matches the packages
//! against the OSV records of `vulndb`, tells for each vulnerable package whether a process of
//! the image maps or runs one of its files (`/proc/<pid>/maps` and `exe`, read through
//! [`super::access`]), checks each container's entrypoint environment for credentials, and
//! sends the findings as `tasksentry` events (`crate::image::report`).
//!
//! It never competes with the event collectors: its own OS thread, at the lowest CPU priority
//! (`SCHED_IDLE`, and nice 19 should that be refused) and the idle I/O class (`ioprio_set`),
//! started after a delay, reading at most `rate` bytes per second on average (it sleeps to hold
//! it) and at most a budget of entries and bytes per image. Its events wait for room in the
//! engine's queue instead of being dropped: findings are few, and nothing here is time-bound.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::SharedTables;
use super::access::{Access, dir_owner, is_denied};
use crate::ecs::EnrichmentStatus;
use crate::event::{Container, Event};
use crate::image::inuse::{InUse, ProcView, Usage};
use crate::image::osv::{VulnDb, Wanted};
use crate::image::report::{self, PassSummary, Subject};
use crate::image::{self, Limits, Root, secrets};

/// How the image collector runs (from the `image_scan*` and `vulndb` settings).
#[derive(Debug, Clone)]
pub(crate) struct ImageScanConfig {
    /// Where the task's `/proc` is.
    pub proc_root: PathBuf,
    /// Time after start before the first image is read.
    pub delay: Duration,
    /// Bytes per second, on average.
    pub rate: u64,
    /// Directory entries per image pass.
    pub max_files: u64,
    /// Bytes per image pass.
    pub max_bytes: u64,
    /// OSV records.
    pub vulndb: Option<PathBuf>,
    /// Time between two looks for new containers.
    pub poll: Duration,
}

/// Looks for an ECS digest this many times (one per poll) before hashing the image's content.
const ECS_DIGEST_TRIES: u32 = 3;

/// How often a sleeping scanner looks at `shutdown` (between its rounds it only sleeps: each
/// wake-up costs an idle monitor CPU, and a stop waits at most this long for this thread).
const STOP_CHECK: Duration = Duration::from_millis(500);

/// Starts the image collector on its own OS thread. It ends when `shutdown` is set or the
/// engine's receiver is gone.
pub(crate) fn spawn_imagescan(
    config: ImageScanConfig,
    tables: SharedTables,
    ecs: EnrichmentStatus,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("imagescan".into())
        .spawn(move || {
            let priority = lower_priority();
            info!(priority = %priority, delay = ?config.delay, rate = config.rate, "Image collector started.");
            let mut scanner = Scanner {
                config,
                tables,
                ecs,
                tx,
                shutdown,
                access: Access::current(),
                priority,
                vulndb_ok: false,
                vulndb_state: String::new(),
                digests: HashMap::new(),
                ecs_tries: HashMap::new(),
                done: HashMap::new(),
                env_checked: HashSet::new(),
                warned: RefCell::new(HashSet::new()),
            };
            scanner.run();
        })
}

/// Lowers the calling thread to the idle CPU scheduling class (nice 19 as well, which holds
/// should the class be refused) and the idle I/O class; returns what was set, in words.
fn lower_priority() -> String {
    let mut done = Vec::new();
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).unwrap_or(0);
    // SAFETY: `setpriority` takes plain integers; PRIO_PROCESS with a thread id changes that
    // thread's nice value only (Linux keeps it per thread).
    let nice = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) };
    done.push(if nice == 0 { "nice 19" } else { "nice refused" });
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid `sched_param` that outlives the
    // call, which only reads it.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    done.push(if idle == 0 {
        "SCHED_IDLE"
    } else {
        "SCHED_IDLE refused"
    });
    // ioprio_set(IOPRIO_WHO_PROCESS, 0 = the calling thread, IOPRIO_PRIO_VALUE(IDLE, 0)).
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: `ioprio_set` takes three integers and touches no memory of ours.
    let io = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    done.push(if io == 0 {
        "I/O class idle"
    } else {
        "I/O class idle refused"
    });
    done.join(", ")
}

/// Holds reads to a rate: each request of `n` bytes is due when the bytes so far at `rate`
/// would have taken that long since the start; it sleeps until then (in slices, looking at
/// `shutdown`) and says false once the monitor stops.
struct Pacer {
    rate: u64,
    start: Instant,
    taken: Cell<u64>,
    slept: Cell<Duration>,
    shutdown: Arc<AtomicBool>,
}

impl Pacer {
    fn new(rate: u64, shutdown: Arc<AtomicBool>) -> Pacer {
        Pacer {
            rate: rate.max(1),
            start: Instant::now(),
            taken: Cell::new(0),
            slept: Cell::new(Duration::ZERO),
            shutdown,
        }
    }

    fn take(&self, n: u64) -> bool {
        if self.shutdown.load(Ordering::Relaxed) {
            return false;
        }
        self.taken.set(self.taken.get().saturating_add(n));
        let due = self.start + Duration::from_secs_f64(self.taken.get() as f64 / self.rate as f64);
        loop {
            let now = Instant::now();
            if now >= due {
                return true;
            }
            if self.shutdown.load(Ordering::Relaxed) {
                return false;
            }
            let nap = (due - now).min(Duration::from_millis(100));
            std::thread::sleep(nap);
            self.slept.set(self.slept.get() + nap);
        }
    }
}

/// A root opened for one pass: the descriptor (kept open while the root is read) and its path.
struct OpenRoot {
    _fd: OwnedFd,
    path: PathBuf,
    pid: i32,
}

struct Scanner {
    config: ImageScanConfig,
    tables: SharedTables,
    ecs: EnrichmentStatus,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
    access: Access,
    priority: String,
    /// The `vulndb` setting read well at start: each pass then loads from it only the entries
    /// of its image's packages (see [`VulnDb::load_for`]), so no export stays in memory.
    vulndb_ok: bool,
    vulndb_state: String,
    /// Container id → its image digest and where the digest came from.
    digests: HashMap<Arc<str>, (String, &'static str)>,
    /// Containers whose ECS digest was looked for and not found yet.
    ecs_tries: HashMap<Arc<str>, u32>,
    /// Digests read in this task → the container they were read through.
    done: HashMap<String, String>,
    /// Containers whose entrypoint environment was checked.
    env_checked: HashSet<Arc<str>>,
    /// Containers whose root could not be opened, warned about once (it is tried again every
    /// round, and the workload could make that fail on purpose).
    warned: RefCell<HashSet<String>>,
}

impl Scanner {
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Sleeps until `until`, looking at `shutdown` every [`STOP_CHECK`]; false when the
    /// monitor stops.
    fn sleep_until(&self, until: Instant) -> bool {
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(STOP_CHECK),
            );
        }
        !self.stopping()
    }

    /// Hands an event to the engine, waiting for room (never dropping it); false when the
    /// engine is gone or the monitor stops.
    fn send(&self, mut event: Event) -> bool {
        loop {
            match self.tx.try_send(event) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.stopping() {
                        return false;
                    }
                    event = back;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn run(&mut self) {
        if !self.sleep_until(Instant::now() + self.config.delay) {
            return;
        }
        self.load_vulndb();
        // What parsing the records left behind goes back to the system.
        crate::memory::trim();
        while !self.stopping() {
            if !self.round() {
                return;
            }
            if !self.sleep_until(Instant::now() + self.config.poll) {
                return;
            }
        }
    }

    fn load_vulndb(&mut self) {
        let Some(path) = &self.config.vulndb else {
            self.vulndb_state = "not configured".to_owned();
            return;
        };
        let started = Instant::now();
        // Read once whole to say at once whether it is usable and how big it is; nothing of it
        // is kept.
        match VulnDb::load_for(path, &Wanted::default()) {
            Ok(db) => {
                for note in db.notes.iter().take(10) {
                    warn!(vulndb = %path.display(), %note, "An OSV record could not be read.");
                }
                info!(vulndb = %path.display(), records = db.records_read(), ms = started.elapsed().as_millis() as u64, "Vulnerability database read; each image pass keeps only its packages' entries.");
                self.vulndb_state = format!("{} records in {}", db.records_read(), path.display());
                self.vulndb_ok = true;
            }
            Err(error) => {
                warn!(vulndb = %path.display(), %error, "The vulnerability database cannot be read; images are inventoried without it.");
                self.vulndb_state = format!("{}: {error}", path.display());
            }
        }
    }

    /// One look at the containers: new ones get their environment checked and their digest
    /// found; each digest not read yet is read once. False when the engine is gone.
    fn round(&mut self) -> bool {
        let tables = self.tables.snapshot();
        let mut containers: Vec<(Arc<str>, Container)> = tables
            .containers
            .iter()
            .filter(|(_, entry)| entry.excluded.is_none() && entry.gone_at.is_none())
            .filter(|(_, entry)| entry.container.root_pid.is_some())
            .map(|(id, entry)| (id.clone(), entry.container.clone()))
            .collect();
        containers.sort_by(|a, b| a.0.cmp(&b.0));
        let members = |id: &str| -> Vec<i32> {
            let mut pids: Vec<(u64, i32)> = tables
                .processes
                .live()
                .filter(|(_, entry)| entry.excluded.is_none() && &*entry.container_id == id)
                .map(|(key, _)| (key.start_ticks, key.pid))
                .collect();
            pids.sort();
            pids.into_iter().map(|(_, pid)| pid).collect()
        };
        for (id, container) in &containers {
            if self.stopping() {
                return true;
            }
            if !self.env_checked.contains(id) {
                self.env_checked.insert(id.clone());
                if !self.check_environment(container, &tables) {
                    return false;
                }
            }
            if !self.digests.contains_key(id) {
                if let Some(digest) = self.digest(id, container, &members(id)) {
                    self.digests.insert(id.clone(), digest);
                }
            }
        }
        // Digests not read yet, each with the live containers running it.
        let mut pending: BTreeMap<String, (&'static str, Vec<&Container>)> = BTreeMap::new();
        for (id, container) in &containers {
            if let Some((digest, source)) = self.digests.get(id) {
                if !self.done.contains_key(digest) {
                    pending
                        .entry(digest.clone())
                        .or_insert_with(|| (source, Vec::new()))
                        .1
                        .push(container);
                }
            }
        }
        for (digest, (source, group)) in pending {
            if self.stopping() {
                return true;
            }
            let pids: Vec<i32> = group.iter().flat_map(|c| members(&c.id)).collect();
            let Some(root) = self.open_root(&group, &members) else {
                continue;
            };
            let subject = Subject {
                digest: digest.clone(),
                digest_source: source,
                container: group
                    .iter()
                    .find(|c| c.root_pid == Some(root.pid) || members(&c.id).contains(&root.pid))
                    .map(|c| (*c).clone()),
                containers: group.iter().map(|c| c.id.clone()).collect(),
            };
            self.done.insert(
                digest.clone(),
                subject
                    .container
                    .as_ref()
                    .map(|c| c.id.clone())
                    .unwrap_or_default(),
            );
            let sent = self.pass(&subject, &root, &pids);
            // An inventory's file lists and texts are freed: give the pages back.
            crate::memory::trim();
            if !sent {
                return false;
            }
        }
        true
    }

    /// The container's image digest: the one ECS names, else (once ECS had a few chances, or
    /// outside ECS) `content:sha256:` of its package databases, `os-release` and its
    /// entrypoint's command line. `None` to try again at the next round.
    fn digest(
        &mut self,
        id: &Arc<str>,
        container: &Container,
        members: &[i32],
    ) -> Option<(String, &'static str)> {
        if self.ecs.task_view().is_some() {
            let found = self.ecs.snapshot().and_then(|task| {
                task.container(id)
                    .and_then(|c| c.image_digest().map(str::to_owned))
            });
            if let Some(digest) = found {
                return Some((digest, "ecs"));
            }
            let tries = self.ecs_tries.entry(id.clone()).or_insert(0);
            *tries += 1;
            if *tries < ECS_DIGEST_TRIES {
                return None;
            }
        }
        let root = self.open_root(&[container], &|_: &str| members.to_vec())?;
        let pace = Rc::new(Pacer::new(self.config.rate, self.shutdown.clone()));
        let reader = Root::new(
            &root.path,
            Limits {
                max_files: 10_000,
                max_bytes: 256 << 20,
                ..Limits::default()
            },
        )
        .with_pace(Box::new(move |n| pace.take(n)));
        let mut hash = Sha256::new();
        let mut add = |name: &str, bytes: &[u8]| {
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        let cap = 64 << 20;
        for path in [
            "/etc/os-release",
            "/var/lib/dpkg/status",
            "/lib/apk/db/installed",
            "/var/lib/rpm/rpmdb.sqlite",
            "/var/lib/rpm/Packages",
        ] {
            if let Ok(bytes) = reader.read(path, cap) {
                add(path, &bytes);
            }
        }
        for (name, kind) in reader.list("/var/lib/dpkg/status.d") {
            if kind.is_file() {
                let path = format!("/var/lib/dpkg/status.d/{name}");
                if let Ok(bytes) = reader.read(&path, cap) {
                    add(&path, &bytes);
                }
            }
        }
        let pid = container.root_pid.unwrap_or(root.pid);
        let cmdline = std::fs::read(self.config.proc_root.join(pid.to_string()).join("cmdline"))
            .unwrap_or_default();
        add("cmdline", &cmdline);
        let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Some((format!("content:sha256:{hex}"), "content"))
    }

    /// Opens the root of one of the containers, trying their processes oldest first (one may
    /// be readable where another is not: a process that is not dumpable).
    fn open_root(
        &self,
        group: &[&Container],
        members: &dyn Fn(&str) -> Vec<i32>,
    ) -> Option<OpenRoot> {
        let mut last_error = None;
        for container in group {
            let mut pids = members(&container.id);
            if let Some(root_pid) = container.root_pid {
                pids.retain(|p| *p != root_pid);
                pids.insert(0, root_pid);
            }
            for pid in pids {
                match self.access.open_root(&self.config.proc_root, pid) {
                    Ok(fd) => {
                        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                        return Some(OpenRoot { _fd: fd, path, pid });
                    }
                    Err(error) => last_error = Some((container.id.clone(), pid, error)),
                }
            }
        }
        if let Some((container, pid, error)) = last_error
            && self.warned.borrow_mut().insert(container.clone())
        {
            // The file collector reports an unreadable root as `visibility_degraded` (facet
            // `root`); this says the image could not be read either.
            warn!(container = %container, pid, %error, "The container's root cannot be opened; its image is not read.");
        }
        None
    }

    /// Checks the entrypoint's environment of a container for credentials. False when the
    /// engine is gone.
    fn check_environment(&self, container: &Container, tables: &crate::collect::Tables) -> bool {
        let Some(pid) = container.root_pid else {
            return true;
        };
        let environ = self.read_private(pid, |dir| std::fs::read(dir.join("environ")));
        let environ = match environ {
            Ok(bytes) => bytes,
            Err(error) => {
                // procscan reports unreadable environments as `visibility_degraded`
                // (facet `environ`).
                if is_denied(&error) {
                    warn!(container = %container.id, pid, %error, "The entrypoint's environment cannot be read; it is not checked for credentials.");
                }
                return true;
            }
        };
        let process = tables
            .processes
            .lookup_pid(pid)
            .map(|(_, e)| e.process.clone());
        for finding in secrets::scan_environ(&environ) {
            let event = report::env_secret_event(Some(container), process.as_deref(), &finding);
            if !self.send(event) {
                return false;
            }
        }
        true
    }

    /// Reads a private entry of `<proc_root>/<pid>` as the process's owner where needed.
    fn read_private<T>(
        &self,
        pid: i32,
        read: impl FnOnce(&Path) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let owner = if self.access.may_switch() {
            dir_owner(&self.config.proc_root, pid)
        } else {
            None
        };
        let dir = self.config.proc_root.join(pid.to_string());
        self.access.as_owner(owner, || read(&dir))
    }

    /// What one process maps and runs.
    fn view(&self, pid: i32) -> ProcView {
        let read = self.read_private(pid, |dir| {
            let maps = std::fs::read_to_string(dir.join("maps"))?;
            let exe = std::fs::read_link(dir.join("exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned());
            Ok((maps, exe))
        });
        match read {
            Ok((maps, exe)) => ProcView::Read { maps, exe },
            Err(error) if is_denied(&error) => {
                let privileges = self.access.privileges();
                let missing = privileges.missing();
                ProcView::Denied(if missing.is_empty() {
                    format!(
                        "{error}: the kernel's ptrace read check refused it although the monitor has SYS_PTRACE (a security module?)"
                    )
                } else {
                    format!(
                        "{error}: the kernel's ptrace read check refused it (a process that is not dumpable, runs with mixed ids or holds capabilities the monitor lacks; the monitor lacks {})",
                        missing.join(", ")
                    )
                })
            }
            Err(_) => ProcView::Gone,
        }
    }

    /// Reads one image and sends what it found. False when the engine is gone.
    fn pass(&self, subject: &Subject, root: &OpenRoot, pids: &[i32]) -> bool {
        let started = Instant::now();
        let pace = Rc::new(Pacer::new(self.config.rate, self.shutdown.clone()));
        let reader = {
            let pace = pace.clone();
            Root::new(
                &root.path,
                Limits {
                    max_files: self.config.max_files,
                    max_bytes: self.config.max_bytes,
                    ..Limits::default()
                },
            )
            .with_pace(Box::new(move |n| pace.take(n)))
        };
        let inventory = image::inventory(&reader);
        let found_secrets = if reader.exhausted().is_none() {
            secrets::scan(&reader)
        } else {
            Vec::new()
        };
        if self.stopping() {
            return true;
        }
        let usage = Usage::gather(pids.iter().map(|&pid| (pid, self.view(pid))), &reader);
        let db = match &self.config.vulndb {
            Some(path) if self.vulndb_ok => {
                match VulnDb::load_for(path, &Wanted::of(&inventory.components)) {
                    Ok(db) => Some(db),
                    Err(error) => {
                        warn!(vulndb = %path.display(), %error, "The vulnerability database cannot be read for this image.");
                        None
                    }
                }
            }
            _ => None,
        };
        let findings = db
            .as_ref()
            .map(|db| db.matches(&inventory.components, &inventory.distro))
            .unwrap_or_default();
        let mut summary = PassSummary {
            components: inventory.components.len(),
            vulnerabilities: findings.len(),
            secrets: found_secrets.len(),
            entries_read: reader.used().0,
            bytes_read: reader.used().1,
            truncated: reader.exhausted(),
            bytes_per_second: self.config.rate,
            vulndb: self.vulndb_state.clone(),
            ..PassSummary::default()
        };
        for finding in &findings {
            let Some(component) = inventory.components.get(finding.component) else {
                continue;
            };
            let in_use = image::inuse::verdict(component, &reader, &usage);
            match in_use {
                InUse::Yes(..) => summary.in_use += 1,
                InUse::Unknown(_) => summary.in_use_unknown += 1,
                InUse::No => {}
            }
            if let Some(event) = report::vulnerability_event(subject, &inventory, finding, &in_use)
                && !self.send(event)
            {
                return false;
            }
        }
        for finding in &found_secrets {
            if !self.send(report::secret_event(subject, finding)) {
                return false;
            }
        }
        let mut document = image::cyclonedx::sbom(&inventory, &subject.digest);
        if let (false, Some(object)) = (findings.is_empty(), document.as_object_mut()) {
            object.insert(
                "vulnerabilities".into(),
                image::cyclonedx::vulnerabilities(&inventory, &findings, None),
            );
        }
        let parts = report::sbom_events(subject, &document, report::MAX_PART_BYTES);
        summary.sbom_parts = parts.len();
        for event in parts {
            if !self.send(event) {
                return false;
            }
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        info!(
            digest = %subject.digest,
            container = subject.container.as_ref().map_or("", |c| c.id.as_str()),
            components = summary.components,
            vulnerabilities = summary.vulnerabilities,
            secrets = summary.secrets,
            entries = summary.entries_read,
            bytes = summary.bytes_read,
            ms = summary.duration_ms,
            slept_ms = pace.slept.get().as_millis() as u64,
            priority = %self.priority,
            "Image read."
        );
        let mut event = report::inventory_event(subject, &summary);
        event
            .evt
            .args
            .push(("priority".to_owned(), self.priority.clone()));
        self.send(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_holds_the_rate_and_stops_with_the_monitor() {
        let shutdown = Arc::new(AtomicBool::new(false));
        let pacer = Pacer::new(100_000, shutdown.clone());
        let started = Instant::now();
        // 30,000 bytes at 100,000 bytes/s: at least 0.3 s.
        for _ in 0..30 {
            assert!(pacer.take(1000));
        }
        assert!(started.elapsed() >= Duration::from_millis(290));
        shutdown.store(true, Ordering::Relaxed);
        assert!(!pacer.take(1));
    }

    #[test]
    fn a_paced_root_stops_when_the_pace_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), [b'x'; 100]).expect("write");
        let root = Root::new(dir.path(), Limits::default()).with_pace(Box::new(|_| false));
        assert!(root.read("/a", 1000).is_err());
        assert_eq!(root.exhausted(), Some("stopped"));
    }
}
