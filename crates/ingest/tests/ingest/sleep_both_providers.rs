//! One night served by the fake Fitbit Web API (`levels.data` + `shortData`) and by the fake
//! Google Health API (`stages` + `shortAwakenings`) for the same account stores the same
//! sleep-stage rows: short wakes are applied over the stages by one rule for both providers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Berlin;
use wearhouse_core::Metric;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
};
use wearhouse_ingest::sources::fitbit::{FitbitSource, NoopObserver};
use wearhouse_ingest::sources::google_health::{GoogleHealthArgs, GoogleHealthSource};
use wearhouse_ingest::sources::{Source, SourceParticipant};

use crate::support::{self, fitbit, google};

const FITBIT_USER: &str = "7QX2LB";
const HEALTH_USER: &str = "1173016576421350648";

async fn store(
    db: &TestDb,
    source: &dyn Source,
    p: &SourceParticipant,
) -> Vec<(DateTime<Utc>, String)> {
    let (from, to) = (google::day("2026-09-20"), google::day("2026-09-27"));
    let fetched = source.fetch(p, Metric::SleepStage, from, to).await.unwrap();
    let writer = SampleWriter::new(&db.backend);
    let mut conn = db.pool.acquire().await.unwrap();
    writer.write(&mut conn, &fetched.samples).await.unwrap();
    sqlx::query_as(
        "select timestamp, value_text from raw_data
          where participant_id = $1 and data_type = 'sleep_stage' order by timestamp",
    )
    .bind(p.id.as_str())
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_same_night_served_by_fitbit_and_google_health_stores_identical_stage_rows() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fb = FakeFitbit::start(FakeFitbitConfig::server_app(
        fitbit::CLIENT_ID,
        fitbit::SECRET,
    ))
    .await;
    fb.add_user(FakeUser::new(FITBIT_USER, Berlin).last_sync("2026-09-28T09:00:00"));
    let fitbit_source = FitbitSource::new(
        db.pool.clone(),
        support::token_key(),
        &fitbit::args_for(&fb),
        Arc::new(NoopObserver),
    )
    .unwrap();
    let gh =
        FakeGoogleHealth::start(FakeGoogleConfig::new(google::CLIENT_ID, google::SECRET)).await;
    gh.add_user(
        FakeGoogleUser::new(HEALTH_USER, Berlin)
            .legacy(FITBIT_USER)
            .last_sync("2026-09-28T07:00:00Z"),
    );
    let google_source = GoogleHealthSource::new(
        db.pool.clone(),
        support::token_key(),
        &GoogleHealthArgs::for_base_url(&gh.url(), google::CLIENT_ID, google::SECRET),
        Arc::new(NoopObserver),
    )
    .unwrap();

    let grant = fitbit::grant(fb.issue_tokens(FITBIT_USER));
    let pf = support::enrol(&db.pool, "P001", "fitbit", Berlin, None, &grant).await;
    let grant = google::grant(gh.issue_tokens(HEALTH_USER), HEALTH_USER);
    let pg = support::enrol(&db.pool, "P002", "google-health", Berlin, None, &grant).await;

    let from_fitbit = store(&db, &fitbit_source, &pf).await;
    let from_google = store(&db, &google_source, &pg).await;
    assert!(!from_fitbit.is_empty());
    assert_eq!(from_fitbit.len(), from_google.len());
    assert_eq!(from_fitbit, from_google);

    // The nights have short wakes, and they are stored as wake inside light sleep.
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/1.2/user/-/sleep/date/2026-09-20/2026-09-27.json",
            fb.url()
        ))
        .bearer_auth(
            support::stored_grant(&db.pool, &pf.id, "fitbit")
                .await
                .access_token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shorts: usize = raw["sleep"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|log| log["levels"]["shortData"].as_array())
        .map(Vec::len)
        .sum();
    assert!(shorts > 3, "{shorts} short wakes served");
}
