//! Unit tests of the sockets collector: the `/proc/net` and `sock_diag` parsers against
//! tables captured from a real kernel (`fixtures/capture.py` made them in a fresh network
//! namespace; `fixtures/inodes.json` lists what it created), the diffing tracker over those
//! entries with a fixture proc root for ownership, the std-fd refinement, and one live dump.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use super::netlink::{self, Parsed};
use super::*;
use crate::collect::shared::{Exclusion, MemberInfo, ProcEntry, ProcKey, Tables};
use crate::event::{EventType, FdKind, Process};
use crate::procfs::net::{self as procnet, Family, Proto, tcp_state, unmap};

const TCP: &str = include_str!("fixtures/tcp.txt");
const TCP6: &str = include_str!("fixtures/tcp6.txt");
const UDP: &str = include_str!("fixtures/udp.txt");
const UDP6: &str = include_str!("fixtures/udp6.txt");
const RAW: &str = include_str!("fixtures/raw.txt");
const RAW6: &str = include_str!("fixtures/raw6.txt");
const PACKET: &str = include_str!("fixtures/packet.txt");
const UNIX: &str = include_str!("fixtures/unix.txt");
const DIAG_TCP4: &[u8] = include_bytes!("fixtures/diag_tcp4.bin");
const DIAG_TCP6: &[u8] = include_bytes!("fixtures/diag_tcp6.bin");
const DIAG_UDP4: &[u8] = include_bytes!("fixtures/diag_udp4.bin");
const DIAG_PACKET: &[u8] = include_bytes!("fixtures/diag_packet.bin");

/// The task's test address.
const TASK_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const DOC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

/// Inodes and ports from `fixtures/inodes.json`.
mod ino {
    pub const LISTEN4: u64 = 212697;
    pub const CLIENT4: u64 = 212698;
    pub const SERVER4: u64 = 212699;
    pub const LISTEN6: u64 = 212702;
    pub const CLIENT6: u64 = 212703;
    pub const SERVER6: u64 = 212704;
    pub const LISTEN_DUAL: u64 = 212705;
    pub const CLIENT_DUAL: u64 = 212706;
    pub const SERVER_DUAL: u64 = 212707;
    pub const UDP_SERVER: u64 = 212708;
    pub const UDP_CLIENT: u64 = 212709;
    pub const UDP6_CLIENT: u64 = 212710;
    pub const RAW4: u64 = 212711;
    pub const RAW6: u64 = 212712;
    pub const PACKET: u64 = 212713;
    pub const PACKET_DGRAM: u64 = 212714;
    pub const UNIX: u64 = 212715;
    pub const CLIENT4_PORT: u16 = 51936;
    pub const TIME_WAIT_PORT: u16 = 51940;
    pub const CLIENT6_PORT: u16 = 47826;
    pub const CLIENT_DUAL_PORT: u16 = 33100;
    pub const UDP_CLIENT_PORT: u16 = 43914;
}

fn text_entries() -> Vec<SockEntry> {
    let mut out = Vec::new();
    procnet::parse_inet_table(TCP, Family::V4, Proto::Tcp, &mut out);
    procnet::parse_inet_table(TCP6, Family::V6, Proto::Tcp, &mut out);
    procnet::parse_inet_table(UDP, Family::V4, Proto::Udp, &mut out);
    procnet::parse_inet_table(UDP6, Family::V6, Proto::Udp, &mut out);
    procnet::parse_inet_table(RAW, Family::V4, Proto::Raw, &mut out);
    procnet::parse_inet_table(RAW6, Family::V6, Proto::Raw, &mut out);
    procnet::parse_packet_table(PACKET, &mut out);
    out
}

fn by_inode(entries: &[SockEntry], inode: u64) -> SockEntry {
    *entries
        .iter()
        .find(|e| e.inode == inode)
        .unwrap_or_else(|| panic!("inode {inode} not in {entries:#?}"))
}

#[test]
fn proc_net_text_tables_parse_addresses_ports_states_and_inodes() {
    let entries = text_entries();
    assert_eq!(entries.len(), 5 + 5 + 2 + 1 + 1 + 1 + 2);
    let listen = by_inode(&entries, ino::LISTEN4);
    assert_eq!(
        (listen.local, listen.lport, listen.state, listen.rport),
        (TASK_IP, 4444, tcp_state::LISTEN, 0)
    );
    let client = by_inode(&entries, ino::CLIENT4);
    assert_eq!(
        (client.local, client.lport, client.remote, client.rport),
        (TASK_IP, ino::CLIENT4_PORT, TASK_IP, 4444)
    );
    assert_eq!(client.state, tcp_state::ESTABLISHED);
    let time_wait = entries
        .iter()
        .find(|e| e.state == tcp_state::TIME_WAIT)
        .unwrap();
    assert_eq!(time_wait.inode, 0, "TIME_WAIT sockets have no inode");
    assert_eq!(time_wait.lport, ino::TIME_WAIT_PORT);
    let client6 = by_inode(&entries, ino::CLIENT6);
    assert_eq!(
        (client6.local, client6.lport, client6.remote, client6.rport),
        (DOC6, ino::CLIENT6_PORT, DOC6, 8080)
    );
    let mapped = by_inode(&entries, ino::SERVER_DUAL);
    assert_eq!(unmap(mapped.local), TASK_IP);
    assert!(matches!(mapped.local, IpAddr::V6(_)), "stored as printed");
    let udp = by_inode(&entries, ino::UDP_CLIENT);
    assert_eq!(
        (udp.remote, udp.rport, udp.lport),
        (
            IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
            80,
            ino::UDP_CLIENT_PORT
        )
    );
    assert_eq!(by_inode(&entries, ino::UDP_SERVER).lport, 53);
    let raw = by_inode(&entries, ino::RAW4);
    assert_eq!((raw.proto, raw.protocol), (Proto::Raw, 1));
    assert_eq!(by_inode(&entries, ino::RAW6).protocol, 58);
    let packet = by_inode(&entries, ino::PACKET);
    assert_eq!(
        (packet.sock_type, packet.protocol),
        (libc::SOCK_RAW as u16, 3)
    );
    let dgram = by_inode(&entries, ino::PACKET_DGRAM);
    assert_eq!(
        (dgram.sock_type, dgram.protocol),
        (libc::SOCK_DGRAM as u16, 0x0800)
    );
}

#[test]
fn proc_net_parsers_skip_garbage_lines() {
    let mut out = Vec::new();
    let text = "header\n   0: nonsense\n   1: 0100007F:zz 00000000:0000 0A\n\n   2: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
    procnet::parse_inet_table(text, Family::V4, Proto::Tcp, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].local, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!((out[0].lport, out[0].inode), (22, 77));
    procnet::parse_packet_table("sk\nffff 3 x\n", &mut out);
    assert_eq!(out.len(), 1);
}

fn diag_entries(bytes: &[u8], proto: Proto) -> Vec<SockEntry> {
    let mut out = Vec::new();
    let mut record = |payload: &[u8], out: &mut Vec<SockEntry>| {
        if proto == Proto::Packet {
            netlink::parse_packet_record(payload, out);
        } else {
            netlink::parse_inet_record(payload, proto, out);
        }
    };
    // The captures were made with sequence number 7.
    assert_eq!(
        netlink::parse_messages(bytes, 7, &mut record, &mut out),
        Some(Parsed::Done)
    );
    out
}

fn key_set(entries: &[SockEntry]) -> HashSet<(IpAddr, u16, IpAddr, u16, u8, u64)> {
    entries
        .iter()
        .map(|e| (e.local, e.lport, e.remote, e.rport, e.state, e.inode))
        .collect()
}

