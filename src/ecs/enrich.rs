//! ECS enrichment of events without HTTP on the hot path.
//!
//! [`spawn_enrichment`] starts one background OS thread, the *refresher*, which owns every
//! request to the task metadata endpoint: it fetches `${ECS_CONTAINER_METADATA_URI_V4}/task`
//! at start, then again only when the engine reports a container id the current document does
//! not list (a container that started later), rate-limited ([`RefreshPolicy`]). Each document it
//! fetches is published as an `Arc<TaskMetadata>` snapshot behind a lock that is only ever held
//! to clone or replace that `Arc`, with a generation counter beside it.
//!
//! The engine thread owns the other half, the [`Enricher`]: for each event it compares the
//! generation (one atomic load), takes the new snapshot only when it changed, and fills the
//! event's container from its local copy ([`TaskMetadata::enrich`]: `container.name`,
//! `container.image`, `container.image.digest`, and the `ecs.*` task context). An unknown
//! container id is reported to the refresher with a non-blocking `try_send`, once per id. So
//! neither a collector nor the engine ever waits for the network: without a document (outside
//! ECS, or while the endpoint is down) events simply carry no ECS fields, which rules see as
//! unavailable.
//!
//! Outside ECS (no `ECS_CONTAINER_METADATA_URI_V4`) no thread is started. With the variable set
//! but the endpoint unreachable, the refresher logs one warning with the reason, keeps retrying
//! with a capped exponential backoff, and logs again (at info) when a document arrives.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{EcsClient, EcsError, TaskMetadata};
use crate::event::Event;

/// How often the refresher may ask the endpoint, and how it retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshPolicy {
    /// The least time between two fetches, whatever asks for them.
    pub(crate) min_interval: Duration,
    /// The first retry delay, for an unknown container id and for a failed fetch; it doubles
    /// with each further attempt.
    pub(crate) retry_base: Duration,
    /// The longest retry delay while no document could be fetched at all.
    pub(crate) retry_max: Duration,
    /// How many fetches an unknown container id may cause before it is given up (the task's
    /// document never lists some ids, such as the pause container's).
    pub(crate) attempts_per_id: u32,
}

impl Default for RefreshPolicy {
    fn default() -> RefreshPolicy {
        RefreshPolicy {
            min_interval: Duration::from_secs(2),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            attempts_per_id: 4,
        }
    }
}

/// Most ids the engine remembers having reported (a task has at most a few dozen containers;
/// the bound only guards memory).
const MAX_REPORTED_IDS: usize = 1024;
/// Room in the queue of unknown ids; a full queue means the id is reported again later.
const UNKNOWN_QUEUE: usize = 64;

/// What the refresher publishes.
#[derive(Debug, Default)]
struct Shared {
    snapshot: RwLock<Option<Arc<TaskMetadata>>>,
    /// Incremented after each new snapshot.
    generation: AtomicU64,
    /// Fetch attempts and failures, for tests and diagnostics.
    fetches: AtomicU64,
    failures: AtomicU64,
    /// Set when the first fetch attempt has finished, whatever its outcome.
    first_attempt: Mutex<bool>,
    first_attempt_done: Condvar,
}

impl Shared {
    fn publish(&self, task: TaskMetadata) {
        let task = Arc::new(task);
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn snapshot(&self) -> Option<Arc<TaskMetadata>> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn mark_first_attempt(&self) {
        let mut done = self
            .first_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !*done {
            *done = true;
            self.first_attempt_done.notify_all();
        }
    }
}

/// A read-only view of the refresher's state, for start-up and tests.
#[derive(Debug, Clone)]
pub(crate) struct EnrichmentStatus {
    shared: Option<Arc<Shared>>,
}

impl EnrichmentStatus {
    /// Whether an endpoint is configured (a refresher is running).
    #[cfg(test)]
    pub(crate) fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// The current task document, if one was fetched.
    pub(crate) fn snapshot(&self) -> Option<Arc<TaskMetadata>> {
        self.shared.as_ref().and_then(|shared| shared.snapshot())
    }

