//! Reading the socket tables of the monitor's network namespace: `sock_diag` dumps where the
//! kernel has them, `/proc/net` text otherwise, and TCP connections dumped again only when the
//! namespace's TCP open counters moved.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::warn;

use super::netlink;
use crate::collect::proc::KeptFile;
use crate::fasthash::KeyedFxBuild;
use crate::procfs::net::{self as procnet, Family, Proto, SockEntry, tcp_state};

/// Longest time [`SocketSource::poll`] reuses TCP connections from its last full dump: a
/// safety net for a counter that did not move (a `TCP_REPAIR` socket, which needs
/// `CAP_NET_ADMIN`, is created without an open), and it forgets connections that closed.
pub const FULL_TCP_PERIOD: Duration = Duration::from_secs(5);

/// Longest time [`SocketSource::poll`] goes without dumping any table because the namespace's
/// socket counts and TCP open counters did not move (see [`SocketSource::poll`]).
pub const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// Counters of a [`SocketSource`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Polls that dumped every TCP socket.
    pub(crate) full_tcp_dumps: u64,
    /// Polls that dumped only TCP listeners (the TCP open counters had not moved).
    pub listener_only_dumps: u64,
    /// Polls that dumped nothing (no socket count and no TCP open counter had moved).
    pub quiet_polls: u64,
}

/// The closed connections of the last full TCP dump that the kernel still holds without a
/// process (no inode: `TIME_WAIT`, and `FIN_WAIT1`, `FIN_WAIT2`, `CLOSING`, `LAST_ACK` once
/// their socket was closed), so that [`SocketSource::poll`] hands each one on once.
///
/// Under a steady stream of short connections the kernel holds tens of thousands of them (a
/// `TIME_WAIT` lasts 60 s: 500 connections a second leave 30,000), and every copy of the table
/// (this source's last result and TCP cache, the tracker's last dump and known sockets) held
/// them all, poll after poll, although nothing about them changes until they go: about 300
/// bytes each, 40 MiB at that rate. Such a connection is now handed on by the first full dump
/// that shows it closed (one opened and closed between two polls is seen only so; one seen
/// before, established, is already known to the tracker, which then forgets it like any socket
/// gone) and afterwards only remembered here, by a 16-byte key of its addresses and ports
/// (whatever closing state it moves to): exact for IPv4, a keyed 128-bit SipHash digest of
/// them for IPv6.
#[derive(Debug, Default)]
struct ClosedConnections {
    /// Keys of the closed connections of the last complete full dump.
    previous: HashSet<u128, KeyedFxBuild>,
    /// Those of the dump in progress.
    current: HashSet<u128, KeyedFxBuild>,
    /// The keys of the IPv6 digest's two halves (random per process).
    v6: (RandomState, RandomState),
}

impl ClosedConnections {
    /// Bit 127 set: an IPv6 digest (an IPv4 key uses bits 0-95 only).
    const V6: u128 = 1 << 127;

    fn key(&self, e: &SockEntry) -> u128 {
        match (e.local, e.remote) {
            (IpAddr::V4(local), IpAddr::V4(remote)) => {
                u128::from(u32::from(local)) << 64
                    | u128::from(e.lport) << 48
                    | u128::from(u32::from(remote)) << 16
                    | u128::from(e.rport)
            }
            _ => {
                let tuple = (e.local, e.lport, e.remote, e.rport);
                let high = self.v6.0.hash_one(tuple);
                let low = self.v6.1.hash_one(tuple);
                Self::V6 | u128::from(high) << 64 | u128::from(low)
            }
        }
    }

    /// Whether the dump in progress hands `e` on: anything but a closed TCP connection
    /// without a process, and one the last full dump did not show.
    fn keep(&mut self, e: &SockEntry) -> bool {
        let closed = e.proto == Proto::Tcp
            && e.inode == 0
            && matches!(
                e.state,
                tcp_state::TIME_WAIT
                    | tcp_state::FIN_WAIT1
                    | tcp_state::FIN_WAIT2
                    | tcp_state::CLOSING
                    | tcp_state::LAST_ACK
            );
        if !closed {
            return true;
        }
        let key = self.key(e);
        self.current.insert(key);
        !self.previous.contains(&key)
    }

    /// The dump in progress is complete: the next is compared with it. Room held after a
    /// burst is given back once the sets are mostly empty.
    fn finish(&mut self) {
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.clear();
        let wanted = self.previous.len().max(1024);
        if self.current.capacity() > 4 * wanted {
            self.current.shrink_to(wanted);
            self.previous.shrink_to(wanted);
        }
    }

    /// The dump in progress failed: what it saw is forgotten (the next one compares with the
    /// last complete one).
    fn abandon(&mut self) {
        self.current.clear();
    }
}

