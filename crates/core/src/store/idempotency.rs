//! Idempotency keys of the API's creating requests: claimed before the request runs, answered
//! once it has (see the `idempotency_keys` migration). A key is per user; it lasts
//! [`KEY_LIFETIME_HOURS`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// How long a key and its answer are kept.
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Header names and values, as sent the first time.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a key holds when a request claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or expired): the request runs, then [`answer`] or [`release`].
    New,
    /// The same request ran before: its answer.
    Replay(Answer),
    /// The key was used for a different request.
    Mismatch,
    /// The same request is running now, since the instant given.
    Running(DateTime<Utc>),
}

/// Claims `key` of `user_id` for a request hashing to `request_hash`. Keys older than the
/// lifetime are forgotten first, and so is an unanswered claim older than `abandoned_secs`
/// (its request was cut off).
pub async fn claim(
    conn: &mut PgConnection,
    user_id: i64,
    key: &str,
    request_hash: &[u8],
    abandoned_secs: i64,
) -> Result<Claim> {
    sqlx::query!(
        "delete from idempotency_keys
         where created_at < now() - make_interval(hours => $1::int)
            or (user_id = $2 and key = $3 and status is null
                and created_at < now() - make_interval(secs => $4::float8))",
        KEY_LIFETIME_HOURS as i32,
        user_id,
        key,
        abandoned_secs as f64,
    )
    .execute(&mut *conn)
    .await?;
    // A key forgotten between the insert and the select is claimed again.
    loop {
        let inserted = sqlx::query_scalar!(
            "insert into idempotency_keys (user_id, key, request_hash) values ($1, $2, $3)
             on conflict do nothing
             returning true as \"inserted!\"",
            user_id,
            key,
            request_hash,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if inserted.is_some() {
            return Ok(Claim::New);
        }
        let Some(row) = sqlx::query!(
            "select request_hash, status, headers, body, created_at
             from idempotency_keys where user_id = $1 and key = $2",
            user_id,
            key,
        )
        .fetch_optional(&mut *conn)
        .await?
        else {
            continue;
        };
        if row.request_hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        let Some(status) = row.status else {
            return Ok(Claim::Running(row.created_at));
        };
        let headers = row
            .headers
            .and_then(|h| serde_json::from_value(h).ok())
            .unwrap_or_default();
        return Ok(Claim::Replay(Answer {
            status: status as u16,
            headers,
            body: row.body.unwrap_or_default(),
        }));
    }
}

/// Stores the answer to a claimed key.
pub async fn answer(
    conn: &mut PgConnection,
    user_id: i64,
    key: &str,
    answer: &Answer,
) -> Result<()> {
    sqlx::query!(
        "update idempotency_keys set status = $3, headers = $4, body = $5
         where user_id = $1 and key = $2",
        user_id,
        key,
        answer.status as i16,
        serde_json::json!(answer.headers),
        answer.body,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives up a claimed key without an answer (the request failed in a way a retry may not),
/// so that a retry runs again.
pub async fn release(conn: &mut PgConnection, user_id: i64, key: &str) -> Result<()> {
    sqlx::query!(
        "delete from idempotency_keys where user_id = $1 and key = $2 and status is null",
        user_id,
        key,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
