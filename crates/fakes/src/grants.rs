//! The grants an OAuth server keeps: authorization codes, access tokens and refresh tokens,
//! each token tied to the grant it belongs to, so that revoking a grant (or every grant of a
//! user) ends all its tokens. Each provider's fake keeps one and adds its own rules: token
//! formats, rotation or reuse of refresh tokens, error bodies.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::token::s256_challenge;

/// Authorization codes live 10 minutes (both providers).
const CODE_TTL_SECS: i64 = 600;

/// An authorization code awaiting exchange.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub user: String,
    /// The PKCE challenge and its method (`S256` or `plain`), if the request carried one.
    pub challenge: Option<(String, String)>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// Whether the exchange also yields a refresh token.
    pub offline: bool,
    pub issued: DateTime<Utc>,
    pub used: bool,
}

impl Code {
    /// Whether `verifier` answers the code's PKCE challenge (a code without one takes any).
    pub fn verifies(&self, verifier: &str) -> bool {
        match &self.challenge {
            None => true,
            Some((challenge, method)) if method == "S256" => &s256_challenge(verifier) == challenge,
            Some((challenge, _)) => verifier == challenge,
        }
    }
}

/// Why a code cannot be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    Unknown,
    Used,
    Expired,
}

#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub user: String,
    pub scopes: Vec<String>,
    pub issued: DateTime<Utc>,
    pub grant: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub user: String,
    pub scopes: Vec<String>,
    pub grant: u64,
    /// Spent by a refresh (single-use refresh tokens only).
    pub spent: bool,
}

#[derive(Default)]
pub(crate) struct Grants {
    pub codes: HashMap<String, Code>,
    pub access: HashMap<String, Access>,
    pub refresh: HashMap<String, Refresh>,
    pub revoked: HashSet<u64>,
    next_grant: u64,
    /// How many refreshes each user's tokens went through.
    pub refreshes: HashMap<String, u32>,
}

impl Grants {
    /// The number of a new grant.
    pub fn open(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// Keeps `code` under a new random name that starts with `prefix`, and returns the name.
    pub fn add_code(&mut self, prefix: &str, code: Code) -> String {
        let name = format!("{prefix}{}", crate::token::random(20));
        self.codes.insert(name.clone(), code);
        name
    }

    /// The code, if it can be exchanged at `now`.
    pub fn usable(&self, code: &str, now: DateTime<Utc>) -> Result<Code, CodeRefusal> {
        let c = self.codes.get(code).ok_or(CodeRefusal::Unknown)?;
        if c.used {
            return Err(CodeRefusal::Used);
        }
        if (now - c.issued).num_seconds() > CODE_TTL_SECS {
            return Err(CodeRefusal::Expired);
        }
        Ok(c.clone())
    }

    /// Marks a code exchanged: it cannot be used again.
    pub fn spend(&mut self, code: &str) {
        if let Some(c) = self.codes.get_mut(code) {
            c.used = true;
        }
    }

    /// Records an access token of `grant`.
    pub fn add_access(
        &mut self,
        token: &str,
        user: &str,
        scopes: &[String],
        grant: u64,
        now: DateTime<Utc>,
    ) {
        let access = Access {
            user: user.into(),
            scopes: scopes.to_vec(),
            issued: now,
            grant,
        };
        self.access.insert(token.into(), access);
    }

    /// Records a refresh token of `grant`.
    pub fn add_refresh(&mut self, token: &str, user: &str, scopes: &[String], grant: u64) {
        let refresh = Refresh {
            user: user.into(),
            scopes: scopes.to_vec(),
            grant,
            spent: false,
        };
        self.refresh.insert(token.into(), refresh);
    }

    /// The grant an access or refresh token belongs to.
    pub fn grant_of(&self, token: &str) -> Option<(u64, &str)> {
        self.access
            .get(token)
            .map(|a| (a.grant, a.user.as_str()))
            .or_else(|| self.refresh.get(token).map(|r| (r.grant, r.user.as_str())))
    }

    /// Ends every grant of `user` (the user removes the app in their account).
    pub fn revoke_user(&mut self, user: &str) {
        let grants: Vec<u64> = self
            .access
            .values()
            .filter(|a| a.user == user)
            .map(|a| a.grant)
            .chain(
                self.refresh
                    .values()
                    .filter(|r| r.user == user)
                    .map(|r| r.grant),
            )
            .collect();
        self.revoked.extend(grants);
    }

    /// Counts a refresh of `user`'s tokens.
    pub fn count_refresh(&mut self, user: &str) {
        *self.refreshes.entry(user.to_owned()).or_default() += 1;
    }

    /// How many refreshes `user`'s tokens went through.
    pub fn refresh_count(&self, user: &str) -> u32 {
        self.refreshes.get(user).copied().unwrap_or(0)
    }
}
