//! Authenticated encryption of cluster packets, keyed by the cluster secret.
//!
//! A sealed packet is `version (1) ‖ sent-at ms (8, big endian) ‖ nonce (24)
//! ‖ XChaCha20-Poly1305(payload)`, with the first 9 bytes as associated
//! data. The key is HKDF-SHA256 of the secret. Random 24-byte nonces make
//! nonce reuse negligible without coordination between members. A packet
//! is refused if it does not authenticate, if it was sent more than
//! [`MAX_SKEW`] from our clock, or if its nonce was already seen in that
//! window (a replay).

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8;
const NONCE: usize = 24;
/// Bytes a sealed packet adds to its payload.
pub const OVERHEAD: usize = HEADER + NONCE + 16;
/// How far a packet's timestamp may be from our clock.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too short or unknown format")]
    Malformed,
    #[error("does not authenticate (wrong secret or tampered)")]
    Unauthentic,
    #[error("sent outside the accepted time window")]
    Stale,
    #[error("already received (replayed)")]
    Replayed,
}

/// The bearer token members present to each other's HTTPS endpoints (the
/// builtin repository's check-out): derived from the cluster secret with
/// its own HKDF label, so it reveals nothing of the gossip key.
pub fn member_token(secret: &[u8]) -> String {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"wharf cluster v1"), secret);
    let mut token = [0u8; 32];
    hk.expand(b"member https token", &mut token)
        .expect("32 bytes is a valid HKDF length");
    token.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals and opens packets for one member.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    seen: HashMap<[u8; NONCE], u64>,
    order: VecDeque<([u8; NONCE], u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Sealer {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"wharf cluster v1"), secret);
        let mut key = [0u8; 32];
        hk.expand(b"gossip packet key", &mut key)
            .expect("32 bytes is a valid HKDF length");
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        self.seal_at(payload, now_ms())
    }

    fn seal_at(&self, payload: &[u8], at_ms: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&at_ms.to_be_bytes());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        out.extend_from_slice(&nonce);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: payload,
                    aad: &out[..HEADER],
                },
            )
            .expect("encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&mut self, packet: &[u8]) -> Result<Vec<u8>, Refused> {
        self.open_at(packet, now_ms())
    }

    fn open_at(&mut self, packet: &[u8], now: u64) -> Result<Vec<u8>, Refused> {
        if packet.len() < OVERHEAD || packet[0] != VERSION {
            return Err(Refused::Malformed);
        }
        let sent = u64::from_be_bytes(packet[1..HEADER].try_into().expect("8 bytes"));
        let nonce: [u8; NONCE] = packet[HEADER..HEADER + NONCE].try_into().expect("24 bytes");
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &packet[HEADER + NONCE..],
                    aad: &packet[..HEADER],
                },
            )
            .map_err(|_| Refused::Unauthentic)?;
        // Checked after authentication, so a forged timestamp cannot evict
        // real entries from the replay window.
        let skew = MAX_SKEW.as_millis() as u64;
        if sent + skew < now || sent > now + skew {
            return Err(Refused::Stale);
        }
        while let Some((n, at)) = self.order.front().copied() {
            if at + 2 * skew >= now {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&n);
        }
        if self.seen.insert(nonce, sent).is_some() {
            return Err(Refused::Replayed);
        }
        self.order.push_back((nonce, now));
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_tokens_depend_on_the_secret_only() {
        let a = member_token(b"0123456789abcdef0123456789abcdef");
        assert_eq!(a, member_token(b"0123456789abcdef0123456789abcdef"));
        assert_ne!(a, member_token(b"0123456789abcdef0123456789abcdeF"));
        assert_eq!(a.len(), 64);
    }

    const SECRET: &[u8] = b"a shared secret of decent length";

    #[test]
    fn round_trip() {
        let a = Sealer::new(SECRET);
        let mut b = Sealer::new(SECRET);
        let packet = a.seal(b"hello cluster");
        assert_eq!(packet.len(), 13 + OVERHEAD);
        assert_eq!(b.open(&packet).unwrap(), b"hello cluster");
        assert!(
            !packet.windows(5).any(|w| w == b"hello"),
            "the payload is encrypted"
        );
    }

    #[test]
    fn wrong_secret_tampering_replay_and_staleness_are_refused() {
        let a = Sealer::new(SECRET);
        let mut b = Sealer::new(SECRET);
        let mut stranger = Sealer::new(b"another secret, also long enough");
        let packet = a.seal(b"payload");
        assert_eq!(stranger.open(&packet), Err(Refused::Unauthentic));
        for i in [0, 1, 9, 40, packet.len() - 1] {
            let mut bad = packet.clone();
            bad[i] ^= 1;
            assert!(b.open(&bad).is_err(), "a flipped byte at {i} was accepted");
        }
        assert!(b.open(&packet).is_ok());
        assert_eq!(b.open(&packet), Err(Refused::Replayed));
        let now = now_ms();
        let old = a.seal_at(b"payload", now - 60_000);
        assert_eq!(b.open_at(&old, now), Err(Refused::Stale));
        let future = a.seal_at(b"payload", now + 60_000);
        assert_eq!(b.open_at(&future, now), Err(Refused::Stale));
        assert_eq!(b.open(&packet[..10]), Err(Refused::Malformed));
    }

    #[test]
    fn the_replay_window_forgets_old_nonces() {
        let a = Sealer::new(SECRET);
        let mut b = Sealer::new(SECRET);
        let now = now_ms();
        for i in 0..100 {
            b.open_at(&a.seal_at(b"x", now + i), now + i).unwrap();
        }
        assert_eq!(b.seen.len(), 100);
        b.open_at(&a.seal_at(b"x", now + 70_000), now + 70_000)
            .unwrap();
        assert_eq!(b.seen.len(), 1, "entries older than the window are pruned");
    }
}
