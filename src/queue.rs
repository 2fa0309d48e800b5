//! The outbound send queue's vocabulary: what a job carries, the queue's name, and the retry
//! schedule. No database code: the store pushes jobs inside its transactions, the worker
//! (`crate::worker`) runs them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The apalis queue (`job_type`) of outbound sends. Fixed here, never derived from a Rust type
/// name: renaming a type must not orphan queued rows.
pub const SEND_QUEUE: &str = "snorq.outbound.send";

/// How many times apalis itself may hand out one job. Our retries are new jobs on our own
/// schedule; apalis re-runs a job only when the handler failed before calling the platform
/// (the database could not load the message, even after the handler's own retries). After the
/// platform was called, the handler does not give up on recording the outcome.
pub const JOB_MAX_ATTEMPTS: usize = 25;

/// One provider call to make for one outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: Uuid,
    /// The attempt this job makes (1-based). The worker acts only while the message is pending
    /// with `attempt - 1` attempts recorded, so a duplicate job (a retry clicked twice, a job
    /// re-delivered after a crash) cannot send twice what was already recorded.
    pub attempt: i32,
    /// The first attempt of this round: a manual retry starts a new round with the whole
    /// retry schedule ahead of it.
    pub round_start: i32,
}

impl SendJob {
    pub fn first(message_id: Uuid) -> Self {
        SendJob {
            message_id,
            attempt: 1,
            round_start: 1,
        }
    }

    /// A new round after `attempts` recorded attempts (a manual retry).
    pub fn new_round(message_id: Uuid, attempts: i32) -> Self {
        SendJob {
            message_id,
            attempt: attempts + 1,
            round_start: attempts + 1,
        }
    }

    /// The job for the next attempt of this round.
    pub fn next(&self) -> Self {
        SendJob {
            attempt: self.attempt + 1,
            ..*self
        }
    }

    /// 1-based position of this attempt in its round (what the retry schedule counts).
    pub fn attempt_in_round(&self) -> i32 {
        self.attempt - self.round_start + 1
    }

    pub fn encode(&self) -> Vec<u8> {
        // Two plain fields: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A job to push: what to run and how long to wait first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedJob {
    pub job: SendJob,
    pub delay: Duration,
}

/// The apalis task for a job: due now, or `delay` from now rounded up to the second (the queue's
/// resolution; a retry never runs early), handed out at most [`JOB_MAX_ATTEMPTS`] times.
pub fn send_task(queued: &QueuedJob) -> apalis::prelude::Task<Vec<u8>> {
    let due = std::time::SystemTime::now() + queued.delay;
    let since_epoch = due.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // Due now: the current second, so the job is eligible (and notified) at once.
    let round_up = !queued.delay.is_zero() && since_epoch.subsec_nanos() > 0;
    let seconds = since_epoch.as_secs() + u64::from(round_up);
    apalis::prelude::TaskBuilder::new(queued.job.encode())
        .run_at_timestamp(seconds)
        .max_attempts(JOB_MAX_ATTEMPTS)
        .build()
}

/// Sends per second per connection, by platform; 0 turns pacing off for that platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRates {
    pub whatsapp: u32,
    pub facebook: u32,
    pub tiktok: u32,
}

impl Default for SendRates {
    /// WhatsApp: 80 messages/s per number (default tier). Messenger: 300 calls/s per Page, but
    /// over 40 messages/s can get a Page's inbox blocked. TikTok: no documented rate; 10/s.
    fn default() -> Self {
        SendRates {
            whatsapp: 80,
            facebook: 40,
            tiktok: 10,
        }
    }
}

/// The longest Retry-After honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When to try again after a retryable failure: one delay per retry, so a message gets
/// `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// 10 s, 1 min, 5 min, 30 min, 2 h, 6 h: seven attempts over about 8.6 hours.
    fn default() -> Self {
        RetrySchedule::new([10, 60, 300, 1800, 7200, 21600].map(Duration::from_secs).to_vec())
    }
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        RetrySchedule { delays }
    }

    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.delays.len() + 1).unwrap_or(i32::MAX)
    }

    /// The wait before the attempt after `attempt` (1-based), or `None` when `attempt` was the
    /// last. A platform's Retry-After wins when it asks for longer, up to a day (a header is
    /// outside input; an absurd value must not park a message for years or overflow a date).
    pub fn next_delay(&self, attempt: i32, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let scheduled = *self.delays.get(index)?;
        let asked = retry_after.map(|asked| asked.min(MAX_RETRY_AFTER));
        Some(asked.map_or(scheduled, |asked| asked.max(scheduled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_gives_one_delay_per_retry_then_stops() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(10), Duration::from_secs(60)]);
        assert_eq!(schedule.max_attempts(), 3);
        assert_eq!(schedule.next_delay(1, None), Some(Duration::from_secs(10)));
        assert_eq!(schedule.next_delay(2, None), Some(Duration::from_secs(60)));
        assert_eq!(schedule.next_delay(3, None), None);
        assert_eq!(schedule.next_delay(0, None), None);
    }

    #[test]
    fn retry_after_wins_only_when_longer() {
        let schedule = RetrySchedule::default();
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(10))
        );
        assert_eq!(schedule.max_attempts(), 7);
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(u64::MAX))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn job_round_trips_as_json() {
        let job = SendJob::first(Uuid::now_v7());
        let back: SendJob = serde_json::from_slice(&job.encode()).unwrap();
        assert_eq!(back, job);
    }
}
