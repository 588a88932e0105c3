//! The web server's sign-in check for the UIs it serves next to the dashboard (Grafana,
//! Prometheus, AlertManager): nginx's `auth_request` asks `GET /auth/check/{ui}` before every
//! request to them, with the browser's cookies (or an `Authorization` header).
//!
//! The decision is the guard's, like every other route's: each UI is a route registered with
//! the permission it needs, so no request reaches a handler here unless the caller is signed in
//! (else 401) and may use that UI (else 403). The handlers only tell nginx who the caller is.
//!
//! No audit row is written: these checks run for every sub-request of a UI (each script and
//! image of Grafana, each Prometheus query), the UIs' own pages are operations data, and the
//! sign-in that established the session is audited already. What Grafana shows of participants
//! it reads under its own database role, which sees pseudonymous ids only.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use wearhouse_core::store::users::Role;

use super::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::routes::Routes;

/// The signed-in user's e-mail, for the upstream UI (Grafana's auth proxy signs in as it).
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-wearhouse-user");
/// The Grafana organisation role the user gets (`Viewer` or `Admin`).
pub const GRAFANA_ROLE_HEADER: HeaderName = HeaderName::from_static("x-wearhouse-grafana-role");

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/auth/check/grafana",
            Access::Needs(Permission::ViewDashboards),
            grafana,
        )
        .get(
            "/auth/check/operations",
            Access::Needs(Permission::ViewOperations),
            operations,
        )
}

/// The Grafana role of a wearhouse role that may see the dashboards: admins may edit them and
/// Grafana's settings, everyone else only looks.
pub fn grafana_role(role: Role) -> &'static str {
    match role {
        Role::Admin => "Admin",
        Role::Coordinator | Role::Researcher | Role::Analyst => "Viewer",
    }
}

/// Whether the caller may open the Grafana dashboards; on 204 the headers name the user and
/// their Grafana role.
#[utoipa::path(get, path = "/auth/check/grafana", tag = "auth",
    responses(
        (status = 204, description = "Signed in and allowed; `X-Wearhouse-User` and \
            `X-Wearhouse-Grafana-Role` say as whom"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not see the dashboards", body = ErrorBody)))]
pub async fn grafana(caller: Caller) -> Result<(StatusCode, HeaderMap), ApiError> {
    let mut headers = identity(&caller)?;
    headers.insert(
        GRAFANA_ROLE_HEADER,
        HeaderValue::from_static(grafana_role(caller.role)),
    );
    Ok((StatusCode::NO_CONTENT, headers))
}

/// Whether the caller may open Prometheus and AlertManager; on 204 `X-Wearhouse-User` names
/// them (for the web server's access log).
#[utoipa::path(get, path = "/auth/check/operations", tag = "auth",
    responses(
        (status = 204, description = "Signed in and allowed; `X-Wearhouse-User` says who"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not use the operations UIs", body = ErrorBody)))]
pub async fn operations(caller: Caller) -> Result<(StatusCode, HeaderMap), ApiError> {
    Ok((StatusCode::NO_CONTENT, identity(&caller)?))
}

fn identity(caller: &Caller) -> Result<HeaderMap, ApiError> {
    // E-mail addresses are checked when a user is added, but a header value that is not one
    // must fail here rather than reach the proxy half-written.
    let user = HeaderValue::from_str(&caller.email).map_err(|_| {
        ApiError::Internal(anyhow::anyhow!(
            "an e-mail address is not a valid header value"
        ))
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(USER_HEADER, user);
    // A decision about one caller must never be cached and handed to another.
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_become_grafana_admins() {
        for role in Role::ALL {
            let expected = if role == Role::Admin {
                "Admin"
            } else {
                "Viewer"
            };
            assert_eq!(grafana_role(role), expected, "{role}");
        }
    }
}
