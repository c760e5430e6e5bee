//! The sockets collector: diffs the task's socket tables on every poll and reports new
//! outbound connections (`connect`), inbound connections (`accept`), listening sockets
//! (`listen`) and raw or packet sockets (`socket`), attributed to the owning process and
//! container.
//!
//! Fargate tasks share one network namespace (awsvpc) and the monitor runs in it, so one dump
//! of each table sees every socket of the task. TCP and UDP (IPv4 and IPv6) and `AF_PACKET`
//! tables come from `NETLINK_SOCK_DIAG` ([`netlink`]); raw sockets, and any table whose diag
//! module the kernel lacks, come from `/proc/net/*` ([`crate::procfs::net`]).
//!
//! [`SocketTracker`] is the testable core. A socket is identified by its 4-tuple (connections,
//! whose inode goes to 0 in `TIME_WAIT`), its bound address and inode (listeners and unconnected
//! UDP sockets) or its inode (raw and packet sockets). A connection is inbound (`accept`) when
//! its local address matches a listening socket of the same protocol (or a port that listened
//! within the last minute), else outbound (`connect`); on loopback both ends are in the tables
//! and each is reported from its own side. Ownership is resolved only for new sockets: the
//! fds of live processes are scanned for the new inodes (processes of the task's containers
//! first, the monitor's own sockets recognised from its own fd table, the scan bounded per
//! poll) and the result cached per inode; the owner's `stat` is read at that moment, and an
//! owner that procscan still holds under the image it ran before an exec waits for procscan
//! (see [`SocketsConfig::owner_wait`]); an owner procscan has still not read by then (its
//! scans lag behind a busy task) is read from `/proc` by the collector itself, as procscan
//! would read it, with its container from its cgroup and its ancestors from procscan's table,
//! so that a service's own listener is never reported without the process the rules judge it
//! by. A socket whose owner is gone before it could be read goes out without a process. A
//! connection first seen without an inode (already
//! in `TIME_WAIT`, or not yet accepted) is reported without a process unless the same
//! 4-tuple was attributed earlier; owners are never guessed from the other end of a loopback
//! pair. In trace mode the owner is named from the tracer's exec-image overlay when the tracer saw
//! it exec since procscan last read it, or when procscan has not read it at all yet (under load
//! its scans can lag by more than a second, longer than short clients live); a socket of a
//! process forked moments ago waits briefly for that exec (`FORK_EXEC_WAIT`): a shell
//! redirection connects before the exec.
//!
//! Cost: a dump of thousands of connections is mostly the kernel's work (walking its
//! established hash table and filling one record per socket), so [`SocketSource::poll`] dumps
//! TCP connections again only when the namespace's TCP open counters moved (or something is
//! still pending, or every [`FULL_TCP_PERIOD`]), and [`SocketTracker::poll`] skips the diff
//! when a dump equals the previous one. Procscan's exec triggers (the exec signal) make the
//! collector poll every `trigger_spacing` (10 ms) for `trigger_window` (250 ms), so that a
//! connection made right after an exec is seen while open, with its process.
//!
//! UDP without `connect(2)` has no peer in the tables, so datagrams sent with `sendto` are not
//! seen; an unconnected UDP socket bound to a port below the ephemeral range is reported as
//! `listen`.
//!
//! Files: `source.rs` reads the tables, `tracker.rs` diffs them, `owners.rs` finds and names
//! owners, `event.rs` builds the events (its per-entry lookups use the keyed hasher of
//! `src/fasthash.rs`), `schedule.rs` decides when to poll, `refine.rs` serves procscan's standard
//! descriptors, `netlink.rs` speaks `sock_diag`.

mod event;
pub mod netlink;
mod owners;
mod refine;
mod schedule;
mod source;
mod tracker;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::access::Access;
use super::sender::DropCountingSender;
use super::shared::{ExecImages, ExecSignal, SharedTables};
use crate::event::{Collector, Event, EventType, Internal};
use crate::fasthash::FastMap;
use crate::procfs::DEFAULT_ENV_ALLOWLIST;
use crate::procfs::net::Proto;
use owners::{Owner, Seen};
use tracker::{Known, SockId};

