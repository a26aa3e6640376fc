//! Metrics of the WebAssembly host. Names are registered under the prefix
//! of the registry the node passes in (`wharf_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuestErrorLabels {
    pub app: String,
    /// `trap`, `timeout`, `out_of_memory`, `no_response`, `instantiate`.
    pub kind: String,
}

#[derive(Clone, Default)]
pub struct Metrics {
    pub instances: Family<AppLabel, Gauge>,
    pub guest_errors: Family<GuestErrorLabels, Counter>,
    pub busy_rejections: Family<AppLabel, Counter>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "instances_in_use",
            "Component instances running now",
            m.instances.clone(),
        );
        registry.register(
            "guest_errors",
            "Requests an application failed, by kind",
            m.guest_errors.clone(),
        );
        registry.register(
            "busy_rejections",
            "Requests refused with 503 because no instance became free in time",
            m.busy_rejections.clone(),
        );
        m
    }

    pub(crate) fn guest_error(&self, app: &str, kind: &str) {
        self.guest_errors
            .get_or_create(&GuestErrorLabels {
                app: app.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }
}
