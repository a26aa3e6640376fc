//! Requests per second and the share of 5xx answers over the last minute,
//! per application, for the console. Workers publish cumulative counters
//! (requests and 5xx answers since they loaded each application) in gossip
//! every 2 s; the manager samples their sum every [`PERIOD`] and keeps a
//! minute of samples, so a rate is the difference between the newest and
//! the oldest over the time between them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_proto::TenantId;

/// How far back a rate looks.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// How often the manager samples the counters.
pub(crate) const PERIOD: Duration = Duration::from_secs(5);

/// An application of a tenant.
pub(crate) type AppKey = (TenantId, String);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    requests: u64,
    errors: u64,
}

/// What an application did over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub per_second: f64,
    /// 5xx answers over all answers; none without answers.
    pub error_share: Option<f64>,
}

/// The samples of every application the workers report.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: Mutex<BTreeMap<AppKey, VecDeque<Sample>>>,
}

impl Rates {
    /// Records the counters (requests, 5xx answers) of every application
    /// as seen at `at`; applications no longer reported are forgotten.
    pub(crate) fn record(&self, at: Instant, counts: &BTreeMap<AppKey, (u64, u64)>) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        for (key, &(requests, errors)) in counts {
            let q = samples.entry(key.clone()).or_default();
            // The counters only grow; a smaller one means a worker started
            // over or left, and the old samples no longer compare.
            if q.back()
                .is_some_and(|s| requests < s.requests || errors < s.errors)
            {
                q.clear();
            }
            q.push_back(Sample {
                at,
                requests,
                errors,
            });
            while q
                .front()
                .is_some_and(|s| at.saturating_duration_since(s.at) > WINDOW)
            {
                q.pop_front();
            }
        }
        let reported: BTreeSet<&AppKey> = counts.keys().collect();
        samples.retain(|k, _| reported.contains(k));
    }

    /// The rate of an application over the samples kept; none until two
    /// samples are a moment apart.
    pub(crate) fn rate(&self, tenant: TenantId, context: &str) -> Option<Rate> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let q = samples.get(&(tenant, context.to_string()))?;
        let (first, last) = (q.front()?, q.back()?);
        let seconds = last.at.saturating_duration_since(first.at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let requests = last.requests - first.requests;
        let errors = last.errors - first.errors;
        Some(Rate {
            per_second: requests as f64 / seconds,
            error_share: (requests > 0).then(|| errors as f64 / requests as f64),
        })
    }
}

/// The counters (requests, 5xx answers) of every application: summed
/// over the workers that report them in the cluster, or this node's own
/// when it is not in one.
pub(crate) fn counts(node: &crate::Node) -> BTreeMap<AppKey, (u64, u64)> {
    let mut out: BTreeMap<AppKey, (u64, u64)> = BTreeMap::new();
    match node.cluster.get() {
        Some(c) => {
            for m in c.members().iter() {
                if m.info.role != wharf_cluster::Role::Worker {
                    continue;
                }
                for (tenant, apps) in &m.info.stats {
                    for (context, (r, e)) in apps {
                        let slot = out.entry((*tenant, context.clone())).or_default();
                        slot.0 += r;
                        slot.1 += e;
                    }
                }
            }
        }
        None => {
            for (tenant, apps) in node.app_counts() {
                for (context, c) in apps {
                    out.insert((tenant, context), c);
                }
            }
        }
    }
    out
}

/// Samples the counters every [`PERIOD`] into `node.rates` until shutdown.
pub(crate) async fn sample(node: Arc<crate::Node>, mut shutdown: wharf_net::ShutdownSignal) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        node.rates.record(Instant::now(), &counts(&node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(entries: &[(TenantId, &str, u64, u64)]) -> BTreeMap<AppKey, (u64, u64)> {
        entries
            .iter()
            .map(|(t, c, r, e)| ((*t, c.to_string()), (*r, *e)))
            .collect()
    }

    #[test]
    fn rates_are_over_the_last_minute() {
        let rates = Rates::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        rates.record(at(0), &counts(&[(0, "/a", 100, 0), (7, "/a", 5, 5)]));
        assert_eq!(rates.rate(0, "/a"), None, "one sample is no rate");
        rates.record(at(10), &counts(&[(0, "/a", 300, 20), (7, "/a", 5, 5)]));
        assert_eq!(
            rates.rate(0, "/a"),
            Some(Rate {
                per_second: 20.0,
                error_share: Some(0.1)
            })
        );
        // The same context of another tenant is another application; no
        // answers in the window: no share.
        assert_eq!(
            rates.rate(7, "/a"),
            Some(Rate {
                per_second: 0.0,
                error_share: None
            })
        );
        // Samples older than the window drop out: from t=70 only t=10
        // onwards count.
        rates.record(at(70), &counts(&[(0, "/a", 360, 20)]));
        assert_eq!(rates.rate(0, "/a").unwrap().per_second, 1.0);
        // Tenant 7's application is no longer reported: forgotten.
        assert_eq!(rates.rate(7, "/a"), None);
        // A worker started over: the counters fell, the rate starts again.
        rates.record(at(75), &counts(&[(0, "/a", 10, 0)]));
        assert_eq!(rates.rate(0, "/a"), None);
        rates.record(at(80), &counts(&[(0, "/a", 60, 5)]));
        assert_eq!(
            rates.rate(0, "/a"),
            Some(Rate {
                per_second: 10.0,
                error_share: Some(0.1)
            })
        );
    }
}
