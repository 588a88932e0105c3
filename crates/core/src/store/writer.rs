//! The sample writer: COPY into a per-connection staging table, then one
//! `insert … on conflict` into `raw_data`. A later value for a key replaces the earlier one,
//! loading the same samples twice changes nothing, and where the rollups are tables (plain
//! PostgreSQL, TimescaleDB Apache) the same transaction recomputes exactly the 1m/1h/1d buckets
//! whose raw rows changed.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Acquire, PgConnection};

use crate::error::{Error, Result};
use crate::sample::Sample;
use crate::store::Backend;
use crate::time::TimeRange;

/// What a write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteSummary {
    /// Rows whose key was new.
    pub inserted: u64,
    /// Rows whose key existed with a different value.
    pub updated: u64,
    /// Earliest and latest timestamp among changed rows (`None` when nothing changed).
    pub changed_from: Option<DateTime<Utc>>,
    pub changed_to: Option<DateTime<Utc>>,
}

impl WriteSummary {
    /// Adds another write's counts and span to this one.
    pub fn absorb(&mut self, other: WriteSummary) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.changed_from = min_opt(self.changed_from, other.changed_from);
        self.changed_to = max_opt(self.changed_to, other.changed_to);
    }

    /// The half-open span of changed rows, for refreshing continuous aggregates.
    pub fn changed_range(&self) -> Option<TimeRange> {
        let (from, to) = (self.changed_from?, self.changed_to?);
        TimeRange::new(from, to + chrono::Duration::microseconds(1)).ok()
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Writes samples into `raw_data`. Cheap to clone; holds only what it learnt of the backend.
#[derive(Debug, Clone)]
pub struct SampleWriter {
    maintain_rollup_tables: bool,
}

const COPY_CHUNK_BYTES: usize = 1 << 20;

const STAGING_DDL: &str = "create temp table if not exists wearhouse_staging (
    timestamp timestamptz not null, participant_id text not null, data_type text not null,
    value_numeric double precision, value_text text) on commit delete rows";

const TOUCHED_DDL: &str = "create temp table if not exists wearhouse_touched (
    timestamp timestamptz not null, participant_id text not null, data_type text not null)
    on commit delete rows";

// Writers that touch the same participant and metric take turns, so each recomputes its
// rollup buckets from raw rows that include the other's committed rows.
const LOCK_SERIES: &str = "select count(pg_advisory_xact_lock(hashtextextended(k, 7)))
    from (select distinct participant_id || '/' || data_type as k
          from wearhouse_staging order by 1) keys";

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

const ORIGIN: &str = "timestamptz '2000-01-01 00:00:00+00'";

fn rollup_from_raw() -> String {
    format!(
        "insert into data_1m (bucket, participant_id, data_type, avg_value_numeric,
            sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric)
         select b.bucket, b.participant_id, b.data_type, avg(r.value_numeric),
                sum(r.value_numeric), count(r.value_numeric), min(r.value_numeric),
                max(r.value_numeric)
         from (select distinct participant_id, data_type,
                      date_bin('1 minute', timestamp, {ORIGIN}) as bucket
               from wearhouse_touched) b
         join raw_data r on r.participant_id = b.participant_id and r.data_type = b.data_type
                        and r.timestamp >= b.bucket and r.timestamp < b.bucket + interval '1 minute'
         group by 1, 2, 3
         {UPSERT_ROLLUP}"
    )
}

fn rollup_from_finer(target: &str, source: &str, width: &str) -> String {
    format!(
        "insert into {target} (bucket, participant_id, data_type, avg_value_numeric,
            sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric)
         select b.bucket, b.participant_id, b.data_type,
                sum(s.sum_value_numeric) / nullif(sum(s.count_value_numeric), 0),
                sum(s.sum_value_numeric), sum(s.count_value_numeric),
                min(s.min_value_numeric), max(s.max_value_numeric)
         from (select distinct participant_id, data_type,
                      date_bin('{width}', timestamp, {ORIGIN}) as bucket
               from wearhouse_touched) b
         join {source} s on s.participant_id = b.participant_id and s.data_type = b.data_type
                        and s.bucket >= b.bucket and s.bucket < b.bucket + interval '{width}'
         group by 1, 2, 3
         {UPSERT_ROLLUP}"
    )
}

