//! Restart carry-over: what a worker already reported is handed to the worker that replaces
//! it, so that a restart is one alert (`monitor_killed`/`monitor_exited`), not a replay of
//! every listener, connection and process the first worker had already reported.
//!
//! - The supervisor creates one anonymous memory file (`memfd`, no filesystem needed, so a
//!   read-only root filesystem is fine) before it starts the first worker, and every worker
//!   inherits it; [`CARRY_ENV`] names its descriptor.
//! - The engine thread keeps [`Reported`]: a compact key (64-bit hash of the identity) of each
//!   state-like event it processed that a fresh worker would report again from `/proc`: the
//!   image of every live process (`execve`, `clone`; dropped at `procexit`), every socket
//!   (`listen`, `connect`, `accept`, `socket`; the last [`MAX_SOCKETS`]) and every
//!   `visibility_degraded` report. At most once per [`WRITE_EVERY`], and only when something
//!   changed, it rewrites the file: payload first, then the header with its length and hash,
//!   so a worker killed mid-write leaves a file whose hash does not match (the successor then
//!   reports everything again, as without carry-over, and says so in its log).
//! - A restarted worker reads the file before its collectors start. For [`INHERIT_FOR`], an
//!   event whose key the predecessor had is dropped before the rules see it (once per key);
//!   everything else, including what changed while no worker ran, is reported as usual.
//!
//! Identity: a process by pid, start time (clock ticks), executable and arguments, so a pid
//! reused or a new exec is new; a socket by protocol, both endpoints (in either order, since
//! direction is decided from what a poll sees) and inode, so a listener closed and reopened
//! on the same port is new.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::event::{Event, EventType};

/// Set in a worker's environment to the number of the inherited carry-over descriptor.
pub(crate) const CARRY_ENV: &str = "TASKSENTRY_CARRY_FD";
/// How long a restarted worker drops events its predecessor reported.
pub(crate) const INHERIT_FOR: Duration = Duration::from_secs(30);
/// The least time between two writes of the file.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Sockets remembered (connections come and go without a close event; the oldest go first).
pub(crate) const MAX_SOCKETS: usize = 8192;
/// Live processes remembered.
pub(crate) const MAX_PROCESSES: usize = 32768;
/// `visibility_degraded` reports remembered.
const MAX_INTERNAL: usize = 1024;
/// The largest file read back (header plus every key the caps allow, with room to spare).
const MAX_FILE: u64 = 1 << 20;

const MAGIC: &[u8; 8] = b"TSCARRY1";
const HEADER: usize = 24;

/// The carry-over file could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    /// `memfd_create` failed.
    #[error("cannot create the restart carry-over memory file: {0}")]
    Create(nix::Error),
    /// The descriptor named by the environment is not usable.
    #[error("the restart carry-over descriptor {fd} is not usable: {source}")]
    Descriptor {
        /// The descriptor number.
        fd: i32,
        /// Why.
        source: io::Error,
    },
    /// The file's content is not a complete carry-over (a worker killed while writing it).
    #[error("the restart carry-over is incomplete or damaged ({0})")]
    Damaged(&'static str),
    /// Reading the file failed.
    #[error("cannot read the restart carry-over: {0}")]
    Read(io::Error),
}

/// The supervisor's end: the memory file every worker inherits.
#[derive(Debug)]
pub(crate) struct CarryMemory {
    fd: OwnedFd,
}

impl CarryMemory {
    /// Creates the memory file, inheritable across exec (workers get it).
    pub(crate) fn create() -> Result<CarryMemory, CarryError> {
        let fd =
            nix::sys::memfd::memfd_create(c"tasksentry-carry", nix::sys::memfd::MFdFlags::empty())
                .map_err(CarryError::Create)?;
        Ok(CarryMemory { fd })
    }

