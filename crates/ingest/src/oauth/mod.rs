//! OAuth 2.0 for providers that hand out per-participant grants: the authorization code flow
//! with PKCE, the token endpoint (code exchange, refresh, revocation), token storage in
//! `oauth_tokens` ([`store`]) and a [`TokenManager`] that hands out valid access tokens and
//! refreshes single-use refresh tokens under a per-participant database lock.
//!
//! Nothing here is specific to one provider: Fitbit's and Google's token endpoints differ only
//! in how the client authenticates ([`ClientAuth`]) and in their error bodies, and both error
//! shapes are understood.

pub mod consent;
pub mod google;
pub mod key;
pub mod links;
pub mod pkce;
pub mod state;
pub mod store;
mod tokens;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use key::{TokenKeyArgs, seal_plain_grants};
pub use pkce::Pkce;
pub use state::{Binding, StateSigner};
pub use tokens::TokenManager;

/// How the client proves who it is to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (confidential "server" apps).
    Basic,
    /// `client_id` (and the secret, when there is one) in the form body (public "client" apps).
    Body,
}

/// One provider's OAuth endpoints and this application's registration with it.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Provider name as stored in `oauth_tokens.provider`, e.g. `fitbit`.
    pub provider: &'static str,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub client_auth: ClientAuth,
    /// Where the provider sends the participant back after consent.
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// A successful token endpoint answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// Absent when the provider keeps the old refresh token (Google); Fitbit always rotates.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Granted scopes, space separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// The provider's id of the user who consented (Fitbit's `user_id`).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Everything but the tokens, which would otherwise end up in logs and panic messages.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// Why an OAuth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The participant has no stored grant for this provider.
    #[error("participant has no {provider} grant")]
    NotEnrolled { provider: &'static str },
    /// The grant is spent, revoked or otherwise unusable: the participant must consent again.
    #[error("grant rejected: {0}")]
    InvalidGrant(String),
    /// The token endpoint refused the request for another reason (client credentials, bad
    /// request); retrying will not help.
    #[error("token endpoint refused the request with {status}: {error_type}: {message}")]
    Rejected {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Network errors or 5xx answers that outlasted the retries.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// A 2xx answer we could not read.
    #[error("unreadable token endpoint response: {0}")]
    Malformed(String),
    /// The callback did not match a pending authorization request.
    #[error("authorization callback rejected: {0}")]
    Callback(String),
    /// Reading or writing `oauth_tokens` failed.
    #[error(transparent)]
    Store(#[from] wearhouse_core::Error),
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        OAuthError::Store(e.into())
    }
}

/// Talks to one provider's authorization server.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    config: OAuthConfig,
    http: reqwest::Client,
    /// Attempts for transient failures (network, 5xx, 409) before giving up.
    attempts: u32,
}

impl OAuthClient {
    /// A client for `config` using `http` (shared with the data client, so connection pools
    /// and timeouts are configured once).
    pub fn new(config: OAuthConfig, http: reqwest::Client) -> Self {
        OAuthClient {
            config,
            http,
            attempts: 3,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The consent URL for a participant's browser: code flow, S256 challenge, `state`.
    pub fn authorize_url(&self, state: &str, pkce: &Pkce) -> Url {
        self.authorize_url_for(state, pkce, &self.config.scopes)
    }

    /// [`authorize_url`](Self::authorize_url) asking for `scopes` rather than every configured
    /// one (a study that collects fewer metrics asks for less).
    pub fn authorize_url_for(&self, state: &str, pkce: &Pkce, scopes: &[String]) -> Url {
        let mut url = self.config.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes.join(" "))
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Exchanges an authorization code (with the verifier of its challenge) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_uri),
            ("code_verifier", verifier),
        ];
        self.token_call(&self.config.token_url, &form).await
    }

    /// Spends `refresh_token` for a new pair. The caller must hold the participant's lock and
    /// store the answer before using it (Fitbit refresh tokens are single-use).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token_call(&self.config.token_url, &form).await
    }

    /// Revokes `token` (access or refresh). Fitbit then revokes every token of the grant.
    pub async fn revoke(&self, token: &str) -> Result<(), OAuthError> {
        let response = self
            .send_form(&self.config.revoke_url, &[("token", token)])
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(classify_failure(status.as_u16(), &body))
    }

    async fn token_call(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let response = self.send_form(url, form).await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OAuthError::Unavailable(format!("reading the token response: {e}")))?;
        if !status.is_success() {
            return Err(classify_failure(
                status.as_u16(),
                &String::from_utf8_lossy(&body),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| OAuthError::Malformed(e.to_string()))
    }

    /// Posts a form with client authentication, retrying transient failures with backoff.
    async fn send_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, OAuthError> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret());
        if self.config.client_auth == ClientAuth::Body {
            fields.push(("client_id", &self.config.client_id));
            if let Some(secret) = secret {
                fields.push(("client_secret", secret));
            }
        }
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff_delay(Duration::from_millis(250), attempt)).await;
            }
            let mut request = self.http.post(url.clone()).form(&fields);
            if self.config.client_auth == ClientAuth::Basic {
                let pair = format!("{}:{}", self.config.client_id, secret.unwrap_or(""));
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            match request.send().await {
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 409 => {
                    last = format!("{} answered {}", url.path(), r.status());
                }
                Ok(r) => return Ok(r),
                Err(e) => last = format!("{}: {e}", url.path()),
            }
            tracing::warn!(provider = self.config.provider, attempt, error = %last, "token endpoint failed");
        }
        Err(OAuthError::Unavailable(last))
    }
}

/// Maps a non-2xx token endpoint answer: Fitbit's `{"errors":[{"errorType"…}]}` and the RFC 6749
/// `{"error": …}` shape are both read.
fn classify_failure(status: u16, body: &str) -> OAuthError {
    let (error_type, message) = parse_error_body(body)
        .unwrap_or_else(|| ("unknown".to_owned(), body.chars().take(200).collect()));
    if error_type == "invalid_grant" || error_type == "invalid_token" {
        return OAuthError::InvalidGrant(format!("{error_type}: {message}"));
    }
    OAuthError::Rejected {
        status,
        error_type,
        message,
    }
}

/// `(errorType, message)` of the first error in a Fitbit or RFC 6749 error body.
pub fn parse_error_body(body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct FitbitError {
        #[serde(rename = "errorType")]
        error_type: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<FitbitError>,
        error: Option<serde_json::Value>,
        error_description: Option<String>,
    }
    let b: Body = serde_json::from_str(body).ok()?;
    if let Some(e) = b.errors.into_iter().next() {
        return Some((e.error_type, e.message));
    }
    match b.error? {
        serde_json::Value::String(s) => Some((s, b.error_description.unwrap_or_default())),
        // Google's API errors: {"error": {"status": "...", "message": "..."}}.
        serde_json::Value::Object(o) => Some((
            o.get("status")?.as_str()?.to_owned(),
            o.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_owned(),
        )),
        _ => None,
    }
}

/// How long a refresh may be put off: tokens closer than this to expiry are refreshed first.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Exponential backoff with jitter: `base × 2^(attempt-1)`, plus up to half of that at random,
/// so workers that failed together do not retry together.
pub fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    use rand::Rng as _;
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let jitter_ms = rand::thread_rng().gen_range(0..=exp.as_millis().max(1) as u64 / 2);
    exp + Duration::from_millis(jitter_ms)
}
