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

use sqlx::{PgConnection, PgPool};
use wearhouse_core::ParticipantId;
use wearhouse_core::store::moves;

use crate::oauth::{OAuthError, TokenManager};

pub use wearhouse_core::store::moves::participant_with_user_id;

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
    let copied =
        moves::hand_over(conn, participant, (from, from_user_id), (to, to_user_id)).await?;
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
    moves::mark_old_grant_revoked(pool, participant, provider).await?;
    tracing::info!(participant = %participant, provider, "old grant revoked after the move");
    Ok(())
}

/// Retries the revocations that failed at move time (the old provider was unreachable). Returns
/// the participants whose old grant is now revoked; failures are logged and stay pending.
pub async fn revoke_pending(pool: &PgPool, old: &TokenManager) -> Result<Vec<String>, OAuthError> {
    let provider = old.client().config().provider;
    let pending = moves::pending_revocations(pool, provider).await?;
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
