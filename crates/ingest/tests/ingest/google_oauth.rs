//! Google Health OAuth and API errors against the fake server and a real database: consent
//! with PKCE and offline access, reusable refresh tokens, 401 → refresh → retry, a revoked
//! grant, an account that is not linked, quota exhaustion and resumption, 5xx retries.

use crate::support::google::*;
use chrono::{Duration, Utc};
use chrono_tz::Europe::Berlin;
use wearhouse_core::{Metric, ParticipantId};
use wearhouse_fakes::{FakeGoogleUser, GoogleFault};
use wearhouse_ingest::migration::reconsent;
use wearhouse_ingest::oauth::store;
use wearhouse_ingest::sources::{Source, SourceError};

const USER: &str = "1173016576421350648";
const SYNC: &str = "2026-10-08T06:00:00Z";

fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn consent_with_pkce_and_offline_access_stores_the_grant_the_health_user_id_and_the_zone() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = ParticipantId::parse("P001").unwrap();
    let consent = env.source.consent_url(&p);
    assert_eq!(query(&consent, "access_type").as_deref(), Some("offline"));
    assert_eq!(query(&consent, "prompt").as_deref(), Some("consent"));
    assert_eq!(
        query(&consent, "code_challenge_method").as_deref(),
        Some("S256")
    );

    let redirect = env.fake.consent(consent.as_str()).await.unwrap();
    let (code, state) = (
        query(&redirect, "code").unwrap(),
        query(&redirect, "state").unwrap(),
    );
    let enrolled = env.source.complete_enrolment(&state, &code).await.unwrap();
    assert_eq!(enrolled.health_user_id, USER);
    assert_eq!(enrolled.timezone, Berlin);
    assert_eq!(enrolled.moved_from_fitbit, None);

    let mut conn = env.db.pool.acquire().await.unwrap();
    let row = store::load(&mut conn, &crate::support::token_key(), &p, "google-health")
        .await
        .unwrap()
        .unwrap();
    assert!(row.refresh_token.is_some());
    assert_eq!(row.provider_user_id.as_deref(), Some(USER));
    let minutes = (row.expires_at - Utc::now()).num_minutes();
    assert!((55..=60).contains(&minutes), "expires in {minutes} min");
    let participant = env.participant(&p).await;
    assert_eq!(participant.provider.as_deref(), Some("google-health"));
    assert_eq!(participant.provider_user_id.as_deref(), Some(USER));
    assert_eq!(participant.timezone, "Europe/Berlin");

    // Codes are single-use.
    let again = env.source.complete_enrolment(&state, &code).await;
    assert!(again.is_err(), "{again:?}");
}

#[tokio::test]
async fn a_refresh_keeps_the_reusable_refresh_token_google_does_not_resend() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    let before = env.token_row(&p).await;
    // Our stored grant is about to expire: the next call refreshes first.
    sqlx::query("update oauth_tokens set expires_at = now() + interval '1 minute'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    env.source
        .fetch(
            &p,
            Metric::RestingHeartRate,
            day("2026-10-05"),
            day("2026-10-06"),
        )
        .await
        .unwrap();
    let after = env.token_row(&p).await;
    assert_eq!(env.fake.refresh_count(USER), 1);
    assert_ne!(after.access_token, before.access_token);
    assert_eq!(after.refresh_token, before.refresh_token);
    assert!(after.expires_at > Utc::now() + Duration::minutes(55));
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_the_call() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    // Google expired the token although our clock says it is still valid.
    env.fake.advance(Duration::minutes(61));
    let fetched = env
        .source
        .fetch(
            &p,
            Metric::RestingHeartRate,
            day("2026-10-05"),
            day("2026-10-06"),
        )
        .await
        .unwrap();
    assert_eq!(fetched.samples.len(), 2);
    assert_eq!(env.fake.refresh_count(USER), 1);
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], 401);
    assert!(statuses[1..].iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_revoked_grant_marks_the_participant_as_needing_reconsent() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    env.fake.revoke_user(USER);
    let e = env
        .source
        .fetch(&p, Metric::HeartRate, day("2026-10-05"), day("2026-10-05"))
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::NeedsReconsent { .. }), "{e:?}");
    let row = env.participant(&p.id).await;
    assert!(row.needs_reconsent);
    assert!(row.reconsent_reason.unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn an_account_that_is_not_linked_needs_reconsent_with_a_clear_reason() {
    let env = env(vec![
        FakeGoogleUser::new(USER, Berlin)
            .last_sync(SYNC)
            .not_linked(),
    ])
    .await;
    let p = env.enrol("P001", USER, Berlin).await;
    let e = env
        .source
        .fetch(&p, Metric::Steps, day("2026-10-05"), day("2026-10-05"))
        .await
        .unwrap_err();
    let SourceError::NeedsReconsent { reason } = e else {
        panic!("{e:?}")
    };
    assert!(reason.contains("ACCOUNT_NOT_LINKED"), "{reason}");
    let mut conn = env.db.pool.acquire().await.unwrap();
    let listed = reconsent::list(&mut conn).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].participant_id, "P001");
    assert!(
        listed[0].reason.contains("Google Health profile"),
        "{}",
        listed[0].reason
    );
}

