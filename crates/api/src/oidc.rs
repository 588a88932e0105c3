//! Single sign-on: the API as an OpenID Connect relying party. The authorization code flow with
//! PKCE (S256), `state` and `nonce` against any issuer found by discovery; the ID token is
//! verified (signature against the issuer's JWKS, issuer, audience, expiry, nonce, `at_hash`)
//! and turned into an [`Identity`], with the roles an issuer grants in a configurable claim.
//! What the sign-in routes keep between the redirect and the callback is a [`PendingLogin`].

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthType, AuthenticationFlow, AuthorizationCode,
    ClaimsVerificationError, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims, IdTokenFields, IdTokenVerifier,
    IssuerUrl, JsonWebKeySet, JwsSigningAlgorithm as _, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
    reqwest,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

/// How long a sign-in may take between the redirect to the issuer and the callback.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Requests to the issuer (discovery, JWKS, token exchange) give up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `WEARHOUSE_OIDC_*` settings of single sign-on; flattened into the API's serve arguments.
#[derive(Debug, Clone, Args)]
pub struct OidcArgs {
    /// Issuer URL of the OpenID Provider (its discovery document is under
    /// `/.well-known/openid-configuration`); single sign-on is off when unset. Kept exactly as
    /// given, since the issuer in the provider's tokens must match it character for character.
    #[arg(long = "oidc-issuer", env = "WEARHOUSE_OIDC_ISSUER")]
    pub issuer: Option<String>,

    /// Client id registered at the issuer.
    #[arg(long = "oidc-client-id", env = "WEARHOUSE_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,

    /// File holding the client secret (a Docker secret); its content is never logged.
    #[arg(
        long = "oidc-client-secret-file",
        env = "WEARHOUSE_OIDC_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// Callback URL registered at the issuer, e.g. `https://host/api/auth/oidc/callback`.
    #[arg(long = "oidc-redirect-url", env = "WEARHOUSE_OIDC_REDIRECT_URL")]
    pub redirect_url: Option<url::Url>,

    /// Label of the sign-in button ("Sign in with …").
    #[arg(
        long = "oidc-name",
        env = "WEARHOUSE_OIDC_NAME",
        default_value = "single sign-on"
    )]
    pub display_name: String,

    /// ID token claim that carries roles as `role` or `role:study` strings (a list, or one
    /// space-separated string). Unset: roles are granted in wearhouse, not by the issuer.
    #[arg(long = "oidc-roles-claim", env = "WEARHOUSE_OIDC_ROLES_CLAIM")]
    pub roles_claim: Option<String>,

    /// Scopes asked for besides `openid`, comma-separated.
    #[arg(
        long = "oidc-scopes",
        env = "WEARHOUSE_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "email,profile"
    )]
    pub scopes: Vec<String>,
}

impl Default for OidcArgs {
    /// Single sign-on off, with the command line's defaults.
    fn default() -> Self {
        OidcArgs {
            issuer: None,
            client_id: None,
            client_secret_file: None,
            redirect_url: None,
            display_name: "single sign-on".into(),
            roles_claim: None,
            scopes: vec!["email".into(), "profile".into()],
        }
    }
}

/// The ID token's claims beyond the standard ones, of which the roles claim is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

type Claims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type TokenAnswer = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type OidcClient<HasTokenUrl = EndpointSet> = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointMaybeSet,
>;

/// A configured issuer: its discovered metadata and this API's client registration.
pub struct Oidc {
    client: OidcClient,
    http: reqwest::Client,
    issuer: IssuerUrl,
    client_id: ClientId,
    /// The issuer's signing keys, fetched again when a token names a key not among them (the
    /// issuer rotated its keys).
    jwks: RwLock<JsonWebKeySet<CoreJsonWebKey>>,
    jwks_uri: openidconnect::JsonWebKeySetUrl,
    /// Asymmetric algorithms the issuer signs ID tokens with; `none` and HMAC are never taken.
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    display_name: String,
    roles_claim: Option<String>,
    scopes: Vec<String>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("display_name", &self.display_name)
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

/// What a sign-in keeps between the redirect to the issuer and the callback. It holds the PKCE
/// verifier, so it must reach only the browser that started the sign-in and come back intact
/// (a signed, short-lived, `HttpOnly` cookie).
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Where to send the user once signed in.
    pub return_to: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Who signed in, as the issuer vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer identifier (`iss`); together with `subject` the user's stable key.
    pub issuer: String,
    /// The issuer's identifier of the user (`sub`).
    pub subject: String,
    pub email: Option<String>,
    /// Whether the issuer verified `email`; an unverified address must not link accounts.
    pub email_verified: bool,
    pub name: Option<String>,
    /// The roles claim's grants when a roles claim is configured (empty when the token carries
    /// none); `None` when roles are granted in wearhouse.
    pub claimed: Option<Vec<ClaimedGrant>>,
}

