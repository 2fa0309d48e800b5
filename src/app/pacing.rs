//! Per-connection pacing: each connected account sends at most its platform's rate, so a burst
//! of replies is smoothed instead of answered with 429s (docs/platforms.md,
//! "WhatsApp throughput" and "Messenger rate limits"). In-process: with several worker
//! processes, give each its share of the rate.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use snorq_connectors::Platform;
use uuid::Uuid;

use crate::queue::SendRates;

pub struct Pacer {
    whatsapp: Option<DefaultKeyedRateLimiter<Uuid>>,
    facebook: Option<DefaultKeyedRateLimiter<Uuid>>,
    tiktok: Option<DefaultKeyedRateLimiter<Uuid>>,
}

fn limiter(per_second: u32) -> Option<DefaultKeyedRateLimiter<Uuid>> {
    NonZeroU32::new(per_second).map(|rate| RateLimiter::keyed(Quota::per_second(rate)))
}

impl Pacer {
    pub fn new(rates: SendRates) -> Self {
        Pacer {
            whatsapp: limiter(rates.whatsapp),
            facebook: limiter(rates.facebook),
            tiktok: limiter(rates.tiktok),
        }
    }

    /// Waits until `connection` may send again.
    pub async fn wait(&self, platform: Platform, connection: Uuid) {
        let limiter = match platform {
            Platform::WhatsApp => &self.whatsapp,
            Platform::Facebook => &self.facebook,
            Platform::TikTok => &self.tiktok,
        };
        if let Some(limiter) = limiter {
            limiter.until_key_ready(&connection).await;
        }
    }

    /// Forgets connections that have been idle long enough to be back at full burst.
    pub fn shrink(&self) {
        for limiter in [&self.whatsapp, &self.facebook, &self.tiktok]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_connection_is_held_to_its_rate_and_others_are_not_slowed() {
        let pacer = Pacer::new(SendRates {
            whatsapp: 5,
            facebook: 0,
            tiktok: 5,
        });
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let started = Instant::now();
        for _ in 0..10 {
            pacer.wait(Platform::WhatsApp, a).await;
        }
        // 5/s with a burst of 5: the last five wait about a second in all.
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
        // Another connection has its own budget; a rate of 0 means no pacing at all.
        let limiter = pacer.whatsapp.as_ref().unwrap();
        assert!(limiter.check_key(&b).is_ok());
        assert!(limiter.check_key(&a).is_err());
        assert!(pacer.facebook.is_none());
    }
}
