//! The plain-HTTP/1.1 transport of generation requests: one task per request
//! writes the request and reads its answer straight from a pooled
//! connection.
//!
//! Why not reqwest here (it still serves `https://`, HTTP/2, URLs with
//! credentials in them, and every request other than generation): at
//! thousands of streamed requests a second on one core, hyper's client ran
//! each response on two tasks (the connection's and the reader's, joined by
//! a channel, so every chunk was polled twice), and reqwest parsed the URL
//! twice per request for its redirect layer. That was about a fifth of the
//! client's CPU per request (perf, 6,000 requests/s, 16 chunks each), and a
//! benchmark client's CPU is what limits the rate it can offer. The response
//! head is parsed by `httparse` (hyper's own parser); only the framing
//! (`Content-Length`, chunked, close-delimited) and the pool are written
//! here, and they follow RFC 9112: a response whose framing is not sound is
//! an error, never guessed at.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Free space kept in a connection's read buffer before each read.
const READ_SPACE: usize = 16 * 1024;

/// Header names the plain transport writes itself or that change framing:
/// an extra header with one of these names sends its requests through
/// reqwest instead, which knows how to merge them.
const RESERVED: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "expect",
    "keep-alive",
];

/// Where to connect.
#[derive(Debug, Clone)]
enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

/// One endpoint's plain-HTTP/1.1 client: the request head every request
/// starts with, and the idle keep-alive connections.
pub(crate) struct Plain {
    target: Target,
    /// Request line and the fixed header fields. It may carry the API key
    /// and extra headers' values: never printed.
    head: Vec<u8>,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Option<Duration>,
    idle: Mutex<Vec<Idle>>,
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What the plain transport needs to know at setup.
pub(crate) struct PlainSetup<'a> {
    pub connect_timeout: Duration,
    pub max_idle: usize,
    pub idle_timeout: Option<Duration>,
    /// `User-Agent` unless an extra header names its own.
    pub user_agent: &'a str,
    /// `Authorization`, when an API key is set.
    pub authorization: Option<&'a str>,
    /// Extra headers, sent with every request (`name`, `value`).
    pub extra: Vec<(&'a str, &'a str)>,
    /// Names each request sets itself (an extra header of that name is
    /// not sent twice: the request's own wins, as in reqwest).
    pub per_request: &'a [&'a str],
}

/// A connection and what was read from it and not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Why a request or its answer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The connection was refused or could not be made.
    Connect(String),
    /// The server closed the connection after the request was written and
    /// before any byte of an answer: the request may be sent once more.
    ClosedBeforeAnswer,
    /// The connection broke (or closed) in the middle of the answer.
    Broken(String),
    /// The answer is not a sound HTTP/1.1 message.
    Malformed(String),
}

