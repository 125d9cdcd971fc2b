//! Prometheus metrics. One registry per [`crate::App`], so tests do not share counters.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<LatencyLabels, Histogram>,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub key_verifications: Family<ResultLabels, Counter>,
    pub key_cache_hits: Counter,
    pub key_cache_misses: Counter,
    key_cache_hit_ratio: Gauge<f64, AtomicU64>,
    pub audit_events_dropped: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        let request_duration = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            request_duration.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register("auth_failures", "Failed authentications by reason", auth_failures.clone());
        let key_verifications = Family::<ResultLabels, Counter>::default();
        registry.register("key_verifications", "API key verifications by result", key_verifications.clone());
        let key_cache_hits = Counter::default();
        registry.register(
            "key_cache_hits",
            "Key verifications answered from the cache",
            key_cache_hits.clone(),
        );
        let key_cache_misses = Counter::default();
        registry.register(
            "key_cache_misses",
            "Key verifications that read the database",
            key_cache_misses.clone(),
        );
        let key_cache_hit_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "key_cache_hit_ratio",
            "Share of key verifications answered from the cache since start",
            key_cache_hit_ratio.clone(),
        );
        let audit_events_dropped = Counter::default();
        registry.register(
            "audit_failure_events_dropped",
            "Failed-authentication audit events dropped because the writer was saturated",
            audit_events_dropped.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            auth_failures,
            key_verifications,
            key_cache_hits,
            key_cache_misses,
            key_cache_hit_ratio,
            audit_events_dropped,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let hits = self.key_cache_hits.get() as f64;
        let total = hits + self.key_cache_misses.get() as f64;
        self.key_cache_hit_ratio.set(if total > 0.0 { hits / total } else { 0.0 });
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
