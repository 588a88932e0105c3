//! The fake's Google OAuth endpoints: consent (auto-approved), the token endpoint (code
//! exchange with PKCE and the client secret; reusable refresh tokens whose refresh answers
//! carry no new refresh token) and revocation, with Google's RFC 6749 error bodies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{FakeGoogleTokens, Inner, Shared};
use crate::grants::Code;
use crate::token;

/// The read scopes the fake grants.
pub(super) const ALL_SCOPES: [&str; 5] = [
    "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly",
    "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly",
    "https://www.googleapis.com/auth/googlehealth.sleep.readonly",
    "https://www.googleapis.com/auth/googlehealth.profile.readonly",
    "https://www.googleapis.com/auth/googlehealth.settings.readonly",
];

pub(super) fn new_grant(
    inner: &mut Inner,
    user: &str,
    scope: &str,
    offline: bool,
    now: DateTime<Utc>,
    ttl: i64,
) -> FakeGoogleTokens {
    let grant = inner.grants.open();
    let access_token = access(inner, user, scope, grant, now);
    let refresh_token = format!("1//fake-rt-{}", token::random(24));
    if offline {
        inner
            .grants
            .add_refresh(&refresh_token, user, &scopes(scope), grant);
    }
    FakeGoogleTokens {
        access_token,
        refresh_token,
        scope: scope.into(),
        expires_in: ttl,
    }
}

/// The scopes of a space-separated `scope`.
fn scopes(scope: &str) -> Vec<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

fn access(inner: &mut Inner, user: &str, scope: &str, grant: u64, now: DateTime<Utc>) -> String {
    // Google's access tokens are up to 2,048 bytes; ours are shorter but just as opaque.
    let token = format!("ya29.fake-{}", token::random(48));
    inner
        .grants
        .add_access(&token, user, &scopes(scope), grant, now);
    token
}

/// The answer to a request without the required parameter `name`.
fn missing(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("Missing required parameter: {name}"),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub(super) async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let config = s.config();
    // Google shows its error page (400) for a bad request rather than redirecting.
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, format!("Error 400: {msg}")).into_response();
    if q.get("client_id") != Some(&config.client_id) {
        return bad("invalid_client - The OAuth client was not found.");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("unsupported_response_type");
    }
    let Some(redirect) = q.get("redirect_uri") else {
        return bad("invalid_request - Missing required parameter: redirect_uri");
    };
    let Some(scope) = q.get("scope").filter(|s| !s.is_empty()) else {
        return bad("invalid_request - Missing required parameter: scope");
    };
    let Some(challenge) = q.get("code_challenge") else {
        return bad("invalid_request - this client requires PKCE (code_challenge)");
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad("invalid_request - code_challenge_method must be S256");
    }
    let now = s.now();
    let mut inner = s.inner();
    let Some(user) = inner.next_login.clone() else {
        return bad("no user is signed in to the fake consent page");
    };
    // Partial consent: the user may untick scopes on Google's page, and the code then
    // grants (and the token answer's `scope` lists) only the ones left ticked.
    let denies = |sc: &str| inner.users.get(&user).is_some_and(|u| u.denies(sc));
    let granted: Vec<&str> = scope
        .split_whitespace()
        .filter(|sc| ALL_SCOPES.contains(sc) && !denies(sc))
        .collect();
    let code = inner.grants.add_code(
        "4/fake-",
        Code {
            user,
            challenge: Some((challenge.clone(), "S256".into())),
            redirect_uri: redirect.clone(),
            scopes: granted.iter().map(|s| s.to_string()).collect(),
            // Without access_type=offline Google issues no refresh token.
            offline: q.get("access_type").map(String::as_str) == Some("offline"),
            issued: now,
            used: false,
        },
    );
    let params = [("code", code.as_str()), ("scope", &granted.join(" "))];
    crate::redirect_back(redirect, &params, q.get("state"))
        .unwrap_or_else(|| bad("invalid_request - Invalid redirect_uri"))
}

/// Google accepts the client credentials in the body or as HTTP Basic.
fn client_ok(s: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let config = s.config();
    let basic = token::basic_auth(&config.client_id, &config.client_secret);
    let by_header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| h == basic);
    let by_body = form.get("client_id") == Some(&config.client_id)
        && form.get("client_secret") == Some(&config.client_secret);
    by_header || by_body
}

pub(super) async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_ok(&s, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    let ttl = s.config().token_ttl_secs;
    let now = s.now();
    let mut inner = s.inner();
    let field = |k: &str| form.get(k).cloned();
    let invalid_grant = || oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
    match field("grant_type").as_deref() {
        Some("authorization_code") => {
            let Some(code) = field("code") else {
                return missing("code");
            };
            let Ok(grant) = inner.grants.usable(&code, now) else {
                return invalid_grant();
            };
            if field("redirect_uri").as_ref() != Some(&grant.redirect_uri) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "redirect_uri_mismatch",
                    "Bad Request",
                );
            }
            let Some(verifier) = field("code_verifier") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Missing code verifier.",
                );
            };
            if !grant.verifies(&verifier) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid code verifier.",
                );
            }
            inner.grants.spend(&code);
            let t = new_grant(
                &mut inner,
                &grant.user,
                &grant.scopes.join(" "),
                grant.offline,
                now,
                ttl,
            );
            let mut body = json!({
                "access_token": t.access_token,
                "expires_in": t.expires_in,
                "scope": t.scope,
                "token_type": "Bearer",
            });
            if grant.offline {
                body["refresh_token"] = t.refresh_token.into();
            }
            axum::Json(body).into_response()
        }
        Some("refresh_token") => {
            let Some(rt) = field("refresh_token") else {
                return missing("refresh_token");
            };
            let Some(grant) = inner.grants.refresh.get(&rt).cloned() else {
                return invalid_grant();
            };
            if inner.grants.revoked.contains(&grant.grant) {
                return invalid_grant();
            }
            inner.grants.count_refresh(&grant.user);
            // Reusable refresh token: a new access token and no new refresh token.
            let scope = grant.scopes.join(" ");
            let token = access(&mut inner, &grant.user, &scope, grant.grant, now);
            axum::Json(json!({
                "access_token": token,
                "expires_in": ttl,
                "scope": scope,
                "token_type": "Bearer",
            }))
            .into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type",
        ),
    }
}

pub(super) async fn revoke(
    State(s): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = s.inner();
    let token = form.get("token").cloned().unwrap_or_default();
    let grants = &mut inner.grants;
    match grants.grant_of(&token).map(|(g, _)| g) {
        Some(g) if !grants.revoked.contains(&g) => {
            grants.revoked.insert(g);
            axum::Json(json!({})).into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}
