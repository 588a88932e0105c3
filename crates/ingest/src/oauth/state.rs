//! The signed `state` of a consent link. It names the participant and the time it was issued,
//! signed with HMAC-SHA256, and the PKCE verifier is derived from it with the same key. So any
//! process holding the key (the `enroll` command's own callback server or a running daemon)
//! can complete a consent that another one started, and no pending consent is stored.
//!
//! A state may also be bound ([`Binding`]) to a coordinator's consent link (the callback then
//! claims that link) or carry the command line's confirmation that another provider account
//! may replace the one on record. States without the field, as issued before it existed,
//! open unbound.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use wearhouse_core::ParticipantId;

use super::OAuthError;
use sha2::Sha256;

use super::pkce::{Pkce, random_token, s256_challenge};

type HmacSha256 = Hmac<Sha256>;

/// How long a consent link stays usable.
const STATE_TTL_SECS: i64 = 3600;

/// What a consent is bound to besides its participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// A consent started from the command line; another provider account than the one on
    /// record is refused.
    #[default]
    None,
    /// A command-line consent whose operator confirmed an account change.
    AccountChangeAllowed,
    /// A coordinator's consent link (its id), which says whether an account may change.
    Link(i64),
}

impl Binding {
    fn encode(self) -> String {
        match self {
            Binding::None => "n".into(),
            Binding::AccountChangeAllowed => "a".into(),
            Binding::Link(id) => format!("l{id}"),
        }
    }

    fn decode(raw: &str) -> Option<Binding> {
        match raw {
            "n" => Some(Binding::None),
            "a" => Some(Binding::AccountChangeAllowed),
            _ => raw.strip_prefix('l')?.parse().ok().map(Binding::Link),
        }
    }
}

/// A state that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub participant: ParticipantId,
    /// The PKCE verifier the state stands for.
    pub verifier: String,
    pub binding: Binding,
}

/// Issues and checks signed `state` values for one provider.
#[derive(Clone)]
pub struct StateSigner {
    /// First field of every state this signer issues (it tells the providers' states apart).
    tag: &'static str,
    key: Vec<u8>,
}

impl StateSigner {
    /// A signer for states tagged `tag`, keyed with `key`.
    pub fn new(tag: &'static str, key: &[u8]) -> Self {
        StateSigner {
            tag,
            key: key.to_vec(),
        }
    }

    /// A signer keyed with the configured state key, else the client secret. Without either,
    /// a random key: only this process can then complete the consents it starts.
    pub fn from_settings(
        tag: &'static str,
        state_key: Option<&SecretString>,
        client_secret: Option<&SecretString>,
    ) -> Self {
        match state_key.or(client_secret) {
            Some(k) => Self::new(tag, k.expose_secret().as_bytes()),
            None => Self::new(tag, random_token(32).as_bytes()),
        }
    }

    /// The HMAC-SHA256 of `msg` under this signer's key, ready to be fed or checked.
    fn mac(&self, msg: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any size");
        mac.update(msg);
        mac
    }

