//! The database's upkeep, watched and kept going by the ingest daemon.
//!
//! Every `--db-jobs-check-secs` the daemon reads the database's size, relations, connections,
//! compression backlog and TimescaleDB's background jobs into its `/metrics` (the
//! `wearhouse_database_*` family, watched by `monitoring/rules/database.yml`).
//!
//! TimescaleDB runs its policies (compression, continuous-aggregate refresh, the adherence job)
//! from its own scheduler. Where that scheduler cannot run them (on some PostgreSQL releases
//! every background job fails; or the server runs no scheduler for the database) nothing would
//! compress or refresh, silently. `WEARHOUSE_RUN_DB_JOBS` decides whether the daemon runs the
//! due policies itself with `CALL run_job(id)` in a session of its own:
//! - `auto` (default): a job is taken over while no scheduler runs for the database, the
//!   scheduler's last [`SCHEDULER_FAILURES`] runs of it failed, or it is overdue by more than
//!   [`OVERDUE_GRACE`]; handed back once the scheduler runs it again.
//! - `true`: every scheduled job, whatever the scheduler does.
//! - `false`: never (metrics only).
//!
//! `run_job` works as the job's owner (the login that ran the migrations), so this session
//! uses the configured login without the daemon's `SET ROLE`. `run_job` records nothing in
//! TimescaleDB's job statistics, so the daemon records its runs in `db_job_runs`, which also
//! says when a job is next due after a restart; an advisory lock per job keeps a second
//! replica from running the same job at the same time.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::maintenance::{self, DbJob, DbStats};
use wearhouse_core::store::{self, Backend};
use wearhouse_core::telemetry::MetricsRegistry;

/// Consecutive failed runs by the scheduler after which `auto` takes a job over.
pub const SCHEDULER_FAILURES: i32 = 2;

/// How late past its next start a job may be before `auto` takes it over.
pub const OVERDUE_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// Who runs the database's background jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunDbJobs {
    /// The daemon, for the jobs TimescaleDB's scheduler is not running.
    Auto,
    /// The daemon, every scheduled job.
    True,
    /// Only TimescaleDB's scheduler.
    False,
}

impl fmt::Display for RunDbJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunDbJobs::Auto => "auto",
            RunDbJobs::True => "true",
            RunDbJobs::False => "false",
        })
    }
}

/// Settings of the daemon's database upkeep.
#[derive(Debug, Clone, Args)]
pub struct DbJobsArgs {
    /// Whether the daemon runs the database's due background jobs (TimescaleDB policies)
    /// itself: auto (when the scheduler is not running them), true (always) or false.
    #[arg(long, env = "WEARHOUSE_RUN_DB_JOBS", default_value = "auto")]
    pub run_db_jobs: RunDbJobs,

    /// Seconds between reading the database's metrics and checking which jobs are due.
    #[arg(
        long,
        env = "WEARHOUSE_DB_JOBS_CHECK_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub db_jobs_check_secs: u64,
}

/// Why the daemon runs a job, or None when the scheduler keeps it.
pub fn takeover_reason(
    mode: RunDbJobs,
    job: &DbJob,
    scheduler_running: bool,
    now: DateTime<Utc>,
) -> Option<String> {
    if !job.scheduled {
        return None; // paused on purpose
    }
    match mode {
        RunDbJobs::False => None,
        RunDbJobs::True => Some("WEARHOUSE_RUN_DB_JOBS=true".to_owned()),
        RunDbJobs::Auto if !scheduler_running => {
            Some("no TimescaleDB scheduler is running for this database".to_owned())
        }
        RunDbJobs::Auto
            if job.scheduler_last_run_failed
                && job.scheduler_consecutive_failures >= SCHEDULER_FAILURES =>
        {
            Some(format!(
                "the scheduler's last {} runs failed",
                job.scheduler_consecutive_failures
            ))
        }
        RunDbJobs::Auto => match job.scheduler_next_start {
            Some(next) if now - next > OVERDUE_GRACE => Some(format!(
                "the scheduler is {} minutes late",
                (now - next).num_minutes()
            )),
            _ => None,
        },
    }
}

