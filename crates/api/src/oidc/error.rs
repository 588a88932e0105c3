//! Why a sign-in was refused, one variant per check, with messages safe to log.

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{ClaimsVerificationError, RequestTokenError, StandardErrorResponse, reqwest};

use super::LOGIN_TIMEOUT;

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

/// A token endpoint failure, without the answer's body (it may hold tokens).
pub(super) fn token_error(
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
