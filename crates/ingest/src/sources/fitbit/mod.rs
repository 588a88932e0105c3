//! The Fitbit Web API source: OAuth grants per participant (see [`crate::oauth`]), intraday
//! and nightly data for every catalogue metric, the device's last sync, and the per-user
//! request quota.
//!
//! Layout: [`FitbitArgs`] (configuration), [`api`] (authenticated requests, quota, retries,
//! error bodies), [`fetch`] (which calls cover a range of days), [`parse`] (JSON to samples),
//! [`localtime`] (Fitbit's offset-less local times to instants) and [`enroll`] (consent).

pub mod api;
pub mod enroll;
mod fetch;
pub mod localtime;
pub mod parse;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use secrecy::SecretString;
use sqlx::PgPool;
use url::Url;
use wearhouse_core::Metric;

use wearhouse_core::crypto::TokenKey;

use crate::oauth::{ClientAuth, OAuthClient, OAuthConfig, StateSigner, TokenManager};
use crate::sources::{Fetched, Source, SourceError, SourceParticipant};

pub use api::{ApiObserver, FitbitApi, NoopObserver};

/// Provider name in `participants.provider`, `oauth_tokens.provider` and `ingest_state.source`.
pub const PROVIDER: &str = "fitbit";

/// The OAuth scope the endpoint behind `what` needs (a metric name as
/// [`FitbitApi::get`] is called with, `devices` or `profile`), per the reference's table of
/// scopes by endpoint; a 403 `insufficient_scope` names it.
pub fn scope_for(what: &str) -> &'static str {
    match Metric::parse(what) {
        Ok(Metric::HeartRate | Metric::RestingHeartRate | Metric::HrvRmssd) => "heartrate",
        Ok(
            Metric::Steps
            | Metric::Calories
            | Metric::Distance
            | Metric::Floors
            | Metric::ActiveZoneMinutes,
        ) => "activity",
        Ok(Metric::Spo2) => "oxygen_saturation",
        Ok(Metric::BreathingRate) => "respiratory_rate",
        Ok(Metric::SkinTempDelta) => "temperature",
        Ok(Metric::SleepStage) => "sleep",
        Err(_) if what == "devices" => "settings",
        Err(_) => "profile",
    }
}

/// How the application is registered at dev.fitbit.com, which decides client authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppType {
    /// Confidential app: the token endpoint gets HTTP Basic auth with the client secret.
    Server,
    /// Public app: `client_id` goes in the form body and no secret is sent.
    Client,
}

/// Heart-rate intraday detail level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeartRateDetail {
    /// Sparse second-level readings (every 5–15 s in practice).
    #[value(name = "1sec")]
    OneSecond,
    /// One value per minute.
    #[value(name = "1min")]
    OneMinute,
}

impl HeartRateDetail {
    fn path(self) -> &'static str {
        match self {
            HeartRateDetail::OneSecond => "1sec",
            HeartRateDetail::OneMinute => "1min",
        }
    }
}

/// Fitbit Web API settings. Base URLs point at the real service by default; tests point them
/// at the fake server.
#[derive(Debug, Clone, Args)]
pub struct FitbitArgs {
    /// OAuth client id of the application registered at dev.fitbit.com.
    #[arg(
        long = "fitbit-client-id",
        id = "fitbit-client-id",
        env = "WEARHOUSE_FITBIT_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// OAuth client secret (server apps); never logged.
    #[arg(
        long = "fitbit-client-secret",
        id = "fitbit-client-secret",
        env = "WEARHOUSE_FITBIT_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,

    /// Application type: `server` authenticates with Basic auth, `client` sends client_id in
    /// the body.
    #[arg(long = "fitbit-app-type", id = "fitbit-app-type", env = "WEARHOUSE_FITBIT_APP_TYPE", value_enum, default_value_t = AppType::Server)]
    pub app_type: AppType,

