//! The sample writer: COPY into a per-connection staging table, then one
//! `insert … on conflict` into `raw_data`. A later value for a key replaces the earlier one,
//! loading the same samples twice changes nothing, and where the rollups are tables (plain
//! PostgreSQL, TimescaleDB Apache) the same transaction recomputes exactly the 1m/1h/1d buckets
//! whose raw rows changed.
//!
//! Its parts: `summary` (what a write changed), `copy` (binary COPY encoding) and `rollup`
//! (the rollup tables' upkeep). Refreshing TimescaleDB's continuous aggregates is not writing:
//! it lives in [`crate::store::refresh`], re-exported here for the callers that know it as
//! `writer::refresh_rollups`.

mod copy;
mod rollup;
mod summary;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};

use crate::error::{Error, Result};
use crate::sample::Sample;
use crate::store::Backend;

pub use crate::store::refresh::{refresh_rollups, refresh_rollups_concurrently};
pub use summary::WriteSummary;

pub(crate) use rollup::floor_to;

use copy::{RAW_COPY, STAGING_COPY, copy_rows};
use rollup::{Contributions, existing_minutes, rollup_touched_from_finer, rollup_touched_from_raw};

/// Writes samples into `raw_data`. Cheap to clone; holds only what it learnt of the backend.
#[derive(Debug, Clone)]
pub struct SampleWriter {
    maintain_rollup_tables: bool,
}

const STAGING_DDL: &str = "create temp table if not exists wearhouse_staging (
    timestamp timestamptz not null, participant_id text not null, data_type text not null,
    value_numeric double precision, value_text text) on commit delete rows";

const TOUCHED_DDL: &str = "create temp table if not exists wearhouse_touched (
    timestamp timestamptz not null, participant_id text not null, data_type text not null)
    on commit delete rows";

// Writers that touch the same participant and metric take turns, so each recomputes its
// rollup buckets from raw rows that include the other's committed rows.
const LOCK_SERIES: &str = "select count(pg_advisory_xact_lock(hashtextextended(k, 7)))
    from (select k from unnest($1::text[]) as k order by 1) keys";

// Whether any existing row falls inside a series' span of this batch. When none does, the
// batch cannot conflict and goes straight into raw_data by COPY.
const ANY_EXISTING: &str = "select exists (
      select 1 from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                    as s(p, d, lo, hi)
      where exists (select 1 from raw_data r where r.participant_id = s.p and r.data_type = s.d
                      and r.timestamp >= s.lo and r.timestamp <= s.hi))";

const UPSERT: &str = "with changed as (
      insert into raw_data as r (timestamp, participant_id, data_type, value_numeric, value_text)
      select timestamp, participant_id, data_type, value_numeric, value_text from wearhouse_staging
      on conflict (participant_id, data_type, timestamp) do update
        set value_numeric = excluded.value_numeric, value_text = excluded.value_text
        where r.value_numeric is distinct from excluded.value_numeric
           or r.value_text is distinct from excluded.value_text
      returning (xmax = 0) as inserted, timestamp, participant_id, data_type
    ), touched as (
      insert into wearhouse_touched (timestamp, participant_id, data_type)
      select timestamp, participant_id, data_type from changed where $1
    )
    select count(*) filter (where inserted), count(*) filter (where not inserted),
           min(timestamp), max(timestamp)
    from changed";

impl SampleWriter {
    /// A writer for a database on `backend`.
    pub fn new(backend: &Backend) -> Self {
        SampleWriter {
            maintain_rollup_tables: backend.rollups_are_tables,
        }
    }