    /// A non-blocking reader of the task document (`None` outside ECS).
    pub(crate) fn task_view(&self) -> Option<TaskView> {
        self.shared.as_ref().map(|shared| TaskView {
            shared: shared.clone(),
            local: None,
            seen_generation: 0,
        })
    }

    /// Fetch attempts and failures so far.
    #[cfg(test)]
    pub(crate) fn fetch_counts(&self) -> (u64, u64) {
        match &self.shared {
            Some(shared) => (
                shared.fetches.load(Ordering::Relaxed),
                shared.failures.load(Ordering::Relaxed),
            ),
            None => (0, 0),
        }
    }

    /// Waits at most `timeout` for the first fetch attempt to finish (successfully or not);
    /// returns whether a document is available. Returns at once when disabled. Only start-up
    /// calls this, so that the first events (the processes already running) are enriched.
    pub(crate) fn wait_first_attempt(&self, timeout: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        let mut done = shared
            .first_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            done = shared
                .first_attempt_done
                .wait_timeout(done, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        drop(done);
        shared.snapshot().is_some()
    }
}

/// A reader of the latest task document for a thread that must never block (the engine's
/// alert stage): each call costs one atomic load, and takes the lock only to clone a newly
/// published `Arc`.
#[derive(Debug, Clone)]
pub(crate) struct TaskView {
    shared: Arc<Shared>,
    local: Option<Arc<TaskMetadata>>,
    seen_generation: u64,
}

impl TaskView {
    /// The latest task document, if one was fetched.
    pub(crate) fn current(&mut self) -> Option<&TaskMetadata> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.seen_generation {
            self.local = self.shared.snapshot();
            self.seen_generation = generation;
        }
        self.local.as_deref()
    }
}

/// The engine's half: fills events from the latest published snapshot, never blocking.
#[derive(Debug)]
pub(crate) struct Enricher {
    shared: Option<Arc<Shared>>,
    unknown: Option<SyncSender<String>>,
    local: Option<Arc<TaskMetadata>>,
    seen_generation: u64,
    reported: HashSet<String>,
}

impl Enricher {
    /// An enricher that does nothing (outside ECS).
    pub(crate) fn disabled() -> Enricher {
        Enricher {
            shared: None,
            unknown: None,
            local: None,
            seen_generation: 0,
            reported: HashSet::new(),
        }
    }

    /// Fills `event.container` (name, image, digest, ECS task context) from the latest task
    /// document. A container id the document does not list is reported to the refresher once
    /// (without waiting); events without a container, or of the host, are left alone.
    pub fn enrich(&mut self, event: &mut Event) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Some(container) = event.container.as_deref_mut() else {
            return;
        };
        let generation = shared.generation.load(Ordering::Acquire);
        if generation != self.seen_generation {
            self.local = shared.snapshot();
            self.seen_generation = generation;
        }
        let known = match &self.local {
            Some(task) => task.enrich(container),
            None => false,
        };
        if known || container.id.is_empty() || container.id == crate::procfs::HOST_ID {
            return;
        }
        if self.reported.contains(container.id.as_str()) || self.reported.len() >= MAX_REPORTED_IDS
        {
            return;
        }
        let Some(unknown) = &self.unknown else {
            return;
        };
        match unknown.try_send(container.id.clone()) {
            Ok(()) => {
                self.reported.insert(container.id.clone());
            }
            // Full: reported again with a later event. Disconnected: the refresher is gone.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                self.unknown = None;
            }
        }
    }
}

/// Starts the refresher for `client` (none outside ECS: then nothing is started and the
/// enricher does nothing). Returns the engine's [`Enricher`], a status view, and the thread's
/// handle. The thread ends when the enricher is dropped; it need not be joined (at most one
/// request, bounded by the client's timeouts, is then still under way).
pub(crate) fn spawn_enrichment(
    client: Option<EcsClient>,
    policy: RefreshPolicy,
) -> std::io::Result<(Enricher, EnrichmentStatus, Option<JoinHandle<()>>)> {
    let Some(client) = client else {
        return Ok((
            Enricher::disabled(),
            EnrichmentStatus { shared: None },
            None,
        ));
    };
    let url = client.url().to_owned();
    spawn_with_fetch(Box::new(move || client.fetch_task()), url, policy)
}

