//! How the Fitbit client treats the API's limits and failures: quota headers and 429, server
//! errors, malformed JSON, refused scopes, and range limits, against the fake server.

use crate::support::fitbit::*;
use chrono_tz::America::New_York;
use wearhouse_core::Metric;
use wearhouse_fakes::{FakeUser, Fault};
use wearhouse_ingest::sources::fitbit::FitbitSource;
use wearhouse_ingest::sources::{Source, SourceError};

fn day(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

fn synced_user() -> FakeUser {
    FakeUser::new("7QX2LB", New_York).last_sync("2025-06-10T08:00:00")
}

#[tokio::test]
async fn the_client_stops_for_a_participant_before_the_quota_runs_out() {
    let mut env = env(vec![synced_user()]).await;
    env.args.max_quota_wait_secs = 0;
    let source = FitbitSource::new(
        env.db.pool.clone(),
        crate::support::token_key(),
        &env.args,
        std::sync::Arc::new(wearhouse_ingest::sources::fitbit::NoopObserver),
    )
    .unwrap();
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    // 147 of 150 spent: one more request leaves 2, which is the reserve.
    env.fake.set_requests_this_hour("7QX2LB", 147);
    source.last_sync(&p).await.unwrap();
    let e = source
        .fetch(&p, Metric::Steps, day("2025-06-08"), day("2025-06-08"))
        .await
        .unwrap_err();
    let SourceError::QuotaExhausted { retry_after } = e else {
        panic!("{e:?}")
    };
    assert!(retry_after.as_secs() <= 3600 + 2, "{retry_after:?}");
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200],
        "no request after the reserve was reached"
    );
}

#[tokio::test]
async fn a_429_ends_the_participants_turn_with_the_retry_after_fitbit_sent() {
    let env = env(vec![synced_user()]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.fake.set_requests_this_hour("7QX2LB", 150);
    let e = env.source.last_sync(&p).await.unwrap_err();
    let SourceError::QuotaExhausted { retry_after } = e else {
        panic!("{e:?}")
    };
    let to_next_hour = 3600 - env.fake.now().timestamp().rem_euclid(3600) as u64;
    assert!(
        retry_after.as_secs().abs_diff(to_next_hour) <= 2,
        "{retry_after:?} vs {to_next_hour}"
    );
    // The next call does not hammer the API: the client knows the quota is spent.
    assert!(matches!(
        env.source.last_sync(&p).await,
        Err(SourceError::QuotaExhausted { .. })
    ));
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429]);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_then_reported_unavailable() {
    let env = env(vec![synced_user()]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.fake.inject([Fault::Status(500), Fault::Status(503)]);
    assert!(env.source.last_sync(&p).await.unwrap().is_some());
    env.fake
        .inject([Fault::Status(502), Fault::Status(500), Fault::Status(503)]);
    let e = env.source.last_sync(&p).await.unwrap_err();
    assert!(
        matches!(e, SourceError::Unavailable(ref m) if m.contains("503") && m.contains("3 attempts")),
        "{e:?}"
    );
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 503, 200, 502, 500, 503]);
}

#[tokio::test]
async fn malformed_json_beyond_the_retries_is_unavailable_and_names_the_data() {
    let env = env(vec![synced_user()]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    // Retried like a 5xx: one broken body per attempt, three attempts.
    env.fake.inject_n(Fault::MalformedJson, 3);
    let e = env
        .source
        .fetch(&p, Metric::HeartRate, day("2025-06-08"), day("2025-06-08"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::Unavailable(ref m) if m.contains("heart_rate") && m.contains("malformed JSON")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_scope_the_participant_withheld_is_scope_not_granted_naming_the_scope() {
    let env = env(vec![synced_user().deny_scope("oxygen_saturation")]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let e = env
        .source
        .fetch(&p, Metric::Spo2, day("2025-06-08"), day("2025-06-09"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::ScopeNotGranted { ref scope } if scope == "oxygen_saturation"),
        "{e:?}"
    );
    assert!(!env.needs_reconsent(&p).await);
    assert_eq!(env.fake.requests().len(), 1, "not retried");
    // Other metrics still work.
    env.source
        .fetch(&p, Metric::Steps, day("2025-06-08"), day("2025-06-08"))
        .await
        .unwrap();
}

#[tokio::test]
async fn intraday_data_without_fitbits_approval_is_refused_with_insufficient_permissions() {
    let env = env(vec![synced_user()]).await;
    env.fake.configure(|c| c.intraday_enabled = false);
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let e = env
        .source
        .fetch(&p, Metric::HeartRate, day("2025-06-08"), day("2025-06-08"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::Provider(ref m) if m.contains("insufficient_permissions")),
        "{e:?}"
    );
}

#[tokio::test]
async fn long_ranges_are_split_to_fit_fitbits_per_call_limits() {
    let env = env(vec![synced_user()]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.source
        .fetch(&p, Metric::Spo2, day("2025-04-01"), day("2025-06-09"))
        .await
        .unwrap();
    env.source
        .fetch(&p, Metric::SleepStage, day("2025-02-01"), day("2025-06-09"))
        .await
        .unwrap();
    let paths: Vec<String> = env.fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![
            "/1/user/-/spo2/date/2025-04-01/2025-04-30/all.json",
            "/1/user/-/spo2/date/2025-05-01/2025-05-30/all.json",
            "/1/user/-/spo2/date/2025-05-31/2025-06-09/all.json",
            "/1.2/user/-/sleep/date/2025-02-01/2025-05-11.json",
            "/1.2/user/-/sleep/date/2025-05-12/2025-06-09.json",
        ]
    );
    assert!(env.fake.requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn the_fake_refuses_an_intraday_range_over_24_hours_with_fitbits_body() {
    let env = env(vec![synced_user()]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let body = env
        .raw(
            &p,
            "/1/user/-/activities/heart/date/2025-06-01/2025-06-02/1min.json",
        )
        .await;
    assert_eq!(body["errors"][0]["errorType"], "request");
    assert_eq!(
        body["errors"][0]["message"],
        "Time range should not be bigger than 24 hours."
    );
}
