//! Shared set-up for the Fitbit tests: a fresh database, the fake Fitbit server and a source
//! pointed at it.

use std::sync::Arc;

use chrono_tz::Tz;
use wearhouse_core::store::participants;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{FakeFitbit, FakeFitbitConfig, FakeTokens, FakeUser};
use wearhouse_ingest::oauth::TokenResponse;
use wearhouse_ingest::oauth::store::StoredToken;
use wearhouse_ingest::sources::SourceParticipant;
use wearhouse_ingest::sources::fitbit::{FitbitArgs, FitbitSource, NoopObserver};

pub const CLIENT_ID: &str = "23ABCD";
pub const SECRET: &str = "fake-client-secret";

pub struct Env {
    pub db: TestDb,
    pub fake: FakeFitbit,
    pub args: FitbitArgs,
    pub source: FitbitSource,
}

/// Arguments pointing at the fake, with quick retries.
pub fn args_for(fake: &FakeFitbit) -> FitbitArgs {
    let mut args = FitbitArgs::for_base_url(&fake.url(), CLIENT_ID, Some(SECRET));
    args.retry_base_ms = 10;
    // Below the fake's default retryDuration (30 s): a night pending for good is left to a
    // later run at once; tests of in-run retries give the fake a short retryDuration.
    args.pending_sleep_max_wait_secs = 5;
    args
}

/// The grant our client would have stored for tokens the fake issued.
pub fn grant(t: FakeTokens) -> TokenResponse {
    TokenResponse {
        access_token: t.access_token,
        expires_in: t.expires_in,
        refresh_token: Some(t.refresh_token),
        scope: Some(t.scope),
        user_id: Some(t.user_id),
    }
}

pub async fn env(users: Vec<FakeUser>) -> Env {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(CLIENT_ID, SECRET)).await;
    for u in users {
        fake.add_user(u);
    }
    let args = args_for(&fake);
    let source = FitbitSource::new(
        db.pool.clone(),
        super::token_key(),
        &args,
        Arc::new(NoopObserver),
    )
    .unwrap();
    Env {
        db,
        fake,
        args,
        source,
    }
}

impl Env {
    /// A second, independent source (another worker) on the same database.
    pub fn worker(&self) -> FitbitSource {
        FitbitSource::new(
            self.db.pool.clone(),
            super::token_key(),
            &self.args,
            Arc::new(NoopObserver),
        )
        .unwrap()
    }

    /// Enrols `participant` as fake user `user_id` without the browser round trip.
    pub async fn enrol(&self, participant: &str, user_id: &str, tz: Tz) -> SourceParticipant {
        let grant = grant(self.fake.issue_tokens(user_id));
        super::enrol(&self.db.pool, participant, "fitbit", tz, None, &grant).await
    }

    pub async fn token_row(&self, participant: &SourceParticipant) -> StoredToken {
        super::stored_grant(&self.db.pool, &participant.id, "fitbit").await
    }

    pub async fn needs_reconsent(&self, participant: &SourceParticipant) -> bool {
        let mut conn = self.db.pool.acquire().await.unwrap();
        participants::get(&mut conn, &participant.id)
            .await
            .unwrap()
            .needs_reconsent
    }

    /// Raw JSON from the fake with the participant's current token.
    pub async fn raw(
        &self,
        participant: &SourceParticipant,
        path_and_query: &str,
    ) -> serde_json::Value {
        let token = self.token_row(participant).await.access_token;
        reqwest::Client::new()
            .get(format!("{}{path_and_query}", self.fake.url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
