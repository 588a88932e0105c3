//! `GET /contact?participant_id=…` serves the researcher outreach form; `POST /contact` checks
//! it, stores the request in `contact_requests` and wakes the outbox, which e-mails the study
//! coordinator and retries until the e-mail is sent. Abuse protection: a body size limit, a
//! token bucket per client address, and a double-submit CSRF token.

pub mod csrf;
pub mod form;
pub mod limit;
pub mod mailer;
pub mod outbox;
pub mod settings;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::Notify;

use self::csrf::Csrf;
use self::form::{ContactForm, FieldError};
use self::limit::RateLimiter;
use self::mailer::{MailError, Mailer};
use self::outbox::Outbox;
use self::settings::ContactArgs;

/// Largest accepted form body: the longest message with every field at its limit fits.
const BODY_LIMIT: usize = 32 * 1024;

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
            outbox: Arc::new(Outbox {
                pool,
                mailer,
                retry_base: Duration::from_secs(args.contact_retry_secs),
                wake: Notify::new(),
            }),
            csrf: Csrf::new(args.contact_csrf_secret.as_ref()),
            limiter: RateLimiter::new(
                args.contact_rate_burst,
                Duration::from_secs(args.contact_rate_refill_secs),
            ),
        })
    }
}

/// Routes of this resource, for any app state that holds the contact service and the pool.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<ContactService>: FromRef<S>,
    PgPool: FromRef<S>,
{
    Router::new()
        .route("/contact", get(show).post(submit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

#[derive(Debug, Deserialize)]
struct ShowParams {
    participant_id: Option<String>,
}

/// The client's address: `X-Real-IP` as set by the nginx in front (which overwrites whatever
/// the client sent), else the peer of the connection.
struct ClientIp(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts
            .headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(
            forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
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

fn unavailable(e: &sqlx::Error) -> Response {
    tracing::error!(error = %e, "contact form cannot reach the database");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        form::render_message(
            "Temporarily unavailable",
            "The request could not be recorded just now. Please try again in a few minutes.",
        ),
        None,
    )
}

async fn participant_exists(pool: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    wearhouse_core::store::participants::exists(pool, id).await
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
    Query(params): Query<ShowParams>,
) -> Response {
    let service = &*contact;
    let form = ContactForm {
        participant_id: params.participant_id.unwrap_or_default().trim().to_owned(),
        ..ContactForm::default()
    };
    let mut errors = Vec::new();
    if !form.participant_id.is_empty() {
        match participant_exists(&pool, &form.participant_id).await {
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
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ContactForm>,
) -> Response {
    let service = &*contact;
    if !service.limiter.allow(client) {
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
        match participant_exists(&pool, participant).await {
            Ok(true) => {}
            Ok(false) => errors.insert(0, unknown_participant(participant)),
            Err(e) => return unavailable(&e),
        }
    }
    let request = match form::validate(&form) {
        Ok(r) if errors.is_empty() => r,
        _ => return form_page(service, StatusCode::BAD_REQUEST, &form, &errors),
    };
    match outbox::store(&pool, &request).await {
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
