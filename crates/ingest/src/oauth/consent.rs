//! The consent callback every OAuth provider serves: the provider sends the participant's
//! browser back to the redirect URI with `code` and `state` (or `error`), the provider's
//! [`Consent`] completes the enrolment, and the participant gets a short page saying what
//! happened. The `enroll` command and the daemon mount it at the redirect URI's path.

use std::future::Future;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::mpsc::UnboundedSender;

use super::OAuthError;
use crate::sources::Source;
use wearhouse_core::Metric;

/// One provider's way of completing a consent.
pub trait Consent: Clone + Send + Sync + 'static {
    /// What a completed enrolment reports.
    type Enrolled: Send + 'static;

    /// The provider as participants know it, e.g. "Fitbit".
    const TITLE: &'static str;

    /// Checks `state`, exchanges `code` and stores the grant.
    fn complete(
        &self,
        state: &str,
        code: &str,
    ) -> impl Future<Output = Result<Self::Enrolled, OAuthError>> + Send;

    /// The sentence the participant reads after `enrolled`.
    fn done_message(enrolled: &Self::Enrolled) -> String;
}

/// Routes serving the callback at `path` (the path of the redirect URI), reporting each
/// completed enrolment on `done` when given (the `enroll` command stops after the first).
pub fn callback_router<C: Consent>(
    consent: C,
    path: &str,
    done: Option<UnboundedSender<C::Enrolled>>,
) -> Router {
    Router::new()
        .route(path, get(callback::<C>))
        .with_state(CallbackState { consent, done })
}

struct CallbackState<C: Consent> {
    consent: C,
    done: Option<UnboundedSender<C::Enrolled>>,
}

impl<C: Consent> Clone for CallbackState<C> {
    fn clone(&self) -> Self {
        CallbackState {
            consent: self.consent.clone(),
            done: self.done.clone(),
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A short page for the participant saying what happened.
pub(crate) fn page(status: StatusCode, msg: &str) -> Response {
    let msg = msg.replace('&', "&amp;").replace('<', "&lt;");
    (
        status,
        Html(format!(
            "<!doctype html><title>wearhouse enrolment</title><p>{msg}</p>"
        )),
    )
        .into_response()
}

async fn callback<C: Consent>(
    State(s): State<CallbackState<C>>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    if let Some(error) = q.error {
        let detail = q
            .error_description
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return page(
            StatusCode::BAD_REQUEST,
            &format!("Consent was not given ({error}{detail}). Nothing was stored."),
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return page(StatusCode::BAD_REQUEST, "Missing code or state.");
    };
    match s.consent.complete(&state, &code).await {
        Ok(enrolled) => {
            let msg = format!("{} You can close this window.", C::done_message(&enrolled));
            if let Some(done) = &s.done {
                let _ = done.send(enrolled);
            }
            page(StatusCode::OK, &msg)
        }
        Err(e @ (OAuthError::Callback(_) | OAuthError::InvalidGrant(_))) => {
            page(StatusCode::BAD_REQUEST, &format!("Enrolment failed: {e}."))
        }
        Err(e) => {
            tracing::error!(provider = C::TITLE, error = %e, "enrolment failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Enrolment failed; please try again later.",
            )
        }
    }
}

/// The scopes a consent asks for. Without `study_metrics` (the study collects everything): the
/// `configured` ones. With them: of the configured ones, those the study's metrics need from
/// `source` and the `always` ones every load needs (time zone, last sync), so a study that does
/// not collect a metric never asks the participant to share it. Metric names the source does
/// not deliver need nothing from it.
pub fn scopes_for_study(
    source: &dyn Source,
    configured: &[String],
    study_metrics: Option<&[String]>,
    always: &[&str],
) -> Vec<String> {
    let Some(names) = study_metrics else {
        return configured.to_vec();
    };
    let offered = source.metrics();
    let needed: Vec<&str> = names
        .iter()
        .filter_map(|n| Metric::parse(n).ok())
        .filter(|m| offered.contains(m))
        .filter_map(|m| source.scope(m))
        .chain(always.iter().copied())
        .collect();
    configured
        .iter()
        .filter(|s| needed.contains(&s.as_str()))
        .cloned()
        .collect()
}
