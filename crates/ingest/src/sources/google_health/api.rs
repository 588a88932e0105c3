//! Authenticated calls to the Google Health API: bearer tokens from the
//! [`TokenManager`] (refreshed once on a 401, then the call is retried), pacing under the
//! per-user quota (300 requests a minute), 429 `RESOURCE_EXHAUSTED` → waits within
//! `--google-max-quota-wait-secs` and then [`SourceError::QuotaExhausted`], bounded retries with
//! backoff for 5xx, network errors and malformed or cut-off bodies, and `google.rpc.Status`
//! error bodies classified: 400 `ACCOUNT_NOT_LINKED` marks the participant as needing
//! re-consent, 403 `ACCESS_TOKEN_SCOPE_INSUFFICIENT` is a scope the participant did not grant
//! ([`SourceError::ScopeNotGranted`]), and a data type the account or API does not serve
//! ([`SourceError::NotOffered`]) is not retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;
use wearhouse_core::ParticipantId;

use super::{GoogleHealthArgs, PROVIDER};
use crate::oauth::{OAuthError, TokenManager, backoff_delay};
use crate::sources::SourceError;
use crate::sources::fitbit::ApiObserver;

/// Assumed wait when a 429 carries no Retry-After (Google documents none; the quota is per
/// minute).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `google.rpc.Status` error as the API returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiStatus {
    pub code: u16,
    /// Canonical status, e.g. `FAILED_PRECONDITION`.
    pub status: String,
    pub message: String,
    /// `ErrorInfo.reason` values, e.g. `ACCOUNT_NOT_LINKED`, `INVALID_DATA_POINT_FILTER`.
    pub reasons: Vec<String>,
    /// `BadRequest.fieldViolations[].description`.
    pub violations: Vec<String>,
}

impl ApiStatus {
    /// Reads a google.rpc.Status body; anything else becomes the start of the text.
    pub fn parse(http: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Status,
        }
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            status: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            details: Vec<Value>,
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => ApiStatus {
                code: http,
                status: error.status,
                message: error.message,
                reasons: error
                    .details
                    .iter()
                    .filter_map(|d| d.get("reason")?.as_str().map(str::to_owned))
                    .collect(),
                violations: error
                    .details
                    .iter()
                    .filter_map(|d| d.get("fieldViolations")?.as_array().cloned())
                    .flatten()
                    .filter_map(|v| v.get("description")?.as_str().map(str::to_owned))
                    .collect(),
            },
            Err(_) => ApiStatus {
                code: http,
                status: "UNKNOWN".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                ..Default::default()
            },
        }
    }

    /// Whether the access token lacks the scope the call needs (partial consent).
    pub fn scope_insufficient(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| r == "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
    }

    /// Whether a 400 names a data type collection the API does not have.
    pub fn unknown_data_type(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| r == "INVALID_PARENT_DATA_TYPE_COLLECTION")
    }

    /// Whether the Google account has no Google Health profile.
    pub fn account_not_linked(&self) -> bool {
        self.reasons.iter().any(|r| r == "ACCOUNT_NOT_LINKED")
    }
}

impl std::fmt::Display for ApiStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.status, self.message)?;
        if !self.reasons.is_empty() {
            write!(f, " [{}]", self.reasons.join(", "))?;
        }
        for v in &self.violations {
            write!(f, "; {v}")?;
        }
        Ok(())
    }
}

/// The re-consent reason recorded for an unlinked account.
pub const NOT_LINKED_REASON: &str = "google-health: ACCOUNT_NOT_LINKED: the Google account has no Google Health profile (never set up, or its Fitbit account was not migrated); the participant must finish the Fitbit-to-Google account move and consent again";

