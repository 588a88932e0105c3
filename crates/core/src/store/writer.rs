//! The sample writer: COPY into a per-connection staging table, then one
//! `insert … on conflict` into `raw_data`. A later value for a key replaces the earlier one,
//! loading the same samples twice changes nothing, and where the rollups are tables (plain
//! PostgreSQL, TimescaleDB Apache) the same transaction recomputes exactly the 1m/1h/1d buckets
//! whose raw rows changed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Serialize;
use sqlx::{Acquire, ConnectOptions, PgConnection, PgPool};

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

const ORIGIN: &str = "timestamptz '2000-01-01 00:00:00+00'";

/// Staging path: recompute each 1m bucket that holds a changed row, by an index lookup per
/// bucket (revisions are sparse, so this touches no more than it must).
fn rollup_touched_from_raw() -> String {
    format!(
        "insert into data_1m (bucket, participant_id, data_type, avg_value_numeric,
            sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric)
         select b.bucket, b.participant_id, b.data_type, a.*
         from (select distinct participant_id, data_type,
                      date_bin('1 minute', timestamp, {ORIGIN}) as bucket
               from wearhouse_touched) b
         cross join lateral (
           select avg(r.value_numeric), sum(r.value_numeric), count(r.value_numeric),
                  min(r.value_numeric), max(r.value_numeric)
           from raw_data r
           where r.participant_id = b.participant_id and r.data_type = b.data_type
             and r.timestamp >= b.bucket and r.timestamp < b.bucket + interval '1 minute') a
         {UPSERT_ROLLUP}"
    )
}

fn rollup_touched_from_finer(target: &str, source: &str, width: &str) -> String {
    format!(
        "insert into {target} (bucket, participant_id, data_type, avg_value_numeric,
            sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric)
         select b.bucket, b.participant_id, b.data_type,
                a.s / nullif(a.c, 0), a.s, a.c, a.mn, a.mx
         from (select distinct participant_id, data_type,
                      date_bin('{width}', timestamp, {ORIGIN}) as bucket
               from wearhouse_touched) b
         cross join lateral (
           select sum(f.sum_value_numeric) s, sum(f.count_value_numeric) c,
                  min(f.min_value_numeric) mn, max(f.max_value_numeric) mx
           from {source} f
           where f.participant_id = b.participant_id and f.data_type = b.data_type
             and f.bucket >= b.bucket and f.bucket < b.bucket + interval '{width}') a
         {UPSERT_ROLLUP}"
    )
}

/// Direct path: every row of the batch is new, so its contribution to a bucket adds to
/// whatever the bucket held (rows of the same minute from an earlier batch).
fn merge_contributions(target: &str) -> String {
    let sum = "case when t.sum_value_numeric is null and excluded.sum_value_numeric is null \
               then null else coalesce(t.sum_value_numeric, 0) + coalesce(excluded.sum_value_numeric, 0) end";
    let count = "t.count_value_numeric + excluded.count_value_numeric";
    format!(
        "insert into {target} as t (bucket, participant_id, data_type, avg_value_numeric,
            sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric)
         select b, p, d, s / nullif(c, 0), s, c, mn, mx
         from unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::int8[],
                     $6::float8[], $7::float8[]) as u(p, d, b, s, c, mn, mx)
         on conflict (participant_id, data_type, bucket) do update set
           avg_value_numeric = ({sum}) / nullif({count}, 0),
           sum_value_numeric = {sum},
           count_value_numeric = {count},
           min_value_numeric = least(t.min_value_numeric, excluded.min_value_numeric),
           max_value_numeric = greatest(t.max_value_numeric, excluded.max_value_numeric)"
    )
}

/// A batch's aggregates per participant, metric and bucket of one width, in column form.
#[derive(Default)]
struct Contributions {
    participant: Vec<String>,
    data_type: Vec<&'static str>,
    bucket: Vec<DateTime<Utc>>,
    sum: Vec<Option<f64>>,
    count: Vec<i64>,
    min: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
}

