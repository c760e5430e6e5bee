//! Socket table dumps over `NETLINK_SOCK_DIAG`: `inet_diag` for TCP and UDP (IPv4 and IPv6)
//! and `packet_diag` for `AF_PACKET` sockets.
//!
//! A dump needs no privilege in the caller's own network namespace and returns binary records,
//! which is cheaper than formatting and parsing `/proc/net/*` text. Requests ask for no
//! extensions (`idiag_ext = 0`), so each socket costs one fixed 72-byte record. The parsers
//! ([`parse_messages`], [`parse_inet_record`], [`parse_packet_record`]) are separate from the I/O so they can be tested
//! against captured messages; they never panic on short or malformed input, they stop at the
//! first record that does not fit.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::procfs::net::{Family, Proto, SockEntry};

/// `NETLINK_SOCK_DIAG` (linux/netlink.h).
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCPDIAG_GETSOCK` (linux/inet_diag.h): the older request, whose family may be `AF_UNSPEC`.
const TCPDIAG_GETSOCK: u16 = 18;
/// `NLM_F_REQUEST | NLM_F_DUMP` (linux/netlink.h).
const DUMP_FLAGS: u16 = 0x1 | 0x300;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
const NLMSG_DONE: u16 = 3;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Size of `struct inet_diag_msg`.
const INET_DIAG_MSG_LEN: usize = 72;
/// Size of `struct packet_diag_msg`.
const PACKET_DIAG_MSG_LEN: usize = 16;
/// The TCP states dumped (`idiag_states` is a bit mask indexed by state): every state the
/// tracker reports, which leaves out handshakes in progress on the server side (`SYN_RECV`,
/// `NEW_SYN_RECV`: request sockets, which a SYN flood multiplies) and `BOUND_INACTIVE` (13,
/// Linux 6.8+: bound, never listening or connected sockets, whose dump walks the whole bind
/// hash table).
/// `CLOSE` is kept: it is also the state of every UDP socket that is not connected.
const DUMP_STATES: u32 = (1 << 1) // ESTABLISHED
    | (1 << 2) // SYN_SENT
    | (1 << 4) // FIN_WAIT1
    | (1 << 5) // FIN_WAIT2
    | (1 << 6) // TIME_WAIT
    | (1 << 7) // CLOSE
    | (1 << 8) // CLOSE_WAIT
    | (1 << 9) // LAST_ACK
    | (1 << 10) // LISTEN
    | (1 << 11); // CLOSING

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiagError {
    /// A socket or I/O call failed.
    #[error("sock_diag {what}: {source}")]
    Io {
        /// The table being dumped.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The kernel answered with an error (for example `ENOENT` when the diag module for this
    /// protocol is not built): the caller falls back to `/proc/net`.
    #[error("sock_diag {what}: the kernel answered errno {errno}")]
    Kernel {
        /// The table being dumped.
        what: &'static str,
        /// The positive errno.
        errno: i32,
    },
    /// The answer could not be parsed.
    #[error("sock_diag {what}: malformed answer")]
    Malformed {
        /// The table being dumped.
        what: &'static str,
    },
}

/// One `NETLINK_SOCK_DIAG` socket, reused for every dump.
#[derive(Debug)]
pub(crate) struct DiagSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
}

/// The result of parsing a chunk of a dump.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More messages follow.
    More,
    /// `NLMSG_DONE` was seen.
    Done,
    /// `NLMSG_ERROR` with this positive errno.
    Error(i32),
}

impl DiagSocket {
    /// Opens the socket.
    pub(crate) fn open() -> io::Result<DiagSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(DiagSocket {
            fd,
            buf: vec![0; 64 * 1024],
            seq: 0,
        })
    }

    /// Dumps the TCP or UDP sockets of one family into `out`.
    pub(crate) fn dump_inet(
        &mut self,
        family: Family,
        proto: Proto,
        out: &mut Vec<SockEntry>,
    ) -> Result<(), DiagError> {
        let what = table_name(family, proto);
        let af = match family {
            Family::V4 => libc::AF_INET as u8,
            Family::V6 => libc::AF_INET6 as u8,
            Family::Packet => return Err(DiagError::Malformed { what }),
        };
        let protocol = match proto {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
            _ => return Err(DiagError::Malformed { what }),
        };
        let mut body = [0u8; 56];
        body[0] = af;
        body[1] = protocol;
        body[4..8].copy_from_slice(&DUMP_STATES.to_ne_bytes());
        self.request(what, &body)?;
        self.receive(
            what,
            |payload, out: &mut Vec<SockEntry>| parse_inet_record(payload, proto, out),
            out,
        )
    }

    /// Dumps the TCP sockets of both families into `out` in one walk of the kernel's tables,
    /// with the older `TCPDIAG_GETSOCK` request and `AF_UNSPEC` (a `SOCK_DIAG_BY_FAMILY`
    /// request names one family, and each walks every TCP socket of the namespace).
    pub(crate) fn dump_tcp_all(&mut self, out: &mut Vec<SockEntry>) -> Result<(), DiagError> {
        self.dump_tcp_states(DUMP_STATES, out, |_| true)
    }

    /// Like [`DiagSocket::dump_tcp_all`], keeping only the entries `keep` accepts (as they are
    /// parsed: the others never take room in `out`).
    pub(crate) fn dump_tcp_all_kept(
        &mut self,
        out: &mut Vec<SockEntry>,
        keep: impl FnMut(&SockEntry) -> bool,
    ) -> Result<(), DiagError> {
        self.dump_tcp_states(DUMP_STATES, out, keep)
    }

    /// Like [`DiagSocket::dump_tcp_all`], listening sockets only: the kernel then walks only
    /// its (small) listening hash table, not the established one.
    pub(crate) fn dump_tcp_listeners(&mut self, out: &mut Vec<SockEntry>) -> Result<(), DiagError> {
        self.dump_tcp_states(1 << crate::procfs::net::tcp_state::LISTEN, out, |_| true)
    }

    fn dump_tcp_states(
        &mut self,
        states: u32,
        out: &mut Vec<SockEntry>,
        mut keep: impl FnMut(&SockEntry) -> bool,
    ) -> Result<(), DiagError> {
        let what = "tcp+tcp6";
        // struct inet_diag_req: family, src_len, dst_len, ext, sockid (48), states, dbs.
        let mut body = [0u8; 60];
        body[0] = libc::AF_UNSPEC as u8;
        body[52..56].copy_from_slice(&states.to_ne_bytes());
        self.request_type(what, TCPDIAG_GETSOCK, &body)?;
        self.receive(
            what,
            |payload, out: &mut Vec<SockEntry>| {
                let before = out.len();
                parse_inet_record(payload, Proto::Tcp, out);
                if out.get(before).is_some_and(|entry| !keep(entry)) {
                    out.truncate(before);
                }
            },
            out,
        )
    }

    /// Dumps the `AF_PACKET` sockets into `out`.
    pub(crate) fn dump_packet(&mut self, out: &mut Vec<SockEntry>) -> Result<(), DiagError> {
        let what = "packet";
        let mut body = [0u8; 20];
        body[0] = libc::AF_PACKET as u8;
        self.request(what, &body)?;
        self.receive(what, parse_packet_record, out)
    }

    fn request(&mut self, what: &'static str, body: &[u8]) -> Result<(), DiagError> {
        self.request_type(what, SOCK_DIAG_BY_FAMILY, body)
    }

    fn request_type(
        &mut self,
        what: &'static str,
        kind: u16,
        body: &[u8],
    ) -> Result<(), DiagError> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        let len = u32::try_from(NLMSG_HDRLEN + body.len()).unwrap_or(u32::MAX);
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&DUMP_FLAGS.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: an all-zero `sockaddr_nl` is valid (pid 0 is the kernel, no groups).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `addr` are valid for the lengths passed and outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(DiagError::Io {
                what,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn receive(
        &mut self,
        what: &'static str,
        mut record: impl FnMut(&[u8], &mut Vec<SockEntry>),
        out: &mut Vec<SockEntry>,
    ) -> Result<(), DiagError> {
        loop {
            // SAFETY: `buf` is valid for writes of its full length for the whole call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let source = io::Error::last_os_error();
                if source.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(DiagError::Io { what, source });
            }
            let n = usize::try_from(n).unwrap_or(0);
            let chunk = &self.buf[..n.min(self.buf.len())];
            match parse_messages(chunk, self.seq, &mut record, out) {
                Some(Parsed::More) => {}
                Some(Parsed::Done) => return Ok(()),
                Some(Parsed::Error(errno)) => return Err(DiagError::Kernel { what, errno }),
                None => return Err(DiagError::Malformed { what }),
            }
        }
    }
}

fn table_name(family: Family, proto: Proto) -> &'static str {
    match (family, proto) {
        (Family::V4, Proto::Tcp) => "tcp",
        (Family::V6, Proto::Tcp) => "tcp6",
        (Family::V4, Proto::Udp) => "udp",
        (Family::V6, Proto::Udp) => "udp6",
        _ => "other",
    }
}

/// Walks the netlink messages of one received chunk, handing each record's payload to
/// `record`. Messages of another sequence number (stale answers) are skipped. Returns `None`
/// when the chunk is malformed.
pub fn parse_messages(
    chunk: &[u8],
    seq: u32,
    record: &mut impl FnMut(&[u8], &mut Vec<SockEntry>),
    out: &mut Vec<SockEntry>,
) -> Option<Parsed> {
    let mut rest = chunk;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => return Some(Parsed::Done),
                NLMSG_ERROR => {
                    let errno = payload
                        .get(0..4)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(-libc::EIO);
                    if errno == 0 {
                        // An acknowledgement, not an error.
                        return Some(Parsed::Done);
                    }
                    return Some(Parsed::Error(-errno));
                }
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => record(payload, out),
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    Some(Parsed::More)
}

/// Parses one `struct inet_diag_msg` into an entry.
pub fn parse_inet_record(payload: &[u8], proto: Proto, out: &mut Vec<SockEntry>) {
    if payload.len() < INET_DIAG_MSG_LEN {
        return;
    }
    let family = payload[0];
    let state = payload[1];
    let sport = u16::from_be_bytes([payload[4], payload[5]]);
    let dport = u16::from_be_bytes([payload[6], payload[7]]);
    let (family, local, remote) = if i32::from(family) == libc::AF_INET {
        let src = Ipv4Addr::new(payload[8], payload[9], payload[10], payload[11]);
        let dst = Ipv4Addr::new(payload[24], payload[25], payload[26], payload[27]);
        (Family::V4, IpAddr::V4(src), IpAddr::V4(dst))
    } else if i32::from(family) == libc::AF_INET6 {
        let mut src = [0u8; 16];
        src.copy_from_slice(&payload[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&payload[24..40]);
        (
            Family::V6,
            IpAddr::V6(Ipv6Addr::from(src)),
            IpAddr::V6(Ipv6Addr::from(dst)),
        )
    } else {
        return;
    };
    let uid = u32::from_ne_bytes([payload[64], payload[65], payload[66], payload[67]]);
    let inode = u32::from_ne_bytes([payload[68], payload[69], payload[70], payload[71]]);
    out.push(SockEntry {
        family,
        proto,
        state,
        local,
        lport: sport,
        remote,
        rport: dport,
        inode: u64::from(inode),
        uid,
        sock_type: if proto == Proto::Tcp {
            libc::SOCK_STREAM as u16
        } else {
            libc::SOCK_DGRAM as u16
        },
        protocol: 0,
    });
}

/// Parses one `struct packet_diag_msg` into an entry.
pub fn parse_packet_record(payload: &[u8], out: &mut Vec<SockEntry>) {
    if payload.len() < PACKET_DIAG_MSG_LEN || i32::from(payload[0]) != libc::AF_PACKET {
        return;
    }
    let sock_type = u16::from(payload[1]);
    // The kernel stores `ntohs(po->num)`: host byte order.
    let protocol = u16::from_ne_bytes([payload[2], payload[3]]);
    let inode = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    out.push(SockEntry::packet(sock_type, protocol, u64::from(inode), 0));
}
