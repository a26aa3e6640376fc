//! Chitchat over UDP, every packet sealed with the cluster secret.

use crate::seal::{Refused, Sealer};
use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// At most one warning per this period for dropped packets; the rest are counted.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Opens UDP sockets whose traffic is sealed with `secret` (or plain when
/// `secret` is `None`, which the configuration only allows with
/// `insecure = true`).
#[derive(Clone)]
pub struct SealedUdpTransport {
    secret: Option<Arc<[u8]>>,
    prebound: Arc<std::sync::Mutex<Option<std::net::UdpSocket>>>,
}

impl SealedUdpTransport {
    pub fn new(secret: Option<&[u8]>) -> SealedUdpTransport {
        SealedUdpTransport {
            secret: secret.map(Arc::from),
            prebound: Default::default(),
        }
    }

    /// Uses `socket`, already bound (e.g. to port 0), for the next `open`
    /// instead of binding the listen address.
    pub fn with_socket(secret: Option<&[u8]>, socket: std::net::UdpSocket) -> SealedUdpTransport {
        let t = SealedUdpTransport::new(secret);
        *t.prebound.lock().expect("not poisoned") = Some(socket);
        t
    }
}

#[async_trait]
impl Transport for SealedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let prebound = self.prebound.lock().expect("not poisoned").take();
        let socket = match prebound {
            Some(s) => {
                s.set_nonblocking(true)
                    .context("configuring the cluster socket")?;
                tokio::net::UdpSocket::from_std(s).context("registering the cluster socket")?
            }
            None => tokio::net::UdpSocket::bind(listen_addr)
                .await
                .with_context(|| format!("cannot bind the cluster port {listen_addr}/udp"))?,
        };
        Ok(Box::new(SealedSocket {
            socket,
            sealer: self.secret.as_deref().map(Sealer::new),
            buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            dropped: Dropped::default(),
        }))
    }
}

#[derive(Default)]
struct Dropped {
    since_warning: u64,
    last_warning: Option<Instant>,
}

impl Dropped {
    /// Logs a dropped packet, at most once per [`WARN_EVERY`].
    fn record(&mut self, from: SocketAddr, why: &dyn std::fmt::Display) {
        self.since_warning += 1;
        if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(%from, reason = %why, dropped = self.since_warning, "dropped cluster packets");
            self.since_warning = 0;
            self.last_warning = Some(Instant::now());
        }
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    sealer: Option<Sealer>,
    buf: Box<[u8]>,
    dropped: Dropped,
}

#[async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let plain = msg.serialize_to_vec();
        let packet = match &self.sealer {
            Some(s) => s.seal(&plain),
            None => plain,
        };
        if packet.len() > MAX_DATAGRAM {
            tracing::warn!(%to, bytes = packet.len(), "cluster message too large for one datagram; not sent");
            return Ok(());
        }
        // A failed send to one peer (e.g. it is down) is not a broken transport.
        if let Err(e) = self.socket.send_to(&packet, to).await {
            tracing::debug!(%to, error = %e, "cannot send a cluster packet");
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(v) => v,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e).context("receiving cluster packets"),
            };
            let opened = match &mut self.sealer {
                Some(s) => s.open(&self.buf[..len]),
                None => Ok(self.buf[..len].to_vec()),
            };
            let plain = match opened {
                Ok(p) => p,
                Err(why) => {
                    self.dropped.record(from, &why);
                    continue;
                }
            };
            match ChitchatMessage::deserialize(&mut plain.as_slice()) {
                Ok(msg) => return Ok((from, msg)),
                Err(e) => self
                    .dropped
                    .record(from, &format!("{}: {e}", Refused::Malformed)),
            }
        }
    }
}
