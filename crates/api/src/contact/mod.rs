//! `GET /contact?participant_id=…` serves the researcher outreach form; `POST /contact` checks
//! it, stores the request in `contact_requests` and wakes the outbox, which e-mails the study
//! coordinator and retries until the e-mail is sent. Abuse protection: a body size limit, a
//! token bucket per client address (see [`crate::client`] for which address), and a
//! double-submit CSRF token.

pub mod csrf;
pub mod form;
pub mod limit;
pub mod mailer;
pub mod outbox;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sqlx::PgPool;
use wearhouse_core::store::audit;

use self::csrf::Csrf;
use self::form::{ContactForm, FieldError};
use self::limit::RateLimiter;
use self::mailer::{MailError, Mailer};
use self::outbox::Outbox;
use self::settings::ContactArgs;
use crate::auth::{Access, Caller, Permission};
use crate::client::ClientInfo;
use crate::error::{ApiError, error_chain};
use crate::extract::{Form, Query};
use crate::routes::Routes;

/// Largest accepted form body: every field at its limit fits, however it is written (see
/// [`form::MAX_BODY_LEN`]); a larger body is refused with a JSON 413 before the handler runs.
const BODY_LIMIT: usize = form::MAX_BODY_LEN;

/// What the contact routes share: the outbox, the CSRF signer and the rate limiter.
pub struct ContactService {
    pub outbox: Arc<Outbox>,
    csrf: Csrf,
    limiter: RateLimiter,
}

impl ContactService {
    /// Builds the service from its settings; fails on an invalid address or password file.
    pub fn new(pool: PgPool, args: &ContactArgs) -> Result<Self, MailError> {
        let mailer = Mailer::new(args)?;
        if args.smtp_host.is_none() {
            tracing::warn!(
                "no SMTP server configured: contact requests are stored but not e-mailed"
            );
        }
        Ok(ContactService {
            outbox: Arc::new(Outbox::new(pool, mailer, args)),
            csrf: Csrf::new(args.contact_csrf_secret.as_ref()),
            limiter: RateLimiter::new(
                args.contact_rate_burst,
                Duration::from_secs(args.contact_rate_refill_secs),
            ),
        })
    }
}

/// Routes of this resource: the form is for those who may send contact requests.
pub fn routes() -> Routes {
    Routes::new().route(
        "/contact",
        Access::Needs(Permission::SendContact),
        get(show)
            .post(submit)
            .layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

#[derive(Debug, Deserialize)]
struct ShowParams {
    participant_id: Option<String>,
}

fn html(status: StatusCode, body: String, cookie: Option<String>) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, c);
    }
    response
}

/// The form with a fresh CSRF token (and its cookie).
fn form_page(
    service: &ContactService,
    status: StatusCode,
    form: &ContactForm,
    errors: &[FieldError],
) -> Response {
    let issued = service.csrf.issue();
    html(
        status,
        form::render(form, errors, &issued.token),
        Some(Csrf::cookie(&issued)),
    )
}

fn unavailable(e: &ApiError) -> Response {
    tracing::error!(error = %error_chain(e), "contact form cannot reach the database");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        form::render_message(
            "Temporarily unavailable",
            "The request could not be recorded just now. Please try again in a few minutes.",
        ),
        None,
    )
}

/// Whether the participant is one of the caller's studies (one of another study is answered
/// as one that does not exist).
async fn participant_visible(pool: &PgPool, caller: &Caller, id: &str) -> Result<bool, ApiError> {
    let mut conn = pool.acquire().await?;
    match caller
        .visible(&mut conn, audit::action::CONTACT_SENT, &[id])
        .await
    {
        Ok(_) => Ok(true),
        Err(ApiError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Stores the request and its audit row in one transaction.
async fn store(
    pool: &PgPool,
    caller: &Caller,
    request: &form::ValidRequest,
) -> Result<i64, ApiError> {
    let mut tx = pool.begin().await?;
    let id = outbox::store(&mut *tx, request).await?;
    let study = wearhouse_core::store::participants::studies_of(
        &mut tx,
        &[request.participant_id.as_str()],
    )
    .await?
    .into_values()
    .next();
    caller
        .audit(
            &mut tx,
            audit::action::CONTACT_SENT,
            study.as_deref(),
            std::slice::from_ref(&request.participant_id),
            audit::outcome::OK,
            serde_json::json!({"contact_request": id}),
        )
        .await?;
    tx.commit().await?;
    Ok(id)
}

fn unknown_participant(id: &str) -> FieldError {
    (
        "participant_id",
        format!("There is no participant {id:?} in this study."),
    )
}

async fn show(
    State(contact): State<Arc<ContactService>>,
    State(pool): State<PgPool>,
    caller: Caller,
    Query(params): Query<ShowParams>,
) -> Response {
    let service = &*contact;
    let form = ContactForm {
        participant_id: params.participant_id.unwrap_or_default().trim().to_owned(),
        ..ContactForm::default()
    };
    let mut errors = Vec::new();
    if !form.participant_id.is_empty() {
        match participant_visible(&pool, &caller, &form.participant_id).await {
            Ok(true) => {}
            Ok(false) => errors.push(unknown_participant(&form.participant_id)),
            Err(e) => return unavailable(&e),
        }
    }
    form_page(service, StatusCode::OK, &form, &errors)
}

async fn submit(
    State(contact): State<Arc<ContactService>>,
    State(pool): State<PgPool>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<ContactForm>,
) -> Response {
    let service = &*contact;
    if !service.limiter.allow(client.addr) {
        let mut r = html(
            StatusCode::TOO_MANY_REQUESTS,
            form::render_message(
                "Too many requests",
                "Too many contact requests came from your address. Please wait a minute and try again.",
            ),
            None,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    let cookie_nonce = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(csrf::nonce_from_cookies);
    if !service.csrf.verify(&form.csrf_token, cookie_nonce) {
        let error = (
            "form",
            "The form expired or did not come from this site. Please check the fields and send it again."
                .to_owned(),
        );
        return form_page(service, StatusCode::BAD_REQUEST, &form, &[error]);
    }
    let mut errors = match form::validate(&form) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    let participant = form.participant_id.trim();
    if !participant.is_empty() {
        match participant_visible(&pool, &caller, participant).await {
            Ok(true) => {}
            Ok(false) => errors.insert(0, unknown_participant(participant)),
            Err(e) => return unavailable(&e),
        }
    }
    let request = match form::validate(&form) {
        Ok(r) if errors.is_empty() => r,
        _ => return form_page(service, StatusCode::BAD_REQUEST, &form, &errors),
    };
    match store(&pool, &caller, &request).await {
        Ok(id) => {
            tracing::info!(request = id, "contact request stored");
            service.outbox.wake.notify_one();
            html(
                StatusCode::OK,
                form::render_sent(id, &request.participant_id),
                None,
            )
        }
        Err(e) => unavailable(&e),
    }
}
