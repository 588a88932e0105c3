//! The record of finished ingest runs (`ingest_runs`), from which the ingest daemon restores
//! its "last success" metric at start.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A finished run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun<'a> {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `success` or `failure`.
    pub outcome: &'a str,
    pub participants: i32,
    pub failed: i32,
    pub samples: i64,
}

/// Records a finished run.
pub async fn record(db: impl PgExecutor<'_>, run: &FinishedRun<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into ingest_runs (started_at, finished_at, outcome, participants, failed, samples)
         values ($1, $2, $3, $4, $5, $6)",
        run.started_at,
        run.finished_at,
        run.outcome,
        run.participants,
        run.failed,
        run.samples
    )
    .execute(db)
    .await?;
    Ok(())
}

/// When the last successful run finished, if any did.
pub async fn last_success(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("select max(finished_at) from ingest_runs where outcome = 'success'")
        .fetch_one(db)
        .await
}