const UPSERT_ROLLUP: &str = "on conflict (participant_id, data_type, bucket) do update set
    avg_value_numeric = excluded.avg_value_numeric,
    sum_value_numeric = excluded.sum_value_numeric,
    count_value_numeric = excluded.count_value_numeric,
    min_value_numeric = excluded.min_value_numeric,
    max_value_numeric = excluded.max_value_numeric";

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
        let mut tx = conn.begin().await?;
        sqlx::query(STAGING_DDL).execute(&mut *tx).await?;
        // The upsert names it on every backend; it stays empty where rollups are views.
        sqlx::query(TOUCHED_DDL).execute(&mut *tx).await?;
        copy_into_staging(&mut tx, samples, &order).await?;
        if self.maintain_rollup_tables {
            sqlx::query(LOCK_SERIES).execute(&mut *tx).await?;
        }
        let (inserted, updated, changed_from, changed_to): (
            i64,
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        ) = sqlx::query_as(UPSERT)
            .bind(self.maintain_rollup_tables)
            .fetch_one(&mut *tx)
            .await?;
        if self.maintain_rollup_tables && inserted + updated > 0 {
            sqlx::query(&rollup_from_raw()).execute(&mut *tx).await?;
            sqlx::query(&rollup_from_finer("data_1h", "data_1m", "1 hour"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&rollup_from_finer("data_1d", "data_1h", "1 day"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(WriteSummary {
            inserted: inserted as u64,
            updated: updated as u64,
            changed_from,
            changed_to,
        })
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

async fn copy_into_staging(
    conn: &mut PgConnection,
    samples: &[Sample],
    order: &[usize],
) -> Result<()> {
    let mut copy = conn
        .copy_in_raw(
            "copy wearhouse_staging (timestamp, participant_id, data_type, value_numeric, value_text) \
             from stdin",
        )
        .await?;
    let mut buf = String::with_capacity(COPY_CHUNK_BYTES + 4096);
    for &i in order {
        encode_row(&mut buf, &samples[i]);
        if buf.len() >= COPY_CHUNK_BYTES {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// One row in COPY's text format.
fn encode_row(buf: &mut String, s: &Sample) {
    let _ = write!(buf, "{}\t", s.timestamp.format("%Y-%m-%d %H:%M:%S%.6f+00"));
    escape_copy_text(buf, s.participant_id.as_str());
    buf.push('\t');
    buf.push_str(s.metric.name());
    buf.push('\t');
    match s.value_numeric {
        Some(v) => {
            let _ = write!(buf, "{v}");
        }
        None => buf.push_str("\\N"),
    }
    buf.push('\t');
    match &s.value_text {
        Some(t) => escape_copy_text(buf, t),
        None => buf.push_str("\\N"),
    }
    buf.push('\n');
}

fn escape_copy_text(buf: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            c => buf.push(c),
        }
    }
}

/// Brings TimescaleDB's continuous aggregates up to date for `range`, finest first. Call it
/// after a load into an older range than the refresh policies cover; a no-op where the
/// rollups are tables (the writer already kept them current).
pub async fn refresh_rollups(
    conn: &mut PgConnection,
    backend: &Backend,
    range: TimeRange,
) -> Result<()> {
    if backend.rollups_are_tables {
        return Ok(());
    }
    for (view, width) in [("data_1m", 60), ("data_1h", 3_600), ("data_1d", 86_400)] {
        let start = floor_to(range.start, width);
        let end = floor_to(range.end - chrono::Duration::microseconds(1), width)
            + chrono::Duration::seconds(width);
        // refresh_continuous_aggregate refuses to run inside a transaction block, so it goes
        // as a simple-protocol statement; the bounds are formatted by us, not user input.
        let sql = format!(
            "call refresh_continuous_aggregate('{view}', timestamptz '{}', timestamptz '{}')",
            start.to_rfc3339(),
            end.to_rfc3339()
        );
        sqlx::raw_sql(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

fn floor_to(t: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(width) * width;
    DateTime::from_timestamp(secs, 0).expect("in range")
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
    fn text_values_are_escaped_for_copy() {
        let p = ParticipantId::parse("P1").unwrap();
        let mut s = Sample::sleep_stage(p, at(0), "deep");
        s.value_text = Some("a\tb\\c\nd".into());
        let mut buf = String::new();
        encode_row(&mut buf, &s);
        assert_eq!(
            buf,
            "1970-01-01 00:00:00.000000+00\tP1\tsleep_stage\t2\ta\\tb\\\\c\\nd\n"
        );
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
