//! Set-up shared by the ingest tests: enrolment without the browser round trip, each
//! provider's fake and source, the warehouse's tables in comparable form, child processes.

pub mod fitbit;
pub mod google;
pub mod process;
pub mod tables;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_ingest::oauth::{TokenResponse, store};
use wearhouse_ingest::sources::SourceParticipant;

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
    store::save(&mut conn, &id, provider, grant, Utc::now())
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
    store::load(&mut conn, participant, provider)
        .await
        .unwrap()
        .unwrap()
}
