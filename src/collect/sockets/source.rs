//! Reading the socket tables of the monitor's network namespace: `sock_diag` dumps where the
//! kernel has them, `/proc/net` text otherwise, and TCP connections dumped again only when the
//! namespace's TCP open counters moved.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::warn;

use super::netlink;
use crate::procfs::net::{self as procnet, Family, Proto, SockEntry, tcp_state};

/// Longest time [`SocketSource::poll`] reuses TCP connections from its last full dump: a
/// safety net for a counter that did not move (a `TCP_REPAIR` socket, which needs
/// `CAP_NET_ADMIN`, is created without an open), and it forgets connections that closed.
pub const FULL_TCP_PERIOD: Duration = Duration::from_secs(5);

/// Counters of a [`SocketSource`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Polls that dumped every TCP socket.
    pub(crate) full_tcp_dumps: u64,
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
