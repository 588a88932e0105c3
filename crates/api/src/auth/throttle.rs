//! Sign-in throttling, per account and per client address (governor's GCRA): a burst of
//! attempts, then one per period. Successful sign-ins count too, so the limits are generous
//! for people and tight for a password-guessing script. In memory and per replica.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Beyond this many tracked keys, those whose bucket is full again are forgotten.
const MAX_KEYS: usize = 10_000;

/// The per-account and per-address limits.
pub struct LoginThrottle {
    accounts: DefaultKeyedRateLimiter<String>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(burst: u32, period: Duration) -> Quota {
    Quota::with_period(period)
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least one"))
}

fn take<K: Clone + Hash + Eq>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Option<Duration> {
    if limiter.len() >= MAX_KEYS {
        limiter.retain_recent();
    }
    limiter
        .check_key(key)
        .err()
        .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl LoginThrottle {
    pub fn new(account_burst: u32, client_burst: u32) -> Self {
        LoginThrottle {
            accounts: governor::RateLimiter::keyed(quota(account_burst, Duration::from_secs(60))),
            clients: governor::RateLimiter::keyed(quota(client_burst, Duration::from_secs(6))),
        }
    }

    /// Takes an attempt for the account (its e-mail, in lower case) and the client; the wait
    /// before the next attempt when either has none left.
    pub fn attempt(&self, email: &str, client: IpAddr) -> Option<Duration> {
        let client_wait = take(&self.clients, &client);
        let account_wait = take(&self.accounts, &email.trim().to_lowercase());
        client_wait.max(account_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_slowed_whichever_address_tries_it_and_an_address_whichever_account() {
        let t = LoginThrottle::new(3, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|i| {
            t.attempt("r@x.org", if i % 2 == 0 { a } else { b })
                .is_none()
        }));
        let wait = t
            .attempt("R@X.org", b)
            .expect("the account's burst is spent");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        // Another account from a fresh address is not slowed.
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(t.attempt("other@x.org", c).is_none());
        // One address trying many accounts runs out of its own burst.
        let d: IpAddr = "10.0.0.4".parse().unwrap();
        let waits: Vec<_> = (0..6)
            .map(|i| t.attempt(&format!("u{i}@x.org"), d))
            .collect();
        assert!(waits[..5].iter().all(Option::is_none));
        assert!(waits[5].is_some());
    }
}
