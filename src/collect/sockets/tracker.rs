//! The diffing core of [`SocketTracker`]: tracks every socket of the tables across polls by
//! its identity, tells inbound from outbound connections, and reports each new socket once it
//! is ready (its inode, its owner and the owner's process known, or waited for long enough).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::owners::Owner;
use super::{SocketStats, SocketTracker, SocketsConfig};
use crate::collect::shared::own_sockets;
use crate::collect::shared::{ExecImages, Tables};
use crate::event::Event;
use crate::fasthash::FastMap;
use crate::procfs::net::{Family, Proto, SockEntry, tcp_state, unmap};

/// What a table entry is, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A TCP listener or a UDP socket bound to a service port.
    Listen,
    /// A connected TCP or UDP socket.
    Conn,
    /// A raw or packet socket.
    Raw,
}

/// How a socket is identified across polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SockId {
    Conn {
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Bound {
        proto: Proto,
        local: SocketAddr,
        inode: u64,
    },
    Other {
        proto: Proto,
        family: Family,
        inode: u64,
    },
}

/// Where a tracked socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Waiting to be reported (for an inode, an owner or a process).
    Pending,
    /// Reported.
    Emitted,
    /// Never reported (the monitor's own, or an excluded owner's).
    Suppressed,
}

/// A tracked socket.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) entry: SockEntry,
    pub(super) role: Role,
    pub(super) first_seen: Instant,
    pub(super) last_gen: u64,
    pub(super) status: Status,
    /// Whether the connection is inbound, decided when first seen.
    pub(super) inbound: bool,
}

/// How long a port that listened is remembered for deciding the direction of connections
/// seen after the listener closed (a `TIME_WAIT` lasts 60 s).
const LISTEN_MEMORY: Duration = Duration::from_secs(60);

/// A pending connection without an inode (not yet accepted) waits this long for one.
const INODE_WAIT: Duration = Duration::from_millis(250);

/// Trace mode: a socket whose owner was forked less than this before the socket was first
/// seen, and has not exec'd since, waits for the exec (see [`FORK_EXEC_WAIT`]).
pub(crate) const RECENT_FORK: Duration = Duration::from_secs(1);

/// Trace mode: how long such a socket waits for its owner's exec. A shell redirection
/// (`cat < /dev/tcp/host/port`) connects in the forked child, then execs the program that
/// owns the connection from then on; the tracer records the exec at once, so the wait ends a
/// poll after the exec (a fork that never execs, such as a pre-fork server worker, is only
/// reported this much later).
pub(crate) const FORK_EXEC_WAIT: Duration = Duration::from_millis(100);

