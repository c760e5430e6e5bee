//! Arbitrary bytes as a sock_diag netlink answer and as /proc/net table text: parsing never
//! panics or loops, and every entry parsed from a table names a family and table consistent
//! with the one it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::collect::sockets::netlink::{
    parse_inet_record, parse_messages, parse_packet_record,
};
use tasksentry::procfs::net::{
    Family, Proto, SockEntry, parse_addr, parse_inet_table, parse_packet_table, tcp_opens,
    unix_table_has_inode,
};

fuzz_target!(|data: &[u8]| {
    let seq = data
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes);
    for proto in [Proto::Tcp, Proto::Udp, Proto::Raw] {
        let mut out: Vec<SockEntry> = Vec::new();
        let _ = parse_messages(
            data,
            seq,
            &mut |p, o| parse_inet_record(p, proto, o),
            &mut out,
        );
        assert!(out.iter().all(|e| e.proto == proto));
    }
    let mut out = Vec::new();
    let _ = parse_messages(data, seq, &mut |p, o| parse_packet_record(p, o), &mut out);

    let text = String::from_utf8_lossy(data);
    for family in [Family::V4, Family::V6] {
        for proto in [Proto::Tcp, Proto::Udp, Proto::Raw] {
            let mut out = Vec::new();
            parse_inet_table(&text, family, proto, &mut out);
            assert!(out.iter().all(|e| e.family == family && e.proto == proto));
        }
    }
    let mut out = Vec::new();
    parse_packet_table(&text, &mut out);
    let _ = tcp_opens(&text);
    let _ = unix_table_has_inode(&text, 12345);
    for word in text.split_ascii_whitespace().take(64) {
        let _ = parse_addr(word);
    }
});
