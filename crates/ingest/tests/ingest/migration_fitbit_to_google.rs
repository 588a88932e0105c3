//! Moving a participant from the Fitbit Web API to Google Health: history ingested from the
//! fake Fitbit server up to its last sync, then consent with the fake Google Health server whose
//! identity names the Fitbit user as `legacyUserId`, then a delta load. One participant id, no
//! gap and no duplicate across the switch day, watermarks continue, the Fitbit grant is revoked
//! at Fitbit, and the participant leaves the re-consent list.
//!
//! The delta load here is [`load`]: watermark day → last sync, write, advance, the contract of
//! the ingest pipeline, kept small so the test runs on the sources alone.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use wearhouse_core::store::participants;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::store::{ingest_state, moves};
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_core::{Metric, Sample};
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
};
use wearhouse_ingest::migration::reconsent;
use wearhouse_ingest::sources::fitbit::{FitbitSource, NoopObserver};
use wearhouse_ingest::sources::google_health::{GoogleHealthArgs, GoogleHealthSource};
use wearhouse_ingest::sources::{Source, SourceParticipant};

use crate::support::{self, fitbit};

const FITBIT_USER: &str = "7QX2LB";
const HEALTH_USER: &str = "1173016576421350648";
const METRICS: [Metric; 4] = [
    Metric::HeartRate,
    Metric::Steps,
    Metric::RestingHeartRate,
    Metric::SleepStage,
];

/// One delta load of `metrics` for the participant from `source`.
async fn load(db: &TestDb, source: &dyn Source, p: &SourceParticipant, first_day: &str) {
    let last_sync = source.last_sync(p).await.unwrap().unwrap();
    let writer = SampleWriter::new(&db.backend);
    let mut conn = db.pool.acquire().await.unwrap();
    for metric in METRICS {
        let from = ingest_state::get(&mut conn, &p.id, source.name(), metric)
            .await
            .unwrap()
            .map_or(first_day.parse().unwrap(), |w| {
                w.with_timezone(&p.timezone).date_naive()
            });
        let to = last_sync.with_timezone(&p.timezone).date_naive();
        let fetched = source.fetch(p, metric, from, to).await.unwrap();
        writer.write(&mut conn, &fetched.samples).await.unwrap();
        ingest_state::advance(&mut conn, &p.id, source.name(), metric, last_sync)
            .await
            .unwrap();
    }
}

