//! Reaching host services from inside an emulated task's network namespace.
//!
//! The monitor runs in the task's network namespace, where the host's loopback (and the moto
//! server on it) does not exist. [`bind_in_netns`] creates a listening socket *inside* that
//! namespace: a short-lived thread enters it with `setns(CLONE_NEWNET)`, binds, and hands the
//! socket back. A socket belongs to the namespace it was created in for its whole life, so it
//! can then be used from any thread; every other thread of the test stays in the host's
//! namespace.
//!
//! [`Relay`] forwards each connection accepted there to a host address (moto on 127.0.0.1),
//! and can play a network outage on command ([`RelayMode`]). [`HttpServer`] answers plain HTTP
//! GETs (a stand-in for the ECS task metadata endpoint).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Creates a listening TCP socket bound to `addr` inside the network namespace `ns` (a
/// `/proc/<pid>/ns/net` path). Port 0 picks a free port; see `local_addr`.
fn bind_in_netns(ns: &Path, addr: SocketAddr) -> io::Result<TcpListener> {
    let ns: PathBuf = ns.to_owned();
    // A thread of its own: `setns` changes the namespace of the calling thread only, and this
    // one ends right after binding, so no other thread of the test ever runs in the task's
    // namespace (threads inherit the namespace of the thread that spawns them).
    std::thread::spawn(move || -> io::Result<TcpListener> {
        let file = std::fs::File::open(&ns)?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)?;
        TcpListener::bind(addr)
    })
    .join()
    .map_err(|_| io::Error::other("the netns binding thread panicked"))?
}

/// What the relay does with a connection. Switching to [`RelayMode::Hold`] or
/// [`RelayMode::Drop`] also cuts the connections being forwarded, so that a client's pooled
/// keep-alive connection cannot carry on through the "outage".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// Forward it to the upstream address, both ways.
    Pass,
    /// Accept it and do nothing (no byte read or written) until the mode changes, then treat
    /// it as the new mode says: a network that swallows packets, or a stalled endpoint.
    Hold,
    /// Close it at once, unread (the kernel answers with a reset): the endpoint is down.
    Drop,
}

/// What the relay saw and did.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed unread in [`RelayMode::Drop`].
    pub dropped: AtomicU64,
    /// Connections that waited in [`RelayMode::Hold`].
    pub held: AtomicU64,
    /// Connections forwarded upstream.
    pub forwarded: AtomicU64,
}

struct RelayState {
    mode: Mutex<RelayMode>,
    changed: Condvar,
    stop: AtomicBool,
    /// Held connections stay held whatever the mode (dead connections while new ones work).
    keep_held: AtomicBool,
    counters: RelayCounters,
    /// Client sides of the connections being forwarded, by connection number.
    active: Mutex<HashMap<u64, TcpStream>>,
}

/// A TCP relay from a port inside a task's network namespace to a host address.
pub struct Relay {
    /// The port on the task's 127.0.0.1.
    pub port: u16,
    state: Arc<RelayState>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) in the network namespace `ns` and relays to
    /// `upstream` (an address in the host's namespace) in `mode`.
    pub fn start(ns: &Path, upstream: SocketAddr, mode: RelayMode) -> io::Result<Relay> {
        let listener = bind_in_netns(ns, "127.0.0.1:0".parse().map_err(io::Error::other)?)?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let state = Arc::new(RelayState {
            mode: Mutex::new(mode),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            keep_held: AtomicBool::new(false),
            counters: RelayCounters::default(),
            active: Mutex::new(HashMap::new()),
        });
        let accept = {
            let state = state.clone();
            std::thread::spawn(move || accept_loop(&listener, upstream, &state))
        };
        Ok(Relay {
            port,
            state,
            accept: Some(accept),
        })
    }

    /// The endpoint URL, as seen from inside the task.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes the mode: new connections, and held ones, follow it.
    pub fn set_mode(&self, mode: RelayMode) {
        *self.state.mode.lock().unwrap() = mode;
        self.state.changed.notify_all();
        if mode != RelayMode::Pass {
            for (_, stream) in self.state.active.lock().unwrap().drain() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Changes the mode for new connections only: the connections held so far stay held until
    /// the relay is dropped, like connections through a path that died while new ones work.
    pub fn set_mode_keeping_held(&self, mode: RelayMode) {
        self.state.keep_held.store(true, Ordering::Relaxed);
        self.set_mode(mode);
    }

    /// The counters.
    pub fn counters(&self) -> &RelayCounters {
        &self.state.counters
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.state.changed.notify_all();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, stream) in self.state.active.lock().unwrap().drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, state: &Arc<RelayState>) {
    while !state.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let number = state.counters.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nonblocking(false);
                let state = state.clone();
                // Spawned from a host-namespace thread: the upstream connection is made in the
                // host's namespace.
                std::thread::spawn(move || handle(number, stream, upstream, &state));
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle(number: u64, stream: TcpStream, upstream: SocketAddr, state: &RelayState) {
    let mode = {
        let mut mode = state.mode.lock().unwrap();
        if *mode == RelayMode::Hold {
            state.counters.held.fetch_add(1, Ordering::Relaxed);
            while (*mode == RelayMode::Hold || state.keep_held.load(Ordering::Relaxed))
                && !state.stop.load(Ordering::Relaxed)
            {
                mode = state
                    .changed
                    .wait_timeout(mode, Duration::from_millis(200))
                    .unwrap()
                    .0;
            }
        }
        *mode
    };
    if state.stop.load(Ordering::Relaxed) {
        return;
    }
    match mode {
        RelayMode::Drop | RelayMode::Hold => {
            state.counters.dropped.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
        RelayMode::Pass => {
            let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
                return;
            };
            state.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            let (Ok(client_read), Ok(server_write), Ok(registered)) =
                (stream.try_clone(), server.try_clone(), stream.try_clone())
            else {
                return;
            };
            {
                // Registered under the mode lock, so that a switch away from `Pass` either
                // sees this connection or happened before it and is seen here.
                let mode = state.mode.lock().unwrap();
                if *mode != RelayMode::Pass {
                    return;
                }
                state.active.lock().unwrap().insert(number, registered);
            }
            let upload = std::thread::spawn(move || pipe(client_read, server_write));
            pipe(server, stream);
            let _ = upload.join();
            state.active.lock().unwrap().remove(&number);
        }
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s write side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A plain HTTP/1.1 server inside a network namespace, one request per connection: a GET
/// is answered with the JSON body `respond` gives for its path (200), or 404 when it gives
/// none. Stands in for the ECS task metadata endpoint.
pub struct HttpServer {
    /// Where it listens, in the namespace.
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves on `addr` (port 0: a free one) in the network namespace `ns`.
    pub fn start(
        ns: &Path,
        addr: SocketAddr,
        respond: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> io::Result<HttpServer> {
        let listener = bind_in_netns(ns, addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            requests.fetch_add(1, Ordering::Relaxed);
                            let _ = answer(stream, &respond);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Ok(HttpServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// Serves `documents` (path → JSON body) on a free port of 127.0.0.1 in `ns`.
    pub(crate) fn with_documents(
        ns: &Path,
        documents: HashMap<String, String>,
    ) -> io::Result<HttpServer> {
        let addr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
        HttpServer::start(ns, addr, move |path| documents.get(path).cloned())
    }

    /// The base URL, as seen from inside the task.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The connections accepted so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(stream: TcpStream, respond: &impl Fn(&str) -> Option<String>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match respond(path) {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", "404 page not found\n".to_owned()),
    };
    let mut stream = stream;
    stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    stream.shutdown(Shutdown::Write)
}