/// One grant from the roles claim: `role` (every study) or `role:study`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedGrant {
    pub role: String,
    pub study: Option<String>,
}

impl ClaimedGrant {
    fn parse(text: &str) -> Option<ClaimedGrant> {
        let (role, study) = match text.split_once(':') {
            Some((role, study)) => (role.trim(), Some(study.trim())),
            None => (text.trim(), None),
        };
        if role.is_empty() || study.is_some_and(str::is_empty) {
            return None;
        }
        Some(ClaimedGrant {
            role: role.to_owned(),
            study: study.map(str::to_owned),
        })
    }
}

/// Why a sign-in was refused. Messages are safe to log: they never carry a token, code, secret
/// or verifier.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the sign-in took longer than {} minutes", LOGIN_TIMEOUT.as_secs() / 60)]
    LoginExpired,
    #[error("the callback's state does not match the sign-in it claims to finish")]
    StateMismatch,
    #[error("the token endpoint could not be used: {0}")]
    TokenEndpoint(String),
    #[error(
        "the token endpoint refused the code: {error}{}",
        in_parens(description)
    )]
    TokenRefused {
        /// The OAuth error code, e.g. `invalid_grant`.
        error: String,
        description: Option<String>,
    },
    #[error("the token answer carries no ID token")]
    NoIdToken,
    #[error("the ID token's signature does not verify: {0}")]
    BadSignature(String),
    #[error("the ID token is for another audience: {0}")]
    WrongAudience(String),
    #[error("the ID token's nonce is wrong: {0}")]
    WrongNonce(String),
    #[error("the ID token has expired: {0}")]
    Expired(String),
    #[error("the ID token is from another issuer: {0}")]
    WrongIssuer(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error("the roles claim `{claim}` is not a list of role strings")]
    RolesClaim { claim: String },
}

impl OidcError {
    /// A short stable name of the refusal, for the audit trail and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::LoginExpired => "login_expired",
            OidcError::StateMismatch => "state_mismatch",
            OidcError::TokenEndpoint(_) => "token_endpoint",
            OidcError::TokenRefused { .. } => "token_refused",
            OidcError::NoIdToken => "no_id_token",
            OidcError::BadSignature(_) => "bad_signature",
            OidcError::WrongAudience(_) => "wrong_audience",
            OidcError::WrongNonce(_) => "wrong_nonce",
            OidcError::Expired(_) => "expired",
            OidcError::WrongIssuer(_) => "wrong_issuer",
            OidcError::InvalidToken(_) => "invalid_token",
            OidcError::RolesClaim { .. } => "roles_claim",
        }
    }
}

impl From<ClaimsVerificationError> for OidcError {
    fn from(e: ClaimsVerificationError) -> Self {
        use ClaimsVerificationError as E;
        match e {
            E::SignatureVerification(e) => OidcError::BadSignature(e.to_string()),
            E::InvalidAudience(m) => OidcError::WrongAudience(m),
            E::InvalidNonce(m) => OidcError::WrongNonce(m),
            E::Expired(m) => OidcError::Expired(m),
            E::InvalidIssuer(m) => OidcError::WrongIssuer(m),
            other => OidcError::InvalidToken(other.to_string()),
        }
    }
}

/// The value of a setting that must be set once single sign-on is on.
fn required<'a, T>(value: &'a Option<T>, setting: &str) -> anyhow::Result<&'a T> {
    value.as_ref().with_context(|| {
        format!("{setting} must be set when WEARHOUSE_OIDC_ISSUER is (single sign-on is half configured)")
    })
}