    /// The descriptor number to give a worker in [`CARRY_ENV`].
    pub(crate) fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// A worker's end of the carry-over file.
#[derive(Debug)]
pub(crate) struct CarryFile {
    file: File,
}

impl CarryFile {
    /// The file named by [`CARRY_ENV`], if any. The descriptor is marked close-on-exec so
    /// that nothing the worker starts inherits it.
    pub(crate) fn from_env() -> Result<Option<CarryFile>, CarryError> {
        let Some(text) = std::env::var_os(CARRY_ENV) else {
            return Ok(None);
        };
        let fd: i32 = text
            .to_str()
            .and_then(|t| t.trim().parse().ok())
            .filter(|fd| *fd > 2)
            .ok_or(CarryError::Descriptor {
                fd: -1,
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a descriptor number"),
            })?;
        // SAFETY: F_GETFD/F_SETFD on a descriptor number only read and set its flags; an
        // invalid number fails with EBADF, which is checked before the number is owned.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(CarryError::Descriptor {
                fd,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: as above, on a descriptor just shown to be open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        // SAFETY: the supervisor created this descriptor for this worker and nothing else in
        // the worker uses it; the environment variable is removed so it is owned once.
        let file = unsafe { File::from_raw_fd(fd) };
        // SAFETY: called at start-up on the main thread, before any other thread reads the
        // environment.
        unsafe { std::env::remove_var(CARRY_ENV) };
        Ok(Some(CarryFile { file }))
    }

    #[cfg(test)]
    fn from_memory(memory: CarryMemory) -> CarryFile {
        CarryFile {
            file: File::from(memory.fd),
        }
    }

    /// The keys the predecessor wrote (empty for a file never written).
    pub(crate) fn read(&self) -> Result<HashSet<u64>, CarryError> {
        let len = self.file.metadata().map_err(CarryError::Read)?.len();
        if len == 0 {
            return Ok(HashSet::new());
        }
        if len > MAX_FILE {
            return Err(CarryError::Damaged("larger than any carry-over"));
        }
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(CarryError::Read)?;
        decode(&bytes)
    }

    /// Replaces the content with `keys`: payload first, header last.
    pub(crate) fn write(&self, keys: impl Iterator<Item = u64>) -> io::Result<()> {
        let mut payload = Vec::new();
        for key in keys {
            payload.extend_from_slice(&key.to_le_bytes());
        }
        self.file.write_all_at(&payload, HEADER as u64)?;
        self.file.write_all_at(&header(&payload), 0)?;
        self.file.set_len((HEADER + payload.len()) as u64)
    }
}

fn header(payload: &[u8]) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[16..].copy_from_slice(&fnv1a(payload).to_le_bytes());
    header
}

fn decode(bytes: &[u8]) -> Result<HashSet<u64>, CarryError> {
    let (head, rest) = bytes
        .split_at_checked(HEADER)
        .ok_or(CarryError::Damaged("shorter than its header"))?;
    if &head[..8] != MAGIC {
        return Err(CarryError::Damaged("no header"));
    }
    let word = |range: std::ops::Range<usize>| {
        let mut out = [0u8; 8];
        out.copy_from_slice(&head[range]);
        u64::from_le_bytes(out)
    };
    let len = usize::try_from(word(8..16)).unwrap_or(usize::MAX);
    let payload = rest
        .get(..len)
        .ok_or(CarryError::Damaged("shorter than its header says"))?;
    if len % 8 != 0 || fnv1a(payload) != word(16..24) {
        return Err(CarryError::Damaged("checksum mismatch"));
    }
    Ok(payload
        .chunks_exact(8)
        .map(|chunk| {
            let mut out = [0u8; 8];
            out.copy_from_slice(chunk);
            u64::from_le_bytes(out)
        })
        .collect())
}

/// FNV-1a, 64 bits: deterministic across processes (the keys must be the same in the
/// predecessor and its successor), and fast enough for a few fields per event.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Builds a key from fields, each followed by a separator byte that no field contains in
/// that position (so `("ab", "c")` and `("a", "bc")` differ).
struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    fn new(tag: u8) -> KeyBuilder {
        KeyBuilder(vec![tag, 0xff])
    }
    fn field(&mut self, bytes: &[u8]) -> &mut KeyBuilder {
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
    fn finish(&self) -> u64 {
        fnv1a(&self.0)
    }
}

/// What the key of an event identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A process image (`execve`, `clone`), by pid.
    Process(i32),
    /// A socket.
    Socket,
    /// A `visibility_degraded` report.
    Internal,
}

