//! The participant lifecycle: withdrawal (collection stops, the data collected so far stays,
//! the grant is revoked at the provider by the ingest) and erasure (every row naming the
//! participant goes, in one database function that also writes the audit record; see the
//! `lifecycle` migration). The participant archive (data portability) is in [`export`].
//!
//! The grant queries here touch only `oauth_tokens`' key columns, never the tokens, so they
//! do not depend on how the tokens are stored.

pub mod export;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::{Error, Result};
use crate::participant::ParticipantId;
use crate::store::audit::Actor;
use crate::store::{Backend, pending_refresh};
use crate::time::TimeRange;

/// Audit actions of the lifecycle, as stored.
pub mod action {
    pub const WITHDRAWN: &str = "participant_withdrawn";
    /// The grant was revoked at the provider and its tokens deleted.
    pub const GRANT_REVOKED: &str = "grant_revoked";
    /// Written by the database function itself, in the erasing transaction.
    pub const ERASED: &str = "participant_erased";
    pub const ERASE_REFUSED: &str = "participant_erase_refused";
    pub const EXPORTED: &str = "participant_exported";
}

/// A participant's withdrawal as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Withdrawal {
    pub participant_id: String,
    pub study_id: String,
    pub status: String,
    /// Null only for participants marked withdrawn before withdrawals were recorded.
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawal_reason: Option<String>,
    /// The actor as the audit trail names them.
    pub withdrawn_by: Option<String>,
}

/// Marks the participant withdrawn with `reason`, by `by`. Withdrawing a participant who is
/// already withdrawn changes nothing and answers the existing record; the flag says whether
/// this call withdrew them. [`Error::NotFound`] for an unknown participant.
pub async fn withdraw(
    conn: &mut PgConnection,
    id: &ParticipantId,
    reason: &str,
    by: &str,
) -> Result<(Withdrawal, bool)> {
    let changed = sqlx::query_as!(
        Withdrawal,
        "update participants
         set status = 'withdrawn', withdrawn_at = now(), withdrawal_reason = $2,
             withdrawn_by = $3, updated_at = now()
         where participant_id = $1 and status <> 'withdrawn'
         returning participant_id, study_id, status, withdrawn_at, withdrawal_reason, withdrawn_by",
        id.as_str(),
        reason,
        by
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(w) = changed {
        return Ok((w, true));
    }
    Ok((withdrawal(conn, id).await?, false))
}

/// The participant's status and withdrawal record, or [`Error::NotFound`].
pub async fn withdrawal(conn: &mut PgConnection, id: &ParticipantId) -> Result<Withdrawal> {
    sqlx::query_as!(
        Withdrawal,
        "select participant_id, study_id, status, withdrawn_at, withdrawal_reason, withdrawn_by
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

/// Whether the participant still holds a provider grant that the ingest has yet to revoke.
/// Answered by a database function, so that a role that may not read `oauth_tokens` (the
/// API's) can ask.
pub async fn grant_pending(db: impl PgExecutor<'_>, id: &ParticipantId) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select participant_grant_pending($1) as "pending!""#,
        id.as_str()
    )
    .fetch_one(db)
    .await?)
}

/// Whether a delta load may still work on the participant: it exists, is active and is not
/// waiting to re-consent. The pipeline asks again once it holds the participant's lock, so a
/// withdrawal during a run stops collection before the next participant's first request.
pub async fn is_loadable(db: impl PgExecutor<'_>, id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from participants
                          where participant_id = $1 and status = 'active'
                            and not needs_reconsent) as "loadable!""#,
        id
    )
    .fetch_one(db)
    .await?)
}

/// Whether the participant is withdrawn (the impute worker runs no job for them).
pub async fn is_withdrawn(db: impl PgExecutor<'_>, id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from participants
                          where participant_id = $1 and status = 'withdrawn') as "withdrawn!""#,
        id
    )
    .fetch_one(db)
    .await?)
}

/// A stored grant: participant and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantKey {
    pub participant_id: String,
    pub provider: String,
}

/// The providers the participant holds a grant with.
pub async fn grants_of(db: impl PgExecutor<'_>, id: &ParticipantId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "select provider from oauth_tokens where participant_id = $1 order by provider",
        id.as_str()
    )
    .fetch_all(db)
    .await?)
}

/// The grants of withdrawn participants, still to be revoked and deleted.
pub async fn withdrawn_grants(db: impl PgExecutor<'_>) -> Result<Vec<GrantKey>> {
    Ok(sqlx::query_as!(
        GrantKey,
        "select t.participant_id, t.provider
         from oauth_tokens t join participants p using (participant_id)
         where p.status = 'withdrawn'
         order by t.participant_id, t.provider"
    )
    .fetch_all(db)
    .await?)
}

/// Deletes the participant's grant with `provider` once it is revoked at the provider, with
/// any record of a refresh token in flight. Returns whether there was one.
pub async fn delete_grant(
    db: impl PgExecutor<'_>,
    id: &ParticipantId,
    provider: &str,
) -> Result<bool> {
    Ok(sqlx::query!(
        "with in_flight as (
           delete from oauth_refresh_in_flight where participant_id = $1 and provider = $2
         )
         delete from oauth_tokens where participant_id = $1 and provider = $2",
        id.as_str(),
        provider
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Erasure {
    pub participant_id: String,
    pub study_id: String,
    /// Rows deleted per table (and per continuous aggregate on TimescaleDB).
    pub rows: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct Erased {
    rows: BTreeMap<String, i64>,
    study_id: String,
    samples_from: Option<DateTime<Utc>>,
    samples_to: Option<DateTime<Utc>>,
}

/// Erases the participant everywhere through the `erase_participant` database function,
/// which writes the audit record in the same transaction. On TimescaleDB the same transaction
/// queues the span their samples covered for the ingest's next aggregate refresh (see the
/// `erasure_queues_refresh` migration); the aggregates' own rows of the participant are
/// already gone. Refused with [`Error::Invalid`] (parameter `participant`) while a grant is
/// still to be revoked or the ingest is loading the participant.
pub async fn erase(
    pool: &PgPool,
    backend: &Backend,
    id: &ParticipantId,
    actor: &Actor,
    request_id: Option<&str>,
    client_addr: Option<&str>,
) -> Result<Erasure> {
    let mut tx = pool.begin().await?;
    let answer = sqlx::query_scalar!(
        r#"select erase_participant($1, $2, $3, $4, $5) as "erased!""#,
        id.as_str(),
        actor.user_id,
        actor.label,
        request_id,
        client_addr
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| erase_error(e, id))?;
    let erased: Erased = serde_json::from_value(answer)
        .map_err(|e| Error::Database(sqlx::Error::Decode(Box::new(e))))?;
    if let (Some(from), Some(to), false) = (
        erased.samples_from,
        erased.samples_to,
        backend.rollups_are_tables,
    ) {
        let span = TimeRange::new(from, to + chrono::Duration::microseconds(1))?;
        pending_refresh::queue(&mut *tx, span).await?;
    }
    tx.commit().await?;
    Ok(Erasure {
        participant_id: id.to_string(),
        study_id: erased.study_id,
        rows: erased.rows,
    })
}

/// The function's refusals become errors that say what to do.
fn erase_error(e: sqlx::Error, id: &ParticipantId) -> Error {
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        Some("P0002") => Error::NotFound {
            what: "participant",
            id: id.to_string(),
        },
        Some("55000") | Some("55P03") => {
            let message = match &e {
                sqlx::Error::Database(db) => db.message().to_owned(),
                _ => e.to_string(),
            };
            Error::invalid("participant", message)
        }
        _ => e.into(),
    }
}
