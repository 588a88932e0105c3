//! The contact outbox: a request is stored first, then e-mailed by a background task. A failed
//! send is recorded (`status = 'failed'`, `attempts`, `last_error`) and retried with doubling
//! back-off from `next_attempt_at`; nothing is dropped.
//!
//! Several API replicas can run the task. A replica claims one due request at a time, right
//! before sending it, in a statement that counts the attempt and leases the request
//! (`next_attempt_at` pushed out by the lease, [`DEFAULT_LEASE_SECS`]) with `for update skip
//! locked`, so only one replica sends it. While a slow SMTP server keeps the send going, the
//! sender renews the lease every third of it; when it finds the lease taken over it abandons the
//! send. A replica that dies therefore holds only the request it was sending, and only until
//! the lease runs out; the rest stay due for the others.
//!
//! Delivery is at least once. Once the SMTP server accepted a message, the request is marked
//! `sent` in its own statement, on a connection held for the purpose, and a request marked
//! `sent` is never sent again. One window remains: a replica that dies (or loses the database)
//! between the server's acceptance and that statement leaves the request unsent in the table,
//! and it is e-mailed again when its lease runs out. SMTP cannot close that window: it has no
//! idempotency key, and the accepting reply can be lost on the way back however the sender
//! records it. (A sender cut off from the database for longer than the lease cannot renew it
//! either; another replica may then send the request while the first is still sending it.) The
//! message's `Message-ID` is derived from the request (its id and creation time), so the copies
//! carry the same one and a receiving mail system can recognise the second as a duplicate.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::contact::{self, NewRequest};

use super::form::ValidRequest;
use super::mailer::Mailer;

/// Default lease of a request being sent (`WEARHOUSE_CONTACT_LEASE_SECS`): how long a replica
/// that dies mid-send delays that one request. It outlasts the SMTP timeout of one command
/// (20 s), and is renewed while a send takes longer.
pub const DEFAULT_LEASE_SECS: u64 = 30;
/// Tries to record an accepted send when the held connection fails.
const MARK_SENT_TRIES: u32 = 3;
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

/// The outbox worker's parts: database, mailer, lease and retry timing and the wake-up signal.
pub struct Outbox {
    pub pool: PgPool,
    pub mailer: Mailer,
    pub retry_base: Duration,
    /// How long a claimed request stays reserved for this replica unless renewed.
    pub lease: Duration,
    pub wake: Notify,
}

/// How one claimed request ended.
enum Outcome {
    Sent,
    Failed,
    /// The lease ran out (the database was out of reach) and another replica claimed it.
    TakenOver,
}

impl Outbox {
    /// An outbox with the lease and retry timing of `args`.
    pub fn new(pool: PgPool, mailer: Mailer, args: &super::settings::ContactArgs) -> Self {
        Outbox {
            pool,
            mailer,
            retry_base: Duration::from_secs(args.contact_retry_secs),
            lease: Duration::from_secs(args.contact_lease_secs.max(1)),
            wake: Notify::new(),
        }
    }

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

    /// Sends every due request once, one at a time; returns how many were sent.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        self.deliver_until(&CancellationToken::new()).await
    }

    /// [`Self::deliver_due`], stopping between requests once `stop` is cancelled.
    async fn deliver_until(&self, stop: &CancellationToken) -> Result<usize, sqlx::Error> {
        let mut sent = 0;
        while !stop.is_cancelled() {
            match self.deliver_next().await? {
                None => break,
                Some(Outcome::Sent) => sent += 1,
                Some(Outcome::Failed | Outcome::TakenOver) => {}
            }
        }
        Ok(sent)
    }

    /// Claims the next due request and sends it, renewing its lease while the send runs.
    async fn deliver_next(&self) -> Result<Option<Outcome>, sqlx::Error> {
        let lease = self.lease.as_secs_f64();
        // One connection for the claim, the heartbeat and the mark: an accepted send is
        // recorded at once, without waiting for a free connection in the pool.
        let mut conn = self.pool.acquire().await?;
        let Some(r) = contact::claim_next(&mut *conn, lease).await? else {
            return Ok(None);
        };
        let send = self.mailer.send(&r);
        tokio::pin!(send);
        let every = (self.lease / 3).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // The renewal runs to its end while the send waits (a select arm's body is not
        // cancelled), so the held connection never sees a query dropped half-way.
        let result = loop {
            tokio::select! {
                result = &mut send => break result,
                _ = beat.tick() => match contact::renew_lease(&mut *conn, r.id, r.attempts, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(request = r.id, attempts = r.attempts, "contact request taken over by another replica; abandoning its send");
                        return Ok(Some(Outcome::TakenOver));
                    }
                    Err(e) => {
                        tracing::warn!(request = r.id, error = %e, "cannot renew the lease of a contact request being sent");
                    }
                },
            }
        };
        match result {
            Ok(()) => {
                self.mark_sent(&mut conn, &r).await?;
                tracing::info!(
                    request = r.id,
                    attempts = r.attempts,
                    "contact request e-mailed"
                );
                Ok(Some(Outcome::Sent))
            }
            Err(e) => {
                let wait = self.backoff_secs(r.attempts);
                tracing::warn!(request = r.id, attempts = r.attempts, retry_in_secs = wait, error = %e, "contact e-mail failed; will retry");
                contact::mark_failed(&mut *conn, r.id, r.attempts, &e.to_string(), wait as f64)
                    .await?;
                Ok(Some(Outcome::Failed))
            }
        }
    }

    /// Records an accepted send: on the held connection, else on fresh ones from the pool, a
    /// second apart. Until it is recorded, the request would be e-mailed again after its lease.
    async fn mark_sent(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
        r: &StoredRequest,
    ) -> Result<(), sqlx::Error> {
        let mut result = contact::mark_sent(&mut **conn, r.id).await;
        for _ in 1..MARK_SENT_TRIES {
            let Err(e) = &result else { break };
            tracing::warn!(request = r.id, error = %e, "cannot record an accepted contact e-mail; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            result = contact::mark_sent(&self.pool, r.id).await;
        }
        if let Err(e) = &result {
            tracing::error!(request = r.id, error = %e, "an accepted contact e-mail is not recorded as sent; it will be e-mailed again");
        }
        result
    }

    /// When the next unsent request is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        contact::next_due(&self.pool).await
    }

    /// Delivers until `shutdown`, sleeping until the next request is due or a new one arrives.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let wait = match self.deliver_until(&shutdown).await {
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
            message_id: Some(format!(
                "contact-request.{}.{}",
                r.id,
                r.created_at.timestamp_micros()
            )),
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
