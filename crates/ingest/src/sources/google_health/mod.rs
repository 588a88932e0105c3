//! The Google Health API (v4) source, successor of the Fitbit Web API: Google OAuth grants per
//! participant (see [`crate::oauth::google`]), data points for every catalogue metric Google
//! offers, the device's last sync, and the per-user quota.
//!
//! Layout: [`GoogleHealthArgs`] (configuration), [`api`] (authenticated calls, quota, retries,
//! `google.rpc.Status` errors), [`fetch`] (filters, pagination, which calls cover a range),
//! [`parse`] (JSON to samples) and [`enroll`] (consent, identity, the move from Fitbit).
//!
//! Last sync: `pairedDevices` `lastSyncTime` when a device reports it (the reference lists the
//! endpoint but not the field, so it is read leniently), else the newest heart-rate or steps
//! point of the last 30 days; see [`fetch::last_sync`].

pub mod api;
pub mod enroll;
pub mod fetch;
pub mod parse;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use secrecy::SecretString;
use sqlx::PgPool;
use url::Url;
use wearhouse_core::Metric;

use crate::oauth::google;
use wearhouse_core::crypto::TokenKey;

use crate::oauth::{ClientAuth, OAuthClient, OAuthConfig, StateSigner, TokenManager};
use crate::sources::fitbit::ApiObserver;
use crate::sources::{Fetched, Source, SourceError, SourceParticipant};

pub use api::GoogleApi;

/// Provider name in `participants.provider`, `oauth_tokens.provider` and `ingest_state.source`.
pub const PROVIDER: &str = "google-health";

/// The OAuth scope behind `what` (a metric name as [`GoogleApi::call`] is called with, or
/// `pairedDevices`), per Google's mapping of the Fitbit scopes; a 403
/// `ACCESS_TOKEN_SCOPE_INSUFFICIENT` names it.
pub fn scope_for(what: &str) -> &'static str {
    match Metric::parse(what) {
        Ok(Metric::SleepStage) => "https://www.googleapis.com/auth/googlehealth.sleep.readonly",
        Ok(
            Metric::Steps
            | Metric::Calories
            | Metric::Distance
            | Metric::Floors
            | Metric::ActiveZoneMinutes,
        ) => "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly",
        Ok(_) => {
            "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly"
        }
        Err(_) => "https://www.googleapis.com/auth/googlehealth.settings.readonly",
    }
}

/// Google Health API settings. URLs point at Google by default; tests point them at the fake.
#[derive(Debug, Clone, Args)]
pub struct GoogleHealthArgs {
    /// OAuth client id of the web application registered in the Google Cloud project.
    #[arg(
        long = "google-client-id",
        id = "google-client-id",
        env = "WEARHOUSE_GOOGLE_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// OAuth client secret; never logged.
    #[arg(
        long = "google-client-secret",
        id = "google-client-secret",
        env = "WEARHOUSE_GOOGLE_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,

    /// Base URL of the Google Health API.
    #[arg(
        long = "google-api-url",
        id = "google-api-url",
        env = "WEARHOUSE_GOOGLE_API_URL",
        default_value = "https://health.googleapis.com"
    )]
    pub api_url: Url,

    /// Google's consent page.
    #[arg(long = "google-authorize-url", id = "google-authorize-url", env = "WEARHOUSE_GOOGLE_AUTHORIZE_URL", default_value = google::AUTHORIZE_URL)]
    pub authorize_url: Url,

    /// Google's token endpoint.
    #[arg(long = "google-token-url", id = "google-token-url", env = "WEARHOUSE_GOOGLE_TOKEN_URL", default_value = google::TOKEN_URL)]
    pub token_url: Url,

    /// Google's token revocation endpoint.
    #[arg(long = "google-revoke-url", id = "google-revoke-url", env = "WEARHOUSE_GOOGLE_REVOKE_URL", default_value = google::REVOKE_URL)]
    pub revoke_url: Url,

    /// Redirect URI registered for the client; enrolment serves the callback there.
    #[arg(
        long = "google-redirect-uri",
        id = "google-redirect-uri",
        env = "WEARHOUSE_GOOGLE_REDIRECT_URI",
        default_value = "http://localhost:8080/google/callback"
    )]
    pub redirect_uri: String,

    /// Scopes requested at enrolment, space separated.
    #[arg(long = "google-scopes", id = "google-scopes", env = "WEARHOUSE_GOOGLE_SCOPES", default_value = google::SCOPES)]
    pub scopes: String,

    /// Key that signs the enrolment `state` (and derives the PKCE verifier); defaults to the
    /// client secret.
    #[arg(
        long = "google-state-key",
        id = "google-state-key",
        env = "WEARHOUSE_GOOGLE_STATE_KEY",
        hide_env_values = true
    )]
    pub state_key: Option<SecretString>,

    /// Requests per participant per minute the client spaces its calls for (Google's per-user
    /// quota is 300); 0 turns pacing off.
    #[arg(
        long = "google-requests-per-minute",
        id = "google-requests-per-minute",
        env = "WEARHOUSE_GOOGLE_REQUESTS_PER_MINUTE",
        default_value_t = 300
    )]
    pub requests_per_minute: u32,

    /// Backoffs on 429 RESOURCE_EXHAUSTED before moving on to the next participant (who
    /// resumes from the watermark on the next run).
    #[arg(
        long = "google-quota-retries",
        id = "google-quota-retries",
        env = "WEARHOUSE_GOOGLE_QUOTA_RETRIES",
        default_value_t = 2
    )]
    pub quota_retries: u32,

    /// Longest single wait for the quota before moving on.
    #[arg(
        long = "google-max-quota-wait-secs",
        id = "google-max-quota-wait-secs",
        env = "WEARHOUSE_GOOGLE_MAX_QUOTA_WAIT_SECS",
        default_value_t = 30
    )]
    pub max_quota_wait_secs: u64,

    /// Attempts per request for transient failures (5xx, network) before giving up.
    #[arg(
        long = "google-attempts",
        id = "google-attempts",
        env = "WEARHOUSE_GOOGLE_ATTEMPTS",
        default_value_t = 3
    )]
    pub attempts: u32,

    /// First retry delay in milliseconds; it doubles per attempt, plus jitter.
    #[arg(
        long = "google-retry-base-ms",
        id = "google-retry-base-ms",
        env = "WEARHOUSE_GOOGLE_RETRY_BASE_MS",
        default_value_t = 500
    )]
    pub retry_base_ms: u64,

    /// Timeout of one HTTP request in seconds.
    #[arg(
        long = "google-timeout-secs",
        id = "google-timeout-secs",
        env = "WEARHOUSE_GOOGLE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout_secs: u64,
}

