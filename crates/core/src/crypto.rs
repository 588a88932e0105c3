//! Secrets sealed at rest: the key participants' OAuth grants are encrypted under
//! (`WEARHOUSE_TOKEN_KEY_FILE`) and the authenticated cipher that seals and opens them.
//!
//! XChaCha20-Poly1305 with a fresh random 192-bit nonce per value: nonces that large never
//! collide in practice, so no counter has to be kept across processes. Each value is bound to
//! where it belongs (participant, provider, field) as associated data, so a ciphertext copied
//! to another row or column fails to open instead of handing one participant's grant to
//! another.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the token key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the token key file {} must hold 32 random bytes as 64 hex digits or base64 \
         (e.g. `openssl rand -hex 32`): {reason}",
        path.display()
    )]
    Malformed { path: PathBuf, reason: String },
}

/// A sealed value that did not open: the wrong key, or a value altered or moved from
/// another row or field.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the sealed {field} of {participant}'s {provider} grant: it was sealed under \
     key {sealed_with} and this is key {key_id}; a wrong key file, or a value altered or \
     copied from another row"
)]
pub struct OpenError {
    pub participant: String,
    pub provider: String,
    pub field: &'static str,
    /// The key id stored with the value.
    pub sealed_with: String,
    /// The id of the key that tried.
    pub key_id: String,
}

/// Where a sealed value belongs; its associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealedField<'a> {
    pub participant: &'a str,
    pub provider: &'a str,
    /// Column name, e.g. `access_token`.
    pub field: &'static str,
}

impl SealedField<'_> {
    /// Length-prefixed parts, so ("ab", "c") and ("a", "bc") never give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"wearhouse grant v1".to_vec();
        for part in [self.participant, self.provider, self.field] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// The key grants are sealed under, with its id (stored next to each sealed value so a
/// rotation, or an operator holding the wrong file, can tell keys apart).
#[derive(Clone)]
pub struct TokenKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

/// Only the id: the key itself never reaches a log.
impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).finish()
    }
}

impl TokenKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        // The id is a hash of the key under its own label: it names the key without
        // revealing anything usable about it.
        let digest = Sha256::new()
            .chain_update(b"wearhouse token key id\0")
            .chain_update(bytes)
            .finalize();
        TokenKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id: hex::encode(&digest[..8]),
        }
    }

    /// A key from the text of a key file: 64 hex digits or base64 of 32 bytes, surrounding
    /// whitespace ignored. The error says what is wrong, never the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            STANDARD
                .decode(text)
                .map_err(|_| "neither 64 hex digits nor base64".to_owned())?
        };
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("it holds {} bytes, not {KEY_LEN}", b.len()))?;
        Ok(TokenKey::from_bytes(&bytes))
    }

    /// The key in `path` (see [`TokenKey::parse`]).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        TokenKey::parse(&text).map_err(|reason| KeyFileError::Malformed {
            path: path.to_owned(),
            reason,
        })
    }

    /// A fresh random key and its key file text (hex), for tests and key generation.
    pub fn generate() -> (Self, String) {
        let bytes: [u8; KEY_LEN] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        (TokenKey::from_bytes(&bytes), hex::encode(bytes))
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain`, bound to `at`.
    pub fn seal(&self, plain: &str, at: SealedField<'_>) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = at.associated_data();
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed under the key `sealed_with` for `at`.
    pub fn open(
        &self,
        sealed: &[u8],
        sealed_with: &str,
        at: SealedField<'_>,
    ) -> Result<SecretString, OpenError> {
        let fail = || OpenError {
            participant: at.participant.to_owned(),
            provider: at.provider.to_owned(),
            field: at.field,
            sealed_with: sealed_with.to_owned(),
            key_id: self.id.clone(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = at.associated_data();
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const AT: SealedField<'static> = SealedField {
        participant: "P001",
        provider: "fitbit",
        field: "access_token",
    };

    #[test]
    fn a_sealed_value_opens_with_its_key_and_place_only() {
        let (key, _) = TokenKey::generate();
        let sealed = key.seal("secret-token", AT);
        assert!(!sealed.windows(12).any(|w| w == b"secret-token"));
        let opened = key.open(&sealed, key.id(), AT).unwrap();
        assert_eq!(opened.expose_secret(), "secret-token");

        let (other, _) = TokenKey::generate();
        let e = other.open(&sealed, key.id(), AT).unwrap_err();
        assert!(e.to_string().contains(key.id()), "{e}");
        for moved in [
            SealedField {
                participant: "P002",
                ..AT
            },
            SealedField {
                provider: "google-health",
                ..AT
            },
            SealedField {
                field: "refresh_token",
                ..AT
            },
        ] {
            assert!(key.open(&sealed, key.id(), moved).is_err(), "{moved:?}");
        }
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open(&altered, key.id(), AT).is_err());
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let (key, _) = TokenKey::generate();
        assert_ne!(key.seal("t", AT), key.seal("t", AT));
    }

    #[test]
    fn key_files_hold_hex_or_base64_of_32_bytes() {
        let bytes = [7u8; KEY_LEN];
        let from_hex = TokenKey::parse(&format!("{}\n", hex::encode(bytes))).unwrap();
        let from_b64 = TokenKey::parse(&STANDARD.encode(bytes)).unwrap();
        assert_eq!(from_hex.id(), from_b64.id());
        let sealed = from_hex.seal("x", AT);
        assert!(from_b64.open(&sealed, from_hex.id(), AT).is_ok());

        assert!(TokenKey::parse("").is_err());
        assert!(TokenKey::parse(&hex::encode([1u8; 16])).is_err());
        let e = TokenKey::parse(&STANDARD.encode([1u8; 31])).unwrap_err();
        assert!(e.contains("31 bytes"), "{e}");
    }

    #[test]
    fn a_key_prints_its_id_only() {
        let (key, text) = TokenKey::generate();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.id()));
        assert!(!shown.contains(&text));
    }
}
