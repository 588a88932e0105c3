//! Fitbit OAuth against the fake server and a real database: consent with PKCE, rotation of
//! single-use refresh tokens, expiry, concurrent refreshes, revoked grants.

use std::sync::Arc;
use std::time::Duration;

use crate::support::fitbit::*;
use chrono::Utc;
use chrono_tz::America::New_York;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants;
use wearhouse_fakes::{FakeFitbit, FakeFitbitConfig, FakeUser};
use wearhouse_ingest::oauth::store::StoredToken;
use wearhouse_ingest::oauth::{OAuthClient, OAuthError, store};
use wearhouse_ingest::sources::SourceParticipant;
use wearhouse_ingest::sources::fitbit::{FitbitSource, NoopObserver};
use wearhouse_ingest::sources::{Source, SourceError};

fn query(url: &url::Url, key: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn consent_with_pkce_stores_the_tokens_the_user_id_and_the_time_zone() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = ParticipantId::parse("P001").unwrap();
    let consent = env.source.consent_url(&p);
    assert_eq!(query(&consent, "code_challenge_method"), "S256");
    assert_eq!(
        query(&consent, "redirect_uri"),
        "http://localhost:8080/callback"
    );

    let redirect = env.fake.consent(consent.as_str()).await.unwrap();
    let (code, state) = (query(&redirect, "code"), query(&redirect, "state"));
    let enrolled = env
        .source
        .complete_enrolment(&env.db.pool, &state, &code)
        .await
        .unwrap();
    assert_eq!(enrolled.provider_user_id.as_deref(), Some("7QX2LB"));
    assert_eq!(enrolled.timezone, New_York);

    let mut conn = env.db.pool.acquire().await.unwrap();
    let row = store::load(&mut conn, &crate::support::token_key(), &p, "fitbit")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.provider_user_id.as_deref(), Some("7QX2LB"));
    assert!(row.refresh_token.is_some());
    let hours = (row.expires_at - Utc::now()).num_minutes();
    assert!((470..=480).contains(&hours), "expires in {hours} min");
    let participant = participants::get(&mut conn, &p).await.unwrap();
    assert_eq!(participant.timezone, "America/New_York");
    assert_eq!(participant.provider.as_deref(), Some("fitbit"));
    assert_eq!(participant.provider_user_id.as_deref(), Some("7QX2LB"));

    // The code is single-use.
    let again = env
        .source
        .complete_enrolment(&env.db.pool, &state, &code)
        .await;
    assert!(
        matches!(again, Err(OAuthError::InvalidGrant(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_callback_with_a_forged_state_stores_nothing() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = ParticipantId::parse("P001").unwrap();
    let redirect = env
        .fake
        .consent(env.source.consent_url(&p).as_str())
        .await
        .unwrap();
    let forged = query(&redirect, "state").replace("v1.", "v1.x");
    let e = env
        .source
        .complete_enrolment(&env.db.pool, &forged, &query(&redirect, "code"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Callback(_)), "{e:?}");
    let mut conn = env.db.pool.acquire().await.unwrap();
    assert!(participants::get(&mut conn, &p).await.is_err());
}

#[tokio::test]
async fn a_consent_started_by_one_process_completes_in_another_with_the_same_key() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let daemon = env.worker();
    let p = ParticipantId::parse("P002").unwrap();
    let redirect = env
        .fake
        .consent(env.source.consent_url(&p).as_str())
        .await
        .unwrap();
    let enrolled = daemon
        .complete_enrolment(
            &env.db.pool,
            &query(&redirect, "state"),
            &query(&redirect, "code"),
        )
        .await
        .unwrap();
    assert_eq!(enrolled.participant, p);
}

#[tokio::test]
async fn a_client_app_exchanges_the_code_with_its_id_in_the_body() {
    let db =
        wearhouse_core::testing::TestDb::new(wearhouse_core::testing::TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::client_app(CLIENT_ID)).await;
    fake.add_user(FakeUser::new("9ZZ9ZZ", chrono_tz::Europe::London));
    let mut args = args_for(&fake);
    args.client_secret = None;
    args.app_type = wearhouse_ingest::sources::fitbit::AppType::Client;
    args.state_key = Some("state-key".to_owned().into());
    let source = FitbitSource::new(
        db.pool.clone(),
        crate::support::token_key(),
        &args,
        Arc::new(NoopObserver),
    )
    .unwrap();
    let p = ParticipantId::parse("P003").unwrap();
    let redirect = fake.consent(source.consent_url(&p).as_str()).await.unwrap();
    let enrolled = source
        .complete_enrolment(
            &db.pool,
            &query(&redirect, "state"),
            &query(&redirect, "code"),
        )
        .await
        .unwrap();
    assert_eq!(enrolled.timezone, chrono_tz::Europe::London);
}

#[tokio::test]
async fn refresh_rotates_the_token_and_a_spent_one_is_rejected() {
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(CLIENT_ID, SECRET)).await;
    fake.add_user(FakeUser::new("7QX2LB", New_York));
    let args = args_for(&fake);
    let client = OAuthClient::new(args.oauth_config().unwrap(), reqwest::Client::new());
    let first = fake.issue_tokens("7QX2LB");
    let second = client.refresh(&first.refresh_token).await.unwrap();
    let new_refresh = second.refresh_token.clone().unwrap();
    assert_ne!(new_refresh, first.refresh_token);
    assert_eq!(second.user_id.as_deref(), Some("7QX2LB"));
    assert_eq!(second.expires_in, 28_800);
    let spent = client.refresh(&first.refresh_token).await;
    assert!(
        matches!(spent, Err(OAuthError::InvalidGrant(ref m)) if m.contains("Refresh token invalid")),
        "{spent:?}"
    );
    assert!(client.refresh(&new_refresh).await.is_ok());
    assert_eq!(fake.refresh_count("7QX2LB"), 2);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_by_the_token_endpoint() {
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(CLIENT_ID, SECRET)).await;
    fake.add_user(FakeUser::new("7QX2LB", New_York));
    let mut args = args_for(&fake);
    args.client_secret = Some("wrong".to_owned().into());
    let client = OAuthClient::new(args.oauth_config().unwrap(), reqwest::Client::new());
    let e = client
        .refresh(&fake.issue_tokens("7QX2LB").refresh_token)
        .await
        .unwrap_err();
    assert!(
        matches!(e, OAuthError::Rejected { status: 401, ref error_type, .. } if error_type == "invalid_client"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_request_retried() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let before = env.token_row(&p).await;
    // Fitbit's clock says the token expired while ours still trusts it.
    env.fake.advance(chrono::Duration::hours(9));
    assert!(env.source.last_sync(&p).await.unwrap().is_some());
    assert_eq!(env.fake.refresh_count("7QX2LB"), 1);
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 200]);
    let after = env.token_row(&p).await;
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(after.refresh_token, before.refresh_token);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_it_is_used() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    sqlx::query("update oauth_tokens set expires_at = now() + interval '1 minute'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    env.source.last_sync(&p).await.unwrap();
    assert_eq!(env.fake.refresh_count("7QX2LB"), 1);
    let statuses: Vec<u16> = env.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200]);
    assert!(env.token_row(&p).await.expires_at > Utc::now() + chrono::Duration::hours(7));
}

