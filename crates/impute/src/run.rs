//! `wearhouse-impute run`: queues a job and runs it in this process, through the same
//! [`jobs::execute`] as the worker. The job is inserted already claimed by this process, so a
//! worker woken by its NOTIFY leaves it alone (unless this process dies: then the lease
//! expires and a worker takes it). `--job ID` runs an existing job again, replacing its
//! output.

use anyhow::Context as _;
use chrono::TimeDelta;
use clap::Args;
use uuid::Uuid;
use wearhouse_core::config::{DatabaseArgs, TelemetryArgs};
use wearhouse_core::time::parse_instant;
use wearhouse_core::{Metric, ParticipantId, TimeRange};

use crate::jobs::{self, JobSettings, Outcome};
use crate::worker::default_worker_id;
use wearhouse_core::store::jobs::{self as store, NewJob};

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Participant id.
    #[arg(
        long,
        env = "WEARHOUSE_IMPUTE_PARTICIPANT",
        required_unless_present = "job"
    )]
    pub participant: Option<String>,
    /// Metric name from the catalogue, e.g. heart_rate or steps.
    #[arg(long, env = "WEARHOUSE_IMPUTE_METRIC", required_unless_present = "job")]
    pub metric: Option<String>,
    /// Start, included: ISO 8601 date or date-time. Default with --to absent too: the
    /// participant's last 7 days of data of the metric.
    #[arg(long, env = "WEARHOUSE_IMPUTE_FROM", requires = "to")]
    pub from: Option<String>,
    /// End, excluded: ISO 8601 date or date-time.
    #[arg(long, env = "WEARHOUSE_IMPUTE_TO", requires = "from")]
    pub to: Option<String>,
    /// Run this existing job again instead of queueing a new one; its output is replaced.
    #[arg(long, conflicts_with_all = ["participant", "metric", "from", "to"])]
    pub job: Option<Uuid>,
    #[command(flatten)]
    pub settings: JobSettings,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Runs `run` and returns what the job did.
pub async fn run_command(args: &RunArgs) -> anyhow::Result<Outcome> {
    let pool = args
        .database
        .connect()
        .await
        .context("cannot connect to the database")?;
    let worker = format!("run-{}", default_worker_id());
    let mut conn = pool.acquire().await?;
    let claim = if let Some(id) = args.job {
        // A job still heartbeating belongs to a live worker; one whose lease expired is free.
        store::claim_by_id(&mut conn, id, &worker, TimeDelta::seconds(60))
            .await?
            .with_context(|| format!("no job {id}, or a worker is running it now"))?
    } else {
        let participant = ParticipantId::parse(args.participant.as_deref().unwrap_or(""))?;
        let metric = Metric::parse(args.metric.as_deref().unwrap_or(""))?;
        let range = match (&args.from, &args.to) {
            (Some(from), Some(to)) => {
                let range = TimeRange::new(parse_instant("from", from)?, parse_instant("to", to)?)?;
                store::check_range(&range, "to")?;
                range
            }
            _ => jobs::default_range(&mut conn, &participant, metric)
                .await?
                .with_context(|| {
                    format!("{participant} has no {metric} data; give --from and --to")
                })?,
        };
        let job = NewJob {
            participant,
            metric,
            range,
        };
        store::queue_claimed(&mut conn, &job, &worker).await?
    };
    drop(conn);
    tracing::info!(job_id = %claim.job.id, "running the job in this process");
    let result = jobs::execute(&pool, &claim, &args.settings).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            if !e.is_transient() {
                jobs::fail(&pool, &claim, &e).await?;
            }
            pool.close().await;
            return Err(anyhow::Error::new(e).context(format!("job {} failed", claim.job.id)));
        }
    };
    pool.close().await;
    Ok(outcome)
}