impl Plain {
    /// The plain transport for `url`, or `None` when the URL needs reqwest
    /// (not `http://`, credentials in it, or an extra header the plain
    /// transport does not merge).
    pub(crate) fn for_url(url: &reqwest::Url, setup: &PlainSetup<'_>) -> Option<Plain> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        if setup.extra.iter().any(|(name, _)| {
            RESERVED
                .iter()
                .any(|reserved| name.eq_ignore_ascii_case(reserved))
        }) {
            return None;
        }
        let port = url.port_or_known_default()?;
        let host = url.host_str()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let target = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => Target::Addr(SocketAddr::from((ip, port))),
            Err(_) => Target::Name(bare.to_owned(), port),
        };
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(url.path().as_bytes());
        if let Some(query) = url.query() {
            head.push(b'?');
            head.extend_from_slice(query.as_bytes());
        }
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        head.extend_from_slice(host.as_bytes());
        if let Some(port) = url.port() {
            head.push(b':');
            head.extend_from_slice(port.to_string().as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut field = |name: &str, value: &str| {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        };
        let named = |name: &str| {
            setup
                .extra
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !named("user-agent") {
            field("user-agent", setup.user_agent);
        }
        field("content-type", "application/json");
        if let Some(auth) = setup.authorization {
            field("authorization", auth);
        }
        for (name, value) in &setup.extra {
            let own = name.eq_ignore_ascii_case("content-type")
                || (setup.authorization.is_some() && name.eq_ignore_ascii_case("authorization"))
                || setup
                    .per_request
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n));
            if !own {
                field(name, value);
            }
        }
        Some(Plain {
            target,
            head,
            connect_timeout: setup.connect_timeout,
            max_idle: setup.max_idle,
            idle_timeout: setup.idle_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Writes one request (the fixed head, then `fields`, each a whole
    /// `name: value\r\n` line, then the body) and reads its response head.
    pub(crate) async fn send(&self, fields: &[u8], body: &[u8]) -> Result<Response<'_>, Failure> {
        let mut request = Vec::with_capacity(self.head.len() + fields.len() + 32 + body.len());
        request.extend_from_slice(&self.head);
        request.extend_from_slice(fields);
        request.extend_from_slice(b"content-length: ");
        request.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);

        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        if let Err(e) = conn.stream.write_all(&request).await {
            return Err(Failure::Broken(e.to_string()));
        }
        let head = read_head(&mut conn).await?;
        Ok(Response {
            plain: self,
            conn: Some(conn),
            status: head.status,
            sse: head.sse,
            keep_alive: head.keep_alive,
            body: head.body,
        })
    }

    /// The most recently used idle connection that is still open. One
    /// peek per reuse finds a connection the server closed while it sat
    /// idle (llama.cpp closes after every streamed answer): sending on it
    /// would cost a round trip and a resend.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(limit) = self.idle_timeout {
            // Oldest first: drop those idle too long.
            let stale = idle
                .iter()
                .position(|i| i.since.elapsed() < limit)
                .unwrap_or(idle.len());
            idle.drain(..stale);
        }
        while let Some(Idle { conn, .. }) = idle.pop() {
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            // The socket is non-blocking (tokio's): nothing to read is
            // WouldBlock, at once.
            match socket2::SockRef::from(&conn.stream).peek(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                // Closed, failed, or sent bytes nobody asked for.
                _ => {}
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let connecting = async {
            match &self.target {
                Target::Addr(addr) => TcpStream::connect(*addr).await,
                Target::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => return Err(Failure::ConnectTimeout),
            Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
            Ok(Ok(stream)) => stream,
        };
        // Requests go out whole in one write; Nagle would only delay them.
        stream
            .set_nodelay(true)
            .map_err(|e| Failure::Connect(e.to_string()))?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_SPACE),
        })
    }
}

/// Reads from the connection into its buffer; 0 at the end of the stream.
async fn fill(conn: &mut Conn) -> std::io::Result<usize> {
    if conn.buf.capacity() - conn.buf.len() < READ_SPACE / 2 {
        conn.buf.reserve(READ_SPACE);
    }
    conn.stream.read_buf(&mut conn.buf).await
}

/// What a response head says.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    sse: bool,
    keep_alive: bool,
    body: Framing,
}

async fn read_head(conn: &mut Conn) -> Result<Head, Failure> {
    let mut received = 0usize;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&conn.buf)? {
                Some((head, len)) => {
                    conn.buf.advance(len);
                    // Informational answers (100 Continue, 103 Early
                    // Hints) come before the real one.
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    if head.status == 101 {
                        return Err(Failure::Malformed(
                            "the server switched protocols (101) on a plain request".into(),
                        ));
                    }
                    return Ok(head);
                }
                None if conn.buf.len() > MAX_HEAD_BYTES => {
                    return Err(Failure::Malformed(format!(
                        "the response head is longer than {MAX_HEAD_BYTES} bytes"
                    )));
                }
                None => {}
            }
        }
        match fill(conn).await {
            Ok(0) if received == 0 => return Err(Failure::ClosedBeforeAnswer),
            Ok(0) => {
                return Err(Failure::Broken(
                    "the connection closed in the middle of the response head".into(),
                ));
            }
            Ok(n) => received += n,
            Err(e) => return Err(Failure::Broken(e.to_string())),
        }
    }
}