pub use crate::procfs::net::SockEntry;
pub(crate) use refine::refine_socket_fd;
pub(crate) use schedule::PollSchedule;
pub use source::{FULL_TCP_PERIOD, SocketSource};

/// Settings of the sockets collector.
#[derive(Debug, Clone)]
pub struct SocketsConfig {
    /// Where `/proc` is.
    pub proc_root: PathBuf,
    /// Time between two polls.
    pub interval: Duration,
    /// Most `/proc/<pid>/fd/*` links read per poll to find the owners of new sockets.
    pub max_fd_links_per_poll: usize,
    /// How long an event waits for its owner to appear in the process table (procscan may
    /// not have published a brand-new process yet).
    pub owner_wait: Duration,
    /// Use `sock_diag` where the kernel supports it (tests turn it off to exercise the text
    /// tables).
    pub use_netlink: bool,
    /// Raised by procscan when an exec trigger fires: the collector then polls every
    /// `trigger_spacing` for `trigger_window`, so a connection made right after an exec is
    /// seen while it is open (with its inode, hence its process).
    pub exec_signal: Option<ExecSignal>,
    /// Least time between the end of one poll and a trigger-driven poll; never less than the
    /// last poll took, so trigger-driven polls use at most about half of one core.
    pub trigger_spacing: Duration,
    /// How long after the last trigger the collector keeps polling every `trigger_spacing`.
    pub trigger_window: Duration,
    /// How other users' `/proc/<pid>/fd` links are read (see [`super::access`]).
    pub access: Access,
    /// Environment variable names kept, and the command-line cap, when an owner procscan has
    /// not read by `owner_wait` is read here (procscan's settings).
    pub env_allowlist: Vec<String>,
    pub max_cmdline_bytes: usize,
}

impl Default for SocketsConfig {
    fn default() -> Self {
        SocketsConfig {
            proc_root: PathBuf::from("/proc"),
            interval: Duration::from_millis(100),
            max_fd_links_per_poll: 50_000,
            owner_wait: Duration::from_secs(1),
            use_netlink: true,
            exec_signal: None,
            trigger_spacing: Duration::from_millis(10),
            trigger_window: Duration::from_millis(250),
            access: Access::current(),
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|name| name.to_string())
                .collect(),
            max_cmdline_bytes: 64 * 1024,
        }
    }
}

/// Counters about the tracker's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Polls done.
    pub polls: u64,
    /// Events produced.
    pub events: u64,
    /// Owner scans (polls that looked through `/proc/*/fd`).
    pub(crate) owner_scans: u64,
    /// Fd links read by owner scans.
    pub fd_links_read: u64,
    /// Events reported without a process.
    pub unattributed: u64,
    /// Polls whose dump equalled the previous one (nothing to diff).
    pub(crate) unchanged_polls: u64,
}

/// The diffing core: feed it the entries of each poll and the latest tables.
#[derive(Debug)]
pub struct SocketTracker {
    config: SocketsConfig,
    known: FastMap<SockId, Known>,
    owners: FastMap<u64, Owner>,
    recent_listen_ports: HashMap<(Proto, u16), Instant>,
    listeners: Vec<(Proto, IpAddr, u16)>,
    pending: Vec<SockId>,
    ephemeral_low: u16,
    self_pid: Option<i32>,
    gen_: u64,
    stats: SocketStats,
    pids: Vec<i32>,
    /// The previous poll's dump: its length and digest (see `SocketTracker::digest`).
    last_dump: Option<(usize, u64)>,
    dump_key: std::hash::RandomState,
    /// The tracer's view of execs and forks (trace mode), fresher than `Tables`.
    images: Option<ExecImages>,
    /// Per owner pid: what its `/proc` entry showed when its socket was found (see
    /// [`Seen`]).
    seen: FastMap<i32, Seen>,
    buf: Vec<u8>,
}

/// How often at most a `sockets_unattributed` summary is emitted.
pub(crate) const UNATTRIBUTED_REPORT_PERIOD: Duration = Duration::from_secs(60);

