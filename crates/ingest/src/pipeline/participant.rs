//! One participant's delta load, under its advisory lock: last sync, then per metric from the
//! watermark's local day to the last sync's local day, written in batches; each batch's
//! watermarks advance only after the batch is in the database. Only the metrics the run and
//! the participant's study collect are fetched, and none whose scope the stored grant lacks.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use sqlx::pool::PoolConnection;
use wearhouse_core::store::{collection, ingest_state, lifecycle, locks, moves, participants};
use wearhouse_core::{Metric, ParticipantId, Sample};

use super::{Candidate, ParticipantOutcome, Pipeline, Tally};
use crate::metrics::SkipReason;
use crate::sink::BATCH_SAMPLES;
use crate::sources::synthetic::local_day_start;
use crate::sources::{Source, SourceError, SourceParticipant};

/// Where one metric's fetching stands within this run.
struct MetricPlan {
    metric: Metric,
    /// The next local day to fetch.
    next: NaiveDate,
    /// The watermark may not pass this in this run (a day the provider has not finished).
    cap: Option<DateTime<Utc>>,
    /// Failed or skipped: not fetched again in this run.
    stopped: bool,
    /// At least one fetch succeeded in this run.
    fetched: bool,
}

/// Samples fetched but not yet written, and the watermarks they allow once written.
#[derive(Default)]
struct Batch {
    samples: Vec<Sample>,
    per_metric: BTreeMap<Metric, u64>,
    advance_to: BTreeMap<Metric, DateTime<Utc>>,
}

