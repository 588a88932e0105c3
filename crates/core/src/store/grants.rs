//! OAuth grants (`oauth_tokens`): one per participant and provider, the tokens sealed under a
//! [`TokenKey`] with the participant, provider and column as associated data. Functions take a
//! connection so the caller owns the transaction (the refresh path holds a row lock across the
//! token endpoint call).
//!
//! Rows from before encryption hold plain text in `plain_access_token`/`plain_refresh_token`
//! until [`seal_plain`] seals them; the ingest calls it before anything else touches grants.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::crypto::{OpenError, SealedField, TokenKey};
use crate::error::Result;
use crate::participant::ParticipantId;

/// A stored grant, opened.
#[derive(Clone, PartialEq, Eq)]
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

/// Everything but the tokens, which would otherwise end up in logs and panic messages.
impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("participant_id", &self.participant_id)
            .field("provider", &self.provider)
            .field("provider_user_id", &self.provider_user_id)
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("revoked_at", &self.revoked_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A token answer to store.
#[derive(Clone, Copy)]
pub struct NewGrant<'a> {
    pub provider_user_id: Option<&'a str>,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub scope: Option<&'a str>,
}

/// Everything but the tokens.
impl fmt::Debug for NewGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewGrant")
            .field("provider_user_id", &self.provider_user_id)
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A row as stored: tokens sealed, or plain from before encryption.
struct Row {
    participant_id: String,
    provider: String,
    provider_user_id: Option<String>,
    plain_access_token: Option<String>,
    plain_refresh_token: Option<String>,
    access_token_sealed: Option<Vec<u8>>,
    refresh_token_sealed: Option<Vec<u8>>,
    token_key_id: Option<String>,
    expires_at: DateTime<Utc>,
    scope: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";

fn place<'a>(participant: &'a str, provider: &'a str, field: &'static str) -> SealedField<'a> {
    SealedField {
        participant,
        provider,
        field,
    }
}

impl Row {
    fn is_plain(&self) -> bool {
        self.plain_access_token.is_some() || self.plain_refresh_token.is_some()
    }

    /// The row with its tokens opened by `key`.
    fn open(self, key: &TokenKey) -> std::result::Result<StoredToken, OpenError> {
        let key_id = self.token_key_id.as_deref().unwrap_or("(none)");
        let open = |sealed: &Option<Vec<u8>>, plain: Option<String>, field| match sealed {
            Some(s) => key
                .open(
                    s,
                    key_id,
                    place(&self.participant_id, &self.provider, field),
                )
                .map(|t| Some(secrecy::ExposeSecret::expose_secret(&t).to_owned())),
            None => Ok(plain),
        };
        let access = open(
            &self.access_token_sealed,
            self.plain_access_token.clone(),
            ACCESS,
        )?;
        let refresh = open(
            &self.refresh_token_sealed,
            self.plain_refresh_token.clone(),
            REFRESH,
        )?;
        Ok(StoredToken {
            access_token: access.unwrap_or_default(),
            refresh_token: refresh,
            participant_id: self.participant_id,
            provider: self.provider,
            provider_user_id: self.provider_user_id,
            expires_at: self.expires_at,
            scope: self.scope,
            revoked_at: self.revoked_at,
            updated_at: self.updated_at,
        })
    }
}

/// The participant's grant, if any.
pub async fn load(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
) -> Result<Option<StoredToken>> {
    let row = sqlx::query_as!(
        Row,
        "select participant_id, provider, provider_user_id, plain_access_token,
                plain_refresh_token, access_token_sealed, refresh_token_sealed, token_key_id,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens where participant_id = $1 and provider = $2",
        participant.as_str(),
        provider
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.open(key)).transpose()?)
}

/// The grant, row-locked until the caller's transaction ends: the per-participant lock under
/// which a single-use refresh token is spent.
pub async fn load_for_update(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
) -> Result<Option<StoredToken>> {
    let row = sqlx::query_as!(
        Row,
        "select participant_id, provider, provider_user_id, plain_access_token,
                plain_refresh_token, access_token_sealed, refresh_token_sealed, token_key_id,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens where participant_id = $1 and provider = $2 for update",
        participant.as_str(),
        provider
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.open(key)).transpose()?)
}

