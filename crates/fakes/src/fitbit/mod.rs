//! A local fake of the Fitbit Web API that behaves like the real one where our client depends
//! on it (see `shared/reference/fitbit-web-api.md` §10): the OAuth endpoints (consent, code
//! exchange with PKCE, rotating single-use refresh tokens, revocation), data endpoints with
//! Fitbit's JSON shapes and error bodies, the hourly per-user quota with its headers, and
//! injectable faults (5xx, malformed, truncated and cut-off bodies, a 429 with a short
//! `Retry-After`), declined scopes (403 `insufficient_scope`), data an account does not have
//! (404) and sleep logs that finish processing after their `retryDuration`. Data is generated
//! deterministically per user and time, so any two requests for the same period agree.
//!
//! ```no_run
//! # async fn demo() {
//! use wearhouse_fakes::{FakeFitbit, FakeFitbitConfig, FakeUser};
//! let fake = FakeFitbit::start(FakeFitbitConfig::server_app("client-1", "secret-1")).await;
//! fake.add_user(FakeUser::new("7QX2LB", chrono_tz::America::New_York)
//!     .last_sync("2025-06-10T08:00:00"));
//! let tokens = fake.issue_tokens("7QX2LB");
//! # }
//! ```

mod data;
mod oauth;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::LocalServer;
use crate::grants::Grants;

/// The fake's client registration and behaviour.
#[derive(Debug, Clone)]
pub struct FakeFitbitConfig {
    pub client_id: String,
    /// `Some`: a server app (the token endpoint demands Basic auth with this secret). `None`:
    /// a client app (`client_id` in the body, no secret).
    pub client_secret: Option<String>,
    /// Lifetime of access tokens in seconds (Fitbit: 28800).
    pub token_ttl_secs: i64,
    /// Requests per user per clock hour (Fitbit: 150).
    pub rate_limit: u32,
    /// Whether the app may read intraday data (else 403 `insufficient_permissions`).
    pub intraday_enabled: bool,
    /// For how many seconds a spent refresh token sent again gets the same answer back (0:
    /// never). Reported for Fitbit (identical refreshes within 2 minutes), unverified; off by
    /// default so that nothing depends on it by accident.
    pub refresh_grace_secs: i64,
}

impl FakeFitbitConfig {
    /// A server app with Fitbit's defaults.
    pub fn server_app(client_id: &str, client_secret: &str) -> Self {
        FakeFitbitConfig {
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            token_ttl_secs: 28_800,
            rate_limit: 150,
            intraday_enabled: true,
            refresh_grace_secs: 0,
        }
    }

    /// A client (public) app with Fitbit's defaults.
    pub fn client_app(client_id: &str) -> Self {
        FakeFitbitConfig {
            client_secret: None,
            ..Self::server_app(client_id, "")
        }
    }
}

/// The two shapes Fitbit has served Active Zone Minutes intraday in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzmShape {
    /// `[{dateTime, minutes:[{minute, value:{activeZoneMinutes,…}}]}]`.
    Minutes,
    /// `{dataset:[{time, value}], datasetInterval, datasetType}`.
    Dataset,
}

/// A Fitbit account on the fake.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// Encoded user id, e.g. `7QX2LB`.
    pub user_id: String,
    pub timezone: Tz,
    /// The tracker's last sync in local time; no data exists after it. `None`: no tracker.
    pub last_sync: Option<NaiveDateTime>,
    /// Scopes the user unticks on the consent page.
    pub denied_scopes: Vec<String>,
    /// Dates of sleep whose log is still being processed (`meta.state: pending`) for good.
    pub pending_sleep: Vec<NaiveDate>,
    /// Dates of sleep whose log is processing when first asked for and finished
    /// `sleep_retry_ms` later, as the `retryDuration` of the pending answer says.
    pub processing_sleep: Vec<NaiveDate>,
    /// `meta.retryDuration` of pending sleep answers, in milliseconds.
    pub sleep_retry_ms: u64,
    /// Path prefixes (e.g. `/1/user/-/spo2`) of data this account does not have: 404.
    pub not_served: Vec<String>,
    pub azm_shape: AzmShape,
    /// The day the account was created (`memberSince` in the profile).
    pub member_since: NaiveDate,
}

