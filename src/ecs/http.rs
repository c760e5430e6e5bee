//! The HTTP/1.1 GET client for the ECS task metadata endpoint, on hyper.
//!
//! The endpoint is plain HTTP on a link-local address (`http://169.254.170.2/v4/<id>`), answers
//! small JSON documents and is only polled now and then. The protocol (status line, headers,
//! bodies framed by `Content-Length`, by chunked transfer coding or by the end of the
//! connection, interim 1xx answers) is hyper's HTTP/1 client connection
//! ([`hyper::client::conn::http1`]), which the binary links anyway for the AWS SDK's HTTP client.
//! This module adds what the monitor needs around it: one `GET` per connection
//! (`Connection: close`), a connect timeout, an overall deadline around the whole exchange (so a
//! server trickling bytes is cut off too), caps on the response head and body, and errors that
//! name the URL. Callers see a blocking function, as before: they are plain OS threads (the
//! `ecs-metadata` refresher, tests). Each calling thread drives its requests on its own small
//! current-thread tokio runtime, built on first use and kept until the thread ends.

use std::cell::OnceCell;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{ACCEPT, CONNECTION, HOST, TRANSFER_ENCODING, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use super::EcsError;

/// Default time allowed to establish the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for a whole request, from connecting to the last body byte.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a response body. A Fargate task document is a few kilobytes per container.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Cap on the status line plus headers (hyper's read buffer; it refuses a larger head).
const MAX_HEAD: usize = 64 * 1024;

/// An `http://host[:port]/path` URL, split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The URL as given (without a trailing slash), for messages.
    pub text: String,
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path, starting with `/`; `/` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// Parses a plain `http://` URL. HTTPS, user info, queries and fragments are rejected:
    /// the metadata endpoint never uses them.
    pub fn parse(url: &str) -> Result<HttpUrl, EcsError> {
        let invalid = |reason: &str| EcsError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        let rest = trimmed
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only plain http:// URLs are supported"))?;
        if rest.contains(['?', '#', '@', ' ']) {
            return Err(invalid(
                "query strings, fragments, user info and spaces are not supported",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let end = bracketed
                .find(']')
                .ok_or_else(|| invalid("unclosed [ in IPv6 host"))?;
            let host = &bracketed[..end];
            let after = &bracketed[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(invalid("unexpected text after IPv6 host")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| invalid("port is not a number between 0 and 65535"))?,
            None => 80,
        };
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        Ok(HttpUrl {
            text: trimmed.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// This URL with `suffix` (for example `/task`) appended to the path.
    pub fn join(&self, suffix: &str) -> HttpUrl {
        let mut path = self.path.trim_end_matches('/').to_owned();
        path.push_str(suffix);
        HttpUrl {
            text: format!("{}{}", self.text, suffix),
            host: self.host.clone(),
            port: self.port,
            path,
        }
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Limits applied to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time allowed to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole request.
    pub total_timeout: Duration,
    /// Largest accepted body, in bytes.
    pub max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Sends `GET url` and returns the body of a 2xx answer.
pub fn get(url: &HttpUrl, limits: HttpLimits) -> Result<Vec<u8>, EcsError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // A thread inside a tokio runtime cannot block on another runtime: make the request from
        // a helper thread. No caller does this today; it keeps a future one from panicking.
        return std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("ecs-metadata-get".into())
                .spawn_scoped(scope, || get(url, limits))
                .map_err(|source| io_error(url, source))
                .and_then(|helper| {
                    helper.join().unwrap_or_else(|_| {
                        Err(io_error(
                            url,
                            io::Error::other("the request thread panicked"),
                        ))
                    })
                })
        });
    }
    let exchange = async { tokio::time::timeout(limits.total_timeout, request(url, limits)).await };
    match block_on(exchange) {
        Ok(Ok(result)) => result,
        Ok(Err(_elapsed)) => Err(EcsError::Timeout {
            url: url.text.clone(),
            timeout: limits.total_timeout,
        }),
        Err(source) => Err(io_error(url, source)),
    }
}

fn io_error(url: &HttpUrl, source: io::Error) -> EcsError {
    EcsError::Io {
        url: url.text.clone(),
        source,
    }
}

thread_local! {
    /// The runtime that drives this thread's requests: built on first use, dropped with the
    /// thread (tokio supports dropping a current-thread runtime from a thread-local destructor).
    static RUNTIME: OnceCell<Runtime> = const { OnceCell::new() };
}

/// Runs `future` to completion on this thread's runtime.
fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
    RUNTIME
        .try_with(|cell| {
            let runtime = match cell.get() {
                Some(runtime) => runtime,
                None => {
                    let built = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build()?;
                    cell.get_or_init(|| built)
                }
            };
            Ok(runtime.block_on(future))
        })
        .unwrap_or_else(|_| Err(io::Error::other("the calling thread is exiting")))
}

/// Connects, sends the request and reads the answer (the caller bounds the whole).
async fn request(url: &HttpUrl, limits: HttpLimits) -> Result<Vec<u8>, EcsError> {
    let stream = connect(url, limits.connect_timeout).await?;
    // The monitor's own request: the sockets collector must not report it.
    if let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) {
        crate::collect::shared::own_sockets::register(local, remote);
    }
    let request = build_request(url)?;
    match exchange(TokioIo::new(stream), request, limits.max_body).await {
        Ok(response) if (200..300).contains(&response.status) => Ok(response.body),
        Ok(response) => Err(EcsError::Status {
            url: url.text.clone(),
            status: response.status,
        }),
        Err(ResponseError::Io(source)) => Err(io_error(url, source)),
        Err(ResponseError::Malformed(reason)) => Err(EcsError::Http {
            url: url.text.clone(),
            reason,
        }),
        Err(ResponseError::TooLarge) => Err(EcsError::TooLarge {
            url: url.text.clone(),
            limit: limits.max_body,
        }),
    }
}

/// Connects to the first address of the host that answers within `connect_timeout`.
async fn connect(url: &HttpUrl, connect_timeout: Duration) -> Result<TcpStream, EcsError> {
    let connect_error = |source| EcsError::Connect {
        url: url.text.clone(),
        source,
    };
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(connect_error)?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) => last_error = error,
            Err(_elapsed) => {
                last_error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to {addr} within {connect_timeout:?}"),
                );
            }
        }
    }
    Err(connect_error(last_error))
}

