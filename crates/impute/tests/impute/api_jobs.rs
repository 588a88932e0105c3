//! A job queued through the API (`POST /data/run_imputation`) is run by a real worker and its
//! filled gap lands in `imputed_data`, followed with `GET /data/imputation_jobs/{id}`. It lives
//! here, beside the worker, so that the API does not depend on this crate.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wearhouse_api::startup::{Application, ServeArgs};
use wearhouse_core::config::{DatabaseArgs, ListenArgs, LogFormat, TelemetryArgs};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TEST_ADMIN_TOKEN, TestDb, backends, grant_test_admin};
use wearhouse_core::{Metric, ParticipantId, Sample};
use wearhouse_impute::jobs::JobSettings;
use wearhouse_impute::worker::{QueueSettings, Worker, WorkerArgs};

/// The API on port 0 against a fresh database on the preferred backend.
struct TestApp {
    base: String,
    client: reqwest::Client,
    db: Option<TestDb>,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    async fn post_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

async fn spawn_app() -> TestApp {
    let db = TestDb::new(*backends().await.last().unwrap()).await;
    grant_test_admin(&db.pool).await;
    let listen = ListenArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let app = Application::build(
        &DatabaseArgs::from_url(db.url.clone()),
        &listen,
        &ServeArgs::default(),
    )
    .await
    .unwrap();
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {TEST_ADMIN_TOKEN}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        db: Some(db),
        shutdown,
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// P100: heart rate every 20 s for three hours from `start`, except minutes 80 to 95.
async fn seed_gappy_heart_rate(app: &TestApp, start: DateTime<Utc>) {
    let db = app.db.as_ref().unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let pid = ParticipantId::parse("P100").unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: pid.clone(),
            timezone: chrono_tz::UTC,
            provider: Some("fitbit".into()),
            enrolled_at: None,
            study_id: None,
        },
    )
    .await
    .unwrap();
    let samples: Vec<Sample> = (0..180 * 3)
        .filter(|k| !(80..95).contains(&(k / 3)))
        .map(|k| {
            let x = (k * 20) as f64;
            let bpm = 72.0 + 6.0 * (x / 700.0).sin() + 2.0 * (x * 0.29).sin();
            Sample::numeric(
                pid.clone(),
                Metric::HeartRate,
                start + TimeDelta::seconds(k * 20),
                bpm,
            )
        })
        .collect();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &samples)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_queued_through_the_api_fills_a_gap_that_shows_in_imputed_data_with_its_method() {
    let app = spawn_app().await;
    let start = t("2025-06-10T06:00:00Z");
    seed_gappy_heart_rate(&app, start).await;
    let (status, queued) = app
        .post_json("/data/run_imputation?user_id=P100&metric=heart_rate&start_date=2025-06-10T06:00:00Z&end_date=2025-06-10T09:00:00Z")
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let id = queued["job_id"].as_str().unwrap().to_owned();
    assert_eq!(queued["status_url"], format!("/data/imputation_jobs/{id}"));

    let db = app.db.as_ref().unwrap();
    let worker = Worker::build(&WorkerArgs {
        database: DatabaseArgs::from_url(db.url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        concurrency: 1,
        queue: QueueSettings::default(),
        // A fixed order keeps the unoptimised test build quick.
        job: JobSettings {
            order: Some("1,0,1".parse().unwrap()),
            ..JobSettings::default()
        },
        telemetry: TelemetryArgs {
            log_format: LogFormat::Pretty,
            log: "info".into(),
        },
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let mut job = Value::Null;
    for _ in 0..600 {
        let (status, body) = app.get_json(queued["status_url"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{body}");
        job = body;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["method"], "arima");
    assert_eq!(job["participant_id"], "P100");
    assert_eq!(job["metric"], "heart_rate");
    assert_eq!(job["parameters"]["order"], serde_json::json!([1, 0, 1]));
    assert!(job["parameters"]["loglik"].is_f64() && job["parameters"]["aic"].is_f64());
    assert_eq!(job["summary"]["points_filled"], 15);
    assert_eq!(job["summary"]["points_left_empty"], 0);
    assert!(job["error"].is_null());

    let filled: Vec<(DateTime<Utc>, f64, String)> = sqlx::query_as(
        "select timestamp, value_numeric, method from imputed_data
         where job_id = $1::uuid and is_imputed order by timestamp",
    )
    .bind(&id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let minutes: Vec<i64> = filled
        .iter()
        .map(|(ts, _, _)| (*ts - start).num_minutes())
        .collect();
    assert_eq!(minutes, (80..95).collect::<Vec<_>>());
    for (_, value, method) in &filled {
        assert_eq!(method, "arima");
        assert!(
            (60.0..=85.0).contains(value),
            "{value} is far outside the series"
        );
    }
    stop.cancel();
    running.await.unwrap().unwrap();
}