fn key_of(event: &Event) -> Option<(Kind, u64)> {
    match event.evt.evt_type {
        EventType::Execve | EventType::Clone => {
            let proc = event.proc.as_ref()?;
            let mut key = KeyBuilder::new(b'p');
            key.field(&proc.pid.to_le_bytes())
                .field(&proc.start_ticks.to_le_bytes())
                .field(
                    proc.exepath
                        .as_deref()
                        .or(proc.exe.as_deref())
                        .unwrap_or(&proc.name)
                        .as_bytes(),
                );
            for arg in &proc.args {
                key.field(arg.as_bytes());
            }
            Some((Kind::Process(proc.pid), key.finish()))
        }
        EventType::Listen | EventType::Connect | EventType::Accept | EventType::Socket => {
            let fd = event.fd.as_ref()?;
            let end = |ip: Option<std::net::IpAddr>, port: Option<u16>| {
                format!(
                    "{}:{}",
                    ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    port.unwrap_or(0)
                )
            };
            let (a, b) = (end(fd.cip, fd.cport), end(fd.sip, fd.sport));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let mut key = KeyBuilder::new(b's');
            key.field(fd.l4proto.as_deref().unwrap_or("").as_bytes())
                .field(low.as_bytes())
                .field(high.as_bytes())
                .field(&fd.inode.unwrap_or(0).to_le_bytes());
            if event.evt.evt_type == EventType::Socket {
                key.field(fd.name.as_deref().unwrap_or("").as_bytes());
            }
            Some((Kind::Socket, key.finish()))
        }
        EventType::Tasksentry => {
            let internal = event.internal.as_ref()?;
            if internal.kind != crate::collect::visibility::KIND {
                return None;
            }
            let container = event.container.as_ref().map_or("", |c| c.id.as_str());
            let mut key = KeyBuilder::new(b'v');
            key.field(container.as_bytes())
                .field(internal.message.as_bytes());
            Some((Kind::Internal, key.finish()))
        }
        _ => None,
    }
}

/// What the engine has reported that a successor would report again, and what the
/// predecessor had reported (on a restart). Lives on the engine thread.
#[derive(Debug)]
pub(crate) struct Reported {
    file: Option<CarryFile>,
    inherited: HashSet<u64>,
    inherited_until: Option<Instant>,
    processes: HashMap<i32, u64>,
    sockets: HashSet<u64>,
    socket_order: VecDeque<u64>,
    internal: HashSet<u64>,
    dirty: bool,
    last_write: Option<Instant>,
    /// Events dropped because the predecessor had reported them.
    pub(crate) carried: u64,
}

impl Reported {
    /// `file`: this worker's carry-over file, if supervised; `inherited`: the keys the
    /// predecessor wrote, on a restart.
    pub(crate) fn new(file: Option<CarryFile>, inherited: HashSet<u64>) -> Reported {
        let inherited_until = (!inherited.is_empty()).then(|| Instant::now() + INHERIT_FOR);
        Reported {
            file,
            inherited,
            inherited_until,
            processes: HashMap::new(),
            sockets: HashSet::new(),
            socket_order: VecDeque::new(),
            internal: HashSet::new(),
            dirty: false,
            last_write: None,
            carried: 0,
        }
    }

    /// Remembers the event; returns `false` when the predecessor already reported it (the
    /// engine then drops it).
    pub(crate) fn admit(&mut self, event: &Event) -> bool {
        if event.evt.evt_type == EventType::Procexit {
            if let Some(proc) = &event.proc
                && self.processes.remove(&proc.pid).is_some()
            {
                self.dirty = true;
            }
            return true;
        }
        if self.file.is_none() && self.inherited.is_empty() {
            return true;
        }
        let Some((kind, key)) = key_of(event) else {
            return true;
        };
        self.remember(kind, key);
        if self.inherited.remove(&key) {
            self.carried += 1;
            return false;
        }
        true
    }

