//! Running one imputation job: a participant, a metric and a half-open range.
//!
//! 1. Read `raw_data` for the range onto the metric's grid ([`grid_step`]): heart rate as
//!    1-minute means computed from `raw_data` itself (not `data_1m`, whose continuous
//!    aggregate may lag a recent load), counts as per-minute sums, labels as the last label
//!    per interval. An interval without samples is a missing value.
//! 2. Fill with the metric's catalogue strategy ([`crate::fill::fill_metric`]): ARIMA with
//!    the Kalman smoother for heart rate, forward/back fill for steps, … Gaps longer than the
//!    configured maximum are non-wear and stay empty.
//! 3. In one transaction, replace the job's rows in `imputed_data` (observed points with
//!    `is_imputed = false`, filled points with `true`; empty points are not written) and
//!    record the method, the model parameters and a summary on the job.
//!
//! The worker and `wearhouse-impute run` both call [`execute`], so they cannot differ.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use wearhouse_core::store::imputed::{self, OutputRow};
pub use wearhouse_core::store::imputed::{aggregate, default_range, floor_to_grid, grid_step};
use wearhouse_core::store::jobs::{self as queue, Claim, JobRecord, JobStatus};
use wearhouse_core::store::lifecycle;
use wearhouse_core::{ImputationStrategy, Metric, TimeRange};

use crate::arima::{ArimaOrder, FitOptions, OrderGrid};
use crate::fill::{FillConfig, Filled, fill_metric};

/// Settings that shape how a job fills, shared by the worker and `run`.
#[derive(Debug, Clone, Args)]
pub struct JobSettings {
    /// Longest gap that is filled, in minutes; longer gaps are non-wear and stay empty.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_GAP_MINUTES", default_value_t = 60)]
    pub max_gap_minutes: u32,
    /// Fixed ARIMA order `p,d,q`; without it the order with the lowest AIC over p ≤ 2,
    /// d ≤ 1, q ≤ 2 is used.
    #[arg(long, env = "WEARHOUSE_IMPUTE_ORDER")]
    pub order: Option<ArimaOrder>,
    /// Seconds between heartbeats of a running job.
    #[arg(long, env = "WEARHOUSE_IMPUTE_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u64,
}

/// The defaults of the command line (environment variables aside).
impl Default for JobSettings {
    fn default() -> Self {
        wearhouse_core::config::defaults()
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job names a metric outside the catalogue.
    #[error("unknown metric {0:?}")]
    UnknownMetric(String),
    /// The stored range is not a valid range.
    #[error("invalid range")]
    Range(#[source] wearhouse_core::Error),
    /// The range holds more grid points than a job may.
    #[error("the range holds {points} points at {step_secs} s; at most {MAX_POINTS} per job")]
    TooLong { points: i64, step_secs: i64 },
    /// The fill (an ARIMA fit) failed.
    #[error("filling failed")]
    Fill(#[from] crate::fill::FillError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] wearhouse_core::Error),
    /// Another worker took the job after this one's lease expired; its result was discarded.
    #[error("the lease on the job was lost")]
    LeaseLost,
    /// The participant withdrew: their data is kept as it is, nothing more is derived.
    #[error("the participant is withdrawn; their data is no longer processed")]
    Withdrawn,
    /// The fill task panicked.
    #[error("the fill task failed: {0}")]
    Task(String),
}

impl JobError {
    /// Whether the failure says nothing about the job itself (the database went away, the
    /// lease was lost): the job is then left for the lease to expire and be taken again.
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Database(e) => e.kind() == wearhouse_core::ErrorKind::Unavailable,
            JobError::LeaseLost => true,
            _ => false,
        }
    }
}

/// Most grid points one job may cover (a year of minutes); longer ranges are split by the
/// caller.
pub const MAX_POINTS: i64 = 366 * 1440;

/// What a job did, stored in `imputation_jobs.summary` and printed by `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Grid interval in seconds.
    pub grid_seconds: i64,
    /// Grid points in the range.
    pub points: usize,
    /// Points with a measured value.
    pub points_observed: usize,
    /// Runs of consecutive missing points.
    pub gaps: usize,
    /// Of those, runs short enough to be filled.
    pub gaps_filled: usize,
    /// Points given an imputed value.
    pub points_filled: usize,
    /// Missing points left empty (non-wear gaps, or gaps the method cannot fill).
    pub points_left_empty: usize,
    /// Longest run of missing points.
    pub longest_gap: usize,
    /// Longest run that was filled (gaps longer are non-wear).
    pub max_gap_points: usize,
}

