//! The job worker: `concurrency` slots take jobs from `imputation_jobs` and run them with
//! [`jobs::execute`]. An idle slot wakes on a NOTIFY on `imputation_jobs` (sent by the insert
//! trigger), or at the latest after the poll interval, which also picks up jobs whose worker
//! died (their lease expired) and jobs queued while the listener was reconnecting.
//!
//! Shutdown (SIGTERM/SIGINT cancel one token): idle slots stop, a slot in a job finishes it and
//! records the result, then the `/health` and `/metrics` server stops and the pool closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::TimeDelta;
use clap::Args;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wearhouse_core::config::{DatabaseArgs, TelemetryArgs};
use wearhouse_core::process::Shutdown;
use wearhouse_core::telemetry::ops_router;

use crate::jobs::{self, JobSettings};
use crate::metrics::{ImputeMetrics, JobOutcome};
use wearhouse_core::store::jobs as store;

/// The NOTIFY channel of the insert trigger on `imputation_jobs`.
pub const CHANNEL: &str = "imputation_jobs";

/// Settings of `wearhouse-impute worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address of the `/health` and `/metrics` server; port 0 picks a free port.
    #[arg(long, env = "WEARHOUSE_IMPUTE_LISTEN", default_value = "0.0.0.0:9103")]
    pub listen: SocketAddr,
    /// Jobs run at the same time by this process.
    #[arg(long, env = "WEARHOUSE_IMPUTE_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    #[command(flatten)]
    pub queue: QueueSettings,
    #[command(flatten)]
    pub job: JobSettings,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// How the worker uses the queue.
#[derive(Debug, Clone, Args)]
pub struct QueueSettings {
    /// Seconds between looks at the queue without a NOTIFY (the fallback for missed ones).
    #[arg(long, env = "WEARHOUSE_IMPUTE_POLL_SECS", default_value_t = 30)]
    pub poll_secs: u64,
    /// Seconds without a heartbeat after which a running job counts as abandoned by a dead
    /// worker and is taken again.
    #[arg(long, env = "WEARHOUSE_IMPUTE_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Attempts at a job (takings after a worker died included) before it is failed.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub max_attempts: i32,
    /// This worker's name in `imputation_jobs.worker`; default `<hostname>-<pid>`.
    #[arg(long, env = "WEARHOUSE_IMPUTE_WORKER_ID")]
    pub worker_id: Option<String>,
}

/// The defaults of the command line (environment variables aside).
impl Default for QueueSettings {
    fn default() -> Self {
        wearhouse_core::config::defaults()
    }
}

impl QueueSettings {
    fn lease(&self) -> TimeDelta {
        TimeDelta::seconds(i64::try_from(self.lease_secs).unwrap_or(i64::MAX / 1_000_000))
    }
}

/// A name for this process: `<hostname>-<pid>`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "impute".to_owned());
    format!("{host}-{}", std::process::id())
}

/// What the slots share.
struct Shared {
    pool: PgPool,
    worker_id: String,
    queue: QueueSettings,
    job: JobSettings,
    metrics: ImputeMetrics,
    wake: Notify,
}

/// A bound, ready-to-run worker.
pub struct Worker {
    listener: TcpListener,
    shared: Arc<Shared>,
    concurrency: u16,
}

impl Worker {
    /// Builds the worker and binds its `/health` and `/metrics` listener. The pool connects
    /// lazily: the worker starts while the database is down and begins when it returns.
    pub async fn build(args: &WorkerArgs) -> anyhow::Result<Self> {
        let pool = args
            .database
            .lazy_pool()
            .context("invalid database settings; check DATABASE_URL or --database-url")?;
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let worker_id = args
            .queue
            .worker_id
            .clone()
            .unwrap_or_else(default_worker_id);
        Ok(Worker {
            listener,
            shared: Arc::new(Shared {
                pool,
                worker_id,
                queue: args.queue.clone(),
                job: args.job.clone(),
                metrics: ImputeMetrics::new(),
                wake: Notify::new(),
            }),
            concurrency: args.concurrency,
        })
    }

    /// The address of `/health` and `/metrics`.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// This worker's name in `imputation_jobs.worker`.
    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// Runs until `shutdown` is cancelled and every slot has finished its job.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        tracing::info!(
            worker = %shared.worker_id,
            address = %self.listener.local_addr()?,
            concurrency = self.concurrency,
            "impute worker started"
        );
        let ops_stop = CancellationToken::new();
        let ops = {
            let stop = ops_stop.clone();
            let router = ops_router(shared.metrics.registry().clone());
            tokio::spawn(
                axum::serve(self.listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .into_future(),
            )
        };
        let background = Shutdown::new();
        background.spawn(listen(shared.clone(), background.token().clone()));
        background.spawn(refresh_queue_depth(
            shared.clone(),
            background.token().clone(),
        ));
        let slots: Vec<_> = (0..self.concurrency)
            .map(|_| tokio::spawn(slot(shared.clone(), shutdown.clone())))
            .collect();
        for s in slots {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "a worker slot panicked");
            }
        }
        background.cancel();
        background.wait().await;
        ops_stop.cancel();
        let _ = ops.await;
        if tokio::time::timeout(Duration::from_secs(5), shared.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close in time");
        }
        tracing::info!("impute worker stopped");
        Ok(())
    }
}

