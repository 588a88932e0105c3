//! Enrolment with Google Health: the participant consents at Google (authorization code with
//! PKCE, offline access), Google sends the browser back to our callback, we exchange the code,
//! ask `users/me/identity` who consented and `settings` for the time zone, and store the grant.
//!
//! When the identity's `legacyUserId` is the Fitbit user id of an enrolled participant, this is
//! that participant moving from Fitbit: they keep their id and their history continues (see
//! [`crate::migration`]), and their Fitbit grant is revoked once the Google one has worked. A
//! consent for one participant that turns out to be another participant's Fitbit account is
//! refused, so data never lands under the wrong id.

use axum::Router;
use chrono::Utc;
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use url::Url;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};

use super::api::NOT_LINKED_REASON;
use super::{GoogleHealthSource, PROVIDER, scope_for};
use crate::migration;
use crate::oauth::consent::{self, Consent};
use crate::oauth::{Binding, OAuthError, google, links, store};
use crate::sources::fitbit::PROVIDER as FITBIT;

/// A completed enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub participant: ParticipantId,
    /// Google's `healthUserId`.
    pub health_user_id: String,
    pub timezone: Tz,
    /// The Fitbit user id the participant moved from, when this was a move.
    pub moved_from_fitbit: Option<String>,
    /// Whether the old Fitbit grant is revoked (false: still pending, retried later).
    pub fitbit_revoked: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    health_user_id: String,
    #[serde(default)]
    legacy_user_id: Option<String>,
}

