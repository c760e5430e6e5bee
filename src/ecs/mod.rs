//! ECS: the task's metadata (task metadata endpoint v4).
//!
//! Inside an ECS task every container has `ECS_CONTAINER_METADATA_URI_V4` set to a plain-HTTP
//! URL (`http://169.254.170.2/v4/<id>` on Fargate). [`EcsMetadata::from_env`] turns it into an
//! [`EcsClient`], which fetches `${URI}/task` (the task and all its containers) and `${URI}`
//! (the calling container) with a small blocking HTTP client ([`http`]) bounded by timeouts and
//! a size cap. [`TaskMetadata`] indexes the containers by `DockerId`, which is what the last
//! segment of a container's cgroup path holds ([`crate::procfs::cgroup`]), and [`TaskMetadata::enrich`] fills an
//! event's [`Container`] (name, image, digest, ECS context) from it.
//!
//! [`EcsMetadata`] is the cache the pipeline shares: it fetches the task document once, and again
//! when asked about a container it does not know (a container that started later), but not
//! more often than once per [`EcsMetadata::DEFAULT_MIN_REFRESH`], so a stream of events from an
//! unknown container cannot turn into a stream of requests. Outside ECS it is inert and says so
//! once in the log.
//!
//! The running monitor does not use that cache on its hot path: [`enrich`] runs the fetches on a
//! background thread and lets the engine fill every event's container from a published snapshot,
//! so no collector and not the engine ever waits for HTTP.

pub mod enrich;
pub(crate) mod http;
pub mod metadata;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::event::Container;

pub(crate) use enrich::{EnrichmentStatus, RefreshPolicy, TaskView, spawn_enrichment};
pub use http::{HttpLimits, HttpUrl};
pub use metadata::{ClockDrift, ContainerMetadata, Limits, TaskMetadata};

/// The environment variable ECS sets in every container (Fargate PV 1.4.0+, agent 1.39.0+).
pub(crate) const METADATA_URI_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// Why metadata could not be fetched. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// The endpoint URL is not a plain `http://host[:port]/path` URL.
    #[error("invalid ECS metadata URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection could not be established (or the host not resolved).
    #[error("cannot connect to the ECS metadata endpoint {url}: {source}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The last connection error.
        source: std::io::Error,
    },
    /// The request did not complete within the total timeout.
    #[error("ECS metadata request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The overall time allowed.
        timeout: Duration,
    },
    /// Reading or writing the connection failed.
    #[error("I/O error talking to the ECS metadata endpoint {url}: {source}")]
    Io {
        /// The URL requested.
        url: String,
        /// The error.
        source: std::io::Error,
    },
    /// The answer is not a well-formed HTTP/1.x response.
    #[error("malformed HTTP response from {url}: {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The endpoint answered with a non-2xx status.
    #[error("ECS metadata endpoint {url} answered HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is larger than the cap.
    #[error("ECS metadata response from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not a JSON object of the expected shape.
    #[error("cannot parse the ECS metadata document from {url}: {source}")]
    Parse {
        /// The URL requested.
        url: String,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// There is no endpoint to ask: the cache was built outside ECS.
    #[error("ECS metadata is not available: {METADATA_URI_ENV} is not set")]
    NotConfigured,
    /// The container document has no `DockerId`.
    #[error("the ECS container metadata from {url} has no DockerId")]
    MissingDockerId {
        /// The URL requested.
        url: String,
    },
}

/// A client of one container's metadata endpoint.
#[derive(Debug, Clone)]
pub struct EcsClient {
    base: HttpUrl,
    limits: HttpLimits,
}

impl EcsClient {
    /// A client for `uri` (the value of `ECS_CONTAINER_METADATA_URI_V4`), with the default
    /// limits: connect 2 s, whole request 5 s, body 4 MiB.
    pub fn new(uri: &str) -> Result<EcsClient, EcsError> {
        Ok(EcsClient {
            base: HttpUrl::parse(uri)?,
            limits: HttpLimits::default(),
        })
    }

