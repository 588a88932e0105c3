//! Participants: enrolment, provider, re-consent status and the latest sample per metric.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgExecutor};

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
    /// The study the participant belongs to.
    pub study_id: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// First local day the ingest fetches (`None`: the ingest's default, else enrolment).
    pub backfill_from: Option<NaiveDate>,
    /// Day the provider account was created, as its profile reported at consent.
    pub provider_account_since: Option<NaiveDate>,
}

/// What to set when enrolling or updating a participant.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    pub participant_id: ParticipantId,
    /// IANA time zone, e.g. `Europe/London`.
    pub timezone: chrono_tz::Tz,
    pub provider: Option<String>,
    pub enrolled_at: Option<DateTime<Utc>>,
    /// The study a new participant joins (`default` when none is given); an existing
    /// participant stays in theirs unless one is given.
    pub study_id: Option<String>,
}

/// Creates the participant, or updates its time zone and provider when it exists.
pub async fn upsert(conn: &mut PgConnection, p: &NewParticipant) -> Result<Participant> {
    sqlx::query_as!(
        Participant,
        r#"insert into participants (participant_id, timezone, provider, enrolled_at, study_id)
           values ($1, $2, $3, coalesce($4, now()), coalesce($5, 'default'))
           on conflict (participant_id) do update set
             timezone = excluded.timezone,
             provider = coalesce(excluded.provider, participants.provider),
             study_id = coalesce($5, participants.study_id),
             updated_at = now()
           returning participant_id, timezone, status, enrolled_at, provider, provider_user_id,
                     needs_reconsent, reconsent_reason, last_device_sync, study_id,
                     contact_name, contact_email, backfill_from, provider_account_since"#,
        p.participant_id.as_str(),
        p.timezone.name(),
        p.provider.as_deref(),
        p.enrolled_at,
        p.study_id.as_deref()
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| unknown_study(e, p.study_id.as_deref()))
}

/// A participant a coordinator adds before they consent (no provider yet).
#[derive(Debug, Clone)]
pub struct Addition {
    pub participant_id: ParticipantId,
    pub study_id: String,
    pub timezone: chrono_tz::Tz,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
}

/// Adds the participant; `None` when the id is taken (in any study).
pub async fn add(conn: &mut PgConnection, a: &Addition) -> Result<Option<Participant>> {
    sqlx::query_as!(
        Participant,
        r#"insert into participants (participant_id, timezone, study_id, contact_name, contact_email)
           values ($1, $2, $3, $4, $5)
           on conflict (participant_id) do nothing
           returning participant_id, timezone, status, enrolled_at, provider, provider_user_id,
                     needs_reconsent, reconsent_reason, last_device_sync, study_id,
                     contact_name, contact_email, backfill_from, provider_account_since"#,
        a.participant_id.as_str(),
        a.timezone.name(),
        a.study_id,
        a.contact_name,
        a.contact_email
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| unknown_study(e, Some(&a.study_id)))
}

/// What a coordinator may change of a participant; `None` leaves a field as it is, and a
/// contact field set to `Some(None)` is cleared.
#[derive(Debug, Clone, Default)]
pub struct DetailsChange {
    pub timezone: Option<chrono_tz::Tz>,
    pub contact_name: Option<Option<String>>,
    pub contact_email: Option<Option<String>>,
}

/// Applies the change and returns the participant as it now is.
pub async fn change_details(
    conn: &mut PgConnection,
    id: &ParticipantId,
    c: &DetailsChange,
) -> Result<Participant> {
    sqlx::query!(
        "update participants set
           timezone = coalesce($2, timezone),
           contact_name = case when $3 then $4 else contact_name end,
           contact_email = case when $5 then $6 else contact_email end,
           updated_at = now()
         where participant_id = $1",
        id.as_str(),
        c.timezone.map(|t| t.name()),
        c.contact_name.is_some(),
        c.contact_name.clone().flatten(),
        c.contact_email.is_some(),
        c.contact_email.clone().flatten()
    )
    .execute(&mut *conn)
    .await?;
    get(conn, id).await
}

/// What setting a participant's backfill start changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillChange {
    pub participant: Participant,
    /// Watermarks moved back to the new start (it is earlier than the one before), so the
    /// next load fetches the earlier days; days already loaded are fetched again and change
    /// nothing.
    pub watermarks_moved: u64,
}

/// A backfill start must not be after `today`: nothing can be fetched from the future, so it
/// is a typing mistake. The message says which days are allowed.
pub fn check_backfill_start(from: NaiveDate, today: NaiveDate) -> std::result::Result<(), String> {
    if from > today {
        return Err(format!(
            "{from} is in the future; give a day on or before {today}"
        ));
    }
    Ok(())
}

