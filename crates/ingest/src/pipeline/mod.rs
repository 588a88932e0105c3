//! The delta load: for every active participant with a provider, each metric of its source is
//! fetched from the watermark's local day up to the device's last sync, written through the
//! [`Sink`], and only then is the watermark advanced. Participants are processed by a bounded
//! number of concurrent workers; a per-participant advisory lock keeps two workers (in this or
//! another process) off the same participant.
//!
//! A run's outcome is **failure** when any participant failed for a reason other than a spent
//! request quota (resumed next run) or a revoked grant (the participant is marked as needing
//! re-consent, which has its own alert), or when the run's own bookkeeping failed. A metric
//! whose scope the participant did not grant, or whose endpoint the provider does not offer,
//! is skipped for that participant and reported, and is no failure: only a new consent or the
//! provider can change it, and failing every run over it would hide real failures.

mod participant;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use futures::StreamExt as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::collection;
use wearhouse_core::store::{self, adherence, participants};
use wearhouse_core::{Metric, ParticipantId, TimeRange};

use crate::metrics::{IngestMetrics, Outcome};
use crate::runs;
pub use crate::runs::{RunReport, RunStatus, Skipped};
use crate::sink::Sink;
use crate::sources::registry::Sources;

/// A run that changed at least this many rows (a first load, a backfill, a synthetic cohort)
/// refreshes the planner's statistics before the rollup and adherence refreshes read what it
/// wrote, and has TimescaleDB compress its 1-minute buckets as it materialises them.
const ANALYZE_AFTER_ROWS: u64 = 100_000;

/// How a run is carried out.
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// Participants processed at once. Each holds one database connection while it works.
    /// Default: 4 for provider runs, whose time goes to waiting on the provider's API; the
    /// number of CPUs for synthetic loads, whose time goes to the database (more writers than
    /// cores only contend: 100 × 30 days took twice as long with 8 as with 2 on 2 cores).
    #[arg(long, env = "WEARHOUSE_INGEST_WORKERS")]
    pub workers: Option<usize>,

    /// For a participant's first load: fetch from this local day (it may be before
    /// enrolment), unless the participant has a start of their own (`participant
    /// set-backfill`, `enroll --backfill-from`, the Participants page). Default: the
    /// enrolment day. A start before the provider account existed is clamped to that day.
    #[arg(
        long,
        env = "WEARHOUSE_INGEST_BACKFILL_FROM",
        value_name = "YYYY-MM-DD"
    )]
    pub backfill_from: Option<NaiveDate>,

    /// After a large load on TimescaleDB, materialise the 1-minute buckets row by row instead
    /// of compressing them as they are materialised (TimescaleDB marks that as experimental;
    /// this turns it off without a new release). About twice as slow for a large load.
    #[arg(long, env = "WEARHOUSE_NO_COMPRESS_ON_REFRESH")]
    pub no_compress_on_refresh: bool,

    /// Collect only these metrics (comma-separated catalogue names, e.g.
    /// `heart_rate,steps,sleep_stage`), on top of what each participant's study collects.
    /// Default: every metric the study collects.
    #[arg(
        long,
        env = "WEARHOUSE_INGEST_METRICS",
        value_delimiter = ',',
        value_name = "METRIC,…"
    )]
    pub metrics: Option<Vec<Metric>>,

    /// The alert on participants needing re-consent fires for those who have waited longer
    /// than this many days (exported as the `days` label of
    /// `wearhouse_ingest_participants_needing_reconsent_longer`).
    #[arg(
        long,
        env = "WEARHOUSE_INGEST_RECONSENT_ALERT_DAYS",
        default_value_t = Self::RECONSENT_ALERT_DAYS
    )]
    pub reconsent_alert_days: u32,
}

/// The settings of a run without flags, as the command line's defaults give them.
impl Default for PipelineArgs {
    fn default() -> Self {
        PipelineArgs {
            workers: None,
            backfill_from: None,
            no_compress_on_refresh: false,
            metrics: None,
            reconsent_alert_days: Self::RECONSENT_ALERT_DAYS,
        }
    }
}

impl PipelineArgs {
    /// Workers of a provider run unless `--workers` says otherwise.
    pub const PROVIDER_WORKERS: usize = 4;

    /// Days of waiting for re-consent after which the alert fires, unless set.
    pub const RECONSENT_ALERT_DAYS: u32 = 7;

    fn workers(&self) -> usize {
        self.workers.unwrap_or(Self::PROVIDER_WORKERS).max(1)
    }