impl Pipeline {
    /// Loads one participant; returns the outcome and what was written.
    pub(super) async fn process(&self, c: &Candidate) -> (ParticipantOutcome, Tally) {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                return (
                    ParticipantOutcome::Failed(format!("database: {e}")),
                    Tally::default(),
                );
            }
        };
        match locks::try_lock_ingest(&mut conn, &c.participant_id).await {
            Ok(true) => {}
            Ok(false) => return (ParticipantOutcome::Locked, Tally::default()),
            Err(e) => {
                return (
                    ParticipantOutcome::Failed(format!("database: {e}")),
                    Tally::default(),
                );
            }
        }
        // The candidates were read when the run started; a participant withdrawn since then
        // (or marked as needing re-consent by another worker) is not loaded.
        match lifecycle::is_loadable(&mut *conn, &c.participant_id).await {
            Ok(true) => {}
            Ok(false) => {
                release(conn, &c.participant_id).await;
                return (ParticipantOutcome::NoLongerActive, Tally::default());
            }
            Err(e) => {
                release(conn, &c.participant_id).await;
                return (
                    ParticipantOutcome::Failed(format!("database: {e}")),
                    Tally::default(),
                );
            }
        }
        let mut tally = Tally::default();
        let outcome = match self.load(&mut conn, c, &mut tally).await {
            Ok(o) => o,
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(participant = %c.participant_id, error = %message, "participant failed");
                ParticipantOutcome::Failed(message)
            }
        };
        release(conn, &c.participant_id).await;
        (outcome, tally)
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        c: &Candidate,
        tally: &mut Tally,
    ) -> anyhow::Result<ParticipantOutcome> {
        let id = ParticipantId::parse(&c.participant_id)?;
        let tz: Tz = c
            .timezone
            .parse()
            .map_err(|e| anyhow::anyhow!("participant time zone {:?}: {e}", c.timezone))?;
        let Some(source) = self.sources.get(&c.provider) else {
            anyhow::bail!("{}", self.sources.missing(&c.provider));
        };
        let source = source.as_ref();
        let p = SourceParticipant {
            id: id.clone(),
            timezone: tz,
            provider_user_id: c.provider_user_id.clone(),
            handed_over: moves::not_before(&mut *conn, &id, source.name()).await?,
        };
        let enrolled = c.enrolled_at.with_timezone(&tz).date_naive();
        let start = backfill_start(c, self.args.backfill_from, enrolled);
        let first_day = start.day;
        let collection = collection::of(&mut *conn, &id, source.name()).await?;
        let mut plans = Vec::new();
        let mut not_collected = Vec::new();
        for metric in source.metrics() {
            if !self.args.collects(metric) || !collection.study_collects(metric) {
                not_collected.push(metric);
                continue;
            }
            if let Some(scope) = source.scope(metric)
                && collection.lacks_scope(scope)
            {
                // The stored grant shows the participant declined it: asking would only be
                // refused.
                self.skip_scope(conn, source, &id, metric, scope, tally)
                    .await?;
                continue;
            }
            let next = ingest_state::get(conn, &id, source.name(), metric)
                .await?
                .map_or(first_day, |w| w.with_timezone(&tz).date_naive());
            plans.push(MetricPlan {
                metric,
                next,
                cap: None,
                stopped: false,
                fetched: false,
            });
        }
        if !not_collected.is_empty() {
            collection::clear_scopes_not_granted(&mut *conn, &id, source.name(), &not_collected)
                .await?;
        }

        if let Some(configured) = start.clamped_from
            && plans.iter().any(|m| m.next == first_day)
        {
            tracing::warn!(
                participant = %id,
                source = source.name(),
                configured = %configured,
                from = %first_day,
                "backfill start clamped: the provider account was created on that day, nothing exists before it"
            );
        }
        if plans.is_empty() {
            // Nothing this participant granted is collected: there is nothing to ask.
            return Ok(ParticipantOutcome::Loaded);
        }
        let last_sync = match source.last_sync(&p).await {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(ParticipantOutcome::NeverSynced),
            Err(e) => {
                let metrics: Vec<Metric> = plans.iter().map(|m| m.metric).collect();
                return self
                    .source_failed(conn, source, &p, &metrics, first_day, e)
                    .await;
            }
        };
        participants::set_last_device_sync(conn, &id, last_sync).await?;
        let last_day = last_sync.with_timezone(&tz).date_naive();

        let mut batch = Batch::default();
        let mut errors = Vec::new();
        let mut day = plans.iter().map(|m| m.next).min().unwrap_or(last_day);
        while day <= last_day {
            for plan in plans.iter_mut().filter(|m| !m.stopped && m.next == day) {
                let span = i64::from(source.max_days_per_fetch(plan.metric).max(1));
                let to = (day + Duration::days(span - 1)).min(last_day);
                match source.fetch(&p, plan.metric, day, to).await {
                    Ok(fetched) => {
                        if let Some(pending) = fetched.incomplete_from {
                            let at = local_day_start(pending.max(day), tz);
                            plan.cap = Some(plan.cap.map_or(at, |c| c.min(at)));
                        }
                        let mut mark = if to < last_day {
                            local_day_start(to + Duration::days(1), tz)
                        } else {
                            last_sync
                        };
                        if let Some(cap) = plan.cap {
                            mark = mark.min(cap);
                        }
                        *batch.per_metric.entry(plan.metric).or_default() +=
                            fetched.samples.len() as u64;
                        batch.samples.extend(fetched.samples);
                        batch.advance_to.insert(plan.metric, mark);
                        plan.next = to + Duration::days(1);
                        plan.fetched = true;
                    }
                    // Skipped, not failed: the watermark stays where the last written day
                    // left it, so the metric resumes there once granted or offered.
                    Err(SourceError::ScopeNotGranted { scope }) => {
                        plan.stopped = true;
                        self.skip_scope(conn, source, &id, plan.metric, &scope, tally)
                            .await?;
                    }
                    Err(SourceError::NotOffered { reason }) => {
                        plan.stopped = true;
                        tracing::warn!(
                            participant = %id,
                            source = source.name(),
                            metric = plan.metric.name(),
                            reason,
                            "metric not offered by the provider; skipped for this run"
                        );
                        self.metrics.metric_skipped(
                            source.name(),
                            plan.metric,
                            SkipReason::NotOffered,
                        );
                        tally
                            .skipped
                            .push((plan.metric, SkipReason::NotOffered, reason));
                    }
                    Err(
                        e @ (SourceError::QuotaExhausted { .. }
                        | SourceError::NeedsReconsent { .. }),
                    ) => {
                        self.flush(conn, source, &id, &mut batch, tally).await?;
                        return self
                            .source_failed(conn, source, &p, &[plan.metric], first_day, e)
                            .await;
                    }
                    Err(e) => {
                        plan.stopped = true;
                        let outcome = self
                            .source_failed(conn, source, &p, &[plan.metric], first_day, e)
                            .await?;
                        errors.push(outcome);
                    }
                }
            }
            if batch.samples.len() >= BATCH_SAMPLES {
                self.flush(conn, source, &id, &mut batch, tally).await?;
            }
            day += Duration::days(1);
        }
        self.flush(conn, source, &id, &mut batch, tally).await?;
        let granted: Vec<Metric> = plans
            .iter()
            .filter(|m| m.fetched)
            .map(|m| m.metric)
            .collect();
        if !granted.is_empty() {
            collection::clear_scopes_not_granted(&mut *conn, &id, source.name(), &granted).await?;
        }
        Ok(errors
            .into_iter()
            .next()
            .unwrap_or(ParticipantOutcome::Loaded))
    }

    /// Skips `metric` for the participant because `scope` was not granted: counted, kept for
    /// `reconsent-list`, and no failure.
    async fn skip_scope(
        &self,
        conn: &mut PgConnection,
        source: &dyn Source,
        id: &ParticipantId,
        metric: Metric,
        scope: &str,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        collection::note_scope_not_granted(&mut *conn, id, source.name(), metric, scope).await?;
        tracing::info!(
            participant = %id,
            source = source.name(),
            metric = metric.name(),
            scope,
            "scope not granted; metric skipped"
        );
        self.metrics
            .metric_skipped(source.name(), metric, SkipReason::ScopeNotGranted);
        tally
            .skipped
            .push((metric, SkipReason::ScopeNotGranted, scope.to_owned()));
        Ok(())
    }

    /// Writes the batch, then advances its watermarks: a crash before the advance makes the
    /// next run fetch and write the same days again, which changes nothing.
    async fn flush(
        &self,
        conn: &mut PgConnection,
        source: &dyn Source,
        id: &ParticipantId,
        batch: &mut Batch,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let summary = self.sink.write(conn, &batch.samples).await?;
        for (&metric, &n) in &batch.per_metric {
            self.metrics.samples_written(source.name(), metric, n);
        }
        for (&metric, &mark) in &batch.advance_to {
            ingest_state::advance(conn, id, source.name(), metric, mark).await?;
        }
        tally.samples += batch.samples.len() as u64;
        tally.changed += summary.inserted + summary.updated;
        tally.extend(batch.samples.iter().map(|s| s.timestamp));
        *batch = Batch::default();
        Ok(())
    }

    /// Handles a source's refusal for `metrics`: quota → resume next run; revoked grant →
    /// mark for re-consent; anything else → recorded on the watermarks and reported failed.
    async fn source_failed(
        &self,
        conn: &mut PgConnection,
        source: &dyn Source,
        p: &SourceParticipant,
        metrics: &[Metric],
        first_day: NaiveDate,
        error: SourceError,
    ) -> anyhow::Result<ParticipantOutcome> {
        match error {
            SourceError::QuotaExhausted { retry_after } => {
                self.metrics.source.quota_wait(source.name());
                tracing::warn!(
                    participant = %p.id,
                    source = source.name(),
                    retry_after_secs = retry_after.as_secs(),
                    "request quota spent; resuming next run"
                );
                Ok(ParticipantOutcome::QuotaExhausted)
            }
            // Only the device's last sync is asked for every metric at once; without it
            // nothing can be loaded until the participant grants the scope.
            SourceError::ScopeNotGranted { scope } => {
                let reason =
                    format!("scope not granted: {scope} (needed for the device's last sync)");
                participants::set_needs_reconsent(conn, &p.id, Some(&reason)).await?;
                tracing::warn!(participant = %p.id, source = source.name(), scope, "participant must consent again");
                Ok(ParticipantOutcome::NeedsReconsent)
            }
            SourceError::NeedsReconsent { reason } => {
                participants::set_needs_reconsent(conn, &p.id, Some(&reason)).await?;
                tracing::warn!(participant = %p.id, source = source.name(), reason, "participant must consent again");
                Ok(ParticipantOutcome::NeedsReconsent)
            }
            other => {
                let message = other.to_string();
                for &metric in metrics {
                    if ingest_state::get(conn, &p.id, source.name(), metric)
                        .await?
                        .is_none()
                    {
                        // record_error updates an existing row; the first load starts one at
                        // the day it would fetch from, which is where the next run starts.
                        let start = local_day_start(first_day, p.timezone);
                        ingest_state::advance(conn, &p.id, source.name(), metric, start).await?;
                    }
                    ingest_state::record_error(conn, &p.id, source.name(), metric, &message)
                        .await?;
                }
                tracing::error!(participant = %p.id, source = source.name(), error = %message, "fetch failed");
                Ok(ParticipantOutcome::Failed(message))
            }
        }
    }
}

