//! Helpers shared by the ingest tests: database snapshots to compare, and rollups recomputed
//! from raw data.

use sqlx::PgPool;

/// A raw_data row: timestamp, participant, metric, numeric and text value.
pub type RawRow = (String, String, String, Option<f64>, Option<String>);
/// A rollup row: table, bucket, participant, metric, count, sum, min, max.
pub type RollupRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// Everything a load leaves behind, in a comparable form.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub raw: Vec<RawRow>,
    pub rollups: Vec<RollupRow>,
    pub watermarks: Vec<(String, String, String, String)>,
}

/// Reads raw_data, the three rollups and the watermarks.
pub async fn snapshot(pool: &PgPool) -> Snapshot {
    let raw = sqlx::query_as(
        "select timestamp::text, participant_id, data_type, value_numeric, value_text
         from raw_data order by participant_id, data_type, timestamp",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rollups = Vec::new();
    for table in ["data_1m", "data_1h", "data_1d"] {
        let rows: Vec<RollupRow> =
            sqlx::query_as(&format!(
                "select '{table}', bucket::text, participant_id, data_type, count_value_numeric::bigint,
                        round(sum_value_numeric::numeric, 6)::float8,
                        min_value_numeric, max_value_numeric
                 from {table} order by participant_id, data_type, bucket"
            ))
            .fetch_all(pool)
            .await
            .unwrap();
        rollups.extend(rows);
    }
    let watermarks = sqlx::query_as(
        "select participant_id, source, data_type, watermark::text from ingest_state
         order by participant_id, source, data_type",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    Snapshot {
        raw,
        rollups,
        watermarks,
    }
}

/// Rows where a rollup disagrees with the same aggregate computed from raw_data (empty when
/// they match), for each of data_1m, data_1h and data_1d.
pub async fn rollup_mismatches(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for (table, width) in [
        ("data_1m", "1 minute"),
        ("data_1h", "1 hour"),
        ("data_1d", "1 day"),
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "with expected as (
               select date_bin('{width}', timestamp, timestamptz '2000-01-01 00:00:00+00') as bucket,
                      participant_id, data_type, count(value_numeric) as n,
                      sum(value_numeric) as s, min(value_numeric) as lo, max(value_numeric) as hi
               from raw_data group by 1, 2, 3)
             select format('%s %s %s %s: expected %s/%s, got %s/%s', '{table}', coalesce(e.participant_id, r.participant_id),
                           coalesce(e.data_type, r.data_type), coalesce(e.bucket, r.bucket),
                           e.n, e.s, r.count_value_numeric, r.sum_value_numeric)
             from expected e full join {table} r
               on r.bucket = e.bucket and r.participant_id = e.participant_id and r.data_type = e.data_type
             where e.n is distinct from r.count_value_numeric
                or abs(coalesce(e.s, 0) - coalesce(r.sum_value_numeric, 0)) > 1e-6 * greatest(1, abs(coalesce(e.s, 0)))
                or e.lo is distinct from r.min_value_numeric or e.hi is distinct from r.max_value_numeric
             limit 5"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| r.0));
    }
    out
}

/// Brings TimescaleDB's continuous aggregates fully up to date (no-op elsewhere), so they can be
/// compared with raw data.
pub async fn refresh_all(pool: &PgPool) {
    let ts: bool = sqlx::query_scalar("select wearhouse_backend() = 'timescaledb'")
        .fetch_one(pool)
        .await
        .unwrap();
    if ts {
        for view in ["data_1m", "data_1h", "data_1d"] {
            sqlx::raw_sql(&format!(
                "call refresh_continuous_aggregate('{view}', null, null)"
            ))
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

/// TimescaleDB's aggregates without real-time aggregation: reads see only what was
/// materialised.
pub async fn materialized_only(pool: &sqlx::PgPool) {
    for view in ["data_1m", "data_1h", "data_1d"] {
        sqlx::raw_sql(&format!(
            "alter materialized view {view} set (timescaledb.materialized_only = true)"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Row count and an md5 of every row (in a fixed order) of raw_data and each rollup: a short
/// figure that two databases holding the same data agree on.
pub async fn checksums(pool: &PgPool) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let raw = "timestamp, participant_id, data_type, value_numeric, value_text";
    let rollup = "bucket, participant_id, data_type, count_value_numeric::bigint,
                  round(sum_value_numeric::numeric, 6), min_value_numeric, max_value_numeric";
    for (table, columns) in [
        ("raw_data", raw),
        ("data_1m", rollup),
        ("data_1h", rollup),
        ("data_1d", rollup),
    ] {
        let (rows, md5): (i64, String) = sqlx::query_as(&format!(
            "select count(*), md5(coalesce(string_agg(r::text, E'\\n' order by r::text), ''))
             from (select {columns} from {table}) r"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((table.to_owned(), rows, md5));
    }
    out
}