#[test]
fn sock_diag_answers_match_the_text_tables_of_the_same_moment() {
    let mut tcp = Vec::new();
    procnet::parse_inet_table(TCP, Family::V4, Proto::Tcp, &mut tcp);
    let diag_tcp = diag_entries(DIAG_TCP4, Proto::Tcp);
    assert_eq!(diag_tcp.len(), 5);
    assert_eq!(key_set(&diag_tcp), key_set(&tcp));

    let mut tcp6 = Vec::new();
    procnet::parse_inet_table(TCP6, Family::V6, Proto::Tcp, &mut tcp6);
    assert_eq!(
        key_set(&diag_entries(DIAG_TCP6, Proto::Tcp)),
        key_set(&tcp6)
    );

    let mut udp = Vec::new();
    procnet::parse_inet_table(UDP, Family::V4, Proto::Udp, &mut udp);
    assert_eq!(key_set(&diag_entries(DIAG_UDP4, Proto::Udp)), key_set(&udp));

    let mut packet = Vec::new();
    procnet::parse_packet_table(PACKET, &mut packet);
    let diag_packet = diag_entries(DIAG_PACKET, Proto::Packet);
    let pk = |v: &[SockEntry]| {
        v.iter()
            .map(|e| (e.inode, e.sock_type, e.protocol))
            .collect::<HashSet<_>>()
    };
    assert_eq!(pk(&diag_packet), pk(&packet));
}

#[test]
fn sock_diag_parser_rejects_truncated_and_reports_errors() {
    let mut out = Vec::new();
    let mut record = |p: &[u8], out: &mut Vec<SockEntry>| {
        netlink::parse_inet_record(p, Proto::Tcp, out);
    };
    // A header that claims more bytes than there are.
    assert_eq!(
        netlink::parse_messages(&DIAG_TCP4[..40], 7, &mut record, &mut out),
        None
    );
    // Answers to another request are skipped.
    assert_eq!(
        netlink::parse_messages(DIAG_TCP4, 8, &mut record, &mut out),
        Some(Parsed::More)
    );
    assert!(out.is_empty());
    // NLMSG_ERROR carrying -ENOENT (no diag module for the protocol).
    let mut error = Vec::new();
    error.extend_from_slice(&36u32.to_ne_bytes());
    error.extend_from_slice(&2u16.to_ne_bytes());
    error.extend_from_slice(&0u16.to_ne_bytes());
    error.extend_from_slice(&7u32.to_ne_bytes());
    error.extend_from_slice(&0u32.to_ne_bytes());
    error.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
    error.extend_from_slice(&[0u8; 16]);
    assert_eq!(
        netlink::parse_messages(&error, 7, &mut record, &mut out),
        Some(Parsed::Error(libc::ENOENT))
    );
    // Short records are ignored rather than read past their end.
    netlink::parse_inet_record(&[2u8; 40], Proto::Tcp, &mut out);
    netlink::parse_packet_record(&[17u8; 8], &mut out);
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Tracker

/// A fixture proc root: `<root>/<pid>/fd/<n> -> socket:[inode]` and `<root>/self -> <pid>`.
struct FixtureRoot {
    dir: tempfile::TempDir,
}

impl FixtureRoot {
    fn new(self_pid: i32) -> FixtureRoot {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(self_pid.to_string(), dir.path().join("self")).unwrap();
        std::fs::create_dir_all(dir.path().join(format!("{self_pid}/fd"))).unwrap();
        FixtureRoot { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives `pid` the sockets `inodes` as its fds 3, 4, ... in order.
    fn give_sockets(&self, pid: i32, inodes: &[u64]) {
        for (fd, &inode) in (3..).zip(inodes) {
            self.give(pid, fd, inode);
        }
    }

    fn give(&self, pid: i32, fd: u32, inode: u64) {
        let fd_dir = self.path().join(format!("{pid}/fd"));
        std::fs::create_dir_all(&fd_dir).unwrap();
        std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd_dir.join(fd.to_string()))
            .unwrap();
    }

    fn tracker(&self) -> SocketTracker {
        SocketTracker::new(SocketsConfig {
            proc_root: self.path().to_path_buf(),
            ..SocketsConfig::default()
        })
    }
}

fn add_process(tables: &mut Tables, pid: i32, name: &str, container: &str, excluded: bool) {
    let key = ProcKey {
        pid,
        start_ticks: 100 + pid as u64,
    };
    let id = tables.containers.intern(container, None);
    tables.containers.add_member(
        container,
        MemberInfo {
            key,
            cgroup: format!("/ecs/t/{container}"),
            mnt_ns: None,
            start_time: None,
        },
    );
    tables.processes.insert(
        key,
        ProcEntry {
            process: Arc::new(Process {
                pid,
                name: name.into(),
                ..Process::default()
            }),
            container_id: id,
            excluded: excluded.then_some(Exclusion::Monitor),
            exited_at: None,
        },
    );
}

fn find<'a>(events: &'a [Event], evt_type: EventType, name: &str) -> &'a Event {
    events
        .iter()
        .find(|e| {
            e.evt_type() == evt_type && e.fd.as_ref().and_then(|f| f.name.as_deref()) == Some(name)
        })
        .unwrap_or_else(|| {
            let seen: Vec<_> = events
                .iter()
                .map(|e| (e.evt_type(), e.fd.as_ref().and_then(|f| f.name.clone())))
                .collect();
            panic!("no {evt_type} {name} in {seen:#?}")
        })
}