#[tokio::test]
async fn two_workers_refreshing_the_same_participant_spend_the_refresh_token_once() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.fake.advance(chrono::Duration::hours(9));
    env.fake.set_token_latency(Duration::from_millis(300));
    let (a, b) = (env.worker(), env.worker());
    let (pa, pb) = (p.clone(), p.clone());
    let ta = tokio::spawn(async move { a.last_sync(&pa).await });
    let tb = tokio::spawn(async move { b.last_sync(&pb).await });
    assert!(ta.await.unwrap().is_ok());
    assert!(tb.await.unwrap().is_ok());
    // A double spend would have been answered invalid_grant and flagged re-consent.
    assert_eq!(env.fake.refresh_count("7QX2LB"), 1);
    assert!(!env.needs_reconsent(&p).await);
}

#[tokio::test]
async fn a_revoked_grant_marks_the_participant_as_needing_re_consent() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.fake.revoke_user("7QX2LB");
    env.fake.advance(chrono::Duration::hours(9));
    sqlx::query("update oauth_tokens set expires_at = now()")
        .execute(&env.db.pool)
        .await
        .unwrap();
    let e = env.source.last_sync(&p).await.unwrap_err();
    assert!(matches!(e, SourceError::NeedsReconsent { .. }), "{e:?}");
    assert!(env.needs_reconsent(&p).await);
    assert!(env.token_row(&p).await.revoked_at.is_some());
    // No further token endpoint calls for a revoked grant.
    let e = env.source.last_sync(&p).await.unwrap_err();
    assert!(matches!(e, SourceError::NeedsReconsent { .. }), "{e:?}");
}

#[tokio::test]
async fn an_invalid_access_token_marks_the_participant_as_needing_re_consent() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.fake.revoke_user("7QX2LB");
    let e = env.source.last_sync(&p).await.unwrap_err();
    assert!(
        matches!(e, SourceError::NeedsReconsent { ref reason } if reason.contains("invalid_token")),
        "{e:?}"
    );
    assert!(env.needs_reconsent(&p).await);
    assert_eq!(env.fake.refresh_count("7QX2LB"), 0);
}

#[tokio::test]
async fn revoking_a_grant_stops_its_tokens_at_fitbit() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    env.source.api().tokens().revoke(&p.id).await.unwrap();
    assert!(env.token_row(&p).await.revoked_at.is_some());
    let body = env.raw(&p, "/1/user/-/devices.json").await;
    assert_eq!(body["errors"][0]["errorType"], "invalid_token");
}