/// Configuration problems found when building the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--google-client-id (WEARHOUSE_GOOGLE_CLIENT_ID) is required for the google-health source"
    )]
    MissingClientId,
    #[error(
        "--google-client-secret (WEARHOUSE_GOOGLE_CLIENT_SECRET) is required for the google-health source"
    )]
    MissingSecret,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

impl GoogleHealthArgs {
    /// Settings pointing everything at `base` (the fake serves the consent page, token and
    /// revoke endpoints and the API under one origin), with quick retries and no pacing.
    pub fn for_base_url(base: &str, client_id: &str, client_secret: &str) -> Self {
        let base: Url = base.parse().expect("valid base URL");
        let join = |p: &str| base.join(p).expect("join");
        GoogleHealthArgs {
            client_id: Some(client_id.into()),
            client_secret: Some(SecretString::from(client_secret.to_owned())),
            authorize_url: join("/o/oauth2/v2/auth"),
            token_url: join("/token"),
            revoke_url: join("/revoke"),
            api_url: base,
            redirect_uri: "http://localhost:8080/google/callback".into(),
            scopes: google::SCOPES.into(),
            state_key: None,
            requests_per_minute: 0,
            quota_retries: 2,
            max_quota_wait_secs: 30,
            attempts: 3,
            retry_base_ms: 10,
            timeout_secs: 30,
        }
    }

    /// The OAuth configuration these settings describe. Google takes the client credentials
    /// in the form body, next to the PKCE verifier.
    pub fn oauth_config(&self) -> Result<OAuthConfig, ConfigError> {
        Ok(OAuthConfig {
            provider: PROVIDER,
            authorize_url: self.authorize_url.clone(),
            token_url: self.token_url.clone(),
            revoke_url: self.revoke_url.clone(),
            client_id: self.client_id.clone().ok_or(ConfigError::MissingClientId)?,
            client_secret: Some(
                self.client_secret
                    .clone()
                    .ok_or(ConfigError::MissingSecret)?,
            ),
            client_auth: ClientAuth::Body,
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
        })
    }

    fn http_client(&self) -> Result<reqwest::Client, ConfigError> {
        crate::sources::http_client(self.timeout_secs).map_err(|e| ConfigError::Http(e.to_string()))
    }
}

/// The Google Health source.
#[derive(Clone)]
pub struct GoogleHealthSource {
    api: Arc<GoogleApi>,
    pool: PgPool,
    signer: StateSigner,
    /// The Fitbit grant manager, to revoke a moved participant's old grant (enrolment only).
    fitbit: Option<TokenManager>,
}

impl GoogleHealthSource {
    /// A source storing grants in `pool` sealed under `key`, reporting requests to `observer`.
    pub fn new(
        pool: PgPool,
        key: TokenKey,
        args: &GoogleHealthArgs,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, ConfigError> {
        let http = args.http_client()?;
        let oauth = Arc::new(OAuthClient::new(args.oauth_config()?, http.clone()));
        let tokens = TokenManager::new(pool.clone(), oauth, key);
        Ok(GoogleHealthSource {
            api: Arc::new(GoogleApi::new(http, args, tokens, observer)),
            pool,
            signer: StateSigner::from_settings(
                "g1",
                args.state_key.as_ref(),
                args.client_secret.as_ref(),
            ),
            fitbit: None,
        })
    }

    /// Lets enrolment revoke the Fitbit grant of a participant who moves to Google Health.
    pub fn with_fitbit_revocation(mut self, fitbit: TokenManager) -> Self {
        self.fitbit = Some(fitbit);
        self
    }

    /// The API client.
    pub fn api(&self) -> &GoogleApi {
        &self.api
    }
}

#[async_trait]
impl Source for GoogleHealthSource {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn metrics(&self) -> Vec<Metric> {
        fetch::METRICS.to_vec()
    }

    /// The scope of each data type (reference §2, the scope mapping from Fitbit's).
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
        let not_before = p.handed_over.get(&metric).copied();
        fetch::fetch(&self.api, p, metric, from, to, not_before).await
    }
}
