//! The route table: a request's Host (and `/t/<tenant>/` prefix) to the
//! cluster domain and sub-domain that serves it.

use rustc_hash::FxBuildHasher;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use wharf_config::lbconf::{Affinity, Algorithm, DomainEntry, Services, TenantRange};

/// Tenant ids by tenant domain: the load balancer learns them from the
/// managers' gossip ([`crate::ClusterTenants`]). A `/t/<tenant>/` request
/// for a tenant it does not know gets 404.
pub trait TenantDirectory: Send + Sync {
    fn tenant_id(&self, tenant_domain: &str) -> Option<u32>;
}

/// The directory that knows no tenant.
pub struct NoTenants;

impl TenantDirectory for NoTenants {
    fn tenant_id(&self, _: &str) -> Option<u32> {
        None
    }
}

/// A (domain, sub-domain) pair: the members that may serve a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub domain: String,
    pub sub_domain: Option<String>,
}

impl std::fmt::Display for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "domain {} sub-domain {}",
            self.domain,
            self.sub_domain.as_deref().unwrap_or("(none)")
        )
    }
}

/// What one service is, for the requests routed to it.
#[derive(Debug)]
pub struct ServiceRoute {
    pub name: String,
    pub affinity: Affinity,
    pub algorithm: Algorithm,
    /// Its metrics handles, looked up on first use.
    pub metrics: std::sync::OnceLock<Arc<crate::metrics::ServiceMetrics>>,
}

/// One domain entry as the routes use it.
#[derive(Debug, Clone)]
pub struct Target {
    pub pool: PoolKey,
    pub tenant_range: TenantRange,
    /// Static members (`host:port`) of this entry.
    pub members: Vec<String>,
}

/// Everything routed for one host name.
#[derive(Debug)]
pub struct HostRoute {
    pub service: Arc<ServiceRoute>,
    /// In file order.
    pub targets: Vec<Target>,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// (Fx-hashed: a fixed table, looked up on every request.)
    hosts: HashMap<String, Arc<HostRoute>, FxBuildHasher>,
    /// A service with `hosts *;` takes every host not named elsewhere.
    any_host: Option<Arc<HostRoute>>,
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    UnknownHost(String),
    /// A `/t/<tenant>/` request for a tenant no manager publishes.
    UnknownTenant(String),
    /// A tenant outside every range of the host's service.
    TenantOutOfRange(String),
}

/// Where a request goes.
#[derive(Debug)]
pub struct Routed<'a> {
    pub route: &'a Arc<HostRoute>,
    pub target: &'a Target,
    /// The tenant domain of a `/t/<tenant>/` request.
    pub tenant: Option<&'a str>,
}

impl RouteTable {
    /// Builds the table; `default_algorithm` applies to services that name none.
    pub fn new(services: &Services, default_algorithm: Algorithm) -> RouteTable {
        let mut table = RouteTable::default();
        for s in &services.services {
            let service = Arc::new(ServiceRoute {
                name: s.name.clone(),
                affinity: s.affinity,
                algorithm: s.algorithm.unwrap_or(default_algorithm),
                metrics: Default::default(),
            });
            // Hosts in first-seen order, each with the entries naming it.
            let mut by_host: Vec<(String, Vec<Target>)> = vec![];
            for e in &s.entries {
                for h in &e.hosts {
                    let target = target(e);
                    match by_host.iter_mut().find(|(n, _)| n == h) {
                        Some((_, ts)) => ts.push(target),
                        None => by_host.push((h.clone(), vec![target])),
                    }
                }
            }
            for (host, targets) in by_host {
                let route = Arc::new(HostRoute {
                    service: service.clone(),
                    targets,
                });
                if host == "*" {
                    table.any_host = Some(route);
                } else {
                    table.hosts.insert(host, route);
                }
            }
        }
        table
    }