#[test]
fn fixture_tables_become_connect_accept_listen_and_socket_events() {
    let root = FixtureRoot::new(9999);
    // The server (pid 10) owns the listeners and the accepted sockets; the client (pid 20)
    // owns the client ends; pid 30 owns the raw and packet sockets.
    root.give_sockets(
        10,
        &[
            ino::LISTEN4,
            ino::SERVER4,
            ino::LISTEN6,
            ino::SERVER6,
            ino::LISTEN_DUAL,
            ino::SERVER_DUAL,
            ino::UDP_SERVER,
        ],
    );
    root.give_sockets(
        20,
        &[
            ino::CLIENT4,
            ino::CLIENT6,
            ino::CLIENT_DUAL,
            ino::UDP_CLIENT,
            ino::UDP6_CLIENT,
        ],
    );
    root.give_sockets(30, &[ino::RAW4, ino::RAW6, ino::PACKET, ino::PACKET_DGRAM]);
    let mut tables = Tables::default();
    add_process(&mut tables, 10, "server", "app", false);
    add_process(&mut tables, 20, "client", "worker", false);
    add_process(&mut tables, 30, "sniffer", "worker", false);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    tracker.poll(&text_entries(), &tables, &mut out);

    let proc_name = |e: &Event| e.proc.as_ref().map(|p| p.name.clone());
    let container = |e: &Event| e.container.as_ref().map(|c| c.id.clone());

    let listen = find(&out, EventType::Listen, "198.51.100.1:4444");
    assert_eq!(proc_name(listen).as_deref(), Some("server"));
    assert_eq!(container(listen).as_deref(), Some("app"));
    let fd = listen.fd.as_ref().unwrap();
    assert_eq!((fd.sip, fd.sport), (Some(TASK_IP), Some(4444)));
    assert_eq!(fd.l4proto.as_deref(), Some("tcp"));
    assert_eq!(fd.inode, Some(ino::LISTEN4));
    find(&out, EventType::Listen, "2001:db8::1:8080");
    let dual = find(&out, EventType::Listen, ":::9000");
    assert_eq!(dual.fd.as_ref().unwrap().kind, Some(FdKind::Ipv6));
    let udp_listen = find(&out, EventType::Listen, "0.0.0.0:53");
    assert_eq!(
        udp_listen.fd.as_ref().unwrap().l4proto.as_deref(),
        Some("udp")
    );

    // Both ends of the loopback connection, each from its own side and its own owner.
    let tuple = format!("198.51.100.1:{}->198.51.100.1:4444", ino::CLIENT4_PORT);
    let connect = find(&out, EventType::Connect, &tuple);
    assert_eq!(proc_name(connect).as_deref(), Some("client"));
    assert_eq!(container(connect).as_deref(), Some("worker"));
    let cfd = connect.fd.as_ref().unwrap();
    assert_eq!(cfd.local_is_client, Some(true));
    assert_eq!(
        (cfd.cport, cfd.sport),
        (Some(ino::CLIENT4_PORT), Some(4444))
    );
    assert_eq!(cfd.kind, Some(FdKind::Ipv4));
    let accept = find(&out, EventType::Accept, &tuple);
    assert_eq!(proc_name(accept).as_deref(), Some("server"));
    assert_eq!(accept.fd.as_ref().unwrap().local_is_client, Some(false));
    assert_eq!(accept.fd.as_ref().unwrap().inode, Some(ino::SERVER4));

    // The connection already in TIME_WAIT: reported, without an owner.
    let tw = find(
        &out,
        EventType::Connect,
        &format!("198.51.100.1:{}->198.51.100.1:4444", ino::TIME_WAIT_PORT),
    );
    assert!(tw.proc.is_none() && tw.container.is_none(), "{tw:?}");
    assert_eq!(tw.fd.as_ref().unwrap().inode, None);

    // IPv6 in Falco's form, and a v4 client of a dual-stack listener seen as IPv4 on both ends.
    let v6 = format!("2001:db8::1:{}->2001:db8::1:8080", ino::CLIENT6_PORT);
    assert_eq!(
        find(&out, EventType::Connect, &v6)
            .fd
            .as_ref()
            .unwrap()
            .kind,
        Some(FdKind::Ipv6)
    );
    assert_eq!(
        proc_name(find(&out, EventType::Accept, &v6)).as_deref(),
        Some("server")
    );
    let dual_tuple = format!("198.51.100.1:{}->198.51.100.1:9000", ino::CLIENT_DUAL_PORT);
    find(&out, EventType::Connect, &dual_tuple);
    let dual_accept = find(&out, EventType::Accept, &dual_tuple);
    assert_eq!(dual_accept.fd.as_ref().unwrap().kind, Some(FdKind::Ipv4));
    assert_eq!(dual_accept.fd.as_ref().unwrap().cip, Some(TASK_IP));

    // A connected UDP socket is a connect to its peer.
    let udp = find(
        &out,
        EventType::Connect,
        &format!("169.254.170.2:{}->169.254.170.2:80", ino::UDP_CLIENT_PORT),
    );
    assert_eq!(udp.fd.as_ref().unwrap().l4proto.as_deref(), Some("udp"));
    assert_eq!(proc_name(udp).as_deref(), Some("client"));

    // Raw and packet sockets.
    let sockets: Vec<&Event> = out
        .iter()
        .filter(|e| e.evt_type() == EventType::Socket)
        .collect();
    assert_eq!(sockets.len(), 4);
    let arg = |e: &Event, k: &str| e.evt.arg(k).map(str::to_string);
    let raw4 = sockets
        .iter()
        .find(|e| e.fd.as_ref().unwrap().inode == Some(ino::RAW4))
        .unwrap();
    assert_eq!(arg(raw4, "domain").as_deref(), Some("AF_INET"));
    assert_eq!(arg(raw4, "type").as_deref(), Some("SOCK_RAW"));
    assert_eq!(arg(raw4, "protocol").as_deref(), Some("1"));
    assert_eq!(raw4.fd.as_ref().unwrap().l4proto.as_deref(), Some("raw"));
    assert_eq!(proc_name(raw4).as_deref(), Some("sniffer"));
    let dgram = sockets
        .iter()
        .find(|e| e.fd.as_ref().unwrap().inode == Some(ino::PACKET_DGRAM))
        .unwrap();
    assert_eq!(arg(dgram, "domain").as_deref(), Some("AF_PACKET"));
    assert_eq!(arg(dgram, "type").as_deref(), Some("SOCK_DGRAM"));

    // 4 listeners (3 TCP, 1 UDP), 3 TCP connects + 1 in TIME_WAIT + 2 UDP, 3 accepts, 4 raw
    // and packet sockets.
    assert_eq!(out.len(), 4 + 6 + 3 + 4, "{out:#?}");
    // The next poll of the same tables reports nothing.
    out.clear();
    tracker.poll(&text_entries(), &tables, &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

fn entry(state: u8, local: (IpAddr, u16), remote: (IpAddr, u16), inode: u64) -> SockEntry {
    SockEntry {
        family: Family::V4,
        proto: Proto::Tcp,
        state,
        local: local.0,
        lport: local.1,
        remote: remote.0,
        rport: remote.1,
        inode,
        uid: 0,
        sock_type: libc::SOCK_STREAM as u16,
        protocol: 0,
    }
}

const CRED: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2));

/// A TCP listener on the task's address and `port`.
fn listener(port: u16, inode: u64) -> SockEntry {
    entry(
        tcp_state::LISTEN,
        (TASK_IP, port),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        inode,
    )
}