    /// The same client with other limits (tests use short timeouts).
    pub fn with_limits(mut self, limits: HttpLimits) -> EcsClient {
        self.limits = limits;
        self
    }

    /// The endpoint URL.
    pub(crate) fn url(&self) -> &str {
        &self.base.text
    }

    /// Fetches and parses `${URI}/task`.
    pub fn fetch_task(&self) -> Result<TaskMetadata, EcsError> {
        let url = self.base.join("/task");
        let body = http::get(&url, self.limits)?;
        TaskMetadata::from_json(&body).map_err(|source| EcsError::Parse {
            url: url.text.clone(),
            source,
        })
    }

    /// Fetches and parses `${URI}`: the calling container (the monitor itself).
    pub fn fetch_container(&self) -> Result<ContainerMetadata, EcsError> {
        let body = http::get(&self.base, self.limits)?;
        ContainerMetadata::from_json(&body)
            .map_err(|source| EcsError::Parse {
                url: self.base.text.clone(),
                source,
            })?
            .ok_or_else(|| EcsError::MissingDockerId {
                url: self.base.text.clone(),
            })
    }
}

static OUTSIDE_ECS_LOGGED: AtomicBool = AtomicBool::new(false);

/// The shared, rate-limited cache of the task's metadata.
#[derive(Debug)]
pub struct EcsMetadata {
    client: Option<EcsClient>,
    min_refresh: Duration,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    task: Option<Arc<TaskMetadata>>,
    last_attempt: Option<Instant>,
    fetches: u64,
    failures: u64,
}

impl EcsMetadata {
    /// The least time between two fetches of the task document.
    pub(crate) const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(30);

    /// A client for the endpoint named by `ECS_CONTAINER_METADATA_URI_V4`, or `None` outside
    /// ECS (logged once at info) or when the variable holds an unusable URL (logged at warn).
    pub(crate) fn from_env() -> Option<EcsClient> {
        Self::client_from_value(std::env::var_os(METADATA_URI_ENV).map(PathBuf::from))
    }

    fn client_from_value(value: Option<PathBuf>) -> Option<EcsClient> {
        let value = value
            .and_then(|value| value.to_str().map(str::to_owned))
            .filter(|value| !value.trim().is_empty());
        let Some(uri) = value else {
            if !OUTSIDE_ECS_LOGGED.swap(true, Ordering::Relaxed) {
                info!(
                    variable = METADATA_URI_ENV,
                    "ECS metadata not available: running outside ECS"
                );
            }
            return None;
        };
        match EcsClient::new(&uri) {
            Ok(client) => Some(client),
            Err(error) => {
                warn!(variable = METADATA_URI_ENV, %error, "ECS metadata disabled");
                None
            }
        }
    }

