//! A local fake OpenID Provider that behaves like a real one where a relying party depends on
//! it (OpenID Connect Core 1.0 and Discovery 1.0, OAuth 2.0 RFC 6749, PKCE RFC 7636):
//!
//! - `/.well-known/openid-configuration`: the discovery document, its `issuer` exactly the
//!   issuer URL the relying party was given.
//! - `/jwks`: the public RS256 signing key with its `kid`.
//! - `/authorize`: the authorization code flow only, for registered clients and redirect URIs;
//!   `openid` scope, `state`, `nonce` and an S256 PKCE challenge required. No login page: the
//!   user the test chose (or `login_hint`) is signed in at once, and the browser is sent back
//!   (302) with `code` and `state`, or with `error` where the redirect URI can be trusted.
//! - `/token`: client authentication by `client_secret_basic` or `client_secret_post`,
//!   single-use codes bound to their client and redirect URI, the PKCE verifier checked; answers
//!   an access token and an RS256 ID token (iss, sub, aud, exp, iat, nonce, at_hash, email,
//!   email_verified, name, and the roles claim).
//! - Faults a test switches on: an ID token with a bad signature, another audience or issuer,
//!   a wrong or missing nonce, already expired; a token endpoint that answers 5xx.

mod endpoints;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::LocalServer;
use crate::grants::Grants;

/// A client registered at the fake issuer.
#[derive(Debug, Clone)]
pub struct FakeOidcClient {
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs the client may use (OpenID Connect Core §3.1.2.1: simple string
    /// comparison).
    pub redirect_uris: Vec<String>,
}

/// The fake issuer's registrations and behaviour.
#[derive(Debug, Clone)]
pub struct FakeOidcConfig {
    pub clients: Vec<FakeOidcClient>,
    /// Name of the ID token claim that carries a user's roles.
    pub roles_claim: String,
    /// Lifetime of ID and access tokens in seconds.
    pub token_ttl_secs: i64,
}

impl FakeOidcConfig {
    /// One confidential client with one redirect URI; roles in `wearhouse_roles`.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        FakeOidcConfig {
            clients: vec![FakeOidcClient {
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                redirect_uris: vec![redirect_uri.into()],
            }],
            roles_claim: "wearhouse_roles".into(),
            token_ttl_secs: 3600,
        }
    }

    /// Registers another client.
    pub fn client(mut self, client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        self.clients.push(FakeOidcClient {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: vec![redirect_uri.into()],
        });
        self
    }

    /// Carries roles in the claim `name` instead.
    pub fn roles_claim(mut self, name: &str) -> Self {
        self.roles_claim = name.into();
        self
    }

    fn client_by_id(&self, client_id: &str) -> Option<&FakeOidcClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// An account at the fake issuer.
#[derive(Debug, Clone)]
pub struct FakeOidcUser {
    /// `sub`: the issuer's stable identifier of the user.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// The roles claim's value (a list of strings, or anything else to test how a relying
    /// party copes with a malformed claim); `None` leaves the claim out.
    pub roles: Option<serde_json::Value>,
}

impl FakeOidcUser {
    /// A user with a verified e-mail address, no name and no roles claim.
    pub fn new(subject: &str, email: &str) -> Self {
        FakeOidcUser {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            name: None,
            roles: None,
        }
    }

    /// Sets the display name (`name`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The e-mail address is not verified (`email_verified: false`).
    pub fn unverified_email(mut self) -> Self {
        self.email_verified = false;
        self
    }

    /// A user without an e-mail address.
    pub fn without_email(mut self) -> Self {
        self.email = None;
        self
    }

    /// The roles claim carries `roles` (e.g. `"researcher:demo"`, `"admin"`).
    pub fn roles<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        let roles: Vec<String> = roles.into_iter().map(Into::into).collect();
        self.roles = Some(roles.into());
        self
    }
}

/// A fault the next token request suffers (first in, first out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcFault {
    /// The ID token is signed by a key the JWKS does not hold, under the published key's `kid`.
    WrongSignature,
    /// The ID token's `aud` is another client.
    WrongAudience,
    /// The ID token's `nonce` is not the one the authorization request carried.
    WrongNonce,
    /// The ID token has no `nonce`.
    MissingNonce,
    /// The ID token expired before it was issued to the client.
    Expired,
    /// The ID token's `iss` is another issuer.
    WrongIssuer,
    /// The token endpoint answers this HTTP status with a `server_error` body; the code stays
    /// unused.
    TokenEndpointStatus(u16),
}

