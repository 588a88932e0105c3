//! Google's OAuth 2.0 as the Google Health API uses it (reference §2): the authorization code
//! flow with PKCE *and* the client secret, `access_type=offline` (else no refresh token is
//! issued) and `prompt=consent` (so a re-consent issues a new refresh token), one-hour access
//! tokens, reusable refresh tokens whose refresh answers usually carry no new refresh token
//! (the stored one is kept by [`super::store::save`]), and `invalid_grant` for a dead grant.
//!
//! Also the signed `state` of a consent link: it names the participant and is signed with
//! HMAC-SHA256, and the PKCE verifier is derived from it, so any process holding the key (the
//! `enroll` command or a running daemon) can complete a consent another one started.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use url::Url;
use wearhouse_core::ParticipantId;

use super::pkce::{hmac_sha256, random_token, s256_challenge};
use super::{OAuthClient, OAuthError, Pkce};

/// Google's consent page.
pub const AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's revocation endpoint.
pub const REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";

/// The read scopes a clinical study needs: activity, vitals, sleep, and the settings (time zone).
pub const SCOPES: &str = "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly \
https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly \
https://www.googleapis.com/auth/googlehealth.sleep.readonly \
https://www.googleapis.com/auth/googlehealth.settings.readonly";

/// How long a consent link stays usable.
const STATE_TTL_SECS: i64 = 3600;

/// The consent URL for `state`/`pkce` with Google's offline-access parameters.
pub fn consent_url(client: &OAuthClient, state: &str, pkce: &Pkce) -> Url {
    let mut url = client.authorize_url(state, pkce);
    url.query_pairs_mut()
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("include_granted_scopes", "true");
    url
}

/// Issues and checks signed `state` values.
#[derive(Clone)]
pub struct StateSigner {
    key: Vec<u8>,
}

impl StateSigner {
    /// A signer with `key` (the configured state key or the client secret).
    pub fn new(key: &[u8]) -> Self {
        StateSigner { key: key.to_vec() }
    }

    fn verifier_for(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, format!("pkce:{payload}").as_bytes()))
    }

    /// A fresh state for `participant` and the PKCE pair it stands for.
    pub fn issue(&self, participant: &ParticipantId) -> (String, Pkce) {
        let payload = format!(
            "g1.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(participant.as_str()),
            Utc::now().timestamp(),
            random_token(12)
        );
        let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, payload.as_bytes()));
        let verifier = self.verifier_for(&payload);
        let pkce = Pkce {
            challenge: s256_challenge(&verifier),
            verifier,
        };
        (format!("{payload}.{mac}"), pkce)
    }

    /// Checks `state`, returning the participant and the PKCE verifier.
    pub fn open(&self, state: &str) -> Result<(ParticipantId, String), OAuthError> {
        let bad = |why: &str| OAuthError::Callback(why.to_owned());
        let (payload, mac) = state
            .rsplit_once('.')
            .ok_or_else(|| bad("malformed state"))?;
        let expected = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, payload.as_bytes()));
        // Constant-time comparison: the MAC must not leak through timing.
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(bad("state does not match a consent link we issued"));
        }
        let parts: Vec<&str> = payload.split('.').collect();
        let ["g1", id, issued, _] = parts[..] else {
            return Err(bad("malformed state"));
        };
        let issued: i64 = issued.parse().map_err(|_| bad("malformed state"))?;
        if Utc::now().timestamp() - issued > STATE_TTL_SECS {
            return Err(bad("the consent link has expired; start enrolment again"));
        }
        let id = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("malformed state"))?;
        let participant = ParticipantId::parse(&id).map_err(|e| bad(&e.to_string()))?;
        Ok((participant, self.verifier_for(payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_to_its_participant_and_the_verifier_of_its_challenge() {
        let signer = StateSigner::new(b"key");
        let p = ParticipantId::parse("P001").unwrap();
        let (state, pkce) = signer.issue(&p);
        let (back, verifier) = signer.open(&state).unwrap();
        assert_eq!(back, p);
        assert_eq!(s256_challenge(&verifier), pkce.challenge);
        assert!(StateSigner::new(b"other").open(&state).is_err());
    }
}
