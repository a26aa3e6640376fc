//! Every metric the load balancer exports, in one place, under the
//! `wharf_lb` prefix; served on the status listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The service, or `-` when no service matched the host.
    pub service: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub domain: String,
    pub sub_domain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub domain: String,
    pub sub_domain: String,
    /// `connect`, `reset`, `timeout` or `body`.
    pub kind: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s in factor-of-2 steps.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub retries: Family<PoolLabels, Counter>,
    pub ejections: Family<PoolLabels, Counter>,
    pub live_members: Family<PoolLabels, Gauge>,
    pub reloads: Family<ReloadLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// `ok` or `refused`.
    pub result: String,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            upstream_errors: Family::default(),
            retries: Family::default(),
            ejections: Family::default(),
            live_members: Family::default(),
            reloads: Family::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by service and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response headers, by service",
            m.latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed attempts to get a response from a member, by domain, sub-domain and kind",
            m.upstream_errors.clone(),
        );
        registry.register(
            "retries",
            "Requests tried again on another member",
            m.retries.clone(),
        );
        registry.register(
            "ejections",
            "Members taken out of rotation after a failure",
            m.ejections.clone(),
        );
        registry.register(
            "live_members",
            "Members that may take new requests, by domain and sub-domain",
            m.live_members.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP), by result",
            m.reloads.clone(),
        );
        m
    }
}

pub fn pool_labels(key: &crate::routes::PoolKey) -> PoolLabels {
    PoolLabels {
        domain: key.domain.clone(),
        sub_domain: key.sub_domain.clone().unwrap_or_default(),
    }
}

/// One service's request metrics, looked up once and then used without
/// locking the families (the request path runs this on every request).
pub struct ServiceMetrics {
    service: String,
    latency: Histogram,
    /// Counters by status code, created on first use.
    by_status: Box<[std::sync::OnceLock<Counter>]>,
    requests: Family<RequestLabels, Counter>,
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ServiceMetrics {
    pub fn new(m: &Metrics, service: &str) -> ServiceMetrics {
        ServiceMetrics {
            service: service.to_string(),
            latency: m
                .latency
                .get_or_create(&ServiceLabel {
                    service: service.to_string(),
                })
                .clone(),
            by_status: (0..600).map(|_| std::sync::OnceLock::new()).collect(),
            requests: m.requests.clone(),
        }
    }

    /// Counts one answer with `status`.
    pub fn answered(&self, status: u16) {
        let counter = |status: u16| {
            self.requests
                .get_or_create(&RequestLabels {
                    service: self.service.clone(),
                    status,
                })
                .clone()
        };
        match self.by_status.get(status as usize) {
            Some(slot) => slot.get_or_init(|| counter(status)).inc(),
            None => counter(status).inc(),
        };
    }

    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }
}
