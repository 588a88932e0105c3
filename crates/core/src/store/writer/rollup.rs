//! Upkeep of the rollup tables (`data_1m`, `data_1h`, `data_1d`) where they are tables rather
//! than continuous aggregates: on the direct path the batch's per-bucket aggregates are
//! computed here in memory and COPYed or merged additively; on the staging path each touched
//! bucket is recomputed from the next finer level by SQL.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::Spans;
use super::copy::{copy_binary, put_float, put_text, put_timestamp};
use crate::error::Result;
use crate::sample::Sample;

const ORIGIN: &str = "timestamptz '2000-01-01 00:00:00+00'";

/// Staging path: recompute each 1m bucket that holds a changed row, by an index lookup per
/// bucket (revisions are sparse, so this touches no more than it must).
pub(super) fn rollup_touched_from_raw() -> String {
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

pub(super) fn rollup_touched_from_finer(target: &str, source: &str, width: &str) -> String {
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
/// Participants are borrowed from the batch's samples.
#[derive(Default)]
pub(super) struct Contributions<'a> {
    participant: Vec<&'a str>,
    data_type: Vec<&'static str>,
    bucket: Vec<DateTime<Utc>>,
    sum: Vec<Option<f64>>,
    count: Vec<i64>,
    min: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
}

/// The bucket of one width a pass over the batch is filling.
struct Current<'a> {
    participant: &'a str,
    metric: &'static str,
    /// Seconds since the Unix epoch at the bucket's start.
    start: i64,
}

impl<'a> Contributions<'a> {
    /// The batch's 1-minute, 1-hour and 1-day contributions, in one pass. `order` is sorted
    /// by (participant, metric, time), so each bucket is one run of it; each bucket's values
    /// are added in that order, as three separate passes would.
    pub(super) fn minute_hour_day(
        samples: &'a [Sample],
        order: &[usize],
    ) -> [Contributions<'a>; 3] {
        const WIDTHS: [i64; 3] = [60, 3_600, 86_400];
        let mut out: [Contributions<'a>; 3] = Default::default();
        let mut current: [Option<Current<'a>>; 3] = [None, None, None];
        for &i in order {
            let s = &samples[i];
            let participant = s.participant_id.as_str();
            let metric = s.metric.name();
            let secs = s.timestamp.timestamp();
            for ((c, cur), width) in out.iter_mut().zip(current.iter_mut()).zip(WIDTHS) {
                let start = secs.div_euclid(width) * width;
                let same = cur.as_ref().is_some_and(|k| {
                    k.start == start && k.metric == metric && k.participant == participant
                });
                if !same {
                    *cur = Some(Current {
                        participant,
                        metric,
                        start,
                    });
                    c.participant.push(participant);
                    c.data_type.push(metric);
                    c.bucket
                        .push(DateTime::from_timestamp(start, 0).expect("in range"));
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
        }
        out
    }

    fn len(&self) -> usize {
        self.count.len()
    }

    fn push_from(&mut self, other: &Contributions<'a>, i: usize) {
        self.participant.push(other.participant[i]);
        self.data_type.push(other.data_type[i]);
        self.bucket.push(other.bucket[i]);
        self.sum.push(other.sum[i]);
        self.count.push(other.count[i]);
        self.min.push(other.min[i]);
        self.max.push(other.max[i]);
    }

    /// Splits off the buckets that `existing` holds (they must be merged) from the rest
    /// (which can be COPYed as new rows).
    pub(super) fn split(self, existing: &[(String, String, DateTime<Utc>)]) -> (Self, Self) {
        if existing.is_empty() {
            return (Contributions::default(), self);
        }
        let existing: HashSet<(&str, &str, DateTime<Utc>)> = existing
            .iter()
            .map(|(p, d, b)| (p.as_str(), d.as_str(), *b))
            .collect();
        let (mut merge, mut fresh) = (Contributions::default(), Contributions::default());
        for i in 0..self.len() {
            let key = (self.participant[i], self.data_type[i], self.bucket[i]);
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
    pub(super) async fn copy_into(&self, conn: &mut PgConnection, target: &str) -> Result<()> {
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
        put_text(buf, Some(self.participant[i]));
        put_text(buf, Some(self.data_type[i]));
        let avg = self.sum[i].map(|s| s / self.count[i] as f64);
        put_float(buf, avg.filter(|_| self.count[i] > 0));
        put_float(buf, self.sum[i]);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&self.count[i].to_be_bytes());
        put_float(buf, self.min[i]);
        put_float(buf, self.max[i]);
    }

    pub(super) async fn merge_into(&self, conn: &mut PgConnection, target: &str) -> Result<()> {
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

// The 1m buckets that already exist within the batch's series spans (on the direct path only
// the first and last minute of a span can, when an earlier load ended or a later one began
// inside that minute).
const EXISTING_MINUTES: &str = "select m.participant_id, m.data_type, m.bucket
    from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) as s(p, d, lo, hi)
    join data_1m m on m.participant_id = s.p and m.data_type = s.d
                  and m.bucket >= s.lo and m.bucket <= s.hi";

pub(super) async fn existing_minutes(
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

/// The start of the `width`-second bucket (counted from the Unix epoch) holding `t`.
pub(crate) fn floor_to(t: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(width) * width;
    DateTime::from_timestamp(secs, 0).expect("in range")
}