/// How the refresher gets a task document (a closure, so tests can count and fail fetches).
pub(crate) type FetchTask = Box<dyn FnMut() -> Result<TaskMetadata, EcsError> + Send>;

/// [`spawn_enrichment`] with any fetch function; `url` names the endpoint in logs.
pub(crate) fn spawn_with_fetch(
    fetch: FetchTask,
    url: String,
    policy: RefreshPolicy,
) -> std::io::Result<(Enricher, EnrichmentStatus, Option<JoinHandle<()>>)> {
    let shared = Arc::new(Shared::default());
    let (unknown_tx, unknown_rx) = sync_channel(UNKNOWN_QUEUE);
    let refresher = Refresher {
        fetch,
        url,
        policy,
        shared: shared.clone(),
        pending: HashMap::new(),
        last_fetch: None,
        document_retry: None,
        unavailable_logged: false,
    };
    let handle = std::thread::Builder::new()
        .name("ecs-metadata".into())
        .spawn(move || refresher.run(unknown_rx))?;
    Ok((
        Enricher {
            shared: Some(shared.clone()),
            unknown: Some(unknown_tx),
            local: None,
            seen_generation: 0,
            reported: HashSet::new(),
        },
        EnrichmentStatus {
            shared: Some(shared),
        },
        Some(handle),
    ))
}

/// An unknown container id waiting for a document that lists it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    attempts: u32,
    next: Instant,
}

/// The refresher thread's state.
struct Refresher {
    fetch: FetchTask,
    url: String,
    policy: RefreshPolicy,
    shared: Arc<Shared>,
    pending: HashMap<String, Pending>,
    last_fetch: Option<Instant>,
    /// While no document was ever fetched: the next retry time and the attempts so far.
    document_retry: Option<(Instant, u32)>,
    /// Whether the endpoint's unavailability was logged (reset when a fetch succeeds).
    unavailable_logged: bool,
}

impl Refresher {
    /// How long to sleep at most between looking at the queue of unknown ids.
    const IDLE: Duration = Duration::from_secs(1);

    fn run(mut self, unknown: Receiver<String>) {
        self.fetch_now();
        self.shared.mark_first_attempt();
        loop {
            let now = Instant::now();
            let wait = self
                .next_due()
                .map_or(Self::IDLE, |due| due.saturating_duration_since(now))
                .min(Self::IDLE);
            match unknown.recv_timeout(wait) {
                Ok(id) => self.note_unknown(id),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(id) = unknown.try_recv() {
                self.note_unknown(id);
            }
            let now = Instant::now();
            let due = self.next_due().is_some_and(|due| due <= now);
            let allowed = self
                .last_fetch
                .is_none_or(|last| now.duration_since(last) >= self.policy.min_interval);
            if due && allowed {
                self.fetch_now();
            }
        }
    }

    fn note_unknown(&mut self, id: String) {
        let listed = self
            .shared
            .snapshot()
            .is_some_and(|task| task.container(&id).is_some());
        if listed || self.pending.contains_key(&id) {
            return;
        }
        debug!(container_id = %id, "Container not in the ECS task metadata; refreshing it.");
        self.pending.insert(
            id,
            Pending {
                attempts: 0,
                next: Instant::now(),
            },
        );
    }

    /// When the next fetch is wanted (before the rate limit is applied).
    fn next_due(&self) -> Option<Instant> {
        let pending = self.pending.values().map(|p| p.next).min();
        let document = self.document_retry.map(|(next, _)| next);
        match (pending, document) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|due| match self.last_fetch {
            Some(last) => due.max(last + self.policy.min_interval),
            None => due,
        })
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        self.policy
            .retry_base
            .saturating_mul(factor)
            .min(self.policy.retry_max)
    }