/// Stores a grant sealed under `key`. A missing refresh token or user id keeps the stored one;
/// a new grant clears `revoked_at`.
pub async fn save(
    conn: &mut PgConnection,
    key: &TokenKey,
    participant: &ParticipantId,
    provider: &str,
    grant: NewGrant<'_>,
) -> Result<StoredToken> {
    // The kept refresh token is opened and sealed again rather than left in place, so the row
    // never mixes keys (or plain text) between its columns.
    let refresh = match grant.refresh_token {
        Some(t) => Some(t.to_owned()),
        None => load_for_update(conn, key, participant, provider)
            .await?
            .and_then(|t| t.refresh_token),
    };
    let at = |field| place(participant.as_str(), provider, field);
    let access_sealed = key.seal(grant.access_token, at(ACCESS));
    let refresh_sealed = refresh.as_deref().map(|t| key.seal(t, at(REFRESH)));
    let row = sqlx::query_file_as!(
        Row,
        "src/store/grants/save.sql",
        participant.as_str(),
        provider,
        grant.provider_user_id,
        access_sealed,
        refresh_sealed,
        key.id(),
        grant.expires_at,
        grant.scope
    )
    .fetch_one(conn)
    .await?;
    Ok(row.open(key)?)
}

/// Marks the grant revoked, so no worker tries it again before the participant re-consents.
pub async fn mark_revoked(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    provider: &str,
) -> Result<()> {
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

/// Seals every grant still held in plain text (rows from before encryption) under `key`.
/// Returns how many rows it sealed.
pub async fn seal_plain(conn: &mut PgConnection, key: &TokenKey) -> Result<u64> {
    let rows = sqlx::query_as!(
        Row,
        "select participant_id, provider, provider_user_id, plain_access_token,
                plain_refresh_token, access_token_sealed, refresh_token_sealed, token_key_id,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens
         where plain_access_token is not null or plain_refresh_token is not null
         for update"
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut sealed = 0;
    for row in rows {
        let token = row.open(key)?;
        write_sealed(conn, key, &token).await?;
        sealed += 1;
    }
    Ok(sealed)
}

/// Re-seals every grant under `new` (those sealed under `old`, those already under `new`, and
/// plain rows), in the caller's transaction, so a failure leaves every row as it was. Returns
/// how many rows were sealed again; a row neither key opens fails the whole rotation.
pub async fn rotate(conn: &mut PgConnection, old: &TokenKey, new: &TokenKey) -> Result<u64> {
    let rows = sqlx::query_as!(
        Row,
        "select participant_id, provider, provider_user_id, plain_access_token,
                plain_refresh_token, access_token_sealed, refresh_token_sealed, token_key_id,
                expires_at, scope, revoked_at, updated_at
         from oauth_tokens order by participant_id, provider for update"
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut count = 0;
    for row in rows {
        let already_new = !row.is_plain() && row.token_key_id.as_deref() == Some(new.id());
        let token = row.open(if already_new { new } else { old })?;
        write_sealed(conn, new, &token).await?;
        count += 1;
    }
    Ok(count)
}

/// Overwrites the row's tokens with `token`'s sealed under `key`, dropping any plain text.
async fn write_sealed(conn: &mut PgConnection, key: &TokenKey, token: &StoredToken) -> Result<()> {
    let at = |field| place(&token.participant_id, &token.provider, field);
    let access = key.seal(&token.access_token, at(ACCESS));
    let refresh = token
        .refresh_token
        .as_deref()
        .map(|t| key.seal(t, at(REFRESH)));
    sqlx::query!(
        "update oauth_tokens set access_token_sealed = $3, refresh_token_sealed = $4,
                token_key_id = $5, plain_access_token = null, plain_refresh_token = null
         where participant_id = $1 and provider = $2",
        token.participant_id,
        token.provider,
        access,
        refresh,
        key.id()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many grants still hold plain text.
pub async fn count_plain(conn: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select count(*) as "n!" from oauth_tokens
           where plain_access_token is not null or plain_refresh_token is not null"#
    )
    .fetch_one(conn)
    .await?)
}
