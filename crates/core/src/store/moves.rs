//! Participants moving between providers (Fitbit Web API → Google Health): the hand-over of
//! watermarks (`source_handovers`), the record of each move and of the old grant's revocation
//! (`provider_moves`), and who still has to consent again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use crate::metric::Metric;
use crate::participant::ParticipantId;

/// For each metric handed over to `to_source`, the instant before which that source must
/// deliver nothing for this participant (where the previous source's data ended).
pub async fn not_before(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
    to_source: &str,
) -> sqlx::Result<BTreeMap<Metric, DateTime<Utc>>> {
    let rows = sqlx::query!(
        "select data_type, not_before from source_handovers
         where participant_id = $1 and to_source = $2",
        participant.as_str(),
        to_source
    )
    .fetch_all(db)
    .await?;
    // A metric no longer in the catalogue cannot be fetched, so its hand-over does not matter.
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((Metric::parse(&r.data_type).ok()?, r.not_before)))
        .collect())
}

/// The participant enrolled with `provider` under `provider_user_id` (as stored on the
/// participant or on their grant).
pub async fn participant_with_user_id(
    db: impl PgExecutor<'_>,
    provider: &str,
    provider_user_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"select participant_id as "participant_id!" from participants
           where provider = $1 and provider_user_id = $2
           union
           select participant_id from oauth_tokens where provider = $1 and provider_user_id = $2
           order by 1 limit 1"#,
        provider,
        provider_user_id
    )
    .fetch_optional(db)
    .await
}

/// Copies the participant's watermarks of source `from` to source `to` (they never move
/// backwards, so a new source that already ran keeps its own progress), records each copied
/// instant as the new source's `not_before` (the first hand-over's instants stay), and records
/// the move. Returns how many watermarks were copied.
pub async fn hand_over(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    (from, from_user_id): (&str, Option<&str>),
    (to, to_user_id): (&str, Option<&str>),
) -> sqlx::Result<u64> {
    let copied = sqlx::query!(
        "insert into ingest_state (participant_id, source, data_type, watermark, last_run_at)
         select participant_id, $3, data_type, watermark, now() from ingest_state
         where participant_id = $1 and source = $2
         on conflict (participant_id, source, data_type) do update set
           watermark = greatest(ingest_state.watermark, excluded.watermark), updated_at = now()",
        participant.as_str(),
        from,
        to
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query!(
        "insert into source_handovers (participant_id, to_source, data_type, from_source, not_before)
         select participant_id, $3, data_type, source, watermark from ingest_state
         where participant_id = $1 and source = $2
         on conflict (participant_id, to_source, data_type) do nothing",
        participant.as_str(),
        from,
        to
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into provider_moves (participant_id, from_provider, to_provider, from_user_id, to_user_id)
         values ($1, $2, $3, $4, $5)
         on conflict (participant_id, from_provider, to_provider) do update set
           to_user_id = excluded.to_user_id",
        participant.as_str(),
        from,
        to,
        from_user_id,
        to_user_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(copied)
}

/// Records on the participant's move away from `from_provider` that the old grant is revoked.
pub async fn mark_old_grant_revoked(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
    from_provider: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update provider_moves set from_grant_revoked_at = coalesce(from_grant_revoked_at, now())
         where participant_id = $1 and from_provider = $2",
        participant.as_str(),
        from_provider
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Participants who moved away from `from_provider` whose old grant is not revoked yet.
pub async fn pending_revocations(
    db: impl PgExecutor<'_>,
    from_provider: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select participant_id from provider_moves
         where from_provider = $1 and from_grant_revoked_at is null order by 1",
        from_provider
    )
    .fetch_all(db)
    .await
}

/// One participant who must consent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconsentEntry {
    pub participant_id: String,
    /// The provider the participant is on now.
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub reason: String,
    /// When re-consent was first needed (for participants still on the retired provider, when
    /// their row last changed).
    pub since: DateTime<Utc>,
}

/// Every active participant who must consent again, ordered by id: those whose grant was
/// revoked or refused (`needs_reconsent`, with the stored reason), and those still on
/// `retired_provider`, with `retired_reason`.
pub async fn needing_reconsent(
    db: impl PgExecutor<'_>,
    retired_provider: &str,
    retired_reason: &str,
) -> sqlx::Result<Vec<ReconsentEntry>> {
    sqlx::query_as!(
        ReconsentEntry,
        r#"select participant_id, provider, provider_user_id,
                  case when needs_reconsent
                       then coalesce(reconsent_reason, 'grant revoked or invalid')
                       else $1 end as "reason!",
                  case when needs_reconsent then coalesce(reconsent_since, updated_at)
                       else updated_at end as "since!"
           from participants
           where status = 'active' and (needs_reconsent or provider = $2)
           order by participant_id"#,
        retired_reason,
        retired_provider
    )
    .fetch_all(db)
    .await
}