fn read_secret(path: &PathBuf) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "read the client secret file {} (WEARHOUSE_OIDC_CLIENT_SECRET_FILE)",
            path.display()
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!(
            "the client secret file {} (WEARHOUSE_OIDC_CLIENT_SECRET_FILE) is empty",
            path.display()
        );
    }
    Ok(SecretString::from(secret))
}

impl Oidc {
    /// The configured issuer, discovered; `None` when no issuer is configured. An error names
    /// the setting that is missing when the settings are half set, or says why discovery failed.
    pub async fn discover(args: &OidcArgs) -> anyhow::Result<Option<Oidc>> {
        let Some(issuer) = &args.issuer else {
            let stray = [
                ("WEARHOUSE_OIDC_CLIENT_ID", args.client_id.is_some()),
                (
                    "WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
                    args.client_secret_file.is_some(),
                ),
                ("WEARHOUSE_OIDC_REDIRECT_URL", args.redirect_url.is_some()),
                ("WEARHOUSE_OIDC_ROLES_CLAIM", args.roles_claim.is_some()),
            ];
            if let Some((setting, _)) = stray.iter().find(|(_, set)| *set) {
                bail!(
                    "{setting} is set but WEARHOUSE_OIDC_ISSUER is not (single sign-on is half configured)"
                );
            }
            return Ok(None);
        };
        let client_id = required(&args.client_id, "WEARHOUSE_OIDC_CLIENT_ID")?;
        let secret_file = required(
            &args.client_secret_file,
            "WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
        )?;
        let redirect = required(&args.redirect_url, "WEARHOUSE_OIDC_REDIRECT_URL")?;
        let secret = read_secret(secret_file)?;
        let issuer = IssuerUrl::new(issuer.clone())
            .with_context(|| format!("WEARHOUSE_OIDC_ISSUER `{issuer}` is not a URL"))?;
        let redirect = RedirectUrl::from_url(redirect.clone());

        let http = reqwest::Client::builder()
            // Following redirects would let a hostile or compromised issuer point the server at
            // internal addresses (server-side request forgery).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("build the HTTP client for the OpenID Provider")?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .with_context(|| {
                format!(
                    "discover the OpenID Provider at {} (WEARHOUSE_OIDC_ISSUER)",
                    issuer.as_str()
                )
            })?;

        let Some(token_url) = metadata.token_endpoint().cloned() else {
            bail!(
                "the OpenID Provider at {} has no token endpoint",
                issuer.as_str()
            );
        };
        if !metadata
            .response_types_supported()
            .iter()
            .any(|t| t.as_slice() == [CoreResponseType::Code])
        {
            bail!(
                "the OpenID Provider at {} does not offer the authorization code flow",
                issuer.as_str()
            );
        }
        let algorithms: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| !a.uses_shared_secret() && **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        if algorithms.is_empty() {
            bail!(
                "the OpenID Provider at {} signs ID tokens with no public-key algorithm",
                issuer.as_str()
            );
        }
        // client_secret_basic is the default (OpenID Connect Discovery §3); post only where the
        // issuer offers nothing else.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.iter().any(|m| m.as_ref() == "client_secret_basic")
                    && methods.iter().any(|m| m.as_ref() == "client_secret_post") =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let jwks = metadata.jwks().clone();
        let jwks_uri = metadata.jwks_uri().clone();
        let client_id = ClientId::new(client_id.clone());
        let client = OidcClient::<EndpointMaybeSet>::from_provider_metadata(
            metadata,
            client_id.clone(),
            Some(ClientSecret::new(secret.expose_secret().to_owned())),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type);
        Ok(Some(Oidc {
            client,
            http,
            issuer,
            client_id,
            jwks: RwLock::new(jwks),
            jwks_uri,
            algorithms,
            display_name: args.display_name.clone(),
            roles_claim: args.roles_claim.clone(),
            scopes: args.scopes.clone(),
        }))
    }

    /// The sign-in button's label.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// The issuer's authorization URL to send the browser to (code flow, PKCE S256, nonce,
    /// state), and what must be kept until the callback. `return_to` comes back in the
    /// [`PendingLogin`] untouched; the caller checks it is one of its own pages.
    pub fn start(&self, return_to: &str) -> (url::Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self
            .scopes
            .iter()
            .filter(|s| !s.is_empty() && *s != "openid")
        {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_owned(),
            created_at: Utc::now(),
        };
        (url, pending)
    }

    /// Finishes a sign-in at the callback: checks `state` against the pending login, exchanges
    /// the code (with the PKCE verifier), verifies the ID token (signature against the JWKS,
    /// issuer, audience, expiry, nonce, access token hash) and returns who signed in.
    #[tracing::instrument(skip_all, err, fields(issuer = self.issuer.as_str()))]
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        pending: &PendingLogin,
    ) -> Result<Identity, OidcError> {
        let age = Utc::now() - pending.created_at;
        if age.to_std().is_ok_and(|age| age > LOGIN_TIMEOUT) {
            return Err(OidcError::LoginExpired);
        }
        if state.is_empty() || state != pending.state {
            return Err(OidcError::StateMismatch);
        }
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = answer.id_token().ok_or(OidcError::NoIdToken)?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match self.verify(id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.refresh_jwks().await => self.verify(id_token, &nonce)?,
            other => other?,
        };
        if let Some(expected) = claims.access_token_hash() {
            let verifier = self.verifier();
            let alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::BadSignature(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::BadSignature(e.to_string()))?;
            let actual = AccessTokenHash::from_token(answer.access_token(), alg, key)
                .map_err(|e| OidcError::InvalidToken(e.to_string()))?;
            if actual != *expected {
                return Err(OidcError::InvalidToken(
                    "the access token hash (at_hash) does not match".into(),
                ));
            }
        }
        self.identity(&claims)
    }

    fn verifier(&self) -> IdTokenVerifier<'_, CoreJsonWebKey> {
        let jwks = self.jwks.read().expect("jwks lock").clone();
        IdTokenVerifier::new_public_client(self.client_id.clone(), self.issuer.clone(), jwks)
            .set_allowed_algs(self.algorithms.clone())
    }

    fn verify(
        &self,
        id_token: &openidconnect::IdToken<
            OtherClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
        nonce: &Nonce,
    ) -> Result<Claims, ClaimsVerificationError> {
        id_token.claims(&self.verifier(), nonce).cloned()
    }

    /// Fetches the issuer's keys again, for a token signed by a key the set does not hold (the
    /// issuer rotated its keys); whether the set changed and so is worth a second try.
    async fn refresh_jwks(&self) -> bool {
        match JsonWebKeySet::fetch_async(&self.jwks_uri, &self.http).await {
            Ok(fresh) => {
                let mut jwks = self.jwks.write().expect("jwks lock");
                let changed =
                    serde_json::to_value(&*jwks).ok() != serde_json::to_value(&fresh).ok();
                *jwks = fresh;
                changed
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fetch the OpenID Provider's keys again");
                false
            }
        }
    }

    fn identity(&self, claims: &Claims) -> Result<Identity, OidcError> {
        let claimed = match &self.roles_claim {
            None => None,
            Some(claim) => Some(claimed_grants(claims.additional_claims(), claim)?),
        };
        Ok(Identity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            claimed,
        })
    }
}