impl Contributions {
    /// `order` is sorted by (participant, metric, time), so each bucket is one run of it.
    fn of(samples: &[Sample], order: &[usize], width: i64) -> Contributions {
        let mut c = Contributions::default();
        let mut current: Option<(&str, &'static str, DateTime<Utc>)> = None;
        for &i in order {
            let s = &samples[i];
            let key = (
                s.participant_id.as_str(),
                s.metric.name(),
                floor_to(s.timestamp, width),
            );
            if current != Some(key) {
                current = Some(key);
                c.participant.push(key.0.to_owned());
                c.data_type.push(key.1);
                c.bucket.push(key.2);
                c.sum.push(None);
                c.count.push(0);
                c.min.push(None);
                c.max.push(None);
            }
            if let Some(v) = s.value_numeric {
                let last = c.count.len() - 1;
                c.sum[last] = Some(c.sum[last].unwrap_or(0.0) + v);
                c.count[last] += 1;
                c.min[last] = Some(c.min[last].map_or(v, |m| m.min(v)));
                c.max[last] = Some(c.max[last].map_or(v, |m| m.max(v)));
            }
        }
        c
    }

    fn len(&self) -> usize {
        self.count.len()
    }

    fn push_from(&mut self, other: &Contributions, i: usize) {
        self.participant.push(other.participant[i].clone());
        self.data_type.push(other.data_type[i]);
        self.bucket.push(other.bucket[i]);
        self.sum.push(other.sum[i]);
        self.count.push(other.count[i]);
        self.min.push(other.min[i]);
        self.max.push(other.max[i]);
    }

    /// Splits off the buckets that `existing` holds (they must be merged) from the rest
    /// (which can be COPYed as new rows).
    fn split(self, existing: &[(String, String, DateTime<Utc>)]) -> (Self, Self) {
        if existing.is_empty() {
            return (Contributions::default(), self);
        }
        let existing: HashSet<(&str, &str, DateTime<Utc>)> = existing
            .iter()
            .map(|(p, d, b)| (p.as_str(), d.as_str(), *b))
            .collect();
        let (mut merge, mut fresh) = (Contributions::default(), Contributions::default());
        for i in 0..self.len() {
            let key = (
                self.participant[i].as_str(),
                self.data_type[i],
                self.bucket[i],
            );
            let into = if existing.contains(&key) {
                &mut merge
            } else {
                &mut fresh
            };
            into.push_from(&self, i);
        }
        (merge, fresh)
    }

    /// Writes the buckets as new rows with binary COPY (none of them may exist yet).
    async fn copy_into(&self, conn: &mut PgConnection, target: &str) -> Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        let statement = format!(
            "copy {target} (bucket, participant_id, data_type, avg_value_numeric, \
             sum_value_numeric, count_value_numeric, min_value_numeric, max_value_numeric) \
             from stdin with (format binary)"
        );
        copy_binary(conn, &statement, self.len(), |buf, i| self.encode(buf, i)).await
    }

    /// Bucket `i` as a binary COPY tuple of the rollup's eight columns.
    fn encode(&self, buf: &mut Vec<u8>, i: usize) {
        buf.extend_from_slice(&8i16.to_be_bytes());
        put_timestamp(buf, self.bucket[i]);
        put_text(buf, Some(&self.participant[i]));
        put_text(buf, Some(self.data_type[i]));
        let avg = self.sum[i].map(|s| s / self.count[i] as f64);
        put_float(buf, avg.filter(|_| self.count[i] > 0));
        put_float(buf, self.sum[i]);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&self.count[i].to_be_bytes());
        put_float(buf, self.min[i]);
        put_float(buf, self.max[i]);
    }

    async fn merge_into(&self, conn: &mut PgConnection, target: &str) -> Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        sqlx::query(&merge_contributions(target))
            .bind(&self.participant)
            .bind(&self.data_type)
            .bind(&self.bucket)
            .bind(&self.sum)
            .bind(&self.count)
            .bind(&self.min)
            .bind(&self.max)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
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
                let (merge, fresh) = Contributions::of(samples, &order, 60).split(&existing);
                merge.merge_into(&mut tx, "data_1m").await?;
                fresh.copy_into(&mut tx, "data_1m").await?;
                for (target, width) in [("data_1h", 3_600), ("data_1d", 86_400)] {
                    Contributions::of(samples, &order, width)
                        .merge_into(&mut tx, target)
                        .await?;
                }
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

