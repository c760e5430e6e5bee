//! The event of a tracked socket: `connect`, `accept`, `listen` or `socket`, with Falco's
//! `fd.*` fields, and the owner's process and container.

use std::net::IpAddr;

use super::SocketTracker;
use super::owners::{OwnerRead, OwnerView};
use super::tracker::{Known, Role};
use crate::collect::shared::Tables;
use crate::event::{Collector, Event, EventType, Fd, FdKind};
use crate::procfs::net::{Family, Proto, unmap};

/// `ip:port` the way Falco prints it: IPv6 addresses without brackets (`::1:8080`).
pub(crate) fn falco_endpoint(ip: IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

/// The `fd.l4proto` of a table.
fn l4proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Raw | Proto::Packet => "raw",
    }
}

impl SocketTracker {
    /// The event for a socket; `None` when it must not be reported (an excluded owner).
    pub(super) fn build_event(
        &self,
        known: &Known,
        pid: Option<i32>,
        tables: &Tables,
    ) -> Option<Event> {
        let e = &known.entry;
        let (evt_type, mut fd) = match known.role {
            Role::Listen => {
                let local = unmap(e.local);
                (
                    EventType::Listen,
                    Fd {
                        kind: Some(ip_kind(local)),
                        name: Some(falco_endpoint(local, e.lport)),
                        l4proto: Some(l4proto(e.proto).to_string()),
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
                        l4proto: Some(l4proto(e.proto).to_string()),
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
                        // same pid): read here.
                        return self.with_read_owner(event, key.pid, tables);
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
            None => {
                if let Some(pid) = pid {
                    return self.with_read_owner(event, pid, tables);
                }
            }
        }
        Some(event)
    }

    /// `event` with its owner `pid` as read from `/proc` (procscan has not read it yet; see
    /// [`SocketTracker::read_owner`]); without a process when it is gone, `None` when it is
    /// the monitor's.
    fn with_read_owner(&self, mut event: Event, pid: i32, tables: &Tables) -> Option<Event> {
        match self.read_owner(pid, tables) {
            Some(OwnerRead::Process(process, container)) => {
                event.proc = Some(process);
                event.container = container;
            }
            Some(OwnerRead::Excluded) => return None,
            None => {}
        }
        Some(event)
    }
}

fn ip_kind(ip: IpAddr) -> FdKind {
    if ip.is_ipv4() {
        FdKind::Ipv4
    } else {
        FdKind::Ipv6
    }
}
