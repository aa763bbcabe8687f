//! The control plane's metrics, registered on a registry passed in.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::index::Resource;

/// Every metric of ferry-control.
#[derive(Clone, Debug)]
pub struct Metrics {
    watch_errors: Family<ResourceLabel, Counter>,
    watch_lag: Histogram,
    compile: Histogram,
    objects: Family<ResourceLabel, Gauge>,
    streams: Family<StreamLabel, Gauge>,
    status_writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    discovery_denied: Family<ReasonLabel, Counter>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamLabel {
    watch: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteLabels {
    kind: String,
    result: String,
}

// === impl Metrics ===

impl Metrics {
    /// Registers the `ferry_control_*` metrics on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            watch_errors: Family::default(),
            // 1 ms .. ~16 s.
            watch_lag: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            compile: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            objects: Family::default(),
            streams: Family::default(),
            status_writes: Family::default(),
            leader: Gauge::default(),
            discovery_denied: Family::default(),
        };
        let r = registry;
        r.register(
            "ferry_control_watch_errors",
            "Watch errors by resource",
            m.watch_errors.clone(),
        );
        r.register(
            "ferry_control_watch_lag_seconds",
            "Time from a watch event to the outputs computed with it",
            m.watch_lag.clone(),
        );
        r.register(
            "ferry_control_compile_seconds",
            "Time to compute status and subscribed views after a batch of changes",
            m.compile.clone(),
        );
        r.register(
            "ferry_control_index_objects",
            "Objects in the index by resource",
            m.objects.clone(),
        );
        r.register(
            "ferry_control_discovery_streams",
            "Open discovery streams by watch",
            m.streams.clone(),
        );
        r.register(
            "ferry_control_status_writes",
            "Status writes by kind and result",
            m.status_writes.clone(),
        );
        r.register(
            "ferry_control_leader",
            "1 while this replica holds the Lease",
            m.leader.clone(),
        );
        r.register(
            "ferry_control_discovery_denied",
            "Discovery watches refused by reason",
            m.discovery_denied.clone(),
        );
        m
    }

    /// Counts a discovery watch refused for `reason`.
    pub fn discovery_denied(&self, reason: &str) {
        self.discovery_denied
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a watch error.
    pub fn watch_error(&self, resource: Resource) {
        self.watch_errors
            .get_or_create(&ResourceLabel {
                resource: resource.to_string(),
            })
            .inc();
    }

    /// Records the lag of the oldest change of a batch, and the compile time.
    pub fn batch_applied(&self, lag: Duration, compile: Duration) {
        self.watch_lag.observe(lag.as_secs_f64());
        self.compile.observe(compile.as_secs_f64());
    }

    /// Sets the number of stored items of a resource.
    pub fn set_objects(&self, resource: Resource, count: usize) {
        self.objects
            .get_or_create(&ResourceLabel {
                resource: resource.to_string(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A stream of `watch` opened (+1) or closed (-1).
    pub fn stream(&self, watch: &str, delta: i64) {
        self.streams
            .get_or_create(&StreamLabel {
                watch: watch.to_string(),
            })
            .inc_by(delta);
    }

    /// Counts one status write.
    pub fn status_write(&self, kind: &str, ok: bool) {
        self.status_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}
