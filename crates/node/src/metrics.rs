//! Every metric the node exports, in one place. Registered under the
//! `wharf` prefix together with the runtime's; served on the status listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The tenant label of the super tenant's requests.
pub const SUPER_TENANT_LABEL: &str = "super";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The tenant domain, `super` for the super tenant, `-` when unknown.
    pub tenant: String,
    /// The application name, or `-` when no application matched.
    pub app: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    pub tenant: String,
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    pub app: String,
    /// `deployed`, `failed` or `undeployed`.
    pub result: String,
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
    pub latency: Family<AppLabel, Histogram, fn() -> Histogram>,
    pub deploys: Family<DeployLabels, Counter>,
    pub apps: Gauge,
    /// Requests refused because the tenant was over its request rate.
    pub rate_limited: Family<TenantLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            deploys: Family::default(),
            apps: Gauge::default(),
            rate_limited: Family::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests served, by tenant, application and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response headers, by tenant and application",
            m.latency.clone(),
        );
        registry.register(
            "deploys",
            "Deployment events, by application and result",
            m.deploys.clone(),
        );
        registry.register("apps_deployed", "Applications deployed now", m.apps.clone());
        registry.register(
            "tenant_rate_limited",
            "Requests refused with 429 because their tenant was over its request rate",
            m.rate_limited.clone(),
        );
        m
    }

    pub(crate) fn deploy(&self, app: &str, result: &str) {
        self.deploys
            .get_or_create(&DeployLabels {
                app: app.to_string(),
                result: result.to_string(),
            })
            .inc();
    }
}

impl Metrics {
    /// Counts one request and its time to the response headers.
    pub(crate) fn request(&self, tenant: &str, app: &str, status: u16, took: std::time::Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.to_string(),
                app: app.to_string(),
                status,
            })
            .inc();
        if app != "-" {
            self.latency
                .get_or_create(&AppLabel {
                    tenant: tenant.to_string(),
                    app: app.to_string(),
                })
                .observe(took.as_secs_f64());
        }
    }
}
