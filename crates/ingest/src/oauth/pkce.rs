//! PKCE (RFC 7636) with the S256 method, and the random `state` that ties a callback to the
//! authorization request that started it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// A code verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// Sent with the code exchange; 86 characters from the unreserved set (RFC 7636 allows
    /// 43 to 128).
    pub verifier: String,
    /// `base64url(sha256(verifier))` without padding; sent with the authorization request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh verifier from 64 random bytes, and its challenge.
    pub fn generate() -> Self {
        let verifier = random_token(64);
        let challenge = s256_challenge(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The S256 challenge of `verifier`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `bytes` random bytes as unpadded base64url, for `state` values and verifiers.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_matches_the_rfc_7636_example() {
        // Appendix B of RFC 7636.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_generated_verifier_has_a_length_fitbit_accepts() {
        let p = Pkce::generate();
        assert!(
            (43..=128).contains(&p.verifier.len()),
            "{}",
            p.verifier.len()
        );
        assert!(
            p.verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        );
        assert_eq!(p.challenge, s256_challenge(&p.verifier));
    }
}