fn build_request(url: &HttpUrl) -> Result<Request<Empty<Bytes>>, EcsError> {
    Request::get(url.path.as_str())
        .header(HOST, url.host_header())
        .header(
            USER_AGENT,
            concat!("tasksentry/", env!("CARGO_PKG_VERSION")),
        )
        .header(ACCEPT, "application/json")
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|error| EcsError::InvalidUrl {
            url: url.text.clone(),
            reason: error.to_string(),
        })
}

/// A response: its status, and its body when the status is 2xx (empty otherwise).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum ResponseError {
    /// The connection failed (reset, closed for writing...).
    Io(io::Error),
    /// The answer is not a well-formed HTTP/1.x response, or ends before it is complete.
    Malformed(String),
    /// The body is larger than the cap.
    TooLarge,
}

impl From<hyper::Error> for ResponseError {
    fn from(error: hyper::Error) -> ResponseError {
        let reason = describe(&error);
        // hyper reports a body it cannot decode, or one cut short, as an I/O error of these
        // kinds; only other I/O errors come from the connection itself.
        let mut cause = error.source();
        while let Some(current) = cause {
            if let Some(io) = current.downcast_ref::<io::Error>() {
                return match io.kind() {
                    io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof => ResponseError::Malformed(reason),
                    kind => ResponseError::Io(io::Error::new(kind, reason)),
                };
            }
            cause = current.source();
        }
        ResponseError::Malformed(reason)
    }
}

