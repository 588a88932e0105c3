//! The fake issuer's authorization and token endpoints (OpenID Connect Core 1.0 §3.1.2–3.1.3,
//! RFC 6749 §4.1 and §5.2, RFC 7636), with the spec's error answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::keys::{self, Key};
use super::{CodeContext, FakeOidcConfig, FakeOidcUser, OidcFault, OidcTokenRequest, Shared};
use crate::grants::Code;
use crate::token;

/// The authorization endpoint. A bad client or redirect URI gets an error page (400), since
/// the browser must not be sent to an unverified address (RFC 6749 §4.1.2.1); any other refusal
/// goes back to the client as `error` with the request's `state`.
pub(super) async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let config = s.config();
    let page = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_owned()).into_response();
    let Some(client) = q.get("client_id").and_then(|id| config.client_by_id(id)) else {
        return page("invalid_request: unknown client_id");
    };
    let Some(redirect) = q
        .get("redirect_uri")
        .filter(|r| client.redirect_uris.contains(r))
    else {
        return page("invalid_request: redirect_uri is missing or not registered for the client");
    };
    let state = q.get("state");
    let back = |error: &str, description: &str| {
        let params = [("error", error), ("error_description", description)];
        crate::redirect_back(redirect, &params, state)
            .unwrap_or_else(|| page("invalid_request: redirect_uri is not a URL"))
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return back(
            "unsupported_response_type",
            "only the authorization code flow is supported",
        );
    }
    let scopes: Vec<&str> = q
        .get("scope")
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    if !scopes.contains(&"openid") {
        return back("invalid_scope", "the openid scope is required");
    }
    // State and nonce are only recommended by the specification; this issuer insists on them
    // so that a relying party that forgets either fails its tests.
    if state.is_none_or(|s| s.is_empty()) {
        return back("invalid_request", "state is required");
    }
    let Some(nonce) = q.get("nonce").filter(|n| !n.is_empty()) else {
        return back("invalid_request", "nonce is required");
    };
    let Some(challenge) = q.get("code_challenge").filter(|c| !c.is_empty()) else {
        return back("invalid_request", "PKCE code_challenge is required");
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return back("invalid_request", "code_challenge_method must be S256");
    }
    let now = s.now();
    let mut inner = s.inner();
    let user = match q.get("login_hint") {
        Some(hint) => inner
            .users
            .values()
            .find(|u| &u.subject == hint || u.email.as_ref() == Some(hint))
            .map(|u| u.subject.clone()),
        None => inner.signed_in.clone(),
    };
    let Some(user) = user else {
        return back("login_required", "no user is signed in at the issuer");
    };
    let code = inner.grants.add_code(
        "fake-oidc-code-",
        Code {
            user,
            challenge: Some((challenge.clone(), "S256".into())),
            redirect_uri: redirect.clone(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            offline: false,
            issued: now,
            used: false,
        },
    );
    let context = CodeContext {
        client_id: client.client_id.clone(),
        nonce: Some(nonce.clone()),
    };
    inner.codes.insert(code.clone(), context);
    crate::redirect_back(redirect, &[("code", code.as_str())], state)
        .unwrap_or_else(|| page("invalid_request: redirect_uri is not a URL"))
}

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (status, no_store(), axum::Json(body)).into_response()
}

/// Token answers must not be cached (OpenID Connect Core §3.1.3.3).
fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// One part of HTTP Basic client credentials, which RFC 6749 §2.3.1 form-encodes before
/// joining them with `:`.
fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's credentials from the `Authorization` header or the body, and which way they
/// came: `client_secret_basic`, `client_secret_post` or `none`.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<(String, String)>, &'static str) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if let Some(encoded) = basic {
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let pair = decoded
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .map(|(id, secret)| (form_decode(id), form_decode(secret)));
        return (pair, "client_secret_basic");
    }
    match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (Some((id.clone(), secret.clone())), "client_secret_post"),
        _ => (None, "none"),
    }
}

pub(super) async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (credentials, method) = client_credentials(&headers, &form);
    let response = exchange(&s, credentials, method == "client_secret_basic", &form);
    let error = if response.status().is_success() {
        None
    } else {
        response
            .extensions()
            .get::<ErrorCode>()
            .map(|e| e.0.to_owned())
    };
    s.inner().token_log.push(OidcTokenRequest {
        client_auth: method.into(),
        status: response.status().as_u16(),
        error,
    });
    response
}

