//! Reply windows: how long after the customer's last message the business may write freely.

use chrono::{DateTime, Duration, Utc};

use crate::Platform;
use crate::send::MessagingType;

/// TikTok allows at most this many business messages per 48 h window (reset by each customer
/// message).
pub const TIKTOK_MAX_MESSAGES_PER_WINDOW: u32 = 10;

/// The free-form reply window after the customer's last message: WhatsApp 24 h (templates
/// only after), Messenger 24 h or 7 days with the `HUMAN_AGENT` tag when the app has that
/// permission (`human_agent_allowed`), TikTok 48 h.
pub fn reply_window(platform: Platform, human_agent_allowed: bool) -> Duration {
    match platform {
        Platform::WhatsApp => Duration::hours(24),
        Platform::Facebook if human_agent_allowed => Duration::days(7),
        Platform::Facebook => Duration::hours(24),
        Platform::TikTok => Duration::hours(48),
    }
}

/// When the window that `last_inbound_at` opened closes.
pub fn window_closes_at(
    platform: Platform,
    last_inbound_at: DateTime<Utc>,
    human_agent_allowed: bool,
) -> DateTime<Utc> {
    last_inbound_at + reply_window(platform, human_agent_allowed)
}

/// The most business messages one window allows, where the platform caps it.
pub fn max_messages_per_window(platform: Platform) -> Option<u32> {
    match platform {
        Platform::TikTok => Some(TIKTOK_MAX_MESSAGES_PER_WINDOW),
        Platform::WhatsApp | Platform::Facebook => None,
    }
}

/// For Messenger: how a reply sent `now` must be tagged, or `None` when the window is closed.
/// Inside 24 h a plain `RESPONSE`; after that, up to 7 days, `HUMAN_AGENT` if allowed.
pub fn messenger_messaging_type(
    last_inbound_at: DateTime<Utc>,
    now: DateTime<Utc>,
    human_agent_allowed: bool,
) -> Option<MessagingType> {
    let elapsed = now - last_inbound_at;
    if elapsed <= reply_window(Platform::Facebook, false) {
        Some(MessagingType::Response)
    } else if human_agent_allowed && elapsed <= reply_window(Platform::Facebook, true) {
        Some(MessagingType::HumanAgent)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_platform() {
        assert_eq!(reply_window(Platform::WhatsApp, false), Duration::hours(24));
        assert_eq!(reply_window(Platform::WhatsApp, true), Duration::hours(24));
        assert_eq!(reply_window(Platform::Facebook, false), Duration::hours(24));
        assert_eq!(reply_window(Platform::Facebook, true), Duration::days(7));
        assert_eq!(reply_window(Platform::TikTok, false), Duration::hours(48));
        assert_eq!(max_messages_per_window(Platform::TikTok), Some(10));
        assert_eq!(max_messages_per_window(Platform::WhatsApp), None);
    }

    #[test]
    fn closing_time_and_messenger_tagging() {
        let last = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        assert_eq!(
            window_closes_at(Platform::TikTok, last, false),
            last + Duration::hours(48)
        );
        let at = |hours| last + Duration::hours(hours);
        assert_eq!(
            messenger_messaging_type(last, at(23), false),
            Some(MessagingType::Response)
        );
        assert_eq!(messenger_messaging_type(last, at(25), false), None);
        assert_eq!(
            messenger_messaging_type(last, at(25), true),
            Some(MessagingType::HumanAgent)
        );
        assert_eq!(messenger_messaging_type(last, at(24 * 7 + 1), true), None);
    }
}
