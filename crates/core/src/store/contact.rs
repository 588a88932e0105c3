//! The contact outbox (`contact_requests`): a request is stored first, then e-mailed by a
//! background task that leases one due request at a time while it sends it, so several API
//! replicas never send one at the same time.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A stored request as the mailer needs it.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub id: i64,
    pub participant_id: String,
    pub requester_name: String,
    pub requester_email: String,
    pub subject: String,
    pub message: String,
    /// The claim's attempt number (1 for the first send).
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// A validated request to store.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    pub participant_id: &'a str,
    pub requester_name: &'a str,
    pub requester_email: &'a str,
    pub subject: &'a str,
    pub message: &'a str,
}

/// Stores a request as pending and returns its id.
pub async fn insert(db: impl PgExecutor<'_>, r: NewRequest<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "insert into contact_requests (participant_id, requester_name, requester_email, subject,
                                       message)
         values ($1, $2, $3, $4, $5) returning id",
        r.participant_id,
        r.requester_name,
        r.requester_email,
        r.subject,
        r.message
    )
    .fetch_one(db)
    .await
}

/// Claims the oldest due unsent request, if any: counts the attempt (its number is the claim's
/// token) and leases it for `lease_secs` (pushes its next attempt out) so no other replica takes
/// it meanwhile. One request at a time, claimed right before its send: a replica that dies holds
/// only the request it was sending, and only until the lease runs out.
pub async fn claim_next(
    db: impl PgExecutor<'_>,
    lease_secs: f64,
) -> sqlx::Result<Option<StoredRequest>> {
    sqlx::query_as!(
        StoredRequest,
        "update contact_requests c set attempts = attempts + 1,
                next_attempt_at = now() + make_interval(secs => $1)
         where id = (select id from contact_requests
                     where status <> 'sent' and next_attempt_at <= now()
                     order by next_attempt_at limit 1
                     for update skip locked)
         returning id, participant_id, requester_name, requester_email, subject, message,
                   attempts, created_at",
        lease_secs
    )
    .fetch_optional(db)
    .await
}

/// Extends the lease of a request being sent (the heartbeat of a slow send); false when the
/// claim `attempt` no longer holds it (the lease ran out and another replica claimed it, or it
/// was sent).
pub async fn renew_lease(
    db: impl PgExecutor<'_>,
    id: i64,
    attempt: i32,
    lease_secs: f64,
) -> sqlx::Result<bool> {
    let renewed = sqlx::query!(
        "update contact_requests set next_attempt_at = now() + make_interval(secs => $3)
         where id = $1 and attempts = $2 and status <> 'sent'",
        id,
        attempt,
        lease_secs
    )
    .execute(db)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Records a request as sent (the SMTP server accepted it), whoever holds its lease: an
/// accepted e-mail is never sent again.
pub async fn mark_sent(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "update contact_requests set status = 'sent', sent_at = now(),
                last_error = null where id = $1 and status <> 'sent'",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed send of claim `attempt`, to be retried after `retry_in_secs`; nothing when
/// that claim no longer holds the request (another replica took it over, or sent it).
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: i64,
    attempt: i32,
    error: &str,
    retry_in_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update contact_requests set status = 'failed', last_error = $3,
                next_attempt_at = now() + make_interval(secs => $4)
         where id = $1 and attempts = $2 and status <> 'sent'",
        id,
        attempt,
        error,
        retry_in_secs
    )
    .execute(db)
    .await?;
    Ok(())
}

/// When the next unsent request is due, if any.
pub async fn next_due(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("select min(next_attempt_at) from contact_requests where status <> 'sent'")
        .fetch_one(db)
        .await
}
