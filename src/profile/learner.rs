//! The learning aggregator: what each container normally does, keyed by container name.
//!
//! Pure: events in, a bounded aggregate out, no I/O. Every event costs a few hash lookups
//! whatever has been learnt (constant cost), and each container's aggregate holds at most
//! [`Limits::max_entries`] entries: past it, new entries are counted as an overflow by kind
//! (the snapshot says so, and so does the profile built from it), never silently dropped.
//!
//! What is learnt, per container:
//! - programs run: `proc.exepath` with `proc.name` (busybox applets share one executable) and the
//!   parent's executable (`proc.pexepath`, absent for the container's first process);
//! - listening ports (`fd.l4proto`, `fd.sport`);
//! - outbound destinations: remote port and address, the address aggregated to its /24 (IPv4) or
//!   /64 (IPv6) once more than [`Limits::addrs_per_net`] addresses of that network were seen on
//!   that port; loopback is never outbound and is not learnt; the AWS and ECS endpoints
//!   ([`FIXED_ENDPOINTS`], and the VPC resolver once [`Learner::name_endpoint`] names it) are
//!   learnt by name, with the addresses each stood for;
//! - inbound peers by local port, aggregated the same way;
//! - files written (opened for writing, created, deleted, renamed, chmod, mkdir), aggregated to
//!   their directory once more than [`Limits::files_per_dir`] files of it were written;
//! - files read (the watch set reports reads of sensitive paths only).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType, Timestamp};
use crate::fasthash::{KeyedFxBuild, TextKeys};

/// One thing a container was seen doing. The order (variant, then fields) is the order of
/// snapshots and profiles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// A program run: executable path, process name, parent's executable path.
    Exec {
        /// `proc.exepath`.
        exe: String,
        /// `proc.name`.
        name: String,
        /// `proc.pexepath`; absent for a process without a known parent (the entrypoint).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
    },
    /// A listening socket.
    Listen {
        /// `fd.l4proto`.
        proto: String,
        /// `fd.sport`.
        port: u16,
    },
    /// An outbound connection.
    Connect {
        /// `fd.l4proto`.
        proto: String,
        /// `fd.rport`.
        port: u16,
        /// `fd.rip`, or the CIDR it was aggregated to, or the name of an AWS or ECS endpoint
        /// ([`FIXED_ENDPOINTS`], [`VPC_RESOLVER`]) whose addresses the snapshot lists.
        dest: String,
    },
    /// An inbound connection.
    Inbound {
        /// `fd.l4proto`.
        proto: String,
        /// `fd.lport`.
        port: u16,
        /// `fd.rip`, or the CIDR it was aggregated to.
        peer: String,
    },
    /// A file written, or a directory any file of which may be written.
    Write {
        /// `fd.name`, or a directory (`fd.directory`) when `dir`.
        path: String,
        /// The path is a directory standing for every file in it.
        #[serde(default, skip_serializing_if = "is_false")]
        dir: bool,
    },
    /// A file read.
    Read {
        /// `fd.name`.
        path: String,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Entry {
    /// The kind's name, as in snapshots and overflow counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Exec { .. } => "exec",
            Entry::Listen { .. } => "listen",
            Entry::Connect { .. } => "connect",
            Entry::Inbound { .. } => "inbound",
            Entry::Write { .. } => "write",
            Entry::Read { .. } => "read",
        }
    }
}

/// The bounds of learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Containers learnt; events of further containers are counted, not learnt.
    pub max_containers: usize,
    /// Entries per container.
    pub max_entries: usize,
    /// Files written per directory before the directory stands for them.
    pub files_per_dir: usize,
    /// Addresses per network (/24, /64), per direction and port, before the network stands
    /// for them.
    pub addrs_per_net: usize,
    /// Image digests kept per container.
    pub max_digests: usize,
    /// Longest path or name kept (longer ones are cut at a character boundary).
    pub max_text: usize,
}

/// The most heap one container's aggregate takes at the default [`Limits`] (1,024 entries,
/// texts cut at 256 bytes), every entry as large as it can be: the memory cap stated in
/// `docs/service-owners.md` (tested in `the_memory_estimate_stays_below_the_stated_cap`).
pub const CONTAINER_MEMORY_CAP: usize = 3 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_containers: 32,
            max_entries: 1024,
            files_per_dir: 8,
            addrs_per_net: 4,
            max_digests: 4,
            max_text: 256,
        }
    }
}

/// The AWS and ECS endpoints a task reaches at fixed link-local addresses, with their names
/// as destinations of a profile and what they are.
pub const FIXED_ENDPOINTS: [(Ipv4Addr, &str, &str); 3] = [
    (
        Ipv4Addr::new(169, 254, 170, 2),
        "ecs-agent",
        "ECS agent: task metadata and task role credentials",
    ),
    (
        Ipv4Addr::new(169, 254, 169, 254),
        "imds",
        "EC2 instance metadata service (IMDS)",
    ),
    (
        Ipv4Addr::new(169, 254, 169, 253),
        "amazon-dns",
        "Amazon DNS server (link-local)",
    ),
];

/// The name of the VPC's DNS resolver(s) (from the task metadata) as a destination.
pub const VPC_RESOLVER: &str = "vpc-resolver";

/// What a named endpoint is, for the profile's comments.
pub fn endpoint_description(name: &str) -> Option<&'static str> {
    if name == VPC_RESOLVER {
        return Some("the VPC's DNS resolver (Route 53 Resolver), from the task metadata");
    }
    FIXED_ENDPOINTS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(_, _, description)| *description)
}

/// Most named endpoints a learner keeps (the fixed ones and a few resolvers).
const MAX_ENDPOINTS: usize = 16;

/// An address set being learnt: the addresses of one network on one port and direction, until
/// there are too many and the network stands for them.
#[derive(Debug, Default)]
struct Spread<T> {
    members: Vec<T>,
    collapsed: bool,
}

/// Key of an address spread: direction (0 out, 1 in), protocol, port, network.
type NetKey = (u8, String, u16, IpAddr);

/// Exact key of one remote address: direction, protocol code (1 tcp, 2 udp), port, address.
type AddrKey = (u8, u8, u16, IpAddr);

/// `a == b` for the texts of the fast paths, inlined: a path or name of a few words compares in
/// a few loads, where a call to `memcmp` costs more than the comparison.
#[inline(always)]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len > 32 {
        return a == b;
    }
    // Two overlapping loads from each end cover the text.
    if let (Some(a0), Some(a1), Some(b0), Some(b1)) = (
        a.first_chunk::<16>(),
        a.last_chunk::<16>(),
        b.first_chunk::<16>(),
        b.last_chunk::<16>(),
    ) {
        return a0 == b0 && a1 == b1;
    }
    if let (Some(a0), Some(a1), Some(b0), Some(b1)) = (
        a.first_chunk::<8>(),
        a.last_chunk::<8>(),
        b.first_chunk::<8>(),
        b.last_chunk::<8>(),
    ) {
        return u64::from_ne_bytes(*a0) == u64::from_ne_bytes(*b0)
            && u64::from_ne_bytes(*a1) == u64::from_ne_bytes(*b1);
    }
    if let (Some(a0), Some(a1), Some(b0), Some(b1)) = (
        a.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.first_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        return u32::from_ne_bytes(*a0) == u32::from_ne_bytes(*b0)
            && u32::from_ne_bytes(*a1) == u32::from_ne_bytes(*b1);
    }
    // At most three bytes: the first, middle and last are all of them.
    a.first() == b.first() && a.get(len / 2) == b.get(len / 2) && a.last() == b.last()
}

