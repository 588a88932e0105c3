//! The SQL of imputation: the job queue (`imputation_jobs`), reading a range of `raw_data`
//! onto a regular grid, and writing a job's output to `imputed_data`. `raw_data` is only ever
//! read here.
//!
//! A job row is its own lease: a worker that takes a job sets `worker`, bumps `attempts` and
//! keeps `heartbeat_at` fresh. A running job whose heartbeat is older than the lease belongs
//! to a worker that died and may be taken again; `(worker, attempts)` is the fencing token, so
//! a worker that lost its lease cannot write over the output of the one that took over.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;
use wearhouse_core::store::participants;
use wearhouse_core::{Error, Metric, ParticipantId, TimeRange};

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct JobRecord {
    pub id: Uuid,
    pub participant_id: String,
    pub data_type: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
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

const COLUMNS: &str = "id, participant_id, data_type, range_start, range_end, status, method, \
     parameters, summary, error, attempts, worker, created_at, started_at, heartbeat_at, \
     finished_at";

/// 404 unless the participant is enrolled.
async fn check_participant(conn: &mut PgConnection, p: &ParticipantId) -> Result<(), Error> {
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
pub async fn queue(conn: &mut PgConnection, job: &NewJob) -> Result<JobRecord, Error> {
    check_participant(conn, &job.participant).await?;
    Ok(sqlx::query_as(&format!(
        "insert into imputation_jobs (id, participant_id, data_type, range_start, range_end)
         values ($1, $2, $3, $4, $5) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(job.participant.as_str())
    .bind(job.metric.name())
    .bind(job.range.start)
    .bind(job.range.end)
    .fetch_one(conn)
    .await?)
}

/// Queues a job already claimed by `worker`, so that no other worker takes it while the
/// caller runs it in-process (it is taken again only if the caller stops heartbeating).
pub async fn queue_claimed(
    conn: &mut PgConnection,
    job: &NewJob,
    worker: &str,
) -> Result<Claim, Error> {
    check_participant(conn, &job.participant).await?;
    let job: JobRecord = sqlx::query_as(&format!(
        "insert into imputation_jobs (id, participant_id, data_type, range_start, range_end,
                                      status, worker, attempts, started_at, heartbeat_at)
         values ($1, $2, $3, $4, $5, 'running', $6, 1, now(), now()) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(job.participant.as_str())
    .bind(job.metric.name())
    .bind(job.range.start)
    .bind(job.range.end)
    .bind(worker)
    .fetch_one(conn)
    .await?;
    Ok(Claim {
        job,
        worker: worker.to_owned(),
    })
}

/// A job by id.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRecord>, Error> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from imputation_jobs where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Puts a finished (or failed) job back in the queue, to be run again; its output is
/// replaced when it runs. Returns false when there is no such job or it is running.
pub async fn requeue(conn: &mut PgConnection, id: Uuid) -> Result<bool, Error> {
    let done = sqlx::query(
        "update imputation_jobs
         set status = 'queued', attempts = 0, worker = null, error = null, started_at = null,
             heartbeat_at = null, finished_at = null
         where id = $1 and status in ('succeeded', 'failed')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        // Requeueing is an update, which the insert trigger does not see.
        sqlx::query("select pg_notify('imputation_jobs', $1)")
            .bind(id.to_string())
            .execute(conn)
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
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "update imputation_jobs
         set status = 'failed', finished_at = now(),
             error = format('gave up after %s attempts: worker %s stopped sending heartbeats',
                            attempts, worker)
         where status = 'running' and heartbeat_at < now() - $1 and attempts >= $2",
    )
    .bind(lease)
    .bind(max_attempts)
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
) -> Result<Option<Claim>, Error> {
    let job: Option<JobRecord> = sqlx::query_as(
        "with next as (
           select id from imputation_jobs
           where status = 'queued'
              or (status = 'running' and heartbeat_at < now() - $2 and attempts < $3)
           order by created_at, id
           limit 1
           for update skip locked
         )
         update imputation_jobs j
         set status = 'running', worker = $1, attempts = j.attempts + 1, started_at = now(),
             heartbeat_at = now(), error = null
         from next where j.id = next.id
         returning j.*",
    )
    .bind(worker)
    .bind(lease)
    .bind(max_attempts)
    .fetch_optional(conn)
    .await?;
    Ok(job.map(|job| Claim {
        job,
        worker: worker.to_owned(),
    }))
}

/// Refreshes the lease. False means the job is no longer this claim's (another worker took it
/// after the lease expired), and the caller's result will be discarded.
pub async fn heartbeat(conn: &mut PgConnection, claim: &Claim) -> Result<bool, Error> {
    Ok(sqlx::query(
        "update imputation_jobs set heartbeat_at = now()
         where id = $1 and worker = $2 and attempts = $3 and status = 'running'",
    )
    .bind(claim.job.id)
    .bind(&claim.worker)
    .bind(claim.attempt())
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Locks the job row for the finishing transaction if the claim still holds it.
pub async fn lock_claim(conn: &mut PgConnection, claim: &Claim) -> Result<bool, Error> {
    Ok(sqlx::query_scalar::<_, i32>(
        "select 1 from imputation_jobs
         where id = $1 and worker = $2 and attempts = $3 and status = 'running' for update",
    )
    .bind(claim.job.id)
    .bind(&claim.worker)
    .bind(claim.attempt())
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
) -> Result<(), Error> {
    sqlx::query(
        "update imputation_jobs
         set status = 'succeeded', method = $2, parameters = $3, summary = $4, error = null,
             finished_at = now(), heartbeat_at = now()
         where id = $1",
    )
    .bind(claim.job.id)
    .bind(method)
    .bind(parameters)
    .bind(summary)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the claimed job failed with `error`, if the claim still holds it.
pub async fn mark_failed(conn: &mut PgConnection, claim: &Claim, error: &str) -> Result<(), Error> {
    sqlx::query(
        "update imputation_jobs
         set status = 'failed', error = $4, finished_at = now()
         where id = $1 and worker = $2 and attempts = $3 and status = 'running'",
    )
    .bind(claim.job.id)
    .bind(&claim.worker)
    .bind(claim.attempt())
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Jobs not finished (queued or running), for the queue-depth gauge.
pub async fn queue_depth(conn: &mut PgConnection) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "select count(*) from imputation_jobs where status in ('queued', 'running')",
    )
    .fetch_one(conn)
    .await?)
}

/// Latest sample time of one metric of one participant, if any.
pub async fn last_sample(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    metric: Metric,
) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(sqlx::query_scalar(
        "select max(timestamp) from raw_data where participant_id = $1 and data_type = $2",
    )
    .bind(participant.as_str())
    .bind(metric.name())
    .fetch_one(conn)
    .await?)
}

/// How samples inside one grid interval become the interval's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Mean (continuous signals such as heart rate).
    Mean,
    /// Sum (counts such as steps).
    Sum,
    /// The last sample (labels such as sleep stages).
    Last,
}

/// One grid interval that has data.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Bucket {
    pub bucket: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub value_text: Option<String>,
}

/// The intervals of `[range)` on a grid of `step` aligned to 2000-01-01 UTC (so grids of
/// different jobs line up with each other and with the rollups) that hold at least one sample.
pub async fn read_buckets(
    conn: &mut PgConnection,
    participant: &str,
    metric: Metric,
    range: TimeRange,
    step: TimeDelta,
    aggregate: Aggregate,
) -> Result<Vec<Bucket>, Error> {
    let value = match aggregate {
        Aggregate::Mean => "avg(value_numeric) as value_numeric, null::text as value_text",
        Aggregate::Sum => "sum(value_numeric) as value_numeric, null::text as value_text",
        Aggregate::Last => {
            "(array_agg(value_numeric order by timestamp desc))[1] as value_numeric, \
             (array_agg(value_text order by timestamp desc))[1] as value_text"
        }
    };
    Ok(sqlx::query_as(&format!(
        "select date_bin($5, timestamp, timestamptz '2000-01-01 00:00:00+00') as bucket,
                {value}
         from raw_data
         where participant_id = $1 and data_type = $2 and timestamp >= $3 and timestamp < $4
           and (value_numeric is not null or value_text is not null)
         group by 1 order by 1"
    ))
    .bind(participant)
    .bind(metric.name())
    .bind(range.start)
    .bind(range.end)
    .bind(step)
    .fetch_all(conn)
    .await?)
}

/// One row of a job's output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub timestamp: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub value_text: Option<String>,
    pub is_imputed: bool,
}

/// Replaces the job's output in `imputed_data` with `rows`. Only rows carrying this job's id
/// are deleted, so other jobs' output (even over the same range) stays.
pub async fn replace_output(
    conn: &mut PgConnection,
    job: &JobRecord,
    method: &str,
    rows: &[OutputRow],
) -> Result<u64, Error> {
    sqlx::query("delete from imputed_data where job_id = $1")
        .bind(job.id)
        .execute(&mut *conn)
        .await?;
    let mut written = 0;
    // One statement per chunk of arrays: a week of minutes is ten thousand rows, and the
    // bound parameters stay few.
    for chunk in rows.chunks(20_000) {
        let ts: Vec<DateTime<Utc>> = chunk.iter().map(|r| r.timestamp).collect();
        let num: Vec<Option<f64>> = chunk.iter().map(|r| r.value_numeric).collect();
        let text: Vec<Option<String>> = chunk.iter().map(|r| r.value_text.clone()).collect();
        let imputed: Vec<bool> = chunk.iter().map(|r| r.is_imputed).collect();
        written += sqlx::query(
            "insert into imputed_data (timestamp, participant_id, data_type, value_numeric,
                                       value_text, is_imputed, method, job_id)
             select t, $5, $6, v, s, i, $7, $8
             from unnest($1::timestamptz[], $2::float8[], $3::text[], $4::bool[]) as u(t, v, s, i)",
        )
        .bind(&ts)
        .bind(&num)
        .bind(&text)
        .bind(&imputed)
        .bind(&job.participant_id)
        .bind(&job.data_type)
        .bind(method)
        .bind(job.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(written)
}

/// Claims one existing job by id for `worker`, to run it again in-process (its output is
/// replaced). `None` when there is no such job or another worker is running it.
pub async fn claim_by_id(
    conn: &mut PgConnection,
    id: Uuid,
    worker: &str,
    lease: TimeDelta,
) -> Result<Option<Claim>, Error> {
    let job: Option<JobRecord> = sqlx::query_as(
        "update imputation_jobs
         set status = 'running', worker = $2, attempts = 1, started_at = now(),
             heartbeat_at = now(), finished_at = null, error = null
         where id = $1 and (status <> 'running' or heartbeat_at < now() - $3)
         returning *",
    )
    .bind(id)
    .bind(worker)
    .bind(lease)
    .fetch_optional(conn)
    .await?;
    Ok(job.map(|job| Claim {
        job,
        worker: worker.to_owned(),
    }))
}
