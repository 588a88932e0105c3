//! Operations: `/health` (the process answers), `/ready` (the database is reachable and
//! migrated) and Prometheus `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use wearhouse_core::store;
use wearhouse_core::telemetry::METRICS_CONTENT_TYPE;

use crate::auth::{Access, Permission};
use crate::error::error_chain;
use crate::metrics::ApiMetrics;
use crate::routes::Routes;

/// Longest `/ready` waits for the database; orchestrators probe with short timeouts.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get("/health", Access::Public, health)
        .get("/ready", Access::Public, ready)
        .get("/metrics", Access::Needs(Permission::ReadMetrics), metrics)
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Always 200 while the process runs.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness, and what is missing when not ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `ok` or `unreachable`.
    #[schema(example = "ok")]
    pub database: &'static str,
    /// `current`, `pending` (run `wearhouse-api migrate`) or `unknown` (database unreachable).
    #[schema(example = "current")]
    pub migrations: &'static str,
}

/// 200 when the database answers and every migration is applied, else 503 saying which.
#[utoipa::path(get, path = "/ready", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready: the body says why", body = Readiness)))]
pub async fn ready(State(pool): State<PgPool>) -> impl IntoResponse {
    let checked = tokio::time::timeout(READY_TIMEOUT, store::is_migrated(&pool)).await;
    let (code, database, migrations) = match checked {
        Ok(Ok(true)) => (StatusCode::OK, "ok", "current"),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, "ok", "pending"),
        Ok(Err(e)) => {
            tracing::warn!(error = %error_chain(&e), "not ready: database check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "unreachable", "unknown")
        }
        Err(_) => {
            tracing::warn!("not ready: database check timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "unreachable", "unknown")
        }
    };
    let status = if code == StatusCode::OK {
        "ready"
    } else {
        "not_ready"
    };
    (
        code,
        Json(Readiness {
            status,
            database,
            migrations,
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String,
               content_type = "application/openmetrics-text")))]
pub async fn metrics(
    State(metrics): State<Arc<ApiMetrics>>,
    State(pool): State<PgPool>,
) -> impl IntoResponse {
    let text = metrics.render(&pool).await;
    (
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        text,
    )
}
