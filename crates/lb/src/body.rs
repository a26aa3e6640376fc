//! Bodies streamed through the proxy: a request body that can be taken
//! back for a retry if no byte of it was sent, and a response body that
//! reports when it ends.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The client's request body, shared between attempts.
#[derive(Clone)]
pub struct Reclaim(Arc<ReclaimState>);

struct ReclaimState {
    body: Mutex<Option<Incoming>>,
    /// An attempt has read from it: it cannot be replayed.
    started: AtomicBool,
    /// Reading from the client failed (a broken or malformed body).
    failed: AtomicBool,
}

impl Reclaim {
    pub fn new(body: Incoming) -> Reclaim {
        Reclaim(Arc::new(ReclaimState {
            body: Mutex::new(Some(body)),
            started: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }))
    }

    /// A body for one attempt.
    pub fn attempt(&self) -> ProxyBody {
        ProxyBody::new(Attempt(self.clone()))
    }

    pub fn started(&self) -> bool {
        self.0.started.load(Ordering::Acquire)
    }

    pub fn client_failed(&self) -> bool {
        self.0.failed.load(Ordering::Acquire)
    }
}

struct Attempt(Reclaim);

impl Body for Attempt {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let state = &self.0 .0;
        state.started.store(true, Ordering::Release);
        let mut guard = state.body.lock().unwrap_or_else(|p| p.into_inner());
        let Some(body) = guard.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                state.failed.store(true, Ordering::Release);
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        let guard = self.0 .0.body.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let guard = self.0 .0.body.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|b| b.size_hint()).unwrap_or_default()
    }
}

/// A response body that counts its bytes and calls `done` once when it
/// ends (`done(bytes, true)`) or fails or is dropped (`false`: the client
/// went away or the member broke off).
pub struct Tracked<B: Body, F: FnOnce(u64, bool)> {
    inner: B,
    bytes: u64,
    done: Option<F>,
}

impl<B: Body, F: FnOnce(u64, bool)> Tracked<B, F> {
    pub fn new(inner: B, done: F) -> Tracked<B, F> {
        Tracked {
            inner,
            bytes: 0,
            done: Some(done),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(done) = self.done.take() {
            done(self.bytes, complete);
        }
    }
}

impl<B: Body, F: FnOnce(u64, bool)> Drop for Tracked<B, F> {
    fn drop(&mut self) {
        // hyper stops polling once the body says it has ended, so a body
        // dropped at its end was read completely.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl<B, F> Body for Tracked<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    F: FnOnce(u64, bool) + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
