//! The members behind each (domain, sub-domain), and how one is picked.
//!
//! The pools are rebuilt whenever the cluster view or the routes change and
//! swapped whole; a member keeps its [`Backend`] (and so its counters and
//! ejection) across rebuilds as long as it stays in the cluster.

use crate::routes::PoolKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_cluster::{Member, MemberState, Role};
use wharf_config::lbconf::Algorithm;

/// One member the load balancer sends requests to.
#[derive(Debug)]
pub struct Backend {
    /// The cluster node id (`worker@10.0.0.2:4100`), or `static:host:port`.
    pub id: String,
    /// `host:port` of its plain HTTP listener.
    pub addr: String,
    /// A short stable token for the affinity cookie.
    pub token: String,
    draining: AtomicBool,
    inflight: AtomicUsize,
    /// Milliseconds since `epoch` until which it gets no new requests.
    ejected_until: AtomicU64,
    consecutive_failures: AtomicU32,
    /// The active health check's last answer (true until one says otherwise).
    healthy: AtomicBool,
    /// `host:port` of its status listener, for the active check.
    pub status_addr: Option<String>,
    /// Its HTTPS listener and a client configuration that trusts exactly
    /// the certificate it published: requests that came in over HTTPS go
    /// there, encrypted again.
    pub https: Option<(String, Arc<rustls::ClientConfig>)>,
    epoch: Instant,
}

impl Backend {
    pub fn new(id: &str, addr: &str, status_addr: Option<String>, epoch: Instant) -> Backend {
        Backend {
            id: id.to_string(),
            addr: addr.to_string(),
            token: token(id),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            ejected_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            status_addr,
            https: None,
            epoch,
        }
    }

    /// Adds the member's HTTPS listener, pinned to `tls_sha256`.
    pub fn with_https(mut self, addr: &str, tls_sha256: &str) -> Backend {
        let config = wharf_net::tls::pinned_client_config(tls_sha256, &[b"http/1.1"]);
        self.https = Some((addr.to_string(), Arc::new(config)));
        self
    }