#[test]
fn time_wait_of_an_attributed_connection_is_not_reported_again() {
    let root = FixtureRoot::new(9999);
    root.give(20, 3, 5001);
    let mut tables = Tables::default();
    add_process(&mut tables, 20, "curl", "app", false);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let open = entry(tcp_state::SYN_SENT, (TASK_IP, 40000), (CRED, 80), 5001);
    tracker.poll(&[open], &tables, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].evt_type(), EventType::Connect);
    assert_eq!(out[0].proc.as_ref().unwrap().name, "curl");
    out.clear();
    let established = SockEntry {
        state: tcp_state::ESTABLISHED,
        ..open
    };
    tracker.poll(&[established], &tables, &mut out);
    let time_wait = SockEntry {
        state: tcp_state::TIME_WAIT,
        inode: 0,
        ..open
    };
    tracker.poll(&[time_wait], &tables, &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn monitor_and_excluded_owners_are_not_reported() {
    let root = FixtureRoot::new(9999);
    root.give(9999, 7, 6001);
    root.give(40, 3, 6002);
    let mut tables = Tables::default();
    add_process(&mut tables, 40, "helper", "monitor", true);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let mine = entry(tcp_state::ESTABLISHED, (TASK_IP, 40001), (CRED, 80), 6001);
    let excluded = entry(tcp_state::ESTABLISHED, (TASK_IP, 40002), (CRED, 80), 6002);
    tracker.poll(&[mine, excluded], &tables, &mut out);
    tracker.poll(&[mine, excluded], &tables, &mut out);
    // Their TIME_WAIT afterwards is known too.
    let mine_tw = SockEntry {
        state: tcp_state::TIME_WAIT,
        inode: 0,
        ..mine
    };
    tracker.poll(&[mine_tw], &tables, &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn loopback_server_end_never_borrows_the_client_owner() {
    let root = FixtureRoot::new(9999);
    root.give(20, 3, 7001);
    let mut tables = Tables::default();
    add_process(&mut tables, 20, "client", "app", false);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let listener = listener(4444, 7000);
    let client = entry(
        tcp_state::ESTABLISHED,
        (TASK_IP, 45000),
        (TASK_IP, 4444),
        7001,
    );
    // The server end exists without a known owner (its fd is nowhere in the fixture root).
    let server = entry(
        tcp_state::ESTABLISHED,
        (TASK_IP, 4444),
        (TASK_IP, 45000),
        7002,
    );
    tracker.poll(&[listener, client, server], &tables, &mut out);
    tracker.poll(&[listener, client, server], &tables, &mut out);
    let accept = find(
        &out,
        EventType::Accept,
        "198.51.100.1:45000->198.51.100.1:4444",
    );
    assert!(accept.proc.is_none(), "{accept:?}");
    let connect = find(
        &out,
        EventType::Connect,
        "198.51.100.1:45000->198.51.100.1:4444",
    );
    assert_eq!(connect.proc.as_ref().unwrap().name, "client");
    assert_eq!(out.len(), 3, "{out:#?}");
}

#[test]
fn an_unaccepted_connection_waits_for_its_inode_and_a_vanished_one_is_still_reported() {
    let root = FixtureRoot::new(9999);
    root.give_sockets(10, &[8000, 8002]);
    let mut tables = Tables::default();
    add_process(&mut tables, 10, "server", "app", false);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let listener = listener(8080, 8000);
    let queued = entry(tcp_state::ESTABLISHED, (TASK_IP, 8080), (TASK_IP, 50000), 0);
    tracker.poll(&[listener, queued], &tables, &mut out);
    assert_eq!(out.len(), 1, "only the listener so far: {out:#?}");
    out.clear();
    let accepted = SockEntry {
        inode: 8002,
        ..queued
    };
    tracker.poll(&[listener, accepted], &tables, &mut out);
    let accept = find(
        &out,
        EventType::Accept,
        "198.51.100.1:50000->198.51.100.1:8080",
    );
    assert_eq!(accept.proc.as_ref().unwrap().name, "server");

    // A queued connection that is gone by the next poll is reported from its last sighting.
    out.clear();
    let short = entry(tcp_state::ESTABLISHED, (TASK_IP, 8080), (TASK_IP, 50001), 0);
    tracker.poll(&[listener, accepted, short], &tables, &mut out);
    assert!(out.is_empty());
    tracker.poll(&[listener, accepted], &tables, &mut out);
    let gone = find(
        &out,
        EventType::Accept,
        "198.51.100.1:50001->198.51.100.1:8080",
    );
    assert!(gone.proc.is_none());
}

#[test]
fn an_owner_not_yet_in_the_process_table_delays_the_event() {
    let root = FixtureRoot::new(9999);
    root.give(50, 3, 9001);
    let mut tables = Tables::default();
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let conn = entry(tcp_state::ESTABLISHED, (TASK_IP, 41000), (CRED, 80), 9001);
    tracker.poll(&[conn], &tables, &mut out);
    assert!(out.is_empty(), "waits for procscan: {out:#?}");
    add_process(&mut tables, 50, "python3", "app", false);
    tracker.poll(&[conn], &tables, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].proc.as_ref().unwrap().name, "python3");
    assert_eq!(out[0].container.as_ref().unwrap().id, "app");
}

#[test]
fn refine_socket_fd_finds_family_and_peer() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("77/net");
    std::fs::create_dir_all(&net).unwrap();
    for (name, text) in [
        ("tcp", TCP),
        ("tcp6", TCP6),
        ("udp", UDP),
        ("udp6", UDP6),
        ("unix", UNIX),
    ] {
        std::fs::write(net.join(name), text).unwrap();
    }
    let root = dir.path();
    assert_eq!(
        refine_socket_fd(root, 77, ino::CLIENT4),
        Some((FdKind::Ipv4, Some("198.51.100.1:4444".into())))
    );
    assert_eq!(
        refine_socket_fd(root, 77, ino::CLIENT6),
        Some((FdKind::Ipv6, Some("2001:db8::1:8080".into())))
    );
    assert_eq!(
        refine_socket_fd(root, 77, ino::SERVER_DUAL),
        Some((
            FdKind::Ipv4,
            Some(format!("198.51.100.1:{}", ino::CLIENT_DUAL_PORT))
        ))
    );
    assert_eq!(
        refine_socket_fd(root, 77, ino::LISTEN4),
        Some((FdKind::Ipv4, None))
    );
    assert_eq!(
        refine_socket_fd(root, 77, ino::UDP_CLIENT),
        Some((FdKind::Ipv4, Some("169.254.170.2:80".into())))
    );
    assert_eq!(
        refine_socket_fd(root, 77, ino::UNIX),
        Some((FdKind::Unix, None))
    );
    assert_eq!(refine_socket_fd(root, 77, 123), None);
    assert_eq!(refine_socket_fd(root, 78, ino::CLIENT4), None);
}

#[test]
fn live_sock_diag_dump_sees_a_new_listener_with_its_inode() {
    use std::os::unix::fs::MetadataExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inode = std::fs::metadata(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&listener)
    ))
    .unwrap()
    .ino();
    let mut diag = netlink::DiagSocket::open().unwrap();
    let mut out = Vec::new();
    diag.dump_inet(Family::V4, Proto::Tcp, &mut out).unwrap();
    let found = out.iter().find(|e| e.inode == inode).unwrap();
    assert_eq!(found.lport, port);
    assert_eq!(found.state, tcp_state::LISTEN);
    // The one-walk dump sees both families.
    if let Ok(listener6) = std::net::TcpListener::bind("[::1]:0") {
        let inode6 = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&listener6)
        ))
        .unwrap()
        .ino();
        out.clear();
        diag.dump_tcp_all(&mut out).unwrap();
        assert!(
            out.iter()
                .any(|e| e.inode == inode && e.family == Family::V4)
        );
        assert!(
            out.iter()
                .any(|e| e.inode == inode6 && e.family == Family::V6)
        );
    }
    // And the full source (netlink plus text tables) agrees.
    let mut source = SocketSource::new(Path::new("/proc"), true);
    source.collect(&mut out);
    assert!(out.iter().any(|e| e.inode == inode && e.lport == port));
    let mut text_only = SocketSource::new(Path::new("/proc"), false);
    text_only.collect(&mut out);
    assert!(out.iter().any(|e| e.inode == inode && e.lport == port));
}

#[test]
fn sockets_without_owner_become_a_rate_limited_unattributed_summary() {
    let root = FixtureRoot::new(9999);
    let tables = Tables::default();
    let mut tracker = root.tracker();
    let mut reporter = UnattributedReporter::default();
    let period = Duration::from_secs(60);
    let t0 = Instant::now();
    let mut out = Vec::new();
    // Two connections whose fds are nowhere in the fixture root: reported without a process.
    let a = entry(tcp_state::ESTABLISHED, (TASK_IP, 42001), (CRED, 80), 9101);
    let b = entry(tcp_state::ESTABLISHED, (TASK_IP, 42002), (CRED, 80), 9102);
    tracker.poll(&[a, b], &tables, &mut out);
    tracker.poll(&[a, b], &tables, &mut out);
    assert_eq!(
        out.iter().filter(|e| e.proc.is_none()).count(),
        2,
        "{out:#?}"
    );
    let summary = reporter
        .report(tracker.stats().unattributed, t0, period)
        .expect("a first summary at once");
    let internal = summary.internal.as_ref().expect("internal");
    assert_eq!(internal.kind, "sockets_unattributed");
    assert_eq!(internal.count, Some(2));
    assert_eq!(summary.evt.collector, crate::event::Collector::Sockets);
    // Nothing new: nothing to say. Something new within the period: wait for the period.
    assert!(
        reporter
            .report(tracker.stats().unattributed, t0 + period, period)
            .is_none()
    );
    let c = entry(tcp_state::ESTABLISHED, (TASK_IP, 42003), (CRED, 80), 9103);
    tracker.poll(&[a, b, c], &tables, &mut out);
    tracker.poll(&[a, b, c], &tables, &mut out);
    assert_eq!(tracker.stats().unattributed, 3);
    assert!(
        reporter
            .report(
                tracker.stats().unattributed,
                t0 + Duration::from_secs(1),
                period
            )
            .is_none(),
        "rate-limited"
    );
    let next = reporter
        .report(tracker.stats().unattributed, t0 + period, period)
        .expect("the next summary after the period");
    assert_eq!(next.internal.as_ref().expect("internal").count, Some(1));
}

