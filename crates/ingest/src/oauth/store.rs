//! The participant's grants as the OAuth code sees them: token answers sealed and stored
//! through [`wearhouse_core::store::grants`]. Functions take a connection so the caller owns
//! the transaction (the refresh path holds a row lock across the token endpoint call).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::grants::{self, NewGrant};
pub use wearhouse_core::store::grants::{
    StoredToken, load, load_for_update, mark_revoked, rotate, seal_plain,
};

use super::TokenResponse;

/// Stores a token answer received at `now`, sealed under `key`. A missing refresh token or
/// user id keeps the stored one; a new grant clears `revoked_at`.
pub async fn save(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
    tokens: &TokenResponse,
    now: DateTime<Utc>,
) -> wearhouse_core::error::Result<StoredToken> {
    let expires_at = now + chrono::Duration::seconds(tokens.expires_in.max(0));
    grants::save(
        conn,
        key,
        participant,
        provider,
        NewGrant {
            provider_user_id: tokens.user_id.as_deref(),
            access_token: &tokens.access_token,
            refresh_token: tokens.refresh_token.as_deref(),
            expires_at,
            scope: tokens.scope.as_deref(),
        },
    )
    .await
}