impl FakeUser {
    /// A user in `timezone` with a tracker that synced a moment ago (by the real clock).
    pub fn new(user_id: &str, timezone: Tz) -> Self {
        FakeUser {
            user_id: user_id.into(),
            timezone,
            last_sync: Some(Utc::now().with_timezone(&timezone).naive_local()),
            denied_scopes: Vec::new(),
            pending_sleep: Vec::new(),
            processing_sleep: Vec::new(),
            sleep_retry_ms: 30_000,
            not_served: Vec::new(),
            azm_shape: AzmShape::Minutes,
            member_since: NaiveDate::from_ymd_opt(2019, 3, 1).expect("date"),
        }
    }

    /// Sets the day the account was created.
    pub fn member_since(mut self, date: &str) -> Self {
        self.member_since = date.parse().expect("date");
        self
    }

    /// Sets the tracker's last sync (local time, `yyyy-MM-ddTHH:mm:ss`).
    pub fn last_sync(mut self, local: &str) -> Self {
        self.last_sync = Some(
            NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").expect("local date-time"),
        );
        self
    }

    /// A user without any tracker.
    pub fn without_tracker(mut self) -> Self {
        self.last_sync = None;
        self
    }

    /// Unticks `scope` at consent.
    pub fn deny_scope(mut self, scope: &str) -> Self {
        self.denied_scopes.push(scope.into());
        self
    }

    /// Marks the sleep of `date` as still processing.
    pub fn pending_sleep(mut self, date: &str) -> Self {
        self.pending_sleep.push(date.parse().expect("date"));
        self
    }

    /// Marks the sleep of `date` as processing until `retry_ms` after it is first asked for;
    /// pending answers say `retryDuration: retry_ms`.
    pub fn sleep_processing(mut self, date: &str, retry_ms: u64) -> Self {
        self.processing_sleep.push(date.parse().expect("date"));
        self.sleep_retry_ms = retry_ms;
        self
    }

    /// The account has no data under `path_prefix` (e.g. `/1/user/-/spo2`): 404 `not_found`.
    pub fn not_served(mut self, path_prefix: &str) -> Self {
        self.not_served.push(path_prefix.into());
        self
    }

    /// Serves Active Zone Minutes in `shape`.
    pub fn azm_shape(mut self, shape: AzmShape) -> Self {
        self.azm_shape = shape;
        self
    }

    fn last_sync_instant(&self) -> Option<DateTime<Utc>> {
        self.last_sync
            .map(|t| crate::localtime::to_utc(self.timezone, t))
    }
}

/// A fault the next data request suffers (first in, first out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and Fitbit's server-error body.
    Status(u16),
    /// Answer 200 with a body that is not JSON (a fragment that breaks off).
    MalformedJson,
    /// Answer 200 with the real body cut in half: a complete HTTP message, invalid JSON.
    TruncatedBody,
    /// Send the headers and half of the real body, then drop the connection.
    ConnectionCut,
    /// Answer 429 `Too Many Requests` with `Retry-After` (and the reset header) of this many
    /// seconds.
    RateLimited { retry_after_secs: u64 },
}

/// Tokens issued by the fake.
#[derive(Debug, Clone)]
pub struct FakeTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub scope: String,
    pub expires_in: i64,
}

/// One data request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub user_id: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, FakeUser>,
    next_login: Option<String>,
    grants: Grants,
    hour_counts: HashMap<(String, i64), u32>,
    faults: VecDeque<Fault>,
    /// When a processing night was first asked for, per user and date of sleep.
    sleep_asked: HashMap<(String, NaiveDate), DateTime<Utc>>,
    log: Vec<RequestRecord>,
    token_latency: Duration,
    /// Delay before each data request is answered (a real API's round trip).
    api_latency: Duration,
    /// Delay between processing a token request and answering it.
    token_answer_delay: Duration,
    /// The answer each spent refresh token got, and when (the grace period's replays).
    refresh_answers: HashMap<String, (DateTime<Utc>, FakeTokens)>,
}

type Shared = crate::state::Shared<FakeFitbitConfig, Inner>;

/// A running fake Fitbit server; it stops when dropped.
pub struct FakeFitbit {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl FakeFitbit {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start(config: FakeFitbitConfig) -> FakeFitbit {
        Self::start_at(config, ([127, 0, 0, 1], 0).into()).await
    }

    /// Starts the fake on `addr` (the `wearhouse-fake-providers` binary).
    pub async fn start_at(config: FakeFitbitConfig, addr: std::net::SocketAddr) -> FakeFitbit {
        let shared = Shared::new(config);
        let app = Router::new()
            .route("/oauth2/authorize", get(oauth::authorize))
            .route("/oauth2/token", post(oauth::token))
            .route("/oauth2/revoke", post(oauth::revoke))
            .fallback(data::handle)
            .with_state(shared.clone());
        FakeFitbit {
            server: LocalServer::start_at(app, "fake fitbit", addr).await,
            shared,
        }
    }

