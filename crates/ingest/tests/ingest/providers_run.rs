//! Issue #4's "done when": a Fitbit participant and a Google Health participant, each enrolled
//! with its (fake) provider, are both loaded by one `wearhouse-ingest run`; and the daemon
//! serves both providers' consent callbacks and counts their API requests.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
};
use wearhouse_ingest::oauth::TokenResponse;

use crate::support::process::{daemon, free_port, terminate};
use crate::support::{self, fitbit, google};

const FITBIT_ID: &str = "23ABCD";
const FITBIT_SECRET: &str = "fitbit-secret";
const GOOGLE_ID: &str = "1234-fake.apps.googleusercontent.com";
const GOOGLE_SECRET: &str = "GOCSPX-fake";

struct World {
    db: TestDb,
    fitbit: FakeFitbit,
    google: FakeGoogleHealth,
}

/// Two participants enrolled on 1 June 2025, whose devices last synced on 3 June at noon:
/// P-FIT with Fitbit (Berlin), P-GOO with Google Health (New York).
async fn world() -> World {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fitbit = FakeFitbit::start(FakeFitbitConfig::server_app(FITBIT_ID, FITBIT_SECRET)).await;
    fitbit.add_user(FakeUser::new("7QX2LB", Tz::Europe__Berlin).last_sync("2025-06-03T12:00:00"));
    let google = FakeGoogleHealth::start(FakeGoogleConfig::new(GOOGLE_ID, GOOGLE_SECRET)).await;
    google.add_user(
        FakeGoogleUser::new("health-user-1", Tz::America__New_York)
            .last_sync("2025-06-03T16:00:00Z"),
    );
    let fitbit_grant = fitbit::grant(fitbit.issue_tokens("7QX2LB"));
    enrol(&db, "P-FIT", "fitbit", Tz::Europe__Berlin, &fitbit_grant).await;
    let google_grant = google::grant(google.issue_tokens("health-user-1"), "health-user-1");
    enrol(
        &db,
        "P-GOO",
        "google-health",
        Tz::America__New_York,
        &google_grant,
    )
    .await;
    World { db, fitbit, google }
}

/// Enrolled on 1 June 2025 local time, with the provider's user id recorded.
async fn enrol(db: &TestDb, participant: &str, provider: &str, tz: Tz, grant: &TokenResponse) {
    let enrolled_at = tz.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap().to_utc();
    support::enrol(
        &db.pool,
        participant,
        provider,
        tz,
        Some(enrolled_at),
        grant,
    )
    .await;
    sqlx::query("update participants set provider_user_id = $2 where participant_id = $1")
        .bind(participant)
        .bind(&grant.user_id)
        .execute(&db.pool)
        .await
        .unwrap();
}

