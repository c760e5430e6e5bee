//! A fault-injecting HTTP/1.1 proxy in front of moto: each request is passed on, or answered
//! with a throttle, a server error, silence, a close or a reset, as a [`Plan`] says.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault the proxy injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward to moto and return its response.
    Pass,
    /// Answer HTTP 400 with a `ThrottlingException` (AWS JSON error shape), not forwarded.
    Throttle,
    /// Answer HTTP 500 `ServiceUnavailableException`, not forwarded.
    Error500,
    /// Wait `slow` (longer than the client's attempt timeout), then close; not forwarded.
    Slow,
    /// Close the connection without a response; not forwarded.
    Close,
    /// Reset the connection (RST); not forwarded.
    Reset,
    /// Forward to moto (the request takes effect), then close without returning the response.
    ForwardThenClose,
    /// Answer HTTP 400 `AccessDeniedException`, not forwarded.
    Denied,
    /// Answer HTTP 400 `InvalidParameterException`, not forwarded.
    Invalid,
}

/// What the proxy saw and did.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Requests received.
    pub requests: AtomicU64,
    /// PutLogEvents requests received.
    pub puts: AtomicU64,
    /// Faults injected, by kind (index: Throttle, Error500, Slow, Close, Reset,
    /// ForwardThenClose, Denied, Invalid).
    pub faults: [AtomicU64; 8],
    /// Events in PutLogEvents requests that moto accepted but whose response was dropped.
    pub events_forwarded_then_dropped: AtomicU64,
    /// Every request's operation (`X-Amz-Target` without the `Logs_20140328.` prefix) and the
    /// fault it got, in arrival order.
    pub operations: Mutex<Vec<(String, Fault)>>,
    /// Every PutLogEvents request's size, in arrival order.
    pub put_sizes: Mutex<Vec<PutSize>>,
}

/// The size of one PutLogEvents request as CloudWatch Logs counts it against its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutSize {
    /// Events in the batch.
    pub events: usize,
    /// The batch size: every message's UTF-8 bytes plus 26 bytes per event (limit 1,048,576).
    pub batch_bytes: usize,
    /// The largest message's UTF-8 bytes (limit 256 KiB).
    pub largest_event: usize,
}

