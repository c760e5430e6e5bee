//! A tiny HTTP/1.1 GET client for the ECS task metadata endpoint.
//!
//! The endpoint is plain HTTP on a link-local address (`http://169.254.170.2/v4/<id>`), answers
//! small JSON documents and is only polled now and then, so a full HTTP stack (hyper, TLS,
//! connection pools) would add weight for nothing. This client speaks just what is needed: one
//! `GET` per connection (`Connection: close`), bodies framed by `Content-Length`, by chunked
//! transfer coding or by the end of the connection, with a connect timeout, an overall deadline
//! that also bounds a server trickling bytes, and a cap on the response size. It is blocking on
//! purpose: callers are the collectors' OS threads (or `spawn_blocking`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::EcsError;

/// Default time allowed to establish the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for a whole request, from connecting to the last body byte.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a response body. A Fargate task document is a few kilobytes per container.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Cap on the status line plus headers.
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
    let started = Instant::now();
    let deadline = started + limits.total_timeout;
    let timeout = || EcsError::Timeout {
        url: url.text.clone(),
        timeout: limits.total_timeout,
    };
    let io_error = |source: io::Error| {
        if is_timeout(&source) {
            timeout()
        } else {
            EcsError::Io {
                url: url.text.clone(),
                source,
            }
        }
    };

    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| EcsError::Connect {
            url: url.text.clone(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    let mut connected = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout());
        }
        match TcpStream::connect_timeout(&addr, limits.connect_timeout.min(remaining)) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(error) => last_error = error,
        }
    }
    let stream = connected.ok_or_else(|| EcsError::Connect {
        url: url.text.clone(),
        source: last_error,
    })?;
    // The monitor's own request: the sockets collector must not report it.
    if let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) {
        crate::collect::shared::own_sockets::register(local, remote);
    }

    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tasksentry/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    let mut stream = DeadlineStream { stream, deadline };
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    stream.flush().map_err(io_error)?;

    match read_response(stream, limits.max_body) {
        Ok(response) if (200..300).contains(&response.status) => Ok(response.body),
        Ok(response) => Err(EcsError::Status {
            url: url.text.clone(),
            status: response.status,
        }),
        Err(ResponseError::Io(source)) => Err(io_error(source)),
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

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A TCP stream whose every read and write is bounded by one overall deadline.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn remaining(&self) -> io::Result<Duration> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline reached"))
        } else {
            Ok(remaining)
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.remaining()?;
        self.stream.set_read_timeout(Some(remaining))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let remaining = self.remaining()?;
        self.stream.set_write_timeout(Some(remaining))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A parsed response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum ResponseError {
    Io(io::Error),
    Malformed(String),
    TooLarge,
}

impl From<io::Error> for ResponseError {
    fn from(error: io::Error) -> ResponseError {
        ResponseError::Io(error)
    }
}

fn malformed(reason: impl Into<String>) -> ResponseError {
    ResponseError::Malformed(reason.into())
}

/// Reads one HTTP/1.x response (skipping interim 1xx answers) from `reader`.
pub(crate) fn read_response<R: Read>(
    reader: R,
    max_body: usize,
) -> Result<Response, ResponseError> {
    let mut reader = BufReader::new(reader);
    loop {
        let mut head_bytes = 0usize;
        let status_line = read_line(&mut reader, &mut head_bytes)?
            .ok_or_else(|| malformed("connection closed before a status line"))?;
        let status = parse_status_line(&status_line)?;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        loop {
            let line = read_line(&mut reader, &mut head_bytes)?
                .ok_or_else(|| malformed("connection closed inside the headers"))?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| malformed(format!("header line without a colon: {line:?}")))?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let length = value
                    .parse::<usize>()
                    .map_err(|_| malformed(format!("bad Content-Length {value:?}")))?;
                if content_length.is_some_and(|previous| previous != length) {
                    return Err(malformed("conflicting Content-Length headers"));
                }
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    return Err(malformed(format!(
                        "unsupported Transfer-Encoding {value:?}"
                    )));
                }
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            read_chunked(&mut reader, max_body)?
        } else if let Some(length) = content_length {
            if length > max_body {
                return Err(ResponseError::TooLarge);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).map_err(|error| {
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    malformed(format!("body shorter than Content-Length {length}"))
                } else {
                    ResponseError::Io(error)
                }
            })?;
            body
        } else {
            let mut body = Vec::new();
            let read = (&mut reader)
                .take(max_body as u64 + 1)
                .read_to_end(&mut body)?;
            if read > max_body {
                return Err(ResponseError::TooLarge);
            }
            body
        };
        return Ok(Response { status, body });
    }
}

fn parse_status_line(line: &str) -> Result<u16, ResponseError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!("not an HTTP/1.x status line: {line:?}")));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 {
        return Err(malformed(format!("bad status code in {line:?}")));
    }
    code.parse::<u16>()
        .map_err(|_| malformed(format!("bad status code in {line:?}")))
}

/// Reads a CRLF- (or LF-) terminated line of the head, counting it against the head cap.
/// Returns `None` at a clean end of stream before any byte.
fn read_line<R: BufRead>(
    reader: &mut R,
    head_bytes: &mut usize,
) -> Result<Option<String>, ResponseError> {
    let mut line = Vec::new();
    let budget = MAX_HEAD.saturating_sub(*head_bytes) as u64 + 1;
    let read = reader.take(budget).read_until(b'\n', &mut line)?;
    *head_bytes += read;
    if read == 0 {
        return Ok(None);
    }
    if *head_bytes > MAX_HEAD {
        return Err(malformed(format!(
            "response head larger than {MAX_HEAD} bytes"
        )));
    }
    if line.last() != Some(&b'\n') {
        return Err(malformed("connection closed in the middle of a line"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| malformed("response head is not valid UTF-8"))
}

fn read_chunked<R: BufRead>(reader: &mut R, max_body: usize) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    let mut head_bytes = 0usize;
    loop {
        let line = read_line(reader, &mut head_bytes)?
            .ok_or_else(|| malformed("connection closed before the last chunk"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| malformed(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailer fields, then the empty line that ends the message.
            loop {
                match read_line(reader, &mut head_bytes)? {
                    None => return Ok(body),
                    Some(trailer) if trailer.is_empty() => return Ok(body),
                    Some(_) => {}
                }
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(ResponseError::TooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                malformed("connection closed inside a chunk")
            } else {
                ResponseError::Io(error)
            }
        })?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf[..1])?;
        if crlf[0] == b'\r' {
            reader.read_exact(&mut crlf[1..])?;
        } else {
            crlf[1] = crlf[0];
        }
        if crlf[1] != b'\n' {
            return Err(malformed("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, max_body: usize) -> Result<Response, ResponseError> {
        read_response(raw.as_bytes(), max_body)
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
}
