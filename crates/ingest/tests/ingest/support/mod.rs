//! Set-up shared by the ingest tests: enrolment without the browser round trip, each
//! provider's fake and source, the warehouse's tables in comparable form, child processes.

pub mod fitbit;
pub mod google;
pub mod process;
pub mod tables;

use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_ingest::oauth::{TokenResponse, store};
use wearhouse_ingest::sources::SourceParticipant;

/// This test process's grant key, and a file holding it for the binaries the tests start.
static TOKEN_KEY: LazyLock<(TokenKey, tempfile::TempPath)> = LazyLock::new(|| {
    let (key, text) = TokenKey::generate();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    (key, file.into_temp_path())
});

/// The key the tests' grants are sealed under.
pub fn token_key() -> TokenKey {
    TOKEN_KEY.0.clone()
}

/// The file holding [`token_key`], for `WEARHOUSE_TOKEN_KEY_FILE`.
pub fn token_key_file() -> &'static Path {
    &TOKEN_KEY.1
}

/// Registers `participant` with `provider` in `tz` and stores `grant`, as a completed consent
/// would.
pub async fn enrol(
    pool: &PgPool,
    participant: &str,
    provider: &str,
    tz: Tz,
    enrolled_at: Option<DateTime<Utc>>,
    grant: &TokenResponse,
) -> SourceParticipant {
    let id = ParticipantId::parse(participant).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: id.clone(),
            timezone: tz,
            provider: Some(provider.into()),
            enrolled_at,
            study_id: None,
        },
    )
    .await
    .unwrap();
    store::save(&mut conn, &token_key(), &id, provider, grant, Utc::now())
        .await
        .unwrap();
    SourceParticipant {
        id,
        timezone: tz,
        provider_user_id: grant.user_id.clone(),
        handed_over: Default::default(),
    }
}

/// The grant stored for `participant` with `provider`.
pub async fn stored_grant(
    pool: &PgPool,
    participant: &ParticipantId,
    provider: &str,
) -> store::StoredToken {
    let mut conn = pool.acquire().await.unwrap();
    store::load(&mut conn, &token_key(), participant, provider)
        .await
        .unwrap()
        .unwrap()
}
