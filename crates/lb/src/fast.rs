//! The load balancer's own HTTP/1.1 path for plain-HTTP clients: the
//! common request — HTTP/1.1, a small body or none, no upgrade — is parsed
//! once (httparse, no header map), routed, and its head rewritten straight
//! into the member's pooled connection; the response head is rewritten the
//! same way and its body streamed through by its framing. That is where
//! most of the proxy's time went with hyper on both sides (BENCHMARKS.md).
//!
//! Anything else — chunked or large request bodies, `Expect`, upgrades
//! (WebSocket), HTTP/1.0, absolute targets, an access log to write — is
//! handed back, at the request boundary, to the hyper path ([`crate::proxy`])
//! with the bytes already read put back in front; it serves the rest of that
//! connection. Both paths refuse ambiguous framing and never forward it,
//! set the same forwarding headers, remove the same hop-by-hop headers,
//! retry and eject the same way, and count the same metrics.

use crate::headers::{write_forwarding, ClientSide, Peer};
use crate::metrics::{pool_labels, ServiceMetrics};
use crate::pool::{Backend, Pool};
use crate::proxy::{self, Listener, AFFINITY_COOKIE};
use crate::routes::{PoolKey, ServiceRoute};
use crate::State;
use bytes::{Buf, BytesMut};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_net::{Prefixed, ShutdownSignal};

/// Heads longer than this go to hyper (which refuses them).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;
/// Request bodies up to this are read whole here (so a failed attempt can
/// be sent again); larger ones stream through the hyper path.
const MAX_BODY: u64 = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Headers that belong to one connection (RFC 9110 §7.6.1), never
/// forwarded; request framing other than Content-Length goes to hyper.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Set by the proxy itself.
const FORWARDING: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "forwarded",
];

/// Idle member connections of this worker thread, by address.
type Idle = HashMap<String, Vec<(TcpStream, Instant)>, rustc_hash::FxBuildHasher>;

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(HashMap::default());
}

fn checkout(addr: &str, idle_timeout: Duration) -> Option<TcpStream> {
    IDLE.with(|p| {
        let mut p = p.borrow_mut();
        let list = p.get_mut(addr)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < idle_timeout {
                return Some(conn);
            }
        }
        None
    })
}

fn checkin(addr: &str, conn: TcpStream, max_idle: usize) {
    if max_idle == 0 {
        return;
    }
    IDLE.with(|p| {
        let mut p = p.borrow_mut();
        let list = match p.get_mut(addr) {
            Some(list) => list,
            None => p.entry(addr.to_string()).or_default(),
        };
        if list.len() < max_idle {
            list.push((conn, Instant::now()));
        }
    });
}

/// The end of a request or response head in `buf`, if it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
}

fn is(name: &str, set: &[&str]) -> bool {
    set.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The comma-separated tokens of the `Connection` headers, as sent.
struct Tokens<'h>(smallvec::SmallVec<[&'h str; 4]>);

