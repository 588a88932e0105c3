//! Shared set-up for the Google Health tests: a fresh database, the fake Google Health server
//! and a source pointed at it.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{FakeGoogleConfig, FakeGoogleHealth, FakeGoogleTokens, FakeGoogleUser};
use wearhouse_ingest::oauth::TokenResponse;
use wearhouse_ingest::oauth::store::StoredToken;
use wearhouse_ingest::sources::SourceParticipant;
use wearhouse_ingest::sources::fitbit::NoopObserver;
use wearhouse_ingest::sources::google_health::{GoogleHealthArgs, GoogleHealthSource, PROVIDER};

pub const CLIENT_ID: &str = "1234-fake.apps.googleusercontent.com";
pub const SECRET: &str = "GOCSPX-fake-secret";

pub struct Env {
    pub db: TestDb,
    pub fake: FakeGoogleHealth,
    pub source: GoogleHealthSource,
}

pub fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The grant our client would have stored for tokens the fake issued to `user`.
pub fn grant(t: FakeGoogleTokens, user: &str) -> TokenResponse {
    TokenResponse {
        access_token: t.access_token,
        expires_in: t.expires_in,
        refresh_token: Some(t.refresh_token),
        scope: Some(t.scope),
        user_id: Some(user.into()),
    }
}

pub async fn env(users: Vec<FakeGoogleUser>) -> Env {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeGoogleHealth::start(FakeGoogleConfig::new(CLIENT_ID, SECRET)).await;
    for u in users {
        fake.add_user(u);
    }
    let args = GoogleHealthArgs::for_base_url(&fake.url(), CLIENT_ID, SECRET);
    let source = GoogleHealthSource::new(
        db.pool.clone(),
        super::token_key(),
        &args,
        Arc::new(NoopObserver),
    )
    .unwrap();
    Env { db, fake, source }
}

impl Env {
    /// Enrols `participant` as fake user `user` without the browser round trip.
    pub async fn enrol(&self, participant: &str, user: &str, tz: Tz) -> SourceParticipant {
        let grant = grant(self.fake.issue_tokens(user), user);
        super::enrol(&self.db.pool, participant, PROVIDER, tz, None, &grant).await
    }

    pub async fn token_row(&self, p: &SourceParticipant) -> StoredToken {
        super::stored_grant(&self.db.pool, &p.id, PROVIDER).await
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