    fn verifier_for(&self, payload: &str) -> String {
        let mac = self.mac(format!("pkce:{payload}").as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A fresh state for `participant` and the PKCE pair it stands for.
    pub fn issue(&self, participant: &ParticipantId) -> (String, Pkce) {
        self.issue_bound(participant, Binding::None)
    }

    /// [`issue`](Self::issue) with a binding.
    pub fn issue_bound(&self, participant: &ParticipantId, binding: Binding) -> (String, Pkce) {
        let payload = format!(
            "{}.{}.{}.{}.{}",
            self.tag,
            URL_SAFE_NO_PAD.encode(participant.as_str()),
            Utc::now().timestamp(),
            random_token(12),
            binding.encode()
        );
        let mac = URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        let verifier = self.verifier_for(&payload);
        let pkce = Pkce {
            challenge: s256_challenge(&verifier),
            verifier,
        };
        (format!("{payload}.{mac}"), pkce)
    }

    /// Checks `state`, returning the participant, the PKCE verifier and the binding it stands
    /// for.
    pub fn open(&self, state: &str) -> Result<Opened, OAuthError> {
        let bad = |why: &str| OAuthError::Callback(why.to_owned());
        let (payload, mac) = state
            .rsplit_once('.')
            .ok_or_else(|| bad("malformed state"))?;
        // `verify_slice` compares in constant time: the MAC must not leak through timing.
        let same = URL_SAFE_NO_PAD
            .decode(mac)
            .is_ok_and(|tag| self.mac(payload.as_bytes()).verify_slice(&tag).is_ok());
        if !same {
            return Err(bad("state does not match a consent link we issued"));
        }
        let parts: Vec<&str> = payload.split('.').collect();
        let (tag, id, issued, binding) = match parts[..] {
            [tag, id, issued, _] => (tag, id, issued, Binding::None),
            [tag, id, issued, _, binding] => (
                tag,
                id,
                issued,
                Binding::decode(binding).ok_or_else(|| bad("malformed state"))?,
            ),
            _ => return Err(bad("malformed state")),
        };
        if tag != self.tag {
            return Err(bad("malformed state"));
        }
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
        Ok(Opened {
            participant,
            verifier: self.verifier_for(payload),
            binding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_to_its_participant_and_the_verifier_of_its_challenge() {
        let signer = StateSigner::new("t1", b"key");
        let p = ParticipantId::parse("P001").unwrap();
        let (state, pkce) = signer.issue(&p);
        let opened = signer.open(&state).unwrap();
        assert_eq!(opened.participant, p);
        assert_eq!(opened.binding, Binding::None);
        assert_eq!(s256_challenge(&opened.verifier), pkce.challenge);
        assert!(StateSigner::new("t1", b"other").open(&state).is_err());
    }

    #[test]
    fn a_state_signed_for_another_provider_is_refused_even_with_the_same_key() {
        let p = ParticipantId::parse("P001").unwrap();
        let (state, _) = StateSigner::new("v1", b"key").issue(&p);
        assert!(StateSigner::new("g1", b"key").open(&state).is_err());
    }

    #[test]
    fn a_state_carries_its_binding_and_the_binding_cannot_be_changed() {
        let signer = StateSigner::new("t1", b"key");
        let p = ParticipantId::parse("P001").unwrap();
        for binding in [Binding::AccountChangeAllowed, Binding::Link(42)] {
            let (state, _) = signer.issue_bound(&p, binding);
            assert_eq!(signer.open(&state).unwrap().binding, binding);
        }
        let (state, _) = signer.issue_bound(&p, Binding::Link(42));
        let forged = state.replacen(".l42.", ".l43.", 1);
        assert_ne!(forged, state);
        assert!(signer.open(&forged).is_err());
    }

    #[test]
    fn a_state_issued_before_bindings_existed_opens_unbound() {
        let signer = StateSigner::new("t1", b"key");
        let payload = format!(
            "t1.{}.{}.nonce",
            URL_SAFE_NO_PAD.encode("P001"),
            Utc::now().timestamp()
        );
        let mac = URL_SAFE_NO_PAD.encode(signer.mac(payload.as_bytes()).finalize().into_bytes());
        let opened = signer.open(&format!("{payload}.{mac}")).unwrap();
        assert_eq!(opened.binding, Binding::None);
    }

    #[test]
    fn a_tampered_state_is_refused() {
        let signer = StateSigner::new("t1", b"key");
        let (state, _) = signer.issue(&ParticipantId::parse("P001").unwrap());
        let other = URL_SAFE_NO_PAD.encode("P002");
        let forged = state.replacen(&URL_SAFE_NO_PAD.encode("P001"), &other, 1);
        assert!(signer.open(&forged).is_err());
    }

    #[test]
    fn without_a_key_each_signer_draws_its_own() {
        let p = ParticipantId::parse("P001").unwrap();
        let (state, _) = StateSigner::from_settings("t1", None, None).issue(&p);
        assert!(
            StateSigner::from_settings("t1", None, None)
                .open(&state)
                .is_err()
        );
        let key = SecretString::from("secret".to_owned());
        let (state, _) = StateSigner::from_settings("t1", None, Some(&key)).issue(&p);
        assert!(
            StateSigner::from_settings("t1", Some(&key), None)
                .open(&state)
                .is_ok()
        );
    }
}