async fn rows(db: &TestDb, metric: Metric) -> Vec<(DateTime<Utc>, f64)> {
    sqlx::query_as(
        "select timestamp, value_numeric from raw_data where data_type = $1 order by timestamp",
    )
    .bind(metric.name())
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn keyed(samples: &[Sample]) -> Vec<(DateTime<Utc>, f64)> {
    let mut v: Vec<_> = samples
        .iter()
        .map(|s| (s.timestamp, s.value_numeric.unwrap()))
        .collect();
    v.sort_by_key(|x| x.0);
    v.dedup_by_key(|x| x.0);
    v
}

#[tokio::test]
async fn a_fitbit_participant_moves_to_google_health_without_a_gap_or_a_duplicate() {
    let tz: Tz = Berlin;
    let db = TestDb::new(TestBackend::Postgres).await;
    let fitbit = FakeFitbit::start(FakeFitbitConfig::server_app(
        fitbit::CLIENT_ID,
        fitbit::SECRET,
    ))
    .await;
    fitbit.add_user(FakeUser::new(FITBIT_USER, tz).last_sync("2026-10-06T09:00:00"));
    let fitbit_args = fitbit::args_for(&fitbit);
    let fitbit_source = FitbitSource::new(
        db.pool.clone(),
        support::token_key(),
        &fitbit_args,
        Arc::new(NoopObserver),
    )
    .unwrap();

    // Enrolled with Fitbit, history loaded up to the tracker's last sync.
    let grant = fitbit::grant(fitbit.issue_tokens(FITBIT_USER));
    let p = support::enrol(&db.pool, "P001", "fitbit", tz, None, &grant).await;
    let id = p.id.clone();
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query("update participants set provider_user_id = $1")
        .bind(FITBIT_USER)
        .execute(&mut *conn)
        .await
        .unwrap();
    load(&db, &fitbit_source, &p, "2026-10-05").await;
    let switch: DateTime<Utc> = ingest_state::get(&mut conn, &id, "fitbit", Metric::Steps)
        .await
        .unwrap()
        .unwrap();
    let before = reconsent::list(&mut conn).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].reason, reconsent::FITBIT_RETIRED);
    let fitbit_rows: Vec<_> = fitbit_rows_of(&db).await;

    // Consent with Google: identity names the Fitbit account.
    let google = FakeGoogleHealth::start(FakeGoogleConfig::new("g-client", "g-secret")).await;
    google.add_user(
        FakeGoogleUser::new(HEALTH_USER, tz)
            .legacy(FITBIT_USER)
            .last_sync("2026-10-08T06:00:00Z"),
    );
    let google_args = GoogleHealthArgs::for_base_url(&google.url(), "g-client", "g-secret");
    let google_source = GoogleHealthSource::new(
        db.pool.clone(),
        support::token_key(),
        &google_args,
        Arc::new(NoopObserver),
    )
    .unwrap()
    .with_fitbit_revocation(fitbit_source.api().tokens().clone());
    let redirect = google
        .consent(google_source.consent_url(&id).as_str())
        .await
        .unwrap();
    let q = |k: &str| {
        redirect
            .query_pairs()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .into_owned()
    };
    let enrolled = google_source
        .complete_enrolment(&q("state"), &q("code"))
        .await
        .unwrap();
    assert_eq!(enrolled.participant, id);
    assert_eq!(enrolled.moved_from_fitbit.as_deref(), Some(FITBIT_USER));
    assert!(enrolled.fitbit_revoked);

    // The Fitbit grant is dead at Fitbit.
    let status = reqwest::Client::new()
        .get(format!("{}/1/user/-/profile.json", fitbit.url()))
        .bearer_auth(&grant.access_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);

    // The next delta load comes from Google and continues at the Fitbit watermark, handed
    // over as the pipeline hands it to the source.
    let p = SourceParticipant {
        provider_user_id: Some(HEALTH_USER.into()),
        handed_over: moves::not_before(&mut *conn, &id, "google-health")
            .await
            .unwrap(),
        ..p
    };
    load(&db, &google_source, &p, "2026-10-05").await;

    let ids: Vec<String> = sqlx::query_scalar("select distinct participant_id from raw_data")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(ids, vec!["P001"]);
    let row = participants::get(&mut conn, &id).await.unwrap();
    assert_eq!(row.provider.as_deref(), Some("google-health"));
    assert_eq!(row.provider_user_id.as_deref(), Some(HEALTH_USER));

    for metric in [Metric::HeartRate, Metric::Steps] {
        let all = rows(&db, metric).await;
        let old: Vec<_> = fitbit_rows
            .iter()
            .filter(|r| r.0 == metric)
            .map(|r| (r.1, r.2))
            .collect();
        // Before the switch: exactly what Fitbit delivered; nothing from Google.
        let before: Vec<_> = all.iter().copied().filter(|r| r.0 < switch).collect();
        assert_eq!(
            before,
            old.iter()
                .copied()
                .filter(|r| r.0 < switch)
                .collect::<Vec<_>>(),
            "{metric}"
        );
        // From the switch on: exactly what Google has, up to its last sync (no gap).
        let from_google = google_source
            .fetch(
                &p,
                metric,
                switch.with_timezone(&tz).date_naive(),
                "2026-10-08".parse().unwrap(),
            )
            .await
            .unwrap();
        let expected: Vec<_> = keyed(&from_google.samples)
            .into_iter()
            .filter(|r| r.0 >= switch)
            .collect();
        let after: Vec<_> = all.iter().copied().filter(|r| r.0 >= switch).collect();
        assert!(!after.is_empty());
        assert_eq!(after, expected, "{metric}");
    }
    // One resting heart rate per day across the switch day.
    let days: Vec<_> = rows(&db, Metric::RestingHeartRate)
        .await
        .into_iter()
        .map(|r| r.0.with_timezone(&tz).date_naive())
        .collect();
    let distinct: std::collections::BTreeSet<_> = days.iter().collect();
    assert_eq!(days.len(), distinct.len());
    assert!(
        days.contains(&"2026-10-06".parse().unwrap())
            && days.contains(&"2026-10-07".parse().unwrap())
    );

    // Watermarks continue at the Google source.
    for metric in METRICS {
        let w = ingest_state::get(&mut conn, &id, "google-health", metric)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w, "2026-10-08T06:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
    assert!(reconsent::list(&mut conn).await.unwrap().is_empty());
}

async fn fitbit_rows_of(db: &TestDb) -> Vec<(Metric, DateTime<Utc>, f64)> {
    let mut out = Vec::new();
    for m in [Metric::HeartRate, Metric::Steps] {
        out.extend(rows(db, m).await.into_iter().map(|(t, v)| (m, t, v)));
    }
    out
}
