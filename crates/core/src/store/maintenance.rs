//! The database's upkeep as operations watch it: its size, connections and relations, and
//! TimescaleDB's background jobs (compression, continuous-aggregate refresh, the adherence
//! job) with the scheduler's statistics next to the runs the ingest daemon made itself
//! (`db_job_runs`, see `WEARHOUSE_RUN_DB_JOBS`).
//!
//! The TimescaleDB catalogue exists only where the extension is installed, so its queries are
//! checked at run time (`sqlx::query_as`), not against the prepared plain-PostgreSQL schema.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};

use super::{Backend, BackendKind};

/// Job ids below this are TimescaleDB's own (telemetry, job-history retention), not ours.
const FIRST_USER_JOB_ID: i32 = 1000;

/// Size, activity and compression backlog of the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbStats {
    pub size_bytes: i64,
    /// Bytes on disk per relation of the schema, indexes and TOAST included; a hypertable or
    /// continuous aggregate counts its chunks, compressed ones included.
    pub relations: Vec<(String, i64)>,
    /// Sessions connected to this database, by `pg_stat_activity.state` (`background` for
    /// workers without one).
    pub connections: Vec<(String, i64)>,
    pub max_connections: i64,
    /// Per relation with a compression policy: chunks wholly older than the policy's
    /// `compress_after` that are still uncompressed (TimescaleDB only).
    pub awaiting_compression: Vec<(String, i64)>,
}

/// Reads [`DbStats`].
pub async fn stats(conn: &mut PgConnection, backend: &Backend) -> sqlx::Result<DbStats> {
    let size_bytes =
        sqlx::query_scalar!(r#"select pg_database_size(current_database()) as "size!""#)
            .fetch_one(&mut *conn)
            .await?;
    let mut relations: Vec<(String, i64)> = sqlx::query!(
        r#"select c.relname::text as "name!", pg_total_relation_size(c.oid) as "bytes!"
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = current_schema() and c.relkind in ('r', 'p', 'm')
            order by 1"#
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.name, r.bytes))
    .collect();
    let connections = sqlx::query!(
        r#"select coalesce(state, 'background') as "state!", count(*) as "sessions!"
             from pg_stat_activity where datname = current_database()
            group by 1 order by 1"#
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.state, r.sessions))
    .collect();
    let max_connections =
        sqlx::query_scalar!(r#"select current_setting('max_connections')::bigint as "n!""#)
            .fetch_one(&mut *conn)
            .await?;
    let mut awaiting_compression = Vec::new();
    if backend.timescaledb_version.is_some() {
        // A hypertable's parent is empty: its size is its chunks'. A continuous aggregate is
        // a view: its size is its materialisation's, reported under the view's name.
        let sizes: Vec<(String, i64)> = sqlx::query_as(
            "select coalesce(ca.user_view_name, h.table_name)::text,
                    coalesce(hypertable_size(format('%I.%I', h.schema_name, h.table_name)::regclass), 0)
               from _timescaledb_catalog.hypertable h
               left join _timescaledb_catalog.continuous_agg ca on ca.mat_hypertable_id = h.id
              where h.compression_state <> 2",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (name, bytes) in sizes {
            match relations.iter_mut().find(|(n, _)| *n == name) {
                Some(r) => r.1 = bytes,
                None => relations.push((name, bytes)),
            }
        }
        relations.sort();
        if backend.kind == BackendKind::Timescaledb {
            awaiting_compression = sqlx::query_as(
                "select coalesce(ca.user_view_name, h.table_name)::text,
                        count(c.chunk_name) filter (
                          where not c.is_compressed
                            and c.range_end < now() - (j.config->>'compress_after')::interval)
                   from _timescaledb_config.bgw_job j
                   join _timescaledb_catalog.hypertable h on h.id = j.hypertable_id
                   left join _timescaledb_catalog.continuous_agg ca on ca.mat_hypertable_id = h.id
                   left join timescaledb_information.chunks c
                     on c.hypertable_schema = h.schema_name and c.hypertable_name = h.table_name
                  where j.proc_name = 'policy_compression'
                    and j.config ? 'compress_after'
                    and jsonb_typeof(j.config->'compress_after') = 'string'
                  group by 1 order by 1",
            )
            .fetch_all(&mut *conn)
            .await?;
        }
    }
    Ok(DbStats {
        size_bytes,
        relations,
        connections,
        max_connections,
        awaiting_compression,
    })
}

/// One of the database's background jobs, with what both runners recorded of it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct DbJob {
    pub job_id: i32,
    /// The procedure it calls: `policy_compression`, `policy_refresh_continuous_aggregate`,
    /// `adherence_refresh_job`, …
    pub proc_name: String,
    /// The hypertable or continuous aggregate it works on, if any.
    pub relation: Option<String>,
    pub schedule_interval_secs: f64,
    /// How long the scheduler waits before retrying a failed run.
    pub retry_period_secs: f64,
    /// False when the job is paused (`alter_job(…, scheduled => false)`).
    pub scheduled: bool,
    /// The TimescaleDB scheduler's statistics.
    pub scheduler_last_success: Option<DateTime<Utc>>,
    pub scheduler_last_run_failed: bool,
    pub scheduler_consecutive_failures: i32,
    pub scheduler_next_start: Option<DateTime<Utc>>,
    /// The ingest daemon's runs (`db_job_runs`).
    pub daemon_last_start: Option<DateTime<Utc>>,
    pub daemon_last_finish: Option<DateTime<Utc>>,
    pub daemon_last_success: Option<DateTime<Utc>>,
    pub daemon_consecutive_failures: i32,
    pub daemon_last_error: Option<String>,
}