/// Sets (or with `None` clears) the first local day the ingest fetches for the participant.
/// A start earlier than the one in force before (the participant's own, else the enrolment
/// day) moves the participant's watermarks back to it, in the same transaction.
pub async fn set_backfill(
    conn: &mut PgConnection,
    id: &ParticipantId,
    from: Option<NaiveDate>,
) -> Result<BackfillChange> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let before = sqlx::query!(
        r#"select coalesce(backfill_from, (enrolled_at at time zone timezone)::date) as "start!"
           from participants where participant_id = $1 for update"#,
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound {
        what: "participant",
        id: id.to_string(),
    })?;
    sqlx::query!(
        "update participants set backfill_from = $2, updated_at = now() where participant_id = $1",
        id.as_str(),
        from
    )
    .execute(&mut *tx)
    .await?;
    let mut moved = 0;
    if let Some(start) = from.filter(|&f| f < before.start) {
        moved = sqlx::query!(
            "update ingest_state s set watermark = $2::date::timestamp at time zone p.timezone,
                    updated_at = now()
             from participants p
             where p.participant_id = s.participant_id and s.participant_id = $1
               and s.watermark > $2::date::timestamp at time zone p.timezone",
            id.as_str(),
            start
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(BackfillChange {
        participant: get(conn, id).await?,
        watermarks_moved: moved,
    })
}

/// Records the day the participant's provider account was created (from its profile).
pub async fn set_provider_account_since(
    db: impl PgExecutor<'_>,
    id: &ParticipantId,
    since: NaiveDate,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update participants set provider_account_since = $2 where participant_id = $1",
        id.as_str(),
        since
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The participant, or [`Error::NotFound`].
pub async fn get(conn: &mut PgConnection, id: &ParticipantId) -> Result<Participant> {
    sqlx::query_as!(
        Participant,
        "select participant_id, timezone, status, enrolled_at, provider, provider_user_id,
                needs_reconsent, reconsent_reason, last_device_sync, study_id,
                contact_name, contact_email, backfill_from, provider_account_since
         from participants where participant_id = $1",
        id.as_str()
    )
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
    Ok(sqlx::query_scalar!(
        "select participant_id from participants where participant_id = any($1)",
        &ids as &[&str]
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// One page of participants ordered by id, and the total; only those of `studies` when given
/// (`None`: every study).
pub async fn list(
    conn: &mut PgConnection,
    studies: Option<&[String]>,
    limit: u32,
    offset: u64,
) -> Result<(Vec<Participant>, i64)> {
    let rows = sqlx::query_as!(
        Participant,
        "select participant_id, timezone, status, enrolled_at, provider, provider_user_id,
                needs_reconsent, reconsent_reason, last_device_sync, study_id,
                contact_name, contact_email, backfill_from, provider_account_since
         from participants where $3::text[] is null or study_id = any($3)
         order by participant_id limit $1 offset $2",
        i64::from(limit),
        offset as i64,
        studies
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from participants where $1::text[] is null or study_id = any($1)"#,
        studies
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows, total))
}

/// The study of each of `ids` that exists: participant id → study id.
pub async fn studies_of(conn: &mut PgConnection, ids: &[&str]) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query!(
        "select participant_id, study_id from participants where participant_id = any($1)",
        ids as &[&str]
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.participant_id, r.study_id))
        .collect())
}

/// A foreign-key failure on the study becomes an error that says what to do.
fn unknown_study(e: sqlx::Error, study: Option<&str>) -> Error {
    match (&e, study) {
        (sqlx::Error::Database(db), Some(study))
            if db.constraint() == Some("participants_study_id_fkey") =>
        {
            Error::invalid(
                "study",
                format!("there is no study {study:?}; create it with `wearhouse-api study add`"),
            )
        }
        _ => e.into(),
    }
}

/// Marks whether the participant must consent again (a revoked or invalid grant). The time
/// it was first marked is kept until the mark is cleared, so an alert can tell how long the
/// participant has waited.
pub async fn set_needs_reconsent(
    conn: &mut PgConnection,
    id: &ParticipantId,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query!(
        "update participants set needs_reconsent = $2, reconsent_reason = $3,
           reconsent_since = case when $2 then coalesce(reconsent_since, now()) end,
           updated_at = now()
         where participant_id = $1",
        id.as_str(),
        reason.is_some(),
        reason
    )
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
    sqlx::query!(
        "update participants set last_device_sync = $2, updated_at = now() where participant_id = $1",
        id.as_str(),
        at
    )
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
    let rows = sqlx::query!(
        r#"select m.name as "name!", l.timestamp from unnest($2::text[]) as m(name)
           cross join lateral (select timestamp from raw_data
                               where participant_id = $1 and data_type = m.name
                               order by timestamp desc limit 1) l"#,
        id,
        &names as &[&str]
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.timestamp)).collect())
}

