//! The `oauth_tokens` table: one grant per participant and provider. Functions take a
//! connection so the caller owns the transaction (the refresh path holds a row lock across the
//! token endpoint call).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use wearhouse_core::ParticipantId;

use super::TokenResponse;

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
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

const COLUMNS: &str = "participant_id, provider, provider_user_id, access_token, refresh_token, \
                       expires_at, scope, revoked_at, updated_at";

/// The participant's grant, if any.
pub async fn load(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> sqlx::Result<Option<StoredToken>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from oauth_tokens where participant_id = $1 and provider = $2"
    ))
    .bind(participant.as_str())
    .bind(provider)
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
    sqlx::query_as(&format!(
        "select {COLUMNS} from oauth_tokens where participant_id = $1 and provider = $2 for update"
    ))
    .bind(participant.as_str())
    .bind(provider)
    .fetch_optional(conn)
    .await
}

/// Stores a token answer received at `now`. A missing refresh token or user id keeps the
/// stored one; a new grant clears `revoked_at`.
pub async fn save(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
    tokens: &TokenResponse,
    now: DateTime<Utc>,
) -> sqlx::Result<StoredToken> {
    let expires_at = now + chrono::Duration::seconds(tokens.expires_in.max(0));
    sqlx::query_as(&format!(
        "insert into oauth_tokens (participant_id, provider, provider_user_id, access_token,
                                   refresh_token, expires_at, scope, revoked_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, null, now())
         on conflict (participant_id, provider) do update set
           provider_user_id = coalesce(excluded.provider_user_id, oauth_tokens.provider_user_id),
           access_token = excluded.access_token,
           refresh_token = coalesce(excluded.refresh_token, oauth_tokens.refresh_token),
           expires_at = excluded.expires_at,
           scope = coalesce(excluded.scope, oauth_tokens.scope),
           revoked_at = null,
           updated_at = now()
         returning {COLUMNS}"
    ))
    .bind(participant.as_str())
    .bind(provider)
    .bind(&tokens.user_id)
    .bind(&tokens.access_token)
    .bind(&tokens.refresh_token)
    .bind(expires_at)
    .bind(&tokens.scope)
    .fetch_one(conn)
    .await
}

/// Marks the grant revoked, so no worker tries it again before the participant re-consents.
pub async fn mark_revoked(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update oauth_tokens set revoked_at = coalesce(revoked_at, now()), updated_at = now()
         where participant_id = $1 and provider = $2",
    )
    .bind(participant.as_str())
    .bind(provider)
    .execute(conn)
    .await?;
    Ok(())
}
