//! The API's one error type and its one mapping to HTTP: status code and JSON body. Every
//! handler returns [`ApiError`]; nothing else decides what a client sees when something fails.
//! 5xx bodies say nothing internal; the cause goes to the log.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wearhouse_core::{Error as CoreError, ErrorKind};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter was missing, malformed or out of bounds.
    #[error("invalid {parameter}: {message}")]
    InvalidParameter { parameter: String, message: String },
    /// The participant, route or thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No credentials, or credentials that are no longer good.
    #[error("sign in first")]
    Unauthenticated,
    /// A signed-in caller whose role does not allow this.
    #[error("not allowed")]
    Forbidden,
    /// A sign-in with a wrong e-mail or password (one message whatever was wrong).
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// A single sign-on that did not lead to a wearhouse user; the message says why.
    #[error("sign-in refused: {0}")]
    SignInRefused(String),
    /// Too many sign-in attempts.
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    /// Too many data reads by one user.
    #[error("too many data requests")]
    RateLimited { retry_after_secs: u64 },
    /// The request contradicts what is stored (an id that exists, a link already used).
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` sent again with a different request.
    #[error("{0}")]
    KeyReused(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is larger than the route accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request body is not of the media type the route reads.
    #[error("unsupported media type; expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    /// The database could not be reached in time.
    #[error("database unavailable")]
    Unavailable(#[source] CoreError),
    /// The request took longer than the configured request timeout.
    #[error("request timed out")]
    Timeout,
    /// Anything else; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 naming `parameter`.
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::SignInRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::KeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Throttled { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorDetail {
        let (code, parameter, message) = match self {
            ApiError::InvalidParameter { parameter, message } => (
                "invalid_parameter",
                Some(parameter.clone()),
                format!("invalid {parameter}: {message}"),
            ),
            ApiError::NotFound(m) => ("not_found", None, m.clone()),
            ApiError::Conflict(m) => ("conflict", None, m.clone()),
            ApiError::KeyReused(m) => (
                "idempotency_key_reused",
                Some("Idempotency-Key".into()),
                m.clone(),
            ),
            ApiError::Unauthenticated => (
                "unauthenticated",
                None,
                "sign in, or send an API token as `Authorization: Bearer <token>`".into(),
            ),
            ApiError::Forbidden => ("forbidden", None, "your role does not allow this".into()),
            ApiError::InvalidCredentials => (
                "invalid_credentials",
                None,
                "wrong e-mail or password".into(),
            ),
            ApiError::SignInRefused(why) => {
                ("sign_in_refused", None, format!("sign-in refused: {why}"))
            }
            ApiError::Throttled { retry_after_secs } => (
                "throttled",
                None,
                format!("too many sign-in attempts; try again in {retry_after_secs} s"),
            ),
            ApiError::RateLimited { retry_after_secs } => (
                "rate_limited",
                None,
                format!(
                    "too many data requests from this user; try again in {retry_after_secs} s \
                     (the pace is WEARHOUSE_READ_BURST and WEARHOUSE_READ_PER_MINUTE)"
                ),
            ),
            ApiError::MethodNotAllowed => ("method_not_allowed", None, "method not allowed".into()),
            ApiError::PayloadTooLarge => (
                "payload_too_large",
                Some("body".into()),
                "the request body is larger than this route accepts".into(),
            ),
            ApiError::UnsupportedMediaType { expected } => (
                "unsupported_media_type",
                Some("content-type".into()),
                format!("send the body with `Content-Type: {expected}`"),
            ),
            ApiError::Unavailable(_) => ("unavailable", None, "database unavailable".into()),
            ApiError::Timeout => ("timeout", None, "request timed out".into()),
            ApiError::Internal(_) => ("internal", None, "internal error".into()),
        };
        ErrorDetail {
            code: code.into(),
            parameter,
            message,
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        if is_statement_timeout(&e) {
            tracing::warn!(error = %error_chain(&e), "statement cancelled");
            return ApiError::Timeout;
        }
        match e.kind() {
            ErrorKind::InvalidInput => {
                let parameter = e.parameter().unwrap_or("request").to_owned();
                let message = match e {
                    CoreError::Invalid { message, .. } => message,
                    other => other.to_string(),
                };
                ApiError::InvalidParameter { parameter, message }
            }
            ErrorKind::NotFound => ApiError::NotFound(e.to_string()),
            ErrorKind::Unavailable => ApiError::Unavailable(e),
            ErrorKind::Internal => ApiError::Internal(e.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        CoreError::from(e).into()
    }
}

/// Whether the database cancelled the statement (SQLSTATE 57014), as it does when the
/// API's `statement_timeout` runs out: the client sees the request timeout's 503.
pub fn is_statement_timeout(e: &CoreError) -> bool {
    matches!(e, CoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("57014"))
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_parameter`, `unauthenticated`, `forbidden`, `invalid_credentials`,
    /// `throttled`, `not_found`, `conflict`, `idempotency_key_reused`, `method_not_allowed`,
    /// `payload_too_large`,
    /// `unsupported_media_type`, `unavailable`, `timeout` or `internal`.
    #[schema(example = "invalid_parameter")]
    pub code: String,
    /// The parameter or body field at fault, as the caller spelled it (400; `body` for 413,
    /// `content-type` for 415, `Idempotency-Key` for 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "metric")]
    pub parameter: Option<String>,
    /// A sentence for people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %error_chain(e), "database unavailable")
            }
            ApiError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            ApiError::Timeout => tracing::warn!("request timed out"),
            _ => {}
        }
        let status = self.status();
        let mut response = (status, Json(ErrorBody { error: self.body() })).into_response();
        match self {
            ApiError::Throttled { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
            }
            ApiError::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"wearhouse\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// The error and its causes on one line, for the log.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
