//! hello-service: a tiny HTTP/1.1 service, the example project for Slipway.
//!
//! Routes:
//!
//! - `GET /healthz` → `200 ok`
//! - `GET /` → `200` and a greeting naming the configured greeting and version
//! - `HEAD` of either → the same headers, no body
//! - any other method on those paths → `405`, any other path → `404`,
//!   a malformed request → `400`
//!
//! Parsing and routing are pure functions ([`handle`]); the networking around
//! them ([`serve`], [`healthcheck`]) is a thin layer over `std::net`, one
//! thread per connection, one request per connection.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The port used when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 8080;
/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request or read the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `--healthcheck` waits for the service.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the service says on `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// From `GREETING`, default `Hello`.
    pub greeting: String,
    /// From `APP_VERSION`, default `dev`.
    pub version: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
            version: "dev".to_owned(),
        }
    }
}

impl Config {
    /// Reads `GREETING` and `APP_VERSION`; unset or empty means the default.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let default = Self::default();
        Self {
            greeting: var("GREETING").unwrap_or(default.greeting),
            // Slipway tells a deployed release its version in SLIPWAY_RELEASE.
            version: var("APP_VERSION")
                .or_else(|| var("SLIPWAY_RELEASE"))
                .unwrap_or(default.version),
        }
    }
}

/// Parses the value of `PORT`: unset or empty means [`DEFAULT_PORT`].
pub fn parse_port(value: Option<&str>) -> Result<u16, String> {
    match value {
        None | Some("") => Ok(DEFAULT_PORT),
        Some(v) => v
            .parse()
            .map_err(|_| format!("PORT must be a number from 0 to 65535, not {v:?}")),
    }
}

/// The status codes this service answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
        }
    }
}

/// A plain-text response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub body: String,
    /// The `Allow` header, sent with `405`.
    pub allow: Option<&'static str>,
    /// Answering `HEAD`: send the headers, including `Content-Length`, but no body.
    pub head_only: bool,
}

impl Response {
    fn text(status: Status, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            allow: None,
            head_only: false,
        }
    }

    /// The response as sent on the wire. Every connection carries one request,
    /// so it always says `Connection: close`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status.code(),
            self.status.reason(),
            self.body.len(),
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target without its query string.
    pub path: &'a str,
}

/// Parses a request head: the request line and header lines, without the
/// blank line that ends them. Lines may end in CRLF or a bare LF.
/// The error says what is wrong, for the `400` body.
pub fn parse_request(head: &[u8]) -> Result<Request<'_>, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "request is not valid UTF-8")?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the request line must be `METHOD /path HTTP/1.x`");
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err("invalid method");
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the request target must be a path starting with `/`");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported HTTP version");
    }

    let mut has_host = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, _value)) = line.split_once(':') else {
            return Err("a header line has no `:`");
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err("invalid header name");
        }
        has_host |= name.eq_ignore_ascii_case("host");
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host must be rejected.
    if version == "HTTP/1.1" && !has_host {
        return Err("HTTP/1.1 requests need a Host header");
    }

    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Ok(Request { method, path })
}

/// `tchar` from RFC 9110 §5.6.2: the bytes allowed in methods and header names.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Routes a parsed request.
pub fn route(request: &Request<'_>, config: &Config) -> Response {
    let body = match request.path {
        "/healthz" => "ok\n".to_owned(),
        "/" => format!(
            "{} from hello-service {}\n",
            config.greeting, config.version
        ),
        _ => return Response::text(Status::NotFound, "not found\n"),
    };
    match request.method {
        "GET" => Response::text(Status::Ok, body),
        "HEAD" => Response {
            head_only: true,
            ..Response::text(Status::Ok, body)
        },
        _ => Response {
            allow: Some("GET, HEAD"),
            ..Response::text(Status::MethodNotAllowed, "method not allowed\n")
        },
    }
}

/// Answers a request head: parsing and routing, with no I/O.
pub fn handle(head: &[u8], config: &Config) -> Response {
    match parse_request(head) {
        Ok(request) => route(&request, config),
        Err(why) => Response::text(Status::BadRequest, format!("bad request: {why}\n")),
    }
}

/// Reads a request head, up to the first blank line, and returns it without
/// that line. `Ok(None)` if the client closed the connection without sending
/// anything; an `InvalidData` or `UnexpectedEof` error if the head is too long
/// or cut short.
pub fn read_head(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0; 1024];
    loop {
        let end = blank_line(&buf);
        if end.unwrap_or(buf.len()) > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        if let Some(end) = end {
            buf.truncate(end);
            return Ok(Some(buf));
        }
        match reader.read(&mut chunk)? {
            0 if buf.is_empty() => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of the request",
                ));
            }
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The offset of the first empty line (`\r\n` or `\n` alone) in `buf`.
fn blank_line(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            if matches!(&buf[line_start..i], b"" | b"\r") {
                return Some(line_start);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Serves one request on `stream` and logs it to stderr.
fn handle_connection(mut stream: TcpStream, config: &Config) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let peer = stream.peer_addr()?;
    let (request_line, response) = match read_head(&mut stream) {
        Ok(Some(head)) => {
            let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(first).trim_end().to_owned();
            (line, handle(&head, config))
        }
        Ok(None) => return Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            (
                String::new(),
                Response::text(Status::BadRequest, format!("bad request: {e}\n")),
            )
        }
        Err(e) => return Err(e),
    };
    eprintln!("{peer} {request_line:?} {}", response.status.code());
    stream.write_all(&response.to_bytes())?;
    stream.flush()
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: TcpListener, config: Config) {
    let config = Arc::new(config);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // E.g. out of file descriptors: don't spin while it lasts.
                eprintln!("hello-service: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let config = Arc::clone(&config);
        let spawned = thread::Builder::new().spawn(move || {
            if let Err(e) = handle_connection(stream, &config) {
                eprintln!("hello-service: connection failed: {e}");
            }
        });
        if let Err(e) = spawned {
            eprintln!("hello-service: cannot start a connection thread: {e}");
        }
    }
}

/// Asks the service on `127.0.0.1:port` for `/healthz`; `Ok` if it answers `200`.
pub fn healthcheck(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let fail = |e: io::Error| format!("{addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, HEALTHCHECK_TIMEOUT).map_err(fail)?;
    stream
        .set_read_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(fail)?;
    stream
        .set_write_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(fail)?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(fail)?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(fail)?;

    let status_line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let status_line = status_line.trim_end();
    let mut parts = status_line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/") => Ok(()),
        _ => Err(format!("{addr}/healthz answered {status_line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom() -> Config {
        Config {
            greeting: "Howdy".to_owned(),
            version: "1.2.3".to_owned(),
        }
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: example\r\n").into_bytes()
    }

    #[test]
    fn healthz_answers_ok() {
        let response = handle(&get("/healthz"), &Config::default());
        assert_eq!(response.status, Status::Ok);
        assert_eq!(response.body, "ok\n");
    }

    #[test]
    fn root_greets_with_defaults() {
        let response = handle(&get("/"), &Config::default());
        assert_eq!(response.status, Status::Ok);
        assert_eq!(response.body, "Hello from hello-service dev\n");
    }

    #[test]
    fn root_greets_with_configured_greeting_and_version() {
        let response = handle(&get("/"), &custom());
        assert_eq!(response.status, Status::Ok);
        assert_eq!(response.body, "Howdy from hello-service 1.2.3\n");
    }

    #[test]
    fn query_string_is_ignored_for_routing() {
        let response = handle(&get("/healthz?verbose=1"), &Config::default());
        assert_eq!(response.status, Status::Ok);
        assert_eq!(response.body, "ok\n");
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in ["/nope", "/healthz/", "/index.html", "//"] {
            let response = handle(&get(path), &Config::default());
            assert_eq!(response.status, Status::NotFound, "{path}");
        }
    }

    #[test]
    fn other_methods_are_not_allowed_and_say_what_is() {
        for method in ["POST", "DELETE", "get"] {
            let head = format!("{method} / HTTP/1.1\r\nHost: example\r\n");
            let response = handle(head.as_bytes(), &Config::default());
            assert_eq!(response.status, Status::MethodNotAllowed, "{method}");
            assert_eq!(response.allow, Some("GET, HEAD"));
        }
    }

    #[test]
    fn head_sends_length_but_no_body() {
        let response = handle(b"HEAD / HTTP/1.1\r\nHost: example\r\n", &custom());
        assert_eq!(response.status, Status::Ok);
        let wire = String::from_utf8(response.to_bytes()).unwrap();
        assert!(wire.contains("\r\nContent-Length: 31\r\n"), "{wire}");
        assert!(wire.ends_with("\r\n\r\n"), "{wire}");
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        let cases: &[&[u8]] = &[
            b"",
            b"GET",
            b"GET /",
            b"GET / HTTP/1.1 extra\r\nHost: example",
            b"GET  / HTTP/1.1\r\nHost: example",
            b"GET http://example/ HTTP/1.1\r\nHost: example",
            b"GET / HTTP/2.0\r\nHost: example",
            b"GET / FTP/1.1\r\nHost: example",
            b"G(T / HTTP/1.1\r\nHost: example",
            b"GET / HTTP/1.1\r\nHost: example\r\nno colon here",
            b"GET / HTTP/1.1\r\nHost: example\r\nbad name: x",
            b"GET /\xff HTTP/1.1\r\nHost: example",
            b"GET / HTTP/1.1",
        ];
        for &head in cases {
            let response = handle(head, &Config::default());
            assert_eq!(
                response.status,
                Status::BadRequest,
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert!(response.body.starts_with("bad request: "));
        }
    }

    #[test]
    fn http_1_0_needs_no_host_and_bare_lf_is_accepted() {
        let response = handle(
            b"GET /healthz HTTP/1.0\nUser-Agent: test\n",
            &Config::default(),
        );
        assert_eq!(response.status, Status::Ok);
    }

    #[test]
    fn response_wire_format() {
        let response = Response {
            allow: Some("GET, HEAD"),
            ..Response::text(Status::MethodNotAllowed, "method not allowed\n")
        };
        assert_eq!(
            String::from_utf8(response.to_bytes()).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\n\
             Connection: close\r\n\
             Allow: GET, HEAD\r\n\
             \r\n\
             method not allowed\n"
        );
    }

    #[test]
    fn read_head_stops_at_the_blank_line() {
        let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        let head = read_head(&mut input).unwrap().unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(input, b"", "reads in chunks, so the body may be consumed");

        let mut lf_only: &[u8] = b"GET / HTTP/1.0\n\n";
        assert_eq!(
            read_head(&mut lf_only).unwrap().unwrap(),
            b"GET / HTTP/1.0\n"
        );
    }

    #[test]
    fn read_head_reports_empty_truncated_and_oversized_input() {
        let mut empty: &[u8] = b"";
        assert!(read_head(&mut empty).unwrap().is_none());

        let error_kind = |mut input: &[u8]| read_head(&mut input).err().map(|e| e.kind());

        let truncated = b"GET / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(error_kind(truncated), Some(io::ErrorKind::UnexpectedEof));

        let huge = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(
            error_kind(huge.as_bytes()),
            Some(io::ErrorKind::InvalidData)
        );
        let endless = vec![b'a'; 10 * MAX_HEAD_BYTES];
        assert_eq!(error_kind(&endless), Some(io::ErrorKind::InvalidData));

        let just_fits = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES - 100)
        );
        assert_eq!(error_kind(just_fits.as_bytes()), None);
    }

    #[test]
    fn port_defaults_and_validation() {
        assert_eq!(parse_port(None), Ok(8080));
        assert_eq!(parse_port(Some("")), Ok(8080));
        assert_eq!(parse_port(Some("18080")), Ok(18080));
        assert!(parse_port(Some("http")).is_err());
        assert!(parse_port(Some("70000")).is_err());
    }

    #[test]
    fn serves_over_tcp_and_healthcheck_passes() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || serve(listener, custom()));

        healthcheck(port).unwrap();

        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.ends_with("\r\n\r\nHowdy from hello-service 1.2.3\n"),
            "{response}"
        );
    }

    #[test]
    fn healthcheck_fails_when_nothing_listens() {
        // Bind then drop, to get a port that is very likely closed.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(healthcheck(port).is_err());
    }
}
