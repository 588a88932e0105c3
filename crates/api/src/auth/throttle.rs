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

/// Whether a route needing `permission` reads participants' data: the series (JSON and CSV),
/// imputation results and whole-participant archives. These are paced by [`ReadThrottle`].
pub fn is_data_read(permission: super::Permission) -> bool {
    use super::Permission::*;
    matches!(permission, ReadData | Export | ExportParticipants)
}

/// Data reads per user: a burst, then `per_minute` a minute. Generous for the dashboard (a
/// view is a handful of requests) and a script paging through a study, tight for a loop
/// that would keep the database busy for everyone.
pub struct ReadThrottle {
    users: DefaultKeyedRateLimiter<i64>,
}

impl ReadThrottle {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let period = Duration::from_secs(60) / per_minute.max(1);
        ReadThrottle {
            users: governor::RateLimiter::keyed(quota(burst, period)),
        }
    }

    /// Takes a read for `user_id`; the wait before the next one when none is left.
    pub fn take(&self, user_id: i64) -> Option<Duration> {
        take(&self.users, &user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_a_burst_of_reads_then_the_pace_and_other_users_are_unaffected() {
        let t = ReadThrottle::new(4, 60);
        assert!((0..4).all(|_| t.take(1).is_none()));
        let wait = t.take(1).expect("the fifth read waits");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(t.take(2).is_none());
    }

    #[test]
    fn only_data_reads_are_paced() {
        use super::super::Permission;
        assert!(is_data_read(Permission::ReadData));
        assert!(is_data_read(Permission::Export));
        assert!(is_data_read(Permission::ExportParticipants));
        assert!(!is_data_read(Permission::ReadParticipants));
        assert!(!is_data_read(Permission::ReadMetrics));
    }

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