impl GoogleHealthSource {
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
        // Every enrolment reads the settings (time zone) and every load the paired devices
        // (last sync), both under the settings scope.
        let always = [scope_for("pairedDevices")];
        let scopes =
            consent::scopes_for_study(self, &client.config().scopes, study_metrics, &always);
        google::consent_url(client, &state, &pkce, &scopes)
    }

    /// Completes a consent: checks `state`, exchanges `code`, reads identity and time zone,
    /// moves a Fitbit participant over, and stores everything. A consent through a
    /// coordinator's link claims the link with the grant; a Google account other than the one
    /// on record (or, for a Fitbit participant, one their Fitbit account did not move to) is
    /// refused unless the change was confirmed.
    pub async fn complete_enrolment(
        &self,
        state: &str,
        code: &str,
    ) -> Result<Enrolled, OAuthError> {
        let opened = self.signer.open(state)?;
        let participant = opened.participant.clone();
        let client = self.api.tokens().client();
        let mut tokens = client.exchange_code(code, &opened.verifier).await?;
        let pool = &self.pool;
        let identity: Identity = match self
            .api
            .call_with_token(&tokens.access_token, "/v4/users/me/identity")
            .await
        {
            Ok(v) => serde_json::from_value(v)
                .map_err(|e| OAuthError::Malformed(format!("identity: {e}")))?,
            Err(status) if status.account_not_linked() => {
                let mut conn = pool.acquire().await?;
                if participants::get(&mut conn, &participant).await.is_ok() {
                    participants::set_needs_reconsent(
                        &mut conn,
                        &participant,
                        Some(NOT_LINKED_REASON),
                    )
                    .await?;
                }
                let _ = client.revoke(&tokens.access_token).await;
                return Err(OAuthError::Callback(NOT_LINKED_REASON.into()));
            }
            Err(status) => return Err(OAuthError::Unavailable(format!("identity: {status}"))),
        };
        let legacy = identity.legacy_user_id.filter(|l| !l.is_empty());
        let zone = match self
            .api
            .call_with_token(&tokens.access_token, "/v4/users/me/settings")
            .await
        {
            Ok(v) => v
                .get("timeZone")
                .and_then(Value::as_str)
                .and_then(|z| z.parse::<Tz>().ok()),
            Err(e) => {
                tracing::warn!(participant = %participant, error = %e, "could not read google health settings; keeping the stored time zone");
                None
            }
        };

        let mut tx = pool.begin().await?;
        let claimed = match links::claim(&mut tx, &opened, PROVIDER).await {
            Ok(c) => c,
            Err(e) => {
                drop(tx);
                let _ = client.revoke(&tokens.access_token).await;
                return Err(e);
            }
        };
        let existing = participants::get(&mut tx, &participant).await.ok();
        let changed = existing
            .as_ref()
            .filter(|p| p.provider.as_deref() == Some(PROVIDER))
            .and_then(|p| p.provider_user_id.as_deref())
            .is_some_and(|old| old != identity.health_user_id);
        if changed && !claimed.allow_account_change {
            drop(tx);
            tracing::warn!(participant = %participant, consented = %identity.health_user_id, "consent of another google account refused");
            let _ = client.revoke(&tokens.access_token).await;
            return Err(links::account_change_refused("Google"));
        }
        let owner = match &legacy {
            Some(l) => migration::participant_with_user_id(&mut *tx, FITBIT, l).await?,
            None => None,
        };
        let refuse = |why: String| OAuthError::Callback(why);
        if let Some(owner) = owner.as_deref().filter(|o| *o != participant.as_str()) {
            drop(tx);
            let _ = client.revoke(&tokens.access_token).await;
            return Err(refuse(format!(
                "this Google account belongs to Fitbit participant {owner}; enrol {owner} instead (nothing was stored for {participant})"
            )));
        }
        let on_fitbit = existing
            .as_ref()
            .filter(|p| p.provider.as_deref() == Some(FITBIT));
        if let Some(p) = on_fitbit
            && owner.is_none()
            && !claimed.allow_account_change
        {
            drop(tx);
            let _ = client.revoke(&tokens.access_token).await;
            return Err(refuse(format!(
                "participant {participant} is enrolled with Fitbit user {}, but this Google account's legacy Fitbit id is {}; the participant must consent with the Google account their Fitbit account moved to",
                p.provider_user_id.as_deref().unwrap_or("(unknown)"),
                legacy.as_deref().unwrap_or("(none)")
            )));
        }
        let moving = owner.is_some() && on_fitbit.is_some();
        let timezone = zone
            .or_else(|| existing.as_ref().and_then(|p| p.timezone.parse().ok()))
            .unwrap_or(Tz::UTC);
        participants::upsert(
            &mut tx,
            &NewParticipant {
                participant_id: participant.clone(),
                timezone,
                provider: Some(PROVIDER.to_owned()),
                enrolled_at: None,
                study_id: None,
            },
        )
        .await?;
        tokens.user_id = Some(identity.health_user_id.clone());
        store::save(
            &mut tx,
            self.api.tokens().key(),
            &participant,
            PROVIDER,
            &tokens,
            Utc::now(),
        )
        .await?;
        participants::set_provider(
            &mut *tx,
            &participant,
            PROVIDER,
            Some(&identity.health_user_id),
        )
        .await?;
        participants::set_needs_reconsent(&mut tx, &participant, None).await?;
        links::record(
            &mut tx,
            &participant,
            &claimed,
            serde_json::json!({
                "provider_user_id": identity.health_user_id,
                "account_changed": changed,
                "moved_from_fitbit": moving,
            }),
        )
        .await?;
        if moving {
            let handed = migration::hand_over(
                &mut tx,
                &participant,
                (FITBIT, legacy.as_deref()),
                (PROVIDER, Some(&identity.health_user_id)),
            )
            .await?;
            tracing::info!(participant = %participant, metrics = handed.metrics, "participant moved from fitbit to google health");
        }
        tx.commit().await?;

        // The Google grant has worked (identity answered): now the Fitbit grant can go.
        let mut fitbit_revoked = false;
        if moving {
            match &self.fitbit {
                Some(fitbit) => match migration::revoke_old_grant(pool, &participant, fitbit).await
                {
                    Ok(()) => fitbit_revoked = true,
                    Err(e) => {
                        tracing::warn!(participant = %participant, error = %e, "revoking the fitbit grant failed; it stays pending")
                    }
                },
                None => {
                    tracing::warn!(participant = %participant, "no fitbit client configured; the fitbit grant revocation stays pending")
                }
            }
        }
        tracing::info!(participant = %participant, %timezone, "google health enrolment complete");
        Ok(Enrolled {
            participant,
            health_user_id: identity.health_user_id,
            timezone,
            moved_from_fitbit: if moving { legacy } else { None },
            fitbit_revoked,
        })
    }

    /// Routes serving the OAuth callback at `path` (the path of the redirect URI), reporting
    /// each completed enrolment on `done` when given (the `enroll` command stops after one).
    pub fn callback_router(&self, path: &str, done: Option<UnboundedSender<Enrolled>>) -> Router {
        consent::callback_router(self.clone(), path, done)
    }
}

impl Consent for GoogleHealthSource {
    type Enrolled = Enrolled;
    const TITLE: &'static str = "Google Health";

    async fn complete(&self, state: &str, code: &str) -> Result<Enrolled, OAuthError> {
        self.complete_enrolment(state, code).await
    }

    fn done_message(enrolled: &Enrolled) -> String {
        match &enrolled.moved_from_fitbit {
            Some(fitbit) => format!(
                "Participant {} moved from Fitbit ({fitbit}) to Google Health; their history continues.",
                enrolled.participant
            ),
            None => format!(
                "Participant {} is enrolled with Google Health.",
                enrolled.participant
            ),
        }
    }
}
