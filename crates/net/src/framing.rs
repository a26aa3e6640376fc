//! A guard against request smuggling on HTTP/1 connections.
//!
//! hyper settles a request carrying both `Content-Length` and
//! `Transfer-Encoding` the way RFC 9112 allows (chunked wins, the
//! connection closes afterwards) and drops `Content-Length` before the
//! service sees the request, so a proxy cannot tell that the client sent an
//! ambiguous message. A proxy must not forward one at all: the member
//! behind it may read it the other way. [`Guarded`] follows the request
//! stream (heads, then bodies by their framing) and, when a head has both
//! headers, adds [`BAD_FRAMING_HEADER`] to it so the service can refuse it.
//! Anything it cannot follow (upgrades, HTTP/2, malformed input, heads
//! over 64 KiB) is passed through untouched from then on; hyper refuses
//! what is malformed.

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Added to a request head that had both `Content-Length` and
/// `Transfer-Encoding`.
pub const BAD_FRAMING_HEADER: &str = "x-wharf-bad-framing";

/// Heads longer than this are not inspected (hyper refuses them anyway).
const MAX_HEAD: usize = 64 * 1024;
/// Chunk-size and trailer lines longer than this end the inspection.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd(u8),
    Trailers,
    /// Not inspecting any more.
    Pass,
}

/// Follows a byte stream of HTTP/1 requests.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    /// The head (or line) being collected.
    buf: Vec<u8>,
}

impl Scanner {
    pub fn new(enabled: bool) -> Scanner {
        Scanner {
            state: if enabled { State::Head } else { State::Pass },
            buf: Vec::new(),
        }
    }

    /// Bytes held back because a head is incomplete.
    fn pending(&mut self) -> Vec<u8> {
        if self.state == State::Head {
            std::mem::take(&mut self.buf)
        } else {
            Vec::new()
        }
    }

    /// Takes `data` read from the client and appends to `out` what may be
    /// given to the HTTP parser now (heads are held back until complete).
    pub fn feed(&mut self, mut data: &[u8], out: &mut BytesMut) {
        while !data.is_empty() {
            match self.state {
                State::Pass => {
                    out.extend_from_slice(data);
                    return;
                }
                State::Head => {
                    // What is held back is an incomplete head, so a
                    // complete one ends inside `data`.
                    let before = self.buf.len();
                    self.buf.extend_from_slice(data);
                    let head = std::mem::take(&mut self.buf);
                    match self.head(&head) {
                        Some((len, next, bad)) if len > before => {
                            if bad {
                                out.extend_from_slice(&mark(&head[..len]));
                            } else {
                                out.extend_from_slice(&head[..len]);
                            }
                            self.state = next;
                            // The rest goes round the loop again.
                            data = &data[len - before..];
                        }
                        Some(_) => {
                            self.state = State::Pass;
                            out.extend_from_slice(&head);
                            return;
                        }
                        None if self.state == State::Pass => {
                            out.extend_from_slice(&head);
                            return;
                        }
                        None => {
                            self.buf = head;
                            return;
                        }
                    }
                }
                State::Body(n) => {
                    let take = (n.min(data.len() as u64)) as usize;
                    out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.state = if n == take as u64 {
                        State::Head
                    } else {
                        State::Body(n - take as u64)
                    };
                }
                State::ChunkData(n) => {
                    let take = (n.min(data.len() as u64)) as usize;
                    out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.state = if n == take as u64 {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(n - take as u64)
                    };
                }
                State::ChunkEnd(k) => {
                    let take = (k as usize).min(data.len());
                    out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.state = if k as usize == take {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(k - take as u8)
                    };
                }
                State::ChunkSize | State::Trailers => {
                    let end = data.iter().position(|b| *b == b'\n');
                    let take = end.map_or(data.len(), |i| i + 1);
                    out.extend_from_slice(&data[..take]);
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if end.is_none() {
                        if self.buf.len() > MAX_LINE {
                            self.state = State::Pass;
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.buf);
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.state = if self.state == State::Trailers {
                        if line.is_empty() {
                            State::Head
                        } else {
                            State::Trailers
                        }
                    } else {
                        match chunk_size(line) {
                            Some(0) => State::Trailers,
                            Some(n) => State::ChunkData(n),
                            None => State::Pass,
                        }
                    };
                }
            }
        }
    }

    /// Inspects a (possibly incomplete) head: `Some((head length, next
    /// state, ambiguous))` when complete; `None` when more is needed, or
    /// with the state set to `Pass` when it cannot be followed.
    fn head(&mut self, bytes: &[u8]) -> Option<(usize, State, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => {
                let (mut cl, mut te, mut upgrade) = (None::<u64>, false, false);
                let mut cl_seen = false;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        cl_seen = true;
                        cl = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        te = true;
                    } else if h.name.eq_ignore_ascii_case("upgrade") {
                        upgrade = true;
                    }
                }
                let method = req.method.unwrap_or("");
                let next = if upgrade || method == "CONNECT" || method == "PRI" {
                    State::Pass
                } else if te {
                    State::ChunkSize
                } else if let Some(n) = cl {
                    if n == 0 {
                        State::Head
                    } else {
                        State::Body(n)
                    }
                } else if cl_seen {
                    State::Pass
                } else {
                    State::Head
                };
                Some((len, next, te && cl_seen))
            }
            Ok(httparse::Status::Partial) => {
                if bytes.len() > MAX_HEAD {
                    self.state = State::Pass;
                }
                None
            }
            Err(_) => {
                self.state = State::Pass;
                None
            }
        }
    }
}