/// `a == b` for an entry's optional text and the event's.
#[inline(always)]
fn same_option(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// An IPv4 remote address's exact key packed in a word, never 0: direction, protocol code,
/// port, address. `None` for IPv6 and protocols without a code.
#[inline]
fn packed_v4(direction: u8, code: u8, port: u16, remote: IpAddr) -> Option<u64> {
    match remote {
        IpAddr::V4(v4) if code != 0 => Some(
            1 << 63
                | u64::from(direction) << 58
                | u64::from(code) << 48
                | u64::from(port) << 32
                | u64::from(u32::from(v4)),
        ),
        _ => None,
    }
}

/// The place of a packed key in the direct-mapped address cache (256 places). Unkeyed: a
/// workload aiming at it only makes it miss, and a miss takes the keyed map.
#[inline]
fn packed_place(packed: u64) -> usize {
    (packed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

// What a text fingerprint stands for (`TextKeys::text`'s tag).
const TAG_EXEC: u64 = 1;
const TAG_LISTEN: u64 = 2;
const TAG_WRITE: u64 = 3;
const TAG_READ: u64 = 4;
const TAG_EXEC_NAME: u64 = 5;
const TAG_EXEC_PARENT: u64 = 6;

/// An exec's place in the cache and fingerprint. The three texts are fingerprinted
/// independently, then combined; the place needs only the first two, which are read before the
/// parent's (one more pointer away in the event).
#[inline(always)]
fn exec_fingerprint(keys: &TextKeys, exe: &str, name: &str, parent: Option<&str>) -> (u64, u64) {
    let place = keys.text(exe, TAG_EXEC) ^ keys.text(name, TAG_EXEC_NAME);
    let parent = parent.map_or(0, |p| keys.text(p, TAG_EXEC_PARENT));
    (place, keys.combine(place, parent))
}

/// Sets of [`ContainerProfile`]'s `recent` cache.
const RECENT_SETS: usize = 128;

/// The set of `recent` a place key picks: its top bits.
#[inline(always)]
fn recent_set(place: u64) -> usize {
    (place >> (64 - RECENT_SETS.trailing_zeros())) as usize
}

/// Protocols with an exact fast path.
#[inline]
fn proto_code(proto: &str) -> u8 {
    match proto {
        "tcp" => 1,
        "udp" => 2,
        _ => 0,
    }
}

/// What one container was seen doing. Entries live in slots (counted), found by an exact index
/// (the slow path, which allocates the entry) or, for entries seen before, by fast maps keyed
/// by what the event holds, without allocating.
#[derive(Debug)]
pub struct ContainerProfile {
    digests: Vec<String>,
    /// The earliest and latest event time; meaningful once `events` is not 0.
    first_seen: Timestamp,
    last_seen: Timestamp,
    events: u64,
    /// The keys of the fingerprints of `fast` and `recent`.
    keys: TextKeys,
    slots: Vec<Option<(Entry, u64)>>,
    free: Vec<u32>,
    index: HashMap<Entry, u32>,
    fast: HashMap<u64, u32, KeyedFxBuild>,
    /// A cache in front of `fast`: 128 sets of two (fingerprint, slot), the most recent first,
    /// a set chosen by the top bits of a place key (the fingerprint, or for an exec the
    /// fingerprint of its executable and name alone, known before the parent's). Entries it
    /// holds are checked like those of `fast`.
    recent: Vec<[(u64, u32); 2]>,
    addresses: HashMap<AddrKey, u32, KeyedFxBuild>,
    /// A direct-mapped cache in front of `addresses` for IPv4 keys: (packed key, slot). Emptied
    /// when a network collapse frees the slots of its addresses.
    recent_addrs: Vec<(u64, u32)>,
    nets: HashMap<NetKey, Spread<IpAddr>>,
    dirs: HashMap<String, Spread<String>>,
    /// Named endpoints this container connected to, with the addresses seen.
    named: BTreeMap<String, BTreeSet<IpAddr>>,
    overflow: BTreeMap<&'static str, u64>,
}

impl ContainerProfile {
    /// An empty aggregate whose fast paths fingerprint texts with `keys`.
    fn new(keys: TextKeys) -> ContainerProfile {
        ContainerProfile {
            digests: Vec::new(),
            first_seen: Timestamp(u64::MAX),
            last_seen: Timestamp(0),
            events: 0,
            keys,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            fast: HashMap::default(),
            recent: Vec::new(),
            addresses: HashMap::default(),
            recent_addrs: Vec::new(),
            nets: HashMap::new(),
            dirs: HashMap::new(),
            named: BTreeMap::new(),
            overflow: BTreeMap::new(),
        }
    }
}

/// A learnt aggregate of every container, as a snapshot gives it: entries sorted, with counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSummary {
    /// `container.name`.
    pub container: String,
    /// The image digests seen.
    #[serde(default)]
    pub image_digests: Vec<String>,
    /// First event learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    /// Last event learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Events learnt.
    #[serde(default)]
    pub events: u64,
    /// The heap the learner held for this container when the snapshot was taken, in bytes (an
    /// estimate from its tables' capacities and texts); 0 when unknown.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub memory_bytes: u64,
    /// The named endpoints among the destinations (`ecs-agent`, `vpc-resolver`, ...), with
    /// the addresses they stood for in this task.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, Vec<String>>,
    /// New entries not learnt because the container's cap was reached, by kind: the profile
    /// is incomplete for those kinds ("profile overflow").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overflow: BTreeMap<String, u64>,
    /// What was seen, in order, with how often.
    #[serde(default)]
    pub entries: Vec<Counted>,
}

/// An entry with its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// Occurrences.
    pub n: u64,
}

/// Learns every container's profile from events.
#[derive(Debug, Default)]
pub struct Learner {
    limits: Limits,
    /// By container name; a handful per task, so a scan beats hashing the name.
    containers: Vec<(String, ContainerProfile)>,
    /// Events of containers without a name (no ECS metadata), not learnt.
    unnamed: u64,
    /// Events of containers beyond `max_containers`, not learnt.
    containers_overflow: u64,
    /// Addresses learnt by name, not as addresses: [`FIXED_ENDPOINTS`] and what
    /// [`Learner::name_endpoint`] added.
    endpoints: Vec<(IpAddr, String)>,
    /// The keys of every container's fingerprints (per process, random).
    keys: TextKeys,
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The IPv4 form of an IPv4-mapped IPv6 address.
#[inline]
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The /24 or /64 network of an address.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The CIDR text of the network an address is aggregated to.
pub(crate) fn cidr(net: IpAddr) -> String {
    match net {
        IpAddr::V4(_) => format!("{net}/24"),
        IpAddr::V6(_) => format!("{net}/64"),
    }
}

/// The directory part of a path (`/` for a file at the root), as `fd.directory` gives it.
pub(crate) fn directory(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(end) => &path[..end],
        None => "",
    }
}

/// A text that a rules file can carry: no control characters.
fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

impl Learner {
    /// A learner with these bounds.
    pub fn new(limits: Limits) -> Learner {
        Learner {
            limits,
            endpoints: FIXED_ENDPOINTS
                .iter()
                .map(|(ip, name, _)| (IpAddr::V4(*ip), (*name).to_owned()))
                .collect(),
            ..Learner::default()
        }
    }

    /// Learns connections to `ip` as connections to the endpoint `name` (the VPC resolver the
    /// task metadata names): the profile allows the name, whatever its address in another
    /// task. At most 16 endpoints; an address already named keeps its name. Connections learnt
    /// before keep their address.
    pub fn name_endpoint(&mut self, ip: IpAddr, name: &str) {
        let ip = canonical(ip);
        if self.endpoints.len() < MAX_ENDPOINTS && !self.endpoints.iter().any(|(a, _)| *a == ip) {
            self.endpoints.push((ip, name.to_owned()));
        }
    }

    /// Learns from one event. Events of the monitor itself, without a container or outside
    /// any, and of kinds a profile does not cover are ignored.
    pub fn observe(&mut self, event: &Event) {
        let learnt = matches!(
            event.evt_type(),
            EventType::Execve
                | EventType::Listen
                | EventType::Connect
                | EventType::Accept
                | EventType::Open
                | EventType::Creat
                | EventType::Unlinkat
                | EventType::Renameat
                | EventType::Chmod
                | EventType::Mkdir
        );
        if !learnt {
            return;
        }
        let Some(container) = event.container.as_deref() else {
            return;
        };
        if container.id == "host" {
            return;
        }
        let Some(name) = container.name.as_deref().filter(|n| !n.is_empty()) else {
            self.unnamed += 1;
            return;
        };
        let limits = self.limits;
        let position = match self.containers.iter().position(|(n, _)| same(n, name)) {
            Some(position) => position,
            None if self.containers.len() < limits.max_containers => {
                self.containers
                    .push((name.to_owned(), ContainerProfile::new(self.keys)));
                self.containers.len() - 1
            }
            None => {
                self.containers_overflow += 1;
                return;
            }
        };
        let endpoints = &self.endpoints;
        let Some((_, profile)) = self.containers.get_mut(position) else {
            return;
        };
        profile.events += 1;
        let time = event.evt.time;
        profile.first_seen = profile.first_seen.min(time);
        profile.last_seen = profile.last_seen.max(time);
        // A container's image does not change within a task: its digest is looked at until
        // known, then every 1,024th event.
        if (profile.digests.is_empty() || profile.events % 1024 == 0)
            && let Some(digest) = container.image_digest.as_deref()
            && profile.digests.len() < limits.max_digests
            && !profile
                .digests
                .iter()
                .any(|d| d == cut(digest, limits.max_text))
        {
            profile
                .digests
                .push(cut(digest, limits.max_text).to_owned());
        }
        profile.learn(event, &limits, endpoints);
    }

    /// The learnt profiles, one per container, sorted by name, entries sorted.
    pub fn summaries(&self) -> Vec<ContainerSummary> {
        let mut out: Vec<ContainerSummary> = self
            .containers
            .iter()
            .map(|(name, profile)| profile.summary(name))
            .collect();
        out.sort_by(|a, b| a.container.cmp(&b.container));
        out
    }

    /// Events not learnt because their container had no name.
    pub fn unnamed(&self) -> u64 {
        self.unnamed
    }

    /// Events not learnt because too many containers were learnt already.
    pub fn containers_overflow(&self) -> u64 {
        self.containers_overflow
    }

    /// Entries held, over every container (what bounds the memory).
    pub fn entries(&self) -> usize {
        self.containers.iter().map(|(_, p)| p.index.len()).sum()
    }

    /// The heap the learner holds, in bytes: an estimate from the capacities of its tables and
    /// the lengths of the texts they hold (checked against a counting allocator in
    /// `bench/criterion/profile.rs`). Bounded by the caps: [`Limits::max_containers`] times
    /// [`ContainerProfile::memory_bytes`] at [`Limits::max_entries`] entries of
    /// [`Limits::max_text`] bytes.
    pub fn memory_bytes(&self) -> usize {
        self.containers.capacity() * size_of::<(String, ContainerProfile)>()
            + self.endpoints.capacity() * size_of::<(IpAddr, String)>()
            + self
                .endpoints
                .iter()
                .map(|(_, name)| name.capacity())
                .sum::<usize>()
            + self
                .containers
                .iter()
                .map(|(name, p)| name.capacity() + p.memory_bytes())
                .sum::<usize>()
    }
}

/// The heap a hash table of `capacity` items of `item` bytes takes (hashbrown: buckets a power
/// of two at most 7/8 full, one control byte per bucket).
fn table_bytes(capacity: usize, item: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (item + 1) + 16
}

/// The heap an entry's texts take.
fn entry_text_bytes(entry: &Entry) -> usize {
    match entry {
        Entry::Exec { exe, name, parent } => {
            exe.capacity() + name.capacity() + parent.as_ref().map_or(0, String::capacity)
        }
        Entry::Listen { proto, .. } => proto.capacity(),
        Entry::Connect { proto, dest, .. } => proto.capacity() + dest.capacity(),
        Entry::Inbound { proto, peer, .. } => proto.capacity() + peer.capacity(),
        Entry::Write { path, .. } | Entry::Read { path } => path.capacity(),
    }
}

impl ContainerProfile {
    /// The heap this container's aggregate takes, in bytes (an estimate, see
    /// [`Learner::memory_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        let slots = self.slots.capacity() * size_of::<Option<(Entry, u64)>>()
            + self
                .slots
                .iter()
                .flatten()
                .map(|(entry, _)| entry_text_bytes(entry))
                .sum::<usize>();
        // The exact index holds a second copy of every entry.
        let index = table_bytes(self.index.capacity(), size_of::<(Entry, u32)>())
            + self.index.keys().map(entry_text_bytes).sum::<usize>();
        let nets = table_bytes(self.nets.capacity(), size_of::<(NetKey, Spread<IpAddr>)>())
            + self
                .nets
                .iter()
                .map(|(key, spread)| {
                    key.1.capacity() + spread.members.capacity() * size_of::<IpAddr>()
                })
                .sum::<usize>();
        let dirs = table_bytes(self.dirs.capacity(), size_of::<(String, Spread<String>)>())
            + self
                .dirs
                .iter()
                .map(|(dir, spread)| {
                    dir.capacity()
                        + spread.members.capacity() * size_of::<String>()
                        + spread.members.iter().map(String::capacity).sum::<usize>()
                })
                .sum::<usize>();
        let named = self
            .named
            .keys()
            .map(|name| name.capacity() + 64)
            .sum::<usize>();
        slots
            + index
            + nets
            + dirs
            + named
            + self.free.capacity() * size_of::<u32>()
            + table_bytes(self.fast.capacity(), size_of::<(u64, u32)>())
            + self.recent.capacity() * size_of::<[(u64, u32); 2]>()
            + self.recent_addrs.capacity() * size_of::<(u64, u32)>()
            + table_bytes(self.addresses.capacity(), size_of::<(AddrKey, u32)>())
            + self.digests.capacity() * size_of::<String>()
            + self.digests.iter().map(String::capacity).sum::<usize>()
            // A B-tree of at most six kinds: one node.
            + if self.overflow.is_empty() { 0 } else { 11 * size_of::<(&str, u64)>() + 16 }
    }

    /// Counts `n` more of the entry in slot `slot` when it is what `matches` says.
    #[inline]
    fn hit(&mut self, slot: Option<u32>, matches: impl Fn(&Entry) -> bool) -> bool {
        let Some(slot) = slot else {
            return false;
        };
        match self.slots.get_mut(slot as usize) {
            Some(Some((entry, count))) if matches(entry) => {
                *count += 1;
                true
            }
            _ => false,
        }
    }

    /// The slot a fingerprint was last seen with, if any (to be checked by the caller), looked
    /// for in the set of `recent` that `place` picks, then in `fast`.
    #[inline(always)]
    fn find(&mut self, place: u64, fp: u64) -> Option<u32> {
        if let Some(&[(fp0, slot0), (fp1, slot1)]) = self.recent.get(recent_set(place)) {
            if fp0 == fp && slot0 != u32::MAX {
                return Some(slot0);
            }
            if fp1 == fp && slot1 != u32::MAX {
                return Some(slot1);
            }
        }
        self.find_in_map(place, fp)
    }

    /// [`ContainerProfile::find`] past `recent`: the keyed map, whose answer `recent` then
    /// keeps.
    #[inline(never)]
    fn find_in_map(&mut self, place: u64, fp: u64) -> Option<u32> {
        let slot = self.fast.get(&fp).copied()?;
        self.cache(place, fp, slot);
        Some(slot)
    }

    /// Puts a fingerprint's slot first in its set of `recent`; the other place keeps the most
    /// recent other fingerprint of the set.
    fn cache(&mut self, place: u64, fp: u64, slot: u32) {
        if self.recent.is_empty() {
            self.recent = vec![[(0, u32::MAX); 2]; RECENT_SETS];
        }
        if let Some(set) = self.recent.get_mut(recent_set(place)) {
            if set[0].0 != fp {
                set[1] = set[0];
            }
            set[0] = (fp, slot);
        }
    }

    /// Remembers the slot of a fingerprint (in `fast` while there is room, and in `recent`).
    fn remember(&mut self, place: u64, fp: u64, slot: u32, limits: &Limits) {
        if Self::fast_room(self.fast.len(), limits) {
            self.fast.insert(fp, slot);
        }
        self.cache(place, fp, slot);
    }

    /// Remembers the slot of a packed IPv4 key in the direct-mapped address cache.
    fn remember_addr(&mut self, packed: u64, slot: u32) {
        if self.recent_addrs.is_empty() {
            self.recent_addrs = vec![(0, u32::MAX); 256];
        }
        if let Some(place) = self.recent_addrs.get_mut(packed_place(packed)) {
            *place = (packed, slot);
        }
    }

    /// Bounds a fast map: at most four keys per entry the container may hold.
    fn fast_room(len: usize, limits: &Limits) -> bool {
        len < limits.max_entries.saturating_mul(4)
    }

    fn learn(&mut self, event: &Event, limits: &Limits, endpoints: &[(IpAddr, String)]) {
        match event.evt_type() {
            EventType::Execve => {
                let Some(proc) = event.proc.as_deref() else {
                    return;
                };
                let Some(exe) = proc.exepath.as_deref() else {
                    return;
                };
                let exe = cut(exe, limits.max_text);
                let name = cut(&proc.name, limits.max_text);
                let parent = proc
                    .ancestors
                    .first()
                    .and_then(|a| a.exepath.as_deref())
                    .map(|p| cut(p, limits.max_text));
                let (place, fp) = exec_fingerprint(&self.keys, exe, name, parent);
                let slot = self.find(place, fp);
                let known = self.hit(slot, |entry| {
                    matches!(entry, Entry::Exec { exe: e, name: n, parent: p }
                        if same(e, exe) && same(n, name) && same_option(p.as_deref(), parent))
                });
                if known || !printable(exe) || !printable(name) {
                    return;
                }
                let entry = Entry::Exec {
                    exe: exe.to_owned(),
                    name: name.to_owned(),
                    parent: parent.filter(|p| printable(p)).map(str::to_owned),
                };
                if let Some(slot) = self.bump(entry, 1, limits) {
                    self.remember(place, fp, slot, limits);
                }
            }
            EventType::Listen => {
                let Some(fd) = event.fd.as_deref() else {
                    return;
                };
                let (Some(proto), Some(port)) = (fd.l4proto.as_deref(), fd.sport) else {
                    return;
                };
                let proto = cut(proto, 16);
                let fp = self
                    .keys
                    .combine(self.keys.text(proto, TAG_LISTEN), u64::from(port));
                let slot = self.find(fp, fp);
                if self.hit(slot, |entry| {
                    matches!(entry, Entry::Listen { proto: p, port: n } if p == proto && *n == port)
                }) {
                    return;
                }
                let entry = Entry::Listen {
                    proto: proto.to_owned(),
                    port,
                };
                if let Some(slot) = self.bump(entry, 1, limits) {
                    self.remember(fp, fp, slot, limits);
                }
            }
            EventType::Connect | EventType::Accept => {
                let Some(fd) = event.fd.as_deref() else {
                    return;
                };
                let Some(proto) = fd.l4proto.as_deref() else {
                    return;
                };
                let outbound = event.evt_type() == EventType::Connect;
                // Remote end: the server for a connection made, the client for one accepted.
                let (remote, port) = if outbound {
                    (fd.sip, fd.sport)
                } else {
                    (fd.cip, fd.sport)
                };
                let (Some(remote), Some(port)) = (remote, port) else {
                    return;
                };
                let remote = canonical(remote);
                let code = proto_code(proto);
                let key: AddrKey = (u8::from(!outbound), code, port, remote);
                let packed = packed_v4(u8::from(!outbound), code, port, remote);
                if let Some(packed) = packed
                    && let Some(&(cached, slot)) = self.recent_addrs.get(packed_place(packed))
                    && cached == packed
                    && self.hit(Some(slot), |_| true)
                {
                    return;
                }
                if code != 0 {
                    let slot = self.addresses.get(&key).copied();
                    if self.hit(slot, |_| true) {
                        if let (Some(packed), Some(slot)) = (packed, slot) {
                            self.remember_addr(packed, slot);
                        }
                        return;
                    }
                }
                if remote.is_loopback() || remote.is_unspecified() {
                    return;
                }
                let named = endpoints
                    .iter()
                    .find(|(ip, _)| *ip == remote)
                    .filter(|_| outbound);
                let slot = match named {
                    Some((ip, name)) => {
                        let slot = self.bump(
                            Entry::Connect {
                                proto: cut(proto, 16).to_owned(),
                                port,
                                dest: name.clone(),
                            },
                            1,
                            limits,
                        );
                        if slot.is_some() {
                            self.named.entry(name.clone()).or_default().insert(*ip);
                        }
                        slot
                    }
                    None => self.learn_address(outbound, cut(proto, 16), port, remote, limits),
                };
                if code != 0
                    && let Some(slot) = slot
                    && Self::fast_room(self.addresses.len(), limits)
                {
                    self.addresses.insert(key, slot);
                    if let Some(packed) = packed {
                        self.remember_addr(packed, slot);
                    }
                }
            }
            EventType::Open => {
                let Some(fd) = event.fd.as_deref() else {
                    return;
                };
                let Some(path) = fd.name.as_deref() else {
                    return;
                };
                if fd.open_write == Some(true) {
                    self.learn_write(path, limits);
                } else if fd.open_read == Some(true) {
                    let path = cut(path, limits.max_text);
                    let fp = self.keys.text(path, TAG_READ);
                    let slot = self.find(fp, fp);
                    if self.hit(
                        slot,
                        |entry| matches!(entry, Entry::Read { path: p } if same(p, path)),
                    ) || !printable(path)
                    {
                        return;
                    }
                    let entry = Entry::Read {
                        path: path.to_owned(),
                    };
                    if let Some(slot) = self.bump(entry, 1, limits) {
                        self.remember(fp, fp, slot, limits);
                    }
                }
            }
            EventType::Creat
            | EventType::Unlinkat
            | EventType::Renameat
            | EventType::Chmod
            | EventType::Mkdir => {
                if let Some(path) = event.fd.as_deref().and_then(|fd| fd.name.as_deref()) {
                    self.learn_write(path, limits);
                }
            }
            _ => {}
        }
    }

    /// Counts an entry, by its exact value; a new one past the cap is an overflow of its kind.
    /// Returns its slot.
    fn bump(&mut self, entry: Entry, n: u64, limits: &Limits) -> Option<u32> {
        if let Some(&slot) = self.index.get(&entry) {
            if let Some(Some((_, count))) = self.slots.get_mut(slot as usize) {
                *count += n;
            }
            return Some(slot);
        }
        if self.index.len() >= limits.max_entries {
            *self.overflow.entry(entry.kind()).or_default() += n;
            return None;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(place) = self.slots.get_mut(slot as usize) {
                    *place = Some((entry.clone(), n));
                }
                slot
            }
            None => {
                self.slots.push(Some((entry.clone(), n)));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.index.insert(entry, slot);
        Some(slot)
    }

    /// Removes an entry; returns its count.
    fn remove(&mut self, entry: &Entry) -> u64 {
        let Some(slot) = self.index.remove(entry) else {
            return 0;
        };
        self.free.push(slot);
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::take)
            .map_or(0, |(_, n)| n)
    }

    fn learn_address(
        &mut self,
        outbound: bool,
        proto: &str,
        port: u16,
        remote: IpAddr,
        limits: &Limits,
    ) -> Option<u32> {
        let make = |address: String| {
            if outbound {
                Entry::Connect {
                    proto: proto.to_owned(),
                    port,
                    dest: address,
                }
            } else {
                Entry::Inbound {
                    proto: proto.to_owned(),
                    port,
                    peer: address,
                }
            }
        };
        let net = network(remote);
        let key: NetKey = (u8::from(!outbound), proto.to_owned(), port, net);
        let spread = self.nets.get(&key);
        match spread {
            Some(spread) if spread.collapsed => self.bump(make(cidr(net)), 1, limits),
            Some(spread) if spread.members.contains(&remote) => {
                self.bump(make(remote.to_string()), 1, limits)
            }
            Some(spread) if spread.members.len() < limits.addrs_per_net => {
                let slot = self.bump(make(remote.to_string()), 1, limits);
                if slot.is_some()
                    && let Some(spread) = self.nets.get_mut(&key)
                {
                    spread.members.push(remote);
                }
                slot
            }
            Some(_) => {
                // One address too many: the network stands for all of them. The cache of
                // addresses may point at the slots freed below.
                self.recent_addrs.fill((0, u32::MAX));
                let members = self
                    .nets
                    .get_mut(&key)
                    .map(|s| {
                        s.collapsed = true;
                        std::mem::take(&mut s.members)
                    })
                    .unwrap_or_default();
                let mut total = 1;
                for member in &members {
                    total += self.remove(&make(member.to_string()));
                }
                let slot = self.bump(make(cidr(net)), total, limits);
                // The members' fast keys pointed at the slots just freed.
                let code = proto_code(proto);
                for member in members {
                    let member_key: AddrKey = (u8::from(!outbound), code, port, member);
                    match slot {
                        Some(slot) => {
                            self.addresses.insert(member_key, slot);
                        }
                        None => {
                            self.addresses.remove(&member_key);
                        }
                    }
                }
                slot
            }
            None => {
                let slot = self.bump(make(remote.to_string()), 1, limits);
                if slot.is_some() {
                    self.nets.insert(
                        key,
                        Spread {
                            members: vec![remote],
                            collapsed: false,
                        },
                    );
                }
                slot
            }
        }
    }

    fn learn_write(&mut self, path: &str, limits: &Limits) {
        let path = cut(path, limits.max_text);
        let fp = self.keys.text(path, TAG_WRITE);
        let slot = self.find(fp, fp);
        if self.hit(slot, |entry| match entry {
            Entry::Write {
                path: p,
                dir: false,
            } => same(p, path),
            Entry::Write { path: p, dir: true } => same(p, directory(path)),
            _ => false,
        }) {
            return;
        }
        if !printable(path) || !path.starts_with('/') {
            return;
        }
        let slot = self.learn_write_slow(path, limits);
        if let Some(slot) = slot {
            self.remember(fp, fp, slot, limits);
        }
    }

    fn learn_write_slow(&mut self, path: &str, limits: &Limits) -> Option<u32> {
        let dir = directory(path);
        let file_entry = |p: &str| Entry::Write {
            path: p.to_owned(),
            dir: false,
        };
        let dir_entry = || Entry::Write {
            path: dir.to_owned(),
            dir: true,
        };
        match self.dirs.get(dir) {
            Some(spread) if spread.collapsed => self.bump(dir_entry(), 1, limits),
            Some(spread) if spread.members.iter().any(|m| m == path) => {
                self.bump(file_entry(path), 1, limits)
            }
            Some(spread) if spread.members.len() < limits.files_per_dir => {
                let slot = self.bump(file_entry(path), 1, limits);
                if slot.is_some()
                    && let Some(spread) = self.dirs.get_mut(dir)
                {
                    spread.members.push(path.to_owned());
                }
                slot
            }
            Some(_) => {
                let members = self
                    .dirs
                    .get_mut(dir)
                    .map(|s| {
                        s.collapsed = true;
                        std::mem::take(&mut s.members)
                    })
                    .unwrap_or_default();
                let mut total = 1;
                for member in members {
                    total += self.remove(&file_entry(&member));
                }
                // Fast keys of the members find a freed (or reused) slot whose entry no longer
                // matches, and take this path again, to the directory.
                self.bump(dir_entry(), total, limits)
            }
            None => {
                let slot = self.bump(file_entry(path), 1, limits);
                if slot.is_some() {
                    self.dirs.insert(
                        dir.to_owned(),
                        Spread {
                            members: vec![path.to_owned()],
                            collapsed: false,
                        },
                    );
                }
                slot
            }
        }
    }

    fn summary(&self, name: &str) -> ContainerSummary {
        let mut entries: Vec<Counted> = self
            .slots
            .iter()
            .flatten()
            .map(|(entry, n)| Counted {
                entry: entry.clone(),
                n: *n,
            })
            .collect();
        entries.sort_by(|a, b| a.entry.cmp(&b.entry));
        let mut digests = self.digests.clone();
        digests.sort();
        ContainerSummary {
            container: name.to_owned(),
            image_digests: digests,
            first_seen: (self.events > 0).then_some(self.first_seen),
            last_seen: (self.events > 0).then_some(self.last_seen),
            events: self.events,
            memory_bytes: self.memory_bytes() as u64,
            endpoints: self
                .named
                .iter()
                .map(|(name, ips)| (name.clone(), ips.iter().map(IpAddr::to_string).collect()))
                .collect(),
            overflow: self
                .overflow
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ancestor, Collector, Container, Fd, Process};

    fn container(name: &str) -> Box<Container> {
        Box::new(Container {
            id: format!("task-{name}"),
            name: Some(name.to_owned()),
            image_digest: Some(format!("sha256:{name}")),
            ..Container::default()
        })
    }

    pub(crate) fn exec(name: &str, exe: &str, comm: &str, parent: Option<&str>) -> Event {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.container = Some(container(name));
        event.proc = Some(Box::new(Process {
            pid: 10,
            name: comm.to_owned(),
            exepath: Some(exe.to_owned()),
            ancestors: parent
                .map(|p| Ancestor {
                    pid: 1,
                    name: "parent".into(),
                    exe: None,
                    exepath: Some(p.to_owned()),
                    args: Vec::new(),
                })
                .into_iter()
                .collect(),
            ..Process::default()
        }));
        event
    }

    pub(crate) fn connect(name: &str, ip: &str, port: u16) -> Event {
        let mut event = Event::new(EventType::Connect, Collector::Sockets);
        event.container = Some(container(name));
        event.fd = Some(Box::new(Fd {
            l4proto: Some("tcp".into()),
            cip: Some("10.0.0.5".parse().expect("ip")),
            cport: Some(40000),
            sip: Some(ip.parse().expect("ip")),
            sport: Some(port),
            local_is_client: Some(true),
            ..Fd::default()
        }));
        event
    }

    pub(crate) fn write(name: &str, path: &str) -> Event {
        let mut event = Event::new(EventType::Open, Collector::Fswatch);
        event.container = Some(container(name));
        event.fd = Some(Box::new(Fd {
            name: Some(path.to_owned()),
            open_write: Some(true),
            ..Fd::default()
        }));
        event
    }

    fn entries(learner: &Learner, name: &str) -> Vec<(Entry, u64)> {
        learner
            .summaries()
            .into_iter()
            .find(|s| s.container == name)
            .map(|s| s.entries.into_iter().map(|c| (c.entry, c.n)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn programs_are_learnt_per_container_with_name_and_parent_and_counted() {
        let mut learner = Learner::new(Limits::default());
        for _ in 0..3 {
            learner.observe(&exec("web", "/bin/busybox", "httpd", None));
        }
        learner.observe(&exec("web", "/bin/busybox", "sh", Some("/bin/busybox")));
        learner.observe(&exec("worker", "/usr/bin/python3", "python3", None));
        let web = entries(&learner, "web");
        assert_eq!(
            web,
            vec![
                (
                    Entry::Exec {
                        exe: "/bin/busybox".into(),
                        name: "httpd".into(),
                        parent: None
                    },
                    3
                ),
                (
                    Entry::Exec {
                        exe: "/bin/busybox".into(),
                        name: "sh".into(),
                        parent: Some("/bin/busybox".into())
                    },
                    1
                ),
            ]
        );
        assert_eq!(entries(&learner, "worker").len(), 1);
        let summaries = learner.summaries();
        assert_eq!(summaries[0].container, "web");
        assert_eq!(summaries[0].image_digests, ["sha256:web"]);
        assert_eq!(summaries[0].events, 4);
    }

    #[test]
    fn destinations_collapse_to_their_network_beyond_a_few_addresses_and_loopback_is_skipped() {
        let mut learner = Learner::new(Limits::default());
        for host in 1..=4 {
            learner.observe(&connect("web", &format!("198.51.100.{host}"), 443));
        }
        learner.observe(&connect("web", "203.0.113.9", 5432));
        learner.observe(&connect("web", "127.0.0.1", 6379));
        learner.observe(&connect("web", "::ffff:127.0.0.1", 6379));
        assert_eq!(
            entries(&learner, "web").len(),
            5,
            "four addresses on 443, one on 5432, no loopback"
        );
        // The fifth address of 198.51.100.0/24 on 443: the network stands for all of them.
        for host in 5..=20 {
            learner.observe(&connect("web", &format!("198.51.100.{host}"), 443));
        }
        learner.observe(&connect("web", "198.51.100.1", 443));
        let web = entries(&learner, "web");
        assert_eq!(
            web,
            vec![
                (
                    Entry::Connect {
                        proto: "tcp".into(),
                        port: 443,
                        dest: "198.51.100.0/24".into()
                    },
                    21
                ),
                (
                    Entry::Connect {
                        proto: "tcp".into(),
                        port: 5432,
                        dest: "203.0.113.9".into()
                    },
                    1
                ),
            ]
        );
        // IPv6 aggregates to its /64.
        for host in 1..=5 {
            learner.observe(&connect("web", &format!("2001:db8:0:1::{host}"), 443));
        }
        assert!(entries(&learner, "web").iter().any(|(e, n)| *e
            == Entry::Connect {
                proto: "tcp".into(),
                port: 443,
                dest: "2001:db8:0:1::/64".into()
            }
            && *n == 5));
    }

    #[test]
    fn files_collapse_to_their_directory_beyond_a_few() {
        let mut learner = Learner::new(Limits::default());
        learner.observe(&write("worker", "/etc/app/app.conf"));
        for job in 0..40 {
            learner.observe(&write("worker", &format!("/tmp/job.{job}")));
        }
        assert_eq!(
            entries(&learner, "worker"),
            vec![
                (
                    Entry::Write {
                        path: "/etc/app/app.conf".into(),
                        dir: false
                    },
                    1
                ),
                (
                    Entry::Write {
                        path: "/tmp".into(),
                        dir: true
                    },
                    40
                ),
            ]
        );
    }

    #[test]
    fn entries_seen_again_after_a_collapse_count_where_they_now_belong() {
        let mut learner = Learner::new(Limits {
            files_per_dir: 2,
            addrs_per_net: 2,
            ..Limits::default()
        });
        for path in ["/tmp/a", "/tmp/b", "/tmp/c"] {
            learner.observe(&write("w", path));
        }
        // The slots /tmp/a and /tmp/b held are reused.
        learner.observe(&write("w", "/etc/x"));
        learner.observe(&write("w", "/etc/y"));
        learner.observe(&write("w", "/tmp/a"));
        learner.observe(&write("w", "/etc/x"));
        for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            learner.observe(&connect("w", ip, 443));
        }
        learner.observe(&connect("w", "203.0.113.5", 443));
        learner.observe(&connect("w", "198.51.100.1", 443));
        learner.observe(&connect("w", "203.0.113.5", 443));
        let file = |path: &str, dir: bool| Entry::Write {
            path: path.into(),
            dir,
        };
        let to = |dest: &str| Entry::Connect {
            proto: "tcp".into(),
            port: 443,
            dest: dest.into(),
        };
        assert_eq!(
            entries(&learner, "w"),
            vec![
                (to("198.51.100.0/24"), 4),
                (to("203.0.113.5"), 2),
                (file("/etc/x", false), 2),
                (file("/etc/y", false), 1),
                (file("/tmp", true), 4),
            ]
        );
    }

    #[test]
    fn the_cap_holds_and_overflow_is_counted_by_kind() {
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let mut learner = Learner::new(limits);
        for n in 0..50 {
            learner.observe(&exec("web", &format!("/usr/bin/tool{n}"), "tool", None));
        }
        // A known entry still counts once the cap is reached.
        learner.observe(&exec("web", "/usr/bin/tool0", "tool", None));
        assert_eq!(learner.entries(), 10);
        let summary = &learner.summaries()[0];
        assert_eq!(summary.overflow.get("exec"), Some(&40));
        assert_eq!(summary.entries[0].n, 2);
    }

    #[test]
    fn events_without_a_container_name_or_of_the_host_are_not_learnt() {
        let mut learner = Learner::new(Limits::default());
        let mut unnamed = exec("web", "/bin/busybox", "sh", None);
        if let Some(c) = unnamed.container.as_mut() {
            c.name = None;
        }
        learner.observe(&unnamed);
        let mut host = exec("web", "/bin/busybox", "sh", None);
        if let Some(c) = host.container.as_mut() {
            c.id = "host".into();
        }
        learner.observe(&host);
        assert_eq!(learner.entries(), 0);
        assert_eq!(learner.unnamed(), 1);
    }

    #[test]
    fn ecs_and_aws_endpoints_are_learnt_by_name() {
        let mut learner = Learner::new(Limits::default());
        learner.observe(&connect("app", "169.254.170.2", 80));
        learner.observe(&connect("app", "::ffff:169.254.170.2", 80));
        learner.observe(&connect("app", "169.254.169.254", 80));
        // The resolver before the task metadata named it: an address.
        learner.observe(&connect("app", "10.20.0.2", 53));
        learner.name_endpoint("10.20.0.2".parse().expect("ip"), VPC_RESOLVER);
        learner.name_endpoint("10.20.0.2".parse().expect("ip"), "other");
        let mut dns = connect("app", "10.20.0.2", 53);
        if let Some(fd) = dns.fd.as_mut() {
            fd.l4proto = Some("udp".into());
        }
        learner.observe(&dns);
        let to = |proto: &str, port: u16, dest: &str| Entry::Connect {
            proto: proto.into(),
            port,
            dest: dest.into(),
        };
        assert_eq!(
            entries(&learner, "app"),
            vec![
                (to("tcp", 53, "10.20.0.2"), 1),
                (to("tcp", 80, "ecs-agent"), 2),
                (to("tcp", 80, "imds"), 1),
                (to("udp", 53, VPC_RESOLVER), 1),
            ]
        );
        let summary = &learner.summaries()[0];
        assert_eq!(
            summary.endpoints,
            BTreeMap::from([
                ("ecs-agent".to_owned(), vec!["169.254.170.2".to_owned()]),
                ("imds".to_owned(), vec!["169.254.169.254".to_owned()]),
                (VPC_RESOLVER.to_owned(), vec!["10.20.0.2".to_owned()]),
            ])
        );
        assert!(endpoint_description("ecs-agent").is_some());
        assert!(endpoint_description("10.20.0.2").is_none());
    }

    #[test]
    fn the_memory_estimate_stays_below_the_stated_cap() {
        let limits = Limits::default();
        let mut learner = Learner::new(limits);
        let long = |n: usize, tag: &str| {
            let mut text = format!("/{tag}-{n:06}/");
            text.push_str(&"x".repeat(400));
            text
        };
        let empty = learner.memory_bytes();
        // Twice the cap of the largest entries there are: programs with an executable, name
        // and parent each cut at 256 bytes, and files written in directories of their own.
        for n in 0..limits.max_entries {
            learner.observe(&exec(
                "busy",
                &long(n, "exe"),
                &long(n, "name"),
                Some(&long(n, "parent")),
            ));
            learner.observe(&write("busy", &format!("{}/f", long(n, "dir"))));
        }
        assert_eq!(learner.entries(), limits.max_entries);
        let full = learner.memory_bytes();
        assert!(full > empty + limits.max_entries * 3 * 200, "{full}");
        assert!(
            full <= CONTAINER_MEMORY_CAP,
            "{full} bytes for one container, above the stated cap"
        );
        // Repeats cost nothing more.
        for n in 0..limits.max_entries {
            learner.observe(&exec(
                "busy",
                &long(n, "exe"),
                &long(n, "name"),
                Some(&long(n, "parent")),
            ));
        }
        assert_eq!(learner.memory_bytes(), full);
        // The snapshot says what the container holds.
        let shipped = learner.summaries()[0].memory_bytes as usize;
        assert!(shipped > full / 2 && shipped <= full, "{shipped} of {full}");
    }

    #[test]
    fn a_busy_workload_stays_within_the_cap() {
        // 200 distinct programs and 50 destinations, repeated: the profile holds what is
        // distinct, not what is repeated.
        let mut learner = Learner::new(Limits::default());
        for _round in 0..20 {
            for p in 0..200 {
                learner.observe(&exec(
                    "busy",
                    &format!("/usr/local/bin/program-{p}"),
                    &format!("program-{p}"),
                    Some("/bin/sh"),
                ));
            }
            for d in 0..50u16 {
                learner.observe(&connect(
                    "busy",
                    &format!("10.0.{}.{}", d / 10, d % 10),
                    443,
                ));
            }
        }
        let summary = &learner.summaries()[0];
        assert!(summary.overflow.is_empty(), "{:?}", summary.overflow);
        assert_eq!(summary.events, 20 * 250);
        // 200 programs, and 5 networks of 10 addresses each on one port.
        assert_eq!(learner.entries(), 205);
        assert!(learner.entries() <= Limits::default().max_entries);
    }

    /// A read of `path` (the watch set's sensitive paths).
    fn read(name: &str, path: &str) -> Event {
        let mut event = write(name, path);
        if let Some(fd) = event.fd.as_mut() {
            fd.open_write = None;
            fd.open_read = Some(true);
        }
        event
    }

    /// Keys under which every text of 8 to 16 bytes ending in `bin/tool` fingerprints to 0
    /// (its last word cancels the key it is xored with, and the product is 0), and so does
    /// every exec without a parent (the last key is 0), like a write of such a path.
    fn colliding_keys() -> TextKeys {
        let k1 = u64::from_le_bytes(*b"bin/tool");
        TextKeys::with_keys([0x1234_5678_9abc_def1, k1, 7, 11, 13, 0])
    }

    fn learner_with(keys: TextKeys, limits: Limits) -> Learner {
        Learner {
            keys,
            ..Learner::new(limits)
        }
    }

    /// The summaries without the memory estimate (which depends on how full the fast maps are).
    fn learnt(learner: &Learner) -> Vec<ContainerSummary> {
        let mut summaries = learner.summaries();
        for summary in &mut summaries {
            summary.memory_bytes = 0;
        }
        summaries
    }

    #[test]
    fn events_whose_fingerprints_collide_are_each_learnt_exactly() {
        let keys = colliding_keys();
        for (a, b) in [
            ("/usr/bin/tool", "/opt/bin/tool"),
            ("/usr/bin/tool", "/bin/tool"),
        ] {
            assert_eq!(keys.text(a, TAG_EXEC), keys.text(b, TAG_EXEC));
            assert_eq!(keys.text(a, TAG_WRITE), 0);
        }
        let (usr, _) = exec_fingerprint(&keys, "/usr/bin/tool", "tool", None);
        let (opt, fp) = exec_fingerprint(&keys, "/opt/bin/tool", "tool", None);
        assert_eq!(usr, opt, "the same place in the cache");
        assert_eq!(fp, 0, "an exec and a write share a fingerprint");
        let mut learner = learner_with(keys, Limits::default());
        let events = [
            exec("w", "/usr/bin/tool", "tool", None),
            exec("w", "/opt/bin/tool", "tool", None),
            write("w", "/usr/bin/tool"),
            exec("w", "/bin/tool", "tool", None),
            write("w", "/opt/bin/tool"),
            read("w", "/usr/bin/tool"),
        ];
        // Each in turn, so that every event finds the slot of another behind its fingerprint.
        for round in 0..5 {
            for (n, event) in events.iter().enumerate() {
                if n <= round {
                    learner.observe(event);
                }
            }
        }
        let program = |exe: &str| Entry::Exec {
            exe: exe.into(),
            name: "tool".into(),
            parent: None,
        };
        let file = |path: &str| Entry::Write {
            path: path.into(),
            dir: false,
        };
        assert_eq!(
            entries(&learner, "w"),
            vec![
                (program("/bin/tool"), 2),
                (program("/opt/bin/tool"), 4),
                (program("/usr/bin/tool"), 5),
                (file("/opt/bin/tool"), 1),
                (file("/usr/bin/tool"), 3),
            ]
        );
        // The read is past the fifth round: not seen. Now it is, twice.
        learner.observe(&events[5]);
        learner.observe(&events[5]);
        assert!(entries(&learner, "w").contains(&(
            Entry::Read {
                path: "/usr/bin/tool".into()
            },
            2
        )));
        assert_eq!(learner.summaries()[0].events, 5 + 4 + 3 + 2 + 1 + 2);
    }

    #[test]
    fn the_inlined_comparison_is_string_equality() {
        for len in 0..=40 {
            let text: String = (0..len)
                .map(|n| char::from(b'a' + (n % 26) as u8))
                .collect();
            assert!(same(&text, &text.clone()), "{len}");
            assert!(!same(&text, &format!("{text}a")), "{len} and one more");
            for at in 0..len {
                let mut changed = text.clone().into_bytes();
                changed[at] = b'Z';
                let changed = String::from_utf8(changed).expect("ascii");
                assert!(!same(&text, &changed), "byte {at} of {len}");
            }
        }
        assert!(same_option(None, None));
        assert!(!same_option(Some(""), None));
        assert!(!same_option(None, Some("/bin/sh")));
    }

    #[test]
    fn programs_sharing_a_place_in_the_cache_are_each_counted() {
        // One executable and name run by three parents: one place in the cache (a set of two),
        // three fingerprints.
        let mut learner = Learner::new(Limits::default());
        let parents = ["/bin/sh", "/usr/local/bin/node", "/usr/sbin/cron"];
        for round in 0..4 {
            for parent in parents {
                learner.observe(&exec("w", "/bin/busybox", "sh", Some(parent)));
            }
            learner.observe(&exec("w", "/bin/busybox", "sh", Some(parents[round % 3])));
        }
        let counts: Vec<u64> = entries(&learner, "w").iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [6, 5, 5]);
    }

    proptest::proptest! {
        /// Whatever the fingerprints, the same events make the same profile: a learner whose
        /// fast paths collide all the time learns what one with random keys learns, through
        /// directory and network collapses, reused slots and the cap.
        #[test]
        fn fingerprint_collisions_never_change_what_is_learnt(
            picks in proptest::collection::vec(0usize..18, 0..200),
            max_entries in 3usize..12,
        ) {
            let limits = Limits {
                max_entries,
                files_per_dir: 2,
                addrs_per_net: 2,
                ..Limits::default()
            };
            let events = [
                exec("w", "/usr/bin/tool", "tool", None),
                exec("w", "/opt/bin/tool", "tool", None),
                exec("w", "/bin/tool", "tool", None),
                exec("w", "/usr/bin/tool", "tool", Some("/usr/bin/tool")),
                exec("w", "/usr/bin/tool", "tool", Some("/opt/bin/tool")),
                exec("w", "/usr/bin/tool", "tool", Some("/usr/local/bin/node")),
                exec("w", "/usr/bin/tool", "tool", Some("/usr/local/bin/python3")),
                exec("v", "/usr/bin/tool", "tool", None),
                write("w", "/usr/bin/tool"),
                write("w", "/usr/bin/x/bin/tool"),
                write("w", "/opt/bin/tool"),
                write("w", "/opt/bin/other"),
                write("w", "/opt/bin/third"),
                read("w", "/usr/bin/tool"),
                read("w", "/opt/bin/tool"),
                connect("w", "198.51.100.1", 443),
                connect("w", "198.51.100.2", 443),
                connect("w", "198.51.100.3", 443),
            ];
            let mut colliding = learner_with(colliding_keys(), limits);
            let mut random = Learner::new(limits);
            for pick in picks {
                colliding.observe(&events[pick]);
                random.observe(&events[pick]);
            }
            proptest::prop_assert_eq!(learnt(&colliding), learnt(&random));
        }
    }
}
