//! Coordinators' consent links on the participant's side, against the fake Fitbit and a real
//! database: the daemon's `/consent/{token}` sends the browser to the provider with a state
//! bound to the link, the consent claims the link with the grant (single use), an expired,
//! revoked or withdrawn one is refused with a page saying so, and a different Fitbit account
//! is refused unless the coordinator allowed the change.

use chrono::{Duration, Utc};
use chrono_tz::America::New_York;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::consent_links::{self, NewLink};
use wearhouse_core::store::participants;
use wearhouse_fakes::FakeUser;
use wearhouse_ingest::oauth::OAuthError;
use wearhouse_ingest::oauth::links::{self, LinkRoutes};

use crate::support::fitbit::*;

/// The link route served on a free port, like the daemon serves it.
async fn serve(env: &Env) -> String {
    let router = links::router(LinkRoutes {
        pool: env.db.pool.clone(),
        fitbit: Some(env.source.clone()),
        google: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A participant added by a coordinator (no provider yet) and a link for them.
async fn invite(env: &Env, participant: &str, allow_account_change: bool) -> (i64, String) {
    let mut conn = env.db.pool.acquire().await.unwrap();
    if !participants::exists(&mut *conn, participant).await.unwrap() {
        sqlx::query("insert into participants (participant_id, study_id) values ($1, 'default')")
            .bind(participant)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let (link, token) = consent_links::create(
        &mut conn,
        &NewLink {
            participant_id: participant,
            provider: "fitbit",
            created_by: None,
            expires_at: Utc::now() + Duration::hours(72),
            allow_account_change,
        },
    )
    .await
    .unwrap();
    (link.link_id, token)
}

/// Opens the link as the participant's browser does, without following the redirect.
async fn open(base: &str, token: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/consent/{token}"))
        .send()
        .await
        .unwrap()
}

/// The provider's consent page the link redirected to.
async fn provider_page(base: &str, token: &str) -> String {
    let r = open(base, token).await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Consents at the fake provider and completes the callback, as the daemon's callback does.
async fn consent(env: &Env, provider_page: &str) -> Result<(), OAuthError> {
    let back = env.fake.consent(provider_page).await.unwrap();
    let q = |k: &str| {
        back.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    env.source
        .complete_enrolment(&env.db.pool, &q("state"), &q("code"))
        .await
        .map(|_| ())
}

async fn used_at(env: &Env, link: i64) -> Option<chrono::DateTime<Utc>> {
    sqlx::query_scalar("select used_at from consent_links where link_id = $1")
        .bind(link)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

async fn account_on_record(env: &Env, participant: &str) -> Option<String> {
    let mut conn = env.db.pool.acquire().await.unwrap();
    participants::get(&mut conn, &ParticipantId::parse(participant).unwrap())
        .await
        .unwrap()
        .provider_user_id
}

#[tokio::test]
async fn a_link_enrols_its_participant_once_and_a_second_use_is_refused() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let base = serve(&env).await;
    let (link, token) = invite(&env, "P001", false).await;

    // Two tabs open the same link before either consents: both reach the provider, but the
    // link serves one consent.
    let first = provider_page(&base, &token).await;
    let second = provider_page(&base, &token).await;
    assert!(first.starts_with(&env.fake.authorize_url()), "{first}");
    consent(&env, &first).await.unwrap();
    assert!(used_at(&env, link).await.is_some());
    assert_eq!(
        account_on_record(&env, "P001").await.as_deref(),
        Some("7QX2LB")
    );
    let again = consent(&env, &second).await;
    assert!(
        matches!(&again, Err(OAuthError::Callback(m)) if m.contains("used already")),
        "{again:?}"
    );

    // Opening it afterwards is refused with a page saying so.
    let r = open(&base, &token).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("used already"));

    // The enrolment is in the audit trail, attributed to the link.
    let (actor, detail): (String, serde_json::Value) = sqlx::query_as(
        "select actor, detail from audit_log where action = 'participant_changed' order by audit_id desc limit 1",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(actor, format!("participant through consent link {link}"));
    assert_eq!(detail["change"], "enrolled");
    assert_eq!(detail["link_id"], link);
    assert_eq!(detail["provider_user_id"], "7QX2LB");
}

#[tokio::test]
async fn an_unknown_expired_revoked_or_withdrawn_link_is_refused_before_the_provider() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let base = serve(&env).await;

    let r = open(&base, "not-a-token").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("not valid"));

    let (expired, token) = invite(&env, "P001", false).await;
    sqlx::query(
        "update consent_links set created_at = now() - interval '4 days',
                expires_at = now() - interval '1 day' where link_id = $1",
    )
    .bind(expired)
    .execute(&env.db.pool)
    .await
    .unwrap();
    let r = open(&base, &token).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("expired"));

    let (revoked, token) = invite(&env, "P002", false).await;
    let mut conn = env.db.pool.acquire().await.unwrap();
    consent_links::revoke(&mut conn, "P002", revoked)
        .await
        .unwrap();
    let r = open(&base, &token).await;
    assert_eq!(r.status(), 410);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("withdrawn by the study team")
    );

    // A participant withdrawn after the link was opened cannot finish the consent either.
    let (link, token) = invite(&env, "P003", false).await;
    let page = provider_page(&base, &token).await;
    sqlx::query("update participants set status = 'withdrawn' where participant_id = 'P003'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    let r = open(&base, &token).await;
    assert_eq!(r.status(), 410);
    let refused = consent(&env, &page).await;
    assert!(
        matches!(refused, Err(OAuthError::Callback(_))),
        "{refused:?}"
    );
    assert!(used_at(&env, link).await.is_none());
    let grants: i64 =
        sqlx::query_scalar("select count(*) from oauth_tokens where participant_id = 'P003'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(grants, 0);
}

#[tokio::test]
async fn another_fitbit_account_is_refused_unless_the_coordinator_allowed_the_change() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York),
        FakeUser::new("9ZZ9ZZ", New_York),
    ])
    .await;
    let base = serve(&env).await;
    let (_, token) = invite(&env, "P001", false).await;
    consent(&env, &provider_page(&base, &token).await)
        .await
        .unwrap();

    // The participant re-consents, but signed in to another Fitbit account.
    env.fake.login_as("9ZZ9ZZ");
    let (link, token) = invite(&env, "P001", false).await;
    let refused = consent(&env, &provider_page(&base, &token).await).await;
    assert!(
        matches!(&refused, Err(OAuthError::Callback(m)) if m.contains("not the one on record")),
        "{refused:?}"
    );
    assert_eq!(
        account_on_record(&env, "P001").await.as_deref(),
        Some("7QX2LB")
    );
    // Nothing was stored, so the same link still works for the right account.
    assert!(used_at(&env, link).await.is_none());
    env.fake.login_as("7QX2LB");
    consent(&env, &provider_page(&base, &token).await)
        .await
        .unwrap();
    assert!(used_at(&env, link).await.is_some());

    // With the change allowed, the new account replaces the old one.
    env.fake.login_as("9ZZ9ZZ");
    let (_, token) = invite(&env, "P001", true).await;
    consent(&env, &provider_page(&base, &token).await)
        .await
        .unwrap();
    assert_eq!(
        account_on_record(&env, "P001").await.as_deref(),
        Some("9ZZ9ZZ")
    );
    let changed: serde_json::Value = sqlx::query_scalar(
        "select detail from audit_log where action = 'participant_changed' order by audit_id desc limit 1",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(changed["account_changed"], true);
}