/// The OAuth error code of a token answer, kept for the request log.
#[derive(Clone, Copy)]
struct ErrorCode(&'static str);

fn refuse(status: StatusCode, error: &'static str, description: &str) -> Response {
    let mut response = oauth_error(status, error, description);
    response.extensions_mut().insert(ErrorCode(error));
    response
}

fn exchange(
    s: &Shared,
    credentials: Option<(String, String)>,
    by_basic: bool,
    form: &HashMap<String, String>,
) -> Response {
    let config = s.config();
    let now = s.now();
    let mut inner = s.inner();
    if let Some(OidcFault::TokenEndpointStatus(status)) = inner.faults.front().cloned() {
        inner.faults.pop_front();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return refuse(status, "server_error", "the issuer failed");
    }
    let client = credentials.and_then(|(id, secret)| {
        config
            .client_by_id(&id)
            .filter(|c| c.client_secret == secret)
            .cloned()
    });
    let Some(client) = client else {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
        if by_basic {
            let challenge = header::HeaderValue::from_static("Basic realm=\"fake-oidc\"");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        return response;
    };
    let bad_request =
        |error, description: &str| refuse(StatusCode::BAD_REQUEST, error, description);
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return bad_request("unsupported_grant_type", "only authorization_code");
    }
    let Some(code) = form.get("code") else {
        return bad_request("invalid_request", "code is required");
    };
    let (Ok(grant), Some(context)) = (inner.grants.usable(code, now), inner.codes.get(code)) else {
        return bad_request("invalid_grant", "the code is unknown, used or expired");
    };
    let context = context.clone();
    if context.client_id != client.client_id {
        return bad_request("invalid_grant", "the code was issued to another client");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return bad_request(
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        );
    }
    let Some(verifier) = form.get("code_verifier") else {
        return bad_request("invalid_grant", "code_verifier is required");
    };
    if !grant.verifies(verifier) {
        return bad_request(
            "invalid_grant",
            "the PKCE verifier does not match the challenge",
        );
    }
    inner.grants.spend(code);
    let Some(user) = inner.users.get(&grant.user).cloned() else {
        return bad_request("invalid_grant", "the user no longer exists");
    };
    let access_token = format!("fake-oidc-at-{}", token::random(32));
    let fault = inner.faults.pop_front();
    let issuer = inner.issuer.clone();
    let key = inner.published;
    drop(inner);
    let id_token = id_token(IdTokenInput {
        config: &config,
        issuer: &issuer,
        client_id: &client.client_id,
        user: &user,
        nonce: context.nonce.as_deref(),
        access_token: &access_token,
        now: now.timestamp(),
        key,
        fault,
    });
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": config.token_ttl_secs,
        "id_token": id_token,
    });
    (no_store(), axum::Json(body)).into_response()
}

struct IdTokenInput<'a> {
    config: &'a FakeOidcConfig,
    issuer: &'a str,
    client_id: &'a str,
    user: &'a FakeOidcUser,
    nonce: Option<&'a str>,
    access_token: &'a str,
    now: i64,
    /// The published key.
    key: Key,
    fault: Option<OidcFault>,
}

/// The signed ID token, spoilt as the fault says.
fn id_token(i: IdTokenInput<'_>) -> String {
    let mut claims = json!({
        "iss": i.issuer,
        "sub": i.user.subject,
        "aud": i.client_id,
        "iat": i.now,
        "exp": i.now + i.config.token_ttl_secs,
        "auth_time": i.now,
        "at_hash": keys::access_token_hash(i.access_token),
        "email_verified": i.user.email_verified,
    });
    if let Some(nonce) = i.nonce {
        claims["nonce"] = nonce.into();
    }
    if let Some(email) = &i.user.email {
        claims["email"] = email.as_str().into();
    }
    if let Some(name) = &i.user.name {
        claims["name"] = name.as_str().into();
    }
    if let Some(roles) = &i.user.roles {
        claims[i.config.roles_claim.as_str()] = roles.clone();
    }
    let mut signer = i.key;
    match i.fault {
        Some(OidcFault::WrongSignature) => signer = i.key.other(),
        Some(OidcFault::WrongAudience) => claims["aud"] = "another-client".into(),
        Some(OidcFault::WrongNonce) => claims["nonce"] = "not-the-nonce-that-was-sent".into(),
        Some(OidcFault::MissingNonce) => {
            claims
                .as_object_mut()
                .expect("claims object")
                .remove("nonce");
        }
        Some(OidcFault::Expired) => {
            claims["iat"] = (i.now - 2 * i.config.token_ttl_secs).into();
            claims["auth_time"] = claims["iat"].clone();
            claims["exp"] = (i.now - i.config.token_ttl_secs).into();
        }
        Some(OidcFault::WrongIssuer) => claims["iss"] = "https://issuer.invalid".into(),
        Some(OidcFault::TokenEndpointStatus(_)) | None => {}
    }
    keys::sign(&claims, signer, i.key.id())
}