/// The grants in the roles claim: a list of strings, or one space-separated string; absent
/// means none. Entries that are not `role` or `role:study` are skipped: issuers put other
/// groups in the same claim.
fn claimed_grants(claims: &OtherClaims, claim: &str) -> Result<Vec<ClaimedGrant>, OidcError> {
    let refuse = || OidcError::RolesClaim {
        claim: claim.to_owned(),
    };
    let texts: Vec<&str> = match claims.0.get(claim) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(refuse))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(refuse()),
    };
    Ok(texts.into_iter().filter_map(ClaimedGrant::parse).collect())
}

/// A token endpoint failure, without the answer's body (it may hold tokens).
fn token_error(
    e: RequestTokenError<
        openidconnect::HttpClientError<reqwest::Error>,
        StandardErrorResponse<CoreErrorResponseType>,
    >,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(answer) => OidcError::TokenRefused {
            error: answer.error().as_ref().to_owned(),
            description: answer.error_description().cloned(),
        },
        RequestTokenError::Request(e) => OidcError::TokenEndpoint(error_chain(&e)),
        RequestTokenError::Parse(e, _body) => {
            OidcError::TokenEndpoint(format!("unreadable answer at `{}`", e.path()))
        }
        RequestTokenError::Other(m) => OidcError::TokenEndpoint(m),
    }
}

fn in_parens(text: &Option<String>) -> String {
    text.as_deref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
