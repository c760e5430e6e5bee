//! The family and peer of a standard descriptor that is a socket (the reverse-shell signal),
//! from the socket tables of the process's network namespace.

use std::path::Path;

use super::event::falco_endpoint;
use crate::event::FdKind;
use crate::procfs::net::{self as procnet, Family, Proto, unmap};

/// Refines a standard fd that is a socket: looks `inode` up in the socket tables of the
/// process's network namespace (`<proc_root>/<pid>/net/{tcp,tcp6,udp,udp6,unix}`) and returns
/// its kind (`Ipv4`, `Ipv6` or `Unix`) and, for a connected IP socket, the peer as `ip:port`
/// (IPv6 in Falco's form, without brackets). `None` when the inode is in none of them (another
/// family, or the socket closed meanwhile). Meant for the rare case where fd 0, 1 or 2 is a
/// socket: it reads whole tables.
pub(crate) fn refine_socket_fd(
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
