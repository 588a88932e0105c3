//! A local fake of the Google Health API (v4) and Google's OAuth endpoints that behaves like
//! the real ones where our client depends on it (`shared/reference/google-health-api.md` §6):
//!
//! - OAuth: a consent page (auto-approved), a token endpoint in Google's format (code exchange
//!   with PKCE verification and the client secret, refresh answers without a new refresh token,
//!   `invalid_grant`), revocation; refresh tokens are issued only for `access_type=offline`.
//! - `users/me/identity` (with the legacy Fitbit id), `settings` (time zone), `pairedDevices`.
//! - `dataTypes/{type}/dataPoints` lists with per-type filter validation (the exact 400
//!   `INVALID_DATA_POINT_FILTER` body), rollup-only types rejected, newest-first pages with
//!   Google's `pageSize` caps, an empty page that still carries a token and a `{}` last page;
//!   `dataPoints:rollUp` for the rollup-only `total-calories`.
//! - int64 values as strings, zero fields left out, UTC instants with the user's offset.
//! - 401 `UNAUTHENTICATED`, 400 `FAILED_PRECONDITION`/`ACCOUNT_NOT_LINKED` for unlinked
//!   accounts, 429 `RESOURCE_EXHAUSTED` beyond a per-user per-minute request budget, 403
//!   `PERMISSION_DENIED`/`ACCESS_TOKEN_SCOPE_INSUFFICIENT` for a data type whose scope the
//!   grant lacks, 404 `NOT_FOUND` for a data type the account does not have.
//! - Injected faults: 5xx answers, malformed, truncated and cut-off bodies, a 429 with or
//!   without `Retry-After`.
//! - Sleep sessions with `shortAwakenings`, the same nights the Fitbit fake serves for the
//!   account's former Fitbit user.
//!
//! Data is generated deterministically from the user and the instant (or date), so the same
//! period always reads the same; nothing exists after the user's last sync.

mod data;
mod filter;
mod oauth;
mod points;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::LocalServer;
use crate::grants::Grants;

/// The fake's client registration and behaviour.
#[derive(Debug, Clone)]
pub struct FakeGoogleConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of access tokens in seconds (Google: 3599).
    pub token_ttl_secs: i64,
    /// API requests per user per clock minute before 429 (Google: 300).
    pub requests_per_minute: u32,
    /// Every list starts with an empty page that carries a `nextPageToken` (seen live).
    pub empty_first_page: bool,
    /// The last page with data still carries a token, and the page it points to is `{}`.
    pub empty_object_last_page: bool,
}

impl FakeGoogleConfig {
    /// A web application registration with Google's defaults and both paging quirks on.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        FakeGoogleConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            token_ttl_secs: 3599,
            requests_per_minute: 300,
            empty_first_page: true,
            empty_object_last_page: true,
        }
    }
}

/// A Google account on the fake.
#[derive(Debug, Clone)]
pub struct FakeGoogleUser {
    /// `healthUserId`: a long decimal string in live traffic.
    pub health_user_id: String,
    /// The Fitbit v1–v3 user id, empty for accounts that never had Fitbit.
    pub legacy_user_id: Option<String>,
    /// `settings.timeZone`.
    pub timezone: Tz,
    /// The device's last sync; no data exists after it. `None`: no paired device.
    pub last_sync: Option<DateTime<Utc>>,
    /// Whether the account has a Google Health profile (else 400 `ACCOUNT_NOT_LINKED`).
    pub linked: bool,
    /// Scopes the user unticks on the consent page (full scope URLs or their last part,
    /// e.g. `sleep.readonly`).
    pub denied_scopes: Vec<String>,
    /// Data types (kebab-case) this account does not have: 404 `NOT_FOUND`.
    pub not_served: Vec<String>,
}

impl FakeGoogleUser {
    /// A linked user in `timezone` whose device synced a moment ago.
    pub fn new(health_user_id: &str, timezone: Tz) -> Self {
        FakeGoogleUser {
            health_user_id: health_user_id.into(),
            legacy_user_id: None,
            timezone,
            last_sync: Some(Utc::now()),
            linked: true,
            denied_scopes: Vec::new(),
            not_served: Vec::new(),
        }
    }

