//! The issue's "done when": against a fresh database, one `wearhouse-ingest run` against fakes
//! with faults switched on — a 429 with a short `Retry-After`, a 5xx, malformed, truncated and
//! cut-off bodies, a sleep log still processing when first asked for, a participant who
//! declined a scope — stores exactly what a run against faultless fakes stores (but for the
//! declined scope's metric), exits 0 with the declined scope in its summary, and a second run
//! changes nothing.

use chrono::TimeZone;
use chrono_tz::Tz;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
    Fault, GoogleFault,
};

use crate::support::{self, fitbit, google};

const FITBIT_ID: &str = "23ABCD";
const FITBIT_SECRET: &str = "fitbit-secret";
const GOOGLE_ID: &str = "1234-fake.apps.googleusercontent.com";
const GOOGLE_SECRET: &str = "GOCSPX-fake";
/// The scope the Fitbit participant leaves unticked on the consent page, and its metric.
const DECLINED: (&str, &str) = ("oxygen_saturation", "spo2");

struct World {
    db: TestDb,
    fitbit: FakeFitbit,
    google: FakeGoogleHealth,
}

/// A Fitbit participant (Berlin) and a Google Health participant (New York), enrolled on
/// 1 June 2025, devices synced on 3 June; with `faults`, the fakes misbehave as above and
/// the Fitbit participant declined [`DECLINED`].
async fn world(faults: bool) -> World {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fitbit = FakeFitbit::start(FakeFitbitConfig::server_app(FITBIT_ID, FITBIT_SECRET)).await;
    let mut user = FakeUser::new("7QX2LB", Tz::Europe__Berlin).last_sync("2025-06-03T12:00:00");
    if faults {
        user = user
            .sleep_processing("2025-06-03", 300)
            .deny_scope(DECLINED.0);
    }
    fitbit.add_user(user);
    let google = FakeGoogleHealth::start(FakeGoogleConfig::new(GOOGLE_ID, GOOGLE_SECRET)).await;
    google.add_user(
        FakeGoogleUser::new("health-user-1", Tz::America__New_York)
            .last_sync("2025-06-03T16:00:00Z"),
    );
    for (participant, provider, tz, grant) in [
        (
            "P-FIT",
            "fitbit",
            Tz::Europe__Berlin,
            fitbit::grant(fitbit.issue_tokens("7QX2LB")),
        ),
        (
            "P-GOO",
            "google-health",
            Tz::America__New_York,
            google::grant(google.issue_tokens("health-user-1"), "health-user-1"),
        ),
    ] {
        let enrolled_at = tz.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap().to_utc();
        support::enrol(
            &db.pool,
            participant,
            provider,
            tz,
            Some(enrolled_at),
            &grant,
        )
        .await;
    }
    if faults {
        // Consecutive faults hit one call: the 429 is waited out without spending an
        // attempt, and the two broken bodies leave the third (last) attempt to succeed.
        fitbit.inject([
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            Fault::MalformedJson,
            Fault::TruncatedBody,
        ]);
        google.inject([
            GoogleFault::RateLimited {
                retry_after_secs: Some(1),
            },
            GoogleFault::Status(503),
            GoogleFault::ConnectionCut,
        ]);
    }
    World { db, fitbit, google }
}

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

/// One run of the binary; its stderr (the summary) when it exits 0.
async fn run(w: &World) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["run", "--database-url", &w.db.url])
        .args(provider_args(w))
        .env("WEARHOUSE_TOKEN_KEY_FILE", support::token_key_file())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "run did not exit 0: {stderr}");
    stderr
}

type Row = (
    String,
    String,
    chrono::DateTime<chrono::Utc>,
    Option<f64>,
    Option<String>,
);

async fn rows(w: &World) -> Vec<Row> {
    sqlx::query_as(
        "select participant_id, data_type, timestamp, value_numeric, value_text from raw_data
         order by participant_id, data_type, timestamp",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap()
}

async fn watermarks(w: &World) -> Vec<(String, String, Option<chrono::DateTime<chrono::Utc>>)> {
    sqlx::query_as(
        "select participant_id, data_type, watermark from ingest_state
          where last_error is null order by participant_id, data_type",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn one_run_against_faulty_fakes_stores_what_a_faultless_run_stores_and_a_second_run_changes_nothing()
 {
    let clean = world(false).await;
    run(&clean).await;
    let faulty = world(true).await;
    let summary = run(&faulty).await;

    // Complete data: everything the faultless run stored, but the declined metric of the
    // participant who declined it.
    let declined =
        |participant: &str, data_type: &str| participant == "P-FIT" && data_type == DECLINED.1;
    let all = rows(&clean).await;
    let expected: Vec<Row> = all
        .iter()
        .filter(|r| !declined(&r.0, &r.1))
        .cloned()
        .collect();
    assert!(
        expected.len() < all.len(),
        "the faultless run stores the metric that is declined"
    );
    let got = rows(&faulty).await;
    assert!(expected.len() > 2000, "{} rows", expected.len());
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the faulty run stored other rows");
    let mut clean_marks = watermarks(&clean).await;
    clean_marks.retain(|(p, t, _)| !declined(p, t));
    assert_eq!(watermarks(&faulty).await, clean_marks);
    // Exit 0, and the summary names the declined scope and whose metric it skipped.
    assert!(
        summary.contains(&format!(
            "metrics skipped, scope not granted: 1: P-FIT {} ({})",
            DECLINED.1, DECLINED.0
        )),
        "{summary}"
    );
    assert!(!summary.contains("failed:"), "{summary}");
    // The faults were served: each fake answered a 429 and a broken body.
    let fitbit: Vec<u16> = faulty.fitbit.requests().iter().map(|r| r.status).collect();
    assert_eq!(fitbit[..4], [429, 200, 200, 200], "{fitbit:?}");
    let google: Vec<u16> = faulty.google.requests().iter().map(|r| r.status).collect();
    assert_eq!(google[..3], [429, 503, 200], "{google:?}");
    assert!(
        faulty
            .fitbit
            .requests()
            .iter()
            .filter(|r| r.path.contains("/sleep/"))
            .count()
            >= 2,
        "the processing night was asked for again"
    );

    let again = run(&faulty).await;
    assert!(
        rows(&faulty).await == expected,
        "the second run changed rows"
    );
    assert!(again.contains(", 0 rows changed"), "{again}");
}
