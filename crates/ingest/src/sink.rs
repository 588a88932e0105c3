//! The sink: where every source's samples end up. It writes through the core COPY writer in
//! bounded batches and keeps TimescaleDB's continuous aggregates current: each written span is
//! queued in `rollup_refresh_pending` before the watermarks move past it, and refreshed (and
//! dequeued) at the end of the run, so a crash in between is repaired by the next run.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tracing::instrument;
use wearhouse_core::store::writer::{self, SampleWriter, WriteSummary};
use wearhouse_core::store::{self, Backend, pending_refresh};
use wearhouse_core::{Sample, TimeRange};

/// Largest number of samples written in one transaction: big enough for COPY to pay off,
/// small enough that a batch's memory and lock time stay bounded.
pub const BATCH_SAMPLES: usize = 50_000;

/// Writes samples and keeps the rollups current.
#[derive(Debug, Clone)]
pub struct Sink {
    writer: SampleWriter,
    backend: Backend,
}

impl Sink {
    /// A sink for the database behind `pool`; detects its backend.
    pub async fn connect(pool: &PgPool) -> Result<Sink, wearhouse_core::Error> {
        let mut conn = pool.acquire().await?;
        let backend = store::detect_backend(&mut conn).await?;
        tracing::info!(backend = %backend, "storage backend");
        Ok(Sink {
            writer: SampleWriter::new(&backend),
            backend,
        })
    }

    /// The backend written to.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Writes `samples` in batches of at most [`BATCH_SAMPLES`] and, where the rollups are
    /// continuous aggregates, queues the span for refreshing. The caller advances watermarks
    /// only after this returns.
    #[instrument(skip_all, fields(samples = samples.len()), err)]
    pub async fn write(
        &self,
        conn: &mut PgConnection,
        samples: &[Sample],
    ) -> Result<WriteSummary, wearhouse_core::Error> {
        let mut summary = WriteSummary::default();
        for batch in samples.chunks(BATCH_SAMPLES) {
            summary.absorb(self.writer.write(conn, batch).await?);
        }
        if !self.backend.rollups_are_tables
            && let Some(span) = span_of(samples)
        {
            // The whole written span, not only the changed rows: after a crash between a write
            // and its refresh, the repeated write changes nothing, yet the span still needs one.
            pending_refresh::queue(&mut *conn, span).await?;
        }
        Ok(summary)
    }

    /// Refreshes the continuous aggregates for every queued span (merged where they overlap),
    /// up to `parallel` day windows at once, and dequeues them. A no-op on plain PostgreSQL.
    /// `bulk`: after a large load, see [`writer::refresh_rollups_concurrently`].
    #[instrument(skip_all, err)]
    pub async fn refresh_pending(
        &self,
        pool: &PgPool,
        parallel: usize,
        bulk: bool,
    ) -> Result<usize, wearhouse_core::Error> {
        if self.backend.rollups_are_tables {
            return Ok(0);
        }
        let rows = pending_refresh::list(pool).await?;
        let Some(max_id) = rows.iter().map(|r| r.id).max() else {
            return Ok(0);
        };
        let spans = merge(rows.into_iter().map(|r| (r.range_start, r.range_end)))
            .into_iter()
            .map(|(start, end)| TimeRange::new(start, end))
            .collect::<Result<Vec<_>, _>>()?;
        let clock = std::time::Instant::now();
        writer::refresh_rollups_concurrently(pool, &self.backend, &spans, parallel, bulk).await?;
        pending_refresh::dequeue_through(pool, max_id).await?;
        tracing::info!(
            spans = spans.len(),
            seconds = clock.elapsed().as_secs_f64(),
            "continuous aggregates refreshed"
        );
        Ok(spans.len())
    }
}

/// `[earliest, latest]` of the samples as a half-open range.
fn span_of(samples: &[Sample]) -> Option<TimeRange> {
    let from = samples.iter().map(|s| s.timestamp).min()?;
    let to = samples.iter().map(|s| s.timestamp).max()?;
    TimeRange::new(from, to + chrono::Duration::microseconds(1)).ok()
}

/// Merges ranges sorted by start wherever they overlap or touch (within a day, since the
/// daily aggregate is refreshed per whole day anyway).
fn merge(
    sorted: impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1 + chrono::Duration::days(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600, 0).unwrap()
    }

    #[test]
    fn overlapping_and_nearby_spans_merge_and_distant_ones_stay_apart() {
        let merged = merge(
            vec![
                (at(0), at(5)),
                (at(3), at(8)),
                (at(20), at(21)),
                (at(100), at(101)),
            ]
            .into_iter(),
        );
        assert_eq!(merged, vec![(at(0), at(21)), (at(100), at(101))]);
    }
}
