//! Every metric the load balancer exports, in one place, under the
//! `wharf_lb` prefix; served on the status listener.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

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

/// The slots a per-request metric is split into. Every proxy worker thread
/// counts into a slot of its own (a cache line no other thread writes), and
/// the slots are added up when the metrics are read: one shared counter or
/// a locked histogram, written by every worker on every request, kept the
/// worker threads' caches busy handing its line back and forth.
const SLOTS: usize = 8;

/// The slot of the calling thread: threads take slots in turn as they
/// first count something.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Relaxed) % SLOTS;
    }
    SLOT.with(|s| *s)
}

/// On a cache line of its own.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Line<T>(T);

/// A counter split into per-thread slots ([`SLOTS`]).
#[derive(Debug, Clone, Default)]
pub struct SlottedCounter(Arc<[Line<AtomicU64>; SLOTS]>);

impl SlottedCounter {
    pub fn inc(&self) {
        self.0[slot()].0.fetch_add(1, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|l| l.0.load(Relaxed)).sum()
    }
}

impl TypedMetric for SlottedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for SlottedCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// How many latency buckets have an upper bound; one more (+Inf) takes
/// the rest.
const LATENCY_BOUNDS: usize = 19;

/// Upper bounds of the latency buckets: 100 µs to ~26 s in factor-of-2
/// steps.
const LATENCY_BUCKETS: [f64; LATENCY_BOUNDS] = {
    let mut bounds = [0.0; LATENCY_BOUNDS];
    let (mut i, mut bound) = (0, 0.0001);
    while i < LATENCY_BOUNDS {
        bounds[i] = bound;
        bound *= 2.0;
        i += 1;
    }
    bounds
};

/// One thread's share of a histogram.
#[derive(Debug, Default)]
struct HistogramSlot {
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
    /// Observations by bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; LATENCY_BOUNDS + 1],
}

/// The latency histogram, split into per-thread slots ([`SLOTS`]).
#[derive(Debug, Clone, Default)]
pub struct SlottedHistogram(Arc<[Line<HistogramSlot>; SLOTS]>);

impl SlottedHistogram {
    pub fn observe(&self, v: f64) {
        let slot = &self.0[slot()].0;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENCY_BOUNDS);
        slot.counts[bucket].fetch_add(1, Relaxed);
        // Only this thread writes this slot's sum, so this takes one turn
        // but for a rare thread sharing the slot.
        let _ = slot.sum.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    /// The sum, the count and the (non-cumulative) count by bucket, the
    /// last bucket's bound being `f64::MAX` (+Inf), as the encoder wants.
    fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .map(|b| (b, 0))
            .collect();
        let mut sum = 0.0;
        for slot in self.0.iter() {
            sum += f64::from_bits(slot.0.sum.load(Relaxed));
            for (bucket, count) in buckets.iter_mut().zip(&slot.0.counts) {
                bucket.1 += count.load(Relaxed);
            }
        }
        let count = buckets.iter().map(|b| b.1).sum();
        (sum, count, buckets)
    }
}

impl TypedMetric for SlottedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SlottedHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, SlottedCounter>,
    pub latency: Family<ServiceLabel, SlottedHistogram>,
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
            latency: Family::default(),
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
    latency: SlottedHistogram,
    /// Counters by status code, created on first use.
    by_status: Box<[std::sync::OnceLock<SlottedCounter>]>,
    requests: Family<RequestLabels, SlottedCounter>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

    fn encoded(
        name: &str,
        metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register(name, "help", metric);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    /// Observations from several threads add up, and read exactly as
    /// prometheus-client's own histogram and counter would show them.
    #[test]
    fn slotted_metrics_read_as_the_plain_ones() {
        let values: Vec<f64> = (0..2000)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => 0.0001,
                2 => 0.000_15 * i as f64,
                3 => 30.0 + i as f64,
                _ => 0.0032,
            })
            .collect();
        let slotted = SlottedHistogram::default();
        let counter = SlottedCounter::default();
        std::thread::scope(|s| {
            for part in values.chunks(250) {
                let (h, c) = (slotted.clone(), counter.clone());
                s.spawn(move || {
                    for v in part {
                        h.observe(*v);
                        c.inc();
                    }
                });
            }
        });
        let plain = Histogram::new(exponential_buckets(0.0001, 2.0, 19));
        let plain_counter = Counter::<u64>::default();
        for v in &values {
            plain.observe(*v);
            plain_counter.inc();
        }
        assert_eq!(counter.get(), 2000);
        assert_eq!(encoded("c", counter), encoded("c", plain_counter));
        // Sums are added in another order: compare them apart, rounded.
        let (sum, count, buckets) = slotted.get();
        let split = |text: String| -> (Vec<String>, f64) {
            let sum = text
                .lines()
                .find(|l| l.starts_with("h_sum"))
                .and_then(|l| l.split(' ').nth(1)?.parse().ok())
                .unwrap();
            (
                text.lines()
                    .filter(|l| !l.starts_with("h_sum"))
                    .map(String::from)
                    .collect(),
                sum,
            )
        };
        let (ours, our_sum) = split(encoded("h", slotted));
        let (theirs, their_sum) = split(encoded("h", plain));
        assert_eq!(ours, theirs);
        assert!(
            (our_sum - their_sum).abs() < 1e-6 * their_sum,
            "{our_sum} vs {their_sum}"
        );
        assert!((sum - our_sum).abs() < 1e-9 * our_sum);
        assert_eq!((count, buckets.len()), (2000, LATENCY_BOUNDS + 1));
    }
}