impl SocketTracker {
    /// A tracker; reads the monitor's own pid and the ephemeral port range from the proc root.
    pub fn new(config: SocketsConfig) -> SocketTracker {
        let root = &config.proc_root;
        let self_pid = std::fs::read_link(root.join("self"))
            .ok()
            .and_then(|t| t.to_str().and_then(|s| s.parse().ok()));
        let ephemeral_low = std::fs::read_to_string(root.join("sys/net/ipv4/ip_local_port_range"))
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse().ok()))
            .unwrap_or(32768);
        SocketTracker {
            config,
            known: FastMap::default(),
            owners: FastMap::default(),
            recent_listen_ports: HashMap::new(),
            listeners: Vec::new(),
            pending: Vec::new(),
            ephemeral_low,
            self_pid,
            gen_: 0,
            stats: SocketStats::default(),
            pids: Vec::new(),
            last_dump: None,
            dump_key: RandomState::new(),
            images: None,
            seen: FastMap::default(),
            buf: Vec::new(),
        }
    }

    /// Names owners with the tracer's view (trace mode): a process the tracer saw exec is
    /// reported with the image it exec'd even while procscan's table still holds the one
    /// before, and a socket of a process forked moments ago waits up to [`FORK_EXEC_WAIT`]
    /// for its exec.
    pub(crate) fn set_exec_images(&mut self, images: ExecImages) {
        self.images = Some(images);
    }

    /// Whether the socket `known`, owned by `pid`, waits for its owner's imminent exec.
    fn awaits_exec(&self, known: &Known, pid: i32, age: Duration) -> bool {
        age < FORK_EXEC_WAIT
            && self.images.as_ref().is_some_and(|i| {
                i.forked_recently(pid, known.first_seen, RECENT_FORK)
                    .is_some()
            })
    }

    /// Counters.
    pub fn stats(&self) -> &SocketStats {
        &self.stats
    }

    /// Whether sockets are waiting to be reported (for an inode, an owner or a process).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Number of sockets currently tracked.
    pub fn tracked(&self) -> usize {
        self.known.len()
    }

    fn classify(&self, e: &SockEntry) -> Option<(SockId, Role)> {
        let local = SocketAddr::new(e.local, e.lport);
        match e.proto {
            Proto::Raw | Proto::Packet => Some((
                SockId::Other {
                    proto: e.proto,
                    family: e.family,
                    inode: e.inode,
                },
                Role::Raw,
            )),
            Proto::Tcp => match e.state {
                tcp_state::LISTEN => Some((
                    SockId::Bound {
                        proto: e.proto,
                        local,
                        inode: e.inode,
                    },
                    Role::Listen,
                )),
                // Handshakes in progress on the server side: reported once established.
                tcp_state::SYN_RECV | tcp_state::NEW_SYN_RECV => None,
                _ if e.rport == 0 => None,
                _ => Some((
                    SockId::Conn {
                        proto: e.proto,
                        local,
                        remote: SocketAddr::new(e.remote, e.rport),
                    },
                    Role::Conn,
                )),
            },
            Proto::Udp => {
                if e.rport != 0 {
                    Some((
                        SockId::Conn {
                            proto: e.proto,
                            local,
                            remote: SocketAddr::new(e.remote, e.rport),
                        },
                        Role::Conn,
                    ))
                } else if e.lport != 0 && e.lport < self.ephemeral_low {
                    Some((
                        SockId::Bound {
                            proto: e.proto,
                            local,
                            inode: e.inode,
                        },
                        Role::Listen,
                    ))
                } else {
                    None
                }
            }
        }
    }

    fn is_inbound(&self, e: &SockEntry) -> bool {
        let local = unmap(e.local);
        self.listeners.iter().any(|&(proto, addr, port)| {
            proto == e.proto && port == e.lport && (addr.is_unspecified() || unmap(addr) == local)
        }) || self.recent_listen_ports.contains_key(&(e.proto, e.lport))
    }

    /// One poll: `entries` is the full content of the tables now; events go to `out`.
    ///
    /// Cost: the kernel dumps the tables in its hash order, which stays the same as long as no
    /// socket comes, goes or changes state, so a dump equal to the last one is recognised by one
    /// comparison and needs no diff at all (only sockets still waiting to be reported are looked
    /// at again). Otherwise: one hash lookup per entry with a cheap keyed hasher; sockets that
    /// are new, or still waiting to be reported, get the rest of the work.
    pub fn poll(&mut self, entries: &[SockEntry], tables: &Tables, out: &mut Vec<Event>) {
        let now = Instant::now();
        self.stats.polls += 1;
        let digest = self.digest(entries);
        let changed = self.last_dump != Some(digest);
        if changed {
            self.diff(entries, now);
            self.last_dump = Some(digest);
        } else {
            self.stats.unchanged_polls += 1;
        }
        // A port that still listens is remembered from now (see `LISTEN_MEMORY`).
        for &(proto, _, port) in &self.listeners {
            self.recent_listen_ports.insert((proto, port), now);
        }
        if self.stats.polls % 64 == 0 {
            self.recent_listen_ports
                .retain(|_, at| now.saturating_duration_since(*at) < LISTEN_MEMORY);
        }
        let generation = self.gen_;

        // Owners of new inodes.
        if !self.pending.is_empty() {
            let wanted: HashSet<u64> = self
                .pending
                .iter()
                .filter_map(|id| self.known.get(id))
                .map(|k| k.entry.inode)
                .filter(|&inode| {
                    inode != 0
                        && !matches!(
                            self.owners.get(&inode),
                            Some(Owner::Pid(_) | Owner::Monitor)
                        )
                })
                .collect();
            if !wanted.is_empty() {
                self.resolve_owners(wanted, tables);
            }
        }

        // Emit what is ready, including sockets that vanished before being reported.
        let pending = std::mem::take(&mut self.pending);
        for id in pending {
            let Some(known) = self.known.get(&id) else {
                continue;
            };
            let vanished = known.last_gen != generation;
            let age = now.saturating_duration_since(known.first_seen);
            let owner = match known.entry.inode {
                0 => None,
                inode => self.owners.get(&inode).copied(),
            };
            let ready = vanished
                || match (known.entry.inode, owner) {
                    (0, _) => {
                        // Not yet accepted connections get an inode shortly; anything else
                        // without one (TIME_WAIT, closing) will never have one.
                        known.entry.state != tcp_state::ESTABLISHED
                            || known.entry.proto != Proto::Tcp
                            || age >= INODE_WAIT
                    }
                    (_, Some(Owner::Pid(pid))) => {
                        (self
                            .owner_view(pid, known, tables)
                            .is_some_and(|view| self.is_current(pid, &view))
                            && !self.awaits_exec(known, pid, age))
                            || age >= self.config.owner_wait
                    }
                    (_, Some(Owner::Monitor)) => true,
                    // Not found: one retry on the next poll (an fd being passed, a process
                    // being created), then reported without a process.
                    (_, Some(Owner::NotFound)) | (_, None) => age > Duration::ZERO,
                };
            if !ready {
                self.pending.push(id);
                continue;
            }
            let event = match owner {
                Some(Owner::Monitor) => None,
                Some(Owner::Pid(pid)) => self.build_event(known, Some(pid), tables),
                // A short request of the monitor itself (only its TIME_WAIT entry was seen).
                _ if known.role == Role::Conn
                    && own_sockets::is_own(
                        SocketAddr::new(known.entry.local, known.entry.lport),
                        SocketAddr::new(known.entry.remote, known.entry.rport),
                    ) =>
                {
                    None
                }
                _ => self.build_event(known, None, tables),
            };
            let status = match event {
                Some(event) => {
                    self.stats.events += 1;
                    if event.proc.is_none() {
                        self.stats.unattributed += 1;
                    }
                    out.push(event);
                    Status::Emitted
                }
                None => Status::Suppressed,
            };
            if let Some(known) = self.known.get_mut(&id) {
                known.status = status;
            }
        }

        // Forget sockets that are gone, and their owners (an unchanged dump lost none).
        if changed {
            let owners = &mut self.owners;
            self.known.retain(|_, known| {
                let keep = known.last_gen == generation;
                if !keep && known.entry.inode != 0 {
                    owners.remove(&known.entry.inode);
                }
                keep
            });
            if !self.seen.is_empty() && self.stats.polls % 16 == 0 {
                let live: HashSet<i32> = self
                    .owners
                    .values()
                    .filter_map(|o| match o {
                        Owner::Pid(pid) => Some(*pid),
                        _ => None,
                    })
                    .collect();
                self.seen.retain(|pid, _| live.contains(pid));
            }
        }
    }

    /// What tells a dump from the last one: its length and a keyed SipHash digest of its
    /// entries in order. (A copy of the last dump compared entry by entry was a second copy of
    /// the whole table, 4 MiB at 60,000 sockets; two different dumps are taken for the same by
    /// chance 1 in 2^64, and the key, random per process, is unknown to the workload.)
    fn digest(&self, entries: &[SockEntry]) -> (usize, u64) {
        let mut hasher = self.dump_key.build_hasher();
        let address = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) ^ 1 << 127,
        };
        for e in entries {
            hasher.write_u64(
                u64::from(e.family as u8)
                    | u64::from(e.proto as u8) << 8
                    | u64::from(e.state) << 16
                    | u64::from(e.lport) << 24
                    | u64::from(e.rport) << 40,
            );
            hasher.write_u64(e.inode);
            hasher.write_u64(
                u64::from(e.uid) | u64::from(e.sock_type) << 32 | u64::from(e.protocol) << 48,
            );
            hasher.write_u128(address(e.local));
            hasher.write_u128(address(e.remote));
        }
        (entries.len(), hasher.finish())
    }

    /// Matches the entries of a dump that differs from the last one against the known
    /// sockets: marks the ones still there with a new generation, refreshes those waiting to be
    /// reported, and queues the new ones.
    fn diff(&mut self, entries: &[SockEntry], now: Instant) {
        self.gen_ += 1;
        let generation = self.gen_;
        self.listeners.clear();
        for e in entries {
            let listening = match e.proto {
                Proto::Tcp => e.state == tcp_state::LISTEN,
                Proto::Udp => e.rport == 0 && e.lport != 0 && e.lport < self.ephemeral_low,
                _ => false,
            };
            if listening {
                self.listeners.push((e.proto, e.local, e.lport));
            }
        }

        // New and known sockets.
        for e in entries {
            let Some((id, role)) = self.classify(e) else {
                continue;
            };
            if let Some(known) = self.known.get_mut(&id) {
                known.last_gen = generation;
                if known.status == Status::Pending {
                    known.entry = *e;
                } else if known.entry.inode == 0 && e.inode != 0 {
                    known.entry.inode = e.inode;
                }
                continue;
            }
            let inbound = role == Role::Conn && self.is_inbound(e);
            self.known.insert(
                id,
                Known {
                    entry: *e,
                    role,
                    first_seen: now,
                    last_gen: generation,
                    status: Status::Pending,
                    inbound,
                },
            );
            self.pending.push(id);
        }
    }
}
