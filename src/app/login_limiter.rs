//! Login attempts are limited per email and per client address, so that guessing passwords
//! is slow whether an attacker spreads guesses over accounts or over addresses.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppError;

pub struct LoginLimiter {
    by_email: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

/// Limiter state is pruned once it tracks this many keys, so memory stays bounded.
const PRUNE_ABOVE: usize = 10_000;

impl LoginLimiter {
    pub fn per_minute(attempts: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(attempts).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            by_email: RateLimiter::keyed(quota),
            by_address: RateLimiter::keyed(quota),
        }
    }

    /// Counts one attempt; `RateLimited` when either key is over its quota.
    pub fn check(&self, email_normalized: &str, address: Option<IpAddr>) -> Result<(), AppError> {
        let now = DefaultClock::default().now();
        let to_error = |not_until: governor::NotUntil<_>| AppError::RateLimited {
            retry_after_secs: not_until.wait_time_from(now).as_secs().max(1),
        };
        // The address first: a limited client adds no more per-email state.
        if let Some(address) = address {
            if self.by_address.len() > PRUNE_ABOVE {
                self.by_address.retain_recent();
            }
            self.by_address.check_key(&address).map_err(to_error)?;
        }
        if self.by_email.len() > PRUNE_ABOVE {
            self.by_email.retain_recent();
        }
        self.by_email
            .check_key(&email_normalized.to_owned())
            .map_err(to_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_email_and_per_address() {
        let limiter = LoginLimiter::per_minute(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.check("a@example.com", Some(ip)).is_ok());
        assert!(limiter.check("a@example.com", Some(ip)).is_ok());
        assert!(matches!(
            limiter.check("a@example.com", None),
            Err(AppError::RateLimited { retry_after_secs }) if retry_after_secs >= 1
        ));
        // Another email from the same, now exhausted, address is limited too.
        assert!(limiter.check("b@example.com", Some(ip)).is_err());
        assert!(
            limiter
                .check("c@example.com", Some("192.0.2.2".parse().unwrap()))
                .is_ok()
        );
    }
}