    /// Database connections a provider run needs at once: one per worker (each holds its
    /// participant's advisory lock on its own connection for as long as it works, waiting
    /// on the provider included), one for the run's bookkeeping and one for the rest of the
    /// process (the daemon's callbacks and upkeep).
    pub fn connections(&self) -> u32 {
        u32::try_from(self.workers())
            .unwrap_or(u32::MAX)
            .saturating_add(2)
    }

    /// Whether `--metrics` lets the run collect `metric`.
    fn collects(&self, metric: Metric) -> bool {
        self.metrics.as_ref().is_none_or(|m| m.contains(&metric))
    }
}

/// What happened to one participant in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantOutcome {
    /// Everything up to the last sync is loaded.
    Loaded,
    /// The device never synced: nothing to load yet.
    NeverSynced,
    /// Another worker holds the participant.
    Locked,
    /// The provider's request budget is spent; the next run resumes from the watermark.
    QuotaExhausted,
    /// The grant is revoked; the participant is marked as needing re-consent.
    NeedsReconsent,
    /// The run stopped before this participant started.
    NotStarted,
    /// Withdrawn (or marked as needing re-consent) after the run started: not loaded.
    NoLongerActive,
    /// Something failed; the message is also in `ingest_state.last_error`.
    Failed(String),
}

/// What one participant's load wrote.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Samples handed to the sink.
    samples: u64,
    /// Rows inserted or changed.
    changed: u64,
    /// Metrics skipped (not failed), with the scope or the provider's reason.
    skipped: Vec<(Metric, crate::metrics::SkipReason, String)>,
    /// Earliest and latest timestamp written.
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Tally {
    fn extend(&mut self, timestamps: impl Iterator<Item = DateTime<Utc>>) {
        for t in timestamps {
            self.span = Some(match self.span {
                Some((a, b)) => (a.min(t), b.max(t)),
                None => (t, t),
            });
        }
    }
}

/// A participant as the pipeline reads it.
type Candidate = participants::Loadable;

/// The delta load.
#[derive(Clone)]
pub struct Pipeline {
    pool: PgPool,
    sink: Sink,
    sources: Sources,
    metrics: IngestMetrics,
    args: PipelineArgs,
    only: Option<Vec<String>>,
}

impl Pipeline {
    /// A pipeline over `pool` with these sources.
    pub async fn new(
        pool: PgPool,
        sources: Sources,
        metrics: IngestMetrics,
        args: PipelineArgs,
    ) -> anyhow::Result<Self> {
        let sink = Sink::connect(&pool).await?;
        Ok(Pipeline {
            pool,
            sink,
            sources,
            metrics,
            args,
            only: None,
        })
    }

    /// Restricts runs to these participants (the `synthetic` command's cohort).
    pub fn only(mut self, participant_ids: Vec<String>) -> Self {
        self.only = Some(participant_ids);
        self
    }

