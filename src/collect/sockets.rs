//! The sockets collector: diffs the task's socket tables on every poll and reports new
//! outbound connections (`connect`), inbound connections (`accept`), listening sockets
//! (`listen`) and raw or packet sockets (`socket`), attributed to the owning process and
//! container.
//!
//! Fargate tasks share one network namespace (awsvpc) and the monitor runs in it, so one dump
//! of each table sees every socket of the task. TCP and UDP (IPv4 and IPv6) and `AF_PACKET`
//! tables come from `NETLINK_SOCK_DIAG` ([`netlink`]); raw sockets, and any table whose diag
//! module the kernel lacks, come from `/proc/net/*` ([`procnet`]).
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
//! (see [`SocketsConfig::owner_wait`]). A connection first seen without an inode (already
//! in `TIME_WAIT`, or not yet accepted) is reported without a process unless the same
//! 4-tuple was attributed earlier; owners are never guessed from the other end of a loopback
//! pair. In trace mode the owner is named from the tracer's [`ExecImages`] when the tracer saw
//! it exec since procscan last read it, or when procscan has not read it at all yet (under load
//! its scans can lag by more than a second, longer than short clients live); a socket of a
//! process forked moments ago waits briefly for that exec ([`FORK_EXEC_WAIT`]): a shell
//! redirection connects before the exec.
//!
//! Cost: a dump of thousands of connections is mostly the kernel's work (walking its
//! established hash table and filling one record per socket), so [`SocketSource::poll`] dumps
//! TCP connections again only when the namespace's TCP open counters moved (or something is
//! still pending, or every [`FULL_TCP_PERIOD`]), and [`SocketTracker::poll`] skips the diff
//! when a dump equals the previous one. Procscan's exec triggers ([`ExecSignal`]) make the
//! collector poll every `trigger_spacing` (10 ms) for `trigger_window` (250 ms), so that a
//! connection made right after an exec is seen while open, with its process.
//!
//! UDP without `connect(2)` has no peer in the tables, so datagrams sent with `sendto` are not
//! seen; an unconnected UDP socket bound to a port below the ephemeral range is reported as
//! `listen`.

pub mod netlink;
pub mod procnet;

use super::access::Owner as ProcOwner;
use super::sender::DropCountingSender;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

use super::table::{ExecImages, ProcEntry, ProcKey, SharedTables, Tables};
use super::triggers::ExecSignal;
use crate::event::{Collector, Event, EventType, Fd, FdKind};

/// Address family of a socket table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
    /// `AF_PACKET`.
    Packet,
}

/// The table an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Raw IP.
    Raw,
    /// `AF_PACKET`.
    Packet,
}

impl Proto {
    fn l4proto(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Raw | Proto::Packet => "raw",
        }
    }
}

