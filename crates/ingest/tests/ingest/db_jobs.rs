//! The daemon's watch over the database: its metrics on every backend, and on TimescaleDB the
//! background jobs it runs when no scheduler does (the test cluster runs none:
//! `timescaledb.max_background_workers = 0`), so chunks past the compression policy get
//! compressed.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use wearhouse_core::store::maintenance;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TestBackend, TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::support::process::{Logs, daemon, free_port, terminate};

async fn metrics(port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("/metrics answers");
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the series starting with `prefix` (name and labels), if exported.
fn value(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `/metrics` has a series starting with `prefix`, then returns the body.
async fn metrics_with(port: u16, logs: &mut Logs, prefix: &str) -> String {
    logs.until("serving /health and /metrics").await;
    for _ in 0..600 {
        let body = metrics(port).await;
        if body.lines().any(|l| l.starts_with(prefix)) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{prefix} never appeared in /metrics:\n{}",
        metrics(port).await
    )
}

/// Heart rate for participant `p` every minute for a day starting `days_ago` days back.
async fn load_day(db: &TestDb, p: &str, days_ago: i64) {
    let pid = ParticipantId::parse(p).unwrap();
    sqlx::query("insert into participants (participant_id) values ($1) on conflict do nothing")
        .bind(p)
        .execute(&db.pool)
        .await
        .unwrap();
    let from = (Utc::now() - chrono::Duration::days(days_ago))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let batch: Vec<Sample> = (0..1440)
        .map(|m| {
            Sample::numeric(
                pid.clone(),
                Metric::HeartRate,
                from + chrono::Duration::minutes(m),
                60.0 + (m % 30) as f64,
            )
        })
        .collect();
    let mut conn = db.pool.acquire().await.unwrap();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &batch)
        .await
        .unwrap();
}

async fn awaiting_compression(pool: &PgPool, db: &TestDb) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let stats = maintenance::stats(&mut conn, &db.backend).await.unwrap();
    stats
        .awaiting_compression
        .iter()
        .find(|(r, _)| r == "raw_data")
        .map(|(_, n)| *n)
        .expect("raw_data has a compression policy")
}

#[tokio::test]
async fn the_daemon_exports_the_databases_size_relations_and_connections_on_every_backend() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        load_day(&db, "p-size", 1).await;
        let port = free_port();
        let (mut child, mut logs) = daemon(&db.url, port, &["--db-jobs-check-secs", "1"]);
        let body = metrics_with(port, &mut logs, "wearhouse_database_info{").await;
        eprintln!("backend {}", db.backend);
        assert_eq!(value(&body, "wearhouse_database_up "), Some(1.0), "{body}");
        let kind = db.backend.kind.to_string();
        assert!(
            body.contains(&format!("wearhouse_database_info{{backend=\"{kind}\"")),
            "{body}"
        );
        assert!(value(&body, "wearhouse_database_size_bytes ").unwrap() > 1e6);
        // raw_data holds a day of samples: on TimescaleDB its size is its chunks'.
        let raw = value(
            &body,
            "wearhouse_database_relation_size_bytes{relation=\"raw_data\"}",
        );
        assert!(raw.unwrap() > 8192.0, "{body}");
        assert!(value(&body, "wearhouse_database_max_connections ").unwrap() >= 1.0);
        // The daemon's own session reading the metrics is active; pg_monitor lets its role
        // see the others too.
        assert!(
            value(&body, "wearhouse_database_connections{state=\"active\"}").unwrap() >= 1.0,
            "{body}"
        );
        if backend == TestBackend::Timescaledb {
            for job in [
                "policy_compression(raw_data)",
                "policy_compression(data_1m)",
                "policy_compression(data_1h)",
                "policy_refresh_continuous_aggregate(data_1m)",
                "adherence_refresh_job",
            ] {
                let series = "wearhouse_database_job_interval_seconds{job_id=";
                assert!(
                    body.lines()
                        .any(|l| l.starts_with(series) && l.contains(&format!("db_job=\"{job}\""))),
                    "{job} missing:\n{body}"
                );
            }
        } else {
            assert!(!body.contains("wearhouse_database_job_interval_seconds{"));
        }
        assert!(terminate(&mut child).await.success());
    }
}

#[tokio::test]
async fn chunks_past_the_compression_policy_are_compressed_by_the_daemon_when_no_scheduler_runs() {
    if !wearhouse_core::testing::timescaledb_available() {
        eprintln!("TimescaleDB is not installed: nothing to compress");
        return;
    }
    let db = TestDb::new(TestBackend::Timescaledb).await;
    // Two months back is past the 7-day policy; yesterday is not.
    load_day(&db, "p-old", 60).await;
    load_day(&db, "p-old", 1).await;
    assert!(awaiting_compression(&db.pool, &db).await >= 1);

    // Told not to run jobs, the daemon only reports the backlog.
    let port = free_port();
    let (mut child, mut logs) = daemon(
        &db.url,
        port,
        &["--db-jobs-check-secs", "1", "--run-db-jobs", "false"],
    );
    let body = metrics_with(port, &mut logs, "wearhouse_database_job_taken_over").await;
    let awaiting = "wearhouse_database_chunks_awaiting_compression{relation=\"raw_data\"}";
    assert!(value(&body, awaiting).unwrap() >= 1.0, "{body}");
    assert!(
        body.lines()
            .filter(|l| l.starts_with("wearhouse_database_job_taken_over{"))
            .all(|l| l.ends_with(" 0")),
        "{body}"
    );
    assert!(terminate(&mut child).await.success());
    assert!(awaiting_compression(&db.pool, &db).await >= 1);

    // By default (auto) it sees that no scheduler runs for the database and runs the jobs.
    let (mut child, mut logs) = daemon(&db.url, port, &["--db-jobs-check-secs", "1"]);
    let line = logs.until("running database job").await;
    assert!(line.contains("no TimescaleDB scheduler"), "{line}");
    let mut body = String::new();
    for _ in 0..600 {
        body = metrics(port).await;
        if value(&body, awaiting) == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(value(&body, awaiting), Some(0.0), "{body}");
    assert_eq!(awaiting_compression(&db.pool, &db).await, 0);
    let compressed: i64 = sqlx::query_scalar(
        "select count(*) from timescaledb_information.chunks
          where hypertable_name = 'raw_data' and is_compressed",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(compressed >= 1);
    // The daemon's record of its run, which says when the job is next due.
    let (runs, failures, success): (i64, i32, bool) = sqlx::query_as(
        "select d.total_runs, d.consecutive_failures, d.last_success is not null
           from db_job_runs d join timescaledb_information.jobs j using (job_id)
          where j.proc_name = 'policy_compression' and j.hypertable_name = 'raw_data'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((runs, failures, success), (1, 0, true));
    let taken = body
        .lines()
        .find(|l| {
            l.starts_with("wearhouse_database_job_taken_over{")
                && l.contains("db_job=\"policy_compression(raw_data)\"")
        })
        .unwrap_or_else(|| panic!("{body}"));
    assert!(taken.ends_with(" 1"), "{taken}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("wearhouse_database_job_runs_total{")
                && l.contains("policy_compression(raw_data)")
                && l.contains("outcome=\"success\"")
                && l.ends_with(" 1")),
        "{body}"
    );
    assert!(terminate(&mut child).await.success());
    // The samples read back the same, compressed.
    let n: i64 = sqlx::query_scalar("select count(*) from raw_data where participant_id = 'p-old'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 2 * 1440);
}
