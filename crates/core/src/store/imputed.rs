//! The data side of imputation: reading a range of `raw_data` onto a regular grid, and writing a
//! job's output to `imputed_data`. `raw_data` is only ever read here.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sqlx::{FromRow, PgConnection};

use crate::error::Result;
use crate::metric::{Metric, MetricKind};
use crate::participant::ParticipantId;
use crate::store::jobs::JobRecord;
use crate::time::TimeRange;

/// Latest sample time of one metric of one participant, if any.
pub async fn last_sample(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    metric: Metric,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "select max(timestamp) from raw_data where participant_id = $1 and data_type = $2",
        participant.as_str(),
        metric.name()
    )
    .fetch_one(conn)
    .await?)
}

/// The grid a metric is imputed on: its native interval, but at least a minute (second-level
/// heart rate becomes 1-minute means, the resolution the models and dashboards work at).
pub fn grid_step(metric: Metric) -> TimeDelta {
    TimeDelta::seconds(metric.info().native_interval_secs.max(60))
}

/// How a metric's samples within a grid interval combine.
pub fn aggregate(metric: Metric) -> Aggregate {
    match metric.info().kind {
        MetricKind::Count => Aggregate::Sum,
        MetricKind::Categorical => Aggregate::Last,
        MetricKind::Continuous | MetricKind::Daily => Aggregate::Mean,
    }
}

fn grid_origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The start of the grid interval holding `t`.
pub fn floor_to_grid(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let origin = grid_origin();
    let step_us = step.num_microseconds().expect("grid steps are small");
    let since = (t - origin).num_microseconds().expect("instants are near");
    origin + TimeDelta::microseconds(since.div_euclid(step_us) * step_us)
}

/// The default range of a job without one: the participant's last 7 days of data of the
/// metric, ending after the interval of the latest sample. `None` without data.
pub async fn default_range(
    conn: &mut PgConnection,
    participant: &ParticipantId,
    metric: Metric,
) -> Result<Option<TimeRange>> {
    let Some(last) = last_sample(conn, participant, metric).await? else {
        return Ok(None);
    };
    let step = grid_step(metric);
    let end = floor_to_grid(last, step) + step;
    Ok(Some(TimeRange::new(end - TimeDelta::days(7), end)?))
}

/// How samples inside one grid interval become the interval's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Mean (continuous signals such as heart rate).
    Mean,
    /// Sum (counts such as steps).
    Sum,
    /// The last sample (labels such as sleep stages).
    Last,
}

/// One grid interval that has data.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Bucket {
    pub bucket: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub value_text: Option<String>,
}

/// The intervals of `[range)` on a grid of `step` aligned to 2000-01-01 UTC (so grids of
/// different jobs line up with each other and with the rollups) that hold at least one sample.
pub async fn read_buckets(
    conn: &mut PgConnection,
    participant: &str,
    metric: Metric,
    range: TimeRange,
    step: TimeDelta,
    aggregate: Aggregate,
) -> Result<Vec<Bucket>> {
    let value = match aggregate {
        Aggregate::Mean => "avg(value_numeric) as value_numeric, null::text as value_text",
        Aggregate::Sum => "sum(value_numeric) as value_numeric, null::text as value_text",
        Aggregate::Last => {
            "(array_agg(value_numeric order by timestamp desc))[1] as value_numeric, \
             (array_agg(value_text order by timestamp desc))[1] as value_text"
        }
    };
    Ok(sqlx::query_as(&format!(
        "select date_bin($5, timestamp, timestamptz '2000-01-01 00:00:00+00') as bucket,
                {value}
         from raw_data
         where participant_id = $1 and data_type = $2 and timestamp >= $3 and timestamp < $4
           and (value_numeric is not null or value_text is not null)
         group by 1 order by 1"
    ))
    .bind(participant)
    .bind(metric.name())
    .bind(range.start)
    .bind(range.end)
    .bind(step)
    .fetch_all(conn)
    .await?)
}

/// One row of a job's output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub timestamp: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub value_text: Option<String>,
    pub is_imputed: bool,
}

/// Replaces the job's output in `imputed_data` with `rows`. Only rows carrying this job's id
/// are deleted, so other jobs' output (even over the same range) stays.
pub async fn replace_output(
    conn: &mut PgConnection,
    job: &JobRecord,
    method: &str,
    rows: &[OutputRow],
) -> Result<u64> {
    sqlx::query!("delete from imputed_data where job_id = $1", job.id)
        .execute(&mut *conn)
        .await?;
    let mut written = 0;
    // One statement per chunk of arrays: a week of minutes is ten thousand rows, and the
    // bound parameters stay few.
    for chunk in rows.chunks(20_000) {
        let ts: Vec<DateTime<Utc>> = chunk.iter().map(|r| r.timestamp).collect();
        let num: Vec<Option<f64>> = chunk.iter().map(|r| r.value_numeric).collect();
        let text: Vec<Option<String>> = chunk.iter().map(|r| r.value_text.clone()).collect();
        let imputed: Vec<bool> = chunk.iter().map(|r| r.is_imputed).collect();
        written += sqlx::query!(
            "insert into imputed_data (timestamp, participant_id, data_type, value_numeric,
                                       value_text, is_imputed, method, job_id)
             select t, $5, $6, v, s, i, $7, $8
             from unnest($1::timestamptz[], $2::float8[], $3::text[], $4::bool[]) as u(t, v, s, i)",
            &ts,
            &num as _,
            &text as _,
            &imputed,
            job.participant_id,
            job.data_type,
            method,
            job.id
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(written)
}
