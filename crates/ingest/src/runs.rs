//! What a run did ([`RunReport`]) and the record of finished runs (`ingest_runs`), from which
//! the daemon restores its "last success" metric at start. The pipeline fills the report;
//! this module depends on nothing of the pipeline.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wearhouse_core::store::runs::{self, FinishedRun};

use crate::metrics::Outcome;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub participants: usize,
    pub loaded: usize,
    pub locked: usize,
    pub quota_exhausted: usize,
    pub needs_reconsent: usize,
    pub never_synced: usize,
    pub not_started: usize,
    /// Withdrawn after the run started, so not loaded.
    pub no_longer_active: usize,
    pub failed: Vec<(String, String)>,
    /// Samples handed to the sink.
    pub samples: u64,
    /// Rows inserted or changed in `raw_data`.
    pub changed: u64,
}

impl RunReport {
    /// Success unless a participant failed (quota and re-consent are not failures).
    pub fn outcome(&self) -> Outcome {
        if self.failed.is_empty() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    /// Whether a shutdown cut the run short.
    pub fn interrupted(&self) -> bool {
        self.not_started > 0
    }
}

/// Records a finished run.
pub async fn record(
    pool: &PgPool,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: Outcome,
    report: &RunReport,
) -> Result<(), sqlx::Error> {
    runs::record(
        pool,
        &FinishedRun {
            started_at,
            finished_at,
            outcome: outcome.as_str(),
            participants: report.participants as i32,
            failed: report.failed.len() as i32,
            samples: report.samples as i64,
        },
    )
    .await
}

/// When the last successful run finished, if any did.
pub async fn last_success(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    runs::last_success(pool).await
}