    /// Every pool some route may send to, with the static members of each.
    pub fn pools(&self) -> Vec<(PoolKey, Vec<String>)> {
        let mut out: Vec<(PoolKey, Vec<String>)> = vec![];
        for r in self.hosts.values().chain(self.any_host.iter()) {
            for t in &r.targets {
                match out.iter_mut().find(|(k, _)| *k == t.pool) {
                    Some((_, members)) => {
                        for m in &t.members {
                            if !members.contains(m) {
                                members.push(m.clone());
                            }
                        }
                    }
                    None => out.push((t.pool.clone(), t.members.clone())),
                }
            }
        }
        out.sort();
        out
    }

    /// Routes a request by its Host and path.
    pub fn route<'a>(
        &'a self,
        host: &str,
        path: &'a str,
        tenants: &dyn TenantDirectory,
    ) -> Result<Routed<'a>, NoRoute> {
        let name = normalize_host(host);
        let route = self
            .hosts
            .get(name.as_ref())
            .or(self.any_host.as_ref())
            .ok_or_else(|| NoRoute::UnknownHost(name.into_owned()))?;
        let tenant = tenant_of(path);
        let fallback = || {
            route
                .targets
                .iter()
                .find(|t| t.tenant_range == TenantRange::All)
        };
        let target = match tenant {
            Some(t) => {
                let id = tenants
                    .tenant_id(t)
                    .ok_or_else(|| NoRoute::UnknownTenant(t.to_string()))?;
                route
                    .targets
                    .iter()
                    .find(|x| x.tenant_range != TenantRange::All && x.tenant_range.contains(id))
                    .or_else(fallback)
                    .ok_or_else(|| NoRoute::TenantOutOfRange(t.to_string()))?
            }
            // The super tenant: the `*` entry, else the first.
            None => fallback().unwrap_or(&route.targets[0]),
        };
        Ok(Routed {
            route,
            target,
            tenant,
        })
    }
}

fn target(e: &DomainEntry) -> Target {
    Target {
        pool: PoolKey {
            domain: e.domain.clone(),
            sub_domain: e.sub_domain.clone(),
        },
        tenant_range: e.tenant_range,
        members: e.members.clone(),
    }
}

