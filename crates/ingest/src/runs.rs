//! The record of finished runs (`ingest_runs`), from which the daemon restores its "last
//! success" metric at start.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::metrics::Outcome;
use crate::pipeline::RunReport;

/// Records a finished run.
pub async fn record(
    pool: &PgPool,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: Outcome,
    report: &RunReport,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into ingest_runs (started_at, finished_at, outcome, participants, failed, samples)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(started_at)
    .bind(finished_at)
    .bind(outcome.as_str())
    .bind(report.participants as i32)
    .bind(report.failed.len() as i32)
    .bind(report.samples as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// When the last successful run finished, if any did.
pub async fn last_success(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("select max(finished_at) from ingest_runs where outcome = 'success'")
        .fetch_one(pool)
        .await
}
