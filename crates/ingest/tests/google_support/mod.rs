//! Shared set-up for the Google Health tests: a fresh database, the fake Google Health server
//! and a source pointed at it.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_ingest::oauth::{TokenResponse, store};
use wearhouse_ingest::sources::SourceParticipant;
use wearhouse_ingest::sources::fitbit::NoopObserver;
use wearhouse_ingest::sources::google_health::{GoogleHealthArgs, GoogleHealthSource, PROVIDER};
use wearhouse_ingest::testing::{FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser};

pub const CLIENT_ID: &str = "1234-fake.apps.googleusercontent.com";
pub const SECRET: &str = "GOCSPX-fake-secret";

pub struct Env {
    pub db: TestDb,
    pub fake: FakeGoogleHealth,
    pub args: GoogleHealthArgs,
    pub source: GoogleHealthSource,
}

pub fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub async fn env(users: Vec<FakeGoogleUser>) -> Env {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeGoogleHealth::start(FakeGoogleConfig::new(CLIENT_ID, SECRET)).await;
    for u in users {
        fake.add_user(u);
    }
    let args = GoogleHealthArgs::for_base_url(&fake.url(), CLIENT_ID, SECRET);
    let source = GoogleHealthSource::new(db.pool.clone(), &args, Arc::new(NoopObserver)).unwrap();
    Env {
        db,
        fake,
        args,
        source,
    }
}

impl Env {
    /// Enrols `participant` as fake user `user` without the browser round trip.
    pub async fn enrol(&self, participant: &str, user: &str, tz: Tz) -> SourceParticipant {
        let id = ParticipantId::parse(participant).unwrap();
        let t = self.fake.issue_tokens(user);
        let mut conn = self.db.pool.acquire().await.unwrap();
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: id.clone(),
                timezone: tz,
                provider: Some(PROVIDER.into()),
                enrolled_at: None,
            },
        )
        .await
        .unwrap();
        let response = TokenResponse {
            access_token: t.access_token,
            expires_in: t.expires_in,
            refresh_token: Some(t.refresh_token),
            scope: Some(t.scope),
            user_id: Some(user.into()),
        };
        store::save(&mut conn, &id, PROVIDER, &response, Utc::now())
            .await
            .unwrap();
        SourceParticipant {
            id,
            timezone: tz,
            provider_user_id: Some(user.into()),
            handed_over: Default::default(),
        }
    }

    pub async fn token_row(&self, p: &SourceParticipant) -> store::StoredToken {
        let mut conn = self.db.pool.acquire().await.unwrap();
        store::load(&mut conn, &p.id, PROVIDER)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn participant(&self, p: &ParticipantId) -> participants::Participant {
        let mut conn = self.db.pool.acquire().await.unwrap();
        participants::get(&mut conn, p).await.unwrap()
    }

    /// A raw GET against the fake with the participant's current token.
    pub async fn raw(
        &self,
        p: &SourceParticipant,
        path: &str,
        query: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let token = self.token_row(p).await.access_token;
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.fake.url()))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}