/// How the proxy picks faults.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The same fault for every request.
    Always(Fault),
    /// The faults in turn, cycling, one per request.
    Cycle(Vec<Fault>),
    /// The faults in turn, one per request, then `Pass` for ever.
    Script(Vec<Fault>),
    /// The faults in turn for PutLogEvents requests only, then `Pass` for ever; every other
    /// request passes.
    PutScript(Vec<Fault>),
    /// A fixed fault for the named operations (`CreateLogGroup`); every other request passes.
    ByOperation(Vec<(&'static str, Fault)>),
}

struct ProxyState {
    plan: Plan,
    next: usize,
}

/// A fault-injecting HTTP/1.1 proxy in front of moto.
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    /// What it saw.
    pub counters: Arc<ProxyCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts the proxy on a free loopback port; `slow` is how long a `Slow` fault waits.
    pub async fn start(upstream: SocketAddr, plan: Plan, slow: Duration) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState { plan, next: 0 }));
        let counters = Arc::new(ProxyCounters::default());
        let task = {
            let state = state.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        let _ = handle(stream, upstream, state, counters, slow).await;
                    });
                }
            })
        };
        FaultProxy {
            addr,
            state,
            counters,
            task,
        }
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the plan (takes effect for the next request).
    pub fn set_plan(&self, plan: Plan) {
        let mut state = self.state.lock().unwrap();
        state.plan = plan;
        state.next = 0;
    }

    /// Faults injected of one kind.
    pub fn injected(&self, fault: Fault) -> u64 {
        fault_index(fault).map_or(0, |i| self.counters.faults[i].load(Ordering::Relaxed))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fault_index(fault: Fault) -> Option<usize> {
    match fault {
        Fault::Pass => None,
        Fault::Throttle => Some(0),
        Fault::Error500 => Some(1),
        Fault::Slow => Some(2),
        Fault::Close => Some(3),
        Fault::Reset => Some(4),
        Fault::ForwardThenClose => Some(5),
        Fault::Denied => Some(6),
        Fault::Invalid => Some(7),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP request (head and Content-Length body). `None` when the peer closed.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(pos) = find(&data, b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    counters: Arc<ProxyCounters>,
    slow: Duration,
) -> std::io::Result<()> {
    // One request per connection: every answer says `Connection: close`.
    let Some((head, body)) = read_request(&mut client).await? else {
        return Ok(());
    };
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let operation = operation_of(&head);
    let is_put = operation == "PutLogEvents";
    let events = if is_put {
        counters.puts.fetch_add(1, Ordering::Relaxed);
        let messages: Vec<usize> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["logEvents"].as_array().map(|events| {
                    events
                        .iter()
                        .map(|e| e["message"].as_str().map_or(0, str::len))
                        .collect()
                })
            })
            .unwrap_or_default();
        counters.put_sizes.lock().unwrap().push(PutSize {
            events: messages.len(),
            batch_bytes: messages.iter().map(|n| n + 26).sum(),
            largest_event: messages.iter().copied().max().unwrap_or(0),
        });
        messages.len() as u64
    } else {
        0
    };
    let untouched = {
        let state = state.lock().unwrap();
        !is_put && matches!(state.plan, Plan::PutScript(_))
    };
    if untouched {
        counters
            .operations
            .lock()
            .unwrap()
            .push((operation, Fault::Pass));
        return pass(client, &head, &body, upstream).await;
    }
    let fault = {
        let mut state = state.lock().unwrap();
        let fault = match &state.plan {
            Plan::Always(fault) => *fault,
            Plan::Cycle(faults) => faults[state.next % faults.len()],
            Plan::Script(faults) | Plan::PutScript(faults) => {
                faults.get(state.next).copied().unwrap_or(Fault::Pass)
            }
            Plan::ByOperation(faults) => faults
                .iter()
                .find(|(name, _)| *name == operation)
                .map_or(Fault::Pass, |(_, fault)| *fault),
        };
        state.next += 1;
        fault
    };
    counters
        .operations
        .lock()
        .unwrap()
        .push((operation.clone(), fault));
    if let Some(i) = fault_index(fault) {
        counters.faults[i].fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Fault::Pass | Fault::ForwardThenClose => {
            let response = forward(&head, &body, upstream).await?;
            if fault == Fault::ForwardThenClose {
                counters
                    .events_forwarded_then_dropped
                    .fetch_add(events, Ordering::Relaxed);
                return Ok(());
            }
            client.write_all(&response).await?;
            client.shutdown().await?;
        }
        Fault::Throttle => {
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            respond(&mut client, 400, "Bad Request", "ThrottlingException", body).await?;
        }
        Fault::Error500 => {
            let body = r#"{"__type":"ServiceUnavailableException","message":"The service is unavailable. Please try again later."}"#;
            respond(
                &mut client,
                500,
                "Internal Server Error",
                "ServiceUnavailableException",
                body,
            )
            .await?;
        }
        Fault::Denied => {
            let body = format!(
                r#"{{"__type":"AccessDeniedException","message":"User is not authorized to perform: logs:{operation}"}}"#
            );
            respond(
                &mut client,
                400,
                "Bad Request",
                "AccessDeniedException",
                &body,
            )
            .await?;
        }
        Fault::Invalid => {
            let body =
                r#"{"__type":"InvalidParameterException","message":"1 validation error detected"}"#;
            respond(
                &mut client,
                400,
                "Bad Request",
                "InvalidParameterException",
                body,
            )
            .await?;
        }
        Fault::Slow => {
            tokio::time::sleep(slow).await;
        }
        Fault::Close => {}
        Fault::Reset => {
            // A zero linger makes the close send RST; with zero it does not block.
            #[allow(deprecated)]
            client.set_linger(Some(Duration::ZERO))?;
        }
    }
    Ok(())
}

/// The CloudWatch Logs operation of a request head (`PutLogEvents`), from `X-Amz-Target`.
fn operation_of(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().rsplit('.').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default()
}

async fn pass(
    mut client: TcpStream,
    head: &str,
    body: &[u8],
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let response = forward(head, body, upstream).await?;
    client.write_all(&response).await?;
    client.shutdown().await
}

async fn respond(
    client: &mut TcpStream,
    status: u16,
    reason: &str,
    error_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: {error_type}\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// Sends the request to moto with `Connection: close` and returns the whole response.
async fn forward(head: &str, body: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(upstream).await?;
    let mut new_head = String::new();
    for line in head.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line
            .split_once(':')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        new_head.push_str(line);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(new_head.as_bytes()).await?;
    upstream.write_all(body).await?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).await?;
    Ok(response)
}
