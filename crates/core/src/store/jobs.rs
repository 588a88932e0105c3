//! The imputation job queue (`imputation_jobs`): the API queues and reads jobs, the impute
//! worker claims, heartbeats and finishes them.
//!
//! A job row is its own lease: a worker that takes a job sets `worker`, bumps `attempts` and
//! keeps `heartbeat_at` fresh. A running job whose heartbeat is older than the lease belongs
//! to a worker that died and may be taken again; `(worker, attempts)` is the fencing token, so
//! a worker that lost its lease cannot write over the output of the one that took over.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::participant::ParticipantId;
use crate::store::participants;
use crate::time::TimeRange;

/// Where a job stands; stored as the text of `imputation_jobs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds the job's lease.
    Running,
    /// Done; its output is in `imputed_data`.
    Succeeded,
    /// Given up; `error` says why.
    Failed,
}

impl JobStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    /// Whether the job will not change any more without a requeue.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// Compares with the stored text, as logs and API answers spell it.
impl PartialEq<&str> for JobStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub participant_id: String,
    pub data_type: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    pub status: JobStatus,
    pub method: Option<String>,
    pub parameters: Option<serde_json::Value>,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub worker: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Longest range one job imputes. The model is fitted to the whole range on the metric's grid
/// (1 minute for heart rate: 132,480 points for 92 days), and the fit's time grows with it
/// (about 2 s per participant-day when the order is chosen over the default grid, see
/// docs/benchmarks.md, "Imputation"): a quarter keeps one job within minutes and its worker
/// free for the others; a longer span is several jobs.
pub const MAX_RANGE_DAYS: i64 = 92;

