//! The ingest service's Prometheus metrics, registered in one place. Their names are a contract
//! with the alert rules in `monitoring/rules/ingest.yml` (see `monitoring/README.md`).
//! Sources count their API requests and quota waits through the [`SourceMetrics`] handle they
//! are built with; the pipeline counts runs and samples.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use wearhouse_core::Metric;
use wearhouse_core::telemetry::MetricsRegistry;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SampleLabels {
    source: &'static str,
    metric: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    source: &'static str,
    metric: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ParticipantOutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DaysLabels {
    days: String,
}

/// What became of participants in a run, as the `outcome` label of the per-run metrics.
pub const PARTICIPANT_OUTCOMES: &[&str] = &[
    "loaded",
    "never_synced",
    "failed",
    "deferred_quota",
    "locked",
    "needs_reconsent",
    "no_longer_active",
];

/// Why a metric was skipped for a participant, as the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The participant did not grant the scope the metric needs.
    ScopeNotGranted,
    /// The provider or the account does not serve the metric's endpoint.
    NotOffered,
}

impl SkipReason {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::ScopeNotGranted => "scope_not_granted",
            SkipReason::NotOffered => "not_offered",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    source: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevocationLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// The handle sources use to count what they do against their provider's API.
#[derive(Debug, Clone, Default)]
pub struct SourceMetrics {
    api_requests: Family<ApiLabels, Counter>,
    quota_waits: Family<SourceLabels, Counter>,
}

impl SourceMetrics {
    /// Counts one API request by its outcome: the numeric HTTP status (`"200"`, `"429"`), or a
    /// short word for requests that got no status (`"timeout"`, `"network"`).
    pub fn api_request(&self, source: &'static str, status: impl ToString) {
        self.api_requests
            .get_or_create(&ApiLabels {
                source,
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts one wait for (or stop on) the provider's request quota.
    pub fn quota_wait(&self, source: &'static str) {
        self.quota_waits
            .get_or_create(&SourceLabels { source })
            .inc();
    }
}

/// Every ingest metric. Cheap to clone: the families share their state.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    runs: Family<OutcomeLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    run_duration: Histogram,
    samples: Family<SampleLabels, Counter>,
    needing_reconsent: Gauge,
    run_in_progress: Gauge,
    revocations: Family<RevocationLabels, Counter>,
    revocations_pending: Gauge,
    skipped: Family<SkipLabels, Counter>,
    run_participants: Family<ParticipantOutcomeLabels, Gauge>,
    participant_outcomes: Family<ParticipantOutcomeLabels, Counter>,
    reconsent_overdue: Family<DaysLabels, Gauge>,
    /// Given to sources.
    pub source: SourceMetrics,
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry`. Both run outcomes are exported at
    /// 0 from the start, so the first failure is an increase the alert rule can see.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = IngestMetrics {
            runs: Family::default(),
            last_success: Gauge::default(),
            run_duration: Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
            ]),
            samples: Family::default(),
            needing_reconsent: Gauge::default(),
            run_in_progress: Gauge::default(),
            revocations: Family::default(),
            revocations_pending: Gauge::default(),
            skipped: Family::default(),
            run_participants: Family::default(),
            participant_outcomes: Family::default(),
            reconsent_overdue: Family::default(),
            source: SourceMetrics::default(),
        };
        for &outcome in PARTICIPANT_OUTCOMES {
            let labels = ParticipantOutcomeLabels { outcome };
            let _ = m.run_participants.get_or_create(&labels);
            let _ = m.participant_outcomes.get_or_create(&labels);
        }
        for outcome in [Outcome::Success, Outcome::Failure] {
            let _ = m.runs.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        // prometheus-client appends `_total` to counters.
        registry.register(
            "wearhouse_ingest_runs",
            "Delta-load runs by outcome",
            m.runs.clone(),
        );
        registry.register(
            "wearhouse_ingest_last_success_timestamp_seconds",
            "Unix time of the last successful run (0: none ever succeeded)",
            m.last_success.clone(),
        );
        registry.register(
            "wearhouse_ingest_run_duration_seconds",
            "Duration of delta-load runs",
            m.run_duration.clone(),
        );
        registry.register(
            "wearhouse_ingest_samples",
            "Samples written to the warehouse, by source and metric",
            m.samples.clone(),
        );
        registry.register(
            "wearhouse_ingest_api_requests",
            "Requests to provider APIs, by source and HTTP status",
            m.source.api_requests.clone(),
        );
        registry.register(
            "wearhouse_ingest_quota_waits",
            "Times a participant's provider request quota was spent",
            m.source.quota_waits.clone(),
        );
        registry.register(
            "wearhouse_ingest_participants_needing_reconsent",
            "Participants whose grant was revoked or is invalid (from the database)",
            m.needing_reconsent.clone(),
        );
        registry.register(
            "wearhouse_ingest_run_in_progress",
            "1 while a delta-load run is in progress",
            m.run_in_progress.clone(),
        );
        registry.register(
            "wearhouse_ingest_grant_revocations",
            "Grants of withdrawn participants revoked at the provider (revoked) or not reached \
             (failed, retried at the next sweep), by provider",
            m.revocations.clone(),
        );
        registry.register(
            "wearhouse_ingest_grant_revocations_pending",
            "Withdrawn participants' grants still to be revoked after the last sweep",
            m.revocations_pending.clone(),
        );
        registry.register(
            "wearhouse_ingest_metrics_skipped",
            "Metrics skipped for a participant in a run (not failures), by source, metric and \
             reason: scope_not_granted (listed by reconsent-list) or not_offered",
            m.skipped.clone(),
        );
        registry.register(
            "wearhouse_ingest_run_participants",
            "Participants of the last finished run by outcome: loaded, never_synced, failed, \
             deferred_quota, locked (by another process), needs_reconsent (marked in the run), \
             no_longer_active",
            m.run_participants.clone(),
        );
        registry.register(
            "wearhouse_ingest_participant_outcomes",
            "Participants processed by runs, by outcome (as wearhouse_ingest_run_participants)",
            m.participant_outcomes.clone(),
        );
        registry.register(
            "wearhouse_ingest_participants_needing_reconsent_longer",
            "Active participants who have needed re-consent for more than `days` days (the \
             configured --reconsent-alert-days; from the database)",
            m.reconsent_overdue.clone(),
        );
        m
    }

    /// Metrics registered nowhere, for commands that do not serve `/metrics`.
    pub fn unregistered() -> Self {
        Self::register(&MetricsRegistry::new())
    }

    /// Records a finished run.
    pub fn run_finished(&self, outcome: Outcome, seconds: f64, finished_at_unix: f64) {
        self.runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.run_duration.observe(seconds);
        if outcome == Outcome::Success {
            self.last_success.set(finished_at_unix);
        }
    }

    /// Sets the last success time read back from the database at start.
    pub fn restore_last_success(&self, unix: f64) {
        self.last_success.set(unix);
    }

    /// Marks a run as started or ended.
    pub fn set_run_in_progress(&self, running: bool) {
        self.run_in_progress.set(i64::from(running));
    }

    /// Counts samples written for a source and metric.
    pub fn samples_written(&self, source: &'static str, metric: Metric, n: u64) {
        self.samples
            .get_or_create(&SampleLabels {
                source,
                metric: metric.name(),
            })
            .inc_by(n);
    }

    /// Counts one revocation attempt of a withdrawn participant's grant (`revoked` or
    /// `failed`).
    pub fn grant_revocation(&self, provider: &str, outcome: &'static str) {
        self.revocations
            .get_or_create(&RevocationLabels {
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Sets the number of withdrawn participants' grants still to be revoked.
    pub fn set_revocations_pending(&self, n: usize) {
        self.revocations_pending.set(n as i64);
    }

    /// Counts a metric skipped for one participant in a run.
    pub fn metric_skipped(&self, source: &'static str, metric: Metric, reason: SkipReason) {
        self.skipped
            .get_or_create(&SkipLabels {
                source,
                metric: metric.name(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Records how many participants of a finished run ended in each outcome (one of
    /// [`PARTICIPANT_OUTCOMES`]); outcomes not given are set to 0.
    pub fn run_participants(&self, counts: &[(&'static str, usize)]) {
        for &outcome in PARTICIPANT_OUTCOMES {
            let n = counts
                .iter()
                .find(|(o, _)| *o == outcome)
                .map_or(0, |&(_, n)| n);
            let labels = ParticipantOutcomeLabels { outcome };
            self.run_participants.get_or_create(&labels).set(n as i64);
            self.participant_outcomes
                .get_or_create(&labels)
                .inc_by(n as u64);
        }
    }

    /// Sets how many active participants have needed re-consent for more than `days` days.
    pub fn set_needing_reconsent_longer(&self, days: u32, n: i64) {
        self.reconsent_overdue
            .get_or_create(&DaysLabels {
                days: days.to_string(),
            })
            .set(n);
    }

    /// Sets the number of participants needing re-consent, as counted in the database.
    pub fn set_needing_reconsent(&self, n: i64) {
        self.needing_reconsent.set(n);
    }
}