impl DbJob {
    /// The last successful run by either runner.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.scheduler_last_success.max(self.daemon_last_success)
    }

    /// A short name for logs and metric labels: `policy_compression(raw_data)`.
    pub fn label(&self) -> String {
        match &self.relation {
            Some(r) => format!("{}({r})", self.proc_name),
            None => self.proc_name.clone(),
        }
    }
}

/// The database's own background jobs (none without TimescaleDB).
pub async fn jobs(conn: &mut PgConnection, backend: &Backend) -> sqlx::Result<Vec<DbJob>> {
    if backend.timescaledb_version.is_none() {
        return Ok(Vec::new());
    }
    // The statistics keep '-infinity' for "never"; that is None here.
    sqlx::query_as(
        "select j.id as job_id, j.proc_name::text as proc_name,
                coalesce(ca.user_view_name, h.table_name)::text as relation,
                extract(epoch from j.schedule_interval)::float8 as schedule_interval_secs,
                extract(epoch from j.retry_period)::float8 as retry_period_secs,
                j.scheduled,
                case when s.last_successful_finish > '-infinity'
                     then s.last_successful_finish end as scheduler_last_success,
                coalesce(s.last_finish > '-infinity' and not s.last_run_success, false)
                  as scheduler_last_run_failed,
                coalesce(s.consecutive_failures, 0) as scheduler_consecutive_failures,
                case when s.next_start > '-infinity' then s.next_start end as scheduler_next_start,
                d.last_start as daemon_last_start, d.last_finish as daemon_last_finish,
                d.last_success as daemon_last_success,
                coalesce(d.consecutive_failures, 0) as daemon_consecutive_failures,
                d.last_error as daemon_last_error
           from _timescaledb_config.bgw_job j
           left join _timescaledb_catalog.hypertable h on h.id = j.hypertable_id
           left join _timescaledb_catalog.continuous_agg ca on ca.mat_hypertable_id = j.hypertable_id
           left join _timescaledb_internal.bgw_job_stat s on s.job_id = j.id
           left join db_job_runs d on d.job_id = j.id
          where j.id >= $1
          order by j.id",
    )
    .bind(FIRST_USER_JOB_ID)
    .fetch_all(&mut *conn)
    .await
}

/// Whether TimescaleDB's scheduler is running for this database (its background worker is
/// connected). Without `pg_monitor` (or superuser) another role's workers are invisible, so
/// the answer is then false.
pub async fn scheduler_running(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (
             select from pg_stat_activity
              where datname = current_database()
                and backend_type = 'TimescaleDB Background Worker Scheduler') as "running!""#
    )
    .fetch_one(&mut *conn)
    .await
}

/// Runs job `job_id` now, in this session, as TimescaleDB's `run_job` does: the caller must
/// own the job (the login that ran the migrations), and the connection must not be inside a
/// transaction, since the policies commit as they go.
pub async fn run_job(conn: &mut PgConnection, job_id: i32) -> sqlx::Result<()> {
    sqlx::query("call run_job($1)")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that the daemon starts job `job_id`.
pub async fn record_start(conn: &mut PgConnection, job_id: i32) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into db_job_runs (job_id, last_start, total_runs) values ($1, now(), 1)
         on conflict (job_id) do update
           set last_start = now(), total_runs = db_job_runs.total_runs + 1",
        job_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records how the daemon's run of `job_id` ended: `error` is None on success.
pub async fn record_finish(
    conn: &mut PgConnection,
    job_id: i32,
    error: Option<&str>,
) -> sqlx::Result<()> {
    // An error message is kept short: it is for the operator's first look, not a log.
    let error = error.map(|e| e.chars().take(1_000).collect::<String>());
    sqlx::query!(
        "update db_job_runs
            set last_finish = now(),
                last_success = case when $2::text is null then now() else last_success end,
                consecutive_failures = case when $2::text is null then 0
                                            else consecutive_failures + 1 end,
                total_failures = total_failures + (case when $2::text is null then 0 else 1 end),
                last_error = $2
          where job_id = $1",
        job_id,
        error
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Tries to take the session lock that lets one process run job `job_id` at a time (a
/// second daemon replica skips the job); released with [`unlock_job`] or the session's end.
pub async fn try_lock_job(conn: &mut PgConnection, job_id: i32) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select pg_try_advisory_lock(hashtext('wearhouse.db_job'), $1) as "locked!""#,
        job_id
    )
    .fetch_one(&mut *conn)
    .await
}

/// Releases the lock taken by [`try_lock_job`].
pub async fn unlock_job(conn: &mut PgConnection, job_id: i32) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"select pg_advisory_unlock(hashtext('wearhouse.db_job'), $1) as "unlocked!""#,
        job_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}
