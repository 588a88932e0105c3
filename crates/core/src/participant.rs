//! Participant identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A validated participant id: 1 to 64 characters of ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit. Trial ids such as `P001` or `site3-0042` fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParticipantId(String);

impl ParticipantId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 64;

    /// Validates `raw` as a participant id.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Error::invalid("participant_id", "must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                "participant_id",
                format!("longer than {} characters", Self::MAX_LEN),
            ));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(Error::invalid(
                "participant_id",
                format!("{s:?} must start with a letter or digit"),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(Error::invalid(
                "participant_id",
                format!("{s:?} contains {c:?}; use letters, digits, '-', '_' or '.'"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ParticipantId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ParticipantId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<ParticipantId> for String {
    fn from(p: ParticipantId) -> String {
        p.0
    }
}

impl AsRef<str> for ParticipantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_style_ids_are_accepted() {
        for ok in ["P001", "site3-0042", "a", "x.y_z"] {
            assert_eq!(ParticipantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn ids_that_could_smuggle_sql_or_paths_are_rejected() {
        for bad in [
            "",
            " ",
            "-lead",
            "a b",
            "p'; drop table raw_data;--",
            "../etc",
            &"x".repeat(65),
        ] {
            let e = ParticipantId::parse(bad).unwrap_err();
            assert_eq!(e.parameter(), Some("participant_id"), "{bad}");
        }
    }
}
