//! What every handler shares: the database pool and the metrics.

use std::sync::Arc;

use sqlx::PgPool;

use crate::contact::ContactService;
use crate::metrics::ApiMetrics;

/// Application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: Arc<ApiMetrics>,
    /// The contact form's outbox, CSRF signer and rate limiter.
    pub contact: Arc<ContactService>,
}