    fn fetch_now(&mut self) {
        let now = Instant::now();
        self.last_fetch = Some(now);
        self.shared.fetches.fetch_add(1, Ordering::Relaxed);
        match (self.fetch)() {
            Ok(task) => {
                if self.unavailable_logged || self.document_retry.is_some() {
                    info!(url = %self.url, containers = task.container_count(),
                        "ECS task metadata available; events carry ECS fields from now on.");
                } else {
                    debug!(url = %self.url, containers = task.container_count(),
                        "ECS task metadata fetched.");
                }
                self.unavailable_logged = false;
                self.document_retry = None;
                self.pending.retain(|id, _| task.container(id).is_none());
                self.shared.publish(task);
            }
            Err(error) => {
                self.shared.failures.fetch_add(1, Ordering::Relaxed);
                let have_document = self.shared.snapshot().is_some();
                if !self.unavailable_logged {
                    // Once per outage: attempts are rate-limited and backed off, and a success
                    // re-arms the warning.
                    if have_document {
                        warn!(url = %self.url, %error,
                            "Cannot refresh the ECS task metadata; keeping the previous document.");
                    } else {
                        warn!(url = %self.url, %error,
                            "ECS task metadata unavailable; events carry no ECS fields until it can be fetched. Retrying with backoff.");
                    }
                    self.unavailable_logged = true;
                } else {
                    debug!(url = %self.url, %error, "ECS task metadata fetch failed again.");
                }
                if !have_document {
                    let attempts = self.document_retry.map_or(0, |(_, a)| a) + 1;
                    self.document_retry = Some((now + self.backoff(attempts), attempts));
                }
            }
        }
        // Every id still unknown has used one attempt.
        let max = self.policy.attempts_per_id;
        let mut given_up = Vec::new();
        for (id, pending) in &mut self.pending {
            if pending.next > now {
                continue;
            }
            pending.attempts += 1;
            if pending.attempts >= max {
                given_up.push(id.clone());
            } else {
                pending.next = now + self.policy.retry_base.saturating_mul(1 << pending.attempts);
            }
        }
        for id in given_up {
            debug!(container_id = %id, attempts = max,
                "Container still not in the ECS task metadata; giving up on it.");
            self.pending.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Collector, Container, EventType};
    use std::sync::atomic::AtomicBool;

    const TASK: &str = include_str!("testdata/task-fargate.json");
    const APP_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-3551829907";
    const LATE_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-424242424";

    fn event_in(id: &str) -> Event {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.container = Some(Box::new(Container {
            id: id.to_owned(),
            ..Container::default()
        }));
        event
    }

    fn task_with_late_container() -> TaskMetadata {
        let mut doc: serde_json::Value = serde_json::from_str(TASK).expect("json");
        let containers = doc["Containers"].as_array_mut().expect("containers");
        let mut late = containers[1].clone();
        late["DockerId"] = LATE_ID.into();
        late["Name"] = "late".into();
        containers.push(late);
        TaskMetadata::from_json(doc.to_string().as_bytes()).expect("valid")
    }

    fn fast_policy() -> RefreshPolicy {
        RefreshPolicy {
            min_interval: Duration::from_millis(20),
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            attempts_per_id: 3,
        }
    }

    /// Enriches events until `done` says so, or fails after 5 s.
    fn enrich_until(enricher: &mut Enricher, id: &str, done: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut event = event_in(id);
            enricher.enrich(&mut event);
            if done(&event) {
                return event;
            }
            assert!(Instant::now() < deadline, "not enriched in time: {event:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_disabled_enricher_leaves_events_alone() {
        let (mut enricher, status, handle) =
            spawn_enrichment(None, RefreshPolicy::default()).expect("spawn");
        assert!(handle.is_none() && !status.is_enabled());
        assert!(!status.wait_first_attempt(Duration::from_secs(1)));
        let mut event = event_in(APP_ID);
        let before = event.clone();
        enricher.enrich(&mut event);
        assert_eq!(event, before);
    }

    #[test]
    fn fills_known_containers_and_refreshes_once_for_a_new_one() {
        let calls = Arc::new(AtomicU64::new(0));
        let late_listed = Arc::new(AtomicBool::new(false));
        let fetch: FetchTask = {
            let calls = calls.clone();
            let late_listed = late_listed.clone();
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(if late_listed.load(Ordering::SeqCst) {
                    task_with_late_container()
                } else {
                    TaskMetadata::from_json(TASK.as_bytes()).expect("valid")
                })
            })
        };
        let (mut enricher, status, _handle) =
            spawn_with_fetch(fetch, "test".into(), fast_policy()).expect("spawn");
        assert!(status.wait_first_attempt(Duration::from_secs(5)));
        let app = enrich_until(&mut enricher, APP_ID, |e| {
            e.container.as_ref().is_some_and(|c| c.name.is_some())
        });
        let container = app.container.expect("container");
        assert_eq!(container.name.as_deref(), Some("app"));
        assert!(
            container
                .image
                .as_deref()
                .is_some_and(|i| i.contains("orders-api"))
        );
        assert_eq!(
            container.ecs.and_then(|e| e.family).as_deref(),
            Some("orders-api-with-runtime-monitor")
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a known container asks nothing"
        );

        late_listed.store(true, Ordering::SeqCst);
        let late = enrich_until(&mut enricher, LATE_ID, |e| {
            e.container.as_ref().is_some_and(|c| c.name.is_some())
        });
        assert_eq!(late.container.and_then(|c| c.name).as_deref(), Some("late"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one refresh for the new id"
        );
    }

    #[test]
    fn an_id_never_listed_costs_a_bounded_number_of_fetches() {
        let calls = Arc::new(AtomicU64::new(0));
        let fetch: FetchTask = {
            let calls = calls.clone();
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(TaskMetadata::from_json(TASK.as_bytes()).expect("valid"))
            })
        };
        let policy = fast_policy();
        let (mut enricher, status, _handle) =
            spawn_with_fetch(fetch, "test".into(), policy).expect("spawn");
        assert!(status.wait_first_attempt(Duration::from_secs(5)));
        // A stream of events from a container the document never lists.
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            let mut event = event_in("0123456789abcdef0123456789abcdef-1");
            enricher.enrich(&mut event);
            let container = event.container.expect("container");
            assert_eq!(container.name, None);
            assert!(
                container.ecs.and_then(|e| e.task_id).is_some(),
                "the task context is filled even for an unlisted container"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let calls = calls.load(Ordering::SeqCst);
        assert_eq!(
            calls,
            1 + u64::from(policy.attempts_per_id),
            "the start-up fetch plus the per-id attempts, then nothing"
        );
        assert_eq!(status.fetch_counts(), (calls, 0));
    }

