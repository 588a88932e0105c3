//! Who signed in, as the issuer's ID token says, and the grants its roles claim carries.

use openidconnect::AdditionalClaims;
use serde::{Deserialize, Serialize};

use super::OidcError;

/// The ID token's claims beyond the standard ones, of which the roles claim is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct OtherClaims(pub(super) serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

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

/// The grants in the roles claim: a list of strings, or one space-separated string; absent
/// means none. Entries that are not `role` or `role:study` are skipped: issuers put other
/// groups in the same claim.
pub(super) fn claimed_grants(
    claims: &OtherClaims,
    claim: &str,
) -> Result<Vec<ClaimedGrant>, OidcError> {
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