/// Whether a job the daemon runs is due: never run successfully, its interval has passed
/// since the last success by either runner, or the daemon's last run failed and the job's
/// retry period has passed.
pub fn is_due(job: &DbJob, now: DateTime<Utc>) -> bool {
    let secs = |s: f64| chrono::Duration::milliseconds((s * 1000.0) as i64);
    if job.daemon_consecutive_failures > 0
        && let Some(finish) = job.daemon_last_finish
    {
        let retry = job.retry_period_secs.min(job.schedule_interval_secs);
        return now - finish >= secs(retry);
    }
    match job.last_success() {
        None => true,
        Some(last) => now - last >= secs(job.schedule_interval_secs),
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelationLabels {
    relation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job_id: String,
    /// Not `job`: Prometheus gives every series the scrape job's name under that label.
    db_job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobRunLabels {
    job_id: String,
    db_job: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
    run_db_jobs: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// The `wearhouse_database_*` metrics. Cheap to clone: the families share their state.
#[derive(Debug, Clone, Default)]
pub struct DbMetrics {
    up: Gauge,
    info: Family<BackendLabels, Gauge>,
    size: Gauge,
    relation_size: Family<RelationLabels, Gauge>,
    connections: Family<StateLabels, Gauge>,
    max_connections: Gauge,
    awaiting_compression: Family<RelationLabels, Gauge>,
    job_last_success: Family<JobLabels, F64Gauge>,
    job_consecutive_failures: Family<JobLabels, Gauge>,
    job_last_run_failed: Family<JobLabels, Gauge>,
    job_interval: Family<JobLabels, F64Gauge>,
    job_overdue: Family<JobLabels, F64Gauge>,
    job_taken_over: Family<JobLabels, Gauge>,
    job_runs: Family<JobRunLabels, Counter>,
}

impl DbMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = DbMetrics::default();
        registry.register(
            "wearhouse_database_up",
            "1 when the last read of the database's metrics succeeded",
            m.up.clone(),
        );
        registry.register(
            "wearhouse_database_info",
            "The storage backend, and who runs its background jobs (WEARHOUSE_RUN_DB_JOBS)",
            m.info.clone(),
        );
        registry.register(
            "wearhouse_database_size_bytes",
            "Size of the database on disk",
            m.size.clone(),
        );
        registry.register(
            "wearhouse_database_relation_size_bytes",
            "Size on disk of each table, hypertable (its chunks) or continuous aggregate",
            m.relation_size.clone(),
        );
        registry.register(
            "wearhouse_database_connections",
            "Sessions connected to the database, by state",
            m.connections.clone(),
        );
        registry.register(
            "wearhouse_database_max_connections",
            "The server's max_connections",
            m.max_connections.clone(),
        );
        registry.register(
            "wearhouse_database_chunks_awaiting_compression",
            "Chunks older than the compression policy's compress_after still uncompressed",
            m.awaiting_compression.clone(),
        );
        registry.register(
            "wearhouse_database_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run by the scheduler or the daemon (0: never)",
            m.job_last_success.clone(),
        );
        registry.register(
            "wearhouse_database_job_consecutive_failures",
            "Failed runs in a row: the daemon's while it runs the job, else the scheduler's",
            m.job_consecutive_failures.clone(),
        );
        registry.register(
            "wearhouse_database_job_last_run_failed",
            "1 when the job's last run failed",
            m.job_last_run_failed.clone(),
        );
        registry.register(
            "wearhouse_database_job_interval_seconds",
            "The job's schedule interval",
            m.job_interval.clone(),
        );
        registry.register(
            "wearhouse_database_job_overdue_seconds",
            "How long past its interval since the last success the job is (0: not overdue)",
            m.job_overdue.clone(),
        );
        registry.register(
            "wearhouse_database_job_taken_over",
            "1 while the ingest daemon runs the job in place of TimescaleDB's scheduler",
            m.job_taken_over.clone(),
        );
        registry.register(
            "wearhouse_database_job_runs",
            "Runs of database jobs made by the ingest daemon, by outcome",
            m.job_runs.clone(),
        );
        m
    }

    fn set_stats(&self, stats: &DbStats) {
        self.size.set(stats.size_bytes);
        self.max_connections.set(stats.max_connections);
        set_family(&self.relation_size, &stats.relations, |relation| {
            RelationLabels { relation }
        });
        set_family(&self.connections, &stats.connections, |state| StateLabels {
            state,
        });
        set_family(
            &self.awaiting_compression,
            &stats.awaiting_compression,
            |relation| RelationLabels { relation },
        );
    }

    fn set_jobs(&self, jobs: &[DbJob], taken_over: &[bool], now: DateTime<Utc>) {
        for family in [&self.job_consecutive_failures, &self.job_last_run_failed] {
            family.clear();
        }
        for family in [
            &self.job_last_success,
            &self.job_interval,
            &self.job_overdue,
        ] {
            family.clear();
        }
        self.job_taken_over.clear();
        for (job, &taken) in jobs.iter().zip(taken_over) {
            let labels = job_labels(job);
            let last = job.last_success();
            let (failures, failed) = if taken {
                (
                    job.daemon_consecutive_failures,
                    job.daemon_consecutive_failures > 0,
                )
            } else {
                (
                    job.scheduler_consecutive_failures,
                    job.scheduler_last_run_failed,
                )
            };
            self.job_last_success
                .get_or_create(&labels)
                .set(last.map_or(0.0, epoch_secs));
            self.job_consecutive_failures
                .get_or_create(&labels)
                .set(failures.into());
            self.job_last_run_failed
                .get_or_create(&labels)
                .set(failed.into());
            self.job_interval
                .get_or_create(&labels)
                .set(job.schedule_interval_secs);
            let overdue = if !job.scheduled {
                0.0
            } else {
                // Never run: due from the scheduler's planned start, or now.
                let due = last.map_or(job.scheduler_next_start.unwrap_or(now), |t| {
                    t + chrono::Duration::milliseconds((job.schedule_interval_secs * 1e3) as i64)
                });
                (now.signed_duration_since(due).num_milliseconds() as f64 / 1e3).max(0.0)
            };
            self.job_overdue.get_or_create(&labels).set(overdue);
            self.job_taken_over.get_or_create(&labels).set(taken.into());
            for outcome in ["success", "failure"] {
                let _ = self.job_runs.get_or_create(&JobRunLabels {
                    job_id: labels.job_id.clone(),
                    db_job: labels.db_job.clone(),
                    outcome,
                });
            }
        }
    }

    fn count_run(&self, job: &DbJob, ok: bool) {
        let labels = job_labels(job);
        self.job_runs
            .get_or_create(&JobRunLabels {
                job_id: labels.job_id,
                db_job: labels.db_job,
                outcome: if ok { "success" } else { "failure" },
            })
            .inc();
    }
}

fn job_labels(job: &DbJob) -> JobLabels {
    JobLabels {
        job_id: job.job_id.to_string(),
        db_job: job.label(),
    }
}

fn epoch_secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1e3
}

/// Replaces the series of `family` with `values`, so a dropped relation's series goes.
fn set_family<L>(family: &Family<L, Gauge>, values: &[(String, i64)], labels: impl Fn(String) -> L)
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet,
{
    family.clear();
    for (name, value) in values {
        family.get_or_create(&labels(name.clone())).set(*value);
    }
}

/// The daemon's database upkeep: metrics, and the jobs it runs.
pub struct DbUpkeep {
    /// The daemon's pool (working as its role): metrics are read through it.
    pool: PgPool,
    /// The login's own rights, for `run_job`: one connection, opened when first needed.
    owner: PgPool,
    mode: RunDbJobs,
    metrics: DbMetrics,
    backend: Option<Backend>,
}

impl DbUpkeep {
    /// Upkeep for the database of `database` (the daemon's settings, with its role).
    pub fn new(
        pool: PgPool,
        database: &DatabaseArgs,
        mode: RunDbJobs,
        metrics: DbMetrics,
    ) -> anyhow::Result<DbUpkeep> {
        let login = DatabaseArgs {
            role: None,
            ..database.clone()
        };
        let owner = login
            .pool_options()
            .max_connections(1)
            .connect_lazy_with(login.connect_options()?);
        Ok(DbUpkeep {
            pool,
            owner,
            mode,
            metrics,
            backend: None,
        })
    }

    /// One pass: reads the metrics and runs the jobs that are due. Errors are logged and
    /// reported by `wearhouse_database_up` (1 once the metrics are read, 0 when reading them or
    /// reaching the database for a job failed); the next pass tries again.
    pub async fn pass(&mut self) {
        if let Err(e) = self.pass_inner().await {
            self.metrics.up.set(0);
            tracing::error!(
                error = format!("{e:#}"),
                "cannot read the database's upkeep"
            );
        }
    }

    async fn pass_inner(&mut self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let backend = match &self.backend {
            Some(b) => b.clone(),
            None => store::detect_backend(&mut conn).await?,
        };
        let stats = maintenance::stats(&mut conn, &backend).await?;
        if self.backend.is_none() {
            let jobs = if backend.timescaledb_version.is_some() {
                self.mode.to_string()
            } else {
                "none".to_owned() // no background jobs to run
            };
            self.metrics
                .info
                .get_or_create(&BackendLabels {
                    backend: backend.kind.to_string(),
                    run_db_jobs: jobs,
                })
                .set(1);
            self.backend = Some(backend.clone());
        }
        self.metrics.set_stats(&stats);
        self.metrics.up.set(1);
        if backend.timescaledb_version.is_none() {
            return Ok(());
        }
        let scheduler = maintenance::scheduler_running(&mut conn).await?;
        let jobs = maintenance::jobs(&mut conn, &backend).await?;
        drop(conn);
        let now = Utc::now();
        let reasons: Vec<Option<String>> = jobs
            .iter()
            .map(|j| takeover_reason(self.mode, j, scheduler, now))
            .collect();
        let taken: Vec<bool> = reasons.iter().map(Option::is_some).collect();
        self.metrics.set_jobs(&jobs, &taken, now);
        let mut ran = false;
        for (job, reason) in jobs.iter().zip(&reasons) {
            if let Some(reason) = reason
                && is_due(job, now)
            {
                self.run(job, reason).await?;
                ran = true;
            }
        }
        if ran {
            // The metrics say what the runs did, not what was due before them.
            let mut conn = self.pool.acquire().await?;
            let jobs = maintenance::jobs(&mut conn, &backend).await?;
            let stats = maintenance::stats(&mut conn, &backend).await?;
            self.metrics.set_stats(&stats);
            self.metrics.set_jobs(&jobs, &taken, Utc::now());
        }
        Ok(())
    }

    /// Runs `job` in the login's session and records how it went. A failed job is recorded
    /// and counted, not returned: only losing the database is an error of the pass.
    async fn run(&self, job: &DbJob, reason: &str) -> anyhow::Result<()> {
        let mut conn = self.owner.acquire().await?;
        if !maintenance::try_lock_job(&mut conn, job.job_id).await? {
            tracing::debug!(job = %job.label(), "another process is running this job");
            return Ok(());
        }
        let started = Instant::now();
        tracing::info!(job_id = job.job_id, job = %job.label(), reason, "running database job");
        maintenance::record_start(&mut conn, job.job_id).await?;
        let result = maintenance::run_job(&mut conn, job.job_id).await;
        if let Err(e) = &result
            && wearhouse_core::error::is_unavailable(e)
        {
            return Err(anyhow::anyhow!(
                "lost the database while running job {}: {e}",
                job.job_id
            ));
        }
        let error = result.err().map(|e| e.to_string());
        maintenance::record_finish(&mut conn, job.job_id, error.as_deref()).await?;
        maintenance::unlock_job(&mut conn, job.job_id).await?;
        self.metrics.count_run(job, error.is_none());
        let secs = started.elapsed().as_secs_f64();
        match &error {
            None => {
                tracing::info!(job_id = job.job_id, job = %job.label(), secs, "database job done")
            }
            Some(e) => {
                tracing::error!(job_id = job.job_id, job = %job.label(), secs, error = %e, "database job failed")
            }
        }
        Ok(())
    }
}

/// Runs [`DbUpkeep::pass`] every `every` until `shutdown` fires (the first pass at once).
pub async fn upkeep_forever(mut upkeep: DbUpkeep, every: Duration, shutdown: CancellationToken) {
    tracing::info!(
        run_db_jobs = %upkeep.mode,
        every_secs = every.as_secs(),
        "watching the database's upkeep"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => upkeep.pass().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn job() -> DbJob {
        DbJob {
            job_id: 1000,
            proc_name: "policy_compression".into(),
            relation: Some("raw_data".into()),
            schedule_interval_secs: 12.0 * 3600.0,
            retry_period_secs: 3600.0,
            scheduled: true,
            scheduler_last_success: None,
            scheduler_last_run_failed: false,
            scheduler_consecutive_failures: 0,
            scheduler_next_start: Some(t("2026-12-04T12:00:00Z")),
            daemon_last_start: None,
            daemon_last_finish: None,
            daemon_last_success: None,
            daemon_consecutive_failures: 0,
            daemon_last_error: None,
        }
    }

    const NOW: &str = "2026-12-04T12:05:00Z";

    #[test]
    fn auto_leaves_a_job_to_a_working_scheduler() {
        assert_eq!(takeover_reason(RunDbJobs::Auto, &job(), true, t(NOW)), None);
        let once = DbJob {
            scheduler_last_run_failed: true,
            scheduler_consecutive_failures: 1,
            ..job()
        };
        assert_eq!(takeover_reason(RunDbJobs::Auto, &once, true, t(NOW)), None);
    }

    #[test]
    fn auto_takes_over_when_the_scheduler_keeps_failing_is_missing_or_late() {
        let failing = DbJob {
            scheduler_last_run_failed: true,
            scheduler_consecutive_failures: 3,
            ..job()
        };
        let reason = takeover_reason(RunDbJobs::Auto, &failing, true, t(NOW)).unwrap();
        assert!(reason.contains("last 3 runs failed"), "{reason}");

        let reason = takeover_reason(RunDbJobs::Auto, &job(), false, t(NOW)).unwrap();
        assert!(reason.contains("no TimescaleDB scheduler"), "{reason}");

        let late = takeover_reason(RunDbJobs::Auto, &job(), true, t("2026-12-04T12:30:00Z"));
        assert_eq!(late.as_deref(), Some("the scheduler is 30 minutes late"));
    }

    #[test]
    fn a_recovered_scheduler_gets_the_job_back() {
        // Its last run succeeded: the failure count was reset.
        let recovered = DbJob {
            scheduler_last_success: Some(t("2026-12-04T11:59:00Z")),
            daemon_last_success: Some(t("2026-12-04T00:00:00Z")),
            ..job()
        };
        assert_eq!(
            takeover_reason(RunDbJobs::Auto, &recovered, true, t(NOW)),
            None
        );
    }

    #[test]
    fn true_runs_every_scheduled_job_false_none_and_a_paused_job_stays_paused() {
        assert!(takeover_reason(RunDbJobs::True, &job(), true, t(NOW)).is_some());
        assert_eq!(
            takeover_reason(RunDbJobs::False, &job(), false, t(NOW)),
            None
        );
        let paused = DbJob {
            scheduled: false,
            ..job()
        };
        assert_eq!(
            takeover_reason(RunDbJobs::True, &paused, false, t(NOW)),
            None
        );
        assert_eq!(
            takeover_reason(RunDbJobs::Auto, &paused, false, t(NOW)),
            None
        );
    }

    #[test]
    fn a_job_is_due_when_never_run_or_its_interval_passed_since_either_runner_succeeded() {
        assert!(is_due(&job(), t(NOW)));
        let by_scheduler = DbJob {
            scheduler_last_success: Some(t("2026-12-04T01:00:00Z")),
            ..job()
        };
        assert!(!is_due(&by_scheduler, t(NOW)));
        assert!(is_due(&by_scheduler, t("2026-12-04T13:00:00Z")));
        let by_daemon = DbJob {
            daemon_last_success: Some(t("2026-12-04T06:00:00Z")),
            ..by_scheduler
        };
        assert!(!is_due(&by_daemon, t("2026-12-04T13:00:00Z")));
        assert!(is_due(&by_daemon, t("2026-12-04T18:00:00Z")));
    }

    #[test]
    fn a_failed_daemon_run_is_retried_after_the_retry_period_not_the_interval() {
        let failed = DbJob {
            daemon_last_success: Some(t("2026-12-04T11:00:00Z")),
            daemon_last_finish: Some(t("2026-12-04T11:30:00Z")),
            daemon_consecutive_failures: 1,
            ..job()
        };
        assert!(!is_due(&failed, t("2026-12-04T12:00:00Z")));
        assert!(is_due(&failed, t("2026-12-04T12:30:00Z")));
    }

    #[test]
    fn the_setting_reads_auto_true_and_false() {
        for (raw, want) in [
            ("auto", RunDbJobs::Auto),
            ("true", RunDbJobs::True),
            ("false", RunDbJobs::False),
        ] {
            let args: DbJobsArgs =
                wearhouse_core::config::parse_args(&["--run-db-jobs", raw]).unwrap();
            assert_eq!(args.run_db_jobs, want);
        }
        let err = wearhouse_core::config::parse_args::<DbJobsArgs>(&["--run-db-jobs", "yes"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto") && err.contains("false"), "{err}");
    }
}
