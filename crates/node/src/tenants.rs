//! The tenants a node serves: who they are (from the manager: its tenant
//! store on a manager, its gossip on a worker) and what this node keeps
//! per tenant to hold it to its limits — an instance budget, a request
//! rate, a memory cap and its configuration values.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;
use wharf_proto::{TenantId, TenantSettings};

/// A token bucket: `rate` requests per second, bursts of up to `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `rate` 0 means no limit.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            state: Mutex::new((f64::from(rate), Instant::now())),
        }
    }

    /// Takes one token; false when the tenant is over its rate.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let refilled =
            (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if refilled >= 1.0 {
            *s = (refilled - 1.0, now);
            true
        } else {
            *s = (refilled, now);
            false
        }
    }
}

/// One tenant as this node serves it.
#[derive(Debug)]
pub struct Tenant {
    pub domain: String,
    pub settings: TenantSettings,
    pub rate: RateLimiter,
    /// Memory cap, instance budget and environment for its requests.
    pub scope: wharf_runtime::Scope,
}

impl Tenant {
    fn new(domain: &str, settings: TenantSettings) -> Tenant {
        let l = settings.limits;
        Tenant {
            domain: domain.to_string(),
            rate: RateLimiter::new(l.requests_per_second),
            scope: wharf_runtime::Scope {
                memory_limit: Some(l.memory_limit_mb * 1024 * 1024),
                permits: Some(Arc::new(Semaphore::new(l.max_instances as usize))),
                env: Some(Arc::new(settings.env.clone())),
            },
            settings,
        }
    }

    pub fn id(&self) -> TenantId {
        self.settings.id
    }

    /// The URL prefix of its applications: `/t/<domain>`.
    pub fn prefix(&self) -> String {
        format!("/t/{}", self.domain)
    }
}

/// Every tenant this node knows, by domain and by id.
#[derive(Debug, Default)]
pub struct Directory {
    by_domain: HashMap<String, Arc<Tenant>>,
    by_id: HashMap<TenantId, Arc<Tenant>>,
}

impl Directory {
    /// A directory of `tenants`; a tenant whose settings did not change
    /// keeps its state (its instances in use, its rate) from `old`.
    pub fn build(tenants: &BTreeMap<String, TenantSettings>, old: &Directory) -> Directory {
        let mut d = Directory::default();
        for (domain, settings) in tenants {
            let t = match old.by_domain.get(domain) {
                Some(t) if t.settings == *settings => t.clone(),
                _ => Arc::new(Tenant::new(domain, settings.clone())),
            };
            d.by_id.insert(settings.id, t.clone());
            d.by_domain.insert(domain.clone(), t);
        }
        d
    }

    pub fn by_domain(&self, domain: &str) -> Option<&Arc<Tenant>> {
        self.by_domain.get(domain)
    }

    pub fn by_id(&self, id: TenantId) -> Option<&Arc<Tenant>> {
        self.by_id.get(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.by_id.keys().copied()
    }

    /// The settings, as published.
    pub fn settings(&self) -> BTreeMap<String, TenantSettings> {
        self.by_domain
            .iter()
            .map(|(d, t)| (d.clone(), t.settings.clone()))
            .collect()
    }

    pub fn same_as(&self, tenants: &BTreeMap<String, TenantSettings>) -> bool {
        self.by_domain.len() == tenants.len()
            && tenants
                .iter()
                .all(|(d, s)| self.by_domain.get(d).is_some_and(|t| t.settings == *s))
    }
}

/// The tenant domain of a `/t/<domain>/…` path and the rest of the path.
pub fn split_tenant_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/t/")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (domain, rest) = rest.split_at(end);
    (!domain.is_empty()).then_some((domain, rest))
}

impl crate::Node {
    /// The limits a tenant has unless it sets its own (`[tenants]`).
    pub(crate) fn default_tenant_limits(&self) -> wharf_proto::TenantLimits {
        let d = &self.config.tenants.defaults;
        wharf_proto::TenantLimits {
            max_apps: d.max_apps,
            memory_limit_mb: d.memory_limit_mb,
            max_instances: d.max_instances,
            requests_per_second: d.requests_per_second,
        }
    }

