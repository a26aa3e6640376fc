//! Connections to members: HTTP/1.1 keep-alive, pooled per worker thread,
//! over plain TCP or, for requests that came in over HTTPS, TLS to the
//! member's HTTPS listener with its certificate pinned from gossip.
//!
//! Each proxy worker thread runs its own event loop, so its pool needs no
//! lock and a request never waits on another thread. A connection goes
//! back to the pool when its response body has been read to the end (the
//! proxy's response body tells it), so no task is spawned per request to
//! watch for that.

use crate::body::ProxyBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a request to a member failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: nothing was sent.
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    /// The request was (maybe partly) sent, and no response came.
    #[error("{0}")]
    Failed(hyper::Error),
}

/// Settings of the pool, from `[lb]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub max_idle_per_member: usize,
    /// Pooled connections idle longer than this are closed, not reused.
    pub idle_timeout: Duration,
}

/// Where one request goes: a member's listener, plain or TLS.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub addr: &'a str,
    /// For TLS: the member's pinned client configuration.
    pub tls: Option<&'a std::sync::Arc<rustls::ClientConfig>>,
}

impl Target<'_> {
    /// The pool key: plain and TLS connections to one member never mix.
    fn key(&self) -> String {
        match self.tls {
            Some(_) => format!("tls:{}", self.addr),
            None => self.addr.to_string(),
        }
    }
}

#[derive(Default)]
struct ThreadPool {
    idle: HashMap<String, Vec<(SendRequest<ProxyBody>, Instant)>>,
}

thread_local! {
    static POOL: RefCell<ThreadPool> = RefCell::new(ThreadPool::default());
}

fn checkout(addr: &str, idle_timeout: Duration) -> Option<SendRequest<ProxyBody>> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let list = p.idle.get_mut(addr)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < idle_timeout {
                return Some(sender);
            }
        }
        None
    })
}

/// A connection lent to one request.
pub struct Lease {
    addr: String,
    sender: Option<SendRequest<ProxyBody>>,
    max_idle: usize,
}

impl Lease {
    /// The response was read to its end: the connection may serve another
    /// request of this thread.
    pub fn release(mut self) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let list = p.idle.entry(std::mem::take(&mut self.addr)).or_default();
            if list.len() < self.max_idle {
                list.push((sender, Instant::now()));
            }
        });
    }
}

async fn connect(
    target: Target<'_>,
    s: &PoolSettings,
) -> Result<SendRequest<ProxyBody>, SendError> {
    let addr = target.addr;
    let err = |message: String| SendError::Connect {
        addr: addr.to_string(),
        message,
    };
    let stream =
        match tokio::time::timeout(s.connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(err(e.to_string())),
            Err(_) => {
                return Err(err(format!(
                    "no connection within {} ms",
                    s.connect_timeout.as_millis()
                )))
            }
        };
    let _ = stream.set_nodelay(true);
    match target.tls {
        None => handshake(stream).await.map_err(|e| err(e.to_string())),
        Some(config) => {
            let host = addr
                .rsplit_once(':')
                .map_or(addr, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| err(format!("{host:?} is not a TLS server name: {e}")))?;
            let tls = tokio::time::timeout(
                s.connect_timeout,
                tokio_rustls::TlsConnector::from(config.clone()).connect(name, stream),
            )
            .await
            .map_err(|_| err("no TLS handshake within the connect timeout".into()))?
            .map_err(|e| err(format!("TLS: {e}")))?;
            handshake(tls).await.map_err(|e| err(e.to_string()))
        }
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<ProxyBody>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "member connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends `req` to `target` on a pooled connection, or a new one. A pooled
/// connection that turns out to be closed before the request went out is
/// replaced transparently.
pub async fn send(
    target: Target<'_>,
    mut req: Request<ProxyBody>,
    s: &PoolSettings,
) -> Result<(Response<Incoming>, Lease), SendError> {
    let key = target.key();
    let addr = target.addr;
    loop {
        let (mut sender, pooled) = match checkout(&key, s.idle_timeout) {
            Some(sender) => (sender, true),
            None => (connect(target, s).await?, false),
        };
        if sender.ready().await.is_err() {
            if pooled {
                continue;
            }
            return Err(SendError::Connect {
                addr: addr.to_string(),
                message: "the connection closed at once".into(),
            });
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                return Ok((
                    resp,
                    Lease {
                        addr: key,
                        sender: Some(sender),
                        max_idle: s.max_idle_per_member,
                    },
                ))
            }
            Err(mut e) => match e.take_message() {
                // Not sent: a kept-alive connection the member had closed.
                Some(back) if pooled => req = back,
                _ => return Err(SendError::Failed(e.into_error())),
            },
        }
    }
}