/// One socket as the tables show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockEntry {
    /// Address family.
    pub family: Family,
    /// Table.
    pub proto: Proto,
    /// TCP state (`TCP_ESTABLISHED` = 1 ... `TCP_LISTEN` = 10); UDP uses 1 when connected and
    /// 7 when not.
    pub state: u8,
    /// Local address.
    pub local: IpAddr,
    /// Local port (for raw sockets: the protocol number).
    pub lport: u16,
    /// Remote address (unspecified when not connected).
    pub remote: IpAddr,
    /// Remote port (0 when not connected).
    pub rport: u16,
    /// Socket inode; 0 for sockets without a file (`TIME_WAIT`, not yet accepted).
    pub inode: u64,
    /// Owner uid as the kernel records it.
    pub uid: u32,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_RAW`.
    pub sock_type: u16,
    /// Raw sockets: the IP protocol; packet sockets: the ethertype.
    pub protocol: u16,
}

/// TCP states (include/net/tcp_states.h).
pub mod tcp_state {
    /// `TCP_ESTABLISHED`.
    pub const ESTABLISHED: u8 = 1;
    /// `TCP_SYN_SENT`.
    pub const SYN_SENT: u8 = 2;
    /// `TCP_SYN_RECV`.
    pub const SYN_RECV: u8 = 3;
    /// `TCP_TIME_WAIT`.
    pub const TIME_WAIT: u8 = 6;
    /// `TCP_CLOSE` (also an unconnected UDP socket).
    pub const CLOSE: u8 = 7;
    /// `TCP_LISTEN`.
    pub const LISTEN: u8 = 10;
    /// `TCP_NEW_SYN_RECV` (request sockets).
    pub const NEW_SYN_RECV: u8 = 12;
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to its IPv4 form.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `ip:port` the way Falco prints it: IPv6 addresses without brackets (`::1:8080`).
pub fn falco_endpoint(ip: IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

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
    pub access: super::access::Access,
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
            access: super::access::Access::current(),
        }
    }
}

/// Longest time [`SocketSource::poll`] reuses TCP connections from its last full dump: a
/// safety net for a counter that did not move (a `TCP_REPAIR` socket, which needs
/// `CAP_NET_ADMIN`, is created without an open), and it forgets connections that closed.
pub const FULL_TCP_PERIOD: Duration = Duration::from_secs(5);

/// Counters of a [`SocketSource`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Polls that dumped every TCP socket.
    pub full_tcp_dumps: u64,
    /// Polls that dumped only TCP listeners (the TCP open counters had not moved).
    pub listener_only_dumps: u64,
}

/// Reads the socket tables of the monitor's network namespace.
#[derive(Debug)]
pub struct SocketSource {
    proc_root: PathBuf,
    diag: Option<netlink::DiagSocket>,
    /// Tables for which `sock_diag` failed and `/proc/net` is used instead.
    text_fallback: HashSet<&'static str>,
    text: String,
    /// TCP sockets other than listeners from the last full dump, in dump order.
    tcp_cache: Vec<SockEntry>,
    /// `ActiveOpens` and `PassiveOpens` read before the last full TCP dump.
    tcp_opens: Option<(u64, u64)>,
    /// When the last full one-walk TCP dump was made.
    last_full_tcp: Option<Instant>,
    stats: SourceStats,
}

impl SocketSource {
    /// A source reading `<proc_root>/net/*` when netlink is unavailable or `use_netlink` is off.
    pub fn new(proc_root: &Path, use_netlink: bool) -> SocketSource {
        let diag = if use_netlink {
            match netlink::DiagSocket::open() {
                Ok(socket) => Some(socket),
                Err(error) => {
                    warn!(%error, "NETLINK_SOCK_DIAG unavailable; reading /proc/net instead");
                    None
                }
            }
        } else {
            None
        };
        SocketSource {
            proc_root: proc_root.to_path_buf(),
            diag,
            text_fallback: HashSet::new(),
            text: String::new(),
            tcp_cache: Vec::new(),
            tcp_opens: None,
            last_full_tcp: None,
            stats: SourceStats::default(),
        }
    }

    /// Replaces `out` with every TCP, UDP, raw and packet socket of the namespace.
    pub fn collect(&mut self, out: &mut Vec<SockEntry>) {
        out.clear();
        self.collect_tcp(out);
        self.collect_rest(out);
    }

    /// What the collector thread calls on each poll: like [`SocketSource::collect`], except
    /// that TCP sockets other than listeners are dumped again only when the namespace's TCP
    /// open counters (`ActiveOpens`, `PassiveOpens` in `/proc/net/snmp`, read before each
    /// dump) moved since the last full dump, when `force_full_tcp` is set (the tracker still
    /// waits for an inode or an owner), or at least every [`FULL_TCP_PERIOD`]; otherwise they
    /// are taken from the last full dump. Every new TCP connection, either end, increments one
    /// of the counters, so no new connection is missed; what is skipped is the kernel's walk of
    /// its established hash table and one record per connection, which dominate the cost of a
    /// poll with thousands of connections. Listeners, UDP, raw and packet sockets are dumped
    /// on every poll.
    pub fn poll(&mut self, out: &mut Vec<SockEntry>, force_full_tcp: bool) {
        out.clear();
        let opens = self.read_tcp_opens();
        let recent = self
            .last_full_tcp
            .is_some_and(|at| at.elapsed() < FULL_TCP_PERIOD);
        if !force_full_tcp && recent && opens.is_some() && opens == self.tcp_opens {
            if let Some(diag) = self.diag.as_mut()
                && !self.text_fallback.contains("tcp+tcp6")
                && diag.dump_tcp_listeners(out).is_ok()
            {
                out.extend_from_slice(&self.tcp_cache);
                self.stats.listener_only_dumps += 1;
                self.collect_rest(out);
                return;
            }
            out.clear();
        }
        self.tcp_opens = opens;
        self.stats.full_tcp_dumps += 1;
        if self.collect_tcp(out) {
            self.tcp_cache.clear();
            self.tcp_cache
                .extend(out.iter().filter(|e| e.state != tcp_state::LISTEN).copied());
            self.last_full_tcp = Some(Instant::now());
        } else {
            self.last_full_tcp = None;
        }
        self.collect_rest(out);
    }

    /// Counters of [`SocketSource::poll`].
    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// The TCP open counters of this thread's network namespace: the one the `sock_diag`
    /// socket, created by this thread, dumps (`/proc/net` is that of the main thread).
    fn read_tcp_opens(&mut self) -> Option<(u64, u64)> {
        use std::io::Read;
        self.text.clear();
        let mut file = std::fs::File::open(self.proc_root.join("thread-self/net/snmp"))
            .or_else(|_| std::fs::File::open(self.proc_root.join("net/snmp")))
            .ok()?;
        file.read_to_string(&mut self.text).ok()?;
        procnet::tcp_opens(&self.text)
    }

    /// Appends the TCP sockets of both families. Returns whether they came from the one-walk
    /// `sock_diag` dump.
    fn collect_tcp(&mut self, out: &mut Vec<SockEntry>) -> bool {
        if let Some(diag) = self.diag.as_mut()
            && !self.text_fallback.contains("tcp+tcp6")
        {
            let before = out.len();
            match diag.dump_tcp_all(out) {
                Ok(()) => return true,
                Err(error) => {
                    out.truncate(before);
                    warn!(%error, "one-walk TCP dump failed; dumping each family");
                    self.text_fallback.insert("tcp+tcp6");
                }
            }
        }
        self.collect_inet(Family::V4, Proto::Tcp, "tcp", out);
        self.collect_inet(Family::V6, Proto::Tcp, "tcp6", out);
        false
    }

    /// Appends the UDP, raw and packet sockets.
    fn collect_rest(&mut self, out: &mut Vec<SockEntry>) {
        self.collect_inet(Family::V4, Proto::Udp, "udp", out);
        self.collect_inet(Family::V6, Proto::Udp, "udp6", out);
        // Raw sockets always come from the text tables: `CONFIG_INET_RAW_DIAG` is often not
        // built, and the tables hold a handful of lines at most.
        self.read_text(
            "raw",
            |text, out| procnet::parse_inet_table(text, Family::V4, Proto::Raw, out),
            out,
        );
        self.read_text(
            "raw6",
            |text, out| procnet::parse_inet_table(text, Family::V6, Proto::Raw, out),
            out,
        );
        if let Some(diag) = self.diag.as_mut()
            && !self.text_fallback.contains("packet")
        {
            let before = out.len();
            match diag.dump_packet(out) {
                Ok(()) => return,
                Err(error) => {
                    out.truncate(before);
                    warn!(table = "packet", %error, "sock_diag failed; reading /proc/net instead");
                    self.text_fallback.insert("packet");
                }
            }
        }
        self.read_text("packet", procnet::parse_packet_table, out);
    }

    /// Appends one TCP or UDP table of one family: `sock_diag`, else the text table.
    fn collect_inet(
        &mut self,
        family: Family,
        proto: Proto,
        name: &'static str,
        out: &mut Vec<SockEntry>,
    ) {
        if let Some(diag) = self.diag.as_mut()
            && !self.text_fallback.contains(name)
        {
            let before = out.len();
            match diag.dump_inet(family, proto, out) {
                Ok(()) => return,
                Err(error) => {
                    out.truncate(before);
                    warn!(table = name, %error, "sock_diag failed; reading /proc/net instead");
                    self.text_fallback.insert(name);
                }
            }
        }
        self.read_text(
            name,
            |text, out| procnet::parse_inet_table(text, family, proto, out),
            out,
        );
    }

    fn read_text(
        &mut self,
        name: &str,
        parse: impl Fn(&str, &mut Vec<SockEntry>),
        out: &mut Vec<SockEntry>,
    ) {
        use std::io::Read;
        self.text.clear();
        let path = self.proc_root.join("net").join(name);
        // A missing table (IPv6 disabled, no packet support) is simply empty.
        if let Ok(mut file) = std::fs::File::open(&path)
            && file.read_to_string(&mut self.text).is_ok()
        {
            parse(&self.text, out);
        }
    }
}

/// What a table entry is, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A TCP listener or a UDP socket bound to a service port.
    Listen,
    /// A connected TCP or UDP socket.
    Conn,
    /// A raw or packet socket.
    Raw,
}

/// How a socket is identified across polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SockId {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Emitted,
    Suppressed,
}

#[derive(Debug, Clone)]
struct Known {
    entry: SockEntry,
    role: Role,
    first_seen: Instant,
    last_gen: u64,
    status: Status,
    /// Whether the connection is inbound, decided when first seen.
    inbound: bool,
}

/// Where an owner's process record comes from.
enum OwnerView<'t> {
    /// Procscan's entry (named with the tracer's newer image, see [`ProcessTable::view`]).
    ///
    /// [`ProcessTable::view`]: super::table::ProcessTable::view
    Table(ProcKey, &'t ProcEntry),
    /// Trace mode: the image the tracer saw the process exec, and its container, when
    /// procscan has not read the process yet (its scans lag behind a busy task).
    Traced(Arc<crate::event::Process>, Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The monitor's own socket.
    Monitor,
    /// A process, by pid in the proc root's namespace.
    Pid(i32),
    /// Looked for and not found.
    NotFound,
}

/// Counters about the tracker's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Polls done.
    pub polls: u64,
    /// Events produced.
    pub events: u64,
    /// Owner scans (polls that looked through `/proc/*/fd`).
    pub owner_scans: u64,
    /// Fd links read by owner scans.
    pub fd_links_read: u64,
    /// Events reported without a process.
    pub unattributed: u64,
    /// Polls whose dump equalled the previous one (nothing to diff).
    pub unchanged_polls: u64,
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
    /// The previous poll's entries, in dump order.
    last_entries: Vec<SockEntry>,
    /// The tracer's view of execs and forks (trace mode), fresher than `Tables`.
    images: Option<ExecImages>,
    /// Per owner pid: what its `/proc` entry showed when its socket was found (see
    /// [`Seen`]).
    seen: FastMap<i32, Seen>,
    buf: Vec<u8>,
}

/// An owner as its `/proc` entry showed it when the fd scan found its socket: procscan's
/// entry can be older (a fork read before it exec'd the program that made the connection,
/// when procscan's scans lag behind), which would name the connection after the wrong
/// program. The socket then waits for procscan to catch up, and is reported with the image
/// read here if it has not by then.
#[derive(Debug, Clone)]
struct Seen {
    start_ticks: u64,
    comm: String,
    /// Read at once when procscan's entry named another image at that moment.
    image: Option<SeenImage>,
}

/// The fields an exec changes, read from `/proc/<pid>` (`cmdline`, `exe`).
#[derive(Debug, Clone)]
struct SeenImage {
    exe: Option<String>,
    exepath: Option<String>,
    args: Vec<String>,
    args_truncated: bool,
    exe_deleted: bool,
    exe_from_memfd: bool,
}

/// Command-line bytes kept for an owner read by the sockets collector (procscan's default).
const SEEN_CMDLINE_BYTES: usize = 64 * 1024;

/// A multiply-rotate hasher (the Fx hash of rustc) keyed with a per-process random seed: a
/// few nanoseconds per key instead of SipHash's tens, for the per-entry lookups of every poll.
/// The seed keeps the workload, which chooses ports and peers, from predicting collisions.
#[derive(Debug, Clone, Copy)]
pub struct KeyedFxHasher {
    hash: u64,
}

const FX_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl KeyedFxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_MULTIPLIER);
    }
}

impl std::hash::Hasher for KeyedFxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final mix so that the low bits (the bucket index) depend on every input bit.
        let h = self.hash;
        (h ^ (h >> 29)).wrapping_mul(FX_MULTIPLIER) ^ (h >> 32)
    }
}

/// Builds [`KeyedFxHasher`]s with this process's seed.
#[derive(Debug, Clone, Copy)]
pub struct KeyedFxBuild {
    seed: u64,
}

impl Default for KeyedFxBuild {
    fn default() -> Self {
        use std::hash::BuildHasher;
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED
            .get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64));
        KeyedFxBuild { seed }
    }
}

impl std::hash::BuildHasher for KeyedFxBuild {
    type Hasher = KeyedFxHasher;

    #[inline]
    fn build_hasher(&self) -> KeyedFxHasher {
        KeyedFxHasher { hash: self.seed }
    }
}

type FastMap<K, V> = HashMap<K, V, KeyedFxBuild>;

/// How long a port that listened is remembered for deciding the direction of connections
/// seen after the listener closed (a `TIME_WAIT` lasts 60 s).
const LISTEN_MEMORY: Duration = Duration::from_secs(60);

/// A pending connection without an inode (not yet accepted) waits this long for one.
const INODE_WAIT: Duration = Duration::from_millis(250);

/// Trace mode: a socket whose owner was forked less than this before the socket was first
/// seen, and has not exec'd since, waits for the exec (see [`FORK_EXEC_WAIT`]).
pub const RECENT_FORK: Duration = Duration::from_secs(1);

/// Trace mode: how long such a socket waits for its owner's exec. A shell redirection
/// (`cat < /dev/tcp/host/port`) connects in the forked child, then execs the program that
/// owns the connection from then on; the tracer records the exec at once, so the wait ends a
/// poll after the exec (a fork that never execs, such as a pre-fork server worker, is only
/// reported this much later).
pub const FORK_EXEC_WAIT: Duration = Duration::from_millis(100);

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
            last_entries: Vec::new(),
            images: None,
            seen: FastMap::default(),
            buf: Vec::new(),
        }
    }

    /// Names owners with the tracer's view (trace mode): a process the tracer saw exec is
    /// reported with the image it exec'd even while procscan's table still holds the one
    /// before, and a socket of a process forked moments ago waits up to [`FORK_EXEC_WAIT`]
    /// for its exec.
    pub fn set_exec_images(&mut self, images: ExecImages) {
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
        let changed = entries != self.last_entries.as_slice();
        if changed {
            self.diff(entries, now);
            self.last_entries.clear();
            self.last_entries.extend_from_slice(entries);
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
                    && super::own_sockets::is_own(
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

    /// Finds the owners of `wanted` inodes: the monitor's own fds first, then processes of the
    /// task's containers, then anything else in the proc root, then excluded processes.
    fn resolve_owners(&mut self, mut wanted: HashSet<u64>, tables: &Tables) {
        self.stats.owner_scans += 1;
        let root = self.config.proc_root.clone();
        let mut budget = self.config.max_fd_links_per_poll;
        let mut found: Vec<(u64, Owner)> = Vec::new();
        scan_fds(&root.join("self/fd"), &mut wanted, &mut budget, |inode| {
            found.push((inode, Owner::Monitor));
        });
        let mut order: Vec<i32> = Vec::new();
        let mut excluded: Vec<i32> = Vec::new();
        let mut listed: HashSet<i32> = HashSet::new();
        for (key, entry) in tables.processes.live() {
            listed.insert(key.pid);
            if entry.excluded.is_some() {
                excluded.push(key.pid);
            } else {
                order.push(key.pid);
            }
        }
        // Processes procscan has not published yet.
        if list_pids(&root, &mut self.pids).is_ok() {
            order.extend(self.pids.iter().copied().filter(|p| !listed.contains(p)));
        }
        order.extend(excluded);
        order.retain(|pid| Some(*pid) != self.self_pid);
        // Other users' descriptor links pass the kernel's ptrace check only as their owner when
        // the monitor lacks CAP_SYS_PTRACE (see `access`): consecutive processes of one owner
        // are scanned under one switch of the filesystem ids.
        let access = self.config.access;
        let owners: Vec<Option<ProcOwner>> = if access.may_switch() {
            order
                .iter()
                .map(|pid| super::access::dir_owner(&root, *pid))
                .collect()
        } else {
            vec![None; order.len()]
        };
        let mut start = 0;
        while start < order.len() && !wanted.is_empty() && budget > 0 {
            let owner = owners[start];
            let end = start + owners[start..].iter().take_while(|o| **o == owner).count();
            access.as_owner(owner, || {
                for &pid in &order[start..end] {
                    if wanted.is_empty() || budget == 0 {
                        break;
                    }
                    let dir = root.join(pid.to_string()).join("fd");
                    scan_fds(&dir, &mut wanted, &mut budget, |inode| {
                        found.push((inode, Owner::Pid(pid)));
                    });
                }
            });
            start = end;
        }
        self.stats.fd_links_read += (self.config.max_fd_links_per_poll - budget) as u64;
        // One `stat` per owner, however many of its sockets were found.
        let mut noted: HashSet<i32> = HashSet::new();
        for (inode, owner) in found {
            if let Owner::Pid(pid) = owner
                && noted.insert(pid)
            {
                self.note_seen(pid, tables);
            }
            self.owners.insert(inode, owner);
        }
        for inode in wanted {
            self.owners.insert(inode, Owner::NotFound);
        }
    }

    /// The event for a socket; `None` when it must not be reported (an excluded owner).
    fn build_event(&self, known: &Known, pid: Option<i32>, tables: &Tables) -> Option<Event> {
        let e = &known.entry;
        let (evt_type, mut fd) = match known.role {
            Role::Listen => {
                let local = unmap(e.local);
                (
                    EventType::Listen,
                    Fd {
                        kind: Some(ip_kind(local)),
                        name: Some(falco_endpoint(local, e.lport)),
                        l4proto: Some(e.proto.l4proto().to_string()),
                        sip: Some(local),
                        sport: Some(e.lport),
                        local_is_client: Some(false),
                        ..Fd::default()
                    },
                )
            }
            Role::Conn => {
                let local = unmap(e.local);
                let remote = unmap(e.remote);
                let kind = if local.is_ipv4() && remote.is_ipv4() {
                    FdKind::Ipv4
                } else {
                    FdKind::Ipv6
                };
                let (cip, cport, sip, sport) = if known.inbound {
                    (remote, e.rport, local, e.lport)
                } else {
                    (local, e.lport, remote, e.rport)
                };
                (
                    if known.inbound {
                        EventType::Accept
                    } else {
                        EventType::Connect
                    },
                    Fd {
                        kind: Some(kind),
                        name: Some(format!(
                            "{}->{}",
                            falco_endpoint(cip, cport),
                            falco_endpoint(sip, sport)
                        )),
                        l4proto: Some(e.proto.l4proto().to_string()),
                        cip: Some(cip),
                        cport: Some(cport),
                        sip: Some(sip),
                        sport: Some(sport),
                        local_is_client: Some(!known.inbound),
                        ..Fd::default()
                    },
                )
            }
            Role::Raw => (
                EventType::Socket,
                Fd {
                    kind: Some(match e.family {
                        Family::V4 => FdKind::Ipv4,
                        Family::V6 => FdKind::Ipv6,
                        Family::Packet => FdKind::Socket,
                    }),
                    l4proto: (e.proto == Proto::Raw).then(|| "raw".to_string()),
                    ..Fd::default()
                },
            ),
        };
        if e.inode != 0 {
            fd.inode = Some(e.inode);
        }
        let mut event = Event::new(evt_type, Collector::Sockets);
        if known.role == Role::Raw {
            let domain = match e.family {
                Family::V4 => "AF_INET",
                Family::V6 => "AF_INET6",
                Family::Packet => "AF_PACKET",
            };
            let sock_type = match i32::from(e.sock_type) {
                libc::SOCK_RAW => "SOCK_RAW".to_string(),
                libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
                libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
                other => other.to_string(),
            };
            event.evt.args.push(("domain".into(), domain.into()));
            event.evt.args.push(("type".into(), sock_type));
            event
                .evt
                .args
                .push(("protocol".into(), e.protocol.to_string()));
        }
        event.fd = Some(Box::new(fd));
        match pid.and_then(|pid| self.owner_view(pid, known, tables)) {
            Some(OwnerView::Table(key, entry)) => {
                if entry.excluded.is_some() {
                    return None;
                }
                // The tracer's image when it saw this process exec since procscan read it.
                let mut process = tables.processes.view(key, self.images.as_ref());
                if let Some(p) = &mut process
                    && let Some(seen) = self.seen.get(&key.pid)
                    && !self.is_current(key.pid, &OwnerView::Table(key, entry))
                {
                    if seen.start_ticks != key.start_ticks {
                        // Procscan never read this process (only an earlier one with the
                        // same pid): nothing to name it with.
                        return Some(event);
                    }
                    if let Some(image) = &seen.image {
                        // Procscan still holds the image before an exec: the fields the
                        // exec changed are the ones read when the socket was found.
                        p.name = seen.comm.clone();
                        p.exe = image.exe.clone();
                        p.exepath = image.exepath.clone();
                        p.args = image.args.clone();
                        p.args_truncated = image.args_truncated;
                        p.exe_deleted = image.exe_deleted;
                        p.exe_from_memfd = image.exe_from_memfd;
                        p.exe_ctime = None;
                        p.exe_mtime = None;
                        p.exe_written_after_start = None;
                    }
                }
                event.proc = process.map(Box::new);
                event.container = tables
                    .containers
                    .get(&entry.container_id)
                    .map(|c| Box::new(c.container.clone()));
            }
            Some(OwnerView::Traced(process, container_id)) => {
                let container = tables.containers.get(&container_id);
                if container.is_some_and(|c| c.excluded.is_some()) {
                    return None;
                }
                event.proc = Some(Box::new((*process).clone()));
                event.container = container.map(|c| Box::new(c.container.clone()));
            }
            None => {}
        }
        Some(event)
    }

    /// The process record for the owner `pid` of `known`: procscan's live entry; else, in
    /// trace mode, the image the tracer saw that pid exec if it is newer than what procscan
    /// holds (nothing, or an exited process whose pid was reused); else procscan's exited
    /// entry (a socket reported after its owner exited).
    fn owner_view<'t>(&self, pid: i32, known: &Known, tables: &'t Tables) -> Option<OwnerView<'t>> {
        let table = tables.processes.lookup_pid(pid);
        if let Some((key, entry)) = table
            && entry.exited_at.is_none()
        {
            return Some(OwnerView::Table(key, entry));
        }
        let traced = self
            .images
            .as_ref()
            .and_then(|images| images.latest(pid, known.first_seen));
        match (table, traced) {
            (Some((key, _)), Some((process, container_id)))
                if process.start_ticks > key.start_ticks =>
            {
                Some(OwnerView::Traced(process, container_id))
            }
            (Some((key, entry)), _) => Some(OwnerView::Table(key, entry)),
            (None, Some((process, container_id))) => Some(OwnerView::Traced(process, container_id)),
            (None, None) => None,
        }
    }

    /// Whether `view` names the owner `pid` as it was when its socket was found: the same
    /// process (start time) with the same name. True when nothing was recorded, and for the
    /// tracer's image (read at the exec stop itself).
    fn is_current(&self, pid: i32, view: &OwnerView<'_>) -> bool {
        let Some(seen) = self.seen.get(&pid) else {
            return true;
        };
        match view {
            OwnerView::Traced(..) => true,
            OwnerView::Table(key, entry) => {
                key.start_ticks == seen.start_ticks && self.named(*key, entry, &seen.comm)
            }
        }
    }

    /// Whether procscan's entry (or the tracer's newer image of it) has the name `comm`.
    fn named(&self, key: ProcKey, entry: &ProcEntry, comm: &str) -> bool {
        match self.images.as_ref().and_then(|i| i.image(key)) {
            Some(image) => image.name == comm,
            None => entry.process.name == comm,
        }
    }

    /// Records what `/proc/<pid>` shows now (see [`Seen`]); when procscan's entry names
    /// another image, also reads the command line and executable.
    fn note_seen(&mut self, pid: i32, tables: &Tables) {
        let root = &self.config.proc_root;
        let Some(stat) = super::proc::read_stat(root, pid, &mut self.buf) else {
            // Gone already: procscan's entry is all there is.
            self.seen.remove(&pid);
            return;
        };
        let mut seen = Seen {
            start_ticks: stat.starttime,
            comm: stat.comm,
            image: None,
        };
        let stale = match tables.processes.lookup_pid(pid) {
            Some((key, entry)) => {
                key.start_ticks == seen.start_ticks && !self.named(key, entry, &seen.comm)
            }
            None => false,
        };
        if stale {
            let access = self.config.access;
            let owner = if access.may_switch() {
                super::access::dir_owner(root, pid)
            } else {
                None
            };
            let cmdline = match super::proc::read_capped(
                &super::proc::pid_path(root, pid, "cmdline"),
                &mut self.buf,
                SEEN_CMDLINE_BYTES,
            ) {
                Ok(truncated) => super::proc::parse_cmdline(&self.buf, truncated),
                Err(_) => super::proc::Cmdline::default(),
            };
            let exe = access
                .as_owner(owner, || {
                    super::proc::read_link_string(&super::proc::pid_path(root, pid, "exe"))
                })
                .map(|target| super::proc::parse_exe_link(&target));
            // Read after a recycle of the pid: not this process's.
            let same = super::proc::read_stat(root, pid, &mut self.buf)
                .is_some_and(|again| again.starttime == seen.start_ticks);
            let image = SeenImage {
                exe: cmdline.argv0,
                exepath: exe.as_ref().map(|(path, _, _)| path.clone()),
                args: cmdline.args,
                args_truncated: cmdline.truncated,
                exe_deleted: exe.as_ref().is_some_and(|e| e.1),
                exe_from_memfd: exe.as_ref().is_some_and(|e| e.2),
            };
            let renamed = tables.processes.lookup_pid(pid).is_some_and(|(_, entry)| {
                entry.process.exepath == image.exepath && entry.process.args == image.args
            });
            if renamed {
                // Same program and arguments: the process renamed itself (prctl), it did not
                // exec. Procscan's entry is current.
                if let Some((_, entry)) = tables.processes.lookup_pid(pid) {
                    seen.comm = entry.process.name.clone();
                }
            } else if same {
                seen.image = Some(image);
            }
        }
        self.seen.insert(pid, seen);
    }
}

fn ip_kind(ip: IpAddr) -> FdKind {
    if ip.is_ipv4() {
        FdKind::Ipv4
    } else {
        FdKind::Ipv6
    }
}

/// Reads the fd links in `dir`, calling `hit` for each socket inode in `wanted` (and removing
/// it). Stops when `budget` links have been read.
fn scan_fds(dir: &Path, wanted: &mut HashSet<u64>, budget: &mut usize, mut hit: impl FnMut(u64)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 || wanted.is_empty() {
            return;
        }
        *budget -= 1;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = socket_inode(&target.to_string_lossy()) else {
            continue;
        };
        if wanted.remove(&inode) {
            hit(inode);
        }
    }
}

/// The inode of a `socket:[N]` link target.
pub fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn list_pids(root: &Path, pids: &mut Vec<i32>) -> io::Result<()> {
    pids.clear();
    for entry in std::fs::read_dir(root)?.flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            && pid > 0
        {
            pids.push(pid);
        }
    }
    Ok(())
}

/// Refines a standard fd that is a socket: looks `inode` up in the socket tables of the
/// process's network namespace (`<proc_root>/<pid>/net/{tcp,tcp6,udp,udp6,unix}`) and returns
/// its kind (`Ipv4`, `Ipv6` or `Unix`) and, for a connected IP socket, the peer as `ip:port`
/// (IPv6 in Falco's form, without brackets). `None` when the inode is in none of them (another
/// family, or the socket closed meanwhile). Meant for the rare case where fd 0, 1 or 2 is a
/// socket: it reads whole tables.
pub fn refine_socket_fd(
    proc_root: &Path,
    pid: i32,
    inode: u64,
) -> Option<(FdKind, Option<String>)> {
    if inode == 0 {
        return None;
    }
    let net = proc_root.join(pid.to_string()).join("net");
    let mut entries = Vec::new();
    for (name, family, proto) in [
        ("tcp", Family::V4, Proto::Tcp),
        ("tcp6", Family::V6, Proto::Tcp),
        ("udp", Family::V4, Proto::Udp),
        ("udp6", Family::V6, Proto::Udp),
    ] {
        let Ok(text) = std::fs::read_to_string(net.join(name)) else {
            continue;
        };
        entries.clear();
        procnet::parse_inet_table(&text, family, proto, &mut entries);
        if let Some(e) = entries.iter().find(|e| e.inode == inode) {
            let local = unmap(e.local);
            let remote = unmap(e.remote);
            let kind = match (e.family, local.is_ipv4()) {
                (Family::V4, _) | (_, true) => FdKind::Ipv4,
                _ => FdKind::Ipv6,
            };
            let peer = (e.rport != 0).then(|| falco_endpoint(remote, e.rport));
            return Some((kind, peer));
        }
    }
    let text = std::fs::read_to_string(net.join("unix")).ok()?;
    procnet::unix_table_has_inode(&text, inode).then_some((FdKind::Unix, None))
}

/// How often at most a `sockets_unattributed` summary is emitted.
pub const UNATTRIBUTED_REPORT_PERIOD: Duration = Duration::from_secs(60);

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
        event.internal = Some(Box::new(crate::event::Internal {
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
pub fn spawn_sockets(
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
            let mut entries = Vec::new();
            let mut out = Vec::new();
            while !shutdown.load(Ordering::Relaxed) {
                let started = Instant::now();
                source.poll(&mut entries, tracker.has_pending());
                let snapshot = tables.snapshot();
                tracker.poll(&entries, &snapshot, &mut out);
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

/// When the collector polls next: every `interval`, and during a trigger window every
/// `trigger_spacing` (or the duration of the last poll, if longer) after the end of the last
/// poll.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    interval: Duration,
    spacing: Duration,
    window: Duration,
    last_start: Option<Instant>,
    last_end: Option<Instant>,
    last_took: Duration,
    burst_until: Option<Instant>,
}

impl PollSchedule {
    /// The schedule of a collector with this configuration; the first poll is due at once.
    pub fn new(config: &SocketsConfig) -> PollSchedule {
        PollSchedule {
            interval: config.interval.max(Duration::from_millis(1)),
            spacing: config.trigger_spacing,
            window: config.trigger_window,
            last_start: None,
            last_end: None,
            last_took: Duration::ZERO,
            burst_until: None,
        }
    }

    /// Records a poll that ran from `started` to `finished`.
    pub fn polled(&mut self, started: Instant, finished: Instant) {
        self.last_start = Some(started);
        self.last_end = Some(finished);
        self.last_took = finished.saturating_duration_since(started);
    }

    /// Records a trigger at `now`: polls follow every spacing until `now + window`.
    pub fn triggered(&mut self, now: Instant) {
        self.burst_until = Some(now + self.window);
    }

    /// When the next poll is due, as seen at `now`.
    pub fn next_poll(&self, now: Instant) -> Instant {
        let (Some(start), Some(end)) = (self.last_start, self.last_end) else {
            return now;
        };
        let regular = start + self.interval;
        match self.burst_until {
            Some(until) if now < until => regular.min(end + self.spacing.max(self.last_took)),
            _ => regular,
        }
    }
}

#[cfg(test)]
mod tests;
