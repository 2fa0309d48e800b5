//! Failed sign-ins are limited so that guessing is slow, without letting anyone lock a user out.
//!
//! Only failures count, under two keys:
//! - the pair (email, client address): `pair_failures` failures within [`WINDOW`] and that pair
//!   waits, twice as long after each further failure (up to [`MAX_BACKOFF`]);
//! - the client address alone: `address_failures` failures (any emails) and that address waits.
//!
//! Nothing is kept per email alone, so failures from one address never refuse the right
//! password from another: the owner of an account signs in while someone else is guessing at
//! it. A guesser is slowed per address (and by the hashing pool's own bound), which is the
//! trade-off: many addresses can guess at one account in parallel, each at the pair rate.
//! A success clears its pair.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AppError;

/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first wait once a key is over its limit; it doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Keys tracked before the stale ones are dropped, so memory stays bounded.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures allowed per (email, address) within the window before backoff.
    pub pair_failures: u32,
    /// Failures allowed per address (any emails) within the window before backoff.
    pub address_failures: u32,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.first) > WINDOW && self.blocked(now).is_none()
    }

    fn record(&mut self, now: Instant, limit: u32) {
        if self.stale(now) {
            *self = Failures {
                count: 0,
                first: now,
                blocked_until: None,
            };
        }
        self.count = self.count.saturating_add(1);
        if self.count >= limit {
            let doublings = (self.count - limit).min(16);
            let wait = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
            self.blocked_until = Some(now + wait);
        }
    }
}

#[derive(Default)]
struct State {
    pairs: HashMap<(String, Option<IpAddr>), Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

pub struct LoginLimiter {
    limits: LoginLimits,
    state: Mutex<State>,
}

fn limited(wait: Duration) -> AppError {
    AppError::RateLimited {
        retry_after_secs: wait.as_secs().max(1),
    }
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits: LoginLimits {
                pair_failures: limits.pair_failures.max(1),
                address_failures: limits.address_failures.max(1),
            },
            state: Mutex::new(State::default()),
        }
    }

    /// Before checking a password: `RateLimited` while this pair or this address is waiting.
    pub fn check(&self, email_normalized: &str, address: Option<IpAddr>) -> Result<(), AppError> {
        self.check_at(email_normalized, address, Instant::now())
    }

    fn check_at(&self, email: &str, address: Option<IpAddr>, now: Instant) -> Result<(), AppError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = address
            .and_then(|a| state.addresses.get(&a))
            .and_then(|f| f.blocked(now))
        {
            return Err(limited(wait));
        }
        if let Some(wait) = state
            .pairs
            .get(&(email.to_owned(), address))
            .and_then(|f| f.blocked(now))
        {
            return Err(limited(wait));
        }
        Ok(())
    }

    /// A wrong password (or an unknown email).
    pub fn failed(&self, email_normalized: &str, address: Option<IpAddr>) {
        self.failed_at(email_normalized, address, Instant::now());
    }

    fn failed_at(&self, email: &str, address: Option<IpAddr>, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.pairs.len() > PRUNE_ABOVE {
            state.pairs.retain(|_, f| !f.stale(now));
        }
        if state.addresses.len() > PRUNE_ABOVE {
            state.addresses.retain(|_, f| !f.stale(now));
        }
        let fresh = Failures {
            count: 0,
            first: now,
            blocked_until: None,
        };
        state
            .pairs
            .entry((email.to_owned(), address))
            .or_insert(fresh)
            .record(now, self.limits.pair_failures);
        if let Some(address) = address {
            state
                .addresses
                .entry(address)
                .or_insert(fresh)
                .record(now, self.limits.address_failures);
        }
    }

    /// The right password: the pair starts afresh (the address keeps its count).
    pub fn succeeded(&self, email_normalized: &str, address: Option<IpAddr>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.pairs.remove(&(email_normalized.to_owned(), address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            pair_failures: 3,
            address_failures: 5,
        })
    }

    #[test]
    fn a_pair_waits_after_its_failures_and_the_wait_doubles() {
        let l = limiter();
        let t = Instant::now();
        for _ in 0..3 {
            l.check_at("a@x", ip("192.0.2.1"), t).unwrap();
            l.failed_at("a@x", ip("192.0.2.1"), t);
        }
        let Err(AppError::RateLimited { retry_after_secs }) = l.check_at("a@x", ip("192.0.2.1"), t) else {
            panic!("the pair should wait");
        };
        assert_eq!(retry_after_secs, 30);
        let later = t + Duration::from_secs(31);
        l.check_at("a@x", ip("192.0.2.1"), later).unwrap();
        l.failed_at("a@x", ip("192.0.2.1"), later);
        let Err(AppError::RateLimited { retry_after_secs }) = l.check_at("a@x", ip("192.0.2.1"), later)
        else {
            panic!("a further failure waits longer");
        };
        assert_eq!(retry_after_secs, 60);
    }

    #[test]
    fn another_address_is_never_refused_for_someone_elses_failures() {
        let l = limiter();
        let t = Instant::now();
        for n in 0..50 {
            l.failed_at("victim@x", ip("198.51.100.7"), t + Duration::from_millis(n));
        }
        assert!(l.check_at("victim@x", ip("198.51.100.7"), t).is_err());
        // The owner, elsewhere, is not locked out.
        l.check_at("victim@x", ip("192.0.2.1"), t).unwrap();
    }

    #[test]
    fn an_address_spreading_guesses_over_emails_waits() {
        let l = limiter();
        let t = Instant::now();
        for n in 0..5 {
            l.failed_at(&format!("user{n}@x"), ip("203.0.113.9"), t);
        }
        assert!(l.check_at("fresh@x", ip("203.0.113.9"), t).is_err());
        l.check_at("fresh@x", ip("203.0.113.10"), t).unwrap();
    }

    #[test]
    fn success_clears_the_pair_and_old_failures_are_forgotten() {
        let l = limiter();
        let t = Instant::now();
        l.failed_at("a@x", ip("192.0.2.1"), t);
        l.failed_at("a@x", ip("192.0.2.1"), t);
        l.succeeded("a@x", ip("192.0.2.1"));
        l.failed_at("a@x", ip("192.0.2.1"), t);
        l.failed_at("a@x", ip("192.0.2.1"), t);
        l.check_at("a@x", ip("192.0.2.1"), t).unwrap();
        let much_later = t + WINDOW + Duration::from_secs(1);
        l.failed_at("a@x", ip("192.0.2.1"), much_later);
        l.check_at("a@x", ip("192.0.2.1"), much_later).unwrap();
    }
}