/// Rate-limited `tasksentry`/`sockets_unattributed` summaries: how many sockets were reported
/// without an owning process (its fd was not found in any `/proc/<pid>/fd`: a process that
/// closed it or exited at once, an fd passed on, a connection first seen in `TIME_WAIT`) since
/// the previous summary. The first one goes out at once, then at most one per `period`.
#[derive(Debug, Default)]
pub struct UnattributedReporter {
    reported: u64,
    last: Option<Instant>,
}

impl UnattributedReporter {
    /// The summary due at `now` given the tracker's running count (`SocketStats::unattributed`).
    pub fn report(&mut self, total: u64, now: Instant, period: Duration) -> Option<Event> {
        let new = total.saturating_sub(self.reported);
        if new == 0
            || self
                .last
                .is_some_and(|at| now.saturating_duration_since(at) < period)
        {
            return None;
        }
        self.reported = total;
        self.last = Some(now);
        let mut event = Event::new(EventType::Tasksentry, Collector::Sockets);
        event.evt.args = vec![("total".to_owned(), total.to_string())];
        event.internal = Some(Box::new(Internal {
            kind: "sockets_unattributed".to_owned(),
            message: format!(
                "{new} sockets were reported without their process (owner not found in /proc/<pid>/fd: closed or exited before it was read, or first seen in TIME_WAIT); {total} since the start"
            ),
            count: Some(new),
        }));
        Some(event)
    }
}

/// Starts the sockets collector on its own OS thread: polls the tables every
/// `config.interval`, and every `config.trigger_spacing` during `config.trigger_window` after
/// `config.exec_signal` was raised; attributes sockets with `tables` (procscan's shared
/// tables) and sends events to `tx` without blocking. Ends when `shutdown` is set or the
/// receiver is dropped.
pub(crate) fn spawn_sockets(
    config: SocketsConfig,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
    tables: SharedTables,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sockets".into())
        .spawn(move || {
            let mut schedule = PollSchedule::new(&config);
            let signal = config.exec_signal.clone();
            let mut seen = signal.as_ref().map_or(0, ExecSignal::count);
            let mut source = SocketSource::new(&config.proc_root, config.use_netlink);
            let mut tracker = SocketTracker::new(config);
            tracker.set_exec_images(tables.exec_images());
            let mut sender = DropCountingSender::new(tx, Collector::Sockets);
            let mut unattributed = UnattributedReporter::default();
            let mut out = Vec::new();
            while !shutdown.load(Ordering::Relaxed) {
                let started = Instant::now();
                let entries = source.poll(tracker.has_pending());
                let snapshot = tables.snapshot();
                tracker.poll(entries, &snapshot, &mut out);
                drop(snapshot);
                out.extend(unattributed.report(
                    tracker.stats().unattributed,
                    Instant::now(),
                    UNATTRIBUTED_REPORT_PERIOD,
                ));
                schedule.polled(started, Instant::now());
                for event in out.drain(..) {
                    if !sender.send(event) {
                        return;
                    }
                }
                while !shutdown.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let next = schedule.next_poll(now);
                    if now >= next {
                        break;
                    }
                    // Wake at least every 200 ms to notice shutdown.
                    let wait = (next - now).min(Duration::from_millis(200));
                    match &signal {
                        // In a burst the next poll is at most a spacing away: sleep until it
                        // and only then see whether execs happened meanwhile (they extend the
                        // burst), rather than be woken by each of them (the tracer raises the
                        // signal on every exec).
                        Some(signal) if schedule.in_burst(now) => {
                            std::thread::sleep(wait);
                            let count = signal.count();
                            if count != seen {
                                seen = count;
                                schedule.triggered(Instant::now());
                            }
                        }
                        Some(signal) => {
                            let count = signal.wait_past(seen, wait);
                            if count != seen {
                                seen = count;
                                schedule.triggered(Instant::now());
                            }
                        }
                        None => std::thread::sleep(wait),
                    }
                }
            }
        })
}

#[cfg(test)]
use tracker::{FORK_EXEC_WAIT, RECENT_FORK};
#[cfg(test)]
mod tests;