// The 1m buckets that already exist within the batch's series spans (on the direct path only
// the first and last minute of a span can, when an earlier load ended or a later one began
// inside that minute).
const EXISTING_MINUTES: &str = "select m.participant_id, m.data_type, m.bucket
    from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) as s(p, d, lo, hi)
    join data_1m m on m.participant_id = s.p and m.data_type = s.d
                  and m.bucket >= s.lo and m.bucket <= s.hi";

async fn existing_minutes(
    conn: &mut PgConnection,
    spans: &Spans,
) -> Result<Vec<(String, String, DateTime<Utc>)>> {
    let lo: Vec<DateTime<Utc>> = spans.lo.iter().map(|&t| floor_to(t, 60)).collect();
    let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(EXISTING_MINUTES)
        .bind(&spans.participant)
        .bind(&spans.data_type)
        .bind(&lo)
        .bind(&spans.hi)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows)
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

const STAGING_COPY: &str = "copy wearhouse_staging \
    (timestamp, participant_id, data_type, value_numeric, value_text) from stdin with (format binary)";
const RAW_COPY: &str = "copy raw_data \
    (timestamp, participant_id, data_type, value_numeric, value_text) from stdin with (format binary)";

/// COPY's binary format: no text to format here or to parse in the server.
async fn copy_rows(
    conn: &mut PgConnection,
    statement: &str,
    samples: &[Sample],
    order: &[usize],
) -> Result<()> {
    copy_binary(conn, statement, order.len(), |buf, k| {
        encode_row(buf, &samples[order[k]])
    })
    .await
}

/// Runs a binary COPY `statement` of `rows` tuples, each written by `encode(buf, index)`,
/// sending about [`COPY_CHUNK_BYTES`] at a time.
async fn copy_binary(
    conn: &mut PgConnection,
    statement: &str,
    rows: usize,
    mut encode: impl FnMut(&mut Vec<u8>, usize),
) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = copy_header(COPY_CHUNK_BYTES);
    for i in 0..rows {
        encode(&mut buf, i);
        if buf.len() >= COPY_CHUNK_BYTES {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    Ok(())
}

/// Microseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01 UTC.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A buffer holding binary COPY's signature, flags and (empty) header extension.
fn copy_header(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity + 4096);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    buf
}

/// One tuple: field count, then each field as length and big-endian value (-1 for NULL).
fn encode_row(buf: &mut Vec<u8>, s: &Sample) {
    buf.extend_from_slice(&5i16.to_be_bytes());
    put_timestamp(buf, s.timestamp);
    put_text(buf, Some(s.participant_id.as_str()));
    put_text(buf, Some(s.metric.name()));
    put_float(buf, s.value_numeric);
    put_text(buf, s.value_text.as_deref());
}

fn put_timestamp(buf: &mut Vec<u8>, t: DateTime<Utc>) {
    let micros = t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&micros.to_be_bytes());
}

