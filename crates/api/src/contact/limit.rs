//! A rate limit per client address (governor's GCRA, which behaves as a token bucket): a
//! burst of submissions, then one per refill period. In memory and per replica, which is
//! enough to stop a script hammering the form.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

/// Beyond this many tracked addresses, those whose bucket is full again are forgotten, so
/// memory stays bounded.
const MAX_CLIENTS: usize = 10_000;

/// Per-address rate limits.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimiter {
    /// `burst` submissions at once, one more every `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
        let quota = Quota::with_period(refill.max(Duration::from_millis(1)))
            .expect("a period of at least 1 ms")
            .allow_burst(burst);
        RateLimiter {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Takes a token for `client`; false when it has none left.
    pub fn allow(&self, client: IpAddr) -> bool {
        if self.limiter.len() >= MAX_CLIENTS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&client).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_and_no_more_while_others_are_unaffected() {
        let limiter = RateLimiter::new(3, Duration::from_secs(3_600));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a)));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b));
    }
}
