//! Single sign-on: the API as an OpenID Connect relying party. The authorization code flow with
//! PKCE (S256), `state` and `nonce` against any issuer found by discovery; the ID token is
//! verified (signature against the issuer's JWKS, issuer, audience, expiry, nonce, `at_hash`)
//! and turned into an [`Identity`], with the roles an issuer grants in a configurable claim.
//! What the sign-in routes keep between the redirect and the callback is a [`PendingLogin`].

mod error;
mod identity;
mod settings;

use std::sync::RwLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenClaims, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet,
    JwsSigningAlgorithm as _, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse,
    TokenResponse as _, reqwest,
};
use serde::{Deserialize, Serialize};

pub use error::OidcError;
pub use identity::{ClaimedGrant, Identity};
pub use settings::OidcArgs;

use error::token_error;
use identity::{OtherClaims, claimed_grants};
use settings::Settings;

/// How long a sign-in may take between the redirect to the issuer and the callback.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Requests to the issuer (discovery, JWKS, token exchange) give up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

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

impl Oidc {
    /// The configured issuer, discovered; `None` when no issuer is configured. An error names
    /// the setting that is missing when the settings are half set, or says why discovery failed.
    pub async fn discover(args: &OidcArgs) -> anyhow::Result<Option<Oidc>> {
        let Some(Settings {
            issuer,
            client_id,
            client_secret,
            redirect,
        }) = args.settings()?
        else {
            return Ok(None);
        };
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
        let client = OidcClient::<EndpointMaybeSet>::from_provider_metadata(
            metadata,
            client_id.clone(),
            Some(client_secret),
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
    // A refused sign-in is a warning: it is most often a user's stale tab or a forged callback.
    #[tracing::instrument(skip_all, err(level = "warn"), fields(issuer = self.issuer.as_str()))]
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