/// The outcome of a successful job.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub job_id: uuid::Uuid,
    pub method: String,
    pub parameters: serde_json::Value,
    pub summary: Summary,
    /// Rows written to `imputed_data`.
    pub rows_written: u64,
}

/// The method name stored in `imputed_data.method` and on the job.
pub fn method_name(s: ImputationStrategy) -> &'static str {
    match s {
        ImputationStrategy::Arima => "arima",
        ImputationStrategy::ForwardBackFill => "forward_back_fill",
        ImputationStrategy::Linear => "linear",
        ImputationStrategy::None => "none",
    }
}

/// The series of a job on its grid: timestamps, numeric values (missing = `None`) and labels.
struct Grid {
    times: Vec<DateTime<Utc>>,
    values: Vec<Option<f64>>,
    labels: Vec<Option<String>>,
}

async fn read_grid(pool: &PgPool, job: &JobRecord, metric: Metric) -> Result<Grid, JobError> {
    let range = TimeRange::new(job.range_start, job.range_end).map_err(JobError::Range)?;
    let step = grid_step(metric);
    let first = floor_to_grid(range.start, step);
    // Intervals starting before the end: the last one may reach past it (its samples up to
    // the end count).
    let step_secs = step.num_seconds();
    let points = ((range.end - first).num_seconds() + step_secs - 1).div_euclid(step_secs);
    if points > MAX_POINTS {
        return Err(JobError::TooLong {
            points,
            step_secs: step.num_seconds(),
        });
    }
    let n = usize::try_from(points).unwrap_or(0);
    let times: Vec<_> = (0..points).map(|k| first + step * k as i32).collect();
    let mut values = vec![None; n];
    let mut labels = vec![None; n];
    let mut conn = pool.acquire().await.map_err(wearhouse_core::Error::from)?;
    let buckets = imputed::read_buckets(
        &mut conn,
        &job.participant_id,
        metric,
        range,
        step,
        aggregate(metric),
    )
    .await?;
    for b in buckets {
        let k = (b.bucket - first)
            .num_seconds()
            .div_euclid(step.num_seconds());
        if let Ok(k) = usize::try_from(k)
            && k < n
        {
            values[k] = b.value_numeric.filter(|v| v.is_finite());
            labels[k] = b.value_text;
        }
    }
    Ok(Grid {
        times,
        values,
        labels,
    })
}

fn summarise(values: &[Option<f64>], filled: &Filled, step: TimeDelta, max_gap: usize) -> Summary {
    let mut gaps = 0;
    let mut gaps_filled = 0;
    let mut longest = 0;
    let mut t = 0;
    while t < values.len() {
        if values[t].is_some() {
            t += 1;
            continue;
        }
        let start = t;
        while t < values.len() && values[t].is_none() {
            t += 1;
        }
        gaps += 1;
        longest = longest.max(t - start);
        if filled.imputed[start..t].iter().any(|b| *b) {
            gaps_filled += 1;
        }
    }
    let observed = values.iter().filter(|v| v.is_some()).count();
    let points_filled = filled.imputed_count();
    Summary {
        grid_seconds: step.num_seconds(),
        points: values.len(),
        points_observed: observed,
        gaps,
        gaps_filled,
        points_filled,
        points_left_empty: values.len() - observed - points_filled,
        longest_gap: longest,
        max_gap_points: max_gap,
    }
}

fn parameters(filled: &Filled, step: TimeDelta, max_gap: usize) -> serde_json::Value {
    let mut p = json!({
        "method": method_name(filled.method),
        "grid_seconds": step.num_seconds(),
        "max_gap_points": max_gap,
    });
    if let Some(fit) = &filled.model {
        let values = fit.params.to_vec(fit.order);
        let coefficients: serde_json::Map<_, _> = fit
            .order
            .param_names()
            .into_iter()
            .zip(values)
            .filter(|(name, _)| name != "sigma2")
            .map(|(name, v)| (name, json!(v)))
            .collect();
        p["order"] = json!([fit.order.p, fit.order.d, fit.order.q]);
        p["coefficients"] = serde_json::Value::Object(coefficients);
        p["sigma2"] = json!(fit.params.sigma2);
        p["loglik"] = json!(fit.loglike);
        p["aic"] = json!(fit.aic);
        p["nobs"] = json!(fit.nobs);
    }
    p
}

