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

use super::{FitbitSource, PROVIDER, scope_for};
use crate::oauth::consent::{self, Consent};
use crate::oauth::{Binding, OAuthError, links, store};

/// A completed enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub participant: ParticipantId,
    /// Fitbit's encoded user id, e.g. `7QX2LB`.
    pub provider_user_id: Option<String>,
    pub timezone: Tz,
}

impl FitbitSource {
    /// The consent URL for `participant`, asking every configured scope: send the
    /// participant's browser there.
    pub fn consent_url(&self, participant: &ParticipantId) -> Url {
        self.consent_url_bound(participant, Binding::None, None)
    }

    /// [`consent_url`](Self::consent_url) with a state bound to a consent link or carrying a
    /// confirmed account change, asking only what `study_metrics` (the participant's study's
    /// `metrics`; `None`: every metric) need.
    pub fn consent_url_bound(
        &self,
        participant: &ParticipantId,
        binding: Binding,
        study_metrics: Option<&[String]>,
    ) -> Url {
        let (state, pkce) = self.signer.issue_bound(participant, binding);
        let client = self.api.tokens().client();
        // Every enrolment reads profile.json (time zone, account creation day) and every
        // load devices.json (last sync).
        let always = [scope_for("profile"), scope_for("devices")];
        let scopes =
            consent::scopes_for_study(self, &client.config().scopes, study_metrics, &always);
        client.authorize_url_for(&state, &pkce, &scopes)
    }

    /// Completes a consent: checks `state`, exchanges `code`, reads the time zone and stores
    /// everything. The participant row is created when it does not exist yet. A consent
    /// through a coordinator's link claims the link with the grant; a Fitbit account other
    /// than the one on record is refused unless the change was confirmed.
    pub async fn complete_enrolment(
        &self,
        pool: &sqlx::PgPool,
        state: &str,
        code: &str,
    ) -> Result<Enrolled, OAuthError> {
        let opened = self.signer.open(state)?;
        let (participant, verifier) = (opened.participant.clone(), &opened.verifier);
        let tokens = self
            .api
            .tokens()
            .client()
            .exchange_code(code, verifier)
            .await?;
        #[derive(Deserialize)]
        struct Profile {
            user: ProfileUser,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ProfileUser {
            timezone: Option<String>,
            /// The day the account was created: nothing exists before it.
            member_since: Option<String>,
        }
        let mut conn = pool.begin().await?;
        let claimed = match links::claim(&mut conn, &opened, PROVIDER).await {
            Ok(c) => c,
            Err(e) => {
                drop(conn);
                self.discard(&tokens).await;
                return Err(e);
            }
        };
        let existing = participants::get(&mut conn, &participant).await.ok();
        let on_record = existing
            .as_ref()
            .filter(|p| p.provider.as_deref() == Some(PROVIDER))
            .and_then(|p| p.provider_user_id.clone());
        let changed = on_record
            .as_deref()
            .is_some_and(|old| tokens.user_id.as_deref() != Some(old));
        if changed && !claimed.allow_account_change {
            drop(conn);
            tracing::warn!(participant = %participant, on_record = ?on_record, consented = ?tokens.user_id, "consent of another fitbit account refused");
            self.discard(&tokens).await;
            return Err(links::account_change_refused("Fitbit"));
        }
        let (timezone, member_since) = match self
            .api
            .get_with_token::<Profile>(&tokens.access_token, "/1/user/-/profile.json")
            .await
        {
            Ok(p) => (
                p.user.timezone.and_then(|z| z.parse::<Tz>().ok()),
                p.user
                    .member_since
                    .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
            ),
            Err(e) => {
                tracing::warn!(participant = %participant, error = %e, "could not read the fitbit profile; keeping the stored time zone");
                (None, None)
            }
        };
        let timezone = timezone
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
        if let Some(since) = member_since {
            participants::set_provider_account_since(&mut *conn, &participant, since).await?;
        }
        links::record(
            &mut conn,
            &participant,
            &claimed,
            serde_json::json!({
                "provider_user_id": tokens.user_id,
                "account_changed": changed,
            }),
        )
        .await?;
        conn.commit().await?;
        tracing::info!(participant = %participant, %timezone, "fitbit enrolment complete");
        Ok(Enrolled {
            participant,
            provider_user_id: tokens.user_id,
            timezone,
        })
    }

    /// Revokes a grant that will not be stored, so no usable token outlives a refusal.
    async fn discard(&self, tokens: &crate::oauth::TokenResponse) {
        if let Err(e) = self
            .api
            .tokens()
            .client()
            .revoke(&tokens.access_token)
            .await
        {
            tracing::warn!(error = %e, "revoking a refused fitbit grant failed");
        }
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