/// An error and its causes, `: `-separated (hyper's own message names only the kind).
fn describe(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// Sends `request` over `io` and reads one response, with hyper's HTTP/1 client connection.
pub(crate) async fn exchange<T>(
    io: T,
    request: Request<Empty<Bytes>>,
    max_body: usize,
) -> Result<Response, ResponseError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        // The ECS agent does not care, but some servers (and our tests' fake) match `Host:`.
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Empty<Bytes>>(io)
        .await?;
    let mut connection = pin!(connection);
    let mut response = pin!(async move {
        let response = sender.send_request(request).await?;
        read_body(response, max_body).await
    });
    // The connection must be polled for the response to make progress. If it ends first (the
    // whole answer read, or an error that it also hands to the response), what it delivered is
    // read to the end; nothing is left running once this returns.
    tokio::select! {
        biased;
        result = &mut response => return result,
        _ended = &mut connection => {}
    }
    response.await
}

async fn read_body(
    response: hyper::Response<Incoming>,
    max_body: usize,
) -> Result<Response, ResponseError> {
    let status = response.status().as_u16();
    // hyper reads a body whose last transfer coding is not `chunked` to the end of the
    // connection; such a body (gzip...) is not one we could use.
    let transfer_encoding = response
        .headers()
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back();
    if let Some(value) = transfer_encoding {
        let chunked = value.to_str().ok().is_some_and(|value| {
            value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        });
        if !chunked {
            return Err(ResponseError::Malformed(format!(
                "unsupported Transfer-Encoding {value:?}"
            )));
        }
    }
    if !(200..300).contains(&status) {
        return Ok(Response {
            status,
            body: Vec::new(),
        });
    }
    let mut incoming = response.into_body();
    // A Content-Length over the cap is refused before any body byte is read.
    if incoming.size_hint().lower() > max_body as u64 {
        return Err(ResponseError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(frame) = incoming.frame().await {
        // Trailer frames (after a chunked body) are ignored.
        if let Ok(data) = frame?.into_data() {
            if body.len().saturating_add(data.len()) > max_body {
                return Err(ResponseError::TooLarge);
            }
            body.extend_from_slice(&data);
        }
    }
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    /// Reads `raw` as the answer to a GET, through the same hyper exchange as [`get`], over an
    /// in-memory connection whose other end answers once the request head has arrived.
    fn parse(raw: &str, max_body: usize) -> Result<Response, ResponseError> {
        let url = HttpUrl::parse("http://127.0.0.1/v4/x").expect("valid");
        let request = build_request(&url).expect("request");
        let (client, server) = tokio::io::duplex(4096);
        let (_, response) = block_on(async {
            tokio::join!(
                answer(server, raw.as_bytes()),
                exchange(TokioIo::new(client), request, max_body)
            )
        })
        .expect("runtime");
        response
    }

    async fn answer(mut server: DuplexStream, raw: &[u8]) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 512];
        while !request.ends_with(b"\r\n\r\n") {
            match server.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
        }
        // The client may stop reading early (a head or body over the cap): then this fails.
        let _ = server.write_all(raw).await;
        let _ = server.shutdown().await;
    }

    #[test]
    fn parses_urls_the_endpoint_uses() {
        let url = HttpUrl::parse("http://169.254.170.2/v4/5f0e6b8f-1203914765").expect("valid");
        assert_eq!(url.host, "169.254.170.2");
        assert_eq!(url.port, 80);
        assert_eq!(url.path, "/v4/5f0e6b8f-1203914765");
        let task = url.join("/task");
        assert_eq!(task.path, "/v4/5f0e6b8f-1203914765/task");
        assert_eq!(
            task.text,
            "http://169.254.170.2/v4/5f0e6b8f-1203914765/task"
        );

        let url = HttpUrl::parse("http://127.0.0.1:51678/v4/abc/").expect("valid");
        assert_eq!((url.port, url.path.as_str()), (51678, "/v4/abc"));
        assert_eq!(url.join("/task").path, "/v4/abc/task");
        assert_eq!(url.host_header(), "127.0.0.1:51678");

        let url = HttpUrl::parse("http://[::1]:8080").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(url.host_header(), "[::1]:8080");
        assert_eq!(url.join("/task").path, "/task");
    }

    #[test]
    fn rejects_urls_it_cannot_serve() {
        for bad in [
            "https://169.254.170.2/v4/x",
            "169.254.170.2/v4/x",
            "http://",
            "http:///v4",
            "http://host:99999/",
            "http://host:port/",
            "http://[::1/",
            "http://host/v4?x=1",
            "http://user@host/",
        ] {
            let error = HttpUrl::parse(bad).expect_err(bad);
            assert!(error.to_string().contains(bad.trim()), "{error}");
        }
    }

    #[test]
    fn reads_content_length_bodies() {
        let response = parse(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}trailing",
            1024,
        )
        .expect("valid");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{\"a\":1}");
    }

    #[test]
    fn reads_chunked_bodies_with_extensions_and_trailers() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let response = parse(raw, 1024).expect("valid");
        assert_eq!(response.body, b"{\"a\":1}");
    }

    #[test]
    fn reads_until_close_without_framing_and_skips_interim_responses() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\nServer: x\n\nhello";
        let response = parse(raw, 1024).expect("valid");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"hello"[..])
        );
    }

    #[test]
    fn enforces_the_size_cap_for_every_framing() {
        let length = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
        assert!(matches!(parse(length, 10), Err(ResponseError::TooLarge)));
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
        assert!(matches!(parse(chunked, 10), Err(ResponseError::TooLarge)));
        assert_eq!(parse(chunked, 11).expect("fits").body, b"hello world");
        let close = "HTTP/1.1 200 OK\r\n\r\nhello world";
        assert!(matches!(parse(close, 10), Err(ResponseError::TooLarge)));
        let huge_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(&huge_head, 10),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn reports_truncated_and_malformed_responses() {
        for raw in [
            "",
            "garbage\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
        ] {
            let result = parse(raw, 1024);
            assert!(
                matches!(
                    result,
                    Err(ResponseError::Malformed(_)) | Err(ResponseError::Io(_))
                ),
                "{raw:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn keeps_non_success_status_codes() {
        let response =
            parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1024).expect("valid");
        assert_eq!(response.status, 404);
    }

    /// Serves `answers` canned answers on loopback, one per connection, each after the whole
    /// request head has arrived.
    fn serve(answers: usize, answer: &'static [u8]) -> (HttpUrl, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            for _ in 0..answers {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut request = Vec::new();
                let mut buffer = [0u8; 512];
                while !request.ends_with(b"\r\n\r\n") {
                    let read = stream.read(&mut buffer).expect("read");
                    assert!(read > 0, "request cut short: {request:?}");
                    request.extend_from_slice(&buffer[..read]);
                }
                let head = String::from_utf8_lossy(&request);
                assert!(head.starts_with("GET /v4/x HTTP/1.1\r\n"), "{head}");
                assert!(head.contains(&format!("\r\nHost: {address}\r\n")), "{head}");
                stream.write_all(answer).expect("write");
            }
        });
        let url = HttpUrl::parse(&format!("http://{address}/v4/x")).expect("valid");
        (url, server)
    }

    #[test]
    fn gets_from_a_plain_thread_twice_and_from_inside_a_tokio_runtime() {
        let (url, server) = serve(3, b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        // Twice on this thread: the second request reuses the thread's runtime.
        for _ in 0..2 {
            assert_eq!(
                get(&url, HttpLimits::default()).expect("plain thread"),
                b"{\"a\":1}"
            );
        }
        // A caller inside a runtime cannot block on another: it must get its answer, not a panic.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let body = runtime
            .block_on(async { get(&url, HttpLimits::default()) })
            .expect("inside a runtime");
        assert_eq!(body, b"{\"a\":1}");
        server.join().expect("server");
    }
}