#[test]
fn a_short_request_of_the_monitor_seen_only_in_time_wait_is_not_reported() {
    let root = FixtureRoot::new(9999);
    let tables = Tables::default();
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    // The monitor's metadata fetch opened and closed between two polls; it registered itself.
    let own = entry(tcp_state::TIME_WAIT, (TASK_IP, 40991), (CRED, 80), 0);
    crate::collect::shared::own_sockets::register(
        std::net::SocketAddr::new(TASK_IP, 40991),
        std::net::SocketAddr::new(CRED, 80),
    );
    // Someone else's equally short connection is still reported, without an owner.
    let other = entry(tcp_state::TIME_WAIT, (TASK_IP, 40992), (CRED, 80), 0);
    tracker.poll(&[own, other], &tables, &mut out);
    tracker.poll(&[own, other], &tables, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].evt_type(), EventType::Connect);
    assert_eq!(out[0].fd.as_ref().unwrap().cport, Some(40992));
    assert!(out[0].proc.is_none());
}

#[test]
fn exec_triggers_bring_polls_forward_at_most_once_per_spacing_within_the_window() {
    let config = SocketsConfig {
        interval: Duration::from_secs(1),
        trigger_spacing: Duration::from_millis(10),
        trigger_window: Duration::from_millis(250),
        ..SocketsConfig::default()
    };
    let mut schedule = PollSchedule::new(&config);
    let t0 = Instant::now();
    assert_eq!(schedule.next_poll(t0), t0, "the first poll is due at once");
    let ms = Duration::from_millis;
    schedule.polled(t0, t0 + ms(1));
    // Without a trigger: the regular interval, from the start of the last poll.
    assert_eq!(schedule.next_poll(t0 + ms(5)), t0 + ms(1000));

    // A trigger long after the last poll: due at once.
    schedule.triggered(t0 + ms(500));
    assert_eq!(schedule.next_poll(t0 + ms(500)), t0 + ms(11));
    // Then every spacing after the end of each poll.
    schedule.polled(t0 + ms(500), t0 + ms(501));
    assert_eq!(schedule.next_poll(t0 + ms(502)), t0 + ms(511));
    // A poll that took longer than the spacing pushes the next one back by its duration.
    schedule.polled(t0 + ms(511), t0 + ms(541));
    assert_eq!(schedule.next_poll(t0 + ms(542)), t0 + ms(571));
    // After the window, back to the regular interval.
    schedule.polled(t0 + ms(740), t0 + ms(741));
    assert_eq!(schedule.next_poll(t0 + ms(751)), t0 + ms(1740));
    // The regular interval still wins when it comes first.
    let mut short = PollSchedule::new(&SocketsConfig {
        interval: Duration::from_millis(5),
        ..config
    });
    short.polled(t0, t0 + ms(1));
    short.triggered(t0 + ms(1));
    assert_eq!(short.next_poll(t0 + ms(2)), t0 + ms(5));
}

#[test]
fn exec_signal_wakes_a_waiting_collector() {
    let signal = ExecSignal::new();
    let seen = signal.count();
    // Nothing raised: the wait times out with the same count.
    assert_eq!(signal.wait_past(seen, Duration::from_millis(5)), seen);
    let raiser = {
        let signal = signal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            signal.raise();
        })
    };
    let started = Instant::now();
    let count = signal.wait_past(seen, Duration::from_secs(30));
    assert_eq!(count, seen + 1);
    assert!(started.elapsed() < Duration::from_secs(30));
    raiser.join().unwrap();
}

#[test]
fn an_unchanged_dump_is_not_diffed_and_any_change_is() {
    let root = FixtureRoot::new(9999);
    root.give_sockets(10, &[8000, 8001, 8002]);
    let mut tables = Tables::default();
    add_process(&mut tables, 10, "app", "app", false);
    let mut tracker = root.tracker();
    let mut out = Vec::new();
    let listener = listener(8080, 8000);
    let conn = entry(tcp_state::ESTABLISHED, (TASK_IP, 41000), (CRED, 80), 8001);
    tracker.poll(&[listener, conn], &tables, &mut out);
    assert_eq!(out.len(), 2, "listen and connect: {out:#?}");
    out.clear();
    for _ in 0..3 {
        tracker.poll(&[listener, conn], &tables, &mut out);
    }
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(tracker.stats().unchanged_polls, 3);
    assert_eq!(tracker.tracked(), 2);

    // A change of state alone is a change: diffed, and not reported again.
    let closing = SockEntry {
        state: 8, // CLOSE_WAIT
        ..conn
    };
    tracker.poll(&[listener, closing], &tables, &mut out);
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(tracker.stats().unchanged_polls, 3);

    // Another connection in the same place of the dump: the old one is forgotten, the new
    // one reported.
    let other = entry(tcp_state::ESTABLISHED, (TASK_IP, 41001), (CRED, 80), 8002);
    tracker.poll(&[listener, other], &tables, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].evt.evt_type, EventType::Connect);
    assert_eq!(out[0].fd.as_ref().unwrap().sport, Some(80));
    assert_eq!(out[0].fd.as_ref().unwrap().cport, Some(41001));
    assert_eq!(tracker.tracked(), 2);
}

#[test]
fn tcp_open_counters_are_read_from_the_snmp_table() {
    let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab\n\
        Tcp: 1 200 120000 -1 5012 4999 3 7 10001\n\
        Udp: InDatagrams NoPorts\nUdp: 12 0\n";
    assert_eq!(procnet::tcp_opens(snmp), Some((5012, 4999)));
    assert_eq!(procnet::tcp_opens("Tcp: ActiveOpens PassiveOpens\n"), None);
    assert_eq!(procnet::tcp_opens("Tcp: ActiveOpens\nTcp: x\n"), None);
    assert_eq!(procnet::tcp_opens(""), None);
}

/// Runs `f` on a thread of its own in a fresh network namespace with `lo` up.
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn an_idle_namespace_is_not_dumped_and_a_new_socket_ends_the_quiet_at_once() {
    in_private_netns(|| {
        use std::net::UdpSocket;
        let mut source = SocketSource::new(Path::new("/proc"), true);
        let mut out: Vec<SockEntry>;
        let first = UdpSocket::bind("0.0.0.0:5301").unwrap();
        out = source.poll(false).to_vec();
        assert!(out.iter().any(|e| e.lport == 5301), "{out:#?}");
        source.poll(false);
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().quiet_polls, 2, "idle polls dump nothing");
        assert!(out.iter().any(|e| e.lport == 5301));
        // A new socket moves the namespace's counts: dumped and seen by the next poll.
        let second = UdpSocket::bind("0.0.0.0:5302").unwrap();
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().quiet_polls, 2);
        assert!(out.iter().any(|e| e.lport == 5302), "{out:#?}");
        // The tracker waiting for something forces a dump.
        source.poll(true);
        assert_eq!(source.stats().quiet_polls, 2);
        // One closed and one opened between two polls leave the counts equal: the new one
        // is seen by the dump that ends the quiet period, at most QUIET_PERIOD later.
        drop(first);
        let third = UdpSocket::bind("0.0.0.0:5303").unwrap();
        let deadline = Instant::now() + super::source::QUIET_PERIOD * 3;
        loop {
            out = source.poll(false).to_vec();
            if out.iter().any(|e| e.lport == 5303) {
                break;
            }
            assert!(Instant::now() < deadline, "never seen: {out:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!out.iter().any(|e| e.lport == 5301));
        drop((second, third));
    });
}