impl<'h> Tokens<'h> {
    fn of(headers: &[httparse::Header<'h>]) -> Tokens<'h> {
        Tokens(
            headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .filter_map(|h| std::str::from_utf8(h.value).ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    /// Whether `name` is one of them (regardless of case).
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// One request this path forwards.
struct Forward {
    service: Arc<ServiceRoute>,
    metrics: Arc<ServiceMetrics>,
    key: PoolKey,
    pool: Arc<Pool>,
    affinity: Option<String>,
    idempotent: bool,
    head_request: bool,
    body_len: usize,
    /// The client asked to close after this request.
    close: bool,
}

/// What to do with a request.
enum Decision {
    /// Not for this path: hyper serves the connection from this request on.
    Handback,
    /// Answered here (`close`: and the connection closed after).
    Answer {
        metrics: Arc<ServiceMetrics>,
        status: u16,
        message: String,
        retry_after: Option<&'static str>,
        close: bool,
    },
    Forward(Forward),
}

fn answer(metrics: &Arc<ServiceMetrics>, status: u16, message: String, close: bool) -> Decision {
    Decision::Answer {
        metrics: metrics.clone(),
        status,
        message,
        retry_after: None,
        close,
    }
}

/// Parses and routes a request head, and writes the head the member gets
/// into `up`.
fn decide(
    state: &State,
    listener: Listener,
    peer: &Peer,
    head: &[u8],
    up: &mut Vec<u8>,
) -> Decision {
    if state.access.load().enabled() {
        return Decision::Handback;
    }
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Decision::Handback,
    }
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Decision::Handback;
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Decision::Handback;
    }
    let headers = || req.headers.iter().map(|h| (h.name, h.value));
    let unrouted = &state.unrouted;
    let (mut host, mut cl, mut te) = (None, None::<u64>, false);
    let (mut xff, mut fwd, mut cookie_seen) = (None, None, false);
    for (name, value) in headers() {
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Decision::Handback;
            }
            host = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("content-length") {
            for v in value.split(|b| *b == b',').map(|v| v.trim_ascii()) {
                let n = (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .flatten();
                match (n, cl) {
                    (None, _) => {
                        return answer(
                            unrouted,
                            400,
                            "bad request: Content-Length is not a number".into(),
                            true,
                        )
                    }
                    (Some(n), Some(prev)) if n != prev => {
                        return answer(
                            unrouted,
                            400,
                            "bad request: Content-Length values differ".into(),
                            true,
                        )
                    }
                    (Some(n), _) => cl = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            return Decision::Handback;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("forwarded") {
            fwd = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("cookie") {
            cookie_seen = true;
        }
    }
    if te && cl.is_some() {
        tracing::warn!(peer = %peer.addr, reason = "both Content-Length and Transfer-Encoding are set", "refused a request with ambiguous framing");
        return answer(
            unrouted,
            400,
            "bad request: both Content-Length and Transfer-Encoding are set".into(),
            true,
        );
    }
    let body_len = cl.unwrap_or(0);
    if te || body_len > MAX_BODY {
        return Decision::Handback;
    }
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Decision::Handback;
    };
    let tokens = Tokens::of(req.headers);
    if tokens.has("upgrade") {
        return Decision::Handback;
    }
    let close = tokens.has("close");

    let active = state.active.load();
    let routed = match active.routes.route(host, path, &state.tenants) {
        Ok(r) => r,
        Err(e) => {
            return answer(
                unrouted,
                404,
                proxy::no_route_message(&e),
                body_len > 0 || close,
            )
        }
    };
    let service = routed.route.service.clone();
    let metrics = service
        .metrics
        .get_or_init(|| Arc::new(ServiceMetrics::new(&state.metrics, &service.name)))
        .clone();
    let key = routed.target.pool.clone();
    let pool = state
        .pools
        .load()
        .get(&key)
        .filter(|p| !p.backends.is_empty())
        .cloned();
    let Some(pool) = pool else {
        return Decision::Answer {
            metrics,
            status: 503,
            message: proxy::no_member_message(&key),
            retry_after: Some("5"),
            close: body_len > 0 || close,
        };
    };
    let affinity = (service.affinity.enabled && cookie_seen)
        .then(|| {
            headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == AFFINITY_COOKIE).then(|| v.to_string())
                })
        })
        .flatten();

    // The member's head: the request line, every end-to-end header, then
    // the forwarding headers.
    up.clear();
    up.extend_from_slice(method.as_bytes());
    up.push(b' ');
    up.extend_from_slice(path.as_bytes());
    up.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    up.extend_from_slice(host.as_bytes());
    up.extend_from_slice(b"\r\n");
    for (name, value) in headers() {
        if is(name, HOP_BY_HOP) || is(name, FORWARDING) || tokens.has(name) {
            continue;
        }
        up.extend_from_slice(name.as_bytes());
        up.extend_from_slice(b": ");
        up.extend_from_slice(value);
        up.extend_from_slice(b"\r\n");
    }
    let client = ClientSide {
        peer,
        proto: listener.proto,
        host,
        port: listener.port,
    };
    write_forwarding(up, xff, fwd, &client);
    up.extend_from_slice(b"\r\n");
    Decision::Forward(Forward {
        service,
        metrics,
        key,
        pool,
        affinity,
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        ),
        head_request: method == "HEAD",
        body_len: body_len as usize,
        close,
    })
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Writes an answer of the proxy's own (as the hyper path words them).
async fn write_answer(
    client: &mut TcpStream,
    status: u16,
    message: &str,
    retry_after: Option<&str>,
    close: bool,
) -> io::Result<()> {
    use std::io::Write;
    let body = format!("{message}\n");
    let mut out = Vec::with_capacity(160 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
        reason(status),
        body.len()
    );
    if let Some(r) = retry_after {
        let _ = write!(out, "retry-after: {r}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    client.write_all(&out).await
}

/// Reads into `buf`; `Ok(false)` at the end of the stream.
async fn fill(s: &mut TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
    buf.reserve(READ_CHUNK);
    Ok(s.read_buf(buf).await? > 0)
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A member's response head, parsed.
struct ResponseHead {
    status: u16,
    framing: Framing,
    /// The member keeps the connection open after it.
    keep_alive: bool,
    /// The head the client gets (without the final CRLF).
    head: Vec<u8>,
}

/// Parses a response head; `Ok(None)` for an interim (1xx) response,
/// which is dropped.
fn parse_response(head: &[u8], head_request: bool) -> Result<Option<ResponseHead>, String> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(e) => return Err(format!("malformed response: {e}")),
    }
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) {
        if status == 101 {
            return Err("the member switched protocols unasked".into());
        }
        return Ok(None);
    }
    let headers = || resp.headers.iter().map(|h| (h.name, h.value));
    let tokens = Tokens::of(resp.headers);
    let mut keep_alive = resp.version == Some(1) && !tokens.has("close");
    let mut framing = None;
    let mut length = None::<u64>;
    for (name, value) in headers() {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value
                .rsplit(|b| *b == b',')
                .next()
                .map(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                .unwrap_or(false);
            framing = Some(if last {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("the response's Content-Length is not a number")?;
            if length.is_some_and(|l| l != n) {
                return Err("the response's Content-Length values differ".into());
            }
            length = Some(n);
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        framing.unwrap_or(match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        })
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    let mut out = Vec::with_capacity(head.len() + 64);
    match head.iter().position(|b| *b == b'\n') {
        // An HTTP/1.1 status line goes as it came.
        Some(end) if resp.version == Some(1) => {
            let line = &head[..end];
            out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            out.extend_from_slice(b"\r\n");
        }
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
            out.push(b' ');
            out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in headers() {
        // The body is passed on as framed, so its framing headers stay.
        let hop = is(
            name,
            &[
                "connection",
                "keep-alive",
                "proxy-connection",
                "proxy-authenticate",
                "upgrade",
            ],
        ) || tokens.has(name);
        if hop {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    Ok(Some(ResponseHead {
        status,
        framing,
        keep_alive,
        head: out,
    }))
}

/// Follows a chunked body to its end (the last chunk and the trailers).
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Chunked {
    /// Consumes what of `data` belongs to the body; the count, or an error
    /// for a malformed body.
    fn feed(&mut self, data: &[u8]) -> Result<usize, ()> {
        let mut i = 0;
        while i < data.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Data(n) => {
                    let take = (n as usize).min(data.len() - i);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailers => {
                    let b = data[i];
                    i += 1;
                    if self.line.len() > 4096 {
                        return Err(());
                    }
                    if b != b'\n' {
                        self.line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").ok_or(())?;
                    self.state = match self.state {
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(()),
                        ChunkState::Trailers if line.is_empty() => ChunkState::Done,
                        ChunkState::Trailers => ChunkState::Trailers,
                        _ => {
                            let hex = line.split(|b| *b == b';').next().unwrap_or(&[]);
                            let hex = std::str::from_utf8(hex.trim_ascii()).map_err(|_| ())?;
                            match u64::from_str_radix(hex, 16).map_err(|_| ())? {
                                0 => ChunkState::Trailers,
                                n => ChunkState::Data(n),
                            }
                        }
                    };
                }
                ChunkState::Done => unreachable!("the loop stops at Done"),
            }
        }
        Ok(i)
    }

    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// Why an exchange with a member failed.
enum Failed {
    /// No connection: nothing was sent.
    Connect(String),
    /// Sent (perhaps partly), and no whole response head came.
    Reset(String),
    /// No response head within the response timeout.
    Timeout,
}

/// Sends `request` to `addr` and reads the response head: on a pooled
/// connection, or a new one (also when a pooled one turns out closed
/// before any answer). Returns the connection, what was read, and the
/// head's length.
async fn exchange(
    addr: &str,
    request: &[u8],
    head_request: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
    rbuf: &mut BytesMut,
) -> Result<(TcpStream, ResponseHead, usize), Failed> {
    for fresh in [false, true] {
        let (mut conn, pooled) = match (!fresh).then(|| checkout(addr, idle_timeout)).flatten() {
            Some(c) => (c, true),
            None => {
                let c = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await
                {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        return Err(Failed::Connect(format!("cannot connect to {addr}: {e}")))
                    }
                    Err(_) => {
                        return Err(Failed::Connect(format!(
                            "cannot connect to {addr}: no connection within {} ms",
                            connect_timeout.as_millis()
                        )))
                    }
                };
                let _ = c.set_nodelay(true);
                (c, false)
            }
        };
        let stale = |e: String| if pooled { None } else { Some(Failed::Reset(e)) };
        if let Err(e) = conn.write_all(request).await {
            match stale(e.to_string()) {
                None => continue,
                Some(f) => return Err(f),
            }
        }
        rbuf.clear();
        loop {
            match fill(&mut conn, rbuf).await {
                Ok(true) => {}
                Ok(false) if rbuf.is_empty() => {
                    match stale("the member closed the connection".into()) {
                        None => break,
                        Some(f) => return Err(f),
                    }
                }
                Ok(false) => {
                    return Err(Failed::Reset(
                        "the member closed the connection mid-answer".into(),
                    ))
                }
                Err(e) if rbuf.is_empty() => match stale(e.to_string()) {
                    None => break,
                    Some(f) => return Err(f),
                },
                Err(e) => return Err(Failed::Reset(e.to_string())),
            }
            while let Some(n) = head_end(rbuf) {
                match parse_response(&rbuf[..n], head_request) {
                    Ok(Some(head)) => return Ok((conn, head, n)),
                    // An interim response: dropped, the real one follows.
                    Ok(None) => rbuf.advance(n),
                    Err(e) => return Err(Failed::Reset(e)),
                }
            }
            if rbuf.len() > MAX_HEAD {
                return Err(Failed::Reset(
                    "the member's response head is too large".into(),
                ));
            }
        }
    }
    Err(Failed::Reset("the member closed the connection".into()))
}

/// Forwards one request (`request`: its head and body as the member gets
/// them); returns whether the client connection stays open.
async fn forward(
    state: &State,
    client: &mut TcpStream,
    f: Forward,
    request: &[u8],
    rbuf: &mut BytesMut,
    timer: &mut Timer,
    draining: bool,
) -> bool {
    let start = Instant::now();
    let active = state.active.load_full();
    let settings = &active.settings;
    let keep_client = !f.close && !draining;
    let mut tried: Vec<Arc<Backend>> = vec![];
    let outcome = loop {
        let Some(backend) = f.pool.pick(
            f.service.algorithm,
            f.affinity.as_deref(),
            &tried,
            Instant::now(),
        ) else {
            break Err(if tried.is_empty() {
                (503, proxy::no_member_message(&f.key), Some("5"))
            } else {
                (502, proxy::none_answered_message(&f.key), None)
            });
        };
        let guard = backend.start();
        let sent = exchange(
            &backend.addr,
            request,
            f.head_request,
            active.pool.connect_timeout,
            active.pool.idle_timeout,
            &mut *rbuf,
        );
        let result = match settings.response_timeout {
            Some(limit) => {
                timer.as_mut().reset(tokio::time::Instant::now() + limit);
                tokio::select! {
                    r = sent => r,
                    _ = timer.as_mut() => Err(Failed::Timeout),
                }
            }
            None => sent.await,
        };
        match result {
            Ok((conn, head, n)) => {
                backend.succeeded();
                break Ok((backend, guard, conn, head, n));
            }
            Err(Failed::Timeout) => {
                state
                    .metrics
                    .upstream_errors
                    .get_or_create(&proxy::error_labels(&f.key, "timeout"))
                    .inc();
                tracing::warn!(member = %backend.id, limit_ms = settings.response_timeout.map_or(0, |d| d.as_millis() as u64), "member did not answer in time");
                break Err((504, "the member did not answer in time".to_string(), None));
            }
            Err(failure) => {
                drop(guard);
                let (connect, e) = match failure {
                    Failed::Connect(e) => (true, e),
                    Failed::Reset(e) => (false, e),
                    Failed::Timeout => unreachable!("handled above"),
                };
                let kind = if connect { "connect" } else { "reset" };
                state
                    .metrics
                    .upstream_errors
                    .get_or_create(&proxy::error_labels(&f.key, kind))
                    .inc();
                let period = backend.eject(Instant::now(), settings.eject_base, settings.eject_max);
                state
                    .metrics
                    .ejections
                    .get_or_create(&pool_labels(&f.key))
                    .inc();
                tried.push(backend.clone());
                // The whole request is at hand, so an idempotent one may go
                // again even if the member saw it; another only if it never
                // left.
                let retry = active.fail_over
                    && tried.len() <= settings.max_retries as usize
                    && (connect || f.idempotent);
                tracing::warn!(
                    member = %backend.id, addr = %backend.addr, kind, error = %e,
                    ejected_ms = period.as_millis() as u64, retry,
                    "request to member failed; member ejected"
                );
                if retry {
                    state
                        .metrics
                        .retries
                        .get_or_create(&pool_labels(&f.key))
                        .inc();
                    continue;
                }
                break Err((502, proxy::none_answered_message(&f.key), None));
            }
        }
    };
    let (backend, guard, mut conn, head, n) = match outcome {
        Ok(v) => v,
        Err((status, message, retry_after)) => {
            f.metrics.answered(status);
            return write_answer(client, status, &message, retry_after, !keep_client)
                .await
                .is_ok()
                && keep_client;
        }
    };
    f.metrics.answered(head.status);
    f.metrics.observe_latency(start.elapsed().as_secs_f64());

    let keep_client = keep_client && head.framing != Framing::UntilClose;
    let mut out = head.head;
    if f.service.affinity.enabled {
        use std::io::Write;
        let _ = write!(
            out,
            "set-cookie: {AFFINITY_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax\r\n",
            backend.token,
            f.service.affinity.timeout.as_secs().max(1)
        );
    }
    if !keep_client {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    rbuf.advance(n);

    // The body, as framed: what was read with the head first, in the same write.
    let mut chunked = Chunked::default();
    let mut left = match head.framing {
        Framing::Length(len) => len,
        _ => u64::MAX,
    };
    let mut complete = matches!(head.framing, Framing::Length(0));
    let mut take = |data: &[u8]| -> Result<(usize, bool), ()> {
        match head.framing {
            Framing::Length(_) => {
                let k = (left.min(data.len() as u64)) as usize;
                left -= k as u64;
                Ok((k, left == 0))
            }
            Framing::Chunked => {
                let k = chunked.feed(data)?;
                Ok((k, chunked.done()))
            }
            Framing::UntilClose => Ok((data.len(), false)),
        }
    };
    if !complete && !rbuf.is_empty() {
        match take(rbuf) {
            Ok((k, done)) => {
                out.extend_from_slice(&rbuf[..k]);
                rbuf.advance(k);
                complete = done;
            }
            Err(()) => return false,
        }
    }
    if client.write_all(&out).await.is_err() {
        return false;
    }
    while !complete {
        rbuf.clear();
        match fill(&mut conn, rbuf).await {
            Ok(true) => {}
            // The end of a body framed by the connection's end.
            Ok(false) if head.framing == Framing::UntilClose => break,
            // Cut off by the member: the client sees it cut off too.
            Ok(false) | Err(_) => return false,
        }
        let Ok((k, done)) = take(rbuf) else {
            return false;
        };
        if client.write_all(&rbuf[..k]).await.is_err() {
            return false;
        }
        rbuf.advance(k);
        complete = done;
    }
    drop(guard);
    // Bytes past the response would be a member speaking out of turn.
    if head.keep_alive && rbuf.is_empty() && head.framing != Framing::UntilClose {
        checkin(&backend.addr, conn, active.pool.max_idle_per_member);
    }
    keep_client
}

/// One timer per connection, reset for each wait (the idle wait for a
/// request, the wait for a member's answer) rather than made anew.
type Timer = std::pin::Pin<Box<tokio::time::Sleep>>;

/// Reads into `buf` within `limit` (none: no limit); `Ok(false)` at the
/// end of the stream or past the limit.
async fn fill_within(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    timer: &mut Timer,
    limit: Option<Duration>,
) -> io::Result<bool> {
    let Some(limit) = limit else {
        return fill(s, buf).await;
    };
    timer.as_mut().reset(tokio::time::Instant::now() + limit);
    tokio::select! {
        r = fill(s, buf) => r,
        _ = timer.as_mut() => Ok(false),
    }
}

fn handback(buf: BytesMut, client: TcpStream) -> Option<Prefixed<TcpStream>> {
    Some(Prefixed::new(buf.freeze(), client))
}

/// Serves a plain-HTTP client connection until it closes, hands it back to
/// hyper (see the module doc), or `shutdown` fires between requests.
pub(crate) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    listener: Listener,
    shutdown: ShutdownSignal,
) -> Option<Prefixed<TcpStream>> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut up = Vec::with_capacity(1024);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let peer = Peer::new(peer);
    let mut timer: Timer = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
    // One wait for shutdown for the whole connection, rather than a new one
    // (registered and unregistered with the shared signal) per request.
    let mut stop_signal = shutdown.clone();
    let mut stop = std::pin::pin!(stop_signal.wait());
    loop {
        let head_len = loop {
            if let Some(n) = head_end(&buf) {
                break n;
            }
            if buf.len() > MAX_HEAD {
                return handback(buf, client);
            }
            let idle = state.active.load().settings.socket_timeout;
            let waiting = buf.is_empty();
            if waiting && shutdown.is_triggered() {
                return None;
            }
            let got = if waiting {
                // Between requests: the idle timeout and shutdown apply.
                tokio::select! {
                    // The request is usually there when this task wakes.
                    biased;
                    r = fill_within(&mut client, &mut buf, &mut timer, idle) => r,
                    _ = &mut stop => return None,
                }
            } else {
                fill_within(&mut client, &mut buf, &mut timer, idle).await
            };
            match got {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        };
        let f = match decide(&state, listener, &peer, &buf[..head_len], &mut up) {
            Decision::Handback => return handback(buf, client),
            Decision::Answer {
                metrics,
                status,
                message,
                retry_after,
                close,
            } => {
                metrics.answered(status);
                let ok = write_answer(&mut client, status, &message, retry_after, close)
                    .await
                    .is_ok();
                if close || !ok {
                    return None;
                }
                buf.advance(head_len);
                continue;
            }
            Decision::Forward(f) => f,
        };
        let total = head_len + f.body_len;
        while buf.len() < total {
            let idle = state.active.load().settings.socket_timeout;
            match fill_within(&mut client, &mut buf, &mut timer, idle).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
        // The body goes with the head, in one write.
        up.extend_from_slice(&buf[head_len..total]);
        let keep = forward(
            &state,
            &mut client,
            f,
            &up,
            &mut rbuf,
            &mut timer,
            shutdown.is_triggered(),
        )
        .await;
        if !keep {
            return None;
        }
        buf.advance(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nGET /next";
        let mut c = Chunked::default();
        let n = c.feed(body).unwrap();
        assert!(c.done());
        assert_eq!(&body[n..], b"GET /next");
        // Byte by byte, the same.
        let mut c = Chunked::default();
        let mut total = 0;
        for b in body.iter() {
            if c.done() {
                break;
            }
            total += c.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(total, n);
        assert!(Chunked::default().feed(b"zz\r\n").is_err());
        assert!(Chunked::default().feed(b"3\r\nabcX\r\n").is_err());
    }

    #[test]
    fn response_heads_are_rewritten() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-private\r\nx-private: 1\r\nKeep-Alive: timeout=5\r\nx-kept: yes\r\n\r\n";
        let h = parse_response(head, false).unwrap().unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(5), true)
        );
        let text = String::from_utf8(h.head).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-kept: yes\r\n"
        );
        let h = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0), "HEAD has no body");
        // An HTTP/1.0 member's status line is the proxy's own HTTP/1.1 one.
        let h = parse_response(
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        assert_eq!(
            String::from_utf8(h.head).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
        );
        assert!(parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", false)
            .unwrap()
            .is_none());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
    }
}