/// Rows recording a refresh token sent and not yet answered.
async fn refreshes_in_flight(env: &Env) -> i64 {
    sqlx::query_scalar("select count(*) from oauth_refresh_in_flight")
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

/// A refresh that dies after Fitbit rotated the token and before the new pair was stored: the
/// fake processes the refresh and holds its answer back, and the refreshing task is dropped
/// meanwhile (what a crash does to its transaction; the record of the token in flight was
/// committed on its own connection).
async fn refresh_cut_off_after_rotation(env: &Env, p: &SourceParticipant) -> StoredToken {
    let before = env.token_row(p).await;
    sqlx::query("update oauth_tokens set expires_at = now()")
        .execute(&env.db.pool)
        .await
        .unwrap();
    env.fake.set_token_answer_delay(Duration::from_secs(30));
    let cut = tokio::time::timeout(Duration::from_secs(2), env.source.last_sync(p)).await;
    assert!(cut.is_err(), "the refresh finished: {cut:?}");
    env.fake.set_token_answer_delay(Duration::ZERO);
    assert_eq!(env.fake.refresh_count("7QX2LB"), 1, "Fitbit rotated");
    let after = env.token_row(p).await;
    assert_eq!(
        after.refresh_token, before.refresh_token,
        "nothing was stored"
    );
    assert_eq!(
        refreshes_in_flight(env).await,
        1,
        "the spent token is known"
    );
    after
}

#[tokio::test]
async fn a_refresh_cut_off_after_rotation_is_recovered_within_fitbits_grace_period() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    env.fake.configure(|c| c.refresh_grace_secs = 120);
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let spent = refresh_cut_off_after_rotation(&env, &p).await;

    // The next refresh sends the spent token again and gets the pair Fitbit rotated to.
    env.source.last_sync(&p).await.unwrap();
    assert!(!env.needs_reconsent(&p).await);
    let recovered = env.token_row(&p).await;
    assert_ne!(recovered.refresh_token, spent.refresh_token);
    assert!(recovered.revoked_at.is_none());
    assert_eq!(refreshes_in_flight(&env).await, 0);
    assert_eq!(
        env.fake.refresh_count("7QX2LB"),
        1,
        "a replay, not a new rotation"
    );

    // The recovered pair is the live one: it refreshes again.
    sqlx::query("update oauth_tokens set expires_at = now()")
        .execute(&env.db.pool)
        .await
        .unwrap();
    env.source.last_sync(&p).await.unwrap();
    assert_eq!(env.fake.refresh_count("7QX2LB"), 2);
    assert!(!env.needs_reconsent(&p).await);
}

#[tokio::test]
async fn a_refresh_cut_off_after_rotation_without_a_grace_period_asks_for_re_consent_saying_why() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    refresh_cut_off_after_rotation(&env, &p).await;

    let e = env.source.last_sync(&p).await.unwrap_err();
    assert!(
        matches!(e, SourceError::NeedsReconsent { ref reason } if reason.contains("cut off")),
        "{e:?}"
    );
    let mut conn = env.db.pool.acquire().await.unwrap();
    let row = participants::get(&mut conn, &p.id).await.unwrap();
    assert!(row.needs_reconsent);
    let reason = row.reconsent_reason.unwrap();
    assert!(
        reason.contains("cut off") && reason.contains("invalid_grant"),
        "{reason}"
    );
    assert_eq!(refreshes_in_flight(&env).await, 0);
    assert!(env.token_row(&p).await.revoked_at.is_some());
}

#[tokio::test]
async fn the_refresh_token_in_flight_is_sealed_not_stored_in_plain_text() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let spent = refresh_cut_off_after_rotation(&env, &p).await;
    let token = spent.refresh_token.unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar(
        "select refresh_token_sealed from oauth_refresh_in_flight where participant_id = 'P001'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    let needle = token.as_bytes();
    assert!(!sealed.windows(needle.len()).any(|w| w == needle));
    let text: String =
        sqlx::query_scalar("select oauth_refresh_in_flight::text from oauth_refresh_in_flight")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn the_token_and_revoke_urls_are_settable_on_their_own() {
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(CLIENT_ID, SECRET)).await;
    fake.add_user(FakeUser::new("7QX2LB", New_York));
    let mut args = args_for(&fake);
    // The data API is elsewhere (nothing listens there); only the OAuth endpoints are set.
    args.api_url = "http://127.0.0.1:9".parse().unwrap();
    args.token_url = Some(format!("{}/oauth2/token", fake.url()).parse().unwrap());
    args.revoke_url = Some(format!("{}/oauth2/revoke", fake.url()).parse().unwrap());
    let config = args.oauth_config().unwrap();
    assert_eq!(config.token_url, args.token_url.clone().unwrap());
    let client = OAuthClient::new(config, reqwest::Client::new());
    let tokens = client
        .refresh(&fake.issue_tokens("7QX2LB").refresh_token)
        .await
        .unwrap();
    client.revoke(&tokens.access_token).await.unwrap();
    let spent = client.refresh(&tokens.refresh_token.unwrap()).await;
    assert!(
        matches!(spent, Err(OAuthError::InvalidGrant(_))),
        "revoked: {spent:?}"
    );

    // Unset, they follow the API URL.
    let derived = args_for(&fake).oauth_config().unwrap();
    assert_eq!(
        derived.revoke_url.as_str(),
        format!("{}/oauth2/revoke", fake.url())
    );
}
