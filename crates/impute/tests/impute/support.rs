//! Shared by the job tests: a fresh database with a participant, series generators the tests
//! compute expectations from, and helpers to read jobs and their output.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wearhouse_core::store::jobs::{self as store, JobRecord, NewJob};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample, TimeRange};

/// Runs `cmd` to success and returns the JSON it printed.
pub fn json_output(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Start of the seeded series.
pub fn t0() -> DateTime<Utc> {
    "2025-06-02T08:00:00Z".parse().unwrap()
}

pub fn minutes(m: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(m)
}

/// A fresh database on the preferred backend (TimescaleDB where installed).
pub async fn db() -> TestDb {
    TestDb::new(*backends().await.last().unwrap()).await
}

pub async fn enrol(pool: &PgPool, id: &str) -> ParticipantId {
    let pid = ParticipantId::parse(id).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: pid.clone(),
            timezone: chrono_tz::UTC,
            provider: Some("synthetic".into()),
            enrolled_at: Some(t0() - TimeDelta::days(10)),
            study_id: None,
        },
    )
    .await
    .unwrap();
    pid
}

pub async fn write(db: &TestDb, samples: &[Sample]) {
    let mut conn = db.pool.acquire().await.unwrap();
    SampleWriter::new(&db.backend)
        .write(&mut conn, samples)
        .await
        .unwrap();
}

/// Heart rate of second `s`: a slow wave plus a deterministic wobble, around 70 bpm.
pub fn heart_rate_at(s: i64) -> f64 {
    let x = s as f64;
    70.0 + 8.0 * (x / 900.0).sin() + 3.0 * ((x * 0.37).sin() * (x * 0.011).cos())
}

/// Heart rate every 20 s over `[0, total)` minutes, except in the `gaps` (minutes `[a, b)`).
pub fn heart_rate_samples(p: &ParticipantId, total: i64, gaps: &[(i64, i64)]) -> Vec<Sample> {
    (0..total * 3)
        .filter(|k| !in_gap(gaps, k / 3))
        .map(|k| {
            Sample::numeric(
                p.clone(),
                Metric::HeartRate,
                t0() + TimeDelta::seconds(k * 20),
                heart_rate_at(k * 20),
            )
        })
        .collect()
}

/// The minute mean of [`heart_rate_samples`] at minute `m` (three samples a minute).
pub fn heart_rate_minute_mean(m: i64) -> f64 {
    (0..3).map(|i| heart_rate_at(m * 60 + i * 20)).sum::<f64>() / 3.0
}

/// Whether minute `m` falls in one of the half-open `(start, end)` gaps.
pub fn in_gap(gaps: &[(i64, i64)], m: i64) -> bool {
    gaps.iter().any(|&(a, b)| a <= m && m < b)
}

/// Steps at minute `m`.
pub fn steps_at(m: i64) -> f64 {
    ((m * 17) % 41) as f64
}

/// Steps every minute over `[0, total)` except in the `gaps`.
pub fn steps_samples(p: &ParticipantId, total: i64, gaps: &[(i64, i64)]) -> Vec<Sample> {
    (0..total)
        .filter(|m| !in_gap(gaps, *m))
        .map(|m| Sample::numeric(p.clone(), Metric::Steps, minutes(m), steps_at(m)))
        .collect()
}

pub async fn queue(pool: &PgPool, p: &ParticipantId, metric: Metric, from: i64, to: i64) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    store::queue(
        &mut conn,
        &NewJob {
            participant: p.clone(),
            metric,
            range: TimeRange::new(minutes(from), minutes(to)).unwrap(),
        },
    )
    .await
    .unwrap()
    .id
}

pub async fn job(pool: &PgPool, id: Uuid) -> JobRecord {
    let mut conn = pool.acquire().await.unwrap();
    store::get(&mut conn, id).await.unwrap().unwrap()
}

/// Waits (up to a minute, a bound for a hung test, not a timing assertion) until the job has
/// finished, and returns it. Nothing announces a finished job (the queue NOTIFYs only new
/// ones), so this is a bounded poll of the database.
pub async fn finished(pool: &PgPool, id: Uuid) -> JobRecord {
    for _ in 0..600 {
        let j = job(pool, id).await;
        if matches!(j.status.as_str(), "succeeded" | "failed") {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish: {:?}", job(pool, id).await);
}

/// One row of `imputed_data`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Imputed {
    pub timestamp: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub is_imputed: bool,
    pub method: String,
}

pub async fn output(pool: &PgPool, job: Uuid) -> Vec<Imputed> {
    sqlx::query_as(
        "select timestamp, value_numeric, is_imputed, method from imputed_data
         where job_id = $1 order by timestamp",
    )
    .bind(job)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every row of `raw_data`, as text, in key order.
pub async fn raw_snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select concat_ws('|', timestamp, participant_id, data_type, value_numeric, value_text)
         from raw_data order by participant_id, data_type, timestamp",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}