    /// One delta load over every eligible participant. Participants already started finish
    /// when `cancel` fires; the rest wait for the next run. The run is recorded in
    /// `ingest_runs` and in the metrics, unless a shutdown cut it short.
    pub async fn run(&self, cancel: &CancellationToken) -> anyhow::Result<RunReport> {
        let started_at = Utc::now();
        let clock = Instant::now();
        self.metrics.set_run_in_progress(true);
        let result = self.run_inner(cancel).await;
        self.metrics.set_run_in_progress(false);
        let seconds = clock.elapsed().as_secs_f64();
        let (outcome, report) = match &result {
            Ok(r) if r.interrupted() => {
                tracing::warn!(
                    not_started = r.not_started,
                    "run interrupted by shutdown; not counted"
                );
                return result;
            }
            Ok(r) => (r.outcome(), r.clone()),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "run failed");
                (Outcome::Failure, RunReport::default())
            }
        };
        let finished_at = Utc::now();
        self.metrics.run_finished(
            outcome,
            seconds,
            finished_at.timestamp_millis() as f64 / 1000.0,
        );
        self.metrics.run_participants(&report.outcome_counts());
        if let Err(e) = runs::record(&self.pool, started_at, finished_at, outcome, &report).await {
            tracing::error!(error = %e, "could not record the run");
        }
        tracing::info!(
            outcome = outcome.as_str(),
            seconds,
            participants = report.participants,
            loaded = report.loaded,
            failed = report.failed.len(),
            quota_exhausted = report.quota_exhausted.len(),
            needs_reconsent = report.needs_reconsent.len(),
            awaiting_reconsent = report.awaiting_reconsent.len(),
            locked = report.locked.len(),
            skipped_metrics = report.skipped.len(),
            samples = report.samples,
            changed = report.changed,
            "run finished"
        );
        result
    }

    async fn run_inner(&self, cancel: &CancellationToken) -> anyhow::Result<RunReport> {
        let candidates = participants::loadable(&self.pool, self.only.as_deref()).await?;
        let total = candidates.len();
        tracing::info!(
            participants = total,
            workers = self.args.workers(),
            "run started"
        );
        let this = Arc::new(self.clone());
        let mut outcomes = futures::stream::iter(candidates.into_iter().enumerate())
            .map(|(i, c)| {
                let this = Arc::clone(&this);
                let cancel = cancel.clone();
                async move {
                    if cancel.is_cancelled() {
                        return (
                            c.participant_id,
                            ParticipantOutcome::NotStarted,
                            Tally::default(),
                        );
                    }
                    let (outcome, tally) = this.process(&c).await;
                    tracing::info!(
                        participant = %c.participant_id,
                        progress = format!("{}/{total}", i + 1),
                        outcome = ?outcome,
                        samples = tally.samples,
                        "participant done"
                    );
                    (c.participant_id, outcome, tally)
                }
            })
            .buffer_unordered(self.args.workers());
        let mut report = RunReport {
            participants: total,
            ..RunReport::default()
        };
        let mut written = Vec::new();
        while let Some((id, outcome, tally)) = outcomes.next().await {
            report.samples += tally.samples;
            report.changed += tally.changed;
            report
                .skipped
                .extend(
                    tally
                        .skipped
                        .into_iter()
                        .map(|(metric, reason, detail)| Skipped {
                            participant_id: id.clone(),
                            metric,
                            reason,
                            detail,
                        }),
                );
            if let Some(span) = tally.span {
                written.push((id.clone(), span));
            }
            match outcome {
                ParticipantOutcome::Loaded => report.loaded += 1,
                ParticipantOutcome::NeverSynced => report.never_synced += 1,
                ParticipantOutcome::Locked => report.locked.push(id),
                ParticipantOutcome::QuotaExhausted => report.quota_exhausted.push(id),
                ParticipantOutcome::NeedsReconsent => report.needs_reconsent.push(id),
                ParticipantOutcome::NotStarted => report.not_started += 1,
                ParticipantOutcome::NoLongerActive => report.no_longer_active += 1,
                ParticipantOutcome::Failed(e) => report.failed.push((id, e)),
            }
        }
        // Continuous aggregates for everything written (and anything a crashed run left).
        // After a large load the planner's statistics are refreshed on both sides of it: the
        // raw samples before, so the refresh plans for the rows it will read (and compresses
        // the 1-minute buckets as it materialises them), the rollup after.
        let large = report.changed >= ANALYZE_AFTER_ROWS;
        let clock = Instant::now();
        if large {
            store::analyze_samples(&mut *self.pool.acquire().await?).await?;
        }
        let compress = large && !self.args.no_compress_on_refresh;
        self.sink
            .refresh_pending(&self.pool, self.args.workers(), compress)
            .await?;
        if large {
            store::analyze_rollups(&mut *self.pool.acquire().await?).await?;
            tracing::info!(
                seconds = clock.elapsed().as_secs_f64(),
                "rollups refreshed and planner statistics renewed after a large load"
            );
        }
        // Adherence days read the 1-minute rollup, so they follow its refresh: each
        // participant's written span, recomputed for that participant only, as many at once
        // as there are workers.
        let refreshed = written.len();
        let mut adherence = futures::stream::iter(written)
            .map(|(id, (from, to))| {
                let pool = self.pool.clone();
                async move {
                    let range = TimeRange::new(from, to + chrono::Duration::microseconds(1))?;
                    let mut conn = pool.acquire().await?;
                    let days =
                        adherence::refresh(&mut conn, range, Some(&ParticipantId::parse(&id)?))
                            .await?;
                    tracing::debug!(participant = %id, days, "adherence refreshed");
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(self.args.workers());
        while let Some(done) = adherence.next().await {
            done?;
        }
        tracing::info!(participants = refreshed, "adherence days refreshed");
        report.awaiting_reconsent = collection::needing_reconsent(&self.pool).await?;
        self.metrics
            .set_needing_reconsent(report.awaiting_reconsent.len() as i64);
        let days = self.args.reconsent_alert_days;
        let overdue = collection::count_needing_reconsent_longer_than(&self.pool, days).await?;
        self.metrics.set_needing_reconsent_longer(days, overdue);
        report
            .skipped
            .sort_by(|a, b| (&a.participant_id, a.metric).cmp(&(&b.participant_id, b.metric)));
        Ok(report)
    }
}
