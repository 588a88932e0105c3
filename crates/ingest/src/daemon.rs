//! The `daemon` command: the delta load on a cron schedule, never two runs at once, with
//! `/health`, `/metrics` and the providers' HTTP routes (OAuth callbacks) on one listener.
//! SIGTERM or SIGINT stops new runs; participants in progress finish, then the process exits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use chrono_tz::Tz;
use clap::Args;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::telemetry::{MetricsRegistry, ops_router};

use crate::db_jobs::{DbJobsArgs, DbMetrics, DbUpkeep};
use crate::metrics::IngestMetrics;
use crate::pipeline::{Pipeline, PipelineArgs};
use crate::sources::registry::{self, ProviderArgs, SourceContext, Sources};

/// Settings of `wearhouse-ingest daemon`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// When to run, in cron syntax: five fields (minute hour day month weekday) or six with
    /// seconds first. Default: daily at 01:00.
    #[arg(long, env = "WEARHOUSE_INGEST_SCHEDULE", default_value = "0 1 * * *")]
    pub schedule: String,

    /// Time zone the schedule is read in (IANA name).
    #[arg(
        long,
        env = "WEARHOUSE_INGEST_SCHEDULE_TIMEZONE",
        default_value = "UTC"
    )]
    pub schedule_timezone: Tz,

    /// Also run once right after start.
    #[arg(long, env = "WEARHOUSE_INGEST_RUN_ON_START")]
    pub run_on_start: bool,

    /// Address for /health, /metrics and the OAuth callbacks; port 0 picks a free port.
    #[arg(long, env = "WEARHOUSE_INGEST_LISTEN", default_value = "0.0.0.0:9102")]
    pub listen: SocketAddr,

    /// Seconds between sweeps that revoke the grants of withdrawn participants at their
    /// provider (the first sweep runs at start).
    #[arg(
        long,
        env = "WEARHOUSE_INGEST_REVOCATION_SWEEP_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub revocation_sweep_secs: u64,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub db_jobs: DbJobsArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Five-field cron gets a leading seconds field, as the scheduler requires six.
pub fn normalise_schedule(schedule: &str) -> String {
    if schedule.split_whitespace().count() == 5 {
        format!("0 {}", schedule.trim())
    } else {
        schedule.trim().to_owned()
    }
}

/// Runs the daemon until `shutdown` fires.
pub async fn run(args: DaemonArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = MetricsRegistry::new();
    let metrics = IngestMetrics::register(&registry);
    // Exported from the start, as the other counts from the database, so the alert rule on it
    // has a series to watch (see monitoring/README.md); the first run sets the real count.
    metrics.set_needing_reconsent_longer(args.pipeline.reconsent_alert_days, 0);
    let db_metrics = DbMetrics::register(&registry);
    let pool = args
        .database
        .clone()
        .with_min_connections(args.pipeline.connections())
        .lazy_pool()?;
    let ctx = SourceContext::new(pool.clone(), metrics.source.clone(), &args.providers)?;
    // Grants from before encryption are sealed now, or before the first run when the
    // database is not reachable yet; a refusal (plain grants and no key) stops the daemon.
    let mut sealed = match ctx.seal_plain_grants().await {
        Ok(_) => true,
        Err(e) if is_unavailable(&e) => {
            tracing::warn!(error = %e, "cannot seal plain-text grants yet; retrying before the first run");
            false
        }
        Err(e) => return Err(e),
    };
    // The providers' routes (OAuth callbacks) are merged next to the operational endpoints.
    let app = ops_router(registry).merge(registry::routes(&args.providers, &ctx)?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving /health and /metrics");
    let server_stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = server_stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    match crate::runs::last_success(&pool).await {
        Ok(Some(t)) => metrics.restore_last_success(t.timestamp_millis() as f64 / 1000.0),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the last successful run yet"),
    }

    let sweeper = tokio::spawn(crate::withdraw::sweep_forever(
        pool.clone(),
        crate::withdraw::Revokers::configured(&args.providers, &ctx)?,
        metrics.clone(),
        Duration::from_secs(args.revocation_sweep_secs),
        shutdown.clone(),
    ));

    // The database's metrics, and its background jobs where the scheduler cannot run them.
    let upkeep = tokio::spawn(crate::db_jobs::upkeep_forever(
        DbUpkeep::new(
            pool.clone(),
            &args.database,
            args.db_jobs.run_db_jobs,
            db_metrics,
        )?,
        Duration::from_secs(args.db_jobs.db_jobs_check_secs),
        shutdown.clone(),
    ));

    // Ticks go through a one-slot channel to a single runner: a tick while a run is in
    // progress finds the slot full (or taken) and is dropped, so runs never overlap.
    let (tick, mut ticks) = mpsc::channel::<&'static str>(1);
    let schedule = normalise_schedule(&args.schedule);
    let mut scheduler = JobScheduler::new().await?;
    let job = Job::new_async_tz(schedule.as_str(), args.schedule_timezone, {
        let tick = tick.clone();
        move |_, _| {
            let tick = tick.clone();
            Box::pin(async move {
                if tick.try_send("schedule").is_err() {
                    tracing::warn!("scheduled run skipped: the previous run is still going");
                }
            })
        }
    })
    .map_err(|e| anyhow::anyhow!("invalid --schedule {:?}: {e}", args.schedule))?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    tracing::info!(schedule = %schedule, timezone = %args.schedule_timezone, "schedule set");
    if args.run_on_start {
        let _ = tick.try_send("start");
    }

    let mut pipeline: Option<Pipeline> = None;
    loop {
        let reason = tokio::select! {
            _ = shutdown.cancelled() => break,
            t = ticks.recv() => match t { Some(t) => t, None => break },
        };
        tracing::info!(reason, "run starting");
        if !sealed {
            match ctx.seal_plain_grants().await {
                Ok(_) => sealed = true,
                Err(e) if is_unavailable(&e) => {
                    tracing::error!(error = %e, "run skipped: plain-text grants cannot be sealed yet");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        if pipeline.is_none() {
            let sources = Sources::all(&args.providers, &ctx)?;
            match Pipeline::new(
                pool.clone(),
                sources,
                metrics.clone(),
                args.pipeline.clone(),
            )
            .await
            {
                Ok(p) => pipeline = Some(p),
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "cannot start a run");
                    metrics.run_finished(crate::metrics::Outcome::Failure, 0.0, 0.0);
                    continue;
                }
            }
        }
        if let Some(p) = &pipeline
            && let Err(e) = p.run(&shutdown).await
        {
            tracing::error!(error = format!("{e:#}"), "run failed");
        }
    }

    tracing::info!("shutting down");
    let _ = scheduler.shutdown().await;
    let _ = sweeper.await;
    let _ = upkeep.await;
    server_stop.cancel();
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("HTTP server did not stop within 10 s"),
    }
    pool.close().await;
    Ok(())
}

/// Whether `e` means the database is not reachable (yet).
fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .is_some_and(wearhouse_core::error::is_unavailable)
            || c.downcast_ref::<wearhouse_core::Error>()
                .is_some_and(|e| e.kind() == wearhouse_core::ErrorKind::Unavailable)
    })
}