/// Reads the socket tables of the monitor's network namespace.
#[derive(Debug)]
pub struct SocketSource {
    proc_root: PathBuf,
    diag: Option<netlink::DiagSocket>,
    /// Tables for which `sock_diag` failed and `/proc/net` is used instead.
    text_fallback: HashSet<&'static str>,
    text: String,
    /// What [`SocketSource::poll`] returns, laid out as: the TCP sockets other than listeners
    /// of the last full TCP dump (the first `tcp_len`), then the TCP listeners, UDP, raw and
    /// packet sockets of the last dump. A listener-only dump replaces what follows the first
    /// part; a quiet poll returns it unchanged. (One copy of the table: there used to be a
    /// copy of each part besides the result, and the caller's result.)
    entries: Vec<SockEntry>,
    tcp_len: usize,
    /// The listeners of a full TCP dump, set aside while it is read.
    listeners: Vec<SockEntry>,
    /// `ActiveOpens` and `PassiveOpens` read before the last full TCP dump.
    tcp_opens: Option<(u64, u64)>,
    /// When the last full one-walk TCP dump was made.
    last_full_tcp: Option<Instant>,
    /// The namespace's socket counts (`sockstat`, `sockstat6`) and TCP open counters read
    /// before the last poll that dumped, when it was, and what it returned.
    last_counts: Option<(Vec<u64>, (u64, u64))>,
    last_dump: Option<Instant>,
    /// What [`SocketSource::poll`]'s full TCP dumps hand on of the closed connections.
    closed: ClosedConnections,
    /// `net/snmp`, `net/sockstat` and `net/sockstat6` of this thread's namespace, kept open.
    snmp: KeptFile,
    sockstat: [KeptFile; 2],
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
        // The namespace of the calling thread (the one whose `sock_diag` socket dumps);
        // `net` (the main thread's) where the proc root has no `thread-self` (a fixture).
        let net_dir = if proc_root.join("thread-self/net").exists() {
            proc_root.join("thread-self/net")
        } else {
            proc_root.join("net")
        };
        SocketSource {
            proc_root: proc_root.to_path_buf(),
            diag,
            text_fallback: HashSet::new(),
            text: String::new(),
            entries: Vec::new(),
            tcp_len: 0,
            listeners: Vec::new(),
            tcp_opens: None,
            last_full_tcp: None,
            last_counts: None,
            last_dump: None,
            closed: ClosedConnections::default(),
            snmp: KeptFile::new(net_dir.join("snmp")),
            sockstat: [
                KeptFile::new(net_dir.join("sockstat")),
                KeptFile::new(net_dir.join("sockstat6")),
            ],
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
    ///
    /// Before any dump it reads the namespace's socket counts (`sockets: used` and every
    /// protocol's `inuse` in `/proc/net/sockstat` and `sockstat6`: a socket created, bound,
    /// listening, connected or closed moves at least one of them) with the TCP open counters.
    /// When none moved since the last poll that dumped, no socket came or went: the poll
    /// returns that poll's result without dumping anything, unless `force_full_tcp` is set or
    /// that dump is older than [`QUIET_PERIOD`]. An idle task so costs three small reads per
    /// poll. (A socket closed and another opened between two polls leaves the counts equal:
    /// the new one is seen by the next dump, at most [`QUIET_PERIOD`] later, if it still
    /// exists; the TCP open counters still catch every new connection at once.)
    ///
    /// A closed connection the kernel holds without a process (`TIME_WAIT`, ...) is in the
    /// result of the first full TCP dump that shows it only (see [`ClosedConnections`]): the tracker
    /// has it from then on.
    pub fn poll(&mut self, force_full_tcp: bool) -> &[SockEntry] {
        let counts = self.read_socket_counts();
        let opens = self.read_tcp_opens();
        let now = Instant::now();
        let read = counts.zip(opens);
        if !force_full_tcp
            && read.is_some()
            && read == self.last_counts
            && self
                .last_dump
                .is_some_and(|at| now.saturating_duration_since(at) < QUIET_PERIOD)
        {
            self.stats.quiet_polls += 1;
            return &self.entries;
        }
        self.dump(opens, force_full_tcp);
        self.last_counts = read;
        self.last_dump = Some(now);
        &self.entries
    }

    /// The socket counts of this thread's network namespace: `sockets: used` and the `inuse`
    /// of every protocol in `sockstat` and `sockstat6` (the namespace's own numbers; the
    /// memory, orphan and allocation figures are global or move without a socket coming or
    /// going, and are left out). `None` when `sockstat` cannot be read.
    fn read_socket_counts(&mut self) -> Option<Vec<u64>> {
        let mut counts = Vec::with_capacity(12);
        for (i, file) in self.sockstat.iter_mut().enumerate() {
            self.text.clear();
            match file.read_into(&mut self.text) {
                Ok(()) => procnet::socket_counts(&self.text, &mut counts),
                // IPv6 may be disabled; without sockstat there is nothing to compare.
                Err(_) if i == 1 => {}
                Err(_) => return None,
            }
        }
        Some(counts)
    }

    fn dump(&mut self, opens: Option<(u64, u64)>, force_full_tcp: bool) {
        let recent = self
            .last_full_tcp
            .is_some_and(|at| at.elapsed() < FULL_TCP_PERIOD);
        if !force_full_tcp && recent && opens.is_some() && opens == self.tcp_opens {
            self.entries.truncate(self.tcp_len);
            if let Some(diag) = self.diag.as_mut()
                && !self.text_fallback.contains("tcp+tcp6")
                && diag.dump_tcp_listeners(&mut self.entries).is_ok()
            {
                self.stats.listener_only_dumps += 1;
                let mut entries = std::mem::take(&mut self.entries);
                self.collect_rest(&mut entries);
                self.entries = entries;
                return;
            }
        }
        self.tcp_opens = opens;
        self.stats.full_tcp_dumps += 1;
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        if self.dump_tcp_once(&mut entries) {
            self.last_full_tcp = Some(Instant::now());
        } else {
            self.last_full_tcp = None;
        }
        self.collect_rest(&mut entries);
        self.entries = entries;
    }

    /// A full TCP dump for [`SocketSource::poll`] into the empty `entries`: connections first
    /// (each closed one once, see [`ClosedConnections`]), then listeners; `tcp_len` is where the
    /// listeners start. Returns whether it came from the one-walk `sock_diag` dump (only then
    /// may the next polls re-dump the listeners alone).
    fn dump_tcp_once(&mut self, entries: &mut Vec<SockEntry>) -> bool {
        if let Some(diag) = self.diag.as_mut()
            && !self.text_fallback.contains("tcp+tcp6")
        {
            let closed = &mut self.closed;
            let listeners = &mut self.listeners;
            listeners.clear();
            let result = diag.dump_tcp_all_kept(entries, |entry| {
                if entry.state == tcp_state::LISTEN {
                    listeners.push(*entry);
                    return false;
                }
                closed.keep(entry)
            });
            match result {
                Ok(()) => {
                    self.closed.finish();
                    self.tcp_len = entries.len();
                    entries.append(&mut self.listeners);
                    return true;
                }
                Err(error) => {
                    entries.clear();
                    self.closed.abandon();
                    warn!(%error, "one-walk TCP dump failed; dumping each family");
                    self.text_fallback.insert("tcp+tcp6");
                }
            }
        }
        self.collect_inet(Family::V4, Proto::Tcp, "tcp", entries);
        self.collect_inet(Family::V6, Proto::Tcp, "tcp6", entries);
        let closed = &mut self.closed;
        entries.retain(|entry| closed.keep(entry));
        self.closed.finish();
        self.tcp_len = 0;
        false
    }

    /// Counters of [`SocketSource::poll`].
    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// The TCP open counters of this thread's network namespace: the one the `sock_diag`
    /// socket, created by this thread, dumps (`/proc/net` is that of the main thread).
    fn read_tcp_opens(&mut self) -> Option<(u64, u64)> {
        self.text.clear();
        self.snmp.read_into(&mut self.text).ok()?;
        procnet::tcp_opens(&self.text)
    }

    /// Appends the TCP sockets of both families, all of them.
    fn collect_tcp(&mut self, out: &mut Vec<SockEntry>) {
        if let Some(diag) = self.diag.as_mut()
            && !self.text_fallback.contains("tcp+tcp6")
        {
            let before = out.len();
            match diag.dump_tcp_all(out) {
                Ok(()) => return,
                Err(error) => {
                    out.truncate(before);
                    warn!(%error, "one-walk TCP dump failed; dumping each family");
                    self.text_fallback.insert("tcp+tcp6");
                }
            }
        }
        self.collect_inet(Family::V4, Proto::Tcp, "tcp", out);
        self.collect_inet(Family::V6, Proto::Tcp, "tcp6", out);
    }

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
        self.text.clear();
        let path = self.proc_root.join("net").join(name);
        // A missing table (IPv6 disabled, no packet support) is simply empty.
        if read_into(&path, &mut self.text).is_ok() {
            parse(&self.text, out);
        }
    }
}

/// Reads a small `/proc` file into `text` with plain reads (no size query or seek, which a
/// `/proc` file answers with 0 anyway).
fn read_into(path: &Path, text: &mut String) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let mut bytes = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(())
}