    #[test]
    fn an_endpoint_that_is_down_never_blocks_and_is_retried_with_backoff() {
        let calls = Arc::new(AtomicU64::new(0));
        let up = Arc::new(AtomicBool::new(false));
        let fetch: FetchTask = {
            let calls = calls.clone();
            let up = up.clone();
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                if up.load(Ordering::SeqCst) {
                    Ok(TaskMetadata::from_json(TASK.as_bytes()).expect("valid"))
                } else {
                    Err(EcsError::NotConfigured)
                }
            })
        };
        let (mut enricher, status, _handle) =
            spawn_with_fetch(fetch, "test".into(), fast_policy()).expect("spawn");
        assert!(!status.wait_first_attempt(Duration::from_secs(5)));
        let mut event = event_in(APP_ID);
        enricher.enrich(&mut event);
        assert_eq!(event.container.as_ref().and_then(|c| c.ecs.clone()), None);
        // Backoff: 20, 40, 80, 160, 200, 200 ms ... so within 600 ms at most ~6 attempts.
        std::thread::sleep(Duration::from_millis(600));
        let attempts = calls.load(Ordering::SeqCst);
        assert!((2..=8).contains(&attempts), "{attempts} attempts");
        up.store(true, Ordering::SeqCst);
        enrich_until(&mut enricher, APP_ID, |e| {
            e.container.as_ref().is_some_and(|c| c.name.is_some())
        });
    }
}
