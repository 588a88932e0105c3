//! The daemon binary: serves /health and the metrics contract of monitoring/, restores the
//! last success from the database, runs on start when asked, and exits cleanly on SIGTERM.

use std::process::Command;

use wearhouse_core::testing::{TestBackend, TestDb};

use crate::support::process::{daemon, free_port, run_ok, terminate};

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

async fn metrics(port: u16) -> String {
    match get(port, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("/metrics answered {other:?}"),
    }
}

#[tokio::test]
async fn the_daemon_serves_health_and_the_metrics_contract_and_stops_on_sigterm() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let port = free_port();
    let (mut child, mut logs) = daemon(&db.url, port, &[]);
    logs.until("serving /health and /metrics").await;
    let body = metrics(port).await;
    assert_eq!(get(port, "/health").await.map(|r| r.0), Some(200));
    for series in [
        "wearhouse_ingest_runs_total{outcome=\"success\"} 0",
        "wearhouse_ingest_runs_total{outcome=\"failure\"} 0",
        "wearhouse_ingest_last_success_timestamp_seconds 0",
        "wearhouse_ingest_participants_needing_reconsent",
        "wearhouse_ingest_run_in_progress 0",
        "wearhouse_ingest_run_duration_seconds",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    let status = terminate(&mut child).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_run_on_start_loads_synthetic_participants_and_a_restart_remembers_the_success() {
    let db = TestDb::new(TestBackend::Postgres).await;
    // A synthetic participant whose one-day study ended the day before yesterday (its device
    // last synced yesterday at noon), continued by the daemon up to the present: at any time
    // of day at least twelve hours of new data.
    let study_day = (chrono::Utc::now() - chrono::Duration::days(2)).date_naive();
    let mut synthetic = Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"));
    synthetic
        .args([
            "synthetic",
            "--participants",
            "1",
            "--days",
            "1",
            "--seed",
            "3",
        ])
        .args(["--start", &study_day.to_string(), "--database-url", &db.url]);
    run_ok(synthetic);

    let port = free_port();
    let (mut child, mut logs) = daemon(&db.url, port, &["--run-on-start"]);
    logs.until("run finished").await;
    let body = metrics(port).await;
    assert!(body.contains("wearhouse_ingest_runs_total{outcome=\"success\"} 1"));
    assert!(
        body.contains("wearhouse_ingest_samples_total{source=\"synthetic\""),
        "{body}"
    );
    assert!(!body.contains("wearhouse_ingest_last_success_timestamp_seconds 0\n"));
    assert!(terminate(&mut child).await.success());

    let (mut child, mut logs) = daemon(&db.url, port, &[]);
    logs.until("schedule set").await;
    let body = metrics(port).await;
    assert!(!body.contains("wearhouse_ingest_last_success_timestamp_seconds 0\n"));
    assert!(body.contains("wearhouse_ingest_runs_total{outcome=\"success\"} 0"));
    assert!(terminate(&mut child).await.success());
}

#[tokio::test]
async fn an_invalid_schedule_is_refused_at_start() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args([
            "daemon",
            "--database-url",
            &db.url,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--schedule", "every day at one"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schedule"));
}
