//! Participants: enrolment, provider, re-consent status and the latest sample per metric.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::participant::ParticipantId;

/// A participant row.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct Participant {
    pub participant_id: String,
    pub timezone: String,
    pub status: String,
    pub enrolled_at: DateTime<Utc>,
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub needs_reconsent: bool,
    pub reconsent_reason: Option<String>,
    pub last_device_sync: Option<DateTime<Utc>>,
}

/// What to set when enrolling or updating a participant.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    pub participant_id: ParticipantId,
    /// IANA time zone, e.g. `Europe/London`.
    pub timezone: chrono_tz::Tz,
    pub provider: Option<String>,
    pub enrolled_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "participant_id, timezone, status, enrolled_at, provider, provider_user_id, \
                       needs_reconsent, reconsent_reason, last_device_sync";

/// Creates the participant, or updates its time zone and provider when it exists.
pub async fn upsert(conn: &mut PgConnection, p: &NewParticipant) -> Result<Participant> {
    Ok(sqlx::query_as(&format!(
        "insert into participants (participant_id, timezone, provider, enrolled_at)
         values ($1, $2, $3, coalesce($4, now()))
         on conflict (participant_id) do update set
           timezone = excluded.timezone,
           provider = coalesce(excluded.provider, participants.provider),
           updated_at = now()
         returning {COLUMNS}"
    ))
    .bind(p.participant_id.as_str())
    .bind(p.timezone.name())
    .bind(&p.provider)
    .bind(p.enrolled_at)
    .fetch_one(&mut *conn)
    .await?)
}

/// The participant, or [`Error::NotFound`].
pub async fn get(conn: &mut PgConnection, id: &ParticipantId) -> Result<Participant> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from participants where participant_id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound {
        what: "participant",
        id: id.to_string(),
    })
}

/// Which of `ids` exist.
pub async fn existing(conn: &mut PgConnection, ids: &[ParticipantId]) -> Result<Vec<String>> {
    let ids: Vec<&str> = ids.iter().map(|p| p.as_str()).collect();
    Ok(
        sqlx::query_scalar(
            "select participant_id from participants where participant_id = any($1)",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?,
    )
}

/// One page of participants ordered by id, and the total.
pub async fn list(
    conn: &mut PgConnection,
    limit: u32,
    offset: u64,
) -> Result<(Vec<Participant>, i64)> {
    let rows = sqlx::query_as(&format!(
        "select {COLUMNS} from participants order by participant_id limit $1 offset $2"
    ))
    .bind(i64::from(limit))
    .bind(offset as i64)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar("select count(*) from participants")
        .fetch_one(&mut *conn)
        .await?;
    Ok((rows, total))
}

/// Marks whether the participant must consent again (a revoked or invalid grant).
pub async fn set_needs_reconsent(
    conn: &mut PgConnection,
    id: &ParticipantId,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "update participants set needs_reconsent = $2, reconsent_reason = $3, updated_at = now()
         where participant_id = $1",
    )
    .bind(id.as_str())
    .bind(reason.is_some())
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the device's last sync as the provider reported it.
pub async fn set_last_device_sync(
    conn: &mut PgConnection,
    id: &ParticipantId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "update participants set last_device_sync = $2, updated_at = now() where participant_id = $1",
    )
    .bind(id.as_str())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The latest sample time of each metric the participant has data for. One backward index
/// probe per catalogue metric, so it stays fast however much history there is.
pub async fn last_samples(
    conn: &mut PgConnection,
    id: &str,
) -> Result<BTreeMap<String, DateTime<Utc>>> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "select m.name, l.timestamp from unnest($2::text[]) as m(name)
         cross join lateral (select timestamp from raw_data
                             where participant_id = $1 and data_type = m.name
                             order by timestamp desc limit 1) l",
    )
    .bind(id)
    .bind(names)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// [`last_samples`] for several participants in one round trip: participant id → metric →
/// latest sample time. Participants without data are absent from the map.
pub async fn last_samples_of(
    conn: &mut PgConnection,
    ids: &[&str],
) -> Result<BTreeMap<String, BTreeMap<String, DateTime<Utc>>>> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "select p.id, m.name, l.timestamp
         from unnest($1::text[]) as p(id)
         cross join unnest($2::text[]) as m(name)
         cross join lateral (select timestamp from raw_data
                             where participant_id = p.id and data_type = m.name
                             order by timestamp desc limit 1) l",
    )
    .bind(ids)
    .bind(names)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: BTreeMap<String, BTreeMap<String, DateTime<Utc>>> = BTreeMap::new();
    for (id, metric, t) in rows {
        out.entry(id).or_default().insert(metric, t);
    }
    Ok(out)
}