fn put_float(buf: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&v.to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn put_text(buf: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => {
            buf.extend_from_slice(&(t.len() as i32).to_be_bytes());
            buf.extend_from_slice(t.as_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// How often a long refresh reports its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The continuous aggregates, finest first (each coarser one is built from the one before):
/// bucket width and the longest window one refresh call materialises, in seconds. A day of
/// 1-minute buckets is a few hundred thousand rows at 1,000 participants, so a refresh's sort
/// and memory stay bounded and a day's windows can be refreshed side by side; daily buckets
/// are few, and each call has a fixed cost, so they go a month at a time.
const AGGREGATES: [(&str, i64, i64); 3] = [
    ("data_1m", 60, 86_400),
    ("data_1h", 3_600, 86_400),
    ("data_1d", 86_400, 30 * 86_400),
];

/// Brings TimescaleDB's continuous aggregates up to date for `range`, finest first, one
/// window after the other. Call it after a load into an older range than the refresh policies
/// cover; a no-op where the rollups are tables (the writer already kept them current).
pub async fn refresh_rollups(
    conn: &mut PgConnection,
    backend: &Backend,
    range: TimeRange,
) -> Result<()> {
    if backend.rollups_are_tables {
        return Ok(());
    }
    let mode = RefreshMode::detect(conn).await?;
    for (view, width, window) in AGGREGATES {
        for (start, end) in refresh_windows(&[range], width, window) {
            refresh_window(conn, view, start, end, mode.single_pass).await?;
        }
    }
    Ok(())
}

/// [`refresh_rollups`] for several ranges, with up to `parallel` windows of the same aggregate
/// refreshed at once on connections from `pool` (TimescaleDB refreshes disjoint windows of one
/// aggregate concurrently). Each aggregate is complete before the next coarser one starts.
///
/// `bulk`: the ranges hold a large load whose raw samples have fresh planner statistics
/// ([`crate::store::analyze_samples`]). Where the server can, the 1-minute buckets are then
/// compressed as they are materialised, about twice as fast as row by row; a small daily load
/// is better left row-stored for the compression policy to compress once it is complete.
pub async fn refresh_rollups_concurrently(
    pool: &PgPool,
    backend: &Backend,
    ranges: &[TimeRange],
    parallel: usize,
    bulk: bool,
) -> Result<()> {
    if backend.rollups_are_tables || ranges.is_empty() {
        return Ok(());
    }
    let mode = RefreshMode::detect(&mut *pool.acquire().await?).await?;
    // Each window gets a connection of its own, like the pool's but for one thing: a window
    // that takes seconds is expected here, so sqlx's slow-statement warning (one per window,
    // hundreds in a backfill) waits for a minute and is information, not a warning.
    let mut options = pool
        .connect_options()
        .as_ref()
        .clone()
        .log_slow_statements(log::LevelFilter::Info, std::time::Duration::from_secs(60));
    if bulk && mode.can_compress {
        // TimescaleDB warns about every window whose estimate is too small to compress (it
        // then materialises that window row by row, as it would anyway): expected, so these
        // connections report only errors.
        options = options.options([
            ("timescaledb.enable_direct_compress_on_cagg_refresh", "on"),
            ("client_min_messages", "error"),
        ]);
    }
    let options = &options;
    for (view, width, window) in AGGREGATES {
        let windows = refresh_windows(ranges, width, window);
        let total = windows.len();
        let mut refreshes = futures::stream::iter(windows)
            .map(|(start, end)| async move {
                let mut conn = <PgConnection as sqlx::Connection>::connect_with(options).await?;
                // Windows of one aggregate refreshed side by side now and then collide in
                // TimescaleDB's catalogue ("tuple concurrently deleted"); a refresh is
                // idempotent, so that window simply goes again.
                let mut attempt = 1;
                loop {
                    match refresh_window(&mut conn, view, start, end, mode.single_pass).await {
                        Err(e) if attempt < 3 && is_catalogue_collision(&e) => {
                            tracing::debug!(aggregate = view, %start, attempt, "refresh collided; again");
                            tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                            attempt += 1;
                        }
                        done => break done?,
                    }
                }
                sqlx::Connection::close(conn).await?;
                Ok::<_, Error>(())
            })
            .buffer_unordered(parallel.max(1));
        // A backfill of a large cohort can take minutes here: say how far it is, every few
        // seconds.
        let (mut done, mut last_report) = (0, std::time::Instant::now());
        while let Some(refreshed) = refreshes.next().await {
            refreshed?;
            done += 1;
            if last_report.elapsed() >= PROGRESS_EVERY && done < total {
                tracing::info!(aggregate = view, windows = done, of = total, "refreshing");
                last_report = std::time::Instant::now();
            }
        }
    }
    Ok(())
}

/// The windows covering `ranges` for buckets of `width` seconds: each range widened to whole
/// buckets and cut at multiples of `window` seconds (a multiple of `width`), so windows of
/// different ranges never overlap when the ranges themselves are more than a bucket apart.
fn refresh_windows(
    ranges: &[TimeRange],
    width: i64,
    window: i64,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut windows = Vec::new();
    for range in ranges {
        let start = floor_to(range.start, width);
        let end = floor_to(range.end - chrono::Duration::microseconds(1), width)
            + chrono::Duration::seconds(width);
        let mut from = start;
        while from < end {
            let cut = floor_to(from, window) + chrono::Duration::seconds(window);
            let to = cut.min(end);
            windows.push((from, to));
            from = to;
        }
    }
    windows.sort();
    windows.dedup();
    windows
}

/// Whether `e` is PostgreSQL's report of two transactions changing one catalogue row, which
/// concurrent refreshes of one continuous aggregate occasionally meet.
fn is_catalogue_collision(e: &Error) -> bool {
    let Error::Database(sqlx::Error::Database(db)) = e else {
        return false;
    };
    db.code().as_deref() == Some("XX000") && db.message().starts_with("tuple concurrently")
}

/// What the server's `refresh_continuous_aggregate` can do beyond the basic call.
#[derive(Debug, Clone, Copy)]
struct RefreshMode {
    /// It takes an options argument (TimescaleDB 2.21 and later). Without
    /// `buckets_per_batch = 0` a manual refresh materialises ten buckets per transaction,
    /// several times slower for a day of 1-minute buckets.
    single_pass: bool,
    /// It can compress while it materialises into a compressed aggregate (the 1-minute one,
    /// see migration 20261122000032) when the session asks it to.
    can_compress: bool,
}

impl RefreshMode {
    async fn detect(conn: &mut PgConnection) -> Result<Self> {
        let (single_pass, can_compress): (bool, bool) = sqlx::query_as(
            "select coalesce((select bool_or(pronargs >= 5) from pg_proc
                              where proname = 'refresh_continuous_aggregate'), false),
                    current_setting('timescaledb.enable_direct_compress_on_cagg_refresh', true)
                      is not null",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            single_pass,
            can_compress,
        })
    }
}

async fn refresh_window(
    conn: &mut PgConnection,
    view: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    single_pass: bool,
) -> Result<()> {
    let options = if single_pass {
        r#", options => '{"buckets_per_batch": 0}'"#
    } else {
        ""
    };
    // refresh_continuous_aggregate refuses to run inside a transaction block, so it goes
    // as a simple-protocol statement; the bounds are formatted by us, not user input.
    let sql = format!(
        "call refresh_continuous_aggregate('{view}', timestamptz '{}', timestamptz '{}'{options})",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    sqlx::raw_sql(&sql).execute(&mut *conn).await?;
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
    fn rows_are_encoded_in_copy_binary_format() {
        let p = ParticipantId::parse("P1").unwrap();
        let s = Sample::sleep_stage(p, at(946_684_801), "deep");
        let mut buf = Vec::new();
        encode_row(&mut buf, &s);
        let mut expected = vec![0, 5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40];
        expected.extend_from_slice(&[0, 0, 0, 2, b'P', b'1', 0, 0, 0, 11]);
        expected.extend_from_slice(b"sleep_stage");
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&2.0f64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"deep");
        assert_eq!(buf, expected);
    }

    #[test]
    fn refresh_windows_cover_whole_buckets_cut_at_day_boundaries() {
        let range = TimeRange::new(at(86_400 + 90), at(3 * 86_400 + 30)).unwrap();
        let minutes = refresh_windows(&[range], 60, 86_400);
        assert_eq!(
            minutes,
            vec![
                (at(86_400 + 60), at(2 * 86_400)),
                (at(2 * 86_400), at(3 * 86_400)),
                (at(3 * 86_400), at(3 * 86_400 + 60)),
            ]
        );
        let days = refresh_windows(&[range, range], 86_400, 86_400);
        assert_eq!(
            days,
            vec![
                (at(86_400), at(2 * 86_400)),
                (at(2 * 86_400), at(3 * 86_400)),
                (at(3 * 86_400), at(4 * 86_400)),
            ]
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
