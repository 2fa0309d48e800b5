//! Keeping TikTok tokens fresh, and when a connection counts as failing.

use super::{ConfigError, RawConfig};

/// Keeping TikTok tokens fresh, and when a connection counts as failing.
#[derive(Debug, Clone)]
pub struct TokenRefreshConfig {
    pub window: chrono::Duration,
    pub interval: std::time::Duration,
    pub retry_delays: Vec<chrono::Duration>,
    pub error_threshold: i32,
}

impl TokenRefreshConfig {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        if !(5..=24 * 60).contains(&raw.token_refresh_window_mins) {
            return Err(ConfigError::new(
                "token_refresh_window_mins",
                "must be between 5 and 1440 (a day; TikTok access tokens live 24 hours)",
            ));
        }
        if !(1..=3600).contains(&raw.token_refresh_interval_secs) {
            return Err(ConfigError::new(
                "token_refresh_interval_secs",
                "must be between 1 and 3600",
            ));
        }
        if raw.token_refresh_retry_delays_secs.is_empty()
            || raw
                .token_refresh_retry_delays_secs
                .iter()
                .any(|d| !(1..=86_400).contains(d))
        {
            return Err(ConfigError::new(
                "token_refresh_retry_delays_secs",
                "must be one or more waits of 1 to 86400 seconds",
            ));
        }
        if !(1..=1000).contains(&raw.connection_error_threshold) {
            return Err(ConfigError::new(
                "connection_error_threshold",
                "must be between 1 and 1000",
            ));
        }
        Ok(TokenRefreshConfig {
            window: chrono::Duration::minutes(i64::from(raw.token_refresh_window_mins)),
            interval: std::time::Duration::from_secs(raw.token_refresh_interval_secs),
            retry_delays: raw
                .token_refresh_retry_delays_secs
                .iter()
                .map(|s| chrono::Duration::seconds(*s as i64))
                .collect(),
            error_threshold: raw.connection_error_threshold as i32,
        })
    }
}
