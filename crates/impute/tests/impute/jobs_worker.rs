//! The worker against a real database: NOTIFY wake-up, two workers sharing a queue, jobs of
//! dead workers taken again, and the binary's `/health`, `/metrics` and SIGTERM, all as the
//! `wearhouse_impute` role.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wearhouse_core::Metric;
use wearhouse_core::config::{DatabaseArgs, LogFormat, TelemetryArgs};
use wearhouse_core::testing::TestDb;
use wearhouse_impute::jobs::JobSettings;
use wearhouse_impute::worker::{QueueSettings, Worker, WorkerArgs};

use crate::support::*;

struct Running {
    base: String,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// A worker working as the impute's own database role, as it does in production, so every
/// test here also shows the role has what the worker needs.
async fn start(db: &TestDb, id: &str, concurrency: u16, poll_secs: u64) -> Running {
    let args = WorkerArgs {
        database: DatabaseArgs::from_url(db.url.clone()).with_role("wearhouse_impute"),
        listen: "127.0.0.1:0".parse().unwrap(),
        concurrency,
        queue: QueueSettings {
            poll_secs,
            worker_id: Some(id.to_owned()),
            ..QueueSettings::default()
        },
        job: JobSettings::default(),
        telemetry: TelemetryArgs {
            log_format: LogFormat::Pretty,
            log: "info".into(),
        },
    };
    let worker = Worker::build(&args).await.unwrap();
    let base = format!("http://{}", worker.local_addr());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    Running { base, stop, handle }
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_notify_wakes_an_idle_worker_without_waiting_for_the_poll() {
    let db = db().await;
    let p = enrol(&db.pool, "P010").await;
    write(&db, &steps_samples(&p, 120, &[(30, 35)])).await;
    // An hour between polls: only the NOTIFY can bring the second job to the worker in time.
    let worker = start(&db, "w-notify", 1, 3600).await;
    let first = queue(&db.pool, &p, Metric::Steps, 0, 60).await;
    assert_eq!(finished(&db.pool, first).await.status, "succeeded");
    // Let the worker go idle (waiting) before the next job arrives. Not a wait for an event:
    // nothing outside the worker marks a slot's return to waiting, and the pause only makes
    // sure the second job is found through the NOTIFY rather than the slot's own look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = queue(&db.pool, &p, Metric::Steps, 60, 120).await;
    let done = finished(&db.pool, second).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.worker.as_deref(), Some("w-notify"));
    worker.stop().await;
}

#[tokio::test]
async fn two_workers_never_take_the_same_job() {
    let db = db().await;
    let p = enrol(&db.pool, "P011").await;
    write(&db, &steps_samples(&p, 240, &[(30, 35), (150, 152)])).await;
    let mut ids = Vec::new();
    for k in 0..24 {
        ids.push(queue(&db.pool, &p, Metric::Steps, k * 5, k * 5 + 60).await);
    }
    let a = start(&db, "w-a", 2, 1).await;
    let b = start(&db, "w-b", 2, 1).await;
    for id in &ids {
        let j = finished(&db.pool, *id).await;
        assert_eq!(j.status, "succeeded", "{j:?}");
        assert_eq!(j.attempts, 1, "job {id} was taken more than once");
        assert_eq!(output(&db.pool, *id).await.len(), 60);
    }
    let metrics_a = metrics(&a.base).await;
    let metrics_b = metrics(&b.base).await;
    let succeeded = |text: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("wearhouse_impute_jobs_total{outcome=\"succeeded\"}"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        succeeded(&metrics_a) + succeeded(&metrics_b),
        24,
        "each job once"
    );
    a.stop().await;
    b.stop().await;
}

/// Withdrawal stops all processing: a job queued before the participant withdrew fails once,
/// saying why, and writes nothing; another participant's job still runs.
#[tokio::test]
async fn a_withdrawn_participants_job_fails_without_output() {
    let db = db().await;
    let gone = enrol(&db.pool, "P013").await;
    let stays = enrol(&db.pool, "P014").await;
    write(&db, &steps_samples(&gone, 60, &[(10, 12)])).await;
    write(&db, &steps_samples(&stays, 60, &[(10, 12)])).await;
    let refused = queue(&db.pool, &gone, Metric::Steps, 0, 60).await;
    let runs = queue(&db.pool, &stays, Metric::Steps, 0, 60).await;
    let mut conn = db.pool.acquire().await.unwrap();
    wearhouse_core::store::lifecycle::withdraw(&mut conn, &gone, "moved away", "cli test")
        .await
        .unwrap();
    drop(conn);
    let worker = start(&db, "w-withdrawn", 1, 1).await;

    let j = finished(&db.pool, refused).await;
    assert_eq!(j.status, "failed");
    assert_eq!(j.attempts, 1, "a withdrawal is not retried");
    let error = j.error.unwrap();
    assert!(error.contains("withdrawn"), "{error}");
    assert!(output(&db.pool, refused).await.is_empty());
    assert_eq!(finished(&db.pool, runs).await.status, "succeeded");
    assert_eq!(output(&db.pool, runs).await.len(), 60);
    worker.stop().await;
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_again_and_one_out_of_attempts_fails() {
    let db = db().await;
    let p = enrol(&db.pool, "P012").await;
    write(&db, &steps_samples(&p, 60, &[(10, 12)])).await;
    let orphan = queue(&db.pool, &p, Metric::Steps, 0, 60).await;
    let exhausted = queue(&db.pool, &p, Metric::Steps, 0, 60).await;
    // As a worker that died mid-job leaves them: running, its heartbeat long gone.
    for (id, attempts) in [(orphan, 1), (exhausted, 3)] {
        sqlx::query(
            "update imputation_jobs set status = 'running', worker = 'dead-1', attempts = $2,
                    started_at = now() - interval '10 minutes',
                    heartbeat_at = now() - interval '5 minutes'
             where id = $1",
        )
        .bind(id)
        .bind(attempts)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let worker = start(&db, "w-alive", 1, 1).await;

    let j = finished(&db.pool, orphan).await;
    assert_eq!(j.status, "succeeded");
    assert_eq!(j.worker.as_deref(), Some("w-alive"));
    assert_eq!(j.attempts, 2);
    assert_eq!(output(&db.pool, orphan).await.len(), 60);
    let j = finished(&db.pool, exhausted).await;
    assert_eq!(j.status, "failed");
    let error = j.error.unwrap();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert!(output(&db.pool, exhausted).await.is_empty());
    let text = metrics(&worker.base).await;
    assert!(
        text.contains("wearhouse_impute_jobs_total{outcome=\"failed\"} 1"),
        "{text}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn the_worker_command_serves_health_and_the_metrics_contract_and_stops_on_sigterm() {
    let db = db().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
        .args(["worker", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &db.url, "--concurrency", "2"])
        .env("WEARHOUSE_LOG", "info")
        .env("WEARHOUSE_LOG_FORMAT", "pretty")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The worker logs its start once its listener is bound: the event to wait for.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("impute worker started") {
                return true;
            }
        }
        false
    };
    let started = tokio::time::timeout(Duration::from_secs(60), started).await;
    assert!(started.unwrap_or(false), "the worker never started");
    // Reads on to the end, so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = format!("http://127.0.0.1:{port}");
    let healthy = reqwest::get(format!("{base}/health"))
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(healthy, "the worker never answered /health");
    let text = metrics(&base).await;
    for name in [
        "wearhouse_impute_jobs_total{outcome=\"succeeded\"} 0",
        "wearhouse_impute_jobs_total{outcome=\"failed\"} 0",
        "wearhouse_impute_job_duration_seconds_bucket",
        "wearhouse_impute_queue_depth",
        "wearhouse_impute_points_filled_total{method=\"arima\"} 0",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let contract = Command::new("python3")
        .arg(format!("{repo}/tests/monitoring/check_metric_contract.py"))
        .args(["--impute", &format!("{base}/metrics")])
        .output()
        .unwrap();
    assert!(
        contract.status.success(),
        "{}{}",
        String::from_utf8_lossy(&contract.stdout),
        String::from_utf8_lossy(&contract.stderr)
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the worker exited with {status}");
}
