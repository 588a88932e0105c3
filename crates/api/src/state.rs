//! What the handlers share. Each handler extracts only the part it needs (`State<PgPool>`,
//! `State<Arc<ApiMetrics>>`, `State<Arc<ContactService>>`) through `FromRef`, so the contact
//! and metrics modules know nothing of this struct.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::Auth;
use crate::contact::ContactService;
use crate::metrics::ApiMetrics;
use crate::routes::data::DataLimits;
use crate::routes::enrolment::PublicUrl;

/// Application state, cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: Arc<ApiMetrics>,
    /// The contact form's outbox, CSRF signer and rate limiter.
    pub contact: Arc<ContactService>,
    /// Sign-in: sessions, tokens, throttling and every route's access rule.
    pub auth: Arc<Auth>,
    /// Where participants reach the stack: the base of consent links.
    pub public_url: PublicUrl,
    /// How much one data answer may hold.
    pub data_limits: DataLimits,
}