    fn remember(&mut self, kind: Kind, key: u64) {
        match kind {
            Kind::Process(pid) => {
                if self.processes.len() < MAX_PROCESSES || self.processes.contains_key(&pid) {
                    self.dirty |= self.processes.insert(pid, key) != Some(key);
                }
            }
            Kind::Socket => {
                if self.sockets.insert(key) {
                    self.socket_order.push_back(key);
                    if self.socket_order.len() > MAX_SOCKETS
                        && let Some(old) = self.socket_order.pop_front()
                    {
                        self.sockets.remove(&old);
                    }
                    self.dirty = true;
                }
            }
            Kind::Internal => {
                if self.internal.len() < MAX_INTERNAL && self.internal.insert(key) {
                    self.dirty = true;
                }
            }
        }
    }

    /// Whether [`Reported::tick`] has nothing to do until something is reported: no
    /// inheritance window open, nothing unwritten.
    pub(crate) fn idle(&self) -> bool {
        self.inherited_until.is_none() && (self.file.is_none() || !self.dirty)
    }

    /// Writes the file when something changed and the last write is old enough; ends the
    /// inheritance window. Call regularly (the engine's tick).
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Some(until) = self.inherited_until
            && now >= until
        {
            tracing::info!(
                carried = self.carried,
                unmatched = self.inherited.len(),
                "Restart carry-over window ended: events the previous worker had reported were not repeated."
            );
            self.inherited = HashSet::new();
            self.inherited_until = None;
        }
        let Some(file) = &self.file else {
            return;
        };
        if !self.dirty || self.last_write.is_some_and(|last| now - last < WRITE_EVERY) {
            return;
        }
        let keys = self
            .processes
            .values()
            .chain(self.sockets.iter())
            .chain(self.internal.iter())
            .copied();
        match file.write(keys) {
            Ok(()) => self.dirty = false,
            Err(error) => {
                // Rate-limited by WRITE_EVERY.
                tracing::warn!(%error, "Cannot update the restart carry-over; a restarted worker would report again what this one reported.");
            }
        }
        self.last_write = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Collector, Fd, Process};

    fn exec(pid: i32, ticks: u64, exe: &str, args: &[&str]) -> Event {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.proc = Some(Box::new(Process {
            pid,
            start_ticks: ticks,
            name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
            exepath: Some(exe.to_owned()),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Process::default()
        }));
        event
    }

    fn listen(port: u16, inode: u64) -> Event {
        let mut event = Event::new(EventType::Listen, Collector::Sockets);
        event.fd = Some(Box::new(Fd {
            l4proto: Some("tcp".into()),
            sip: Some("0.0.0.0".parse().expect("ip")),
            sport: Some(port),
            inode: Some(inode),
            ..Fd::default()
        }));
        event
    }

    fn connection(client: &str, server: &str, kind: EventType) -> Event {
        let mut event = Event::new(kind, Collector::Sockets);
        let (cip, cport) = client.rsplit_once(':').expect("client");
        let (sip, sport) = server.rsplit_once(':').expect("server");
        event.fd = Some(Box::new(Fd {
            l4proto: Some("tcp".into()),
            cip: Some(cip.parse().expect("ip")),
            cport: Some(cport.parse().expect("port")),
            sip: Some(sip.parse().expect("ip")),
            sport: Some(sport.parse().expect("port")),
            inode: Some(7),
            ..Fd::default()
        }));
        event
    }

    fn memory_file() -> (CarryFile, CarryFile) {
        let memory = CarryMemory::create().expect("memfd");
        let dup = memory.fd.try_clone().expect("dup");
        (
            CarryFile::from_memory(memory),
            CarryFile::from_memory(CarryMemory { fd: dup }),
        )
    }

    #[test]
    fn a_successor_drops_what_its_predecessor_reported_and_nothing_else() {
        let (first_file, second_file) = memory_file();
        let mut first = Reported::new(Some(first_file), HashSet::new());
        let app = exec(40, 1000, "/usr/bin/python3", &["app.py"]);
        let miner = exec(41, 1001, "/tmp/xmrig", &["-o", "pool"]);
        let gone = exec(42, 1002, "/bin/sleep", &["1"]);
        let listener = listen(31400, 99);
        let outbound = connection("10.0.0.5:40000", "198.51.100.1:443", EventType::Connect);
        for event in [&app, &miner, &gone, &listener, &outbound] {
            assert!(first.admit(event), "a first worker drops nothing");
        }
        let mut exit = Event::new(EventType::Procexit, Collector::Procscan);
        exit.proc = gone.proc.clone();
        assert!(first.admit(&exit));
        first.tick(Instant::now());

        let inherited = second_file.read().expect("complete");
        assert_eq!(inherited.len(), 4, "two live processes, two sockets");
        let mut second = Reported::new(Some(second_file), inherited);
        // The same things, seen again from /proc: dropped once each.
        assert!(!second.admit(&app));
        assert!(!second.admit(&miner));
        assert!(!second.admit(&listener));
        // The same connection seen from the other direction (accept vs connect) is the same.
        assert!(!second.admit(&connection(
            "10.0.0.5:40000",
            "198.51.100.1:443",
            EventType::Accept
        )));
        assert_eq!(second.carried, 4);
        // What changed while no worker ran is reported: a process that exited before (its pid
        // reused), a new exec in a known pid, the listener reopened (new inode), a new port.
        assert!(second.admit(&exec(42, 1002, "/bin/sleep", &["1"])));
        assert!(second.admit(&exec(40, 1000, "/bin/sh", &["-c", "id"])));
        assert!(second.admit(&exec(41, 2000, "/tmp/xmrig", &["-o", "pool"])));
        assert!(second.admit(&listen(31400, 100)));
        assert!(second.admit(&listen(31401, 101)));
        // Each key is dropped once.
        assert!(second.admit(&app));
    }

    #[test]
    fn a_damaged_or_torn_file_is_refused_not_misread() {
        let (file, reader) = memory_file();
        file.write([1u64, 2, 3].into_iter()).expect("write");
        assert_eq!(reader.read().expect("complete").len(), 3);
        // A writer killed after the payload but before the header: hash mismatch.
        file.file
            .write_all_at(&9u64.to_le_bytes(), HEADER as u64)
            .expect("write");
        assert!(matches!(reader.read(), Err(CarryError::Damaged(_))));
        // Truncated, wrong magic, empty.
        let mut bytes = header(&[0u8; 16]).to_vec();
        bytes.extend_from_slice(&[0u8; 8]);
        assert!(matches!(decode(&bytes), Err(CarryError::Damaged(_))));
        assert!(matches!(decode(b"XXXXXXXX"), Err(CarryError::Damaged(_))));
        let mut wrong = header(&[]).to_vec();
        wrong[0] = b'x';
        assert!(matches!(decode(&wrong), Err(CarryError::Damaged(_))));
        file.file.set_len(0).expect("truncate");
        assert!(reader.read().expect("empty is fine").is_empty());
    }

    #[test]
    fn writes_are_rate_limited_and_only_when_something_changed() {
        let (file, reader) = memory_file();
        let mut reported = Reported::new(Some(file), HashSet::new());
        let start = Instant::now();
        reported.admit(&listen(1, 1));
        reported.tick(start);
        assert_eq!(reader.read().expect("ok").len(), 1);
        reported.admit(&listen(2, 2));
        reported.tick(start + Duration::from_millis(100));
        assert_eq!(reader.read().expect("ok").len(), 1, "too soon");
        reported.tick(start + WRITE_EVERY);
        assert_eq!(reader.read().expect("ok").len(), 2);
        // Idle (the engine may wait longer) only once everything admitted is written.
        assert!(reported.idle());
        reported.admit(&listen(3, 3));
        assert!(!reported.idle(), "an unwritten change needs the next ticks");
        reported.tick(start + WRITE_EVERY * 2);
        assert!(reported.idle());
    }

    #[test]
    fn the_socket_memory_is_bounded() {
        let mut reported = Reported::new(None, HashSet::from([0]));
        assert!(!reported.idle(), "an inheritance window is open");
        for port in 0..(MAX_SOCKETS + 10) {
            reported.admit(&listen(
                u16::try_from(port % 60000).expect("port"),
                port as u64,
            ));
        }
        assert_eq!(reported.sockets.len(), MAX_SOCKETS);
        assert_eq!(reported.socket_order.len(), MAX_SOCKETS);
    }
}
