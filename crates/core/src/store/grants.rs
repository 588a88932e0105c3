//! OAuth grants (`oauth_tokens`): one per participant and provider. Functions take a
//! connection so the caller owns the transaction (the refresh path holds a row lock across the
//! token endpoint call).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::participant::ParticipantId;

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub participant_id: String,
    pub provider: String,
    pub provider_user_id: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub scope: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A token answer to store.
#[derive(Debug, Clone, Copy)]
pub struct NewGrant<'a> {
    pub provider_user_id: Option<&'a str>,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub scope: Option<&'a str>,
}

/// The participant's grant, if any.
pub async fn load(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> sqlx::Result<Option<StoredToken>> {
    sqlx::query_as!(
        StoredToken,
        "select participant_id, provider, provider_user_id, access_token, refresh_token,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens where participant_id = $1 and provider = $2",
        participant.as_str(),
        provider
    )
    .fetch_optional(conn)
    .await
}

/// The grant, row-locked until the caller's transaction ends: the per-participant lock under
/// which a single-use refresh token is spent.
pub async fn load_for_update(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> sqlx::Result<Option<StoredToken>> {
    sqlx::query_as!(
        StoredToken,
        "select participant_id, provider, provider_user_id, access_token, refresh_token,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens where participant_id = $1 and provider = $2 for update",
        participant.as_str(),
        provider
    )
    .fetch_optional(conn)
    .await
}

/// Stores a grant. A missing refresh token or user id keeps the stored one; a new grant
/// clears `revoked_at`.
pub async fn save(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
    grant: NewGrant<'_>,
) -> sqlx::Result<StoredToken> {
    sqlx::query_file_as!(
        StoredToken,
        "src/store/grants/save.sql",
        participant.as_str(),
        provider,
        grant.provider_user_id,
        grant.access_token,
        grant.refresh_token,
        grant.expires_at,
        grant.scope
    )
    .fetch_one(conn)
    .await
}

/// Marks the grant revoked, so no worker tries it again before the participant re-consents.
pub async fn mark_revoked(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update oauth_tokens set revoked_at = coalesce(revoked_at, now()), updated_at = now()
         where participant_id = $1 and provider = $2",
        participant.as_str(),
        provider
    )
    .execute(conn)
    .await?;
    Ok(())
}
