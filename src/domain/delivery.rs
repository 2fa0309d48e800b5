//! Delivery rules (docs/api.md, "Delivery guarantees"): what state a send is in, which
//! platforms can confirm a send whose outcome is unknown, and which retries need an agent's
//! confirmation. Plain functions: the store and the use cases both follow them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use snorq_connectors::Platform;

use super::MessageStatus;

/// Failure reason of a send whose outcome nobody could learn: the platform may or may not have
/// accepted it. Retrying it needs the agent's confirmation.
pub const REASON_OUTCOME_UNKNOWN: &str = "outcome_unknown";
/// Failure reason of a send whose job never ran, re-queued [`MAX_REQUEUES`] times.
pub const REASON_STALLED: &str = "stalled";
/// How many times the sweep queues a new job for a send whose job never ran before failing it.
pub const MAX_REQUEUES: i32 = 3;

/// A send as the sends API and the dashboard show it: the message's status, with `pending`
/// split in two while the platform's word on an unknown outcome is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SendStatus {
    Pending,
    /// The platform was called and may have accepted it; its status or echo is awaited.
    Unconfirmed,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl SendStatus {
    pub fn of(status: MessageStatus, unconfirmed_until: Option<DateTime<Utc>>) -> Self {
        match status {
            MessageStatus::Pending if unconfirmed_until.is_some() => SendStatus::Unconfirmed,
            MessageStatus::Pending => SendStatus::Pending,
            MessageStatus::Sent => SendStatus::Sent,
            MessageStatus::Delivered => SendStatus::Delivered,
            MessageStatus::Read => SendStatus::Read,
            MessageStatus::Failed => SendStatus::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Pending => "pending",
            SendStatus::Unconfirmed => "unconfirmed",
            SendStatus::Sent => "sent",
            SendStatus::Delivered => "delivered",
            SendStatus::Read => "read",
            SendStatus::Failed => "failed",
        }
    }
}

/// Whether the platform echoes our correlation value on the send itself, so a send whose
/// outcome is unknown can learn the truth by waiting: WhatsApp in its status webhooks
/// (`biz_opaque_callback_data`), Messenger in message echoes (`metadata`). TikTok's echoes
/// carry nothing of ours, so waiting would learn nothing.
pub fn confirms_by_correlation(platform: Platform) -> bool {
    matches!(platform, Platform::WhatsApp | Platform::Facebook)
}

/// Retrying this send might deliver the reply a second time: the platform may have accepted it
/// already. The agent must confirm.
pub fn retry_needs_confirmation(status: SendStatus, failure_reason: Option<&str>) -> bool {
    status == SendStatus::Unconfirmed
        || (status == SendStatus::Failed && failure_reason == Some(REASON_OUTCOME_UNKNOWN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_with_a_deadline_is_unconfirmed() {
        let now = Utc::now();
        assert_eq!(SendStatus::of(MessageStatus::Pending, None), SendStatus::Pending);
        assert_eq!(
            SendStatus::of(MessageStatus::Pending, Some(now)),
            SendStatus::Unconfirmed
        );
        // Only a pending send waits: a stale deadline on a settled one means nothing.
        assert_eq!(SendStatus::of(MessageStatus::Sent, Some(now)), SendStatus::Sent);
        for status in MessageStatus::ALL {
            let shown = SendStatus::of(status, None);
            assert_eq!(shown.as_str(), format!("{status:?}").to_lowercase());
        }
    }

    #[test]
    fn only_platforms_that_echo_our_value_can_confirm() {
        assert!(confirms_by_correlation(Platform::WhatsApp));
        assert!(confirms_by_correlation(Platform::Facebook));
        assert!(!confirms_by_correlation(Platform::TikTok));
    }

    #[test]
    fn a_retry_that_may_repeat_a_send_needs_confirmation() {
        assert!(retry_needs_confirmation(SendStatus::Unconfirmed, None));
        assert!(retry_needs_confirmation(
            SendStatus::Failed,
            Some(REASON_OUTCOME_UNKNOWN)
        ));
        assert!(!retry_needs_confirmation(SendStatus::Failed, Some("transient")));
        assert!(!retry_needs_confirmation(
            SendStatus::Failed,
            Some(REASON_STALLED)
        ));
        assert!(!retry_needs_confirmation(SendStatus::Failed, None));
    }
}
