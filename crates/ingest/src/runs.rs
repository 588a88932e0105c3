//! What a run did ([`RunReport`]) and the record of finished runs (`ingest_runs`), from which
//! the daemon restores its "last success" metric at start. The pipeline fills the report;
//! this module depends on nothing of the pipeline.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wearhouse_core::Metric;
use wearhouse_core::store::runs::{self, FinishedRun};

use crate::metrics::{Outcome, SkipReason};

/// Participant ids listed per summary line; the rest are counted.
const LISTED_IDS: usize = 10;

/// What a run did. Participants are listed by id per category.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub participants: usize,
    pub loaded: usize,
    /// Held by another worker or process.
    pub locked: Vec<String>,
    /// Deferred to a later run: the provider's request budget was spent.
    pub quota_exhausted: Vec<String>,
    /// Marked as needing re-consent in this run.
    pub needs_reconsent: Vec<String>,
    /// Every active participant needing re-consent after the run, those marked in earlier
    /// runs included (they are no longer loaded, so only this says data is missing).
    pub awaiting_reconsent: Vec<String>,
    pub never_synced: usize,
    pub not_started: usize,
    /// Withdrawn after the run started, so not loaded.
    pub no_longer_active: usize,
    pub failed: Vec<(String, String)>,
    /// Metrics skipped for a participant (scope not granted, not offered): reported, not
    /// failures.
    pub skipped: Vec<Skipped>,
    /// Samples handed to the sink.
    pub samples: u64,
    /// Rows inserted or changed in `raw_data`.
    pub changed: u64,
}

/// A metric skipped for a participant in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub participant_id: String,
    pub metric: Metric,
    pub reason: SkipReason,
    /// The scope not granted, or the provider's words for what it does not offer.
    pub detail: String,
}

/// What a run's exit status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Everything due was loaded (metrics skipped for a declined scope or an endpoint the
    /// provider does not offer included: they are not due). Exit status 0.
    Complete,
    /// A participant failed, or the run's own bookkeeping did. Exit status 1.
    Failed,
    /// Nothing failed, but some participants were deferred (quota), held by another process,
    /// or need re-consent: their data is not all in yet. Exit status 3.
    Incomplete,
}

impl RunStatus {
    /// The process exit status of `wearhouse-ingest run` (2 is a usage error, from clap).
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Complete => 0,
            RunStatus::Failed => 1,
            RunStatus::Incomplete => 3,
        }
    }
}

impl RunReport {
    /// Success unless a participant failed (quota and re-consent are not failures).
    pub fn outcome(&self) -> Outcome {
        if self.failed.is_empty() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    /// Complete, failed, or incomplete (see [`RunStatus`]).
    pub fn status(&self) -> RunStatus {
        if !self.failed.is_empty() {
            RunStatus::Failed
        } else if !self.quota_exhausted.is_empty()
            || !self.locked.is_empty()
            || !self.needs_reconsent.is_empty()
            || !self.awaiting_reconsent.is_empty()
            || self.interrupted()
        {
            RunStatus::Incomplete
        } else {
            RunStatus::Complete
        }
    }

    /// Whether a shutdown cut the run short.
    pub fn interrupted(&self) -> bool {
        self.not_started > 0
    }

    /// Participants per outcome, as the per-run metrics label them.
    pub fn outcome_counts(&self) -> [(&'static str, usize); 7] {
        [
            ("loaded", self.loaded),
            ("never_synced", self.never_synced),
            ("failed", self.failed.len()),
            ("deferred_quota", self.quota_exhausted.len()),
            ("locked", self.locked.len()),
            ("needs_reconsent", self.needs_reconsent.len()),
            ("no_longer_active", self.no_longer_active),
        ]
    }

    /// One line per category with participants in it: counts and (up to ten) ids.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "run: {} participant(s): {} loaded, {} never synced, {} failed, {} deferred, \
             {} locked, {} need re-consent; {} samples, {} rows changed",
            self.participants,
            self.loaded,
            self.never_synced,
            self.failed.len(),
            self.quota_exhausted.len(),
            self.locked.len(),
            self.awaiting_reconsent
                .len()
                .max(self.needs_reconsent.len()),
            self.samples,
            self.changed,
        );
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(p, e)| format!("{p} ({e})"))
            .collect();
        line(&mut out, "failed", &failed, "");
        line(
            &mut out,
            "deferred (request quota spent)",
            &self.quota_exhausted,
            "; the next run resumes them",
        );
        line(
            &mut out,
            "locked by another process",
            &self.locked,
            "; loaded by that process or the next run",
        );
        let reconsent = if self.awaiting_reconsent.is_empty() {
            &self.needs_reconsent
        } else {
            &self.awaiting_reconsent
        };
        line(
            &mut out,
            "need re-consent",
            reconsent,
            "; see `wearhouse-ingest reconsent-list`",
        );
        if self.not_started > 0 {
            let _ = writeln!(
                out,
                "not started: {} (the run was stopped)",
                self.not_started
            );
        }
        for (reason, title) in [
            (
                SkipReason::ScopeNotGranted,
                "metrics skipped, scope not granted",
            ),
            (
                SkipReason::NotOffered,
                "metrics skipped, not offered by the provider",
            ),
        ] {
            let items: Vec<String> = self
                .skipped
                .iter()
                .filter(|s| s.reason == reason)
                .map(|s| format!("{} {} ({})", s.participant_id, s.metric.name(), s.detail))
                .collect();
            line(&mut out, title, &items, "");
        }
        out
    }
}

/// `title: n: a, b, … and k more<tail>` when there are items.
fn line(out: &mut String, title: &str, items: &[String], tail: &str) {
    if items.is_empty() {
        return;
    }
    let mut listed = items
        .iter()
        .take(LISTED_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED_IDS {
        let _ = write!(listed, " and {} more", items.len() - LISTED_IDS);
    }
    let _ = writeln!(out, "{title}: {}: {listed}{tail}", items.len());
}

/// Records a finished run.
pub async fn record(
    pool: &PgPool,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: Outcome,
    report: &RunReport,
) -> Result<(), sqlx::Error> {
    runs::record(
        pool,
        &FinishedRun {
            started_at,
            finished_at,
            outcome: outcome.as_str(),
            participants: report.participants as i32,
            failed: report.failed.len() as i32,
            samples: report.samples as i64,
        },
    )
    .await
}

/// When the last successful run finished, if any did.
pub async fn last_success(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    runs::last_success(pool).await
}
