//! Sending: the workers, the queue, and the platforms' addresses and timeout.

use super::{ConfigError, RawConfig, http_url};

/// Sending: the worker's settings.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub concurrency: usize,
    pub retry_delays: Vec<std::time::Duration>,
    pub rates: crate::queue::SendRates,
    pub platforms: snorq_connectors::ClientConfig,
    pub poll_interval: std::time::Duration,
    pub heartbeat: std::time::Duration,
    pub job_retention: chrono::Duration,
    pub event_retention: chrono::Duration,
    /// How long a send whose outcome is unknown waits for the platform's word.
    pub confirm_window: chrono::Duration,
    /// When a due send, or an open attempt past the send timeout, counts as stalled.
    pub stall_after: std::time::Duration,
    /// Outcome transactions in flight at once. One: with group commit a single writer makes the
    /// biggest batches, which measured fastest on both backends (docs/benchmarks.md, "Outbound benchmark").
    pub outcome_writers: usize,
}

impl OutboundConfig {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        if raw.send_concurrency == 0 || raw.send_concurrency > 10_000 {
            return Err(ConfigError::new(
                "send_concurrency",
                "must be between 1 and 10000",
            ));
        }
        if raw.send_timeout_secs == 0 {
            return Err(ConfigError::new("send_timeout_secs", "must be at least 1"));
        }
        if !(1..=7 * 24 * 3600).contains(&raw.send_confirm_window_secs) {
            return Err(ConfigError::new(
                "send_confirm_window_secs",
                "must be between 1 and 604800 (a week; Meta stops redelivering after that)",
            ));
        }
        if !(1..=24 * 3600).contains(&raw.send_stall_secs) {
            return Err(ConfigError::new(
                "send_stall_secs",
                "must be between 1 and 86400 (a day)",
            ));
        }
        if raw.send_retry_delays_secs.len() > 100 {
            return Err(ConfigError::new("send_retry_delays_secs", "at most 100 retries"));
        }
        if !(1..=300).contains(&raw.worker_heartbeat_secs) {
            return Err(ConfigError::new(
                "worker_heartbeat_secs",
                "must be between 1 and 300",
            ));
        }
        if raw.queue_poll_interval_ms < 10 {
            return Err(ConfigError::new("queue_poll_interval_ms", "must be at least 10"));
        }
        if !(1..=24 * 365).contains(&raw.finished_job_retention_hours) {
            return Err(ConfigError::new(
                "finished_job_retention_hours",
                "must be between 1 and 8760 (a year)",
            ));
        }
        if !(24..=24 * 365).contains(&raw.event_retention_hours) {
            return Err(ConfigError::new(
                "event_retention_hours",
                "must be between 24 and 8760 (a year)",
            ));
        }
        Ok(OutboundConfig {
            concurrency: raw.send_concurrency,
            retry_delays: raw
                .send_retry_delays_secs
                .iter()
                .map(|s| std::time::Duration::from_secs(*s))
                .collect(),
            rates: crate::queue::SendRates {
                whatsapp: raw.send_rate_whatsapp,
                facebook: raw.send_rate_facebook,
                tiktok: raw.send_rate_tiktok,
            },
            platforms: platforms(raw)?,
            poll_interval: std::time::Duration::from_millis(raw.queue_poll_interval_ms),
            heartbeat: std::time::Duration::from_secs(raw.worker_heartbeat_secs),
            job_retention: chrono::Duration::hours(i64::from(raw.finished_job_retention_hours)),
            event_retention: chrono::Duration::hours(i64::from(raw.event_retention_hours)),
            confirm_window: chrono::Duration::seconds(
                i64::try_from(raw.send_confirm_window_secs).unwrap_or(i64::MAX),
            ),
            stall_after: std::time::Duration::from_secs(raw.send_stall_secs),
            outcome_writers: 1,
        })
    }
}

/// The platforms' hosts (overridable for tests and the simulator) and the call timeout.
fn platforms(raw: &RawConfig) -> Result<snorq_connectors::ClientConfig, ConfigError> {
    let mut platforms = snorq_connectors::ClientConfig {
        timeout: std::time::Duration::from_secs(raw.send_timeout_secs),
        ..snorq_connectors::ClientConfig::default()
    };
    for (setting, value, target) in [
        (
            "graph_base_url",
            &raw.graph_base_url,
            &mut platforms.graph_base_url,
        ),
        (
            "tiktok_base_url",
            &raw.tiktok_base_url,
            &mut platforms.tiktok_base_url,
        ),
        (
            "facebook_dialog_base_url",
            &raw.facebook_dialog_base_url,
            &mut platforms.facebook_dialog_base_url,
        ),
        (
            "tiktok_authorize_url",
            &raw.tiktok_authorize_url,
            &mut platforms.tiktok_authorize_url,
        ),
    ] {
        if let Some(url) = http_url(setting, value)? {
            *target = url;
        }
    }
    Ok(platforms)
}