    /// Base URL of the API (token, revoke and data endpoints), e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The consent page URL (`{url}/oauth2/authorize`).
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.url())
    }

    /// Adds (or replaces) a user.
    pub fn add_user(&self, user: FakeUser) {
        let mut inner = self.shared.inner();
        if inner.next_login.is_none() {
            inner.next_login = Some(user.user_id.clone());
        }
        inner.users.insert(user.user_id.clone(), user);
    }

    /// The user who approves the next consent (default: the first user added).
    pub fn login_as(&self, user_id: &str) {
        self.shared.inner().next_login = Some(user_id.into());
    }

    /// Plays the participant's browser: opens `consent_url` (our client's authorization URL),
    /// approves, and returns the redirect Fitbit sends the browser to (`redirect_uri?code&state`).
    /// An `Err` carries the consent page's error text.
    pub async fn consent(&self, consent_url: &str) -> Result<url::Url, String> {
        crate::follow_consent(consent_url).await
    }

    /// Issues tokens for `user_id` with every scope they did not deny, as a completed consent
    /// would (for tests that do not exercise enrolment).
    pub fn issue_tokens(&self, user_id: &str) -> FakeTokens {
        let now = self.now();
        let mut inner = self.shared.inner();
        let user = inner.users.get(user_id).expect("unknown fake user").clone();
        let scopes = oauth::ALL_SCOPES
            .iter()
            .map(|s| s.to_string())
            .filter(|s| !user.denied_scopes.contains(s))
            .collect();
        let ttl = self.shared.config().token_ttl_secs;
        oauth::new_grant(&mut inner, user_id, scopes, now, ttl)
    }

    /// The fake's clock (real time plus any [`FakeFitbit::advance`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the fake's clock forward (token expiry, code expiry, quota hours).
    pub fn advance(&self, by: chrono::Duration) {
        self.shared.advance(by);
    }

    /// How many refresh grants the user's tokens went through.
    pub fn refresh_count(&self, user_id: &str) -> u32 {
        self.shared.inner().grants.refresh_count(user_id)
    }

    /// Every data request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.inner().log.clone()
    }

    /// Data requests of one user.
    pub fn requests_of(&self, user_id: &str) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.user_id.as_deref() == Some(user_id))
            .collect()
    }

    /// Sets how many requests the user has made in the current clock hour.
    pub fn set_requests_this_hour(&self, user_id: &str, n: u32) {
        let hour = self.now().timestamp().div_euclid(3600);
        self.shared
            .inner()
            .hour_counts
            .insert((user_id.to_owned(), hour), n);
    }

    /// The next `k` data requests suffer `fault`.
    pub fn inject_n(&self, fault: Fault, k: usize) {
        self.inject(std::iter::repeat_n(fault, k));
    }

    /// The next data requests suffer `faults`, one each, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.inner().faults.extend(faults);
    }

    /// The user revokes the app in their Fitbit settings: every token stops working.
    pub fn revoke_user(&self, user_id: &str) {
        self.shared.inner().grants.revoke_user(user_id);
    }

    /// Delays token endpoint answers (widens the window in which two refreshes could race).
    pub fn set_token_latency(&self, latency: Duration) {
        self.shared.inner().token_latency = latency;
    }

    /// Delays every data answer by `latency`, as the network and a real API's servers do
    /// (the fake answers in microseconds; a load's time then goes to waiting, as it does
    /// against the real service).
    pub fn set_api_latency(&self, latency: Duration) {
        self.shared.inner().api_latency = latency;
    }

    /// Delays token endpoint answers after the request was processed: a refresh has rotated
    /// the token by the time its answer leaves, so a client that dies or gives up meanwhile
    /// holds a spent refresh token.
    pub fn set_token_answer_delay(&self, delay: Duration) {
        self.shared.inner().token_answer_delay = delay;
    }

    /// Changes the configuration (TTL, quota, intraday access) of the running fake.
    pub fn configure(&self, f: impl FnOnce(&mut FakeFitbitConfig)) {
        self.shared.configure(f);
    }
}

fn error_body(error_type: &str, field: Option<&str>, message: &str) -> serde_json::Value {
    let mut e = serde_json::json!({"errorType": error_type, "message": message});
    if let Some(f) = field {
        e["fieldName"] = f.into();
    }
    serde_json::json!({"errors": [e], "success": false})
}

const VISIT: &str = "Visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.";
