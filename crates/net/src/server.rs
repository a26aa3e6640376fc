//! The accept loop: plain or TLS, HTTP/1.1 and HTTP/2, graceful shutdown.

use crate::framing::Guarded;
use crate::prefixed::Prefixed;
use crate::shutdown::ShutdownSignal;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// `None` serves plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub tls: Option<TlsAcceptor>,
    /// How long in-flight requests may run on once shutdown is triggered.
    pub grace: Duration,
    /// A name for logs (`http`, `https`, `status`).
    pub name: &'static str,
    /// Close an HTTP/1 connection that sends no request for this long
    /// (the seed's `http.socket.timeout`); `None` keeps idle connections.
    pub idle_timeout: Option<Duration>,
    /// Follow HTTP/1 requests and mark ambiguous ones (see
    /// [`crate::framing`]); for proxies.
    pub strict_framing: bool,
}

impl ServeOptions {
    pub fn new(name: &'static str, tls: Option<TlsAcceptor>, grace: Duration) -> ServeOptions {
        ServeOptions {
            tls,
            grace,
            name,
            idle_timeout: None,
            strict_framing: false,
        }
    }
}

/// Limit on the TLS handshake, so a silent client cannot hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves connections from `connections` (a listener, or connections
/// handed over) with `handler` until `shutdown` fires, then stops
/// accepting and waits up to `grace` for open connections to finish their
/// requests. Returns the number of connections that were still open when
/// the grace period ran out.
pub async fn serve<H, F, B>(
    connections: impl Into<Connections>,
    opts: ServeOptions,
    handler: H,
    shutdown: ShutdownSignal,
) -> usize
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    serve_inner(
        connections.into(),
        opts,
        handler,
        None::<NoTakeover>,
        shutdown,
    )
    .await
}

/// Where a server's connections come from: its own listener, or connections
/// another task accepted and handed over (so that one acceptor can spread
/// them evenly over several event loops).
pub enum Connections {
    Listener(TcpListener),
    Handed(tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>),
}

impl From<TcpListener> for Connections {
    fn from(l: TcpListener) -> Connections {
        Connections::Listener(l)
    }
}

impl Connections {
    /// The next connection; `None` when handed connections have ended.
    async fn next(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Connections::Listener(l) => Some(l.accept().await),
            Connections::Handed(rx) => {
                let (stream, peer) = rx.recv().await?;
                Some(TcpStream::from_std(stream).map(|s| (s, peer)))
            }
        }
    }
}

/// What a plain-HTTP connection's own handler gives back: `None` when it
/// served the connection to its end, or the connection (with what it read
/// and did not use put back in front) for hyper to serve from there on.
pub type Handback = Option<Prefixed<TcpStream>>;

type NoTakeover = fn(TcpStream, SocketAddr) -> std::future::Ready<Handback>;

/// Like [`serve`], but each plain-HTTP connection is first given to
/// `takeover`, which may serve requests itself (a proxy's fast path) and
/// hands the connection back, at a request boundary, for hyper to serve
/// what it will not. `takeover` must stop at a request boundary once
/// `shutdown` fires; its connections count in the grace period like any.
pub async fn serve_with_takeover<H, F, B, T, TF>(
    connections: impl Into<Connections>,
    opts: ServeOptions,
    handler: H,
    takeover: T,
    shutdown: ShutdownSignal,
) -> usize
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    T: Fn(TcpStream, SocketAddr) -> TF + Clone + Send + Sync + 'static,
    TF: Future<Output = Handback> + Send + 'static,
{
    serve_inner(connections.into(), opts, handler, Some(takeover), shutdown).await
}

async fn serve_inner<H, F, B, T, TF>(
    mut connections: Connections,
    opts: ServeOptions,
    handler: H,
    takeover: Option<T>,
    mut shutdown: ShutdownSignal,
) -> usize
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    T: Fn(TcpStream, SocketAddr) -> TF + Clone + Send + Sync + 'static,
    TF: Future<Output = Handback> + Send + 'static,
{
    // Connections served by `takeover` (hyper's are counted by `graceful`).
    let taken = Arc::new(Taken::default());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(idle) = opts.idle_timeout {
        // hyper's header read timer also runs while a kept-alive
        // connection waits for its next request.
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(idle);
    }
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = connections.next() => match accepted {
                None => break,
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin.
                    tracing::warn!(listener = opts.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        // Responses are often small and latency matters more than packing.
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let handler = handler.clone();
        let tls = opts.tls.clone();
        let name = opts.name;
        let strict = opts.strict_framing;
        let takeover = takeover.clone();
        let taken = taken.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let fut = handler(req, peer);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let result = match (tls, takeover) {
                (None, takeover) => {
                    // Plain connections: the takeover's first, if any; what it
                    // hands back (with the bytes it read) goes on to hyper.
                    let stream = match takeover {
                        Some(takeover) => {
                            let handback = {
                                let _counted = taken.enter();
                                takeover(stream, peer).await
                            };
                            let Some(stream) = handback else {
                                return;
                            };
                            stream
                        }
                        None => Prefixed::new(Bytes::new(), stream),
                    };
                    watcher
                        .watch(
                            builder
                                .serve_connection_with_upgrades(
                                    TokioIo::new(Guarded::new(stream, strict)),
                                    service,
                                )
                                .into_owned(),
                        )
                        .await
                }
                (Some(acceptor), _) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            // HTTP/2 has no such ambiguity to follow.
                            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                            let tls = Guarded::new(tls, strict && !h2);
                            watcher
                                .watch(
                                    builder
                                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                                        .into_owned(),
                                )
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, %peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(listener = name, %peer, "tls handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(connections);
    let hyper_open = graceful.count();
    let finished = async {
        tokio::join!(graceful.shutdown(), taken.all_done());
    };
    tokio::select! {
        _ = finished => 0,
        _ = tokio::time::sleep(opts.grace) => {
            let open = hyper_open + taken.count();
            tracing::warn!(listener = opts.name, open, "grace period over; closing connections still open");
            open
        }
    }
}

/// Connections served by a takeover handler, counted for the grace period.
#[derive(Default)]
struct Taken {
    open: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

struct Entered<'a>(&'a Taken);

impl Taken {
    fn enter(&self) -> Entered<'_> {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Entered(self)
    }

    fn count(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn all_done(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if self
            .0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}