    /// A cache over `client`; `None` makes an inert cache (outside ECS).
    pub fn new(client: Option<EcsClient>) -> EcsMetadata {
        EcsMetadata {
            client,
            min_refresh: Self::DEFAULT_MIN_REFRESH,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The same cache with another least time between fetches.
    pub fn with_min_refresh(mut self, min_refresh: Duration) -> EcsMetadata {
        self.min_refresh = min_refresh;
        self
    }

    /// Whether an endpoint is configured.
    #[cfg(test)]
    pub(crate) fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// The endpoint client, if any (to fetch the monitor's own container document).
    pub fn client(&self) -> Option<&EcsClient> {
        self.client.as_ref()
    }

    /// How many fetches of the task document were attempted, and how many failed.
    pub fn fetch_counts(&self) -> (u64, u64) {
        let state = self.lock();
        (state.fetches, state.failures)
    }

    /// The cached task document, fetching it first if no fetch was attempted yet (or the last
    /// failed and the refresh interval has passed).
    pub fn task(&self) -> Option<Arc<TaskMetadata>> {
        let mut state = self.lock();
        if state.task.is_none() {
            self.refresh_locked(&mut state);
        }
        state.task.clone()
    }

    /// Fetches the task document now, whatever the refresh interval, and caches it.
    pub fn refresh(&self) -> Result<Arc<TaskMetadata>, EcsError> {
        let Some(client) = &self.client else {
            return Err(EcsError::NotConfigured);
        };
        let mut state = self.lock();
        state.last_attempt = Some(Instant::now());
        state.fetches += 1;
        match client.fetch_task() {
            Ok(task) => {
                let task = Arc::new(task);
                state.task = Some(task.clone());
                Ok(task)
            }
            Err(error) => {
                state.failures += 1;
                Err(error)
            }
        }
    }

    /// The metadata of the container with this id (from its cgroup path). An id the cached
    /// document does not list triggers a refresh, at most once per refresh interval.
    pub fn container(&self, container_id: &str) -> Option<ContainerMetadata> {
        let mut state = self.lock();
        if let Some(found) = state.task.as_ref().and_then(|t| t.container(container_id)) {
            return Some(found.clone());
        }
        self.refresh_locked(&mut state);
        state
            .task
            .as_ref()
            .and_then(|task| task.container(container_id))
            .cloned()
    }

    /// Fills `container` from the metadata ([`TaskMetadata::enrich`]), refreshing the cache
    /// (rate-limited) when the container is not known yet. Returns whether the container was
    /// found. Outside ECS this does nothing and returns `false`.
    pub fn enrich(&self, container: &mut Container) -> bool {
        if self.client.is_none() {
            return false;
        }
        let mut state = self.lock();
        let known = state
            .task
            .as_ref()
            .is_some_and(|task| task.container(&container.id).is_some());
        if !known {
            self.refresh_locked(&mut state);
        }
        match &state.task {
            Some(task) => task.enrich(container),
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches unless the last attempt is more recent than the refresh interval.
    fn refresh_locked(&self, state: &mut CacheState) {
        let Some(client) = &self.client else {
            return;
        };
        if state
            .last_attempt
            .is_some_and(|last| last.elapsed() < self.min_refresh)
        {
            return;
        }
        state.last_attempt = Some(Instant::now());
        state.fetches += 1;
        match client.fetch_task() {
            Ok(task) => {
                debug!(
                    url = client.url(),
                    containers = task.container_count(),
                    "ECS task metadata fetched"
                );
                state.task = Some(Arc::new(task));
            }
            Err(error) => {
                state.failures += 1;
                // Attempts are rate-limited by `min_refresh`, so this warning is too.
                warn!(url = client.url(), %error, failures = state.failures,
                    "cannot fetch ECS task metadata; keeping the previous document");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_value_handles_absent_empty_and_bad_urls() {
        assert!(EcsMetadata::client_from_value(None).is_none());
        assert!(EcsMetadata::client_from_value(Some(PathBuf::from("  "))).is_none());
        assert!(EcsMetadata::client_from_value(Some(PathBuf::from("https://x/v4"))).is_none());
        let client =
            EcsMetadata::client_from_value(Some(PathBuf::from("http://169.254.170.2/v4/abc")))
                .expect("valid URL");
        assert_eq!(client.url(), "http://169.254.170.2/v4/abc");
    }

    #[test]
    fn an_inert_cache_never_fetches_and_enriches_nothing() {
        let cache = EcsMetadata::new(None);
        assert!(!cache.is_enabled());
        let mut container = Container {
            id: "8cd79a803caf4d2aa945152e934a5c00-1".into(),
            ..Container::default()
        };
        assert!(!cache.enrich(&mut container));
        assert_eq!(
            container,
            Container {
                id: "8cd79a803caf4d2aa945152e934a5c00-1".into(),
                ..Container::default()
            }
        );
        assert!(cache.task().is_none());
        assert!(cache.container("x").is_none());
        assert_eq!(cache.fetch_counts(), (0, 0));
        assert!(matches!(cache.refresh(), Err(EcsError::NotConfigured)));
    }
}
