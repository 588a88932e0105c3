//! What the provider clients do with faulty answers from the fakes: malformed, truncated and
//! cut-off bodies are retried within the run, a pending sleep log is asked for again after its
//! `retryDuration`, a 429 with a short `Retry-After` is waited out, a scope the participant
//! declined is reported as `ScopeNotGranted` naming the scope (Fitbit's case is in
//! `fitbit_api`), and a data path the account does not have is `NotOffered` after one request.

use chrono::NaiveDate;
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use wearhouse_core::Metric;
use wearhouse_fakes::{FakeGoogleUser, FakeUser, Fault, GoogleFault};
use wearhouse_ingest::sources::{Source, SourceError};

use crate::support::{fitbit, google};

const FITBIT_USER: &str = "7QX2LB";
const HEALTH_USER: &str = "1173016576421350648";

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn fitbit_env(user: FakeUser) -> (fitbit::Env, wearhouse_ingest::sources::SourceParticipant) {
    let env = fitbit::env(vec![user]).await;
    let p = env.enrol("P001", FITBIT_USER, New_York).await;
    (env, p)
}

fn fitbit_user() -> FakeUser {
    FakeUser::new(FITBIT_USER, New_York).last_sync("2025-06-10T08:00:00")
}

async fn google_env(
    user: FakeGoogleUser,
) -> (google::Env, wearhouse_ingest::sources::SourceParticipant) {
    let env = google::env(vec![user]).await;
    let p = env.enrol("P001", HEALTH_USER, Berlin).await;
    (env, p)
}

fn google_user() -> FakeGoogleUser {
    FakeGoogleUser::new(HEALTH_USER, Berlin).last_sync("2026-10-08T06:00:00Z")
}

#[tokio::test]
async fn fitbit_malformed_then_truncated_then_good_bodies_deliver_the_day_in_one_fetch() {
    let (env, p) = fitbit_env(fitbit_user()).await;
    let d = day("2025-06-05");
    let clean = env.source.fetch(&p, Metric::HeartRate, d, d).await.unwrap();
    let before = env.fake.requests().len();
    env.fake
        .inject([Fault::MalformedJson, Fault::TruncatedBody]);
    let got = env.source.fetch(&p, Metric::HeartRate, d, d).await.unwrap();
    assert!(!got.samples.is_empty());
    assert_eq!(got.samples, clean.samples);
    // Each faulty answer cost one request of the same call.
    let first_call = env.fake.requests()[before..].to_vec();
    assert_eq!(first_call[0].path, first_call[2].path);
    assert_eq!(first_call[2].status, 200);
}

