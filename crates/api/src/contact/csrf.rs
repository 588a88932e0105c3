//! CSRF protection for the contact form: a double-submit token. The form carries
//! `timestamp.nonce.signature` in a hidden field and the nonce in a `SameSite=Strict` cookie; a
//! submission is accepted only when the signature (HMAC-SHA256 under the server's key) holds,
//! the token is younger than [`MAX_AGE_SECS`], and the cookie holds the same nonce. Another site
//! can neither read the cookie nor forge a signature.

use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Name of the cookie holding the nonce.
pub const COOKIE: &str = "wearhouse_contact_csrf";
/// How long a loaded form may be submitted.
pub const MAX_AGE_SECS: i64 = 2 * 3_600;
/// Longest token issued: a signed timestamp (up to 20 characters), a 32-digit nonce and a
/// 64-digit signature, separated by dots.
pub const TOKEN_MAX_LEN: usize = 20 + 1 + 32 + 1 + 64;

/// Signs and checks tokens.
pub struct Csrf {
    key: Vec<u8>,
}

/// A fresh token and the cookie value that goes with it.
pub struct Issued {
    pub token: String,
    pub nonce: String,
}

impl Csrf {
    /// With the configured secret, or a random key for this process.
    pub fn new(secret: Option<&SecretString>) -> Self {
        let key = match secret {
            Some(s) if !s.expose_secret().is_empty() => s.expose_secret().as_bytes().to_vec(),
            _ => {
                let mut k = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                k
            }
        };
        Csrf { key }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(payload.as_bytes());
        mac
    }

    /// A new token for a form being served.
    pub fn issue(&self) -> Issued {
        let mut n = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut n);
        let nonce = hex::encode(n);
        let payload = format!("{}.{nonce}", Utc::now().timestamp());
        let sig = hex::encode(self.mac(&payload).finalize().into_bytes());
        Issued {
            token: format!("{payload}.{sig}"),
            nonce,
        }
    }

    /// Whether `token` from the form is genuine, fresh and matches the cookie's nonce.
    pub fn verify(&self, token: &str, cookie_nonce: Option<&str>) -> bool {
        let mut parts = token.rsplitn(2, '.');
        let (Some(sig), Some(payload)) = (parts.next(), parts.next()) else {
            return false;
        };
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        if self.mac(payload).verify_slice(&sig).is_err() {
            return false;
        }
        let Some((ts, nonce)) = payload.split_once('.') else {
            return false;
        };
        let Ok(ts) = ts.parse::<i64>() else {
            return false;
        };
        let age = Utc::now().timestamp() - ts;
        (-300..=MAX_AGE_SECS).contains(&age) && cookie_nonce == Some(nonce)
    }

    /// The `Set-Cookie` value carrying the nonce.
    pub fn cookie(issued: &Issued) -> String {
        format!(
            "{COOKIE}={}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Strict",
            issued.nonce
        )
    }
}

/// The nonce in a `Cookie` header, if present.
pub fn nonce_from_cookies(header: &str) -> Option<&str> {
    header.split(';').find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_only_with_its_own_cookie_and_signature() {
        let csrf = Csrf::new(None);
        let issued = csrf.issue();
        assert!(csrf.verify(&issued.token, Some(&issued.nonce)));
        assert!(!csrf.verify(&issued.token, None));
        assert!(!csrf.verify(&issued.token, Some("00")));
        let other = Csrf::new(None);
        assert!(!other.verify(&issued.token, Some(&issued.nonce)));
        // Change the signature's last hex digit to a different one.
        let last = issued.token.chars().last().unwrap();
        let flipped = if last == '0' { '1' } else { '0' };
        let forged = format!("{}{flipped}", &issued.token[..issued.token.len() - 1]);
        assert_ne!(forged, issued.token);
        assert!(!csrf.verify(&forged, Some(&issued.nonce)));
    }

    #[test]
    fn a_token_is_no_longer_than_the_form_body_allows_for() {
        assert!(Csrf::new(None).issue().token.len() <= TOKEN_MAX_LEN);
    }

    #[test]
    fn an_old_token_is_refused() {
        let csrf = Csrf::new(None);
        let payload = format!("{}.abcd", Utc::now().timestamp() - MAX_AGE_SECS - 10);
        let sig = hex::encode(csrf.mac(&payload).finalize().into_bytes());
        assert!(!csrf.verify(&format!("{payload}.{sig}"), Some("abcd")));
    }
}