/// LISTENs on the jobs channel and wakes the idle slots on every notification. A lost
/// connection is re-established; the slots are woken then too, for jobs queued meanwhile.
async fn listen(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let attempt = async {
            let mut listener = PgListener::connect_with(&shared.pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            r = attempt => match r {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for new jobs; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            },
            () = stop.cancelled() => return,
        };
        tracing::debug!(channel = CHANNEL, "listening for new jobs");
        shared.wake.notify_waiters();
        loop {
            tokio::select! {
                r = listener.try_recv() => match r {
                    Ok(Some(_)) => shared.wake.notify_waiters(),
                    // The connection was lost; the next try_recv reconnects and listens again.
                    Ok(None) => shared.wake.notify_waiters(),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the job listener");
                        break;
                    }
                },
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Keeps the queue-depth gauge current.
async fn refresh_queue_depth(shared: Arc<Shared>, stop: CancellationToken) {
    let every = Duration::from_secs(shared.queue.poll_secs.clamp(1, 15));
    loop {
        update_queue_depth(&shared).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn update_queue_depth(shared: &Shared) {
    let depth = async {
        let mut conn = shared
            .pool
            .acquire()
            .await
            .map_err(wearhouse_core::Error::from)?;
        store::queue_depth(&mut conn).await
    };
    match depth.await {
        Ok(n) => shared.metrics.set_queue_depth(n),
        Err(e) => tracing::debug!(error = %e, "cannot read the queue depth"),
    }
}

/// One slot: takes jobs until the queue is empty, then waits for a NOTIFY or the poll.
async fn slot(shared: Arc<Shared>, shutdown: CancellationToken) {
    let poll = Duration::from_secs(shared.queue.poll_secs.max(1));
    while !shutdown.is_cancelled() {
        // Registered before looking at the queue, so a NOTIFY that arrives between an empty
        // look and the wait below is not lost.
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = match take_one(&shared).await {
            Ok(true) => continue,
            Ok(false) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a job");
                poll.min(Duration::from_secs(5))
            }
        };
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// Takes and runs one job; false when there was none.
async fn take_one(shared: &Shared) -> Result<bool, wearhouse_core::Error> {
    let claim = {
        let mut conn = shared.pool.acquire().await?;
        let abandoned =
            store::fail_abandoned(&mut conn, shared.queue.lease(), shared.queue.max_attempts)
                .await?;
        if abandoned > 0 {
            tracing::warn!(
                jobs = abandoned,
                "failed jobs whose workers died on their last attempt"
            );
            shared.metrics.jobs_abandoned(abandoned);
        }
        store::claim(
            &mut conn,
            &shared.worker_id,
            shared.queue.lease(),
            shared.queue.max_attempts,
        )
        .await?
    };
    let Some(claim) = claim else {
        return Ok(false);
    };
    tracing::info!(job_id = %claim.job.id, attempt = claim.attempt(), "took a job");
    let started = Instant::now();
    match jobs::execute(&shared.pool, &claim, &shared.job).await {
        Ok(outcome) => {
            shared
                .metrics
                .job_finished(JobOutcome::Succeeded, started.elapsed().as_secs_f64());
            shared.metrics.points_filled(
                &outcome.method,
                u64::try_from(outcome.summary.points_filled).unwrap_or(0),
            );
        }
        Err(e) if e.is_transient() => {
            // Left running: once its lease expires the job is taken again (or failed after
            // its last attempt).
            tracing::warn!(job_id = %claim.job.id, error = %e, "job interrupted; it will be retried");
        }
        Err(e) => {
            tracing::error!(job_id = %claim.job.id, error = %e, "job failed");
            if let Err(e2) = jobs::fail(&shared.pool, &claim, &e).await {
                tracing::warn!(job_id = %claim.job.id, error = %e2, "cannot record the failure; the lease will expire");
            }
            shared
                .metrics
                .job_finished(JobOutcome::Failed, started.elapsed().as_secs_f64());
        }
    }
    update_queue_depth(shared).await;
    Ok(true)
}

/// `wearhouse-impute worker`: runs until SIGTERM/SIGINT.
pub async fn main(args: &WorkerArgs) -> anyhow::Result<()> {
    let worker = Worker::build(args).await?;
    let shutdown = Shutdown::on_signals();
    worker.run(shutdown.token().clone()).await
}
