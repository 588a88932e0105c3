//! Google's OAuth 2.0 as the Google Health API uses it (reference §2): the authorization code
//! flow with PKCE *and* the client secret, `access_type=offline` (else no refresh token is
//! issued) and `prompt=consent` (so a re-consent issues a new refresh token), one-hour access
//! tokens, reusable refresh tokens whose refresh answers usually carry no new refresh token
//! (the stored one is kept by [`super::store::save`]), and `invalid_grant` for a dead grant.
//! The signed `state` of its consent links is [`super::StateSigner`]'s, tagged `g1`.

use url::Url;

use super::{OAuthClient, Pkce};

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

/// The consent URL for `state`/`pkce` asking for `scopes`, with Google's offline-access
/// parameters.
pub fn consent_url(client: &OAuthClient, state: &str, pkce: &Pkce, scopes: &[String]) -> Url {
    let mut url = client.authorize_url_for(state, pkce, scopes);
    url.query_pairs_mut()
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("include_granted_scopes", "true");
    url
}
