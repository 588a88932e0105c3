//! Passwords: argon2id hashes in PHC string form (the algorithm's recommended parameters),
//! generated passwords, and a verification that costs the same whether or not the account
//! exists.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use rand::Rng as _;
use rand::distributions::Alphanumeric;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// The argon2id hash of `password`.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// A hash of nothing anyone knows, verified against when the account does not exist, so a
/// failed sign-in takes as long either way.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash(&generate()).expect("hashing a generated password"));

/// Whether `password` matches `stored`; with no stored hash, false after the same work.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let stored = stored.unwrap_or(DECOY.as_str());
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is malformed");
            false
        }
    }
}

/// A random password of 24 letters and digits (about 143 bits).
pub fn generate() -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Refuses a password too short to be one.
pub fn check_strength(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_LENGTH {
        anyhow::bail!("the password is too short: use at least {MIN_LENGTH} characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("correct horse batterY", Some(&a)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("x", Some("not a hash")));
    }
}