/// The host name of a Host header: port removed, lowercase, no trailing dot.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The tenant domain of a `/t/<tenant>/…` path.
pub fn tenant_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/t/")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let t = &rest[..end];
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(text: &str) -> RouteTable {
        let (s, _) = Services::parse(text, "t.conf").unwrap();
        RouteTable::new(&s, Algorithm::RoundRobin)
    }

    const SEED: &str = "services { appserver { domains {
        wso2.as.domain { hosts mgt.as.cloud-test.wso2.com; sub_domain mgt; tenant_range *; }
        wso2.as.domain { hosts as.cloud-test.wso2.com; sub_domain worker; tenant_range *; }
    } } }";

    struct Ids(Vec<(&'static str, u32)>);
    impl TenantDirectory for Ids {
        fn tenant_id(&self, d: &str) -> Option<u32> {
            self.0.iter().find(|(n, _)| *n == d).map(|(_, id)| *id)
        }
    }

    #[test]
    fn seed_hosts_go_to_their_sub_domains() {
        let t = table(SEED);
        let r = t
            .route("MGT.as.cloud-test.wso2.com:8243", "/console", &NoTenants)
            .unwrap();
        assert_eq!(r.target.pool.sub_domain.as_deref(), Some("mgt"));
        let r = t
            .route("as.cloud-test.wso2.com.", "/app", &NoTenants)
            .unwrap();
        assert_eq!(r.target.pool.sub_domain.as_deref(), Some("worker"));
        assert_eq!(r.route.service.name, "appserver");
        assert_eq!(
            t.route("other.example.com", "/", &NoTenants).unwrap_err(),
            NoRoute::UnknownHost("other.example.com".into())
        );
        assert_eq!(t.pools().len(), 2);
    }

    #[test]
    fn tenants_pick_their_range() {
        let t = table(
            "s { hosts as.example; domains {
                d1 { tenant_range 1-100; }
                d2 { tenant_range 101-200; }
                dall { tenant_range *; }
            } }",
        );
        let ids = Ids(vec![("a.com", 5), ("b.com", 150), ("c.com", 999)]);
        let pool = |path: &str| {
            t.route("as.example", path, &ids)
                .unwrap()
                .target
                .pool
                .domain
                .clone()
        };
        assert_eq!(pool("/t/a.com/x"), "d1");
        assert_eq!(pool("/t/b.com"), "d2");
        assert_eq!(pool("/t/c.com/x"), "dall");
        assert_eq!(
            t.route("as.example", "/t/unknown.com/x", &ids).unwrap_err(),
            NoRoute::UnknownTenant("unknown.com".into())
        );
        assert_eq!(pool("/plain"), "dall");
        assert_eq!(
            t.route("as.example", "/t/a.com/x", &ids).unwrap().tenant,
            Some("a.com")
        );
    }

    #[test]
    fn without_a_star_range_an_outside_tenant_has_no_route() {
        let t = table("s { hosts as.example; domains { d1 { tenant_range 1-10; } } }");
        let ids = Ids(vec![("far.com", 50)]);
        assert_eq!(
            t.route("as.example", "/t/far.com/", &ids).unwrap_err(),
            NoRoute::TenantOutOfRange("far.com".into())
        );
        // The super tenant still reaches the first entry.
        assert_eq!(
            t.route("as.example", "/", &ids).unwrap().target.pool.domain,
            "d1"
        );
    }

    #[test]
    fn a_star_host_catches_the_rest() {
        let t = table("s { hosts *; domains { d { sub_domain worker; } } } m { hosts mgt.example; domains { d { sub_domain mgt; } } }");
        assert_eq!(
            t.route("anything.example", "/", &NoTenants)
                .unwrap()
                .target
                .pool
                .sub_domain
                .as_deref(),
            Some("worker")
        );
        assert_eq!(
            t.route("mgt.example", "/", &NoTenants)
                .unwrap()
                .target
                .pool
                .sub_domain
                .as_deref(),
            Some("mgt")
        );
    }

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("Example.COM:8280"), "example.com");
        assert_eq!(normalize_host("[::1]:8280"), "::1");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(tenant_of("/t/a.com/x"), Some("a.com"));
        assert_eq!(tenant_of("/t/a.com?q"), Some("a.com"));
        assert_eq!(tenant_of("/t/"), None);
        assert_eq!(tenant_of("/tx/a.com"), None);
    }

    proptest! {
        /// A tenant id is routed to the one range that holds it, or to `*`
        /// when none does, whatever the ranges.
        #[test]
        fn the_range_holding_an_id_wins(
            bounds in proptest::collection::btree_set(0u32..10_000, 2..12),
            id in 0u32..10_000,
        ) {
            // Disjoint ranges from sorted bounds: [b0,b1-1], [b2,b3-1], ...
            let b: Vec<u32> = bounds.into_iter().collect();
            let mut text = String::from("s { hosts h.example; domains {\n");
            let mut ranges = vec![];
            for (i, pair) in b.chunks(2).enumerate() {
                if let [lo, hi] = pair {
                    let hi = hi - 1;
                    if hi < *lo { continue; }
                    text.push_str(&format!("d{i} {{ tenant_range {lo}-{hi}; }}\n"));
                    ranges.push((format!("d{i}"), *lo, hi));
                }
            }
            text.push_str("dall { tenant_range *; } } }");
            let t = table(&text);
            let ids = Ids(vec![("x.com", id)]);
            let got = t.route("H.example:1", "/t/x.com/app", &ids).unwrap().target.pool.domain.clone();
            let want = ranges.iter().find(|(_, lo, hi)| *lo <= id && id <= *hi).map_or("dall".to_string(), |(d, _, _)| d.clone());
            prop_assert_eq!(got, want);
        }

        #[test]
        fn host_case_and_port_never_matter(port in 1u16.., upper in proptest::bool::ANY) {
            let t = table(SEED);
            let h = if upper { "AS.CLOUD-TEST.WSO2.COM" } else { "as.cloud-test.wso2.com" };
            let r = t.route(&format!("{h}:{port}"), "/", &NoTenants).unwrap();
            prop_assert_eq!(r.target.pool.sub_domain.as_deref(), Some("worker"));
        }
    }
}