#[test]
fn the_tcp_connection_table_is_dumped_again_only_when_a_connection_was_opened() {
    in_private_netns(|| {
        use std::net::{TcpListener, TcpStream};
        let mut source = SocketSource::new(Path::new("/proc"), true);
        let mut out: Vec<SockEntry>;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().full_tcp_dumps, 1);
        let full = out.clone();
        assert_eq!(full.len(), 3, "listener and both ends: {full:#?}");

        // Nothing came or went: no socket count moved, nothing is dumped, the result is the
        // same.
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().quiet_polls, 1);
        assert_eq!(source.stats().full_tcp_dumps, 1);
        assert_eq!(out, full);
        // A new listener moves the counts but opens no connection: only the listeners are
        // dumped, and it is seen.
        let second = TcpListener::bind("127.0.0.1:0").unwrap();
        let second_port = second.local_addr().unwrap().port();
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().listener_only_dumps, 1);
        assert_eq!(source.stats().full_tcp_dumps, 1);
        assert!(
            out.iter()
                .any(|e| e.state == tcp_state::LISTEN && e.lport == second_port)
        );
        // Forced (the tracker waits for something): a full dump.
        source.poll(true);
        assert_eq!(source.stats().full_tcp_dumps, 2);

        // A connection opened (and even closed) since: a full dump shows it.
        let short = TcpStream::connect(("127.0.0.1", second_port)).unwrap();
        let short_port = short.local_addr().unwrap().port();
        drop(short);
        out = source.poll(false).to_vec();
        assert_eq!(source.stats().full_tcp_dumps, 3);
        assert!(
            out.iter()
                .any(|e| e.lport == short_port && e.rport == second_port),
            "{out:#?}"
        );
        drop((client, server));
    });
}