    /// Base URL of the Web API (data, token and revoke endpoints).
    #[arg(
        long = "fitbit-api-url",
        id = "fitbit-api-url",
        env = "WEARHOUSE_FITBIT_API_URL",
        default_value = "https://api.fitbit.com"
    )]
    pub api_url: Url,

    /// The token endpoint (code exchange and refresh), when it is not `{api-url}/oauth2/token`
    /// (e.g. behind an egress proxy).
    #[arg(
        long = "fitbit-token-url",
        id = "fitbit-token-url",
        env = "WEARHOUSE_FITBIT_TOKEN_URL"
    )]
    pub token_url: Option<Url>,

    /// The revocation endpoint, when it is not `{api-url}/oauth2/revoke`.
    #[arg(
        long = "fitbit-revoke-url",
        id = "fitbit-revoke-url",
        env = "WEARHOUSE_FITBIT_REVOKE_URL"
    )]
    pub revoke_url: Option<Url>,

    /// The consent page participants are sent to.
    #[arg(
        long = "fitbit-authorize-url",
        id = "fitbit-authorize-url",
        env = "WEARHOUSE_FITBIT_AUTHORIZE_URL",
        default_value = "https://www.fitbit.com/oauth2/authorize"
    )]
    pub authorize_url: Url,

    /// Redirect URI registered for the app; enrolment serves the callback there.
    #[arg(
        long = "fitbit-redirect-uri",
        id = "fitbit-redirect-uri",
        env = "WEARHOUSE_FITBIT_REDIRECT_URI",
        default_value = "http://localhost:8080/callback"
    )]
    pub redirect_uri: String,

    /// Scopes requested at enrolment, space separated.
    #[arg(
        long = "fitbit-scopes",
        id = "fitbit-scopes",
        env = "WEARHOUSE_FITBIT_SCOPES",
        default_value = "activity heartrate sleep oxygen_saturation respiratory_rate temperature settings profile"
    )]
    pub scopes: String,

    /// Key that signs the enrolment `state` (and derives the PKCE verifier from it), so a
    /// consent started by `enroll` can complete at a running daemon; defaults to the client
    /// secret. Without either, only the process that started a consent can complete it.
    #[arg(
        long = "fitbit-state-key",
        id = "fitbit-state-key",
        env = "WEARHOUSE_FITBIT_STATE_KEY",
        hide_env_values = true
    )]
    pub state_key: Option<SecretString>,

    /// Heart-rate intraday detail level.
    #[arg(long = "fitbit-heart-rate-detail", id = "fitbit-heart-rate-detail", env = "WEARHOUSE_FITBIT_HEART_RATE_DETAIL", value_enum, default_value_t = HeartRateDetail::OneSecond)]
    pub heart_rate_detail: HeartRateDetail,

    /// Requests kept in reserve of the hourly quota: when only this many remain, the client
    /// stops for that participant (waiting when the reset is near) instead of running into 429.
    #[arg(
        long = "fitbit-quota-reserve",
        id = "fitbit-quota-reserve",
        env = "WEARHOUSE_FITBIT_QUOTA_RESERVE",
        default_value_t = 2
    )]
    pub quota_reserve: u32,

    /// Longest wait in seconds for the hourly quota to reset (a reset near at hand, or the
    /// `Retry-After` of a 429, at most `--fitbit-attempts` times per request) before moving on
    /// to the next participant, who resumes in a later run.
    #[arg(
        long = "fitbit-max-quota-wait-secs",
        id = "fitbit-max-quota-wait-secs",
        env = "WEARHOUSE_FITBIT_MAX_QUOTA_WAIT_SECS",
        default_value_t = 30
    )]
    pub max_quota_wait_secs: u64,

    /// Attempts per request for transient failures (5xx, network) before giving up.
    #[arg(
        long = "fitbit-attempts",
        id = "fitbit-attempts",
        env = "WEARHOUSE_FITBIT_ATTEMPTS",
        default_value_t = 3
    )]
    pub attempts: u32,

    /// First retry delay in milliseconds; it doubles per attempt, plus jitter.
    #[arg(
        long = "fitbit-retry-base-ms",
        id = "fitbit-retry-base-ms",
        env = "WEARHOUSE_FITBIT_RETRY_BASE_MS",
        default_value_t = 500
    )]
    pub retry_base_ms: u64,

    /// Further requests within a run for a sleep log Fitbit is still processing
    /// (`meta.state: pending`), each after the `retryDuration` it names; a night still pending
    /// after them is left to a later run.
    #[arg(
        long = "fitbit-pending-sleep-retries",
        id = "fitbit-pending-sleep-retries",
        env = "WEARHOUSE_FITBIT_PENDING_SLEEP_RETRIES",
        default_value_t = 3
    )]
    pub pending_sleep_retries: u32,

    /// Longest total wait in seconds, per participant and fetch, for pending sleep logs.
    #[arg(
        long = "fitbit-pending-sleep-max-wait-secs",
        id = "fitbit-pending-sleep-max-wait-secs",
        env = "WEARHOUSE_FITBIT_PENDING_SLEEP_MAX_WAIT_SECS",
        default_value_t = 90
    )]
    pub pending_sleep_max_wait_secs: u64,

    /// Timeout of one HTTP request in seconds.
    #[arg(
        long = "fitbit-timeout-secs",
        id = "fitbit-timeout-secs",
        env = "WEARHOUSE_FITBIT_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout_secs: u64,
}

/// Configuration problems found when building the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--fitbit-client-id (WEARHOUSE_FITBIT_CLIENT_ID) is required for the fitbit source")]
    MissingClientId,
    #[error("--fitbit-client-secret is required when --fitbit-app-type is server")]
    MissingSecret,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("invalid fitbit URL: {0}")]
    Url(String),
}

