//! Enrolment: the participant consents at Fitbit (authorization code with PKCE), Fitbit sends
//! the browser back to our callback, we exchange the code, read the participant's time zone
//! from `profile.json`, and store the grant, the Fitbit user id and the zone.
//!
//! The `state` parameter is self-contained: it carries the participant id and an issue time,
//! signed with HMAC-SHA256, and the PKCE verifier is derived from it with the same key. So any
//! process holding the key (the `enroll` command's own callback server, or a running daemon)
//! can complete a consent that another process started, and no pending state is stored.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};

use super::{FitbitSource, PROVIDER};
use crate::oauth::{
    OAuthError, Pkce, pkce::hmac_sha256, pkce::random_token, pkce::s256_challenge, store,
};

/// How long a consent link stays usable (Fitbit's codes live 10 minutes after consent).
const STATE_TTL_SECS: i64 = 3600;

/// A completed enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub participant: ParticipantId,
    /// Fitbit's encoded user id, e.g. `7QX2LB`.
    pub provider_user_id: Option<String>,
    pub timezone: Tz,
}

impl FitbitSource {
    fn verifier_for(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(
            &self.state_key,
            format!("pkce:{payload}").as_bytes(),
        ))
    }

    /// The consent URL for `participant`: send the participant's browser there.
    pub fn consent_url(&self, participant: &ParticipantId) -> Url {
        let payload = format!(
            "v1.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(participant.as_str()),
            Utc::now().timestamp(),
            random_token(12)
        );
        let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.state_key, payload.as_bytes()));
        let verifier = self.verifier_for(&payload);
        let pkce = Pkce {
            challenge: s256_challenge(&verifier),
            verifier,
        };
        self.api
            .tokens()
            .client()
            .authorize_url(&format!("{payload}.{mac}"), &pkce)
    }

    /// Checks `state`, returning the participant and the PKCE verifier it stands for.
    fn open_state(&self, state: &str) -> Result<(ParticipantId, String), OAuthError> {
        let bad = |why: &str| OAuthError::Callback(why.to_owned());
        let (payload, mac) = state
            .rsplit_once('.')
            .ok_or_else(|| bad("malformed state"))?;
        let expected = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.state_key, payload.as_bytes()));
        // Constant-time comparison: the MAC must not leak through timing.
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(bad("state does not match a consent link we issued"));
        }
        let parts: Vec<&str> = payload.split('.').collect();
        let [_, id, issued, _] = parts[..] else {
            return Err(bad("malformed state"));
        };
        let issued: i64 = issued.parse().map_err(|_| bad("malformed state"))?;
        if Utc::now().timestamp() - issued > STATE_TTL_SECS {
            return Err(bad("the consent link has expired; start enrolment again"));
        }
        let id = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("malformed state"))?;
        let participant = ParticipantId::parse(&id).map_err(|e| bad(&e.to_string()))?;
        Ok((participant, self.verifier_for(payload)))
    }

    /// Completes a consent: checks `state`, exchanges `code`, reads the time zone and stores
    /// everything. The participant row is created when it does not exist yet.
    pub async fn complete_enrolment(
        &self,
        pool: &sqlx::PgPool,
        state: &str,
        code: &str,
    ) -> Result<Enrolled, OAuthError> {
        let (participant, verifier) = self.open_state(state)?;
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
            },
        )
        .await?;
        store::save(&mut conn, &participant, PROVIDER, &tokens, Utc::now()).await?;
        sqlx::query(
            "update participants set provider = $2, provider_user_id = $3, updated_at = now()
             where participant_id = $1",
        )
        .bind(participant.as_str())
        .bind(PROVIDER)
        .bind(&tokens.user_id)
        .execute(&mut *conn)
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
    /// `/callback`), for the `enroll` command and the daemon.
    pub fn callback_router(&self, pool: sqlx::PgPool, path: &str) -> Router {
        Router::new()
            .route(path, get(callback))
            .with_state(CallbackState {
                source: self.clone(),
                pool,
                done: None,
            })
    }

    /// Like [`FitbitSource::callback_router`], also reporting each completed enrolment on
    /// `done` (the `enroll` command stops after the first).
    pub fn callback_router_notify(
        &self,
        pool: sqlx::PgPool,
        path: &str,
        done: tokio::sync::mpsc::UnboundedSender<Enrolled>,
    ) -> Router {
        Router::new()
            .route(path, get(callback))
            .with_state(CallbackState {
                source: self.clone(),
                pool,
                done: Some(done),
            })
    }
}

#[derive(Clone)]
struct CallbackState {
    source: FitbitSource,
    pool: sqlx::PgPool,
    done: Option<tokio::sync::mpsc::UnboundedSender<Enrolled>>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(s): State<CallbackState>, Query(q): Query<CallbackQuery>) -> Response {
    let page = |status: StatusCode, msg: String| {
        let msg = msg.replace('&', "&amp;").replace('<', "&lt;");
        (
            status,
            Html(format!(
                "<!doctype html><title>wearhouse enrolment</title><p>{msg}</p>"
            )),
        )
            .into_response()
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return page(
            StatusCode::BAD_REQUEST,
            format!("Consent was not given ({error}: {detail}). Nothing was stored."),
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return page(StatusCode::BAD_REQUEST, "Missing code or state.".into());
    };
    match s.source.complete_enrolment(&s.pool, &state, &code).await {
        Ok(enrolled) => {
            let msg = format!(
                "Participant {} is enrolled with Fitbit. You can close this window.",
                enrolled.participant
            );
            if let Some(done) = &s.done {
                let _ = done.send(enrolled);
            }
            page(StatusCode::OK, msg)
        }
        Err(e @ (OAuthError::Callback(_) | OAuthError::InvalidGrant(_))) => {
            page(StatusCode::BAD_REQUEST, format!("Enrolment failed: {e}."))
        }
        Err(e) => {
            tracing::error!(error = %e, "fitbit enrolment failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Enrolment failed; please try again later.".into(),
            )
        }
    }
}
