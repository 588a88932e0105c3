//! What a consent asks for and what it grants: a consent link of a participant whose study
//! collects some metrics asks only the scopes those metrics need (plus the ones every load
//! needs), at Fitbit and at Google; a participant whose study collects everything is asked
//! every configured scope; and a Google user who unticks a scope on the consent page gets a
//! grant without it, as Google's partial consent does.

use chrono::{Duration, Utc};
use chrono_tz::Europe::Berlin;
use wearhouse_core::store::collection;
use wearhouse_core::store::consent_links::{self, NewLink};
use wearhouse_core::store::studies;
use wearhouse_core::testing::TestDb;
use wearhouse_core::{Metric, ParticipantId};
use wearhouse_fakes::{FakeGoogleUser, FakeUser};
use wearhouse_ingest::oauth::links::{self, LinkRoutes};
use wearhouse_ingest::oauth::store;

use crate::support::{fitbit, google};

const G: &str = "https://www.googleapis.com/auth/googlehealth.";
const GOOGLE_USER: &str = "1173016576421350648";

fn param(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Study `SLIM` collecting heart rate and steps only, with participant `P-SLIM` in it, and
/// `P-ALL` in the default study (every metric).
async fn studies_and_participants(db: &TestDb) {
    let mut conn = db.pool.acquire().await.unwrap();
    studies::add(&mut conn, "SLIM", "Heart rate and steps")
        .await
        .unwrap();
    collection::set_study_metrics(
        &mut *conn,
        "SLIM",
        Some(&[Metric::HeartRate, Metric::Steps]),
    )
    .await
    .unwrap();
    for (participant, study) in [("P-SLIM", "SLIM"), ("P-ALL", "default")] {
        sqlx::query("insert into participants (participant_id, study_id) values ($1, $2)")
            .bind(participant)
            .bind(study)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// The consent link route, served on a free port as the daemon serves it.
async fn serve(routes: LinkRoutes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, links::router(routes)).await.unwrap() });
    format!("http://{addr}")
}

/// Where a new consent link of `participant` with `provider` sends the participant's browser.
async fn provider_page(db: &TestDb, base: &str, participant: &str, provider: &str) -> url::Url {
    let mut conn = db.pool.acquire().await.unwrap();
    let (_, token) = consent_links::create(
        &mut conn,
        &NewLink {
            participant_id: participant,
            provider,
            created_by: None,
            expires_at: Utc::now() + Duration::hours(72),
            allow_account_change: false,
        },
    )
    .await
    .unwrap();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/consent/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    r.headers()["location"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_fitbit_consent_asks_only_the_scopes_the_study_collects_and_the_ones_every_load_needs() {
    let env = fitbit::env(vec![FakeUser::new("7QX2LB", Berlin)]).await;
    studies_and_participants(&env.db).await;
    let base = serve(LinkRoutes {
        pool: env.db.pool.clone(),
        fitbit: Some(env.source.clone()),
        google: None,
    })
    .await;

    let slim = provider_page(&env.db, &base, "P-SLIM", "fitbit").await;
    // Heart rate and steps, the profile (time zone) and the devices (last sync): no sleep,
    // SpO2, breathing rate or temperature.
    assert_eq!(
        param(&slim, "scope").as_deref(),
        Some("activity heartrate settings profile")
    );
    let all = provider_page(&env.db, &base, "P-ALL", "fitbit").await;
    assert_eq!(
        param(&all, "scope").as_deref(),
        Some(
            "activity heartrate sleep oxygen_saturation respiratory_rate temperature settings profile"
        )
    );
}

#[tokio::test]
async fn a_google_consent_asks_only_the_scopes_the_study_collects_and_grants_those() {
    let env = google::env(vec![FakeGoogleUser::new(GOOGLE_USER, Berlin)]).await;
    studies_and_participants(&env.db).await;
    let base = serve(LinkRoutes {
        pool: env.db.pool.clone(),
        fitbit: None,
        google: Some(env.source.clone()),
    })
    .await;

    let slim = provider_page(&env.db, &base, "P-SLIM", "google-health").await;
    let asked = format!(
        "{G}activity_and_fitness.readonly {G}health_metrics_and_measurements.readonly \
         {G}settings.readonly"
    );
    assert_eq!(param(&slim, "scope").as_deref(), Some(asked.as_str()));
    let all = provider_page(&env.db, &base, "P-ALL", "google-health").await;
    assert!(
        param(&all, "scope").unwrap().contains("sleep.readonly"),
        "{all}"
    );

    // The participant consents: the grant holds what was asked, and no sleep scope.
    let back = env.fake.consent(slim.as_str()).await.unwrap();
    env.source
        .complete_enrolment(
            &param(&back, "state").unwrap(),
            &param(&back, "code").unwrap(),
        )
        .await
        .unwrap();
    let p = ParticipantId::parse("P-SLIM").unwrap();
    let mut conn = env.db.pool.acquire().await.unwrap();
    let row = store::load(&mut conn, &crate::support::token_key(), &p, "google-health")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.scope.as_deref(), Some(asked.as_str()));
}

#[tokio::test]
async fn a_scope_unticked_on_googles_consent_page_is_left_out_of_the_grant() {
    let env = google::env(vec![
        FakeGoogleUser::new(GOOGLE_USER, Berlin)
            .last_sync("2026-10-08T06:00:00Z")
            .deny_scope("health_metrics_and_measurements.readonly"),
    ])
    .await;
    let p = ParticipantId::parse("P001").unwrap();
    let consent = env.source.consent_url(&p);
    assert!(
        param(&consent, "scope")
            .unwrap()
            .contains("health_metrics_and_measurements"),
        "the scope is asked for"
    );

    let back = env.fake.consent(consent.as_str()).await.unwrap();
    let granted =
        format!("{G}activity_and_fitness.readonly {G}sleep.readonly {G}settings.readonly");
    assert_eq!(param(&back, "scope").as_deref(), Some(granted.as_str()));
    env.source
        .complete_enrolment(
            &param(&back, "state").unwrap(),
            &param(&back, "code").unwrap(),
        )
        .await
        .unwrap();
    // The token answer's `scope` lacks it, so the stored grant does.
    let mut conn = env.db.pool.acquire().await.unwrap();
    let row = store::load(&mut conn, &crate::support::token_key(), &p, "google-health")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.scope.as_deref(), Some(granted.as_str()));
}
