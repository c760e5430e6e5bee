//! The `/proc/net` socket tables: `tcp`, `tcp6`, `udp`, `udp6`, `raw`, `raw6` (one format),
//! `packet` and `unix`, and the TCP counters of `snmp`; and [`SockEntry`], one socket as a
//! table shows it (the `sock_diag` dumps of `collect::sockets::netlink` give the same entries).
//!
//! Addresses are printed by the kernel as native-endian 32-bit words in hex, so they are
//! decoded with `to_ne_bytes`; ports are plain hex numbers. Lines that do not parse are
//! skipped, never an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    pub(crate) sock_type: u16,
    /// Raw sockets: the IP protocol; packet sockets: the ethertype.
    pub(crate) protocol: u16,
}

impl SockEntry {
    /// An `AF_PACKET` socket: it has no addresses, ports or state.
    pub(crate) fn packet(sock_type: u16, protocol: u16, inode: u64, uid: u32) -> SockEntry {
        SockEntry {
            family: Family::Packet,
            proto: Proto::Packet,
            state: 0,
            local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            lport: 0,
            remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rport: 0,
            inode,
            uid,
            sock_type,
            protocol,
        }
    }
}

/// TCP states (include/net/tcp_states.h).
pub mod tcp_state {
    /// `TCP_ESTABLISHED`.
    pub const ESTABLISHED: u8 = 1;
    /// `TCP_SYN_SENT`.
    pub const SYN_SENT: u8 = 2;
    /// `TCP_SYN_RECV`.
    pub const SYN_RECV: u8 = 3;
    /// `TCP_FIN_WAIT1`.
    pub const FIN_WAIT1: u8 = 4;
    /// `TCP_FIN_WAIT2`.
    pub const FIN_WAIT2: u8 = 5;
    /// `TCP_TIME_WAIT`.
    pub const TIME_WAIT: u8 = 6;
    /// `TCP_CLOSE` (also an unconnected UDP socket).
    pub const CLOSE: u8 = 7;
    /// `TCP_LAST_ACK`.
    pub const LAST_ACK: u8 = 9;
    /// `TCP_LISTEN`.
    pub const LISTEN: u8 = 10;
    /// `TCP_CLOSING`.
    pub const CLOSING: u8 = 11;
    /// `TCP_NEW_SYN_RECV` (request sockets).
    pub const NEW_SYN_RECV: u8 = 12;
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to its IPv4 form.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Parses an address column (`0100007F:0016` or a 32-digit IPv6 form).
pub fn parse_addr(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = addr.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses `/proc/net/{tcp,tcp6,udp,udp6,raw,raw6}` text, appending entries to `out`.
pub fn parse_inet_table(text: &str, family: Family, proto: Proto, out: &mut Vec<SockEntry>) {
    for line in text.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let (Some(_sl), Some(local), Some(remote), Some(state)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode.
        let mut rest = cols.skip(3);
        let (Some(uid), Some(_timeout), Some(inode)) = (rest.next(), rest.next(), rest.next())
        else {
            continue;
        };
        let (Some((local, lport)), Some((remote, rport))) = (parse_addr(local), parse_addr(remote))
        else {
            continue;
        };
        let (Ok(state), Ok(uid), Ok(inode)) = (
            u8::from_str_radix(state, 16),
            uid.parse::<u32>(),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        let (sock_type, protocol) = match proto {
            Proto::Tcp => (libc::SOCK_STREAM as u16, 0),
            Proto::Udp => (libc::SOCK_DGRAM as u16, 0),
            // For raw sockets the kernel prints the protocol number as the local port.
            Proto::Raw | Proto::Packet => (libc::SOCK_RAW as u16, lport),
        };
        out.push(SockEntry {
            family,
            proto,
            state,
            local,
            lport,
            remote,
            rport,
            inode,
            uid,
            sock_type,
            protocol,
        });
    }
}

/// Parses `/proc/net/packet` text, appending entries to `out`.
pub fn parse_packet_table(text: &str, out: &mut Vec<SockEntry>) {
    for line in text.lines().skip(1) {
        // sk RefCnt Type Proto Iface R Rmem User Inode
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 9 {
            continue;
        }
        let (Ok(sock_type), Ok(protocol), Ok(uid), Ok(inode)) = (
            cols[2].parse::<u16>(),
            u16::from_str_radix(cols[3], 16),
            cols[7].parse::<u32>(),
            cols[8].parse::<u64>(),
        ) else {
            continue;
        };
        out.push(SockEntry::packet(sock_type, protocol, inode, uid));
    }
}

/// Whether `/proc/net/unix` text lists a socket with this inode.
pub fn unix_table_has_inode(text: &str, inode: u64) -> bool {
    // Num RefCount Protocol Flags Type St Inode Path
    text.lines().skip(1).any(|line| {
        line.split_whitespace()
            .nth(6)
            .and_then(|i| i.parse::<u64>().ok())
            == Some(inode)
    })
}

/// Appends the socket counts of a `/proc/net/sockstat` or `sockstat6` text to `out`:
/// `sockets: used` and the `inuse` figure of every protocol line except `FRAG`/`FRAG6`
/// (reassembly queues, not sockets), in file order. Memory, orphan, time-wait and allocation
/// figures are skipped: they move without a socket coming or going, or count other
/// namespaces too. A line that does not parse is skipped.
pub(crate) fn socket_counts(text: &str, out: &mut Vec<u64>) {
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        if proto.starts_with("FRAG") {
            continue;
        }
        let mut words = rest.split_whitespace();
        while let (Some(name), Some(value)) = (words.next(), words.next()) {
            if name == "inuse" || (proto == "sockets" && name == "used") {
                if let Ok(value) = value.parse() {
                    out.push(value);
                }
            }
        }
    }
}

/// `ActiveOpens` and `PassiveOpens` of the `Tcp:` lines of `/proc/net/snmp` (a header line
/// of names, then a line of values): every TCP connection of the namespace, IPv4 or IPv6,
/// started by `connect` or by a listener increments one of them.
pub fn tcp_opens(text: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let mut active = None;
    let mut passive = None;
    for (name, value) in names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
    {
        match name {
            "ActiveOpens" => active = value.parse().ok(),
            "PassiveOpens" => passive = value.parse().ok(),
            _ => {}
        }
    }
    Some((active?, passive?))
}

#[cfg(test)]
mod socket_count_tests {
    use super::*;

    #[test]
    fn socket_counts_keep_only_what_moves_with_a_socket() {
        let sockstat = "sockets: used 290\nTCP: inuse 5 orphan 1 tw 7 alloc 9 mem 12\n\
                        UDP: inuse 3 mem 2\nUDPLITE: inuse 0\nRAW: inuse 1\nFRAG: inuse 4 memory 9\n";
        let sockstat6 = "TCP6: inuse 2\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\n\
                         FRAG6: inuse 0 memory 0\n";
        let mut counts = Vec::new();
        socket_counts(sockstat, &mut counts);
        socket_counts(sockstat6, &mut counts);
        assert_eq!(counts, vec![290, 5, 3, 0, 1, 2, 1, 0, 0]);
        // Memory and time-wait figures move under traffic without a socket coming or going.
        let busier = sockstat.replace("tw 7", "tw 8").replace("mem 12", "mem 40");
        let mut again = Vec::new();
        socket_counts(&busier, &mut again);
        socket_counts(sockstat6, &mut again);
        assert_eq!(again, counts);
        // Hostile or truncated text never panics.
        let mut junk = Vec::new();
        socket_counts(
            "TCP: inuse\n: :\nUDP: inuse x mem\n\u{0}\u{ffff}",
            &mut junk,
        );
        assert!(junk.is_empty());
    }
}