/// Parses a response head at the start of `bytes`: the head and its length,
/// or `None` when more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, Failure> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Failure::Malformed(format!(
                "the response head is not valid HTTP/1.1: {e}"
            )));
        }
    };
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let mut sse = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut chunked = false;
    let mut coded = false;
    let mut length: Option<u64> = None;
    for field in response.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-type") {
            sse = trimmed(field.value).starts_with(b"text/event-stream");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',') {
                let token = trimmed(token);
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides: chunked there frames the body.
            coded = true;
            chunked = field
                .value
                .split(|&b| b == b',')
                .map(trimmed)
                .rfind(|t| !t.is_empty())
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            for value in field.value.split(|&b| b == b',') {
                let value = trimmed(value);
                let n = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Failure::Malformed(format!(
                            "Content-Length {:?} is not a number",
                            String::from_utf8_lossy(field.value)
                        ))
                    })?;
                if length.is_some_and(|l| l != n) {
                    return Err(Failure::Malformed(
                        "the response has two different Content-Lengths".into(),
                    ));
                }
                length = Some(n);
            }
        }
    }
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if coded {
        // Transfer-Encoding overrides Content-Length (RFC 9112, 6.3).
        if chunked {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let reusable = !matches!(body, Framing::Close) && !close && (http11 || keep_alive);
    Ok(Some((
        Head {
            status,
            sse,
            keep_alive: reusable,
            body,
        },
        len,
    )))
}

fn trimmed(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// How the body's end is known.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// It ends when the server closes the connection.
    Close,
}

/// The chunked decoder's position.
#[derive(Debug, Default, PartialEq, Eq)]
enum Chunked {
    /// At the start of a chunk-size line.
    #[default]
    SizeStart,
    /// In a chunk-size line: the size so far and the bytes of the line.
    Size {
        size: u64,
        line: usize,
        after: AfterSize,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: bytes so far, and whether the current line
    /// is empty so far.
    Trailer {
        bytes: usize,
        line_empty: bool,
    },
    TrailerLf {
        bytes: usize,
        line_empty: bool,
    },
    Done,
}

/// Where a chunk-size line is after its first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterSize {
    /// Still in the hex digits.
    Digits,
    /// In whitespace after them: only more of it, `;` or CR may follow.
    Space,
    /// In a chunk extension (`;name=value`), ignored up to CR.
    Extension,
}

impl Chunked {
    /// Takes from `buf` what it holds of the body: the data bytes among
    /// them (consecutive chunks joined), and whether the body ended.
    fn take(&mut self, buf: &mut BytesMut) -> Result<(Option<Bytes>, bool), Failure> {
        let mut data: Option<BytesMut> = None;
        let bad = |what: &str| Failure::Malformed(format!("bad chunked encoding: {what}"));
        while !buf.is_empty() && *self != Chunked::Done {
            if let Chunked::Data(left) = *self {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let piece = buf.split_to(n);
                match &mut data {
                    None => data = Some(piece),
                    Some(d) => d.extend_from_slice(&piece),
                }
                let left = left - n as u64;
                *self = if left == 0 {
                    Chunked::DataCr
                } else {
                    Chunked::Data(left)
                };
                continue;
            }
            let b = buf[0];
            buf.advance(1);
            *self = match std::mem::take(self) {
                Chunked::SizeStart => match hex(b) {
                    Some(d) => Chunked::Size {
                        size: u64::from(d),
                        line: 1,
                        after: AfterSize::Digits,
                    },
                    None => return Err(bad("a chunk size must start with a hex digit")),
                },
                Chunked::Size { size, line, after } => {
                    if line >= MAX_SIZE_LINE {
                        return Err(bad("the chunk-size line is too long"));
                    }
                    let next = |after| Chunked::Size {
                        size,
                        line: line + 1,
                        after,
                    };
                    match (b, after, hex(b)) {
                        (b'\r', _, _) => Chunked::SizeLf { size },
                        (_, AfterSize::Digits, Some(d)) => {
                            if size >> 60 != 0 {
                                return Err(bad("the chunk size is too large"));
                            }
                            Chunked::Size {
                                size: size << 4 | u64::from(d),
                                line: line + 1,
                                after,
                            }
                        }
                        (b'\n', _, _) => return Err(bad("a chunk-size line must end in CRLF")),
                        (b';', _, _) | (_, AfterSize::Extension, _) => next(AfterSize::Extension),
                        (b' ' | b'\t', _, _) => next(AfterSize::Space),
                        _ => return Err(bad("a chunk size is not a hex number")),
                    }
                }
                Chunked::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => Chunked::Trailer {
                        bytes: 0,
                        line_empty: true,
                    },
                    (b'\n', size) => Chunked::Data(size),
                    _ => return Err(bad("a chunk-size line must end in CRLF")),
                },
                // Handled before the byte-wise states.
                Chunked::Data(_) | Chunked::Done => return Err(bad("decoder state")),
                Chunked::DataCr => match b {
                    b'\r' => Chunked::DataLf,
                    _ => return Err(bad("a chunk's data must end in CRLF")),
                },
                Chunked::DataLf => match b {
                    b'\n' => Chunked::SizeStart,
                    _ => return Err(bad("a chunk's data must end in CRLF")),
                },
                Chunked::Trailer { bytes, line_empty } => {
                    if bytes >= MAX_TRAILER_BYTES {
                        return Err(bad("the trailer section is too long"));
                    }
                    match b {
                        b'\r' => Chunked::TrailerLf {
                            bytes: bytes + 1,
                            line_empty,
                        },
                        _ => Chunked::Trailer {
                            bytes: bytes + 1,
                            line_empty: false,
                        },
                    }
                }
                Chunked::TrailerLf { bytes, line_empty } => match (b, line_empty) {
                    (b'\n', true) => Chunked::Done,
                    (b'\n', false) => Chunked::Trailer {
                        bytes: bytes + 1,
                        line_empty: true,
                    },
                    _ => return Err(bad("a trailer line must end in CRLF")),
                },
            };
        }
        Ok((data.map(BytesMut::freeze), *self == Chunked::Done))
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A response whose head was read. Its body is read with [`Response::chunk`];
/// read to its end, the connection goes back to the pool, and dropped
/// before that, the connection is closed.
pub(crate) struct Response<'a> {
    plain: &'a Plain,
    conn: Option<Conn>,
    status: u16,
    sse: bool,
    keep_alive: bool,
    body: Framing,
}

impl Response<'_> {
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Whether the server answered with an event stream.
    pub(crate) fn is_sse(&self) -> bool {
        self.sse
    }

    /// The body bytes that arrived since the last call (`None` at the end).
    /// Cancel-safe: what was read stays in the connection's buffer.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(None);
            };
            let (data, ended) = match &mut self.body {
                Framing::Length(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    *left -= n as u64;
                    let data = (n > 0).then(|| conn.buf.split_to(n).freeze());
                    (data, *left == 0)
                }
                Framing::Chunked(decoder) => decoder.take(&mut conn.buf)?,
                Framing::Close => {
                    let data = (!conn.buf.is_empty()).then(|| conn.buf.split().freeze());
                    (data, false)
                }
            };
            if ended {
                self.finish();
            }
            if data.is_some() || ended {
                return Ok(data);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Ok(None);
            };
            match fill(conn).await {
                Ok(0) if matches!(self.body, Framing::Close) => {
                    self.conn = None;
                    return Ok(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Err(Failure::Broken(
                        "the connection closed before the message completed".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Err(Failure::Broken(e.to_string()));
                }
            }
        }
    }

    /// The body ended: a reusable connection with nothing left over goes
    /// back to the pool.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.plain.put_idle(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<(Vec<u8>, bool), Failure> {
        let mut decoder = Chunked::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut ended = false;
        for part in wire.chunks(piece) {
            buf.extend_from_slice(part);
            let (data, end) = decoder.take(&mut buf)?;
            if let Some(d) = data {
                out.extend_from_slice(&d);
            }
            ended |= end;
        }
        Ok((out, ended))
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_the_bytes_arrive() {
        let wire = b"5\r\nhello\r\n7;name=value\r\n, world\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in 1..=wire.len() {
            let (data, ended) = decode_in_pieces(wire, piece).unwrap();
            assert_eq!(data, b"hello, world0123456789", "pieces of {piece}");
            assert!(ended, "pieces of {piece}");
        }
        // Without the final CRLF of the trailer section it has not ended.
        let (_, ended) = decode_in_pieces(&wire[..wire.len() - 2], 3).unwrap();
        assert!(!ended);
    }

    #[test]
    fn bytes_after_the_last_chunk_stay_in_the_buffer() {
        let mut decoder = Chunked::default();
        let mut buf = BytesMut::from(&b"2\r\nhi\r\n0\r\n\r\nHTTP/1.1"[..]);
        let (data, ended) = decoder.take(&mut buf).unwrap();
        assert_eq!(data.as_deref(), Some(&b"hi"[..]));
        assert!(ended);
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn unsound_chunked_framing_is_an_error() {
        for wire in [
            &b"x\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"5 5\r\n",
            b"11111111111111111\r\n",
        ] {
            let result = decode_in_pieces(wire, wire.len());
            assert!(
                matches!(result, Err(Failure::Malformed(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_SIZE_LINE));
        assert!(decode_in_pieces(long.as_bytes(), 7).is_err());
    }

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn the_head_decides_framing_and_reuse_as_rfc_9112_says() {
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        assert_eq!(
            (h.status, h.sse, h.keep_alive, h.body),
            (200, true, true, Framing::Chunked(Chunked::default()))
        );
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (h.sse, h.keep_alive, h.body),
            (false, false, Framing::Length(12))
        );
        // Transfer-Encoding wins over Content-Length.
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );
        assert_eq!(h.body, Framing::Chunked(Chunked::default()));
        // A coding that does not end in chunked: read to the close.
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (Framing::Close, false));
        // No length at all: read to the close.
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (Framing::Close, false));
        // HTTP/1.0 keeps the connection only when it says so.
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n").body,
            Framing::Length(0)
        );
        // Repeated equal lengths are one length; different ones are an error.
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n").body,
            Framing::Length(3)
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad.as_bytes()), Err(Failure::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
    }

    fn setup<'a>(extra: Vec<(&'a str, &'a str)>) -> PlainSetup<'a> {
        PlainSetup {
            connect_timeout: Duration::from_secs(1),
            max_idle: 8,
            idle_timeout: None,
            user_agent: "ua/1",
            authorization: Some("Bearer k"),
            extra,
            per_request: &["accept", "x-request-id"],
        }
    }

    #[test]
    fn the_request_head_is_written_once_with_the_requests_own_fields_winning() {
        let url = reqwest::Url::parse("http://localhost:8000/v1/completions?x=1").unwrap();
        let plain = Plain::for_url(
            &url,
            &setup(vec![
                ("X-Team", "a"),
                ("Authorization", "Basic other"),
                ("accept", "x"),
                ("user-agent", "mine"),
            ]),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(plain.head.clone()).unwrap(),
            "POST /v1/completions?x=1 HTTP/1.1\r\nhost: localhost:8000\r\n\
             content-type: application/json\r\nauthorization: Bearer k\r\n\
             X-Team: a\r\nuser-agent: mine\r\n"
        );
        assert!(!format!("{plain:?}").contains("Bearer"));
        // The default port is left out of Host, as hyper does.
        let url = reqwest::Url::parse("http://127.0.0.1/v1/completions").unwrap();
        let plain = Plain::for_url(&url, &setup(vec![])).unwrap();
        assert!(
            String::from_utf8(plain.head)
                .unwrap()
                .contains("host: 127.0.0.1\r\n")
        );
    }

    #[test]
    fn urls_and_headers_the_plain_transport_does_not_handle_go_to_reqwest() {
        for url in [
            "https://127.0.0.1:8000/v1/completions",
            "http://user:pw@127.0.0.1:8000/v1/completions",
        ] {
            let url = reqwest::Url::parse(url).unwrap();
            assert!(Plain::for_url(&url, &setup(vec![])).is_none(), "{url}");
        }
        let url = reqwest::Url::parse("http://127.0.0.1:8000/v1/completions").unwrap();
        assert!(Plain::for_url(&url, &setup(vec![("Connection", "close")])).is_none());
        assert!(Plain::for_url(&url, &setup(vec![])).is_some());
    }
}
