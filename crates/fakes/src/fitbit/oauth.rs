//! The fake's OAuth endpoints: consent (auto-approved), token (code exchange with PKCE and
//! single-use rotating refresh tokens) and revocation, with Fitbit's error bodies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::{FakeTokens, Inner, Shared, VISIT, error_body};
use crate::grants::{Code, CodeRefusal};
use crate::token;

/// Every scope the fake knows.
pub(super) const ALL_SCOPES: [&str; 8] = [
    "activity",
    "heartrate",
    "sleep",
    "oxygen_saturation",
    "respiratory_rate",
    "temperature",
    "settings",
    "profile",
];

pub(super) fn new_grant(
    inner: &mut Inner,
    user_id: &str,
    scopes: Vec<String>,
    now: DateTime<Utc>,
    ttl: i64,
) -> FakeTokens {
    let grant = inner.grants.open();
    issue(inner, user_id, scopes, grant, now, ttl)
}

/// A new access token and a new single-use refresh token of `grant`.
fn issue(
    inner: &mut Inner,
    user_id: &str,
    scopes: Vec<String>,
    grant: u64,
    now: DateTime<Utc>,
    ttl: i64,
) -> FakeTokens {
    let access_token = format!("fake-at-{}", token::random(24));
    let refresh_token = format!("fake-rt-{}", token::random(24));
    let grants = &mut inner.grants;
    grants.add_access(&access_token, user_id, &scopes, grant, now);
    grants.add_refresh(&refresh_token, user_id, &scopes, grant);
    FakeTokens {
        access_token,
        refresh_token,
        user_id: user_id.into(),
        scope: scopes.join(" "),
        expires_in: ttl,
    }
}

/// The answer to a request without the required parameter `name`.
fn missing(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("Missing parameters: {name}"),
    )
}

fn oauth_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, axum::Json(error_body(error_type, None, message))).into_response()
}

pub(super) async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let config = s.config();
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_owned()).into_response();
    if q.get("client_id") != Some(&config.client_id) {
        return bad("invalid_request - Invalid client_id");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("unsupported_response_type - Only response_type=code is supported here");
    }
    let Some(redirect) = q.get("redirect_uri") else {
        return bad("invalid_request - Missing parameters: redirect_uri");
    };
    let challenge = match q.get("code_challenge") {
        None => None,
        Some(c) => {
            if !(43..=128).contains(&c.len()) {
                return bad(
                    "invalid_request - The code_challenge parameter length must be between 43 and 128",
                );
            }
            let method = q
                .get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into());
            if method != "S256" && method != "plain" {
                return bad("invalid_request - Unsupported code_challenge_method");
            }
            Some((c.clone(), method))
        }
    };
    let requested: Vec<String> = q
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let now = s.now();
    let mut inner = s.inner();
    let Some(user) = inner
        .next_login
        .clone()
        .and_then(|u| inner.users.get(&u).cloned())
    else {
        return bad("no user is logged in to the fake consent page");
    };
    let scopes = requested
        .into_iter()
        .filter(|sc| ALL_SCOPES.contains(&sc.as_str()) && !user.denied_scopes.contains(sc))
        .collect();
    let code = inner.grants.add_code(
        "",
        Code {
            user: user.user_id.clone(),
            challenge,
            redirect_uri: redirect.clone(),
            scopes,
            offline: true,
            issued: now,
            used: false,
        },
    );
    crate::redirect_back(redirect, &[("code", &code)], q.get("state"))
        .unwrap_or_else(|| bad("invalid_request - Invalid redirect_uri"))
}

/// Checks client authentication; `Some` is the refusal to send.
fn client_auth(
    s: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<Response> {
    let config = s.config();
    let invalid = |msg: &str| Some(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", msg));
    match &config.client_secret {
        Some(secret) => {
            let expected = token::basic_auth(&config.client_id, secret);
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some(h) if h == expected => None,
                Some(_) => {
                    invalid("Invalid authorization header. Client id invalid or secret invalid.")
                }
                None => invalid(&format!("Authorization header required. {VISIT}")),
            }
        }
        None if form.get("client_id") == Some(&config.client_id) => None,
        None => invalid("Missing or invalid client_id for a client application."),
    }
}

pub(super) async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let latency = s.inner().token_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(r) = client_auth(&s, &headers, &form) {
        return r;
    }
    let ttl = s.config().token_ttl_secs;
    let grace = chrono::Duration::seconds(s.config().refresh_grace_secs);
    let now = s.now();
    let (tokens, delay) = {
        let mut inner = s.inner();
        let field = |k: &str| form.get(k).cloned();
        let tokens = match field("grant_type").as_deref() {
            Some("authorization_code") => {
                let Some(code) = field("code") else {
                    return missing("code");
                };
                let grant = match inner.grants.usable(&code, now) {
                    Ok(grant) => grant,
                    Err(CodeRefusal::Expired) => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            &format!("Authorization code expired: {code} {VISIT}"),
                        );
                    }
                    Err(CodeRefusal::Unknown | CodeRefusal::Used) => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            &format!("Authorization code invalid: {code} {VISIT}"),
                        );
                    }
                };
                if Some(&grant.redirect_uri) != field("redirect_uri").as_ref() {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid redirect_uri parameter value",
                    );
                }
                if grant.challenge.is_some() {
                    let Some(verifier) = field("code_verifier") else {
                        return missing("code_verifier");
                    };
                    if !(43..=128).contains(&verifier.len()) || !grant.verifies(&verifier) {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Invalid code_verifier parameter value",
                        );
                    }
                }
                inner.grants.spend(&code);
                new_grant(&mut inner, &grant.user, grant.scopes, now, ttl)
            }
            Some("refresh_token") => {
                let Some(rt) = field("refresh_token") else {
                    return missing("refresh_token");
                };
                let grants = &mut inner.grants;
                let Some(grant) = grants
                    .refresh
                    .get(&rt)
                    .filter(|g| !grants.revoked.contains(&g.grant))
                    .cloned()
                else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        &format!("Refresh token invalid: {rt}. {VISIT}"),
                    );
                };
                if grant.spent {
                    // Within the grace period an identical refresh gets the same answer again.
                    match inner.refresh_answers.get(&rt) {
                        Some((at, answer)) if now - *at <= grace => answer.clone(),
                        _ => {
                            return oauth_error(
                                StatusCode::BAD_REQUEST,
                                "invalid_grant",
                                &format!("Refresh token invalid: {rt}. {VISIT}"),
                            );
                        }
                    }
                } else {
                    grants.refresh.get_mut(&rt).expect("present").spent = true;
                    grants.count_refresh(&grant.user);
                    let answer =
                        issue(&mut inner, &grant.user, grant.scopes, grant.grant, now, ttl);
                    inner.refresh_answers.insert(rt, (now, answer.clone()));
                    answer
                }
            }
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "The grant_type is not supported.",
                );
            }
        };
        (tokens, inner.token_answer_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    axum::Json(serde_json::json!({
        "access_token": tokens.access_token,
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
        "scope": tokens.scope,
        "token_type": "Bearer",
        "user_id": tokens.user_id,
    }))
    .into_response()
}

pub(super) async fn revoke(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = client_auth(&s, &headers, &form) {
        return r;
    }
    let Some(token) = form.get("token") else {
        return missing("token");
    };
    let mut inner = s.inner();
    let grants = &mut inner.grants;
    // RFC 7009: an unknown token is not an error.
    if let Some((_, user)) = grants.grant_of(token) {
        let user = user.to_owned();
        grants.revoke_user(&user);
    }
    axum::Json(serde_json::json!({})).into_response()
}