    /// The user's former Fitbit user id (`legacyUserId`); the account's nights are then the
    /// ones the Fitbit fake serves for that user.
    pub fn legacy(mut self, fitbit_user_id: &str) -> Self {
        self.legacy_user_id = Some(fitbit_user_id.into());
        self
    }

    /// Sets the last sync (RFC 3339).
    pub fn last_sync(mut self, at: &str) -> Self {
        self.last_sync = Some(at.parse().expect("RFC 3339 instant"));
        self
    }

    /// A user without a paired device.
    pub fn without_device(mut self) -> Self {
        self.last_sync = None;
        self
    }

    /// Withholds `scope` (e.g. `health_metrics_and_measurements.readonly`) from the grants
    /// [`FakeGoogleHealth::issue_tokens`] and the consent page make (the user unticks it, as
    /// Google's partial consent allows); its data types answer 403
    /// `PERMISSION_DENIED` / `ACCESS_TOKEN_SCOPE_INSUFFICIENT`.
    pub fn deny_scope(mut self, scope: &str) -> Self {
        self.denied_scopes.push(scope.into());
        self
    }

    /// The account has no data of type `kebab` (e.g. `oxygen-saturation`): 404 `NOT_FOUND`.
    pub fn not_served(mut self, kebab: &str) -> Self {
        self.not_served.push(kebab.into());
        self
    }

    /// Whether the user unticks `scope` (a full scope URL).
    fn denies(&self, scope: &str) -> bool {
        self.denied_scopes
            .iter()
            .any(|d| scope == d || scope.ends_with(&format!(".{d}")))
    }

    /// An account with no Google Health profile.
    pub fn not_linked(mut self) -> Self {
        self.linked = false;
        self
    }
}

/// A fault the next API request suffers (first in, first out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoogleFault {
    /// Answer with this HTTP status and a google.rpc.Status body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    MalformedJson,
    /// Answer 200 with the real body cut in half: a complete HTTP message, invalid JSON.
    TruncatedBody,
    /// Send the headers and half of the real body, then drop the connection.
    ConnectionCut,
    /// Answer 429 `RESOURCE_EXHAUSTED`, with `Retry-After` when given (Google documents
    /// none, so clients must cope without it).
    RateLimited { retry_after_secs: Option<u64> },
}

/// Tokens issued by the fake.
#[derive(Debug, Clone)]
pub struct FakeGoogleTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: String,
    pub expires_in: i64,
}

/// One API request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleRequest {
    pub user: Option<String>,
    pub method: String,
    pub path: String,
    /// Decoded query parameters (for rollUp: the JSON body).
    pub params: Vec<(String, String)>,
    pub status: u16,
    /// How many data points the answer carried.
    pub points: usize,
    /// Whether the answer carried a `nextPageToken`.
    pub next_page: bool,
}

impl GoogleRequest {
    /// A query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, FakeGoogleUser>,
    next_login: Option<String>,
    grants: Grants,
    minute_counts: HashMap<(String, i64), u32>,
    faults: VecDeque<GoogleFault>,
    log: Vec<GoogleRequest>,
}

type Shared = crate::state::Shared<FakeGoogleConfig, Inner>;

/// A running fake Google Health server; it stops when dropped.
pub struct FakeGoogleHealth {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl FakeGoogleHealth {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start(config: FakeGoogleConfig) -> FakeGoogleHealth {
        Self::start_at(config, ([127, 0, 0, 1], 0).into()).await
    }

    /// Starts the fake on `addr` (the `wearhouse-fake-providers` binary).
    pub async fn start_at(
        config: FakeGoogleConfig,
        addr: std::net::SocketAddr,
    ) -> FakeGoogleHealth {
        let shared = Shared::new(config);
        let app = Router::new()
            .route("/o/oauth2/v2/auth", get(oauth::authorize))
            .route("/token", post(oauth::token))
            .route("/revoke", post(oauth::revoke))
            .fallback(data::handle)
            .with_state(shared.clone());
        FakeGoogleHealth {
            server: LocalServer::start_at(app, "fake google", addr).await,
            shared,
        }
    }

