//! The API's resources, one module each, merged into one router here.

pub mod catalog;
pub mod data;
pub mod docs;
pub mod imputation;
pub mod ops;
pub mod participants;

use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the API (without the cross-cutting layers, which `startup` adds).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(data::router())
        .merge(participants::router())
        .merge(imputation::router())
        .merge(catalog::router())
        .merge(ops::router())
        .merge(docs::router())
        .merge(crate::contact::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// The GET route templates whose request series are exported from the start.
pub const ROUTES: &[&str] = &[
    "/data",
    "/data.csv",
    "/participants",
    "/participants/{id}",
    "/data/imputation_jobs/{id}",
    "/metrics-catalog",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
];
