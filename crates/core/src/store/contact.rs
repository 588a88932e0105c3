//! The contact outbox (`contact_requests`): a request is stored first, then e-mailed by a
//! background task that leases due requests, so several API replicas never send one twice.

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
    pub attempts: i32,
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

/// Claims up to 20 due unsent requests, oldest due first, counting the attempt and pushing
/// their next attempt out by the lease (five minutes) so no other replica takes them meanwhile.
pub async fn claim_due(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredRequest>> {
    sqlx::query_as!(
        StoredRequest,
        "update contact_requests c set attempts = attempts + 1,
                next_attempt_at = now() + interval '5 minutes'
         where id in (select id from contact_requests
                      where status <> 'sent' and next_attempt_at <= now()
                      order by next_attempt_at limit 20
                      for update skip locked)
         returning id, participant_id, requester_name, requester_email, subject, message,
                   attempts"
    )
    .fetch_all(db)
    .await
}

/// Records a request as sent.
pub async fn mark_sent(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "update contact_requests set status = 'sent', sent_at = now(),
                last_error = null where id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed send, to be retried after `retry_in_secs`.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: i64,
    error: &str,
    retry_in_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update contact_requests set status = 'failed', last_error = $2,
                next_attempt_at = now() + make_interval(secs => $3)
         where id = $1",
        id,
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
