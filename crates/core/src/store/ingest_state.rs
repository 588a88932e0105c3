//! Ingest watermarks: per participant, source and metric, the instant up to which data is
//! known complete. A delta load fetches from the watermark's day and advances it only after
//! the data is written, so a crash in between is repaired by the next run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use crate::error::Result;
use crate::metric::Metric;
use crate::participant::ParticipantId;

/// One watermark row.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct Watermark {
    pub participant_id: String,
    pub source: String,
    pub data_type: String,
    pub watermark: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The watermark, if any run has set one.
pub async fn get(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    source: &str,
    metric: Metric,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "select watermark from ingest_state
         where participant_id = $1 and source = $2 and data_type = $3",
        participant.as_str(),
        source,
        metric.name()
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Sets the watermark. It never moves backwards: a slower worker finishing an older range
/// cannot undo a newer one.
pub async fn advance(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    source: &str,
    metric: Metric,
    watermark: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "insert into ingest_state (participant_id, source, data_type, watermark, last_run_at)
         values ($1, $2, $3, $4, now())
         on conflict (participant_id, source, data_type) do update set
           watermark = greatest(ingest_state.watermark, excluded.watermark),
           last_run_at = now(), last_error = null, updated_at = now()",
        participant.as_str(),
        source,
        metric.name(),
        watermark
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed attempt without moving the watermark.
pub async fn record_error(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    source: &str,
    metric: Metric,
    error: &str,
) -> Result<()> {
    sqlx::query!(
        "update ingest_state set last_run_at = now(), last_error = $4, updated_at = now()
         where participant_id = $1 and source = $2 and data_type = $3",
        participant.as_str(),
        source,
        metric.name(),
        error
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every watermark of a participant.
pub async fn list(conn: &mut PgConnection, participant: &ParticipantId) -> Result<Vec<Watermark>> {
    Ok(sqlx::query_as!(
        Watermark,
        "select participant_id, source, data_type, watermark, last_run_at, last_error
         from ingest_state where participant_id = $1 order by source, data_type",
        participant.as_str()
    )
    .fetch_all(&mut *conn)
    .await?)
}