/// One token request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcTokenRequest {
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub client_auth: String,
    pub status: u16,
    /// The OAuth error code of a refusal.
    pub error: Option<String>,
}

/// What the fake keeps beside a code: whom it was issued to and the request's nonce.
#[derive(Debug, Clone)]
struct CodeContext {
    client_id: String,
    nonce: Option<String>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, FakeOidcUser>,
    signed_in: Option<String>,
    grants: Grants,
    codes: HashMap<String, CodeContext>,
    faults: VecDeque<OidcFault>,
    token_log: Vec<OidcTokenRequest>,
    /// The issuer URL, known once the server is bound to its port.
    issuer: String,
    /// The key the JWKS publishes and ID tokens are signed with.
    published: keys::Key,
}

type Shared = crate::state::Shared<FakeOidcConfig, Inner>;

/// A running fake OpenID Provider; it stops when dropped.
pub struct FakeOidcIssuer {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl FakeOidcIssuer {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start(config: FakeOidcConfig) -> FakeOidcIssuer {
        let shared = Shared::new(config);
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(endpoints::authorize))
            .route("/token", post(endpoints::token))
            .with_state(shared.clone());
        let server = LocalServer::start(app, "fake openid provider").await;
        shared.inner().issuer = server.url();
        // The first key takes a while to make in a test build; make it before a client's
        // first request rather than during it, so its timeouts are not spent on it.
        tokio::task::spawn_blocking(|| keys::jwks(keys::Key::default()))
            .await
            .expect("signing key");
        FakeOidcIssuer { server, shared }
    }

    /// The issuer identifier (`iss`), which is also the base of every endpoint.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Adds (or replaces) a user; the first one added is signed in.
    pub fn add_user(&self, user: FakeOidcUser) {
        let mut inner = self.shared.inner();
        if inner.signed_in.is_none() {
            inner.signed_in = Some(user.subject.clone());
        }
        inner.users.insert(user.subject.clone(), user);
    }

    /// The user whom the next authorization request signs in.
    pub fn sign_in_as(&self, subject: &str) {
        let mut inner = self.shared.inner();
        assert!(inner.users.contains_key(subject), "unknown fake user");
        inner.signed_in = Some(subject.into());
    }

    /// Nobody is signed in: authorization requests are answered `login_required`.
    pub fn sign_out(&self) {
        self.shared.inner().signed_in = None;
    }

    /// Changes a user in place (e.g. new roles at the issuer).
    pub fn update_user(&self, subject: &str, f: impl FnOnce(&mut FakeOidcUser)) {
        f(self
            .shared
            .inner()
            .users
            .get_mut(subject)
            .expect("unknown fake user"));
    }

    /// Plays the user's browser: opens `authorization_url` and returns where the issuer sends
    /// the browser back to (`redirect_uri?code&state` or `?error&state`). An `Err` carries the
    /// issuer's error page.
    pub async fn authorize(&self, authorization_url: &str) -> Result<url::Url, String> {
        crate::follow_consent(authorization_url).await
    }

    /// Rotates the signing key: the JWKS publishes a new key (under a new `kid`) instead of the
    /// old one, and ID tokens are signed with it from now on.
    pub fn rotate_keys(&self) {
        let mut inner = self.shared.inner();
        inner.published = inner.published.other();
    }

    /// The next token requests suffer `faults`, one each, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = OidcFault>) {
        self.shared.inner().faults.extend(faults);
    }

    /// Every token request so far, in order.
    pub fn token_requests(&self) -> Vec<OidcTokenRequest> {
        self.shared.inner().token_log.clone()
    }

    /// The fake's clock (real time plus any [`FakeOidcIssuer::advance`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the fake's clock forward (code expiry).
    pub fn advance(&self, by: chrono::Duration) {
        self.shared.advance(by);
    }

    /// Changes the configuration of the running fake.
    pub fn configure(&self, f: impl FnOnce(&mut FakeOidcConfig)) {
        self.shared.configure(f);
    }
}

/// OpenID Connect Discovery 1.0 §3: the provider metadata.
async fn discovery(State(s): State<Arc<Shared>>) -> axum::Json<serde_json::Value> {
    let issuer = s.inner().issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "scopes_supported": ["openid", "email", "profile"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "name",
            s.config().roles_claim,
        ],
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> axum::Json<serde_json::Value> {
    let published = s.inner().published;
    axum::Json(keys::jwks(published))
}