/// A request to send.
pub enum Call<'a> {
    Get(&'a str, &'a [(&'a str, String)]),
    Post(&'a str, &'a Value),
}

impl Call<'_> {
    fn path(&self) -> &str {
        match self {
            Call::Get(p, _) | Call::Post(p, _) => p,
        }
    }
}

/// The Google Health data client.
pub struct GoogleApi {
    http: reqwest::Client,
    base: Url,
    tokens: TokenManager,
    observer: Arc<dyn ApiObserver>,
    last_request: Mutex<HashMap<ParticipantId, Instant>>,
    spacing: Duration,
    attempts: u32,
    retry_base: Duration,
    quota_retries: u32,
    max_quota_wait: Duration,
}

impl GoogleApi {
    /// A client for `args.api_url`.
    pub fn new(
        http: reqwest::Client,
        args: &GoogleHealthArgs,
        tokens: TokenManager,
        observer: Arc<dyn ApiObserver>,
    ) -> Self {
        GoogleApi {
            http,
            base: args.api_url.clone(),
            tokens,
            observer,
            last_request: Mutex::new(HashMap::new()),
            spacing: match args.requests_per_minute {
                0 => Duration::ZERO,
                n => Duration::from_secs(60) / n,
            },
            attempts: args.attempts.max(1),
            retry_base: Duration::from_millis(args.retry_base_ms),
            quota_retries: args.quota_retries,
            max_quota_wait: Duration::from_secs(args.max_quota_wait_secs),
        }
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    fn url(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(path)
            .map_err(|e| SourceError::Provider(format!("bad path {path}: {e}")))
    }

    /// One call with an explicit access token and no retries (enrolment, before the grant is
    /// stored): the JSON body, or the API's error.
    pub async fn call_with_token(&self, token: &str, path: &str) -> Result<Value, ApiStatus> {
        let url = self.url(path).map_err(|e| ApiStatus {
            message: e.to_string(),
            ..Default::default()
        })?;
        let unavailable = |e: reqwest::Error| ApiStatus {
            status: "UNAVAILABLE".into(),
            message: format!("{path}: {e}"),
            ..Default::default()
        };
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        self.observer.api_request(PROVIDER, status.as_str());
        let body = response.bytes().await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(ApiStatus::parse(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| ApiStatus {
            code: status.as_u16(),
            status: "MALFORMED".into(),
            message: format!("malformed JSON from {path}: {e}"),
            ..Default::default()
        })
    }

    /// Sends `call` for the participant and decodes the JSON body. `what` names the data in
    /// error messages.
    pub async fn call(
        &self,
        participant: &ParticipantId,
        call: Call<'_>,
        what: &str,
    ) -> Result<Value, SourceError> {
        let path = call.path().to_owned();
        let url = self.url(&path)?;
        let mut token = self
            .tokens
            .access_token(participant)
            .await
            .map_err(token_error)?;
        let mut refreshed = false;
        let (mut attempt, mut quota_attempt) = (0, 0);
        loop {
            self.pace(participant).await;
            attempt += 1;
            let request = match &call {
                Call::Get(_, query) => self.http.get(url.clone()).query(query),
                Call::Post(_, body) => self.http.post(url.clone()).json(body),
            };
            let response = match request.bearer_auth(&token).send().await {
                Ok(r) => r,
                Err(e) => {
                    self.observer.api_request(PROVIDER, "error");
                    self.retry_or_give_up(attempt, format!("{what}: {path}: {e}"))
                        .await?;
                    continue;
                }
            };
            let status = response.status();
            self.observer.api_request(PROVIDER, status.as_str());
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map(Duration::from_secs);
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    let reason = format!("{what}: {path}: reading the body: {e}");
                    self.retry_or_give_up(attempt, reason).await?;
                    continue;
                }
            };
            if status.is_success() {
                // A broken or cut-off body is transient (the answer failed mid-way): retried
                // like a 5xx.
                match serde_json::from_slice(&body) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let reason = format!(
                            "{what}: malformed JSON from {path}: {e} (body starts {:?})",
                            String::from_utf8_lossy(&body[..body.len().min(80)])
                        );
                        self.retry_or_give_up(attempt, reason).await?;
                        continue;
                    }
                }
            }
            let error = ApiStatus::parse(status.as_u16(), &body);
            match status.as_u16() {
                401 if !refreshed => {
                    // Expired or rejected access token: refresh once and retry.
                    refreshed = true;
                    attempt -= 1;
                    token = self
                        .tokens
                        .replace_rejected(participant, &token)
                        .await
                        .map_err(token_error)?;
                }
                400 if error.account_not_linked() => {
                    self.tokens
                        .mark_needs_reconsent(participant, NOT_LINKED_REASON)
                        .await
                        .map_err(token_error)?;
                    return Err(SourceError::NeedsReconsent {
                        reason: NOT_LINKED_REASON.into(),
                    });
                }
                429 => {
                    quota_attempt += 1;
                    let wait = retry_after.unwrap_or_else(|| {
                        backoff_delay(self.retry_base.max(Duration::from_millis(1)), quota_attempt)
                    });
                    self.observer.quota_wait(PROVIDER);
                    if quota_attempt > self.quota_retries || wait > self.max_quota_wait {
                        let retry_after = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                        tracing::info!(participant = %participant, ?retry_after, "google health quota exhausted; moving on");
                        return Err(SourceError::QuotaExhausted { retry_after });
                    }
                    tracing::info!(participant = %participant, ?wait, "google health quota exhausted; backing off");
                    tokio::time::sleep(wait).await;
                    attempt -= 1;
                }
                403 if error.scope_insufficient() => {
                    let scope = super::scope_for(what);
                    tracing::info!(participant = %participant, what, scope, "google health scope not granted");
                    return Err(SourceError::ScopeNotGranted {
                        scope: scope.into(),
                    });
                }
                404 | 501 => return Err(not_offered(participant, what, &path, &error)),
                400 if error.unknown_data_type() => {
                    return Err(not_offered(participant, what, &path, &error));
                }
                500..=599 => {
                    let reason = format!("{what}: {path}: {error}");
                    self.retry_or_give_up(attempt, reason).await?;
                }
                _ => {
                    return Err(SourceError::Provider(format!("{what}: {path}: {error}")));
                }
            }
        }
    }

    async fn retry_or_give_up(&self, attempt: u32, reason: String) -> Result<(), SourceError> {
        if attempt >= self.attempts {
            return Err(SourceError::Unavailable(format!(
                "{reason} (after {attempt} attempts)"
            )));
        }
        let delay = backoff_delay(self.retry_base, attempt);
        tracing::warn!(attempt, ?delay, %reason, "google health request failed; retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Spaces one participant's requests evenly under the per-user minute quota.
    async fn pace(&self, participant: &ParticipantId) {
        if self.spacing.is_zero() {
            return;
        }
        let wait = {
            let mut last = self.last_request.lock().expect("pacing lock");
            let now = Instant::now();
            let next = last
                .get(participant)
                .map_or(now, |t| (*t + self.spacing).max(now));
            last.insert(participant.clone(), next);
            next - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A data path the API or this account does not serve: classified once, never retried.
fn not_offered(
    participant: &ParticipantId,
    what: &str,
    path: &str,
    error: &ApiStatus,
) -> SourceError {
    tracing::info!(participant = %participant, what, path, status = error.code, "google health does not offer this data for the participant");
    SourceError::NotOffered {
        reason: format!("{what}: {path}: {error}"),
    }
}

/// Token problems as the pipeline sees them.
pub fn token_error(e: OAuthError) -> SourceError {
    match e {
        OAuthError::NotEnrolled { .. } => SourceError::NotEnrolled { provider: PROVIDER },
        OAuthError::InvalidGrant(reason) => SourceError::NeedsReconsent { reason },
        OAuthError::Unavailable(reason) => SourceError::Unavailable(reason),
        OAuthError::Store(e) => SourceError::Store(e),
        other => SourceError::Provider(other.to_string()),
    }
}
