//! Sign-in sessions and API tokens. Both are random 256-bit secrets handed to the client once;
//! only their SHA-256 hashes are stored, so reading the database does not yield a usable
//! credential. (A fast hash is enough here: the secrets are random, not chosen by people.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;

use crate::error::{Error, Result};

/// What every API token starts with, so a leaked one is recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "wh_";

/// A fresh secret, URL-safe.
fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Limits on a session's life.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Ends after this long without a request.
    pub idle: chrono::Duration,
    /// Ends this long after sign-in, however active.
    pub lifetime: chrono::Duration,
}

/// Starts a session for the user and returns its secret (the cookie's value).
pub async fn start_session(
    conn: &mut PgConnection,
    user_id: i64,
    client_addr: Option<&str>,
) -> Result<String> {
    let secret = secret();
    sqlx::query!(
        "insert into sessions (session_hash, user_id, client_addr) values ($1, $2, $3)",
        hash(&secret),
        user_id,
        client_addr
    )
    .execute(&mut *conn)
    .await?;
    Ok(secret)
}

/// The user of a live session, noting this use (at most every 30 s, so that a read stays a
/// read: the idle limit is then kept to within 30 s); `None` when the secret is unknown, the
/// session ended, sat idle too long or outlived its lifetime, or the user is disabled.
pub async fn resume_session(
    conn: &mut PgConnection,
    secret: &str,
    limits: SessionLimits,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar!(
        r#"with live as (
             select s.session_hash, s.user_id, s.last_seen_at
             from sessions s join users u on u.user_id = s.user_id
             where s.session_hash = $1 and u.disabled_at is null and s.ended_at is null
               and s.last_seen_at > now() - $2::interval
               and s.created_at > now() - $3::interval),
           touched as (
             update sessions set last_seen_at = now() from live
             where sessions.session_hash = live.session_hash
               and live.last_seen_at < now() - interval '30 seconds')
           select user_id as "user_id!" from live"#,
        hash(secret),
        to_interval(limits.idle),
        to_interval(limits.lifetime)
    )
    .fetch_optional(&mut *conn)
    .await?)
}

fn to_interval(d: chrono::Duration) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: d.num_microseconds().unwrap_or(i64::MAX),
    }
}

/// Ends the session (sign-out). Returns its user when it was live.
pub async fn end_session(conn: &mut PgConnection, secret: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar!(
        "update sessions set ended_at = now() where session_hash = $1 and ended_at is null
         returning user_id",
        hash(secret)
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    pub token_id: i64,
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Creates a token for the user and returns it with its secret, which is shown only now.
pub async fn create_token(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(Token, String)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid(
            "name",
            "a token needs a name of 1 to 100 characters",
        ));
    }
    let secret = format!("{TOKEN_PREFIX}{}", secret());
    let id = sqlx::query_scalar!(
        "insert into api_tokens (user_id, name, token_hash, expires_at) values ($1, $2, $3, $4)
         on conflict (user_id, name) do nothing returning token_id",
        user_id,
        name,
        hash(&secret),
        expires_at
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        Error::invalid(
            "name",
            format!("this user has a token named {name:?} already; pick another name or revoke it"),
        )
    })?;
    let token = tokens(conn, Some(user_id))
        .await?
        .into_iter()
        .find(|t| t.token_id == id)
        .expect("the token just created");
    Ok((token, secret))
}

/// The user and name of a usable token, noting its use at most once a minute; `None` when the secret is unknown,
/// revoked, expired, or its user disabled.
pub async fn resolve_token(conn: &mut PgConnection, secret: &str) -> Result<Option<(i64, String)>> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"with live as (
             select t.token_id, t.user_id, t.name, t.last_used_at
             from api_tokens t join users u on u.user_id = t.user_id
             where t.token_hash = $1 and u.disabled_at is null and t.revoked_at is null
               and (t.expires_at is null or t.expires_at > now())),
           touched as (
             update api_tokens set last_used_at = now() from live
             where api_tokens.token_id = live.token_id
               and (live.last_used_at is null or live.last_used_at < now() - interval '1 minute'))
           select user_id as "user_id!", name as "name!" from live"#,
        hash(secret)
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (r.user_id, r.name)))
}

/// The tokens of one user, or of everyone, newest first.
pub async fn tokens(conn: &mut PgConnection, user_id: Option<i64>) -> Result<Vec<Token>> {
    Ok(sqlx::query_as!(
        Token,
        "select t.token_id, t.user_id, u.email, t.name, t.created_at, t.expires_at,
                t.revoked_at, t.last_used_at
         from api_tokens t join users u using (user_id)
         where $1::bigint is null or t.user_id = $1
         order by t.created_at desc, t.token_id desc",
        user_id
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Revokes the user's token of this name; an unknown or already revoked name is an error.
pub async fn revoke_token(conn: &mut PgConnection, user_id: i64, name: &str) -> Result<()> {
    let done = sqlx::query!(
        "update api_tokens set revoked_at = now()
         where user_id = $1 and name = $2 and revoked_at is null",
        user_id,
        name
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(Error::NotFound {
            what: "live token",
            id: name.to_owned(),
        });
    }
    Ok(())
}
