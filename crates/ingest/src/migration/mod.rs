//! Moving participants from the retired Fitbit Web API to the Google Health API.
//!
//! Existing Fitbit tokens cannot be carried over: every participant consents again with Google
//! (reference §1). When the Google account's `legacyUserId` is the Fitbit user id of an
//! enrolled participant, that participant keeps their id and continues where Fitbit stopped:
//!
//! 1. [`hand_over`] copies each Fitbit watermark to the `google-health` source, so the next run
//!    fetches from the day Fitbit's data ended (no gap), and records that instant per metric in
//!    `source_handovers`; the Google source delivers nothing before it (no overlap, even where
//!    the two providers sample at different instants on the switch day). Daily values share one
//!    key per day, so the switch day's value is replaced, not duplicated.
//! 2. `participants.provider` becomes `google-health` (the per-user `oauth_type` flag Google's
//!    migration guide recommends), in the same transaction as the new grant.
//! 3. Only after the new grant has worked (the identity call succeeded) is the Fitbit grant
//!    revoked at Fitbit ([`revoke_old_grant`]); a failed revocation stays pending in
//!    `provider_moves` and is retried by [`revoke_pending`].
//!
//! [`reconsent`] lists who still has to consent again.

pub mod reconsent;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use wearhouse_core::{Metric, ParticipantId};

use crate::oauth::{OAuthError, TokenManager};

/// The instant before which `to_source` must deliver nothing for this participant and metric.
pub async fn not_before(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    to_source: &str,
    metric: Metric,
) -> Result<Option<DateTime<Utc>>, wearhouse_core::Error> {
    Ok(sqlx::query_scalar(
        "select not_before from source_handovers
         where participant_id = $1 and to_source = $2 and data_type = $3",
    )
    .bind(participant.as_str())
    .bind(to_source)
    .bind(metric.name())
    .fetch_optional(conn)
    .await?)
}

/// The participant enrolled with `provider` under `provider_user_id` (as stored on the
/// participant or on their grant).
pub async fn participant_with_user_id(
    conn: &mut PgConnection,
    provider: &str,
    provider_user_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select participant_id from participants
         where provider = $1 and provider_user_id = $2
         union
         select participant_id from oauth_tokens where provider = $1 and provider_user_id = $2
         order by 1 limit 1",
    )
    .bind(provider)
    .bind(provider_user_id)
    .fetch_optional(conn)
    .await
}

/// What a move handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Metrics whose watermark now continues at the new source.
    pub metrics: u64,
}

/// Hands the participant's watermarks from `from` to `to` and records the move. Call it in the
/// transaction that stores the new grant. Running it again keeps the first hand-over instants.
pub async fn hand_over(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    (from, from_user_id): (&str, Option<&str>),
    (to, to_user_id): (&str, Option<&str>),
) -> sqlx::Result<Handover> {
    // The watermark never moves backwards (`greatest`), so a new source that already ran keeps
    // its own progress.
    let copied = sqlx::query(
        "insert into ingest_state (participant_id, source, data_type, watermark, last_run_at)
         select participant_id, $3, data_type, watermark, now() from ingest_state
         where participant_id = $1 and source = $2
         on conflict (participant_id, source, data_type) do update set
           watermark = greatest(ingest_state.watermark, excluded.watermark), updated_at = now()",
    )
    .bind(participant.as_str())
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "insert into source_handovers (participant_id, to_source, data_type, from_source, not_before)
         select participant_id, $3, data_type, source, watermark from ingest_state
         where participant_id = $1 and source = $2
         on conflict (participant_id, to_source, data_type) do nothing",
    )
    .bind(participant.as_str())
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into provider_moves (participant_id, from_provider, to_provider, from_user_id, to_user_id)
         values ($1, $2, $3, $4, $5)
         on conflict (participant_id, from_provider, to_provider) do update set
           to_user_id = excluded.to_user_id",
    )
    .bind(participant.as_str())
    .bind(from)
    .bind(to)
    .bind(from_user_id)
    .bind(to_user_id)
    .execute(&mut *conn)
    .await?;
    Ok(Handover { metrics: copied })
}

/// Revokes the participant's grant at the old provider (`old.provider()`) and records it on
/// the move. A grant the provider already considers dead counts as revoked.
pub async fn revoke_old_grant(
    pool: &PgPool,
    participant: &ParticipantId,
    old: &TokenManager,
) -> Result<(), OAuthError> {
    let provider = old.client().config().provider;
    match old.revoke(participant).await {
        Ok(()) | Err(OAuthError::NotEnrolled { .. }) => {}
        Err(e) => return Err(e),
    }
    sqlx::query(
        "update provider_moves set from_grant_revoked_at = coalesce(from_grant_revoked_at, now())
         where participant_id = $1 and from_provider = $2",
    )
    .bind(participant.as_str())
    .bind(provider)
    .execute(pool)
    .await?;
    tracing::info!(participant = %participant, provider, "old grant revoked after the move");
    Ok(())
}

/// Retries the revocations that failed at move time (the old provider was unreachable). Returns
/// the participants whose old grant is now revoked; failures are logged and stay pending.
pub async fn revoke_pending(pool: &PgPool, old: &TokenManager) -> Result<Vec<String>, OAuthError> {
    let provider = old.client().config().provider;
    let pending: Vec<String> = sqlx::query_scalar(
        "select participant_id from provider_moves
         where from_provider = $1 and from_grant_revoked_at is null order by 1",
    )
    .bind(provider)
    .fetch_all(pool)
    .await?;
    let mut done = Vec::new();
    for id in pending {
        let Ok(participant) = ParticipantId::parse(&id) else {
            continue;
        };
        match revoke_old_grant(pool, &participant, old).await {
            Ok(()) => done.push(id),
            Err(e) => {
                tracing::warn!(participant = %participant, provider, error = %e, "revoking the old grant failed; will retry")
            }
        }
    }
    Ok(done)
}