#[tokio::test]
async fn an_exhausted_quota_keeps_the_days_fetched_and_a_later_run_resumes() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    // One day of steps takes three requests (empty first page, data, `{}`).
    env.fake.configure(|c| c.requests_per_minute = 3);
    let first = env
        .source
        .fetch(&p, Metric::Steps, day("2026-10-05"), day("2026-10-06"))
        .await
        .unwrap();
    assert_eq!(first.incomplete_from, Some(day("2026-10-06")));
    assert!(env.fake.requests().iter().any(|r| r.status == 429));

    // Still spent: nothing fetched at all is an error the pipeline records as a quota wait.
    let spent = env
        .source
        .fetch(&p, Metric::Steps, day("2026-10-06"), day("2026-10-06"))
        .await;
    assert!(
        matches!(spent, Err(SourceError::QuotaExhausted { .. })),
        "{spent:?}"
    );

    // A minute later the next run resumes where the first stopped.
    env.fake.advance(Duration::seconds(61));
    env.fake.configure(|c| c.requests_per_minute = 300);
    let rest = env
        .source
        .fetch(&p, Metric::Steps, day("2026-10-06"), day("2026-10-06"))
        .await
        .unwrap();
    let whole = env
        .source
        .fetch(&p, Metric::Steps, day("2026-10-05"), day("2026-10-06"))
        .await
        .unwrap();
    let mut resumed: Vec<_> = first
        .samples
        .into_iter()
        .chain(rest.samples)
        .map(|s| s.timestamp)
        .collect();
    let mut clean: Vec<_> = whole.samples.into_iter().map(|s| s.timestamp).collect();
    resumed.sort();
    clean.sort();
    assert!(!clean.is_empty());
    assert_eq!(resumed, clean);
}

#[tokio::test]
async fn server_errors_are_retried_with_a_bound() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    env.fake
        .inject([GoogleFault::Status(503), GoogleFault::Status(500)]);
    let ok = env
        .source
        .fetch(
            &p,
            Metric::RestingHeartRate,
            day("2026-10-05"),
            day("2026-10-05"),
        )
        .await
        .unwrap();
    assert_eq!(ok.samples.len(), 1);

    env.fake.inject([
        GoogleFault::Status(503),
        GoogleFault::Status(503),
        GoogleFault::Status(503),
    ]);
    let e = env
        .source
        .fetch(
            &p,
            Metric::RestingHeartRate,
            day("2026-10-05"),
            day("2026-10-05"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn last_sync_comes_from_the_paired_devices() {
    let env = env(vec![
        FakeGoogleUser::new(USER, Berlin).last_sync(SYNC),
        FakeGoogleUser::new("42", Berlin).without_device(),
    ])
    .await;
    let p = env.enrol("P001", USER, Berlin).await;
    assert_eq!(
        env.source.last_sync(&p).await.unwrap(),
        Some(SYNC.parse().unwrap())
    );
    let q = env.enrol("P002", "42", Berlin).await;
    assert_eq!(env.source.last_sync(&q).await.unwrap(), None);
}
