//! Valid access tokens on demand. Refresh tokens are single-use, so a refresh happens under
//! the participant's `oauth_tokens` row lock (`select … for update`): the row is re-read once
//! the lock is held (another worker may have refreshed meanwhile, and then its token is used),
//! the token endpoint is called, and the new pair is committed before anyone uses it.
//!
//! The token being spent is recorded (sealed, committed on its own connection) before the
//! call and forgotten in the statement that stores the new pair. If the process dies in
//! between, the next refresh finds the record, sends the same token again (a provider with a
//! grace period for identical refreshes answers with the same new pair), and only if that is
//! refused marks the participant for re-consent, saying the refresh was cut off.

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::participants;

use super::{OAuthClient, OAuthError, REFRESH_MARGIN, store};

/// Hands out access tokens for one provider's participants.
#[derive(Debug, Clone)]
pub struct TokenManager {
    pool: PgPool,
    client: Arc<OAuthClient>,
    key: TokenKey,
}

impl TokenManager {
    /// A manager storing grants in `pool`, sealed under `key`, and refreshing them through
    /// `client`.
    pub fn new(pool: PgPool, client: Arc<OAuthClient>, key: TokenKey) -> Self {
        TokenManager { pool, client, key }
    }

    /// The key grants are sealed under (enrolment stores new grants with it).
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// The OAuth client.
    pub fn client(&self) -> &OAuthClient {
        &self.client
    }

    fn provider(&self) -> &'static str {
        self.client.config().provider
    }

    /// An access token valid for at least [`REFRESH_MARGIN`], refreshing first when needed.
    pub async fn access_token(&self, participant: &ParticipantId) -> Result<String, OAuthError> {
        let mut conn = self.pool.acquire().await?;
        let row = store::load(&mut conn, &self.key, participant, self.provider())
            .await?
            .ok_or(OAuthError::NotEnrolled {
                provider: self.provider(),
            })?;
        drop(conn);
        if row.revoked_at.is_some() {
            return Err(OAuthError::InvalidGrant("the grant was revoked".into()));
        }
        if row.expires_at > Utc::now() + REFRESH_MARGIN {
            return Ok(row.access_token);
        }
        self.refresh_locked(participant, None).await
    }

    /// A replacement for `rejected`, an access token the provider answered `expired_token`
    /// to. When another worker already replaced it, that worker's token is returned.
    pub async fn replace_rejected(
        &self,
        participant: &ParticipantId,
        rejected: &str,
    ) -> Result<String, OAuthError> {
        self.refresh_locked(participant, Some(rejected)).await
    }

    async fn refresh_locked(
        &self,
        participant: &ParticipantId,
        rejected: Option<&str>,
    ) -> Result<String, OAuthError> {
        let provider = self.provider();
        let mut tx = self.pool.begin().await?;
        let row = store::load_for_update(&mut tx, &self.key, participant, provider)
            .await?
            .ok_or(OAuthError::NotEnrolled { provider })?;
        if row.revoked_at.is_some() {
            return Err(OAuthError::InvalidGrant("the grant was revoked".into()));
        }
        let fresh = row.expires_at > Utc::now() + REFRESH_MARGIN;
        let replaced = rejected.is_none_or(|t| t != row.access_token);
        if fresh && replaced {
            // Someone refreshed while we waited for the lock (or the clock said so).
            tx.commit().await?;
            return Ok(row.access_token);
        }
        let Some(refresh_token) = row.refresh_token.as_deref() else {
            let reason = "no refresh token stored";
            self.record_invalid_grant(&mut tx, participant, reason)
                .await?;
            tx.commit().await?;
            return Err(OAuthError::InvalidGrant(reason.into()));
        };
        // A record of this very token means an earlier refresh sent it and its answer was
        // never stored (the process died, or the answer was lost): the request below is then
        // the identical one again, which a provider replaying refreshes within a grace period
        // answers with the pair it rotated to. A record of another token is from a grant
        // since replaced, and is overwritten.
        let cut_off = store::in_flight(&mut tx, &self.key, participant, provider)
            .await?
            .filter(|f| f.refresh_token.as_deref() == Some(refresh_token))
            .map(|f| f.started_at);
        if let Some(started_at) = cut_off {
            tracing::warn!(participant = %participant, provider, %started_at, "an earlier refresh with the stored token was cut off before its answer was stored; sending it again");
        }
        store::record_in_flight(&self.pool, &self.key, participant, provider, refresh_token)
            .await?;
        match self.client.refresh(refresh_token).await {
            Ok(tokens) => {
                store::save_refreshed(
                    &mut tx,
                    &self.key,
                    participant,
                    provider,
                    &tokens,
                    refresh_token,
                    Utc::now(),
                )
                .await?;
                tx.commit().await?;
                if cut_off.is_some() {
                    tracing::info!(participant = %participant, provider, "the provider replayed the cut-off refresh; grant recovered");
                } else {
                    tracing::info!(participant = %participant, provider, "access token refreshed");
                }
                Ok(tokens.access_token)
            }
            Err(OAuthError::InvalidGrant(answer)) => {
                let reason = match cut_off {
                    Some(started_at) => format!(
                        "a refresh started at {} was cut off before its new tokens were \
                         stored, and sending it again was refused ({answer}); the provider \
                         rotated the refresh token and does not replay the refresh",
                        started_at.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                    None => answer,
                };
                self.record_invalid_grant(&mut tx, participant, &reason)
                    .await?;
                store::clear_in_flight(&mut tx, participant, provider).await?;
                tx.commit().await?;
                tracing::warn!(participant = %participant, provider, %reason, "refresh rejected; participant needs re-consent");
                Err(OAuthError::InvalidGrant(reason))
            }
            Err(e) => {
                // The provider may have rotated the token before the failure: the record
                // stays, and the next refresh sends the same token again.
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn record_invalid_grant(
        &self,
        conn: &mut sqlx::PgConnection,
        participant: &ParticipantId,
        reason: &str,
    ) -> Result<(), OAuthError> {
        store::mark_revoked(conn, participant, self.provider()).await?;
        participants::set_needs_reconsent(
            conn,
            participant,
            Some(&format!("{}: {reason}", self.provider())),
        )
        .await?;
        Ok(())
    }

    /// Records that the provider rejected the participant's grant outright (an `invalid_token`
    /// answer to a data call): the grant is marked revoked and the participant as needing
    /// re-consent.
    pub async fn mark_needs_reconsent(
        &self,
        participant: &ParticipantId,
        reason: &str,
    ) -> Result<(), OAuthError> {
        let mut tx = self.pool.begin().await?;
        self.record_invalid_grant(&mut tx, participant, reason)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes the participant's grant at the provider (every token of it) and marks it
    /// revoked here. Used when a participant withdraws or moves to another provider.
    pub async fn revoke(&self, participant: &ParticipantId) -> Result<(), OAuthError> {
        let provider = self.provider();
        let mut tx = self.pool.begin().await?;
        let row = store::load_for_update(&mut tx, &self.key, participant, provider)
            .await?
            .ok_or(OAuthError::NotEnrolled { provider })?;
        if row.revoked_at.is_none() {
            let token = row.refresh_token.as_deref().unwrap_or(&row.access_token);
            match self.client.revoke(token).await {
                // Already dead at the provider: the goal is reached.
                Ok(()) | Err(OAuthError::InvalidGrant(_)) => {}
                Err(e) => return Err(e),
            }
            store::mark_revoked(&mut tx, participant, provider).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
