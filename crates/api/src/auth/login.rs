//! Signing in and out with a local account: `POST /auth/login`, `POST /auth/logout`,
//! `GET /auth/me` and `GET /auth/providers`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wearhouse_core::store::audit::{self, Actor, Entry};
use wearhouse_core::store::credentials;
use wearhouse_core::store::users::{self, Role};

use super::settings::CookieSecure;
use super::{Access, Auth, Caller, SESSION_COOKIE, password};
use crate::client::ClientInfo;
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonBody;
use crate::routes::Routes;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .route("/auth/login", Access::Public, axum::routing::post(login))
        .route(
            "/auth/logout",
            Access::SignedIn,
            axum::routing::post(logout),
        )
        .get("/auth/me", Access::SignedIn, me)
        .get("/auth/providers", Access::Public, providers)
}

/// A local sign-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(example = "researcher@example.org")]
    pub email: String,
    pub password: String,
}

/// Who is signed in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub email: String,
    /// `admin`, `coordinator`, `researcher` or `analyst`.
    #[schema(value_type = String, example = "researcher")]
    pub role: Role,
    /// The studies whose participants the user may see.
    pub studies: Vec<String>,
}

/// Signs in with e-mail and password and sets the session cookie. Whatever was wrong (no such
/// user, a disabled one, a wrong password), the answer is the same.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = Credentials,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = Me),
        (status = 400, description = "The body is not JSON `{\"email\",\"password\"}`", body = ErrorBody),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 429, description = "Too many attempts; `Retry-After` says when to try again", body = ErrorBody)))]
pub async fn login(
    State(auth): State<Arc<Auth>>,
    client: ClientInfo,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    if let Some(wait) = auth.throttle.attempt(&body.email, client.addr) {
        return Err(ApiError::Throttled {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let mut conn = auth.pool.acquire().await?;
    let user = users::by_email(&mut conn, &body.email).await?;
    let stored = user
        .as_ref()
        .filter(|u| u.disabled_at.is_none())
        .and_then(|u| u.password_hash.clone());
    let password = body.password;
    let matches =
        tokio::task::spawn_blocking(move || password::verify(&password, stored.as_deref()))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    let Some(user) = user.filter(|u| matches && u.disabled_at.is_none()) else {
        let tried = body.email.trim().chars().take(200).collect();
        record_failure(
            &mut conn,
            &client,
            tried,
            serde_json::json!({"method": "password"}),
        )
        .await?;
        return Err(ApiError::InvalidCredentials);
    };
    let secret = start(&mut conn, &user, &client, "password").await?;
    let me = me_of(&mut conn, &user).await?;
    let mut response = Json(me).into_response();
    set_cookie(&mut response, session_cookie(&auth, &headers, secret));
    Ok(response)
}

/// Records a failed sign-in (any method) under the identity that was tried.
pub async fn record_failure(
    conn: &mut sqlx::PgConnection,
    client: &ClientInfo,
    tried: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    audit::append(
        &mut *conn,
        &Entry {
            actor: &Actor {
                user_id: None,
                label: tried,
            },
            action: audit::action::LOGIN_FAILED,
            study_id: None,
            participant_ids: &[],
            request_id: client.request_id.as_deref(),
            client_addr: Some(&client.addr.to_string()),
            outcome: audit::outcome::FAILED,
            detail,
        },
    )
    .await?;
    Ok(())
}

/// Starts a session for the user (any sign-in method) and records it; returns the secret.
pub async fn start(
    conn: &mut sqlx::PgConnection,
    user: &users::User,
    client: &ClientInfo,
    method: &str,
) -> Result<String, ApiError> {
    let addr = client.addr.to_string();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let secret = credentials::start_session(&mut tx, user.user_id, Some(&addr)).await?;
    users::record_login(&mut tx, user.user_id).await?;
    audit::append(
        &mut *tx,
        &Entry {
            actor: &Actor {
                user_id: Some(user.user_id),
                label: user.email.clone(),
            },
            action: audit::action::LOGIN,
            study_id: None,
            participant_ids: &[],
            request_id: client.request_id.as_deref(),
            client_addr: Some(&addr),
            outcome: audit::outcome::OK,
            detail: serde_json::json!({"method": method}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

async fn me_of(conn: &mut sqlx::PgConnection, user: &users::User) -> Result<Me, ApiError> {
    let studies = if user.role == Role::Admin {
        wearhouse_core::store::studies::ids(conn).await?
    } else {
        user.studies.clone()
    };
    Ok(Me {
        email: user.email.clone(),
        role: user.role,
        studies,
    })
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` as configured, and no expiry
/// of its own (the server ends the session).
pub fn session_cookie(auth: &Auth, headers: &HeaderMap, secret: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(auth.settings.cookie_secure, headers))
        .build()
}

/// Whether to mark the cookie `Secure`: in `auto`, always but for plain HTTP to localhost.
pub fn secure(setting: CookieSecure, headers: &HeaderMap) -> bool {
    match setting {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => {
            let https = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"));
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let hostname = host
                .rsplit_once(':')
                .filter(|(h, port)| !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
                .map_or(host, |(h, _)| h);
            let local = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]");
            https || !local
        }
    }
}

fn set_cookie(response: &mut Response, cookie: Cookie<'static>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Ends the session (server-side: the cookie no longer works, even if kept) and clears the
/// cookie. With a token, nothing is ended: revoke a token with `wearhouse-api token revoke`.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn logout(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut conn = auth.pool.acquire().await?;
    if let Some(secret) = super::session_cookie(&headers) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        if credentials::end_session(&mut tx, &secret).await?.is_some() {
            caller
                .audit(
                    &mut tx,
                    audit::action::LOGOUT,
                    None,
                    &[],
                    audit::outcome::OK,
                    serde_json::json!({}),
                )
                .await?;
        }
        tx.commit().await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let mut gone = session_cookie(&auth, &headers, String::new());
    gone.make_removal();
    set_cookie(&mut response, gone);
    Ok(response)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The signed-in user", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        email: caller.email,
        role: caller.role,
        studies: caller.studies,
    })
}

/// How one may sign in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Providers {
    /// E-mail and password.
    pub local: bool,
    /// Single sign-on, when configured.
    pub oidc: Option<OidcProvider>,
}

/// The single-sign-on provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcProvider {
    #[schema(example = "Example SSO")]
    pub name: String,
    /// Where the browser goes to start (relative to the API).
    #[schema(example = "auth/oidc/start")]
    pub start: String,
}

/// The ways to sign in.
#[utoipa::path(get, path = "/auth/providers", tag = "auth", security(()),
    responses((status = 200, description = "The ways to sign in", body = Providers)))]
pub async fn providers(State(auth): State<Arc<Auth>>) -> Json<Providers> {
    Json(Providers {
        local: true,
        oidc: auth.oidc_name().map(|name| OidcProvider {
            name: name.to_owned(),
            start: "auth/oidc/start".into(),
        }),
    })
}
