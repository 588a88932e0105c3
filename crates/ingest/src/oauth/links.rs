//! Coordinators' consent links on the participant's side. The daemon serves
//! `GET /consent/{token}`: an unused, unexpired, unrevoked link of a participant who is not
//! withdrawn redirects to the provider's consent page with a `state` bound to the link. The
//! provider's callback then completes the consent as any other, and within the transaction
//! that stores the grant [`claim`]s the link (single use) and [`record`]s the enrolment in the
//! audit trail. The participant needs no wearhouse account: the link's token is the proof.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use sqlx::PgConnection;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::audit::{self, Actor, Entry};
use wearhouse_core::store::collection;
use wearhouse_core::store::consent_links::{self, Claim, Link, LinkState, Refusal};
use wearhouse_core::store::participants;

use super::OAuthError;
use super::consent::page;
use super::state::{Binding, Opened};
use crate::sources::fitbit::{self, FitbitSource};
use crate::sources::google_health::{self, GoogleHealthSource};

/// The route of a consent link; nginx proxies `/consent/` to the daemon.
pub const PATH: &str = "/consent/{token}";

/// What a consent may do, once its binding is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The link it came through, now used (in the caller's transaction).
    pub link: Option<Link>,
    /// Whether another provider account may replace the one on record.
    pub allow_account_change: bool,
}

/// Checks the binding of an opened state inside the grant's transaction: a link is claimed
/// (refused when used, revoked or its participant withdrawn meanwhile).
pub async fn claim(
    tx: &mut PgConnection,
    opened: &Opened,
    provider: &str,
) -> Result<Claimed, OAuthError> {
    match opened.binding {
        Binding::None => Ok(Claimed {
            link: None,
            allow_account_change: false,
        }),
        Binding::AccountChangeAllowed => Ok(Claimed {
            link: None,
            allow_account_change: true,
        }),
        Binding::Link(id) => {
            match consent_links::claim(tx, id, opened.participant.as_str(), provider).await? {
                Claim::Claimed(link) => Ok(Claimed {
                    allow_account_change: link.allow_account_change,
                    link: Some(link),
                }),
                Claim::Refused(why) => Err(OAuthError::Callback(refusal(why).into())),
            }
        }
    }
}

fn refusal(why: Refusal) -> &'static str {
    match why {
        Refusal::Used => {
            "this consent link was used already; if you need to consent again, ask the study team for a new link"
        }
        Refusal::Revoked => {
            "this consent link was withdrawn by the study team; ask them for a new one"
        }
        Refusal::Withdrawn => "you have been withdrawn from the study, so no consent is needed",
        Refusal::Unknown => "this consent link is not valid",
    }
}

/// The refusal when the provider account differs from the one on record and nobody confirmed
/// the change. It names no account: the page is the participant's, the log has the details.
pub fn account_change_refused(provider_title: &str) -> OAuthError {
    OAuthError::Callback(format!(
        "this {provider_title} account is not the one on record for you; nothing was stored. Sign in with the account you used before, or ask the study team for a link that allows the change"
    ))
}

/// Records, in the grant's transaction, that the participant consented through a link.
pub async fn record(
    tx: &mut PgConnection,
    participant: &ParticipantId,
    claimed: &Claimed,
    detail: serde_json::Value,
) -> Result<(), OAuthError> {
    let Some(link) = &claimed.link else {
        return Ok(());
    };
    let study = participants::get(tx, participant).await?.study_id;
    let mut detail = detail;
    if let Some(d) = detail.as_object_mut() {
        d.insert("change".into(), "enrolled".into());
        d.insert("link_id".into(), link.link_id.into());
        d.insert("link_created_by".into(), link.created_by.into());
        d.insert("provider".into(), link.provider.clone().into());
    }
    audit::append(
        &mut *tx,
        &Entry {
            actor: &Actor {
                user_id: None,
                label: format!("participant through consent link {}", link.link_id),
            },
            action: audit::action::PARTICIPANT_CHANGED,
            study_id: Some(&study),
            participant_ids: &[participant.to_string()],
            request_id: None,
            client_addr: None,
            outcome: audit::outcome::OK,
            detail,
        },
    )
    .await?;
    Ok(())
}

/// What the consent-link route needs: the warehouse and the configured providers.
#[derive(Clone)]
pub struct LinkRoutes {
    pub pool: sqlx::PgPool,
    pub fitbit: Option<FitbitSource>,
    pub google: Option<GoogleHealthSource>,
}

/// The route serving consent links.
pub fn router(state: LinkRoutes) -> Router {
    Router::new().route(PATH, get(open)).with_state(state)
}

/// A page that no cache keeps: it answers for a secret link.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn open(State(s): State<LinkRoutes>, Path(token): Path<String>) -> Response {
    no_store(open_link(&s, &token).await)
}

async fn open_link(s: &LinkRoutes, token: &str) -> Response {
    let found = match consent_links::by_token(&s.pool, token).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "cannot look a consent link up");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The study's server cannot check this link right now; please try again later.",
            );
        }
    };
    let Some(found) = found else {
        return page(
            StatusCode::NOT_FOUND,
            "This consent link is not valid. Check that you opened the whole link, or ask the study team for a new one.",
        );
    };
    let link = &found.link;
    let gone = |msg: &str| page(StatusCode::GONE, msg);
    match link.state(Utc::now()) {
        LinkState::Open => {}
        LinkState::Used => {
            return gone(
                "This consent link was used already. If you need to consent again, ask the study team for a new link.",
            );
        }
        LinkState::Revoked => {
            return gone(
                "This consent link was withdrawn by the study team; ask them for a new one.",
            );
        }
        LinkState::Expired => {
            return gone("This consent link has expired; ask the study team for a new one.");
        }
    }
    if found.participant_status == "withdrawn" {
        return gone("You have been withdrawn from the study, so no consent is needed.");
    }
    let participant = match ParticipantId::parse(&link.participant_id) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(link = link.link_id, error = %e, "a consent link names an invalid participant id");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This consent link cannot be used.",
            );
        }
    };
    // The consent asks only for the scopes the participant's study needs.
    let metrics = match collection::participant_study_metrics(&s.pool, &participant).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(link = link.link_id, error = %e, "cannot read the study's metrics for a consent link");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The study's server cannot check this link right now; please try again later.",
            );
        }
    };
    let binding = Binding::Link(link.link_id);
    let url = match link.provider.as_str() {
        fitbit::PROVIDER => s
            .fitbit
            .as_ref()
            .map(|f| f.consent_url_bound(&participant, binding, metrics.as_deref())),
        google_health::PROVIDER => s
            .google
            .as_ref()
            .map(|g| g.consent_url_bound(&participant, binding, metrics.as_deref())),
        _ => None,
    };
    let Some(url) = url else {
        tracing::error!(link = link.link_id, provider = %link.provider, "a consent link's provider is not configured in this daemon");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Consent with this provider is not available right now; please tell the study team.",
        );
    };
    tracing::info!(link = link.link_id, participant = %participant, provider = %link.provider, "consent link opened");
    Redirect::to(url.as_str()).into_response()
}