#[test]
fn a_closed_connection_is_handed_on_by_the_first_full_dump_only() {
    in_private_netns(|| {
        use std::net::{TcpListener, TcpStream};
        // Both ways of reading the tables: `sock_diag` and the `/proc/net` text.
        for netlink in [true, false] {
            // The text tables of this thread's namespace (`/proc/net` is the main thread's).
            let root = if netlink {
                "/proc"
            } else {
                "/proc/thread-self"
            };
            let mut source = SocketSource::new(Path::new(root), netlink);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let client_port = client.local_addr().unwrap().port();
            let (server, _) = listener.accept().unwrap();
            let client_in = |state: u8| {
                move |e: &SockEntry| e.state == state && e.lport == client_port && e.rport == port
            };
            let wait_for_kernel = |source: &mut SocketSource, state: u8| {
                let mut all = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while !all.iter().any(client_in(state)) {
                    assert!(
                        Instant::now() < deadline,
                        "never in state {state}: {all:#?}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                    source.collect(&mut all);
                }
            };
            source.poll(true);
            // The client closes first: its end waits in FIN_WAIT2, without a process.
            drop(client);
            wait_for_kernel(&mut source, tcp_state::FIN_WAIT2);
            let first = source.poll(true).to_vec();
            assert!(
                first.iter().any(client_in(tcp_state::FIN_WAIT2)),
                "netlink {netlink}: the first full dump hands it on: {first:#?}"
            );
            let next = source.poll(true).to_vec();
            assert!(
                !next.iter().any(|e| e.lport == client_port),
                "netlink {netlink}: handed on again: {next:#?}"
            );
            // The server closes: the client's end moves to TIME_WAIT, the same connection.
            drop(server);
            wait_for_kernel(&mut source, tcp_state::TIME_WAIT);
            // The listener is still handed on by every dump; the closed connection is not.
            for _ in 0..2 {
                let next = source.poll(true).to_vec();
                assert!(
                    !next.iter().any(|e| e.lport == client_port),
                    "netlink {netlink}: handed on again: {next:#?}"
                );
                assert!(
                    next.iter()
                        .any(|e| e.state == tcp_state::LISTEN && e.lport == port),
                    "{next:#?}"
                );
            }
            // The kernel still holds it: only the source's result leaves it out.
            let mut all = Vec::new();
            source.collect(&mut all);
            assert!(all.iter().any(client_in(tcp_state::TIME_WAIT)), "{all:#?}");
            // A new short connection, closed between two polls, is handed on.
            let again = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let again_port = again.local_addr().unwrap().port();
            let (again_server, _) = listener.accept().unwrap();
            drop(again);
            std::thread::sleep(Duration::from_millis(20));
            drop(again_server);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let next = source.poll(false).to_vec();
                if next.iter().any(|e| {
                    e.state == tcp_state::TIME_WAIT && e.lport == again_port && e.rport == port
                }) {
                    assert!(!next.iter().any(|e| e.lport == client_port), "{next:#?}");
                    break;
                }
                assert!(Instant::now() < deadline, "never handed on: {next:#?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
}

/// A process the tracer saw exec (trace mode), as `ExecImages` holds it.
fn execed(pid: i32, name: &str, args: &[&str]) -> Arc<Process> {
    Arc::new(Process {
        pid,
        start_ticks: 100 + pid as u64,
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Process::default()
    })
}

#[test]
fn the_owner_is_named_after_the_exec_the_tracer_saw_not_the_stale_table_entry() {
    let root = FixtureRoot::new(9999);
    root.give(20, 1, 7001);
    root.give(21, 3, 7002);
    root.give(10, 5, 7003);
    let mut tables = Tables::default();
    add_process(&mut tables, 10, "sh", "app", false);
    // Procscan's table still holds the fork of python3 (pid 20) and of sh (pid 21).
    add_process(&mut tables, 20, "python3", "app", false);
    add_process(&mut tables, 21, "sh", "app", false);
    let images = ExecImages::default();
    images.record_exec(execed(20, "cat", &[]), "app".into());
    images.record_exec(execed(21, "wget", &["-q", "http://x"]), "app".into());
    // The same pid reused by another process (another start time) does not borrow an image.
    images.record_exec(
        Arc::new(Process {
            pid: 10,
            start_ticks: 1,
            name: "recycled".into(),
            ..Process::default()
        }),
        "app".into(),
    );
    let mut tracker = root.tracker();
    tracker.set_exec_images(images);
    let mut out = Vec::new();
    let cat = entry(tcp_state::ESTABLISHED, (TASK_IP, 42000), (CRED, 8003), 7001);
    let wget = entry(tcp_state::ESTABLISHED, (TASK_IP, 42001), (CRED, 80), 7002);
    let sh = entry(tcp_state::ESTABLISHED, (TASK_IP, 42002), (CRED, 80), 7003);
    tracker.poll(&[cat, wget, sh], &tables, &mut out);
    assert_eq!(out.len(), 3, "{out:#?}");
    let sh = find(
        &out,
        EventType::Connect,
        "198.51.100.1:42002->169.254.170.2:80",
    );
    assert_eq!(sh.proc.as_ref().unwrap().name, "sh");
    let cat = find(
        &out,
        EventType::Connect,
        "198.51.100.1:42000->169.254.170.2:8003",
    );
    assert_eq!(cat.proc.as_ref().unwrap().name, "cat");
    let wget = find(
        &out,
        EventType::Connect,
        "198.51.100.1:42001->169.254.170.2:80",
    );
    let p = wget.proc.as_ref().unwrap();
    assert_eq!(
        (p.name.as_str(), p.args.clone()),
        ("wget", vec!["-q".to_string(), "http://x".to_string()])
    );
    assert_eq!(wget.container.as_ref().unwrap().id, "app");
}

#[test]
fn a_connection_of_a_fresh_fork_waits_for_its_exec() {
    let root = FixtureRoot::new(9999);
    root.give(30, 1, 7101);
    root.give(31, 4, 7102);
    let mut tables = Tables::default();
    add_process(&mut tables, 30, "python3", "app", false);
    add_process(&mut tables, 31, "gunicorn", "app", false);
    let images = ExecImages::default();
    images.record_fork(30, Instant::now());
    // A worker forked long ago is not waited for.
    images.record_fork(31, Instant::now() - RECENT_FORK - Duration::from_millis(1));
    let mut tracker = root.tracker();
    tracker.set_exec_images(images.clone());
    let mut out = Vec::new();
    let redirect = entry(tcp_state::ESTABLISHED, (TASK_IP, 43000), (CRED, 8003), 7101);
    let worker = entry(tcp_state::ESTABLISHED, (TASK_IP, 43001), (CRED, 80), 7102);
    tracker.poll(&[redirect, worker], &tables, &mut out);
    assert_eq!(out.len(), 1, "only the old worker's connection: {out:#?}");
    assert_eq!(out[0].proc.as_ref().unwrap().name, "gunicorn");
    assert!(tracker.has_pending());
    out.clear();
    // The fork execs cat: the connection is reported with it.
    images.record_exec(execed(30, "cat", &[]), "app".into());
    tracker.poll(&[redirect, worker], &tables, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].proc.as_ref().unwrap().name, "cat");

    // A fresh fork that never execs is reported as it is once the wait is over.
    root.give(32, 5, 7103);
    add_process(&mut tables, 32, "python3", "app", false);
    images.record_fork(32, Instant::now());
    let child = entry(tcp_state::ESTABLISHED, (TASK_IP, 43002), (CRED, 80), 7103);
    out.clear();
    tracker.poll(&[redirect, worker, child], &tables, &mut out);
    assert!(out.is_empty(), "{out:#?}");
    std::thread::sleep(FORK_EXEC_WAIT);
    tracker.poll(&[redirect, worker, child], &tables, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].proc.as_ref().unwrap().name, "python3");
}

/// Found in the scenario suite under load: procscan's scans lagged more than `owner_wait`
/// behind a busy task, so connections of processes the tracer had seen exec were reported
/// without a process and no rule could judge them.
#[test]
fn an_owner_procscan_has_not_read_yet_is_named_from_the_tracers_exec_at_once() {
    let root = FixtureRoot::new(9999);
    root.give(40, 1, 7201);
    root.give(41, 3, 7202);
    root.give(42, 3, 7203);
    root.give(43, 3, 7204);
    let mut tables = Tables::default();
    add_process(&mut tables, 10, "sh", "app", false);
    // The monitor's own container is excluded as a whole.
    tables
        .containers
        .intern("monitor", Some(Exclusion::Monitor));
    add_process(&mut tables, 11, "tasksentry", "monitor", true);
    // Pid 41 was an earlier process that procscan saw exit; the pid was reused since.
    let old = ProcKey {
        pid: 41,
        start_ticks: 5,
    };
    tables.processes.insert(
        old,
        ProcEntry {
            process: Arc::new(Process {
                pid: 41,
                name: "old".into(),
                ..Process::default()
            }),
            container_id: "app".into(),
            excluded: None,
            exited_at: None,
        },
    );
    tables.processes.mark_exited(old, Instant::now());
    let images = ExecImages::default();
    let image = |pid: i32, name: &str| {
        Arc::new(Process {
            pid,
            ppid: 10,
            start_ticks: 100 + pid as u64,
            name: name.into(),
            args: vec!["-c".into(), "beacon".into()],
            ancestors: vec![crate::event::Ancestor {
                pid: 10,
                name: "sh".into(),
                exe: None,
                exepath: None,
                args: Vec::new(),
            }],
            ..Process::default()
        })
    };
    images.record_exec(image(40, "python3"), "app".into());
    images.record_exec(image(41, "curl"), "app".into());
    // A process of an excluded container is not reported, from either source.
    images.record_exec(image(42, "helper"), "monitor".into());
    // An image whose process exited before the socket was seen belongs to an earlier
    // process with that pid (one the tracer did not hold): not used.
    images.record_exec(image(43, "gone"), "app".into());
    images.record_exit(43, Instant::now() - Duration::from_millis(50));
    let mut tracker = root.tracker();
    tracker.set_exec_images(images);

    let beacon = entry(tcp_state::ESTABLISHED, (TASK_IP, 44000), (CRED, 8002), 7201);
    let reused = entry(tcp_state::ESTABLISHED, (TASK_IP, 44001), (CRED, 8004), 7202);
    let excluded = entry(tcp_state::ESTABLISHED, (TASK_IP, 44002), (CRED, 8005), 7203);
    let stale = entry(tcp_state::ESTABLISHED, (TASK_IP, 44003), (CRED, 8006), 7204);
    let all = [beacon, reused, excluded, stale];
    let mut out = Vec::new();
    tracker.poll(&all, &tables, &mut out);
    // At the first poll, without waiting `owner_wait` for procscan.
    assert_eq!(out.len(), 2, "{out:#?}");
    let beacon = find(
        &out,
        EventType::Connect,
        "198.51.100.1:44000->169.254.170.2:8002",
    );
    let p = beacon.proc.as_ref().unwrap();
    assert_eq!((p.pid, p.name.as_str()), (40, "python3"));
    assert_eq!(p.args, ["-c", "beacon"]);
    assert_eq!(p.ancestors[0].name, "sh");
    assert_eq!(beacon.container.as_ref().unwrap().id, "app");
    let reused = find(
        &out,
        EventType::Connect,
        "198.51.100.1:44001->169.254.170.2:8004",
    );
    assert_eq!(reused.proc.as_ref().unwrap().name, "curl");
    // The stale image's socket waits for procscan, then goes out without a process.
    assert!(tracker.has_pending());
    out.clear();
    std::thread::sleep(SocketsConfig::default().owner_wait);
    tracker.poll(&all, &tables, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].fd.as_ref().unwrap().name.as_deref(),
        Some("198.51.100.1:44003->169.254.170.2:8006")
    );
    assert!(out[0].proc.is_none(), "{out:#?}");
}

/// Writes `/proc/<pid>/stat` (name and start time), `cmdline` and the `exe` link of a process
/// in a fixture root.
fn give_image(root: &FixtureRoot, pid: i32, comm: &str, start_ticks: u64, argv: &[&str]) {
    let dir = root.path().join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut fields = vec!["0".to_string(); 52];
    fields[0] = pid.to_string();
    fields[1] = format!("({comm})");
    fields[2] = "S".into();
    fields[3] = "10".into();
    fields[21] = start_ticks.to_string();
    std::fs::write(dir.join("stat"), fields.join(" ") + "\n").unwrap();
    let mut cmdline = argv.join("\0");
    cmdline.push('\0');
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    let _ = std::fs::remove_file(dir.join("exe"));
    std::os::unix::fs::symlink(format!("/usr/bin/{comm}"), dir.join("exe")).unwrap();
}

/// Found by the scenario suite and the sockets e2e test under load (poll mode): procscan read
/// a fork (`sh -c 'wget ...'`, the harness's `nsenter ... nc`) before it exec'd the program
/// that made the connection, and had not read it again when the sockets collector reported the
/// connection, so "Outbound connection by a shell" fired for a health check and a listener of
/// `nc` was named `nsenter`.
#[test]
fn a_connection_is_not_named_after_the_image_its_process_ran_before_an_exec() {
    let root = FixtureRoot::new(9999);
    let mut tables = Tables::default();
    for (pid, inode) in [(50, 7301), (51, 7302), (52, 7303), (53, 7304), (54, 7305)] {
        root.give(pid, 3, inode);
    }
    // Procscan read all five as forks of a shell.
    for pid in 50..=54 {
        add_process(&mut tables, pid, "sh", "app", false);
    }
    let table_process = |tables: &mut Tables, pid: i32, name: &str, args: &[&str]| {
        let (key, entry) = tables.processes.lookup_pid(pid).unwrap();
        let mut entry = entry.clone();
        entry.process = Arc::new(Process {
            pid,
            start_ticks: key.start_ticks,
            name: name.into(),
            exepath: Some(format!("/usr/bin/{name}")),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Process::default()
        });
        tables.processes.insert(key, entry);
    };
    for pid in 50..=54 {
        table_process(
            &mut tables,
            pid,
            "sh",
            &["-c", "wget -q http://localhost:8080/health || exit 1"],
        );
    }
    // Since then: 50 and 51 exec'd wget and nc; 52 is still the shell; 53's pid now belongs to
    // a process procscan never read; 54 renamed itself without exec'ing.
    give_image(
        &root,
        50,
        "wget",
        150,
        &["/bin/wget", "-q", "http://localhost:8080/health"],
    );
    give_image(&root, 51, "nc", 151, &["nc", "-l", "-p", "31337"]);
    give_image(
        &root,
        52,
        "sh",
        152,
        &["sh", "-c", "wget -q http://localhost:8080/health || exit 1"],
    );
    give_image(&root, 53, "curl", 999, &["curl", "http://x"]);
    give_image(
        &root,
        54,
        "worker-1",
        154,
        &["sh", "-c", "wget -q http://localhost:8080/health || exit 1"],
    );
    std::fs::remove_file(root.path().join("54/exe")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/sh", root.path().join("54/exe")).unwrap();

    let mut tracker = root.tracker();
    let conns = [
        entry(tcp_state::ESTABLISHED, (TASK_IP, 45000), (CRED, 8080), 7301),
        entry(tcp_state::ESTABLISHED, (TASK_IP, 45001), (CRED, 8081), 7302),
        entry(tcp_state::ESTABLISHED, (TASK_IP, 45002), (CRED, 8082), 7303),
        entry(tcp_state::ESTABLISHED, (TASK_IP, 45003), (CRED, 8083), 7304),
        entry(tcp_state::ESTABLISHED, (TASK_IP, 45004), (CRED, 8084), 7305),
    ];
    let mut out = Vec::new();
    tracker.poll(&conns, &tables, &mut out);
    let names = |out: &[Event]| -> Vec<(u16, Option<String>)> {
        let mut v: Vec<_> = out
            .iter()
            .map(|e| {
                (
                    e.fd.as_ref().unwrap().sport.unwrap(),
                    e.proc.as_ref().map(|p| p.name.clone()),
                )
            })
            .collect();
        v.sort();
        v
    };
    // The shell that still is one, and the process that only renamed itself, at once.
    assert_eq!(
        names(&out),
        [(8082, Some("sh".into())), (8084, Some("sh".into()))],
        "{out:#?}"
    );
    // Procscan reads 50 again: its connection goes out with wget.
    table_process(
        &mut tables,
        50,
        "wget",
        &["-q", "http://localhost:8080/health"],
    );
    out.clear();
    tracker.poll(&conns, &tables, &mut out);
    assert_eq!(names(&out), [(8080, Some("wget".into()))], "{out:#?}");
    assert!(tracker.has_pending());
    // Procscan never catches up with 51 and 53: after `owner_wait`, 51 is named with the
    // image read when its socket was found, and 53 (a process procscan never read: its table
    // entry is an earlier process with that pid) is read from `/proc` by the collector.
    out.clear();
    std::thread::sleep(SocketsConfig::default().owner_wait);
    tracker.poll(&conns, &tables, &mut out);
    assert_eq!(
        names(&out),
        [(8081, Some("nc".into())), (8083, Some("curl".into()))],
        "{out:#?}"
    );
    let curl = out[1].proc.as_ref().unwrap();
    assert_eq!(
        (curl.pid, curl.args.clone()),
        (53, vec!["http://x".to_string()])
    );
    let nc = out[0].proc.as_ref().unwrap();
    assert_eq!(
        (nc.exe.as_deref(), nc.exepath.as_deref(), nc.args.clone()),
        (
            Some("nc"),
            Some("/usr/bin/nc"),
            vec!["-l".to_string(), "-p".into(), "31337".into()]
        )
    );
    assert_eq!(out[0].container.as_ref().unwrap().id, "app");
    assert_eq!(nc.exe_written_after_start, None);
}

/// Found in the scenario suite under load (poll mode): procscan's scans lagged more than
/// `owner_wait` behind a task starting up, so a web service's own listener went out without
/// a process, and "Unexpected listening port" fired for it (the start-up exception needs the
/// process). The collector reads such an owner from `/proc` itself, with its container from
/// its cgroup and its ancestors from procscan's table; a socket whose owner is gone by then
/// still goes out without one.
#[test]
fn an_owner_procscan_lags_behind_is_read_from_proc_after_owner_wait() {
    const TASK: &str = "8cd79a803caf4d2aa945152e934a5c00";
    let container = format!("{TASK}-1234567890");
    let root = FixtureRoot::new(9999);
    let mut tables = Tables::default();
    // The entrypoint shell (pid 10) is known; the server it started (pid 60) is not yet.
    add_process(&mut tables, 10, "sh", &container, false);
    root.give(60, 3, 7401);
    give_image(&root, 60, "python3", 160, &["python3", "app.py"]);
    std::fs::write(
        root.path().join("60/cgroup"),
        format!("0::/ecs/{TASK}/{container}\n"),
    )
    .unwrap();
    // Pid 61's socket was found, but the process is gone before `owner_wait` (only its fd
    // link remains in the fixture: no `stat`).
    root.give(61, 3, 7402);
    let mut tracker = root.tracker();
    let sockets = [listener(9443, 7401), listener(9444, 7402)];
    let mut out = Vec::new();
    tracker.poll(&sockets, &tables, &mut out);
    assert!(out.is_empty(), "waits for procscan first: {out:#?}");
    std::thread::sleep(SocketsConfig::default().owner_wait);
    tracker.poll(&sockets, &tables, &mut out);
    assert_eq!(out.len(), 2, "{out:#?}");
    let server = out
        .iter()
        .find(|e| e.fd.as_ref().unwrap().sport == Some(9443))
        .unwrap();
    let p = server.proc.as_ref().unwrap();
    assert_eq!((p.pid, p.name.as_str(), p.ppid), (60, "python3", 10));
    assert_eq!(p.args, ["app.py"]);
    assert_eq!(p.exepath.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(p.ancestors.len(), 1);
    assert_eq!(
        (p.ancestors[0].pid, p.ancestors[0].name.as_str()),
        (10, "sh")
    );
    assert_eq!(server.container.as_ref().unwrap().id, container);
    let gone = out
        .iter()
        .find(|e| e.fd.as_ref().unwrap().sport == Some(9444))
        .unwrap();
    assert!(gone.proc.is_none() && gone.container.is_none(), "{gone:#?}");
}
