//! The webhook's metrics, registered on a registry passed in.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters and latency of admission requests.
#[derive(Debug, Clone)]
pub struct Metrics {
    admissions: Family<AdmissionLabels, Counter>,
    duration: Histogram,
}

/// How one admission request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The pod got a patch.
    Injected,
    /// The pod was allowed unchanged (skipped, not a pod, not a create).
    Skipped,
    /// The pod was denied (invalid annotation, or undecodable under Fail).
    Denied,
    /// The AdmissionReview itself was malformed.
    Malformed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AdmissionLabels {
    outcome: Outcome,
    reason: String,
}

// Outcome

impl Outcome {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Injected => "injected",
            Self::Skipped => "skipped",
            Self::Denied => "denied",
            Self::Malformed => "malformed",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

// Metrics

impl Metrics {
    /// Registers `ferry_webhook_admissions` (counter by outcome and reason)
    /// and `ferry_webhook_admission_duration_seconds` (histogram of the time
    /// from the request's first byte to the response) on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let admissions = Family::<AdmissionLabels, Counter>::default();
        // 50 µs .. ~1.6 s.
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "ferry_webhook_admissions",
            "Admission requests by outcome and reason",
            admissions.clone(),
        );
        registry.register(
            "ferry_webhook_admission_duration_seconds",
            "Time to answer one admission request",
            duration.clone(),
        );
        Self {
            admissions,
            duration,
        }
    }

    /// A registry-less instance, for tests and benchmarks.
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Counts one admission and records its duration.
    pub fn record(&self, outcome: Outcome, reason: &str, seconds: f64) {
        self.admissions
            .get_or_create(&AdmissionLabels {
                outcome,
                reason: reason.to_owned(),
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// How many admissions ended with `outcome` and `reason` so far.
    pub fn count(&self, outcome: Outcome, reason: &str) -> u64 {
        self.admissions
            .get_or_create(&AdmissionLabels {
                outcome,
                reason: reason.to_owned(),
            })
            .get()
    }
}