    /// Base URL of everything (API, consent page, token and revoke endpoints).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Adds (or replaces) a user; the first one added approves consents.
    pub fn add_user(&self, user: FakeGoogleUser) {
        let mut inner = self.shared.inner();
        if inner.next_login.is_none() {
            inner.next_login = Some(user.health_user_id.clone());
        }
        inner.users.insert(user.health_user_id.clone(), user);
    }

    /// The user who approves the next consent.
    pub fn login_as(&self, health_user_id: &str) {
        self.shared.inner().next_login = Some(health_user_id.into());
    }

    /// Changes a user in place (e.g. a later sync).
    pub fn update_user(&self, health_user_id: &str, f: impl FnOnce(&mut FakeGoogleUser)) {
        f(self
            .shared
            .inner()
            .users
            .get_mut(health_user_id)
            .expect("unknown fake user"));
    }

    /// Plays the participant's browser: opens `consent_url`, approves, and returns the
    /// redirect Google sends the browser to. An `Err` carries the consent page's error text.
    pub async fn consent(&self, consent_url: &str) -> Result<url::Url, String> {
        crate::follow_consent(consent_url).await
    }

    /// Issues tokens for a user as a completed offline consent would.
    pub fn issue_tokens(&self, health_user_id: &str) -> FakeGoogleTokens {
        let now = self.now();
        let mut inner = self.shared.inner();
        let user = inner
            .users
            .get(health_user_id)
            .expect("unknown fake user")
            .clone();
        let scopes: Vec<&str> = oauth::ALL_SCOPES
            .into_iter()
            .filter(|s| !user.denies(s))
            .collect();
        oauth::new_grant(
            &mut inner,
            health_user_id,
            &scopes.join(" "),
            true,
            now,
            self.shared.config().token_ttl_secs,
        )
    }

    /// The fake's clock (real time plus any [`FakeGoogleHealth::advance`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the fake's clock forward (token expiry, quota minutes).
    pub fn advance(&self, by: chrono::Duration) {
        self.shared.advance(by);
    }

    /// How many refreshes the user's tokens went through.
    pub fn refresh_count(&self, health_user_id: &str) -> u32 {
        self.shared.inner().grants.refresh_count(health_user_id)
    }

    /// Every API request so far, in order.
    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.shared.inner().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.inner().log.clear();
    }

    /// The next `k` API requests suffer `fault`.
    pub fn inject_n(&self, fault: GoogleFault, k: usize) {
        self.inject(std::iter::repeat_n(fault, k));
    }

    /// The next API requests suffer `faults`, one each, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = GoogleFault>) {
        self.shared.inner().faults.extend(faults);
    }

    /// The user removes the app at myaccount.google.com: every token stops working.
    pub fn revoke_user(&self, health_user_id: &str) {
        self.shared.inner().grants.revoke_user(health_user_id);
    }

    /// Whether every grant the user holds has been revoked (through `/revoke` or the account).
    pub fn is_revoked(&self, health_user_id: &str) -> bool {
        let grants = &self.shared.inner().grants;
        grants
            .refresh
            .values()
            .filter(|r| r.user == health_user_id)
            .all(|r| grants.revoked.contains(&r.grant))
    }

    /// Changes the configuration of the running fake.
    pub fn configure(&self, f: impl FnOnce(&mut FakeGoogleConfig)) {
        self.shared.configure(f);
    }
}

/// A google.rpc.Status error body.
fn status_body(code: u16, status: &str, message: &str, details: serde_json::Value) -> String {
    let mut error = serde_json::json!({"code": code, "message": message, "status": status});
    if details.as_array().is_some_and(|d| !d.is_empty()) {
        error["details"] = details;
    }
    serde_json::json!({ "error": error }).to_string()
}