/// Refuses a range longer than [`MAX_RANGE_DAYS`]; the error names `end_parameter`.
pub fn check_range(range: &TimeRange, end_parameter: &'static str) -> Result<()> {
    if range.end - range.start > TimeDelta::days(MAX_RANGE_DAYS) {
        return Err(Error::invalid(
            end_parameter,
            format!(
                "[{}, {}) is longer than the {MAX_RANGE_DAYS} days one imputation job covers; \
                 split it into several jobs",
                range.start.to_rfc3339(),
                range.end.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// What to impute: one metric of one participant over `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub participant: ParticipantId,
    pub metric: Metric,
    pub range: TimeRange,
}

/// What the claimer holds while it runs a job: the job and its fencing token.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: JobRecord,
    pub worker: String,
}

impl Claim {
    /// The attempt this claim is; a later claim by another worker has a higher one.
    pub fn attempt(&self) -> i32 {
        self.job.attempts
    }
}

/// 404 unless the participant is enrolled.
async fn check_participant(conn: &mut PgConnection, p: &ParticipantId) -> Result<()> {
    let found = participants::existing(conn, std::slice::from_ref(p)).await?;
    if found.is_empty() {
        return Err(Error::NotFound {
            what: "participant",
            id: p.to_string(),
        });
    }
    Ok(())
}

/// Queues a job for any worker; the insert trigger NOTIFYs `imputation_jobs` at commit.
pub async fn queue(conn: &mut PgConnection, job: &NewJob) -> Result<JobRecord> {
    check_participant(conn, &job.participant).await?;
    Ok(sqlx::query_file_as!(
        JobRecord,
        "src/store/jobs/queue.sql",
        Uuid::new_v4(),
        job.participant.as_str(),
        job.metric.name(),
        job.range.start,
        job.range.end,
    )
    .fetch_one(conn)
    .await?)
}

/// Queues a job already claimed by `worker`, so that no other worker takes it while the
/// caller runs it in-process (it is taken again only if the caller stops heartbeating).
pub async fn queue_claimed(conn: &mut PgConnection, job: &NewJob, worker: &str) -> Result<Claim> {
    check_participant(conn, &job.participant).await?;
    let job = sqlx::query_file_as!(
        JobRecord,
        "src/store/jobs/queue_claimed.sql",
        Uuid::new_v4(),
        job.participant.as_str(),
        job.metric.name(),
        job.range.start,
        job.range.end,
        worker,
    )
    .fetch_one(conn)
    .await?;
    Ok(Claim {
        job,
        worker: worker.to_owned(),
    })
}

/// A job by id.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRecord>> {
    Ok(
        sqlx::query_file_as!(JobRecord, "src/store/jobs/get.sql", id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Puts a finished (or failed) job back in the queue, to be run again; its output is
/// replaced when it runs. Returns false when there is no such job or it is running.
pub async fn requeue(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let done = sqlx::query!(
        "update imputation_jobs
         set status = 'queued', attempts = 0, worker = null, error = null, started_at = null,
             heartbeat_at = null, finished_at = null
         where id = $1 and status in ('succeeded', 'failed')",
        id
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        // Requeueing is an update, which the insert trigger does not see.
        sqlx::query_scalar!(
            r#"select true as "notified!" from pg_notify('imputation_jobs', $1)"#,
            id.to_string()
        )
        .fetch_one(conn)
        .await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Fails the running jobs whose worker stopped heartbeating after their last allowed attempt,
/// so they do not sit in `running` forever. Returns how many.
pub async fn fail_abandoned(
    conn: &mut PgConnection,
    lease: TimeDelta,
    max_attempts: i32,
) -> Result<u64> {
    Ok(sqlx::query!(
        "update imputation_jobs
         set status = 'failed', finished_at = now(),
             error = format('gave up after %s attempts: worker %s stopped sending heartbeats',
                            attempts, worker)
         where status = 'running' and heartbeat_at < now() - $1::interval and attempts >= $2",
        lease as _,
        max_attempts
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Takes the oldest queued job, or a running one whose lease expired with attempts left,
/// for `worker`. `skip locked` lets concurrent claimers pass over each other's candidate
/// instead of queueing behind it, so two workers never take the same job.
pub async fn claim(
    conn: &mut PgConnection,
    worker: &str,
    lease: TimeDelta,
    max_attempts: i32,
) -> Result<Option<Claim>> {
    let job = sqlx::query_file_as!(
        JobRecord,
        "src/store/jobs/claim.sql",
        worker,
        lease as _,
        max_attempts
    )
    .fetch_optional(conn)
    .await?;
    Ok(job.map(|job| Claim {
        job,
        worker: worker.to_owned(),
    }))
}

/// Claims one existing job by id for `worker`, to run it again in-process (its output is
/// replaced). `None` when there is no such job or another worker is running it.
pub async fn claim_by_id(
    conn: &mut PgConnection,
    id: Uuid,
    worker: &str,
    lease: TimeDelta,
) -> Result<Option<Claim>> {
    let job = sqlx::query_file_as!(
        JobRecord,
        "src/store/jobs/claim_by_id.sql",
        id,
        worker,
        lease as _
    )
    .fetch_optional(conn)
    .await?;
    Ok(job.map(|job| Claim {
        job,
        worker: worker.to_owned(),
    }))
}

/// Refreshes the lease. False means the job is no longer this claim's (another worker took it
/// after the lease expired), and the caller's result will be discarded.
pub async fn heartbeat(conn: &mut PgConnection, claim: &Claim) -> Result<bool> {
    Ok(sqlx::query!(
        "update imputation_jobs set heartbeat_at = now()
         where id = $1 and worker = $2 and attempts = $3 and status = 'running'",
        claim.job.id,
        claim.worker,
        claim.attempt()
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Locks the job row for the finishing transaction if the claim still holds it.
pub async fn lock_claim(conn: &mut PgConnection, claim: &Claim) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        "select 1 as held from imputation_jobs
         where id = $1 and worker = $2 and attempts = $3 and status = 'running' for update",
        claim.job.id,
        claim.worker,
        claim.attempt()
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Marks the claimed job succeeded with its method, parameters and summary.
pub async fn mark_succeeded(
    conn: &mut PgConnection,
    claim: &Claim,
    method: &str,
    parameters: &serde_json::Value,
    summary: &serde_json::Value,
) -> Result<()> {
    sqlx::query!(
        "update imputation_jobs
         set status = 'succeeded', method = $2, parameters = $3, summary = $4, error = null,
             finished_at = now(), heartbeat_at = now()
         where id = $1",
        claim.job.id,
        method,
        parameters,
        summary
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the claimed job failed with `error`, if the claim still holds it.
pub async fn mark_failed(conn: &mut PgConnection, claim: &Claim, error: &str) -> Result<()> {
    sqlx::query!(
        "update imputation_jobs
         set status = 'failed', error = $4, finished_at = now()
         where id = $1 and worker = $2 and attempts = $3 and status = 'running'",
        claim.job.id,
        claim.worker,
        claim.attempt(),
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Jobs not finished (queued or running), for the queue-depth gauge.
pub async fn queue_depth(conn: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select count(*) as "n!" from imputation_jobs where status in ('queued', 'running')"#
    )
    .fetch_one(conn)
    .await?)
}