impl FitbitArgs {
    /// Settings pointing at `api_url` for everything (the fake server serves the consent page
    /// under the same origin), with the given client registration.
    pub fn for_base_url(api_url: &str, client_id: &str, client_secret: Option<&str>) -> Self {
        let api_url: Url = api_url.parse().expect("valid base URL");
        FitbitArgs {
            client_id: Some(client_id.to_owned()),
            client_secret: client_secret.map(|s| SecretString::from(s.to_owned())),
            app_type: if client_secret.is_some() {
                AppType::Server
            } else {
                AppType::Client
            },
            authorize_url: api_url.join("/oauth2/authorize").expect("join"),
            api_url,
            token_url: None,
            revoke_url: None,
            redirect_uri: "http://localhost:8080/callback".into(),
            scopes: "activity heartrate sleep oxygen_saturation respiratory_rate temperature settings profile".into(),
            state_key: None,
            heart_rate_detail: HeartRateDetail::OneSecond,
            quota_reserve: 2,
            max_quota_wait_secs: 30,
            attempts: 3,
            retry_base_ms: 500,
            pending_sleep_retries: 3,
            pending_sleep_max_wait_secs: 90,
            timeout_secs: 30,
        }
    }

    /// The OAuth configuration these settings describe.
    pub fn oauth_config(&self) -> Result<OAuthConfig, ConfigError> {
        let client_id = self.client_id.clone().ok_or(ConfigError::MissingClientId)?;
        if self.app_type == AppType::Server && self.client_secret.is_none() {
            return Err(ConfigError::MissingSecret);
        }
        let url = |set: &Option<Url>, path: &str| match set {
            Some(url) => Ok(url.clone()),
            None => self
                .api_url
                .join(path)
                .map_err(|e| ConfigError::Url(e.to_string())),
        };
        Ok(OAuthConfig {
            provider: PROVIDER,
            authorize_url: self.authorize_url.clone(),
            token_url: url(&self.token_url, "/oauth2/token")?,
            revoke_url: url(&self.revoke_url, "/oauth2/revoke")?,
            client_id,
            client_secret: self.client_secret.clone(),
            client_auth: match self.app_type {
                AppType::Server => ClientAuth::Basic,
                AppType::Client => ClientAuth::Body,
            },
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// The HTTP client shared by the OAuth and data calls.
    pub fn http_client(&self) -> Result<reqwest::Client, ConfigError> {
        crate::sources::http_client(self.timeout_secs).map_err(|e| ConfigError::Http(e.to_string()))
    }
}

/// The Fitbit source.
#[derive(Clone)]
pub struct FitbitSource {
    api: Arc<FitbitApi>,
    heart_rate_detail: HeartRateDetail,
    pending: fetch::PendingRetry,
    signer: StateSigner,
}

impl FitbitSource {
    /// A source storing grants in `pool` sealed under `key`, reporting requests to `observer`.
    pub fn new(
        pool: PgPool,
        key: TokenKey,
        args: &FitbitArgs,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, ConfigError> {
        let http = args.http_client()?;
        let oauth = Arc::new(OAuthClient::new(args.oauth_config()?, http.clone()));
        let tokens = TokenManager::new(pool, oauth, key);
        let api = FitbitApi::new(http, args, tokens, observer);
        Ok(FitbitSource {
            api: Arc::new(api),
            heart_rate_detail: args.heart_rate_detail,
            pending: fetch::PendingRetry {
                tries: args.pending_sleep_retries,
                max_wait: std::time::Duration::from_secs(args.pending_sleep_max_wait_secs),
            },
            signer: StateSigner::from_settings(
                "v1",
                args.state_key.as_ref(),
                args.client_secret.as_ref(),
            ),
        })
    }

    /// The API client (for enrolment and revocation).
    pub fn api(&self) -> &FitbitApi {
        &self.api
    }
}

#[async_trait]
impl Source for FitbitSource {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn metrics(&self) -> Vec<Metric> {
        Metric::ALL.to_vec()
    }

    /// The scope of each endpoint (reference §1, "Scope needed by each endpoint").
    fn scope(&self, metric: Metric) -> Option<&'static str> {
        Some(scope_for(metric.name()))
    }

    async fn last_sync(&self, p: &SourceParticipant) -> Result<Option<DateTime<Utc>>, SourceError> {
        fetch::last_sync(&self.api, p).await
    }

    async fn fetch(
        &self,
        p: &SourceParticipant,
        metric: Metric,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Fetched, SourceError> {
        if to < from {
            return Ok(Fetched::default());
        }
        fetch::fetch(
            &self.api,
            self.heart_rate_detail,
            self.pending,
            p,
            metric,
            from,
            to,
        )
        .await
    }
}
