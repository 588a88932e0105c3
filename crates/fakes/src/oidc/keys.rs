//! The fake issuer's RS256 keys and the JSON Web Tokens it signs with them (RFC 7515/7517/7519):
//! two key pairs, of which the JWKS publishes one at a time (a rotation swaps them); the other
//! signs ID tokens whose signature must fail.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

/// A 2048-bit RSA key pair. Generating one takes a noticeable time in a test build, so each
/// process makes its two keys once and every fake issuer in it shares them.
fn key(slot: &'static OnceLock<RsaPrivateKey>) -> &'static RsaPrivateKey {
    slot.get_or_init(|| {
        RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("generate an RSA key")
    })
}

static FIRST: OnceLock<RsaPrivateKey> = OnceLock::new();
static SECOND: OnceLock<RsaPrivateKey> = OnceLock::new();

/// One of the fake's two key pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Key {
    #[default]
    First,
    Second,
}

impl Key {
    pub(super) fn other(self) -> Key {
        match self {
            Key::First => Key::Second,
            Key::Second => Key::First,
        }
    }

    pub(super) fn id(self) -> &'static str {
        match self {
            Key::First => "fake-oidc-rs256-1",
            Key::Second => "fake-oidc-rs256-2",
        }
    }

    fn private(self) -> &'static RsaPrivateKey {
        match self {
            Key::First => key(&FIRST),
            Key::Second => key(&SECOND),
        }
    }
}

/// The JWKS document: the public half of the `published` key.
pub(super) fn jwks(published: Key) -> Value {
    let public = published.private().to_public_key();
    json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": published.id(),
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]
    })
}

/// `claims` as a compact JWS signed RS256 by `signer`, its header naming the key `kid` (a forger
/// names the published key).
pub(super) fn sign(claims: &Value, signer: Key, kid: &str) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", encode(&header), encode(claims));
    let signature = SigningKey::<Sha256>::new(signer.private().clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// `at_hash` of an access token for RS256 (OpenID Connect Core 1.0 §3.1.3.6): the left half of
/// its SHA-256, base64url.
pub(super) fn access_token_hash(access_token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPublicKey;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier as _;

    fn verify_with_jwks(token: &str) -> bool {
        let jwk = &jwks(Key::First)["keys"][0];
        let int = |k: &str| {
            let bytes = URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
            rsa::BigUint::from_bytes_be(&bytes)
        };
        let public = RsaPublicKey::new(int("n"), int("e")).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = Signature::try_from(&URL_SAFE_NO_PAD.decode(signature).unwrap()[..]);
        VerifyingKey::<Sha256>::new(public)
            .verify(input.as_bytes(), &signature.unwrap())
            .is_ok()
    }

    #[test]
    fn tokens_of_the_published_key_verify_against_the_jwks_and_others_do_not() {
        let claims = json!({"sub": "sub-1"});
        let kid = Key::First.id();
        assert!(verify_with_jwks(&sign(&claims, Key::First, kid)));
        assert!(!verify_with_jwks(&sign(&claims, Key::Second, kid)));
    }

    #[test]
    fn the_access_token_hash_matches_the_specification_example() {
        // OpenID Connect Core 1.0, Appendix A.3: access token and its at_hash.
        assert_eq!(
            access_token_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