    /// What a manager publishes of its active tenants.
    pub(crate) fn tenant_settings_from_store(&self) -> BTreeMap<String, TenantSettings> {
        let defaults = self.default_tenant_limits();
        self.tenant_store
            .as_ref()
            .map(|s| s.list())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.active)
            .map(|t| {
                (
                    t.domain.clone(),
                    TenantSettings {
                        id: t.id,
                        limits: t.limits.over(defaults),
                        env: t.env,
                    },
                )
            })
            .collect()
    }

    /// Sets the tenants served: on a manager from its store, on a worker
    /// from what it last learned (its local copy).
    pub(crate) fn load_tenants(&self) {
        let settings = if self.tenant_store.is_some() {
            self.tenant_settings_from_store()
        } else {
            let dir = self
                .config
                .server
                .data_dir
                .join("deployment")
                .join("checkout");
            wharf_deploy::LocalStore::open(&dir)
                .ok()
                .and_then(|l| l.directory().ok())
                .unwrap_or_default()
        };
        self.set_tenants(&settings);
    }

    /// Replaces the tenant directory (keeping the state of unchanged tenants).
    pub(crate) fn set_tenants(&self, settings: &BTreeMap<String, TenantSettings>) {
        let old = self.tenants.load();
        if old.same_as(settings) {
            return;
        }
        let next = Directory::build(settings, &old);
        tracing::info!(tenants = %settings.keys().cloned().collect::<Vec<_>>().join(","), "tenants");
        self.tenants.store(Arc::new(next));
    }

    /// A manager: publishes its active tenants (`tenant:<domain>`) and
    /// withdraws the ones that are no longer.
    pub(crate) async fn publish_tenants(&self) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        if self.tenant_store.is_none() {
            return;
        }
        let now = self.tenants.load().settings();
        let gone: Vec<String> = {
            let mut published = self
                .published_tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let gone = published
                .iter()
                .filter(|d| !now.contains_key(*d))
                .cloned()
                .collect();
            *published = now.keys().cloned().collect();
            gone
        };
        for (domain, s) in &now {
            let value = serde_json::to_string(s).expect("tenant settings serialize");
            cluster
                .set(
                    &format!("{}{domain}", wharf_proto::gossip::TENANT_PREFIX),
                    &value,
                )
                .await;
        }
        for domain in gone {
            cluster
                .set(
                    &format!("{}{domain}", wharf_proto::gossip::TENANT_PREFIX),
                    "",
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wharf_proto::TenantLimits;

    fn settings(id: TenantId, rps: u32) -> TenantSettings {
        TenantSettings {
            id,
            limits: TenantLimits {
                max_apps: 5,
                memory_limit_mb: 16,
                max_instances: 2,
                requests_per_second: rps,
            },
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let r = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(r.try_acquire_at(t0));
        }
        assert!(!r.try_acquire_at(t0), "the burst is spent");
        assert!(
            r.try_acquire_at(t0 + Duration::from_millis(100)),
            "one more after 100 ms"
        );
        assert!(!r.try_acquire_at(t0 + Duration::from_millis(100)));
        assert!(RateLimiter::new(0).try_acquire(), "0 is no limit");
    }

    #[test]
    fn unchanged_tenants_keep_their_state() {
        let a = BTreeMap::from([
            ("a.com".to_string(), settings(1, 10)),
            ("b.com".into(), settings(2, 10)),
        ]);
        let d1 = Directory::build(&a, &Directory::default());
        let mut b = a.clone();
        b.insert("b.com".into(), settings(2, 99));
        let d2 = Directory::build(&b, &d1);
        assert!(Arc::ptr_eq(
            d1.by_domain("a.com").unwrap(),
            d2.by_domain("a.com").unwrap()
        ));
        assert!(!Arc::ptr_eq(
            d1.by_domain("b.com").unwrap(),
            d2.by_domain("b.com").unwrap()
        ));
        assert_eq!(d2.by_id(2).unwrap().domain, "b.com");
        assert!(d2.same_as(&b) && !d2.same_as(&a));
    }

    #[test]
    fn tenant_paths() {
        assert_eq!(split_tenant_path("/t/a.com/x/y"), Some(("a.com", "/x/y")));
        assert_eq!(split_tenant_path("/t/a.com"), Some(("a.com", "")));
        assert_eq!(split_tenant_path("/t/"), None);
        assert_eq!(split_tenant_path("/x"), None);
    }
}
