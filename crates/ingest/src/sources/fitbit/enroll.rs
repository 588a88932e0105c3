//! Enrolment: the participant consents at Fitbit (authorization code with PKCE), Fitbit sends
//! the browser back to our callback, we exchange the code, read the participant's time zone
//! from `profile.json`, and store the grant, the Fitbit user id and the zone.
//!
//! The `state` parameter is self-contained (see [`crate::oauth::StateSigner`], tag `v1`), so
//! any process holding the key can complete a consent that another process started.

use axum::Router;
use chrono::Utc;
use chrono_tz::Tz;
use serde::Deserialize;
use tokio::sync::mpsc::UnboundedSender;
use url::Url;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};

use super::{FitbitSource, PROVIDER};
use crate::oauth::consent::{self, Consent};
use crate::oauth::{OAuthError, store};

/// A completed enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub participant: ParticipantId,
    /// Fitbit's encoded user id, e.g. `7QX2LB`.
    pub provider_user_id: Option<String>,
    pub timezone: Tz,
}

impl FitbitSource {
    /// The consent URL for `participant`: send the participant's browser there.
    pub fn consent_url(&self, participant: &ParticipantId) -> Url {
        let (state, pkce) = self.signer.issue(participant);
        self.api.tokens().client().authorize_url(&state, &pkce)
    }

    /// Completes a consent: checks `state`, exchanges `code`, reads the time zone and stores
    /// everything. The participant row is created when it does not exist yet.
    pub async fn complete_enrolment(
        &self,
        pool: &sqlx::PgPool,
        state: &str,
        code: &str,
    ) -> Result<Enrolled, OAuthError> {
        let (participant, verifier) = self.signer.open(state)?;
        let tokens = self
            .api
            .tokens()
            .client()
            .exchange_code(code, &verifier)
            .await?;
        #[derive(Deserialize)]
        struct Profile {
            user: ProfileUser,
        }
        #[derive(Deserialize)]
        struct ProfileUser {
            timezone: Option<String>,
        }
        let mut conn = pool.begin().await?;
        let existing = participants::get(&mut conn, &participant).await.ok();
        let timezone = match self
            .api
            .get_with_token::<Profile>(&tokens.access_token, "/1/user/-/profile.json")
            .await
        {
            Ok(p) => p.user.timezone.and_then(|z| z.parse::<Tz>().ok()),
            Err(e) => {
                tracing::warn!(participant = %participant, error = %e, "could not read the fitbit profile; keeping the stored time zone");
                None
            }
        }
        .or_else(|| existing.as_ref().and_then(|p| p.timezone.parse().ok()))
        .unwrap_or(Tz::UTC);
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: participant.clone(),
                timezone,
                provider: Some(PROVIDER.to_owned()),
                enrolled_at: None,
                study_id: None,
            },
        )
        .await?;
        store::save(
            &mut conn,
            self.api.tokens().key(),
            &participant,
            PROVIDER,
            &tokens,
            Utc::now(),
        )
        .await?;
        participants::set_provider(
            &mut *conn,
            &participant,
            PROVIDER,
            tokens.user_id.as_deref(),
        )
        .await?;
        participants::set_needs_reconsent(&mut conn, &participant, None).await?;
        conn.commit().await?;
        tracing::info!(participant = %participant, %timezone, "fitbit enrolment complete");
        Ok(Enrolled {
            participant,
            provider_user_id: tokens.user_id,
            timezone,
        })
    }

    /// Routes serving the OAuth callback at `path` (the path of the redirect URI, usually
    /// `/callback`), for the `enroll` command and the daemon, reporting each completed
    /// enrolment on `done` when given (the `enroll` command stops after the first).
    pub fn callback_router(
        &self,
        pool: sqlx::PgPool,
        path: &str,
        done: Option<UnboundedSender<Enrolled>>,
    ) -> Router {
        let consent = FitbitConsent {
            source: self.clone(),
            pool,
        };
        consent::callback_router(consent, path, done)
    }
}

/// A Fitbit consent completes against the database its grants are stored in.
#[derive(Clone)]
struct FitbitConsent {
    source: FitbitSource,
    pool: sqlx::PgPool,
}

impl Consent for FitbitConsent {
    type Enrolled = Enrolled;
    const TITLE: &'static str = "Fitbit";

    async fn complete(&self, state: &str, code: &str) -> Result<Enrolled, OAuthError> {
        self.source
            .complete_enrolment(&self.pool, state, code)
            .await
    }

    fn done_message(enrolled: &Enrolled) -> String {
        format!(
            "Participant {} is enrolled with Fitbit.",
            enrolled.participant
        )
    }
}
