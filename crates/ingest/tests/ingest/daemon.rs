//! The daemon binary: serves /health and the metrics contract of monitoring/, restores the
//! last success from the database, runs on start when asked, and exits cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wearhouse_core::testing::{TestBackend, TestDb};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn daemon(url: &str, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["daemon", "--database-url", url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls until `check` accepts the metrics page (the daemon is starting or running).
async fn metrics_until(port: u16, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        if let Some((200, body)) = get(port, "/metrics").await
            && check(&body)
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the daemon never served the expected metrics");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

#[tokio::test]
async fn the_daemon_serves_health_and_the_metrics_contract_and_stops_on_sigterm() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let port = free_port();
    let mut child = daemon(&db.url, port, &[]);
    let body = metrics_until(port, |_| true).await;
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
    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_run_on_start_loads_synthetic_participants_and_a_restart_remembers_the_success() {
    let db = TestDb::new(TestBackend::Postgres).await;
    // A synthetic participant whose one-day study ended the day before yesterday (its device
    // last synced yesterday at noon), continued by the daemon up to the present: at any time
    // of day at least twelve hours of new data.
    let study_day = (chrono::Utc::now() - chrono::Duration::days(2)).date_naive();
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args([
            "synthetic",
            "--participants",
            "1",
            "--days",
            "1",
            "--seed",
            "3",
        ])
        .args(["--start", &study_day.to_string(), "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let mut child = daemon(&db.url, port, &["--run-on-start"]);
    let body = metrics_until(port, |b| {
        b.contains("wearhouse_ingest_runs_total{outcome=\"success\"} 1")
    })
    .await;
    assert!(
        body.contains("wearhouse_ingest_samples_total{source=\"synthetic\""),
        "{body}"
    );
    assert!(!body.contains("wearhouse_ingest_last_success_timestamp_seconds 0\n"));
    assert!(terminate(&mut child).success());

    let mut child = daemon(&db.url, port, &[]);
    let body = metrics_until(port, |b| {
        !b.contains("wearhouse_ingest_last_success_timestamp_seconds 0\n")
    })
    .await;
    assert!(body.contains("wearhouse_ingest_runs_total{outcome=\"success\"} 0"));
    assert!(terminate(&mut child).success());
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