    /// Where a request goes: the HTTPS listener for one that came over
    /// HTTPS (when the member has one), else the plain one.
    pub fn target(&self, over_https: bool) -> crate::upstream::Target<'_> {
        match (&self.https, over_https) {
            (Some((addr, config)), true) => crate::upstream::Target {
                addr,
                tls: Some(config),
            },
            _ => crate::upstream::Target {
                addr: &self.addr,
                tls: None,
            },
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, d: bool) {
        self.draining.store(d, Ordering::Relaxed);
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > self.ms(now)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records the active check's answer; `true` if it changed.
    pub fn set_healthy(&self, ok: bool) -> bool {
        self.healthy.swap(ok, Ordering::Relaxed) != ok
    }

    /// Takes the member out of rotation for `base` doubled per consecutive
    /// failure, at most `max`. Returns the ejection time.
    pub fn eject(&self, now: Instant, base: Duration, max: Duration) -> Duration {
        let n = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .min(16);
        let period = base.saturating_mul(1 << n).min(max);
        self.ejected_until
            .store(self.ms(now) + period.as_millis() as u64, Ordering::Relaxed);
        period
    }

    /// A response came back: the member works.
    pub fn succeeded(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.ejected_until.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// May get a new request now.
    pub fn eligible(&self, now: Instant) -> bool {
        !self.is_draining() && !self.is_ejected(now) && self.is_healthy()
    }
}

/// A request in flight on a backend.
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stable, short, non-revealing token for a member id (FNV-1a).
fn token(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The members of one (domain, sub-domain).
#[derive(Debug, Default)]
pub struct Pool {
    pub backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(backends: Vec<Arc<Backend>>) -> Pool {
        Pool {
            backends,
            next: AtomicUsize::new(0),
        }
    }

    /// Members that may take new requests now.
    pub fn live(&self, now: Instant) -> usize {
        self.backends.iter().filter(|b| b.eligible(now)).count()
    }

    /// Picks a member for a new request: the affinity member if it is
    /// eligible, else by `algorithm` among eligible members not in `tried`.
    /// When every untried member is ejected or failing its health check,
    /// one of those is tried rather than failing the request at once;
    /// draining members are never picked.
    pub fn pick(
        &self,
        algorithm: Algorithm,
        affinity: Option<&str>,
        tried: &[Arc<Backend>],
        now: Instant,
    ) -> Option<Arc<Backend>> {
        let untried = |b: &&Arc<Backend>| !tried.iter().any(|t| Arc::ptr_eq(t, b));
        if let Some(tok) = affinity {
            if let Some(b) = self
                .backends
                .iter()
                .filter(untried)
                .find(|b| b.token == tok && b.eligible(now))
            {
                return Some(b.clone());
            }
        }
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let order = (0..n).map(|i| &self.backends[(start + i) % n]);
        let choose = |ok: &dyn Fn(&Backend) -> bool| -> Option<Arc<Backend>> {
            let candidates = order.clone().filter(untried).filter(|b| ok(b));
            match algorithm {
                Algorithm::RoundRobin => candidates.take(1).next().cloned(),
                // Ties go to the round-robin order, so equal members share.
                Algorithm::LeastConnections => candidates.min_by_key(|b| b.inflight()).cloned(),
            }
        };
        choose(&|b| b.eligible(now)).or_else(|| choose(&|b| !b.is_draining()))
    }
}

/// Every pool, by key.
/// (Fx-hashed: rebuilt as members come and go, looked up on every request.)
pub type Pools = HashMap<PoolKey, Arc<Pool>, rustc_hash::FxBuildHasher>;

/// Builds the pools from the cluster view and the static members, reusing
/// the backends of `known` (by id) so counters and ejections carry over.
pub fn build(
    wanted: &[(PoolKey, Vec<String>)],
    members: &[Member],
    known: &mut BTreeMap<String, Arc<Backend>>,
    epoch: Instant,
) -> Pools {
    let mut keep: BTreeMap<String, Arc<Backend>> = BTreeMap::new();
    let mut get = |id: &str,
                   addr: &str,
                   status: Option<&String>,
                   https: Option<(&String, &String)>|
     -> Arc<Backend> {
        let same_https = |b: &Backend| b.https.as_ref().map(|(a, _)| a) == https.map(|(a, _)| a);
        let b = match known.get(id) {
            Some(b) if b.addr == addr && same_https(b) => b.clone(),
            _ => {
                let b = Backend::new(id, addr, status.cloned(), epoch);
                Arc::new(match https {
                    Some((a, pin)) => b.with_https(a, pin),
                    None => b,
                })
            }
        };
        keep.insert(id.to_string(), b.clone());
        b
    };
    let mut pools = Pools::default();
    for (key, statics) in wanted {
        let mut backends = vec![];
        for m in members {
            let i = &m.info;
            if i.role == Role::Lb || i.domain != key.domain || i.sub_domain != key.sub_domain {
                continue;
            }
            let Some(addr) = &i.http_addr else { continue };
            let draining = match i.state {
                MemberState::Ready => false,
                MemberState::Draining => true,
                MemberState::Starting | MemberState::Left => continue,
            };
            let https = i.https_addr.as_ref().zip(i.tls_sha256.as_ref());
            let b = get(&m.node_id, addr, i.status_addr.as_ref(), https);
            b.set_draining(draining);
            backends.push(b);
        }
        for s in statics {
            backends.push(get(&format!("static:{s}"), s, None, None));
        }
        pools.insert(key.clone(), Arc::new(Pool::new(backends)));
    }
    *known = keep;
    pools
}

/// Shared across the proxy's tasks.
pub type SharedKnown = Mutex<BTreeMap<String, Arc<Backend>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(n: usize) -> (Pool, Instant) {
        let epoch = Instant::now();
        let backends = (0..n)
            .map(|i| {
                Arc::new(Backend::new(
                    &format!("w{i}"),
                    &format!("10.0.0.{i}:80"),
                    None,
                    epoch,
                ))
            })
            .collect();
        (Pool::new(backends), epoch)
    }

    #[test]
    fn round_robin_visits_each_in_turn() {
        let (p, now) = pool(3);
        let ids: Vec<String> = (0..6)
            .map(|_| {
                p.pick(Algorithm::RoundRobin, None, &[], now)
                    .unwrap()
                    .id
                    .clone()
            })
            .collect();
        assert_eq!(ids, ["w0", "w1", "w2", "w0", "w1", "w2"]);
    }

    #[test]
    fn draining_and_ejected_members_get_nothing_new() {
        let (p, now) = pool(3);
        p.backends[0].set_draining(true);
        p.backends[1].eject(now, Duration::from_secs(5), Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(
                p.pick(Algorithm::RoundRobin, None, &[], now).unwrap().id,
                "w2"
            );
        }
        assert_eq!(p.live(now), 1);
        // After the ejection ends, w1 is back.
        let later = now + Duration::from_secs(6);
        let ids: Vec<String> = (0..4)
            .map(|_| {
                p.pick(Algorithm::RoundRobin, None, &[], later)
                    .unwrap()
                    .id
                    .clone()
            })
            .collect();
        assert!(ids.contains(&"w1".to_string()) && !ids.contains(&"w0".to_string()));
    }

    #[test]
    fn ejection_backs_off_and_resets_on_success() {
        let (p, now) = pool(1);
        let b = &p.backends[0];
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(350);
        assert_eq!(b.eject(now, base, max), base);
        assert_eq!(b.eject(now, base, max), base * 2);
        assert_eq!(b.eject(now, base, max), max);
        b.succeeded();
        assert!(!b.is_ejected(now));
        assert_eq!(b.eject(now, base, max), base);
    }

    #[test]
    fn when_all_are_ejected_one_is_still_tried_but_never_a_draining_one() {
        let (p, now) = pool(2);
        for b in &p.backends {
            b.eject(now, Duration::from_secs(5), Duration::from_secs(60));
        }
        assert!(p.pick(Algorithm::RoundRobin, None, &[], now).is_some());
        for b in &p.backends {
            b.set_draining(true);
        }
        assert!(p.pick(Algorithm::RoundRobin, None, &[], now).is_none());
    }

    #[test]
    fn affinity_sticks_until_the_member_cannot_serve() {
        let (p, now) = pool(3);
        let tok = p.backends[2].token.clone();
        for _ in 0..5 {
            assert_eq!(
                p.pick(Algorithm::RoundRobin, Some(&tok), &[], now)
                    .unwrap()
                    .id,
                "w2"
            );
        }
        p.backends[2].set_draining(true);
        assert_ne!(
            p.pick(Algorithm::RoundRobin, Some(&tok), &[], now)
                .unwrap()
                .id,
            "w2"
        );
        assert_ne!(
            p.pick(Algorithm::RoundRobin, Some("nonsense"), &[], now)
                .unwrap()
                .id,
            "w2"
        );
    }

    proptest! {
        /// Least connections always picks a member with the fewest in flight.
        #[test]
        fn least_connections_picks_a_minimum(load in proptest::collection::vec(0usize..20, 1..8)) {
            let (p, now) = pool(load.len());
            let mut guards = vec![];
            for (b, n) in p.backends.iter().zip(&load) {
                for _ in 0..*n { guards.push(b.start()); }
            }
            let min = *load.iter().min().unwrap();
            let picked = p.pick(Algorithm::LeastConnections, None, &[], now).unwrap();
            prop_assert_eq!(picked.inflight(), min);
        }

        /// A pick never returns a member already tried, nor a draining one,
        /// and returns something whenever an untried, non-draining member exists.
        #[test]
        fn picks_respect_tried_and_draining(
            draining in proptest::collection::vec(proptest::bool::ANY, 1..8),
            tried_mask in proptest::collection::vec(proptest::bool::ANY, 8),
            lc in proptest::bool::ANY,
        ) {
            let (p, now) = pool(draining.len());
            for (b, d) in p.backends.iter().zip(&draining) { b.set_draining(*d); }
            let tried: Vec<Arc<Backend>> = p.backends.iter().zip(&tried_mask).filter(|(_, t)| **t).map(|(b, _)| b.clone()).collect();
            let alg = if lc { Algorithm::LeastConnections } else { Algorithm::RoundRobin };
            let got = p.pick(alg, None, &tried, now);
            let possible = p.backends.iter().any(|b| !b.is_draining() && !tried.iter().any(|t| Arc::ptr_eq(t, b)));
            prop_assert_eq!(got.is_some(), possible);
            if let Some(b) = got {
                prop_assert!(!b.is_draining());
                prop_assert!(!tried.iter().any(|t| Arc::ptr_eq(t, &b)));
            }
        }

        /// Round robin over n eligible members gives each one the same share.
        #[test]
        fn round_robin_is_fair(n in 1usize..8, rounds in 1usize..20) {
            let (p, now) = pool(n);
            let mut counts = vec![0usize; n];
            for _ in 0..n * rounds {
                let b = p.pick(Algorithm::RoundRobin, None, &[], now).unwrap();
                counts[p.backends.iter().position(|x| Arc::ptr_eq(x, &b)).unwrap()] += 1;
            }
            prop_assert!(counts.iter().all(|c| *c == rounds));
        }
    }
}