    /// Writes `samples` in one transaction (a savepoint when `conn` is already in one).
    /// Within the batch, the last sample for a key wins.
    pub async fn write(&self, conn: &mut PgConnection, samples: &[Sample]) -> Result<WriteSummary> {
        if samples.is_empty() {
            return Ok(WriteSummary::default());
        }
        let order = last_wins_order(samples)?;
        let spans = Spans::of(samples, &order);
        let mut tx = conn.begin().await?;
        if self.maintain_rollup_tables {
            sqlx::query(LOCK_SERIES)
                .bind(spans.lock_keys())
                .execute(&mut *tx)
                .await?;
        }
        let fresh: bool = !sqlx::query_scalar::<_, bool>(ANY_EXISTING)
            .bind(&spans.participant)
            .bind(&spans.data_type)
            .bind(&spans.lo)
            .bind(&spans.hi)
            .fetch_one(&mut *tx)
            .await?;
        let mut summary = None;
        if fresh {
            // Nothing in the batch's spans yet: COPY straight into raw_data. A concurrent
            // writer may still win a key (TimescaleDB path, no series lock); then the
            // savepoint rolls back and the batch takes the upsert path.
            let mut direct = tx.begin().await?;
            match copy_rows(&mut direct, RAW_COPY, samples, &order).await {
                Ok(()) => {
                    direct.commit().await?;
                    summary = Some(WriteSummary {
                        inserted: order.len() as u64,
                        updated: 0,
                        changed_from: spans.lo.iter().min().copied(),
                        changed_to: spans.hi.iter().max().copied(),
                    });
                }
                Err(Error::Database(sqlx::Error::Database(e)))
                    if e.code().as_deref() == Some("23505") =>
                {
                    direct.rollback().await?;
                }
                Err(e) => return Err(e),
            }
        }
        let copied_directly = summary.is_some();
        let summary = match summary {
            Some(s) => s,
            None => self.upsert(&mut tx, samples, &order).await?,
        };
        if self.maintain_rollup_tables && summary.inserted + summary.updated > 0 {
            if copied_directly {
                // Raw rows of a 1-minute bucket rarely span two loads, so most of the batch's
                // 1m buckets are new: those go in by COPY, the few at the edges of earlier
                // loads are merged. Hours and days often continue earlier loads; they are few.
                let existing = existing_minutes(&mut tx, &spans).await?;
                let [minutes, hours, days] = Contributions::minute_hour_day(samples, &order);
                let (merge, fresh) = minutes.split(&existing);
                merge.merge_into(&mut tx, "data_1m").await?;
                fresh.copy_into(&mut tx, "data_1m").await?;
                hours.merge_into(&mut tx, "data_1h").await?;
                days.merge_into(&mut tx, "data_1d").await?;
            } else {
                for sql in [
                    rollup_touched_from_raw(),
                    rollup_touched_from_finer("data_1h", "data_1m", "1 hour"),
                    rollup_touched_from_finer("data_1d", "data_1h", "1 day"),
                ] {
                    sqlx::query(&sql).execute(&mut *tx).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(summary)
    }

    /// The general path: staging table, then insert with `on conflict`.
    async fn upsert(
        &self,
        tx: &mut PgConnection,
        samples: &[Sample],
        order: &[usize],
    ) -> Result<WriteSummary> {
        sqlx::query(STAGING_DDL).execute(&mut *tx).await?;
        // The upsert names it on every backend; it stays empty where rollups are views.
        sqlx::query(TOUCHED_DDL).execute(&mut *tx).await?;
        copy_rows(&mut *tx, STAGING_COPY, samples, order).await?;
        let (inserted, updated, changed_from, changed_to): (
            i64,
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        ) = sqlx::query_as(UPSERT)
            .bind(self.maintain_rollup_tables)
            .fetch_one(&mut *tx)
            .await?;
        Ok(WriteSummary {
            inserted: inserted as u64,
            updated: updated as u64,
            changed_from,
            changed_to,
        })
    }
}

/// Per participant and metric of a batch, the first and last timestamp.
struct Spans {
    participant: Vec<String>,
    data_type: Vec<&'static str>,
    lo: Vec<DateTime<Utc>>,
    hi: Vec<DateTime<Utc>>,
}

impl Spans {
    /// `order` is sorted by key, so each series is one run of it.
    fn of(samples: &[Sample], order: &[usize]) -> Spans {
        let mut spans = Spans {
            participant: Vec::new(),
            data_type: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        };
        for &i in order {
            let s = &samples[i];
            let same = spans.participant.last().map(String::as_str)
                == Some(s.participant_id.as_str())
                && spans.data_type.last() == Some(&s.metric.name());
            if same {
                *spans.hi.last_mut().expect("a run has a span") = s.timestamp;
            } else {
                spans.participant.push(s.participant_id.to_string());
                spans.data_type.push(s.metric.name());
                spans.lo.push(s.timestamp);
                spans.hi.push(s.timestamp);
            }
        }
        spans
    }

    fn lock_keys(&self) -> Vec<String> {
        self.participant
            .iter()
            .zip(&self.data_type)
            .map(|(p, d)| format!("{p}/{d}"))
            .collect()
    }
}

/// Indices of `samples` to write: for each key only the last occurrence, so one insert never
/// meets the same key twice. Rejects values the database cannot hold.
fn last_wins_order(samples: &[Sample]) -> Result<Vec<usize>> {
    if let Some(s) = samples
        .iter()
        .find(|s| s.value_numeric.is_some_and(|v| !v.is_finite()))
    {
        return Err(Error::invalid(
            "value_numeric",
            format!(
                "{} {} at {} is not a finite number",
                s.participant_id,
                s.metric,
                s.timestamp.to_rfc3339()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let key = |i: &usize| {
        let s = &samples[*i];
        (s.participant_id.as_str(), s.metric, s.timestamp)
    };
    order.sort_by(|a, b| key(a).cmp(&key(b)).then(b.cmp(a)));
    order.dedup_by(|later, earlier| key(later) == key(earlier));
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metric, ParticipantId};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn the_last_sample_for_a_key_wins_within_a_batch() {
        let p = ParticipantId::parse("P1").unwrap();
        let s = vec![
            Sample::numeric(p.clone(), Metric::HeartRate, at(10), 60.0),
            Sample::numeric(p.clone(), Metric::HeartRate, at(5), 50.0),
            Sample::numeric(p.clone(), Metric::HeartRate, at(10), 61.0),
        ];
        let order = last_wins_order(&s).unwrap();
        let kept: Vec<f64> = order.iter().map(|&i| s[i].value_numeric.unwrap()).collect();
        assert_eq!(kept, vec![50.0, 61.0]);
    }

    #[test]
    fn non_finite_values_are_refused() {
        let p = ParticipantId::parse("P1").unwrap();
        let s = vec![Sample::numeric(p, Metric::HeartRate, at(0), f64::NAN)];
        assert_eq!(
            last_wins_order(&s).unwrap_err().parameter(),
            Some("value_numeric")
        );
    }
}
