//! Spans written but not yet refreshed in TimescaleDB's continuous aggregates
//! (`rollup_refresh_pending`): queued in the writing transaction, dequeued after the refresh,
//! so a crash in between is repaired by the next run.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::time::TimeRange;

/// One queued span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSpan {
    pub id: i64,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
}

/// Queues `span` for refreshing.
pub async fn queue(db: impl PgExecutor<'_>, span: TimeRange) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into rollup_refresh_pending (range_start, range_end) values ($1, $2)",
        span.start,
        span.end
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Every queued span, by start.
pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<PendingSpan>> {
    sqlx::query_as!(
        PendingSpan,
        "select id, range_start, range_end from rollup_refresh_pending order by range_start"
    )
    .fetch_all(db)
    .await
}

/// Dequeues the spans up to id `max_id` (those a refresh covered).
pub async fn dequeue_through(db: impl PgExecutor<'_>, max_id: i64) -> sqlx::Result<()> {
    sqlx::query!("delete from rollup_refresh_pending where id <= $1", max_id)
        .execute(db)
        .await?;
    Ok(())
}