#[tokio::test]
async fn fitbit_a_cut_off_answer_is_retried_and_k_bad_bodies_beyond_the_bound_fail_as_unavailable()
{
    let (env, p) = fitbit_env(fitbit_user()).await;
    let d = day("2025-06-05");
    env.fake.inject([Fault::ConnectionCut]);
    let got = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap();
    assert!(!got.samples.is_empty());
    // Three attempts (the configured bound), three malformed bodies: transient, not a defect.
    env.fake.inject_n(Fault::TruncatedBody, 3);
    let err = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn google_malformed_then_truncated_then_good_bodies_deliver_the_day_in_one_fetch() {
    let (env, p) = google_env(google_user()).await;
    let d = day("2026-10-05");
    let clean = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap();
    env.fake
        .inject([GoogleFault::MalformedJson, GoogleFault::TruncatedBody]);
    let got = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap();
    assert!(!got.samples.is_empty());
    assert_eq!(got.samples, clean.samples);
    env.fake.inject([GoogleFault::ConnectionCut]);
    let got = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap();
    assert_eq!(got.samples, clean.samples);
}

#[tokio::test]
async fn a_pending_sleep_log_is_stored_in_the_same_fetch_after_its_retry_duration() {
    let (env, p) = fitbit_env(fitbit_user().sleep_processing("2025-06-09", 300)).await;
    let got = env
        .source
        .fetch(&p, Metric::SleepStage, day("2025-06-07"), day("2025-06-09"))
        .await
        .unwrap();
    assert_eq!(got.incomplete_from, None);
    // The night that ended on the 9th (it starts the evening of the 8th, New York time).
    assert!(got.samples.iter().any(|s| {
        s.timestamp
            > "2025-06-09T06:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
    }));
    let sleep_requests: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/sleep/"))
        .collect();
    assert_eq!(
        sleep_requests.len(),
        2,
        "asked again once: {sleep_requests:?}"
    );
}

#[tokio::test]
async fn a_sleep_log_still_pending_after_the_bound_leaves_its_date_incomplete() {
    let (env, p) = fitbit_env(fitbit_user().sleep_processing("2025-06-09", 60_000)).await;
    let got = env
        .source
        .fetch(&p, Metric::SleepStage, day("2025-06-07"), day("2025-06-09"))
        .await
        .unwrap();
    // 60 s is beyond the test's 5 s bound: no wait, the date stays for a later run.
    assert_eq!(got.incomplete_from, Some(day("2025-06-09")));
    assert_eq!(env.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_fitbit_429_with_a_short_retry_after_is_waited_out_and_the_participant_is_loaded() {
    let (env, p) = fitbit_env(fitbit_user()).await;
    let d = day("2025-06-05");
    env.fake.inject([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let got = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap();
    assert!(!got.samples.is_empty());
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], 429);
    assert!(statuses[1..].iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_fitbit_429_beyond_the_longest_wait_defers_the_participant() {
    let (env, p) = fitbit_env(fitbit_user()).await;
    let d = day("2025-06-05");
    env.fake.inject([Fault::RateLimited {
        retry_after_secs: 1800,
    }]);
    let err = env.source.fetch(&p, Metric::Steps, d, d).await.unwrap_err();
    assert!(
        matches!(err, SourceError::QuotaExhausted { retry_after } if retry_after.as_secs() == 1800),
        "{err:?}"
    );
    assert_eq!(env.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_google_429_with_a_short_retry_after_is_waited_out() {
    let (env, p) = google_env(google_user()).await;
    let d = day("2026-10-05");
    env.fake.inject([GoogleFault::RateLimited {
        retry_after_secs: Some(1),
    }]);
    let got = env.source.fetch(&p, Metric::HeartRate, d, d).await.unwrap();
    assert!(!got.samples.is_empty());
    assert_eq!(env.fake.requests()[0].status, 429);
}

#[tokio::test]
async fn a_declined_google_scope_gives_scope_not_granted_naming_the_scope() {
    let (env, p) =
        google_env(google_user().deny_scope("health_metrics_and_measurements.readonly")).await;
    let d = day("2026-10-05");
    let err = env.source.fetch(&p, Metric::Spo2, d, d).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::ScopeNotGranted { scope }
            if scope == "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly"),
        "{err:?}"
    );
    let log = env.fake.requests();
    assert_eq!(log.len(), 1, "not retried");
    assert_eq!(log[0].status, 403);
    assert!(
        !env.source
            .fetch(&p, Metric::Steps, d, d)
            .await
            .unwrap()
            .samples
            .is_empty()
    );
}

#[tokio::test]
async fn a_fitbit_404_path_gives_not_offered_without_retries() {
    let (env, p) = fitbit_env(fitbit_user().not_served("/1/user/-/spo2")).await;
    let err = env
        .source
        .fetch(&p, Metric::Spo2, day("2025-06-01"), day("2025-06-05"))
        .await
        .unwrap_err();
    match &err {
        SourceError::NotOffered { reason } => {
            assert!(
                reason.contains("spo2") && reason.contains("404"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let log = env.fake.requests();
    assert_eq!(log.len(), 1, "classified once: {log:?}");
    assert_eq!(log[0].status, 404);
}

#[tokio::test]
async fn a_google_404_data_type_gives_not_offered_without_retries() {
    let (env, p) = google_env(google_user().not_served("oxygen-saturation")).await;
    let d = day("2026-10-05");
    let err = env.source.fetch(&p, Metric::Spo2, d, d).await.unwrap_err();
    match &err {
        SourceError::NotOffered { reason } => {
            assert!(
                reason.contains("spo2") && reason.contains("oxygen-saturation"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let log = env.fake.requests();
    assert_eq!(log.len(), 1, "classified once: {log:?}");
    assert_eq!(log[0].status, 404);
}