/// [`last_samples`] for several participants in one round trip: participant id → metric →
/// latest sample time. Participants without data are absent from the map.
pub async fn last_samples_of(
    conn: &mut PgConnection,
    ids: &[&str],
) -> Result<BTreeMap<String, BTreeMap<String, DateTime<Utc>>>> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let rows = sqlx::query!(
        r#"select p.id as "id!", m.name as "name!", l.timestamp
           from unnest($1::text[]) as p(id)
           cross join unnest($2::text[]) as m(name)
           cross join lateral (select timestamp from raw_data
                               where participant_id = p.id and data_type = m.name
                               order by timestamp desc limit 1) l"#,
        ids as &[&str],
        &names as &[&str]
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out: BTreeMap<String, BTreeMap<String, DateTime<Utc>>> = BTreeMap::new();
    for r in rows {
        out.entry(r.id).or_default().insert(r.name, r.timestamp);
    }
    Ok(out)
}

/// Whether the participant is enrolled.
pub async fn exists(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from participants where participant_id = $1) as "found!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Sets the participant's provider and the provider's user id (enrolment with a provider).
pub async fn set_provider(
    db: impl PgExecutor<'_>,
    id: &ParticipantId,
    provider: &str,
    provider_user_id: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update participants set provider = $2, provider_user_id = $3, updated_at = now()
         where participant_id = $1",
        id.as_str(),
        provider,
        provider_user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sets the provider's user id alone (a synthetic cohort's device).
pub async fn set_provider_user_id(
    db: impl PgExecutor<'_>,
    id: &ParticipantId,
    provider_user_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update participants set provider_user_id = $2 where participant_id = $1",
        id.as_str(),
        provider_user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A participant a delta load works on: active, with a provider, not waiting to re-consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Loadable {
    pub participant_id: String,
    pub timezone: String,
    pub provider: String,
    pub provider_user_id: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub backfill_from: Option<NaiveDate>,
    pub provider_account_since: Option<NaiveDate>,
}

/// The participants a delta load works on (only those in `only` when given), by id.
pub async fn loadable(
    db: impl PgExecutor<'_>,
    only: Option<&[String]>,
) -> sqlx::Result<Vec<Loadable>> {
    sqlx::query_as!(
        Loadable,
        r#"select participant_id, timezone, provider as "provider!", provider_user_id, enrolled_at,
                  backfill_from, provider_account_since
           from participants
           where provider is not null and status = 'active' and not needs_reconsent
             and ($1::text[] is null or participant_id = any($1))
           order by participant_id"#,
        only
    )
    .fetch_all(db)
    .await
}

/// Active participants marked as needing re-consent, for the gauge.
pub async fn count_needing_reconsent(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from participants where needs_reconsent and status = 'active'"#
    )
    .fetch_one(db)
    .await
}

/// Active participants enrolled more than `days` days ago with no sample of any catalogue
/// metric in the last `days` days. One index probe per participant and catalogue metric on the
/// `(participant_id, data_type, timestamp)` key, so its cost follows the cohort size, not the
/// amount of history.
pub async fn count_without_data(db: impl PgExecutor<'_>, days: u32) -> sqlx::Result<i64> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from participants p
           where p.status = 'active'
             and p.enrolled_at < now() - make_interval(days => $1)
             and not exists (
               select 1 from unnest($2::text[]) as m(name)
               where exists (select 1 from raw_data r
                             where r.participant_id = p.participant_id and r.data_type = m.name
                               and r.timestamp >= now() - make_interval(days => $1)))"#,
        i32::try_from(days).unwrap_or(i32::MAX),
        &names as &[&str]
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_start_in_the_future_is_refused_with_the_latest_allowed_day() {
        let today: NaiveDate = "2026-12-03".parse().unwrap();
        assert!(check_backfill_start(today, today).is_ok());
        assert!(check_backfill_start("2020-01-01".parse().unwrap(), today).is_ok());
        let e = check_backfill_start("2026-12-04".parse().unwrap(), today).unwrap_err();
        assert!(e.contains("on or before 2026-12-03"), "{e}");
    }
}