/// Both providers' settings, pointed at the fakes.
fn provider_args(w: &World) -> Vec<String> {
    let g = w.google.url();
    let g = g.trim_end_matches('/');
    [
        ("--fitbit-client-id", FITBIT_ID.to_owned()),
        ("--fitbit-client-secret", FITBIT_SECRET.to_owned()),
        ("--fitbit-api-url", w.fitbit.url()),
        ("--fitbit-authorize-url", w.fitbit.authorize_url()),
        ("--fitbit-retry-base-ms", "10".to_owned()),
        ("--google-client-id", GOOGLE_ID.to_owned()),
        ("--google-client-secret", GOOGLE_SECRET.to_owned()),
        ("--google-api-url", g.to_owned()),
        ("--google-authorize-url", format!("{g}/o/oauth2/v2/auth")),
        ("--google-token-url", format!("{g}/token")),
        ("--google-revoke-url", format!("{g}/revoke")),
        ("--google-requests-per-minute", "0".to_owned()),
        ("--google-retry-base-ms", "10".to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

#[tokio::test]
async fn one_run_loads_a_fitbit_and_a_google_health_participant_and_advances_both_watermarks() {
    let w = world().await;
    // Async: the fakes serve from this test's runtime while the binary runs.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["run", "--database-url", &w.db.url])
        .args(provider_args(&w))
        .env("WEARHOUSE_TOKEN_KEY_FILE", support::token_key_file())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select participant_id, count(*), count(distinct data_type) from raw_data
         group by participant_id order by participant_id",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["P-FIT", "P-GOO"], "{rows:?}");
    for (p, n, types) in &rows {
        assert!(*n > 1000, "{p}: only {n} rows");
        assert!(*types >= 5, "{p}: only {types} metrics");
    }

    let marks: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "select participant_id, source, max(watermark) from ingest_state
         where last_error is null group by participant_id, source order by participant_id",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap();
    let sources: Vec<(&str, &str)> = marks.iter().map(|m| (m.0.as_str(), m.1.as_str())).collect();
    assert_eq!(sources, [("P-FIT", "fitbit"), ("P-GOO", "google-health")]);
    // Both loaded up to their device's last sync, days past their enrolment.
    let fitbit_sync = Tz::Europe__Berlin
        .with_ymd_and_hms(2025, 6, 3, 12, 0, 0)
        .unwrap()
        .to_utc();
    let google_sync: DateTime<Utc> = "2025-06-03T16:00:00Z".parse().unwrap();
    assert_eq!(marks[0].2, fitbit_sync);
    assert_eq!(marks[1].2, google_sync);
}

#[tokio::test]
async fn the_daemon_serves_both_consent_callbacks_and_counts_each_providers_api_requests() {
    let w = world().await;
    let port = free_port();
    let providers = provider_args(&w);
    let mut args = vec!["--run-on-start"];
    args.extend(providers.iter().map(String::as_str));
    let (mut child, mut logs) = daemon(&w.db.url, port, &args);
    logs.until("run finished").await;
    let base = format!("http://127.0.0.1:{port}");
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (source, status) in [("fitbit", "200"), ("google-health", "200")] {
        assert!(
            body.contains(&format!(
                "wearhouse_ingest_api_requests_total{{source=\"{source}\",status=\"{status}\"}}"
            )),
            "{body}"
        );
    }
    // A callback without code and state is answered by our consent page, not a 404.
    for path in ["/callback", "/google/callback"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}");
        assert!(r.text().await.unwrap().contains("Missing code or state"));
    }
    assert!(terminate(&mut child).await.success());
}

/// More workers than the configured pool has connections: each worker holds one while it
/// waits on the provider, so the run enlarges its pool to what the workers hold at once and
/// every participant loads (a pool of 2 would leave four of six workers waiting past the
/// 1-second acquire timeout, failing their participants).
#[tokio::test]
async fn a_run_with_more_workers_than_pooled_connections_loads_everyone() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(FITBIT_ID, FITBIT_SECRET)).await;
    for i in 0..6 {
        let user = format!("W{i}");
        fake.add_user(FakeUser::new(&user, Tz::Europe__Berlin).last_sync("2025-06-02T06:00:00"));
        let grant = fitbit::grant(fake.issue_tokens(&user));
        enrol(
            &db,
            &format!("P-W{i}"),
            "fitbit",
            Tz::Europe__Berlin,
            &grant,
        )
        .await;
    }
    // Every answer takes a while, as the real API's do: each participant takes seconds.
    fake.set_api_latency(std::time::Duration::from_millis(100));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["run", "--database-url", &db.url, "--workers", "6"])
        .args([
            "--db-max-connections",
            "2",
            "--db-acquire-timeout-secs",
            "1",
        ])
        .args([
            "--fitbit-client-id",
            FITBIT_ID,
            "--fitbit-client-secret",
            FITBIT_SECRET,
        ])
        .args(["--fitbit-api-url", &fake.url()])
        .args(["--fitbit-authorize-url", &fake.authorize_url()])
        .env("WEARHOUSE_TOKEN_KEY_FILE", support::token_key_file())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    assert!(stderr.contains("6 loaded"), "{stderr}");
    let loaded: i64 = sqlx::query_scalar("select count(distinct participant_id) from raw_data")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(loaded, 6);
}
