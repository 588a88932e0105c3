//! The worker's Prometheus metrics. The names are a contract with `monitoring/` (alert rules
//! and `tests/monitoring/check_metric_contract.py`): both job outcomes exist at 0 from the
//! start, so the first failure after a restart shows as an increase. Labels are bounded:
//! `outcome` has two values, `method` four; never a participant or job id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use wearhouse_core::ImputationStrategy;
use wearhouse_core::telemetry::MetricsRegistry;

use crate::jobs::method_name;

/// Job duration buckets in seconds: a short steps fill to a week of heart rate with AIC.
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

/// How a job ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    Failed,
}

/// The metrics of one worker process.
#[derive(Clone)]
pub struct ImputeMetrics {
    registry: MetricsRegistry,
    jobs: Family<OutcomeLabel, Counter>,
    duration: Histogram,
    queue_depth: Gauge,
    points_filled: Family<MethodLabel, Counter>,
}

impl Default for ImputeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ImputeMetrics {
    /// Registers the worker's metrics in a new registry.
    pub fn new() -> Self {
        let registry = MetricsRegistry::new();
        let jobs = Family::<OutcomeLabel, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let queue_depth = Gauge::default();
        let points_filled = Family::<MethodLabel, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "wearhouse_impute_jobs",
            "Imputation jobs finished, by outcome (succeeded, failed)",
            jobs.clone(),
        );
        registry.register(
            "wearhouse_impute_job_duration_seconds",
            "Time from taking an imputation job to finishing it, in seconds",
            duration.clone(),
        );
        registry.register(
            "wearhouse_impute_queue_depth",
            "Imputation jobs not finished (queued or running) in the database",
            queue_depth.clone(),
        );
        registry.register(
            "wearhouse_impute_points_filled",
            "Grid points given an imputed value, by method",
            points_filled.clone(),
        );
        for outcome in ["succeeded", "failed"] {
            let _ = jobs.get_or_create(&OutcomeLabel { outcome });
        }
        for s in [
            ImputationStrategy::Arima,
            ImputationStrategy::ForwardBackFill,
            ImputationStrategy::Linear,
        ] {
            let _ = points_filled.get_or_create(&MethodLabel {
                method: method_name(s).to_owned(),
            });
        }
        ImputeMetrics {
            registry,
            jobs,
            duration,
            queue_depth,
            points_filled,
        }
    }

    /// The registry to serve on `/metrics`.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Counts a finished job and its duration.
    pub fn job_finished(&self, outcome: JobOutcome, seconds: f64) {
        let outcome = match outcome {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
        };
        self.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
        self.duration.observe(seconds);
    }

    /// Counts failures of jobs no worker holds any more (abandoned after their last attempt).
    pub fn jobs_abandoned(&self, n: u64) {
        self.jobs
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc_by(n);
    }

    /// Counts filled points.
    pub fn points_filled(&self, method: &str, n: u64) {
        self.points_filled
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
            })
            .inc_by(n);
    }

    /// Sets the queue depth.
    pub fn set_queue_depth(&self, n: i64) {
        self.queue_depth.set(n);
    }
}
