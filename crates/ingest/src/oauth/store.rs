//! The participant's grants as the OAuth code sees them: token answers sealed and stored
//! through [`wearhouse_core::store::grants`]. Functions take a connection so the caller owns
//! the transaction (the refresh path holds a row lock across the token endpoint call).
//!
//! The refresh token in flight (`oauth_refresh_in_flight`) is recorded before it is sent and
//! forgotten in the statement that stores its answer, so a refresh cut off by a crash is known
//! to the next one.

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection, PgPool};
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::{SealedField, TokenKey};
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

/// The associated data of a sealed refresh token: the same as `oauth_tokens.refresh_token`'s,
/// since the token in flight is that column's value.
fn refresh_place<'a>(participant: &'a ParticipantId, provider: &'a str) -> SealedField<'a> {
    SealedField {
        participant: participant.as_str(),
        provider,
        field: "refresh_token",
    }
}

/// A refresh token recorded as sent to the provider, whose answer was never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct InFlight {
    /// `None` when the record was sealed under a key that is no longer loaded.
    pub refresh_token: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// Everything but the token.
impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("started_at", &self.started_at)
            .finish()
    }
}

/// The refresh of the participant's grant that was sent and never stored, if any.
pub async fn in_flight(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
) -> wearhouse_core::error::Result<Option<InFlight>> {
    let row: Option<(Vec<u8>, String, DateTime<Utc>)> = sqlx::query_as(
        "select refresh_token_sealed, token_key_id, started_at from oauth_refresh_in_flight
         where participant_id = $1 and provider = $2",
    )
    .bind(participant.as_str())
    .bind(provider)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(sealed, key_id, started_at)| {
        let refresh_token = match key.open(&sealed, &key_id, refresh_place(participant, provider)) {
            Ok(t) => Some(secrecy::ExposeSecret::expose_secret(&t).to_owned()),
            Err(e) => {
                tracing::warn!(participant = %participant, provider, error = %e, "the refresh token in flight cannot be opened with the loaded key");
                None
            }
        };
        InFlight {
            refresh_token,
            started_at,
        }
    }))
}

/// Records `refresh_token` as about to be sent, committed at once on a connection of its own
/// (the caller's transaction holds the grant's row lock until the answer is stored, and a
/// crash rolls it back). The connection waits at most `LOCK_WAIT` for a lock, so a cycle
/// with the caller's lock (a participant being erased meanwhile) fails the refresh instead
/// of hanging it.
pub async fn record_in_flight(
    pool: &PgPool,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
    refresh_token: &str,
) -> wearhouse_core::error::Result<()> {
    const LOCK_WAIT: &str = "10s";
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("lock_timeout", LOCK_WAIT)]);
    let mut conn = PgConnection::connect_with(&options).await?;
    let sealed = key.seal(refresh_token, refresh_place(participant, provider));
    sqlx::query(
        "insert into oauth_refresh_in_flight (participant_id, provider, refresh_token_sealed,
                                              token_key_id, started_at)
         values ($1, $2, $3, $4, now())
         on conflict (participant_id, provider) do update set
           refresh_token_sealed = excluded.refresh_token_sealed,
           token_key_id = excluded.token_key_id,
           started_at = excluded.started_at",
    )
    .bind(participant.as_str())
    .bind(provider)
    .bind(sealed)
    .bind(key.id())
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// Forgets the refresh in flight (its answer was stored, or refused).
pub async fn clear_in_flight(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> wearhouse_core::error::Result<()> {
    sqlx::query("delete from oauth_refresh_in_flight where participant_id = $1 and provider = $2")
        .bind(participant.as_str())
        .bind(provider)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores the answer to a refresh received at `now` and forgets the refresh in flight, in one
/// statement: nothing else runs between the provider's answer and the new pair being written.
/// `kept_refresh` is the stored refresh token, kept when the answer has none (Google). Returns
/// the new access token.
pub async fn save_refreshed(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
    tokens: &TokenResponse,
    kept_refresh: &str,
    now: DateTime<Utc>,
) -> wearhouse_core::error::Result<()> {
    let expires_at = now + chrono::Duration::seconds(tokens.expires_in.max(0));
    let access_sealed = key.seal(
        &tokens.access_token,
        SealedField {
            field: "access_token",
            ..refresh_place(participant, provider)
        },
    );
    let refresh = tokens.refresh_token.as_deref().unwrap_or(kept_refresh);
    let refresh_sealed = key.seal(refresh, refresh_place(participant, provider));
    sqlx::query(
        "with cleared as (
           delete from oauth_refresh_in_flight where participant_id = $1 and provider = $2
         )
         update oauth_tokens set
           provider_user_id = coalesce($3, provider_user_id),
           plain_access_token = null,
           plain_refresh_token = null,
           access_token_sealed = $4,
           refresh_token_sealed = $5,
           token_key_id = $6,
           expires_at = $7,
           scope = coalesce($8, scope),
           revoked_at = null,
           updated_at = now()
         where participant_id = $1 and provider = $2",
    )
    .bind(participant.as_str())
    .bind(provider)
    .bind(tokens.user_id.as_deref())
    .bind(access_sealed)
    .bind(refresh_sealed)
    .bind(key.id())
    .bind(expires_at)
    .bind(tokens.scope.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}