/// The first local day of a participant's first load, and the start configured before it was
/// clamped, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BackfillStart {
    day: NaiveDate,
    clamped_from: Option<NaiveDate>,
}

/// The participant's own start, else the ingest's `--backfill-from`, else the enrolment day;
/// never before the provider account existed (nothing is served before it) nor after
/// enrolment's day when nothing earlier was asked for.
fn backfill_start(c: &Candidate, default: Option<NaiveDate>, enrolled: NaiveDate) -> BackfillStart {
    let configured = c.backfill_from.or(default).unwrap_or(enrolled);
    match c.provider_account_since {
        Some(since) if configured < since => BackfillStart {
            day: since,
            clamped_from: Some(configured),
        },
        _ => BackfillStart {
            day: configured,
            clamped_from: None,
        },
    }
}

/// Unlocks the participant; a connection that cannot unlock is closed, which releases it.
async fn release(mut conn: PoolConnection<sqlx::Postgres>, participant: &str) {
    let unlocked = locks::unlock_ingest(&mut conn, participant).await;
    if !matches!(unlocked, Ok(true)) {
        let _ = conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(backfill_from: Option<&str>, since: Option<&str>) -> Candidate {
        Candidate {
            participant_id: "P1".into(),
            timezone: "UTC".into(),
            provider: "fitbit".into(),
            provider_user_id: None,
            enrolled_at: "2026-06-10T12:00:00Z".parse().unwrap(),
            backfill_from: backfill_from.map(|d| d.parse().unwrap()),
            provider_account_since: since.map(|d| d.parse().unwrap()),
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_participants_own_start_wins_and_is_clamped_to_the_account() {
        let enrolled = day("2026-06-10");
        let start = |b, since, default: Option<&str>| {
            backfill_start(
                &candidate(b, since),
                default.map(|d| d.parse().unwrap()),
                enrolled,
            )
        };
        // Nothing configured: the enrolment day.
        assert_eq!(start(None, None, None).day, enrolled);
        // The ingest's default reaches before enrolment.
        assert_eq!(start(None, None, Some("2026-01-01")).day, day("2026-01-01"));
        // The participant's own start wins over the default.
        assert_eq!(
            start(Some("2025-12-01"), None, Some("2026-01-01")).day,
            day("2025-12-01")
        );
        // Before the account existed: clamped, and the configured start is kept to say so.
        assert_eq!(
            start(Some("2025-12-01"), Some("2026-03-15"), None),
            BackfillStart {
                day: day("2026-03-15"),
                clamped_from: Some(day("2025-12-01"))
            }
        );
        assert_eq!(
            start(Some("2026-04-01"), Some("2026-03-15"), None).clamped_from,
            None
        );
    }
}
