//! `Idempotency-Key` on the POSTs that create something (a contact request, an imputation
//! job): a client that did not see the answer (a dropped connection, a timeout) sends the
//! request again with the same key and gets the first answer back, with nothing created twice.
//! A key is the caller's own and lasts 24 hours; the same key with a different request (method,
//! path, query or body) is a 422, and one whose first request still runs a 409. Answers of
//! 5xx and 429 are not kept: the retry runs again. Requests without the header, and other
//! routes, pass through untouched.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use wearhouse_core::store::idempotency::{self, Answer, Claim};

use crate::auth::Caller;
use crate::error::ApiError;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer that is a replay of the first one.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The routes whose POST takes a key.
pub const ROUTES: [&str; 2] = ["/contact", "/data/run_imputation"];
/// Longest key.
pub const MAX_KEY_LEN: usize = 255;
/// Largest body read to hash a request (the routes' own limits are smaller).
const MAX_BODY: usize = 1 << 20;
/// Response headers not kept with an answer: they belong to each response.
const NOT_KEPT: [HeaderName; 3] = [
    header::DATE,
    header::CONTENT_LENGTH,
    HeaderName::from_static("x-request-id"),
];

/// What the middleware needs: the pool, and after how long an unanswered claim counts as cut
/// off (the request timeout, with a margin).
#[derive(Clone)]
pub struct Idempotency {
    pub pool: PgPool,
    pub abandoned_after: Duration,
}

/// The key of a request, checked: 1 to 255 visible ASCII characters.
fn key_of(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(&HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters, e.g. a UUID"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Middleware (after the sign-in guard, which names the caller).
pub async fn middleware(State(idem): State<Idempotency>, request: Request, next: Next) -> Response {
    let applies = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| ROUTES.contains(&m.as_str()));
    if !applies {
        return next.run(request).await;
    }
    match run(&idem, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(idem: &Idempotency, request: Request, next: Next) -> Result<Response, Response> {
    let key = match key_of(&request) {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(next.run(request).await),
        Err(e) => return Err(e.into_response()),
    };
    let Some(user_id) = request.extensions().get::<Caller>().map(|c| c.user_id) else {
        return Err(ApiError::Unauthenticated.into_response());
    };
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update([0]);
    hash.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    hash.update([0]);
    hash.update(&bytes);
    let hash = hash.finalize();
    let abandoned_secs = idem.abandoned_after.as_secs() as i64;
    let mut conn = idem.pool.acquire().await.map_err(db_error)?;
    match idempotency::claim(&mut conn, user_id, &key, &hash, abandoned_secs)
        .await
        .map_err(db_error)?
    {
        Claim::New => {}
        Claim::Replay(answer) => return Ok(replay(answer)),
        Claim::Mismatch => {
            return Err(ApiError::KeyReused(
                "this Idempotency-Key was used for a different request; use a new key".into(),
            )
            .into_response());
        }
        Claim::Running(since) => {
            return Err(ApiError::Conflict(format!(
                "the request with this Idempotency-Key (since {}) is still running; retry \
                 in a moment",
                since.to_rfc3339()
            ))
            .into_response());
        }
    }
    // The connection is not held while the request runs.
    drop(conn);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    let mut conn = idem.pool.acquire().await.map_err(db_error)?;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        idempotency::release(&mut conn, user_id, &key)
            .await
            .map_err(db_error)?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("cannot read the answer to keep it: {e}"))
            .into_response()
    })?;
    let answer = Answer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| !NOT_KEPT.contains(name))
            .filter_map(|(name, v)| Some((name.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    idempotency::answer(&mut conn, user_id, &key, &answer)
        .await
        .map_err(db_error)?;
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn db_error(e: impl Into<ApiError>) -> Response {
    e.into().into_response()
}

/// The first answer again, marked as a replay.
fn replay(answer: Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
