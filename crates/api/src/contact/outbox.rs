//! The contact outbox: a request is stored first, then e-mailed by a background task. A failed
//! send is recorded (`status = 'failed'`, `attempts`, `last_error`) and retried with doubling
//! back-off from `next_attempt_at`; nothing is dropped. Several API replicas can run the task:
//! a request is leased (its next attempt pushed out) in the same statement that claims it, with
//! `for update skip locked`, so only one replica sends it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::contact::{self, NewRequest};

use super::form::ValidRequest;
use super::mailer::Mailer;

/// Longest wait between retries.
const MAX_BACKOFF_SECS: u64 = 3_600;
/// Longest sleep of the worker when nothing is due (it also wakes on new requests).
const IDLE_POLL: Duration = Duration::from_secs(30);

pub use wearhouse_core::store::contact::StoredRequest;

/// Stores a validated request as pending and returns its id.
pub async fn store(db: impl sqlx::PgExecutor<'_>, r: &ValidRequest) -> Result<i64, sqlx::Error> {
    contact::insert(
        db,
        NewRequest {
            participant_id: &r.participant_id,
            requester_name: &r.requester_name,
            requester_email: &r.requester_email,
            subject: &r.subject,
            message: &r.message,
        },
    )
    .await
}

/// The outbox worker's parts: database, mailer, retry timing and the wake-up signal.
pub struct Outbox {
    pub pool: PgPool,
    pub mailer: Mailer,
    pub retry_base: Duration,
    pub wake: Notify,
}

impl Outbox {
    /// Seconds until the next retry after `attempts` failed sends.
    fn backoff_secs(&self, attempts: i32) -> u64 {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        self.retry_base
            .as_secs()
            .max(1)
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF_SECS)
    }

    /// Sends every due request once; returns how many were sent.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        let due = contact::claim_due(&self.pool).await?;
        let mut sent = 0;
        for r in due {
            match self.mailer.send(&r).await {
                Ok(()) => {
                    contact::mark_sent(&self.pool, r.id).await?;
                    tracing::info!(
                        request = r.id,
                        attempts = r.attempts,
                        "contact request e-mailed"
                    );
                    sent += 1;
                }
                Err(e) => {
                    let wait = self.backoff_secs(r.attempts);
                    tracing::warn!(request = r.id, attempts = r.attempts, retry_in_secs = wait, error = %e, "contact e-mail failed; will retry");
                    contact::mark_failed(&self.pool, r.id, &e.to_string(), wait as f64).await?;
                }
            }
        }
        Ok(sent)
    }

    /// When the next unsent request is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        contact::next_due(&self.pool).await
    }

    /// Delivers until `shutdown`, sleeping until the next request is due or a new one arrives.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let wait = match self.deliver_due().await {
                Ok(_) => match self.next_due().await {
                    Ok(Some(at)) => (at - Utc::now())
                        .to_std()
                        .unwrap_or(Duration::from_millis(100))
                        .clamp(Duration::from_millis(100), IDLE_POLL),
                    Ok(None) => IDLE_POLL,
                    Err(_) => Duration::from_secs(5),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "contact outbox cannot reach the database");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The e-mail of a contact request: to the coordinator, with the requester as Reply-To.
impl From<&StoredRequest> for super::mailer::Letter {
    fn from(r: &StoredRequest) -> Self {
        super::mailer::Letter {
            subject: format!(
                "[wearhouse] Contact request for participant {}: {}",
                r.participant_id, r.subject
            ),
            reply_to: Some((r.requester_name.clone(), r.requester_email.clone())),
            body: format!(
                "A researcher asked to contact participant {participant}.\n\n\
                 Request: #{id}\nFrom: {name} <{email}>\nSubject: {subject}\n\n{message}\n",
                participant = r.participant_id,
                id = r.id,
                name = r.requester_name,
                email = r.requester_email,
                subject = r.subject,
                message = r.message,
            ),
        }
    }
}