/// Runs a claimed job: reads, fills, and writes its output and result in one transaction,
/// heartbeating meanwhile. On success the job is `succeeded`; on failure the caller decides
/// (see [`JobError::is_transient`]) and [`fail`] records a lasting one.
#[tracing::instrument(skip_all, err, fields(job_id = %claim.job.id, participant = %claim.job.participant_id, metric = %claim.job.data_type))]
pub async fn execute(
    pool: &PgPool,
    claim: &Claim,
    settings: &JobSettings,
) -> Result<Outcome, JobError> {
    let beat = Duration::from_secs(settings.heartbeat_secs.max(1));
    let work = run_claimed(pool, claim, settings);
    // The heartbeats run beside the work, not in turns with it: a heartbeat that falls due
    // while the output is written waits for the job's row, which the writing transaction
    // holds, and that transaction can only commit if the work goes on being polled.
    let heartbeats = async {
        let mut ticker = tokio::time::interval(beat);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            // A missed heartbeat is retried at the next tick; the lease spans several.
            match pool.acquire().await {
                Ok(mut conn) => match queue::heartbeat(&mut conn, claim).await {
                    Ok(true) => {}
                    Ok(false) if committed_by(&mut conn, claim).await => {
                        // The work has committed; its answer is on its way.
                        std::future::pending::<()>().await;
                    }
                    Ok(false) => return JobError::LeaseLost,
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                },
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
        }
    };
    tokio::select! {
        // The work first: once it has committed, a heartbeat that finds the job no longer
        // running must not turn the success into a lost lease.
        biased;
        result = work => result,
        lost = heartbeats => Err(lost),
    }
}

/// Whether the job of `claim` has been finished by that claim: a heartbeat finds it so when it
/// waited for the finishing transaction, which committed before the work has read its answer.
async fn committed_by(conn: &mut sqlx::PgConnection, claim: &Claim) -> bool {
    queue::get(conn, claim.job.id).await.is_ok_and(|j| {
        j.is_some_and(|j| {
            j.status == JobStatus::Succeeded
                && j.worker.as_deref() == Some(claim.worker.as_str())
                && j.attempts == claim.attempt()
        })
    })
}

async fn run_claimed(
    pool: &PgPool,
    claim: &Claim,
    settings: &JobSettings,
) -> Result<Outcome, JobError> {
    let job = &claim.job;
    if lifecycle::is_withdrawn(pool, &job.participant_id).await? {
        return Err(JobError::Withdrawn);
    }
    let metric = Metric::parse(&job.data_type)
        .map_err(|_| JobError::UnknownMetric(job.data_type.clone()))?;
    let step = grid_step(metric);
    let grid = read_grid(pool, job, metric).await?;
    let max_gap =
        usize::try_from(i64::from(settings.max_gap_minutes) * 60 / step.num_seconds()).unwrap_or(0);
    let config = FillConfig {
        max_gap,
        order: settings.order,
        grid: OrderGrid::default(),
        fit: FitOptions::default(),
    };
    // The fit is CPU-bound for seconds; off the async threads, heartbeats keep going.
    let values = grid.values.clone();
    let filled = tokio::task::spawn_blocking(move || fill_metric(metric, &values, &config))
        .await
        .map_err(|e| JobError::Task(e.to_string()))??;
    let summary = summarise(&grid.values, &filled, step, max_gap);
    let parameters = parameters(&filled, step, max_gap);
    let method = method_name(filled.method);
    let rows: Vec<OutputRow> = grid
        .times
        .iter()
        .enumerate()
        .filter_map(|(k, &timestamp)| {
            let label = grid.labels[k].clone();
            let value = filled.values[k];
            (value.is_some() || label.is_some()).then_some(OutputRow {
                timestamp,
                value_numeric: value,
                value_text: label,
                is_imputed: filled.imputed[k],
            })
        })
        .collect();
    let summary_json = serde_json::to_value(&summary).expect("a summary serialises");
    let mut tx = pool.begin().await.map_err(wearhouse_core::Error::from)?;
    if !queue::lock_claim(&mut tx, claim).await? {
        return Err(JobError::LeaseLost);
    }
    let rows_written = imputed::replace_output(&mut tx, job, method, &rows).await?;
    queue::mark_succeeded(&mut tx, claim, method, &parameters, &summary_json).await?;
    tx.commit().await.map_err(wearhouse_core::Error::from)?;
    tracing::info!(
        method,
        points = summary.points,
        filled = summary.points_filled,
        left_empty = summary.points_left_empty,
        "job succeeded"
    );
    Ok(Outcome {
        job_id: job.id,
        method: method.to_owned(),
        parameters,
        summary,
        rows_written,
    })
}

/// Records a lasting failure on the job (if this claim still holds it).
pub async fn fail(pool: &PgPool, claim: &Claim, error: &JobError) -> Result<(), JobError> {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let mut conn = pool.acquire().await.map_err(wearhouse_core::Error::from)?;
    queue::mark_failed(&mut conn, claim, &message).await?;
    Ok(())
}
