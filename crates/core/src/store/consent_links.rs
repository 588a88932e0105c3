//! Consent links: a coordinator's single-use, expiring link that starts a participant's consent
//! at a provider. The random token is handed out once; only its SHA-256 is stored (like API
//! tokens, see [`super::credentials`]). The API creates, lists and revokes links; the ingest
//! daemon opens one ([`by_token`]) and claims it ([`claim`]) in the transaction that stores
//! the grant, so a link serves exactly one consent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use super::credentials;
use crate::error::Result;

/// The providers a link can start a consent at, as stored.
pub const PROVIDERS: &[&str] = &["fitbit", "google-health"];

/// A stored link (never its token).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub link_id: i64,
    pub participant_id: String,
    pub provider: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub allow_account_change: bool,
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Usable until it expires.
    Open,
    Used,
    Revoked,
    Expired,
}

impl LinkState {
    /// The state's name, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Open => "open",
            LinkState::Used => "used",
            LinkState::Revoked => "revoked",
            LinkState::Expired => "expired",
        }
    }
}

impl Link {
    /// Where the link stands at `now` (used and revoked win over expired: they say more).
    pub fn state(&self, now: DateTime<Utc>) -> LinkState {
        if self.used_at.is_some() {
            LinkState::Used
        } else if self.revoked_at.is_some() {
            LinkState::Revoked
        } else if self.expires_at <= now {
            LinkState::Expired
        } else {
            LinkState::Open
        }
    }
}

/// What a new link is for.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub participant_id: &'a str,
    /// One of [`PROVIDERS`].
    pub provider: &'a str,
    pub created_by: Option<i64>,
    pub expires_at: DateTime<Utc>,
    pub allow_account_change: bool,
}

/// A fresh token: 256 random bits, URL-safe, so it can stand in a path.
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates a link and returns it with its token (the only time the token exists outside the
/// participant's hands).
pub async fn create(conn: &mut PgConnection, new: &NewLink<'_>) -> Result<(Link, String)> {
    let token = token();
    let link = sqlx::query_as!(
        Link,
        "insert into consent_links
           (token_hash, participant_id, provider, created_by, expires_at, allow_account_change)
         values ($1, $2, $3, $4, $5, $6)
         returning link_id, participant_id, provider, created_by, created_at, expires_at,
                   used_at, revoked_at, allow_account_change",
        credentials::hash(&token),
        new.participant_id,
        new.provider,
        new.created_by,
        new.expires_at,
        new.allow_account_change
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((link, token))
}

/// The participant's links, newest first.
pub async fn list(conn: &mut PgConnection, participant_id: &str) -> Result<Vec<Link>> {
    Ok(sqlx::query_as!(
        Link,
        "select link_id, participant_id, provider, created_by, created_at, expires_at, used_at,
                revoked_at, allow_account_change
         from consent_links where participant_id = $1 order by created_at desc, link_id desc",
        participant_id
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// One of the participant's links.
pub async fn get(
    conn: &mut PgConnection,
    participant_id: &str,
    link_id: i64,
) -> Result<Option<Link>> {
    Ok(sqlx::query_as!(
        Link,
        "select link_id, participant_id, provider, created_by, created_at, expires_at, used_at,
                revoked_at, allow_account_change
         from consent_links where participant_id = $1 and link_id = $2",
        participant_id,
        link_id
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Revokes one of the participant's links if it is unused and not yet revoked; returns the
/// link as it now stands (`None`: no such link of this participant).
pub async fn revoke(
    conn: &mut PgConnection,
    participant_id: &str,
    link_id: i64,
) -> Result<Option<Link>> {
    sqlx::query!(
        "update consent_links set revoked_at = now()
         where participant_id = $1 and link_id = $2 and used_at is null and revoked_at is null",
        participant_id,
        link_id
    )
    .execute(&mut *conn)
    .await?;
    get(conn, participant_id, link_id).await
}

/// A link looked up by its token, with what decides whether it may still be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub link: Link,
    /// The participant's `status` (a withdrawn participant's links are dead).
    pub participant_status: String,
    pub study_id: String,
}

/// The link whose token this is, if any.
pub async fn by_token(db: impl PgExecutor<'_>, token: &str) -> Result<Option<Opened>> {
    let row = sqlx::query!(
        "select l.link_id, l.participant_id, l.provider, l.created_by, l.created_at, l.expires_at,
                l.used_at, l.revoked_at, l.allow_account_change,
                p.status as participant_status, p.study_id
         from consent_links l join participants p using (participant_id)
         where l.token_hash = $1",
        credentials::hash(token)
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Opened {
        link: Link {
            link_id: r.link_id,
            participant_id: r.participant_id,
            provider: r.provider,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            revoked_at: r.revoked_at,
            allow_account_change: r.allow_account_change,
        },
        participant_status: r.participant_status,
        study_id: r.study_id,
    }))
}

/// Why a link cannot complete a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such link for this participant and provider.
    Unknown,
    Used,
    Revoked,
    /// The participant was withdrawn after the link was opened.
    Withdrawn,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The link is now used (in the caller's transaction; rolled back with it).
    Claimed(Link),
    Refused(Refusal),
}

/// Marks the link used, if it is unused, not revoked and its participant not withdrawn. Run it
/// in the transaction that stores the grant: the row stays locked until that commits, so of
/// two consents through one link the second finds it used. Expiry is checked when the link is
/// opened, not here: a participant who opened it in time may finish at the provider (the
/// signed state bounds that to an hour).
pub async fn claim(
    conn: &mut PgConnection,
    link_id: i64,
    participant_id: &str,
    provider: &str,
) -> Result<Claim> {
    let claimed = sqlx::query_as!(
        Link,
        "update consent_links l set used_at = now()
         where link_id = $1 and participant_id = $2 and provider = $3
           and used_at is null and revoked_at is null
           and exists (select 1 from participants p
                       where p.participant_id = l.participant_id and p.status <> 'withdrawn')
         returning link_id, participant_id, provider, created_by, created_at, expires_at,
                   used_at, revoked_at, allow_account_change",
        link_id,
        participant_id,
        provider
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(link) = claimed {
        return Ok(Claim::Claimed(link));
    }
    let why = sqlx::query!(
        "select l.used_at, l.revoked_at, p.status
         from consent_links l join participants p using (participant_id)
         where l.link_id = $1 and l.participant_id = $2 and l.provider = $3",
        link_id,
        participant_id,
        provider
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(Claim::Refused(match why {
        None => Refusal::Unknown,
        Some(r) if r.used_at.is_some() => Refusal::Used,
        Some(r) if r.revoked_at.is_some() => Refusal::Revoked,
        Some(_) => Refusal::Withdrawn,
    }))
}