/// The head with the marker header added after the request line.
fn mark(head: &[u8]) -> Vec<u8> {
    let at = head
        .iter()
        .position(|b| *b == b'\n')
        .map_or(head.len(), |i| i + 1);
    let mut out = Vec::with_capacity(head.len() + 32);
    out.extend_from_slice(&head[..at]);
    out.extend_from_slice(BAD_FRAMING_HEADER.as_bytes());
    out.extend_from_slice(b": 1\r\n");
    out.extend_from_slice(&head[at..]);
    out
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|b| *b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A connection whose requests are followed by a [`Scanner`].
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    out: BytesMut,
    eof: bool,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, enabled: bool) -> Guarded<S> {
        Guarded {
            inner,
            scanner: Scanner::new(enabled),
            out: BytesMut::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.scanner.state == State::Pass {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                // The client is done: whatever was held back goes to the
                // parser, which will find it incomplete.
                let rest = this.scanner.pending();
                this.out.extend_from_slice(&rest);
                this.eof = true;
                continue;
            }
            this.scanner.feed(rb.filled(), &mut this.out);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns what the parser gets.
    fn run(input: &[u8], step: usize) -> Vec<u8> {
        let mut s = Scanner::new(true);
        let mut out = BytesMut::new();
        for piece in input.chunks(step.max(1)) {
            s.feed(piece, &mut out);
        }
        out.extend_from_slice(&s.pending());
        out.to_vec()
    }

    fn marks(out: &[u8]) -> usize {
        String::from_utf8_lossy(out)
            .matches(BAD_FRAMING_HEADER)
            .count()
    }

    #[test]
    fn honest_streams_pass_unchanged_whatever_the_reads() {
        let input: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: v\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(run(input, step), input, "step {step}");
        }
    }

    #[test]
    fn a_head_with_both_lengths_is_marked_wherever_it_is() {
        // The ambiguous request comes after a chunked one, so finding it
        // needs the chunked body followed correctly.
        let input: &[u8] = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nPOST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX";
        for step in [1, 5, 4096] {
            let out = run(input, step);
            assert_eq!(marks(&out), 1, "step {step}");
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.contains("POST /s HTTP/1.1\r\nx-wharf-bad-framing: 1\r\nHost: x"),
                "{text}"
            );
        }
        // A body that merely contains such text is not a head.
        let input: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 60\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(marks(&run(input, 3)), 0);
    }

    #[test]
    fn what_cannot_be_followed_is_passed_through() {
        let upgrade: &[u8] = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x85binary frames";
        assert_eq!(run(upgrade, 3), upgrade);
        let bad_chunk: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(run(bad_chunk, 4), bad_chunk);
        let incomplete: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(run(incomplete, 4), incomplete);
    }

    proptest::proptest! {
        /// Whatever the bytes and however they are split, nothing is lost,
        /// reordered or added, except the marker.
        #[test]
        fn only_the_marker_is_ever_added(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            step in 1usize..50,
        ) {
            let out = run(&input, step);
            let marker = format!("{BAD_FRAMING_HEADER}: 1\r\n");
            let cleaned = String::from_utf8_lossy(&out).replace(&marker, "");
            proptest::prop_assert_eq!(cleaned, String::from_utf8_lossy(&input).to_string());
        }
    }
}
