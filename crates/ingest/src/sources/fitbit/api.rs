//! Authenticated GETs against the Fitbit Web API: bearer tokens from the
//! [`TokenManager`](crate::oauth::TokenManager) (refreshed once on a 401 `expired_token`),
//! pacing by the `Fitbit-Rate-Limit-*` headers, a 429 waited out when its `Retry-After` is
//! within `--fitbit-max-quota-wait-secs` (else [`SourceError::QuotaExhausted`]), bounded
//! retries with backoff for 5xx, network errors and malformed or cut-off bodies, and Fitbit's
//! error bodies classified: a scope the participant did not grant
//! ([`SourceError::ScopeNotGranted`]), a path the account or API does not serve
//! ([`SourceError::NotOffered`]), or a message that names what was being fetched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT_LANGUAGE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;
use wearhouse_core::ParticipantId;

use super::{FitbitArgs, PROVIDER};
use crate::oauth::{OAuthError, TokenManager, backoff_delay, parse_error_body};
use crate::sources::SourceError;

/// Receives one event per API request and per quota wait, so the service can count them
/// (`wearhouse_ingest_api_requests_total{source,status}`,
/// `wearhouse_ingest_quota_waits_total{source}`).
pub trait ApiObserver: Send + Sync {
    /// A request finished with HTTP `status` (`"error"` when no response arrived).
    fn api_request(&self, source: &'static str, status: &str);
    /// The client paused or gave up on a participant because the quota was spent.
    fn quota_wait(&self, source: &'static str);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl ApiObserver for NoopObserver {
    fn api_request(&self, _: &'static str, _: &str) {}
    fn quota_wait(&self, _: &'static str) {}
}

/// Extra wait after a reset time, because Fitbit's hour and ours differ by a little.
const RESET_BUFFER: Duration = Duration::from_secs(2);

/// Assumed wait when a 429 carries neither Retry-After nor a reset header.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Distance comes in the unit system of `Accept-Language`: `en_US` gives miles, `en_GB` UK
/// units; any other locale gives metric (kilometres), which the parser turns into metres.
const METRIC_LOCALE: &str = "fr_FR";

#[derive(Debug, Clone, Copy)]
struct Quota {
    remaining: u32,
    resets_at: Instant,
}

/// The Fitbit data client.
pub struct FitbitApi {
    http: reqwest::Client,
    base: Url,
    tokens: TokenManager,
    observer: Arc<dyn ApiObserver>,
    quota: Mutex<HashMap<ParticipantId, Quota>>,
    reserve: u32,
    max_wait: Duration,
    attempts: u32,
    retry_base: Duration,
}

impl FitbitApi {
    /// A client for `args.api_url`.
    pub fn new(
        http: reqwest::Client,
        args: &FitbitArgs,
        tokens: TokenManager,
        observer: Arc<dyn ApiObserver>,
    ) -> Self {
        FitbitApi {
            http,
            base: args.api_url.clone(),
            tokens,
            observer,
            quota: Mutex::new(HashMap::new()),
            reserve: args.quota_reserve,
            max_wait: Duration::from_secs(args.max_quota_wait_secs),
            attempts: args.attempts.max(1),
            retry_base: Duration::from_millis(args.retry_base_ms),
        }
    }

    /// The token manager (enrolment stores grants through it; migration revokes through it).
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// GETs `path` for the participant and decodes the JSON body as `T`. `what` names the data
    /// in error messages and decides the scope a 403 `insufficient_scope` reports (a metric
    /// name, `devices`, `profile`; see [`super::scope_for`]).
    pub async fn get<T: DeserializeOwned>(
        &self,
        participant: &ParticipantId,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, SourceError> {
        let body = self.get_json(participant, path, query, what).await?;
        serde_json::from_value(body).map_err(|e| {
            SourceError::Provider(format!("{what}: unexpected JSON shape from {path}: {e}"))
        })
    }

    /// GETs `path` with an explicit access token (enrolment, before the grant is stored).
    pub async fn get_with_token<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> Result<T, SourceError> {
        let url = self.url(path)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{path}: {e}")))?;
        let status = response.status();
        self.observer.api_request(PROVIDER, status.as_str());
        let body = response
            .bytes()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{path}: {e}")))?;
        if !status.is_success() {
            return Err(SourceError::Provider(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| SourceError::Provider(format!("malformed JSON from {path}: {e}")))
    }

    fn url(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(path)
            .map_err(|e| SourceError::Provider(format!("bad path {path}: {e}")))
    }

    /// The JSON body of a successful GET. Syntactically broken or cut-off bodies are
    /// transient (a proxy or the provider failed mid-answer) and retried like a 5xx.
    async fn get_json(
        &self,
        participant: &ParticipantId,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<serde_json::Value, SourceError> {
        let url = self.url(path)?;
        let mut token = self
            .tokens
            .access_token(participant)
            .await
            .map_err(token_error)?;
        let mut refreshed = false;
        let (mut attempt, mut quota_waits) = (0, 0);
        loop {
            self.pace(participant).await?;
            attempt += 1;
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(&token)
                .header(ACCEPT_LANGUAGE, METRIC_LOCALE)
                .query(query)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.observer.api_request(PROVIDER, "error");
                    let reason = format!("{what}: {path}: {e}");
                    self.retry_or_give_up(attempt, reason).await?;
                    continue;
                }
            };
            let status = response.status();
            self.observer.api_request(PROVIDER, status.as_str());
            let headers = response.headers().clone();
            self.record_quota(participant, &headers);
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    let reason = format!("{what}: {path}: reading the body: {e}");
                    self.retry_or_give_up(attempt, reason).await?;
                    continue;
                }
            };
            if status.is_success() {
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
            let (error_type, message) = parse_error_body(&String::from_utf8_lossy(&body))
                .unwrap_or_else(|| {
                    let text = String::from_utf8_lossy(&body);
                    ("unknown".into(), text.chars().take(200).collect())
                });
            match status.as_u16() {
                429 => {
                    let retry_after = retry_after(&headers).unwrap_or(DEFAULT_RETRY_AFTER);
                    let wait = retry_after + RESET_BUFFER;
                    self.observer.quota_wait(PROVIDER);
                    quota_waits += 1;
                    if wait > self.max_wait || quota_waits > self.attempts {
                        self.spend_quota(participant, retry_after);
                        tracing::info!(participant = %participant, ?retry_after, quota_waits, "fitbit quota exhausted; moving on");
                        return Err(SourceError::QuotaExhausted { retry_after });
                    }
                    // Within the longest wait the run accepts: wait it out and carry on with
                    // this participant instead of deferring them to a later run.
                    tracing::info!(participant = %participant, ?wait, "fitbit rate limit; waiting for Retry-After");
                    tokio::time::sleep(wait).await;
                    self.quota.lock().expect("quota lock").remove(participant);
                    attempt -= 1;
                }
                401 if error_type == "expired_token" && !refreshed => {
                    refreshed = true;
                    attempt -= 1;
                    token = self
                        .tokens
                        .replace_rejected(participant, &token)
                        .await
                        .map_err(token_error)?;
                }
                401 if error_type == "invalid_token" => {
                    let reason = format!("invalid_token: {message}");
                    self.tokens
                        .mark_needs_reconsent(participant, &reason)
                        .await
                        .map_err(token_error)?;
                    return Err(SourceError::NeedsReconsent { reason });
                }
                403 if error_type == "insufficient_scope" => {
                    let scope = super::scope_for(what);
                    tracing::info!(participant = %participant, what, scope, %message, "fitbit scope not granted");
                    return Err(SourceError::ScopeNotGranted {
                        scope: scope.into(),
                    });
                }
                403 => {
                    return Err(SourceError::Provider(format!(
                        "{what}: access refused by fitbit ({error_type}): {message}"
                    )));
                }
                // A 400 that says our request was wrong is a defect to surface, not a path
                // the account lacks.
                400 if matches!(
                    error_type.as_str(),
                    "validation" | "invalid_request" | "request"
                ) =>
                {
                    return Err(SourceError::Provider(format!(
                        "{what}: {path} answered {status} ({error_type}): {message}"
                    )));
                }
                400 | 404 | 501 => {
                    let reason =
                        format!("{what}: {path} answered {status} ({error_type}): {message}");
                    tracing::info!(participant = %participant, what, path, status = status.as_u16(), "fitbit does not offer this data for the participant");
                    return Err(SourceError::NotOffered { reason });
                }
                500..=599 => {
                    let reason = format!("{what}: {path} answered {status}: {message}");
                    self.retry_or_give_up(attempt, reason).await?;
                }
                _ => {
                    return Err(SourceError::Provider(format!(
                        "{what}: {path} answered {status} ({error_type}): {message}"
                    )));
                }
            }
        }
    }

    /// Sleeps before the next attempt, or fails with `Unavailable` when attempts are used up.
    async fn retry_or_give_up(&self, attempt: u32, reason: String) -> Result<(), SourceError> {
        if attempt >= self.attempts {
            return Err(SourceError::Unavailable(format!(
                "{reason} (after {attempt} attempts)"
            )));
        }
        let delay = backoff_delay(self.retry_base, attempt);
        tracing::warn!(attempt, ?delay, %reason, "fitbit request failed; retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Stops before the quota runs out: waits for the reset when it is near, otherwise gives
    /// the participant up until then.
    async fn pace(&self, participant: &ParticipantId) -> Result<(), SourceError> {
        let quota = self
            .quota
            .lock()
            .expect("quota lock")
            .get(participant)
            .copied();
        let Some(q) = quota else { return Ok(()) };
        let now = Instant::now();
        if q.remaining > self.reserve || q.resets_at <= now {
            return Ok(());
        }
        let wait = q.resets_at - now + RESET_BUFFER;
        self.observer.quota_wait(PROVIDER);
        if wait > self.max_wait {
            tracing::info!(participant = %participant, ?wait, remaining = q.remaining, "fitbit quota nearly spent; moving on");
            return Err(SourceError::QuotaExhausted { retry_after: wait });
        }
        tracing::info!(participant = %participant, ?wait, "waiting for the fitbit quota to reset");
        tokio::time::sleep(wait).await;
        self.quota.lock().expect("quota lock").remove(participant);
        Ok(())
    }

    fn record_quota(&self, participant: &ParticipantId, headers: &HeaderMap) {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let (Some(remaining), Some(reset)) = (
            number("fitbit-rate-limit-remaining"),
            number("fitbit-rate-limit-reset"),
        ) else {
            return;
        };
        let quota = Quota {
            remaining: remaining.min(u64::from(u32::MAX)) as u32,
            resets_at: Instant::now() + Duration::from_secs(reset),
        };
        self.quota
            .lock()
            .expect("quota lock")
            .insert(participant.clone(), quota);
    }

    fn spend_quota(&self, participant: &ParticipantId, retry_after: Duration) {
        self.quota.lock().expect("quota lock").insert(
            participant.clone(),
            Quota {
                remaining: 0,
                resets_at: Instant::now() + retry_after,
            },
        );
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = |v: Option<&reqwest::header::HeaderValue>| -> Option<u64> {
        v?.to_str().ok()?.trim().parse().ok()
    };
    secs(headers.get(RETRY_AFTER))
        .or_else(|| secs(headers.get("fitbit-rate-limit-reset")))
        .map(Duration::from_secs)
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
